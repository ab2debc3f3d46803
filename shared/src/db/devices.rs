//! The `device` table.

use libsql::Connection;
use serde::Deserialize;

use crate::db::row::collect;

/// Creates device `id` of `user_id`, created and last used at `now`.
pub async fn insert(
    conn: &Connection,
    id: &str,
    user_id: i64,
    name: Option<&str>,
    now: i64,
) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO device (id, user_id, name, created_at, last_used_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        (id, user_id, name, now),
    )
    .await?;
    Ok(())
}

/// Marks device `id` of `user_id` used at `now` and renames it when `name` is given; false when the user
/// has no such device.
pub async fn reuse(
    conn: &Connection,
    id: &str,
    user_id: i64,
    now: i64,
    name: Option<&str>,
) -> Result<bool, libsql::Error> {
    let updated = conn
        .execute(
            "UPDATE device SET last_used_at = ?3, name = COALESCE(?4, name) WHERE id = ?1 AND user_id = ?2",
            (id, user_id, now, name),
        )
        .await?;
    Ok(updated > 0)
}

/// The ids of every device of `user_id`.
pub async fn ids_of_user(conn: &Connection, user_id: i64) -> Result<Vec<String>, libsql::Error> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    let rows = conn.query("SELECT id FROM device WHERE user_id = ?1", [user_id]).await?;
    Ok(collect::<Id>(rows).await?.into_iter().map(|r| r.id).collect())
}

/// Deletes device `device_id` with its keys and envelopes (run it inside the caller's transaction).
pub async fn delete_with_keys(conn: &Connection, device_id: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM one_time_key WHERE device_id = ?1", [device_id]).await?;
    conn.execute("DELETE FROM device_key WHERE device_id = ?1", [device_id]).await?;
    conn.execute("DELETE FROM message_envelope WHERE device_id = ?1", [device_id]).await?;
    conn.execute("DELETE FROM device WHERE id = ?1", [device_id]).await?;
    Ok(())
}
