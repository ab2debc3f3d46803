//! The `object` table: S3 objects, their owner and kind (see [`crate::files::kind`]).

use super::Conn;
use crate::db::{all, column, exists, value};
use serde::Deserialize;

/// An object the clean-up looks at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectKind {
    /// S3 key (selected under another name: libSQL's client rewrites the keyword `key` to `KEY`, and a
    /// remote server then names the column so).
    #[serde(rename = "s3_key")]
    pub key: String,
    /// Its kind.
    pub kind: String,
}

/// A new object row.
#[derive(Debug, Clone, Copy)]
pub struct NewObject<'a> {
    /// S3 key.
    pub key: &'a str,
    /// Owner.
    pub owner_id: i64,
    /// Kind (`avatar`, `upload`, `presigned`).
    pub kind: &'a str,
    /// MIME type.
    pub content_type: &'a str,
    /// Bytes.
    pub size: i64,
    /// Epoch ms.
    pub created_at: i64,
}

/// Records an object.
pub async fn insert(conn: &Conn, new: NewObject<'_>) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO object (key, owner_id, kind, content_type, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        (new.key, new.owner_id, new.kind, new.content_type, new.size, new.created_at),
    )
    .await?;
    Ok(())
}

/// The kind of the object `key`, `None` if there is no row.
pub async fn kind_of(conn: &Conn, key: &str) -> Result<Option<String>, libsql::Error> {
    value(conn.query("SELECT kind FROM object WHERE key = ?1", [key]).await?).await
}

/// Whether `key` is a live upload or attachment of `owner`. Inside a write transaction that is about to
/// reference it, this re-check sees a concurrent clean-up's deletion mark.
pub async fn is_live_upload_of(conn: &Conn, owner: i64, key: &str) -> Result<bool, libsql::Error> {
    let rows = conn
        .query(
            "SELECT 1 FROM object WHERE key = ?1 AND owner_id = ?2 AND kind IN ('upload', 'presigned')",
            (key, owner),
        )
        .await?;
    exists(rows).await
}

/// Whether anything references `key`: a message, an avatar or a wallpaper (each through its partial index).
pub async fn is_referenced(conn: &Conn, key: &str) -> Result<bool, libsql::Error> {
    let rows = conn
        .query(
            "SELECT EXISTS (SELECT 1 FROM message WHERE media_key = ?1) \
             OR EXISTS (SELECT 1 FROM user WHERE avatar_key = ?1) \
             OR EXISTS (SELECT 1 FROM theme WHERE wallpaper_key = ?1)",
            [key],
        )
        .await?;
    Ok(value::<i64>(rows).await?.is_none_or(|v| v != 0))
}

/// Marks `key` deleted (pending S3 deletion), so no new reference can be made to it.
pub async fn mark_deleted(conn: &Conn, key: &str) -> Result<(), libsql::Error> {
    conn.execute("UPDATE object SET kind = 'deleted' WHERE key = ?1", [key]).await?;
    Ok(())
}

/// Marks every object of `owner` deleted (account deletion); the rows stay until S3 confirms.
pub async fn mark_deleted_of_owner(conn: &Conn, owner: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE object SET kind = 'deleted' WHERE owner_id = ?1", [owner]).await?;
    Ok(())
}

/// The keys of every object of `owner`.
pub async fn keys_of_owner(conn: &Conn, owner: i64) -> Result<Vec<String>, libsql::Error> {
    column(conn.query("SELECT key FROM object WHERE owner_id = ?1", [owner]).await?).await
}

/// Deletes the row of `key` after its S3 object is gone, unless the row was created at or after
/// `issued_after_ms`: a presigned PUT issued with it may still be valid and re-create the object, so the
/// row stays (marked `deleted`) for the clean-up to delete the object again once the PUT has expired.
/// Returns whether the row is gone.
pub async fn delete_settled(conn: &Conn, key: &str, issued_after_ms: i64) -> Result<bool, libsql::Error> {
    let deleted = conn.execute("DELETE FROM object WHERE key = ?1 AND created_at < ?2", (key, issued_after_ms)).await?;
    Ok(deleted > 0)
}

/// Which of `keys` have a row.
pub async fn with_rows(conn: &Conn, keys: &[&str]) -> Result<Vec<String>, libsql::Error> {
    let list = serde_json::to_string(keys).unwrap_or_else(|_| "[]".into());
    column(conn.query("SELECT key FROM object WHERE key IN (SELECT value FROM json_each(?1))", [list]).await?).await
}

/// One batch of clean-up candidates after `after_key` (key order): objects pending deletion, and objects
/// created before `cutoff_ms` that nothing references. Referenced objects are never selected, so however
/// many exist, orphans and failed deletions are always reached.
pub async fn cleanup_candidates(
    conn: &Conn,
    cutoff_ms: i64,
    after_key: &str,
    batch: i64,
) -> Result<Vec<ObjectKind>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT o.key AS s3_key, o.kind FROM object o \
             WHERE o.key > ?2 AND (o.kind = 'deleted' OR (o.created_at < ?1 \
               AND NOT EXISTS (SELECT 1 FROM message WHERE media_key = o.key) \
               AND NOT EXISTS (SELECT 1 FROM user WHERE avatar_key = o.key) \
               AND NOT EXISTS (SELECT 1 FROM theme WHERE wallpaper_key = o.key))) \
             ORDER BY o.key LIMIT ?3",
            (cutoff_ms, after_key, batch),
        )
        .await?;
    all(rows).await
}
