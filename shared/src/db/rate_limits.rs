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

/// Counts one event for `key` in one atomic statement: a new window starts at `now` when the old one
/// (`window_ms` long) has passed. Returns the window after counting.
pub async fn hit(conn: &Conn, key: &str, now: i64, window_ms: i64) -> Result<Window, libsql::Error> {
    // SET sees the old row values, so both CASEs test the old window.
    let rows = conn
        .query(
            "INSERT INTO rate_limit (key, window_start, count) VALUES (?1, ?2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN window_start <= ?2 - ?3 THEN 1 ELSE count + 1 END, \
               window_start = CASE WHEN window_start <= ?2 - ?3 THEN ?2 ELSE window_start END \
             RETURNING count, window_start",
            (key, now, window_ms),
        )
        .await?;
    first(rows).await?.ok_or(libsql::Error::QueryReturnedNoRows)
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
