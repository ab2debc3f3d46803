-- One-time keys already handed out (API.md §9, issue 24 item 6). A claimed id is remembered for as long as
-- the device keeps its identity, so a re-upload of the same id (a buggy or malicious client) is refused
-- instead of giving two peers sessions over one key. Forgotten when the identity changes (the old keys are
-- void then) and when the device is removed.
CREATE TABLE claimed_key (
    device_id  TEXT    NOT NULL,
    key_id     INTEGER NOT NULL,
    PRIMARY KEY (device_id, key_id)
) WITHOUT ROWID;
