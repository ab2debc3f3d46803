-- Work on many rows (clearing a chat, purging what a deleted account or device leaves behind) runs in write
-- transactions of at most 1 000 rows, so the one database writer is never held for long (issue 24 item 3).
-- A job row is written in the transaction that decides the work and deleted with its last batch; each batch
-- moves `cursor` (the last message id done) in its own transaction. A process that dies in between leaves
-- the row, and the next run of the clean-up (or the same request again) finishes it: the work is never left
-- half-done.
CREATE TABLE bulk_job (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,   -- hide_chat | wipe_chat | purge_chat | purge_device
    user_id     INTEGER NOT NULL,   -- who asked (the deleted account for purge_chat, the owner for purge_device)
    peer_id     INTEGER,            -- the conversation's other side (the chat kinds)
    device_id   TEXT,               -- purge_device
    up_to_id    INTEGER NOT NULL DEFAULT 0,  -- the newest message id the job covers
    cursor      INTEGER NOT NULL DEFAULT 0,  -- every message id up to this one is done
    done_count  INTEGER NOT NULL DEFAULT 0,  -- rows changed so far (the answer's `deleted_count`)
    created_at  INTEGER NOT NULL
);
CREATE INDEX bulk_job_user ON bulk_job (user_id, kind, peer_id);
