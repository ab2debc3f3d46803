//! The `rate_limit` table: fixed-window counters (functions are stateless, so the database holds them).

use super::Conn;
use serde::Deserialize;

use crate::db::first;

/// A counter's current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Window {
    /// Events counted in the window.
    pub count: i64,
    /// Start of the window (epoch ms).
    pub window_start: i64,
}

/// Counts one event for `key` in one atomic statement if its window (`window_ms` long; a new one starts at
/// `now` when the old one has passed) holds fewer than `max` events. Returns the window after counting, or
/// `None` when it was full: then nothing was changed.
pub async fn hit_below(
    conn: &Conn,
    key: &str,
    now: i64,
    window_ms: i64,
    max: i64,
) -> Result<Option<Window>, libsql::Error> {
    // SET and WHERE see the old row values, so every CASE tests the old window.
    let rows = conn
        .query(
            "INSERT INTO rate_limit (key, window_start, count) VALUES (?1, ?2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN window_start <= ?2 - ?3 THEN 1 ELSE count + 1 END, \
               window_start = CASE WHEN window_start <= ?2 - ?3 THEN ?2 ELSE window_start END \
             WHERE window_start <= ?2 - ?3 OR count < ?4 \
             RETURNING count, window_start",
            (key, now, window_ms, max),
        )
        .await?;
    first(rows).await
}

/// The window of `key` if it is still running at `now`.
pub async fn current(conn: &Conn, key: &str, now: i64, window_ms: i64) -> Result<Option<Window>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT count, window_start FROM rate_limit WHERE key = ?1 AND window_start > ?2 - ?3",
            (key, now, window_ms),
        )
        .await?;
    first(rows).await
}

/// Deletes the counter of `key`.
pub async fn clear(conn: &Conn, key: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM rate_limit WHERE key = ?1", [key]).await?;
    Ok(())
}

/// Deletes counters whose window started before `before_ms`.
pub async fn delete_expired(conn: &Conn, before_ms: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM rate_limit WHERE window_start < ?1", [before_ms]).await?;
    Ok(())
}
