-- MLS groups (API.md §15.2): the Delivery Service's routing table. The server holds no group secret: a group
-- is its MLS id, an optional name, the epoch commits are ordered by, and the member devices that events and
-- messages are routed to. Membership crypto is the clients' job.
CREATE TABLE mls_group (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
    group_id          TEXT    NOT NULL UNIQUE,            -- the MLS group id, base64
    name              TEXT,
    epoch             INTEGER NOT NULL,
    created_by        INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,                   -- milliseconds
    last_activity_at  INTEGER                             -- milliseconds of the last message or commit
);

CREATE TABLE mls_member (
    group_id      INTEGER NOT NULL,                       -- mls_group.id
    device_id     TEXT    NOT NULL,
    user_id       INTEGER NOT NULL,
    role          TEXT    NOT NULL,                       -- 'admin' | 'member'
    joined_epoch  INTEGER NOT NULL,
    PRIMARY KEY (group_id, device_id)
) WITHOUT ROWID;
CREATE INDEX mls_member_user ON mls_member (user_id, group_id);
CREATE INDEX mls_member_device ON mls_member (device_id);

-- Leaves that left the routing table (their user left, or the device or account was deleted) and that the
-- group's next commit must remove from its tree.
CREATE TABLE mls_pending_removal (
    group_id   INTEGER NOT NULL,
    device_id  TEXT    NOT NULL,
    user_id    INTEGER NOT NULL,
    PRIMARY KEY (group_id, device_id)
) WITHOUT ROWID;
