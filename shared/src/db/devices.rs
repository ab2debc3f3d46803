//! The `device` table: the devices a user signed in from (tokens are bound to one).

use crate::db::{all, column, exists};
use libsql::Connection;
use serde::Deserialize;

/// A device of a user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeviceOwner {
    /// Its user.
    pub user_id: i64,
    /// Device id.
    pub id: String,
}

/// Records a new device, used now.
pub async fn insert(
    conn: &Connection,
    id: &str,
    user_id: i64,
    name: Option<&str>,
    now_ms: i64,
) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO device (id, user_id, name, created_at, last_used_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        (id, user_id, name, now_ms),
    )
    .await?;
    Ok(())
}

/// Marks a device of `user_id` used now, renaming it when `name` is given; false if there is no such device.
pub async fn touch(
    conn: &Connection,
    id: &str,
    user_id: i64,
    name: Option<&str>,
    now_ms: i64,
) -> Result<bool, libsql::Error> {
    let updated = conn
        .execute(
            "UPDATE device SET last_used_at = ?3, name = COALESCE(?4, name) WHERE id = ?1 AND user_id = ?2",
            (id, user_id, now_ms, name),
        )
        .await?;
    Ok(updated > 0)
}

/// Whether device `id` belongs to `user_id`.
pub async fn belongs_to(conn: &Connection, id: &str, user_id: i64) -> Result<bool, libsql::Error> {
    exists(conn.query("SELECT 1 FROM device WHERE id = ?1 AND user_id = ?2", (id, user_id)).await?).await
}

/// The devices of two users (a sender and a receiver), for addressing envelopes (`device_user`).
pub async fn of_pair(conn: &Connection, a: i64, b: i64) -> Result<Vec<DeviceOwner>, libsql::Error> {
    all(conn.query("SELECT user_id, id FROM device WHERE user_id IN (?1, ?2)", (a, b)).await?).await
}

/// The device ids of a user.
pub async fn ids_of_user(conn: &Connection, user_id: i64) -> Result<Vec<String>, libsql::Error> {
    column(conn.query("SELECT id FROM device WHERE user_id = ?1", [user_id]).await?).await
}

/// Deletes one device row (its keys and envelopes go first: [`crate::db::keys::delete_of_device`],
/// [`crate::db::messages::delete_envelopes_of_device`]).
pub async fn delete(conn: &Connection, id: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM device WHERE id = ?1", [id]).await?;
    Ok(())
}

/// Deletes every device row of a user (account deletion).
pub async fn delete_of_user(conn: &Connection, user_id: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM device WHERE user_id = ?1", [user_id]).await?;
    Ok(())
}

/// Deletes device `device_id` with its keys and envelopes (run it inside the caller's transaction).
pub async fn delete_with_keys(conn: &Connection, device_id: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM one_time_key WHERE device_id = ?1", [device_id]).await?;
    conn.execute("DELETE FROM device_key WHERE device_id = ?1", [device_id]).await?;
    conn.execute("DELETE FROM message_envelope WHERE device_id = ?1", [device_id]).await?;
    conn.execute("DELETE FROM device WHERE id = ?1", [device_id]).await?;
    Ok(())
}
