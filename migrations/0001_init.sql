-- Accounts, devices, conversations and the bookkeeping every function shares.
-- Times are milliseconds since the Unix epoch (UTC). AUTOINCREMENT keeps ids from ever being reused.

CREATE TABLE user (
    id                            INTEGER PRIMARY KEY AUTOINCREMENT,
    phone                         TEXT UNIQUE,            -- digits only; NULL once deleted
    username                      TEXT,                   -- as typed
    username_lower                TEXT UNIQUE,            -- for case-insensitive uniqueness and login
    first_name                    TEXT,
    last_name                     TEXT,
    search_text                   TEXT,                   -- lower-cased "username first last first last" for search
    password_hash                 TEXT,
    public_key                    TEXT,                   -- legacy key text from registration
    avatar_key                    TEXT,                   -- S3 key of an uploaded avatar
    avatar_preset                 TEXT,                   -- preset avatar id ("1".."12")
    avatar_frame                  TEXT,
    bio                           TEXT,
    birthdate                     TEXT,                   -- YYYY-MM-DD
    last_seen                     INTEGER,
    avatar_visibility             TEXT    NOT NULL DEFAULT 'all',
    avatar_visibility_exceptions  TEXT    NOT NULL DEFAULT '[]',  -- JSON array of user ids
    show_read_receipts            INTEGER NOT NULL DEFAULT 1,
    show_last_seen                INTEGER NOT NULL DEFAULT 1,
    show_online_status            INTEGER NOT NULL DEFAULT 1,
    phone_visibility              TEXT    NOT NULL DEFAULT 'nobody',
    token_version                 INTEGER NOT NULL DEFAULT 0,
    is_admin                      INTEGER NOT NULL DEFAULT 0,
    is_banned                     INTEGER NOT NULL DEFAULT 0,
    is_deleted                    INTEGER NOT NULL DEFAULT 0,
    created_at                    INTEGER NOT NULL
);

-- Search scans names; the list pages by id. Both exclude deleted accounts.
CREATE INDEX user_live_id ON user (id) WHERE is_deleted = 0;

CREATE TABLE device (
    id          TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES user (id),
    name        TEXT,
    created_at  INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
);
CREATE INDEX device_user ON device (user_id);

-- Open WebSocket connections (API Gateway connection ids).
CREATE TABLE connection (
    id            TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES user (id),
    device_id     TEXT NOT NULL,
    token_version INTEGER NOT NULL,         -- `ver` of the token that opened it, re-checked per action
    token_exp     INTEGER NOT NULL,         -- `exp` of that token (seconds)
    connected_at  INTEGER NOT NULL
);
CREATE INDEX connection_user ON connection (user_id, connected_at);

CREATE TABLE message (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id            INTEGER NOT NULL,
    receiver_id          INTEGER NOT NULL,
    encrypted_content    TEXT    NOT NULL,
    message_type         TEXT    NOT NULL DEFAULT 'text',
    media_key            TEXT,
    reply_to_message_id  INTEGER,
    client_msg_id        TEXT,
    sender_device_id     TEXT,
    is_read              INTEGER NOT NULL DEFAULT 0,
    hidden_for_sender    INTEGER NOT NULL DEFAULT 0,
    hidden_for_receiver  INTEGER NOT NULL DEFAULT 0,
    deleted_for_everyone INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL
);
-- A conversation is read through (low id, high id) so both directions share one index.
CREATE INDEX message_pair ON message (min(sender_id, receiver_id), max(sender_id, receiver_id), id);
CREATE INDEX message_receiver ON message (receiver_id, sender_id, id);
CREATE INDEX message_sender ON message (sender_id, receiver_id, id);
CREATE INDEX message_receiver_unread ON message (receiver_id, sender_id, id) WHERE is_read = 0;
CREATE UNIQUE INDEX message_client_msg ON message (sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;

-- Private names a user gives other users.
CREATE TABLE contact (
    owner_id    INTEGER NOT NULL REFERENCES user (id),
    contact_id  INTEGER NOT NULL REFERENCES user (id),
    local_name  TEXT,
    PRIMARY KEY (owner_id, contact_id)
);
CREATE INDEX contact_contact ON contact (contact_id);

-- S3 objects and who owns them.
CREATE TABLE object (
    key           TEXT PRIMARY KEY,
    owner_id      INTEGER NOT NULL,
    kind          TEXT NOT NULL,           -- avatar, upload, presigned
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX object_owner ON object (owner_id);

-- Fixed-window counters for rate limits (functions are stateless, so the database holds them).
CREATE TABLE rate_limit (
    key           TEXT PRIMARY KEY,
    window_start  INTEGER NOT NULL,
    count         INTEGER NOT NULL
);
