-- The operator panel (API.md §11.2): its sessions, its audit log, and an index for the dashboard's
-- messages-per-day counts.

-- A panel session. The cookie carries a random id and its HMAC; only a SHA-256 of the id is stored, so a
-- copy of the database opens no session. Sessions end after 8 h without a request, at logout, and when the
-- account stops being an operator (every request re-checks the account).
CREATE TABLE admin_session (
    id_hash       TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES user (id),
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);
CREATE INDEX admin_session_user ON admin_session (user_id);

-- Every operator action: who (NULL: the command-line operator step), what, on what, when.
CREATE TABLE admin_audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    admin_id     INTEGER,
    action_name  TEXT    NOT NULL,   -- not `action`: sqld reports a column of that name as `ACTION`
    target_kind  TEXT    NOT NULL,   -- user | message
    target_id    INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);

-- Messages per day for the dashboard: a range count instead of a scan of the whole history.
CREATE INDEX message_created ON message (created_at);
