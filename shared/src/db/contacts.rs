//! The `contact` table: private names users give each other.

use libsql::Connection;

/// Stores (or replaces) `owner`'s local name for `contact`; `None` stores null.
pub async fn upsert(conn: &Connection, owner: i64, contact: i64, name: Option<&str>) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO contact (owner_id, contact_id, local_name) VALUES (?1, ?2, ?3) \
         ON CONFLICT (owner_id, contact_id) DO UPDATE SET local_name = excluded.local_name",
        (owner, contact, name),
    )
    .await?;
    Ok(())
}

/// Removes `owner`'s local name for `contact` (nothing when there is none).
pub async fn delete(conn: &Connection, owner: i64, contact: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM contact WHERE owner_id = ?1 AND contact_id = ?2", (owner, contact)).await?;
    Ok(())
}
