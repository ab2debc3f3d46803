-- MLS key packages (API.md §15.1): public objects, each signed with its device's signing key and checked on
-- upload. An ordinary package is handed out at most once: a claim stamps `claimed_at` instead of deleting the
-- row, so a re-upload of a package already handed out (a buggy or malicious client) is not stored again and
-- two groups never get the same init key. One last-resort package per device is handed out when no other is
-- left and never consumed. Rows past `not_after` are dead (their lifetime is over) and are dropped when the
-- device next uploads; all of a device's rows go with the device and when its identity keys change.
CREATE TABLE mls_key_package (
    id           INTEGER PRIMARY KEY,   -- upload order: claims take the oldest first
    device_id    TEXT    NOT NULL,
    ref          TEXT    NOT NULL,      -- KeyPackageRef (RFC 9420 §5.2), base64: one row per package
    package      TEXT    NOT NULL,      -- the MLSMessage, base64, as uploaded
    last_resort  INTEGER NOT NULL,
    not_after    INTEGER NOT NULL,      -- end of the leaf's lifetime, seconds since the Unix epoch
    claimed_at   INTEGER                -- milliseconds; null while it can still be handed out
);
CREATE UNIQUE INDEX mls_key_package_ref ON mls_key_package (ref);
CREATE INDEX mls_key_package_device ON mls_key_package (device_id, last_resort, claimed_at, id);
