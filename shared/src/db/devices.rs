//! The `device` table: the devices a user signed in from (tokens are bound to one).

use super::Conn;
use crate::db::{all, column, exists};
use serde::Deserialize;

/// Records a new device, used now.
pub async fn insert(conn: &Conn, id: &str, user_id: i64, name: Option<&str>, now_ms: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO device (id, user_id, name, created_at, last_used_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        (id, user_id, name, now_ms),
    )
    .await?;
    Ok(())
}

/// How many devices `user_id` has.
pub async fn count_of_user(conn: &Conn, user_id: i64) -> Result<i64, libsql::Error> {
    let rows = conn.query("SELECT COUNT(*) FROM device WHERE user_id = ?1", [user_id]).await?;
    Ok(crate::db::value(rows).await?.unwrap_or(0))
}

/// The `limit` least recently used devices of `user_id` that never published keys (E2EE needs none of them).
pub async fn oldest_keyless(conn: &Conn, user_id: i64, limit: i64) -> Result<Vec<String>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id FROM device d WHERE user_id = ?1 \
               AND NOT EXISTS (SELECT 1 FROM device_key k WHERE k.device_id = d.id) \
             ORDER BY last_used_at, created_at LIMIT ?2",
            (user_id, limit),
        )
        .await?;
    crate::db::column(rows).await
}

/// Marks a device of `user_id` used now, renaming it when `name` is given; false if there is no such device.
pub async fn touch(
    conn: &Conn,
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
pub async fn belongs_to(conn: &Conn, id: &str, user_id: i64) -> Result<bool, libsql::Error> {
    exists(conn.query("SELECT 1 FROM device WHERE id = ?1 AND user_id = ?2", (id, user_id)).await?).await
}

/// A device a message's envelopes may be addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvelopeDevice {
    /// Its owner.
    pub user_id: i64,
    /// The device.
    pub id: String,
}

/// Every device of `sender` and `receiver`: the devices envelopes of their messages may address (index
/// `device_user`).
pub async fn envelope_devices(conn: &Conn, sender: i64, receiver: i64) -> Result<Vec<EnvelopeDevice>, libsql::Error> {
    all(conn.query("SELECT user_id, id FROM device WHERE user_id IN (?1, ?2)", (sender, receiver)).await?).await
}

/// The device ids of a user.
pub async fn ids_of_user(conn: &Conn, user_id: i64) -> Result<Vec<String>, libsql::Error> {
    column(conn.query("SELECT id FROM device WHERE user_id = ?1", [user_id]).await?).await
}

/// Deletes one device row (its keys go first, [`crate::db::keys::delete_of_device`], and its envelopes are
/// purged after: [`delete_with_keys`]).
pub async fn delete(conn: &Conn, id: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM device WHERE id = ?1", [id]).await?;
    Ok(())
}

/// Deletes every device row of a user (account deletion).
pub async fn delete_of_user(conn: &Conn, user_id: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM device WHERE user_id = ?1", [user_id]).await?;
    Ok(())
}

/// Deletes device `device_id` of `user_id` with its keys, inside the caller's transaction. Its envelopes,
/// one per message it was sent, can be many: when there are any, a `purge_device` job removes them in
/// bounded steps after the commit ([`crate::bulk`]); nobody can read them meanwhile. Returns whether it
/// queued one.
pub async fn delete_with_keys(conn: &Conn, user_id: i64, device_id: &str, now_ms: i64) -> Result<bool, libsql::Error> {
    crate::db::keys::delete_of_device(conn, device_id).await?;
    // Its group leaves stop receiving at once; each group's next commit must remove them (API.md §15.6).
    crate::db::mls_groups::remove_device(conn, device_id).await?;
    delete(conn, device_id).await?;
    let envelopes =
        exists(conn.query("SELECT 1 FROM message_envelope WHERE device_id = ?1", [device_id]).await?).await?;
    if envelopes {
        crate::db::bulk::insert_device(conn, user_id, device_id, now_ms).await?;
    }
    Ok(envelopes)
}
