//! The end-to-end encryption key directory: `device_key` (identity and signed prekey per device),
//! `one_time_key` and the ids already handed out, `claimed_key`. Public keys only.

use super::Conn;
use crate::db::{all, first};
use serde::Deserialize;

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

/// A device's key counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct KeyCounts {
    /// One-time keys left.
    pub one_time_key_count: i64,
    /// Current signed prekey id.
    pub signed_prekey_id: Option<i64>,
}

/// The identity keys of a device.
pub async fn identity(conn: &Conn, device_id: &str) -> Result<Option<Identity>, libsql::Error> {
    let rows = conn
        .query("SELECT identity_key, signing_key, identity_signature FROM device_key WHERE device_id = ?1", [device_id])
        .await?;
    first(rows).await
}

/// Stores a (new) identity for a device; its signed prekey is cleared (it was signed by the old identity).
pub async fn set_identity(
    conn: &Conn,
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

/// Deletes every one-time key of a device and forgets which ids were claimed (a new identity invalidates
/// them, and its keys may reuse the ids).
pub async fn delete_one_time_keys(conn: &Conn, device_id: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM one_time_key WHERE device_id = ?1", [device_id]).await?;
    conn.execute("DELETE FROM claimed_key WHERE device_id = ?1", [device_id]).await?;
    Ok(())
}

/// How many one-time keys a device has left, and its signed prekey id.
pub async fn counts(conn: &Conn, device_id: &str) -> Result<KeyCounts, libsql::Error> {
    let rows = conn
        .query(
            "SELECT (SELECT COUNT(*) FROM one_time_key WHERE device_id = ?1) AS one_time_key_count, \
             (SELECT spk_id FROM device_key WHERE device_id = ?1) AS signed_prekey_id",
            [device_id],
        )
        .await?;
    first(rows).await?.ok_or(libsql::Error::QueryReturnedNoRows)
}

/// Deletes a device's one-time keys, claimed ids and identity (device removal, inside the caller's
/// transaction).
pub async fn delete_of_device(conn: &Conn, device_id: &str) -> Result<(), libsql::Error> {
    delete_one_time_keys(conn, device_id).await?;
    crate::db::mls::delete_of_device(conn, device_id).await?;
    conn.execute("DELETE FROM device_key WHERE device_id = ?1", [device_id]).await?;
    Ok(())
}

/// Replaces the signed prekey of `device_id` (canonical base64 public key and signature).
pub async fn set_signed_prekey(
    conn: &Conn,
    device_id: &str,
    key_id: u32,
    public_key: &str,
    signature: &str,
    now_ms: i64,
) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE device_key SET spk_id = ?2, spk_public = ?3, spk_signature = ?4, updated_at = ?5 WHERE device_id = ?1",
        (device_id, key_id, public_key, signature, now_ms),
    )
    .await?;
    Ok(())
}

/// What one-time key id `key_id` of `device_id` stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyIdUse {
    /// Never used (or forgotten with the identity that used it).
    Free,
    /// An unclaimed key with this public key.
    Stored(String),
    /// Handed out already: the id cannot be used again under this identity.
    Claimed,
}

/// What one-time key id `key_id` of `device_id` stands for, in one statement.
pub async fn key_id_use(conn: &Conn, device_id: &str, key_id: u32) -> Result<KeyIdUse, libsql::Error> {
    #[derive(Deserialize)]
    struct Row {
        stored: Option<String>,
        claimed: bool,
    }
    let rows = conn
        .query(
            "SELECT (SELECT public_key FROM one_time_key WHERE device_id = ?1 AND key_id = ?2) AS stored, \
             EXISTS (SELECT 1 FROM claimed_key WHERE device_id = ?1 AND key_id = ?2) AS claimed",
            (device_id, key_id),
        )
        .await?;
    let row: Row = first(rows).await?.ok_or(libsql::Error::QueryReturnedNoRows)?;
    Ok(match (row.stored, row.claimed) {
        (Some(public), _) => KeyIdUse::Stored(public),
        (None, true) => KeyIdUse::Claimed,
        (None, false) => KeyIdUse::Free,
    })
}

/// Stores one-time key `key_id` of `device_id`.
pub async fn insert_one_time_key(
    conn: &Conn,
    device_id: &str,
    key_id: u32,
    public_key: &str,
) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO one_time_key (device_id, key_id, public_key) VALUES (?1, ?2, ?3)",
        (device_id, key_id, public_key),
    )
    .await?;
    Ok(())
}

/// A device that uploaded identity keys, as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeviceKeys {
    /// Device id.
    pub device_id: String,
    /// Its name.
    pub device_name: Option<String>,
    /// Curve25519 identity key, base64.
    pub identity_key: String,
    /// Ed25519 key, base64.
    pub signing_key: String,
    /// Identity signature, base64.
    pub identity_signature: String,
    /// Epoch ms the device was created.
    pub created_at: i64,
}

/// The devices of `user_id` that uploaded identity keys, oldest first.
pub async fn devices_with_keys(conn: &Conn, user_id: i64) -> Result<Vec<DeviceKeys>, libsql::Error> {
    all(conn
        .query(
            "SELECT d.id AS device_id, d.name AS device_name, k.identity_key, k.signing_key, k.identity_signature, \
             d.created_at FROM device d JOIN device_key k ON k.device_id = d.id WHERE d.user_id = ?1 \
             ORDER BY d.created_at, d.id",
            [user_id],
        )
        .await?)
    .await
}

/// A device whose keys can be claimed: identity and signed prekey.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claimable {
    /// Device id.
    pub device_id: String,
    /// Curve25519 identity key, base64.
    pub identity_key: String,
    /// Ed25519 key, base64.
    pub signing_key: String,
    /// Identity signature, base64.
    pub identity_signature: String,
    /// Signed prekey id.
    pub spk_id: u32,
    /// Signed prekey, base64.
    pub spk_public: String,
    /// Signed prekey signature, base64.
    pub spk_signature: String,
}

/// The devices of `user_id` with a signed prekey, by device id.
pub async fn claimable_devices(conn: &Conn, user_id: i64) -> Result<Vec<Claimable>, libsql::Error> {
    all(conn
        .query(
            "SELECT device_id, identity_key, signing_key, identity_signature, spk_id, spk_public, spk_signature \
             FROM device_key WHERE user_id = ?1 AND spk_id IS NOT NULL ORDER BY device_id",
            [user_id],
        )
        .await?)
    .await
}

/// A one-time key taken from the directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OneTimeKey {
    /// Key id.
    pub key_id: u32,
    /// Curve25519 public key, base64.
    pub public_key: String,
}

/// Removes and returns the lowest-id one-time key of `device_id`, in one statement, so concurrent claims
/// never receive the same key, and remembers its id as claimed; `None` when none is left. Run it inside the
/// claim's write transaction, so the key and its claimed id commit together.
pub async fn take_one_time_key(conn: &Conn, device_id: &str) -> Result<Option<OneTimeKey>, libsql::Error> {
    let taken: Option<OneTimeKey> = first(
        conn.query(
            "DELETE FROM one_time_key WHERE rowid = (SELECT rowid FROM one_time_key WHERE device_id = ?1 \
             ORDER BY key_id LIMIT 1) RETURNING key_id, public_key",
            [device_id],
        )
        .await?,
    )
    .await?;
    if let Some(key) = &taken {
        conn.execute(
            "INSERT INTO claimed_key (device_id, key_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            (device_id, key.key_id),
        )
        .await?;
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{devices, users};

    #[tokio::test]
    async fn claimed_ids_are_remembered_until_the_identity_or_the_device_goes() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&format!("file:{}", dir.path().join("k.db").display()), None).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        let conn = db.conn().await.unwrap();
        let new = users::NewUser {
            phone: "79990000002",
            first_name: "Kim",
            last_name: "",
            search_text: "kim",
            password_hash: "h",
            public_key: None,
            created_at: 1,
        };
        let user = users::insert(&conn, new).await.unwrap();
        let identity = Identity { identity_key: "i".into(), signing_key: "s".into(), identity_signature: "sig".into() };
        for device in ["d1", "d2"] {
            devices::insert(&conn, device, user, None, 1).await.unwrap();
            set_identity(&conn, device, user, &identity, 1).await.unwrap();
            insert_one_time_key(&conn, device, 7, "k7").await.unwrap();
            insert_one_time_key(&conn, device, 3, "k3").await.unwrap();
        }
        let taken = take_one_time_key(&conn, "d1").await.unwrap().unwrap();
        assert_eq!((taken.key_id, taken.public_key.as_str()), (3, "k3"), "the lowest id first");
        assert_eq!(key_id_use(&conn, "d1", 3).await.unwrap(), KeyIdUse::Claimed);
        assert_eq!(key_id_use(&conn, "d1", 7).await.unwrap(), KeyIdUse::Stored("k7".into()));
        assert_eq!(key_id_use(&conn, "d1", 8).await.unwrap(), KeyIdUse::Free);
        assert_eq!(key_id_use(&conn, "d2", 3).await.unwrap(), KeyIdUse::Stored("k3".into()), "per device");
        take_one_time_key(&conn, "d2").await.unwrap().unwrap();
        // A new identity forgets the claims of its device only.
        delete_one_time_keys(&conn, "d1").await.unwrap();
        assert_eq!(key_id_use(&conn, "d1", 3).await.unwrap(), KeyIdUse::Free);
        assert_eq!(key_id_use(&conn, "d2", 3).await.unwrap(), KeyIdUse::Claimed);
        // Removing the device leaves no row behind.
        devices::delete_with_keys(&conn, user, "d2", 1).await.unwrap();
        let left: i64 =
            crate::db::value(conn.query("SELECT COUNT(*) FROM claimed_key", ()).await.unwrap()).await.unwrap().unwrap();
        assert_eq!(left, 0);
    }
}
