//! The `object` table (uploaded files).

use libsql::Connection;

/// Records a new object `key` of `owner_id` (its `kind`, content type and size in bytes), created at `now_ms`.
pub async fn insert(
    conn: &Connection,
    key: &str,
    owner_id: i64,
    kind: &str,
    content_type: &str,
    size: i64,
    now_ms: i64,
) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO object (key, owner_id, kind, content_type, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        (key, owner_id, kind, content_type, size, now_ms),
    )
    .await?;
    Ok(())
}
