//! The end-to-end encryption key directory: `device_key` (identity and signed prekey per device) and
//! `one_time_key`. Public keys only.

use libsql::Connection;
use serde::Deserialize;

use crate::db::{all, first, value};

/// A device's identity keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Identity {
    /// Curve25519, base64.
    pub identity_key: String,
    /// Ed25519, base64.
    pub signing_key: String,
    /// Signature over the identity key.
    pub identity_signature: String,
}

/// A listed device with its identity (`GET /users/{id}/devices`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeviceIdentity {
    /// Device id.
    pub id: String,
    /// Device name (shown to its owner only).
    pub name: Option<String>,
    /// Curve25519, base64.
    pub identity_key: String,
    /// Ed25519, base64.
    pub signing_key: String,
    /// Signature over the identity key.
    pub identity_signature: String,
    /// Epoch ms.
    pub created_at: i64,
}

/// A device's claimable bundle without its one-time key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Bundle {
    /// Device id.
    pub device_id: String,
    /// Curve25519, base64.
    pub identity_key: String,
    /// Ed25519, base64.
    pub signing_key: String,
    /// Signature over the identity key.
    pub identity_signature: String,
    /// Signed prekey id.
    pub spk_id: i64,
    /// Signed prekey, base64.
    pub spk_public: String,
    /// Its signature.
    pub spk_signature: String,
}

/// A claimed one-time key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OneTimeKey {
    /// Key id.
    pub key_id: i64,
    /// Public key, base64.
    pub public_key: String,
}

/// A device's key counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct KeyCounts {
    /// One-time keys left.
    pub one_time_key_count: i64,
    /// Current signed prekey id.
    pub signed_prekey_id: Option<i64>,
}

/// The identity keys of a device.
pub async fn identity(conn: &Connection, device_id: &str) -> Result<Option<Identity>, libsql::Error> {
    let rows = conn
        .query("SELECT identity_key, signing_key, identity_signature FROM device_key WHERE device_id = ?1", [device_id])
        .await?;
    first(rows).await
}

/// Stores a (new) identity for a device; its signed prekey is cleared (it was signed by the old identity).
pub async fn set_identity(
    conn: &Connection,
    device_id: &str,
    user_id: i64,
    identity: &Identity,
    now_ms: i64,
) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO device_key (device_id, user_id, identity_key, signing_key, identity_signature, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (device_id) DO UPDATE SET identity_key = excluded.identity_key, \
         signing_key = excluded.signing_key, identity_signature = excluded.identity_signature, \
         spk_id = NULL, spk_public = NULL, spk_signature = NULL, updated_at = excluded.updated_at",
        (
            device_id,
            user_id,
            identity.identity_key.as_str(),
            identity.signing_key.as_str(),
            identity.identity_signature.as_str(),
            now_ms,
        ),
    )
    .await?;
    Ok(())
}

/// Replaces a device's signed prekey.
pub async fn set_signed_prekey(
    conn: &Connection,
    device_id: &str,
    spk_id: i64,
    public_key: &str,
    signature: &str,
    now_ms: i64,
) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE device_key SET spk_id = ?2, spk_public = ?3, spk_signature = ?4, updated_at = ?5 WHERE device_id = ?1",
        (device_id, spk_id, public_key, signature, now_ms),
    )
    .await?;
    Ok(())
}

/// The public key stored under one-time key id `key_id` of a device.
pub async fn one_time_key(conn: &Connection, device_id: &str, key_id: i64) -> Result<Option<String>, libsql::Error> {
    let rows = conn
        .query("SELECT public_key FROM one_time_key WHERE device_id = ?1 AND key_id = ?2", (device_id, key_id))
        .await?;
    value(rows).await
}

/// Stores a one-time key.
pub async fn insert_one_time_key(
    conn: &Connection,
    device_id: &str,
    key_id: i64,
    public_key: &str,
) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO one_time_key (device_id, key_id, public_key) VALUES (?1, ?2, ?3)",
        (device_id, key_id, public_key),
    )
    .await?;
    Ok(())
}

/// Deletes every one-time key of a device (a new identity invalidates them).
pub async fn delete_one_time_keys(conn: &Connection, device_id: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM one_time_key WHERE device_id = ?1", [device_id]).await?;
    Ok(())
}

/// How many one-time keys a device has left, and its signed prekey id.
pub async fn counts(conn: &Connection, device_id: &str) -> Result<KeyCounts, libsql::Error> {
    let rows = conn
        .query(
            "SELECT (SELECT COUNT(*) FROM one_time_key WHERE device_id = ?1) AS one_time_key_count, \
             (SELECT spk_id FROM device_key WHERE device_id = ?1) AS signed_prekey_id",
            [device_id],
        )
        .await?;
    first(rows).await?.ok_or(libsql::Error::QueryReturnedNoRows)
}

/// The devices of a user that have keys, with their identities, oldest first.
pub async fn devices_of_user(conn: &Connection, user_id: i64) -> Result<Vec<DeviceIdentity>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT d.id, d.name, k.identity_key, k.signing_key, k.identity_signature, d.created_at \
             FROM device d JOIN device_key k ON k.device_id = d.id WHERE d.user_id = ?1 ORDER BY d.created_at, d.id",
            [user_id],
        )
        .await?;
    all(rows).await
}

/// The claimable bundles (devices with a signed prekey) of a user, by device id.
pub async fn bundles_of_user(conn: &Connection, user_id: i64) -> Result<Vec<Bundle>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT device_id, identity_key, signing_key, identity_signature, spk_id, spk_public, spk_signature \
             FROM device_key WHERE user_id = ?1 AND spk_id IS NOT NULL ORDER BY device_id",
            [user_id],
        )
        .await?;
    all(rows).await
}

/// Claims a device's lowest one-time key: one statement picks and removes it, so concurrent claims never
/// receive the same key. `None` when the device has none left (the signed prekey is the fallback).
pub async fn claim_one_time_key(conn: &Connection, device_id: &str) -> Result<Option<OneTimeKey>, libsql::Error> {
    let rows = conn
        .query(
            "DELETE FROM one_time_key WHERE rowid = (SELECT rowid FROM one_time_key WHERE device_id = ?1 \
             ORDER BY key_id LIMIT 1) RETURNING key_id, public_key",
            [device_id],
        )
        .await?;
    first(rows).await
}

/// Deletes a device's one-time keys and identity (device removal, inside the caller's transaction).
pub async fn delete_of_device(conn: &Connection, device_id: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM one_time_key WHERE device_id = ?1", [device_id]).await?;
    conn.execute("DELETE FROM device_key WHERE device_id = ?1", [device_id]).await?;
    Ok(())
}
