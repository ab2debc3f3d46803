-- MLS handshake (API.md §15.3): the commit that created each epoch of a group, for members who were offline,
-- and the welcomes of added devices until they acknowledge them. Both are kept 30 days. A welcome is stored
-- once however many devices it adds; `mls_welcome_device` says who still has to fetch it.
CREATE TABLE mls_commit (
    id                INTEGER PRIMARY KEY,
    group_id          INTEGER NOT NULL,   -- mls_group.id
    epoch             INTEGER NOT NULL,   -- the epoch the commit created
    sender_id         INTEGER NOT NULL,
    sender_device_id  TEXT    NOT NULL,
    message           TEXT    NOT NULL,   -- the MLSMessage, base64
    created_at        INTEGER NOT NULL,
    UNIQUE (group_id, epoch)
);
CREATE INDEX mls_commit_created ON mls_commit (created_at);

CREATE TABLE mls_welcome (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id    INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    message     TEXT    NOT NULL,         -- the Welcome MLSMessage, base64
    created_at  INTEGER NOT NULL
);
CREATE INDEX mls_welcome_group ON mls_welcome (group_id);
CREATE INDEX mls_welcome_created ON mls_welcome (created_at);

CREATE TABLE mls_welcome_device (
    device_id   TEXT    NOT NULL,
    welcome_id  INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    PRIMARY KEY (device_id, welcome_id)
) WITHOUT ROWID;
CREATE INDEX mls_welcome_device_welcome ON mls_welcome_device (welcome_id);
