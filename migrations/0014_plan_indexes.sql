-- Two indexes the query-plan test (shared/src/db/plans.rs) found missing.

-- The occasional clean-up of expired rate-limit windows runs inside the transaction that counts an event
-- (for a message, the send's own, in the database writer's turn); without this it read the whole table,
-- one row per (scope, subject) seen in the last day.
CREATE INDEX rate_limit_window ON rate_limit (window_start);

-- The groups in which a device is a pending removal (when the device is removed); the primary key leads
-- with the group.
CREATE INDEX mls_pending_removal_device ON mls_pending_removal (device_id);
