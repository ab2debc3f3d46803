-- MLS group messages (API.md §15.4): ciphertext only, stored before the sender's acknowledgement. A device reads
-- a group's history from the epoch it joined in. `client_msg_id` makes a retried send idempotent for 24 hours.
CREATE TABLE mls_message (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
    group_id          INTEGER NOT NULL,                   -- mls_group.id
    sender_id         INTEGER NOT NULL,
    sender_device_id  TEXT    NOT NULL,
    epoch             INTEGER NOT NULL,
    ciphertext        TEXT    NOT NULL,                   -- the PrivateMessage, base64
    client_msg_id     TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX mls_message_group ON mls_message (group_id, id);
CREATE UNIQUE INDEX mls_message_client ON mls_message (sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
