//! MLS key packages (API.md §15.1): `mls_key_package`, public objects only. Times: `not_after` in seconds
//! (the MLS lifetime's unit), `claimed_at` in milliseconds like every other stamp.

use super::Conn;
use crate::db::{all, first, id_list, int_bool, value};
use serde::Deserialize;

/// A checked key package to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeyPackage<'a> {
    /// Its `KeyPackageRef`, base64.
    pub key_ref: &'a str,
    /// The `MLSMessage`, base64.
    pub package: &'a str,
    /// End of its lifetime, seconds since the Unix epoch.
    pub not_after: i64,
}

/// Drops the device's packages whose lifetime is over, claimed or not: nobody can use them any more, and a
/// re-upload of one fails its lifetime check.
pub async fn delete_dead(conn: &Conn, device_id: &str, now_s: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM mls_key_package WHERE device_id = ?1 AND not_after <= ?2", (device_id, now_s)).await?;
    Ok(())
}

/// Stores an ordinary package; false when a package with the same ref is already stored (or was handed out).
pub async fn insert(conn: &Conn, device_id: &str, p: &NewKeyPackage<'_>) -> Result<bool, libsql::Error> {
    insert_kind(conn, device_id, p, false).await
}

async fn insert_kind(
    conn: &Conn,
    device_id: &str,
    p: &NewKeyPackage<'_>,
    last_resort: bool,
) -> Result<bool, libsql::Error> {
    let inserted = conn
        .execute(
            "INSERT INTO mls_key_package (device_id, ref, package, last_resort, not_after) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (ref) DO NOTHING",
            (device_id, p.key_ref, p.package, i64::from(last_resort), p.not_after),
        )
        .await?;
    Ok(inserted > 0)
}

/// Makes `p` the device's last-resort package in place of the previous one; false when its ref is stored as
/// an ordinary package (then nothing changes, inside the caller's transaction the delete is rolled back with it).
pub async fn replace_last_resort(conn: &Conn, device_id: &str, p: &NewKeyPackage<'_>) -> Result<bool, libsql::Error> {
    conn.execute("DELETE FROM mls_key_package WHERE device_id = ?1 AND last_resort = 1", [device_id]).await?;
    insert_kind(conn, device_id, p, true).await
}

/// A device's usable packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Counts {
    /// Unclaimed ordinary packages whose lifetime is not over.
    pub key_package_count: i64,
    /// Whether a last-resort package whose lifetime is not over is stored.
    #[serde(deserialize_with = "int_bool")]
    pub has_last_resort: bool,
}

/// The usable packages of `device_id` at `now_s`.
pub async fn counts(conn: &Conn, device_id: &str, now_s: i64) -> Result<Counts, libsql::Error> {
    let rows = conn
        .query(
            "SELECT (SELECT COUNT(*) FROM mls_key_package WHERE device_id = ?1 AND last_resort = 0 \
               AND claimed_at IS NULL AND not_after > ?2) AS key_package_count, \
             EXISTS (SELECT 1 FROM mls_key_package WHERE device_id = ?1 AND last_resort = 1 AND not_after > ?2) \
               AS has_last_resort",
            (device_id, now_s),
        )
        .await?;
    first(rows).await?.ok_or(libsql::Error::QueryReturnedNoRows)
}

/// A device that may have a package to hand out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Holder {
    /// The owner.
    pub user_id: i64,
    /// The device.
    pub device_id: String,
}

/// The devices of `user_ids` with any stored package, by user then device id.
pub async fn holders(conn: &Conn, user_ids: &[i64]) -> Result<Vec<Holder>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT d.user_id, d.id AS device_id FROM device d \
             WHERE d.user_id IN (SELECT value FROM json_each(?1)) \
               AND EXISTS (SELECT 1 FROM mls_key_package p WHERE p.device_id = d.id) \
             ORDER BY d.user_id, d.id",
            [id_list(user_ids)],
        )
        .await?;
    all(rows).await
}

/// How many of `user_ids` (distinct) are live accounts.
pub async fn live_count(conn: &Conn, user_ids: &[i64]) -> Result<i64, libsql::Error> {
    let rows = conn
        .query(
            "SELECT COUNT(*) FROM user WHERE id IN (SELECT value FROM json_each(?1)) AND is_deleted = 0",
            [id_list(user_ids)],
        )
        .await?;
    Ok(value(rows).await?.unwrap_or(0))
}

/// A package handed out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Taken {
    /// The `MLSMessage`, base64.
    pub package: String,
    /// Whether it is the last-resort package (not consumed).
    #[serde(deserialize_with = "int_bool")]
    pub last_resort: bool,
}

/// Takes the device's oldest usable ordinary package (stamped claimed at `now_ms`, never handed out again),
/// or, when none is left, reads its last-resort package; run it in a write transaction.
pub async fn take(conn: &Conn, device_id: &str, now_s: i64, now_ms: i64) -> Result<Option<Taken>, libsql::Error> {
    let rows = conn
        .query(
            "UPDATE mls_key_package SET claimed_at = ?3 WHERE id = (SELECT id FROM mls_key_package \
               WHERE device_id = ?1 AND last_resort = 0 AND claimed_at IS NULL AND not_after > ?2 ORDER BY id LIMIT 1) \
             RETURNING package, last_resort",
            (device_id, now_s, now_ms),
        )
        .await?;
    if let Some(taken) = first(rows).await? {
        return Ok(Some(taken));
    }
    last_resort(conn, device_id, now_s).await
}

/// The device's usable last-resort package, which claims never consume.
pub async fn last_resort(conn: &Conn, device_id: &str, now_s: i64) -> Result<Option<Taken>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT package, last_resort FROM mls_key_package \
             WHERE device_id = ?1 AND last_resort = 1 AND not_after > ?2",
            (device_id, now_s),
        )
        .await?;
    first(rows).await
}

/// Deletes every package of a device (the device is removed, or its identity keys changed and the packages
/// signed with the old signing key are void).
pub async fn delete_of_device(conn: &Conn, device_id: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM mls_key_package WHERE device_id = ?1", [device_id]).await?;
    Ok(())
}
