//! The `keys` function: the end-to-end encryption key directory (API.md §9). The server stores public keys
//! only, verifies their signatures strictly and hands each one-time key out at most once.

use ed25519_dalek::{Signature, VerifyingKey};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::auth::{AuthUser, authenticate_request};
use shared::http::{Matched, Params, match_route, no_content, ok};
use shared::keys::{broadcast_key_change, decode, delete_device_rows};
use shared::{ApiError, AppState, ratelimit, realtime};

/// Name of this function in `template.yaml` and in the routing table.
pub const FUNCTION: &str = "keys";

/// Most unclaimed one-time keys per device, and per request.
pub const MAX_ONE_TIME_KEYS: usize = 100;

/// Signature prefixes of API.md §9.2.
const ID_PREFIX: &[u8] = b"MSGR-ID-V1";
const SPK_PREFIX: &[u8] = b"MSGR-SPK-V1";

/// Serves one request; every error becomes its contract response.
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    dispatch(state, req).await.unwrap_or_else(ApiError::into_response)
}

async fn dispatch(state: &AppState, req: Request) -> Result<Response<Body>, ApiError> {
    let m = match_route(FUNCTION, req.method(), req.uri().path())?;
    let user = authenticate_request(state, &req).await?;
    match m.route.op {
        "upload_keys" => upload_keys(state, &user, &Params::body(&req)?).await,
        "count_keys" => count_keys(state, &user).await,
        "list_devices" => list_devices(state, &user, &m).await,
        "claim_keys" => claim_keys(state, &user, &Params::body(&req)?).await,
        "delete_device" => delete_device(state, &user, &m).await,
        "exchange_key" => exchange_key(state, &Params::query_and_body(&req)?).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

fn invalid_signature() -> ApiError {
    ApiError::client(400, "invalid_signature", "Key signature is invalid")
}

/// A base64 field of exactly `len` bytes; anything else is a 422. Returned re-encoded (canonical).
fn key_field(value: Option<&Value>, field: &str, len: usize) -> Result<Vec<u8>, ApiError> {
    value
        .and_then(Value::as_str)
        .and_then(decode)
        .filter(|b| b.len() == len)
        .ok_or_else(|| ApiError::field(field, format!("must be {len} bytes in standard base64")))
}

fn key_id(value: Option<&Value>, field: &str) -> Result<u32, ApiError> {
    value
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| ApiError::field(field, "must be an unsigned 32-bit integer"))
}

/// Strict Ed25519 verification: canonical point and signature encodings, no small-order keys.
fn verify(signing_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), ApiError> {
    let key: [u8; 32] = signing_key.try_into().map_err(|_| invalid_signature())?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| invalid_signature())?;
    if key.is_weak() {
        return Err(invalid_signature());
    }
    let sig = Signature::from_slice(signature).map_err(|_| invalid_signature())?;
    key.verify_strict(message, &sig).map_err(|_| invalid_signature())
}

struct Identity {
    identity_key: String,
    signing_key: String,
    signature: String,
}

struct SignedPrekey {
    key_id: u32,
    public_key: String,
    signature: String,
}

/// `PUT /keys`
/// - acts on the token's device; the first upload needs the identity part and a signed prekey
/// - signatures verified strictly; identical re-uploads are no-ops; a new identity discards the old keys
/// - at most 100 one-time keys per request and unclaimed per device; `key_change` to devices and peers
async fn upload_keys(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let identity = if params.has("identity_key") || params.has("signing_key") || params.has("identity_signature") {
        let identity_key = key_field(params.value("identity_key"), "identity_key", 32)?;
        let signing_key = key_field(params.value("signing_key"), "signing_key", 32)?;
        let signature = key_field(params.value("identity_signature"), "identity_signature", 64)?;
        verify(&signing_key, &[ID_PREFIX, &identity_key].concat(), &signature)?;
        Some((identity_key, signing_key, signature))
    } else {
        None
    };
    let spk = match params.value("signed_prekey").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some((
            key_id(v.get("key_id"), "signed_prekey.key_id")?,
            key_field(v.get("public_key"), "signed_prekey.public_key", 32)?,
            key_field(v.get("signature"), "signed_prekey.signature", 64)?,
        )),
    };
    let mut otks: Vec<(u32, String)> = Vec::new();
    if let Some(list) = params.value("one_time_keys").filter(|v| !v.is_null()) {
        let list = list.as_array().ok_or_else(|| ApiError::field("one_time_keys", "must be a list"))?;
        if list.len() > MAX_ONE_TIME_KEYS {
            return Err(ApiError::client(400, "too_many_one_time_keys", "Too many one-time keys"));
        }
        for k in list {
            let id = key_id(k.get("key_id"), "one_time_keys.key_id")?;
            let public = key_field(k.get("public_key"), "one_time_keys.public_key", 32)?;
            if otks.iter().any(|(existing, _)| *existing == id) {
                return Err(ApiError::client(409, "key_id_conflict", "One-time key id already used"));
            }
            otks.push((id, shared::keys::encode(&public)));
        }
    }

    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let mut rows = tx
        .query(
            "SELECT identity_key, signing_key, identity_signature FROM device_key WHERE device_id = ?1",
            [user.device_id.as_str()],
        )
        .await?;
    let stored = match rows.next().await? {
        Some(r) => Some(Identity { identity_key: r.get(0)?, signing_key: r.get(1)?, signature: r.get(2)? }),
        None => None,
    };
    drop(rows);
    let now = shared::time::now_ms();
    let mut change = None;
    let signing_key = match (&identity, &stored) {
        (None, None) => {
            return Err(ApiError::field(
                "identity_key",
                "the first upload needs the identity keys and a signed prekey",
            ));
        }
        (None, Some(s)) => decode(&s.signing_key).unwrap_or_default(),
        (Some((ik, sk, sig)), stored) => {
            let new = Identity {
                identity_key: shared::keys::encode(ik),
                signing_key: shared::keys::encode(sk),
                signature: shared::keys::encode(sig),
            };
            let same =
                stored.as_ref().is_some_and(|s| s.identity_key == new.identity_key && s.signing_key == new.signing_key);
            if !same {
                if stored.is_none() && spk.is_none() {
                    return Err(ApiError::field("signed_prekey", "the first upload needs a signed prekey"));
                }
                change = Some(if stored.is_some() { "identity_changed" } else { "added" });
                // A new identity invalidates every key signed or issued under the old one.
                tx.execute("DELETE FROM one_time_key WHERE device_id = ?1", [user.device_id.as_str()]).await?;
                tx.execute(
                    "INSERT INTO device_key (device_id, user_id, identity_key, signing_key, identity_signature, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (device_id) DO UPDATE SET identity_key = excluded.identity_key, \
                     signing_key = excluded.signing_key, identity_signature = excluded.identity_signature, \
                     spk_id = NULL, spk_public = NULL, spk_signature = NULL, updated_at = excluded.updated_at",
                    (user.device_id.as_str(), user.id, new.identity_key, new.signing_key, new.signature, now),
                )
                .await?;
            }
            sk.clone()
        }
    };
    if let Some((id, public, sig)) = &spk {
        verify(&signing_key, &[SPK_PREFIX, &id.to_be_bytes(), public].concat(), sig)?;
        let spk = SignedPrekey {
            key_id: *id,
            public_key: shared::keys::encode(public),
            signature: shared::keys::encode(sig),
        };
        tx.execute(
            "UPDATE device_key SET spk_id = ?2, spk_public = ?3, spk_signature = ?4, updated_at = ?5 WHERE device_id = ?1",
            (user.device_id.as_str(), spk.key_id, spk.public_key, spk.signature, now),
        )
        .await?;
    }
    for (id, public) in &otks {
        let mut rows = tx
            .query(
                "SELECT public_key FROM one_time_key WHERE device_id = ?1 AND key_id = ?2",
                (user.device_id.as_str(), *id),
            )
            .await?;
        let existing: Option<String> = rows.next().await?.map(|r| r.get(0)).transpose()?;
        drop(rows);
        match existing {
            Some(p) if &p == public => {}
            Some(_) => return Err(ApiError::client(409, "key_id_conflict", "One-time key id already used")),
            None => {
                tx.execute(
                    "INSERT INTO one_time_key (device_id, key_id, public_key) VALUES (?1, ?2, ?3)",
                    (user.device_id.as_str(), *id, public.as_str()),
                )
                .await?;
            }
        }
    }
    let (count, spk_id) = counts(&tx, &user.device_id).await?;
    if count > MAX_ONE_TIME_KEYS as i64 {
        return Err(ApiError::client(400, "too_many_one_time_keys", "Too many one-time keys"));
    }
    tx.commit().await?;
    drop(conn);
    if let Some(change) = change {
        broadcast_key_change(state, user.id, &user.device_id, change).await;
    }
    Ok(ok(&json!({"device_id": user.device_id, "one_time_key_count": count, "signed_prekey_id": spk_id})))
}

async fn counts(conn: &libsql::Connection, device_id: &str) -> Result<(i64, Option<i64>), ApiError> {
    let mut rows = conn
        .query(
            "SELECT (SELECT COUNT(*) FROM one_time_key WHERE device_id = ?1), \
             (SELECT spk_id FROM device_key WHERE device_id = ?1)",
            [device_id],
        )
        .await?;
    let r = rows.next().await?.ok_or_else(|| anyhow::anyhow!("count returned no row"))?;
    Ok((r.get(0)?, r.get(1)?))
}

/// `GET /keys/count`
async fn count_keys(state: &AppState, user: &AuthUser) -> Result<Response<Body>, ApiError> {
    let conn = state.db.conn().await?;
    let (count, spk_id) = counts(&conn, &user.device_id).await?;
    Ok(ok(&json!({"device_id": user.device_id, "one_time_key_count": count, "signed_prekey_id": spk_id})))
}

async fn live_user(conn: &libsql::Connection, id: i64) -> Result<(), ApiError> {
    let mut rows = conn.query("SELECT 1 FROM user WHERE id = ?1 AND is_deleted = 0", [id]).await?;
    rows.next().await?.map(|_| ()).ok_or(ApiError::client(404, "user_not_found", "User not found"))
}

/// `GET /users/{user_id}/devices` — devices that uploaded identity keys; names only for one's own.
async fn list_devices(state: &AppState, user: &AuthUser, m: &Matched) -> Result<Response<Body>, ApiError> {
    let id = m.int("user_id")?;
    let conn = state.db.conn().await?;
    live_user(&conn, id).await?;
    let mut rows = conn
        .query(
            "SELECT d.id, d.name, k.identity_key, k.signing_key, k.identity_signature, d.created_at \
             FROM device d JOIN device_key k ON k.device_id = d.id WHERE d.user_id = ?1 ORDER BY d.created_at, d.id",
            [id],
        )
        .await?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().await? {
        out.push(json!({
            "device_id": r.get::<String>(0)?,
            "device_name": if id == user.id { r.get::<Option<String>>(1)? } else { None },
            "identity_key": r.get::<String>(2)?,
            "signing_key": r.get::<String>(3)?,
            "identity_signature": r.get::<String>(4)?,
            "created_at": shared::time::format_ms(r.get::<i64>(5)?),
        }));
    }
    Ok(ok(&out))
}

/// `POST /keys/claim`
/// - per device of the user (or the listed ones): identity keys, the signed prekey and one one-time key,
///   removed and returned in a single atomic statement; when none is left, the signed prekey is the fallback
async fn claim_keys(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let target = params.int("user_id")?.ok_or_else(|| ApiError::field("user_id", "field required"))?;
    let wanted: Option<Vec<String>> = match params.value("device_ids").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::Array(ids)) if ids.len() <= 100 => Some(
            ids.iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| ApiError::field("device_ids", "must be strings")))
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(ApiError::field("device_ids", "must be a list of at most 100 device ids")),
    };
    let limits = &state.config.rate_limits;
    ratelimit::hit(&state.db, "claim", &user.id.to_string(), limits.claim).await?;
    let conn = state.db.conn().await?;
    live_user(&conn, target).await?;
    let mut rows = conn
        .query(
            "SELECT device_id, identity_key, signing_key, identity_signature, spk_id, spk_public, spk_signature \
             FROM device_key WHERE user_id = ?1 AND spk_id IS NOT NULL ORDER BY device_id",
            [target],
        )
        .await?;
    let mut devices = Vec::new();
    while let Some(r) = rows.next().await? {
        let device_id: String = r.get(0)?;
        if wanted.as_ref().is_some_and(|w| !w.contains(&device_id)) {
            continue;
        }
        devices.push((
            device_id,
            r.get::<String>(1)?,
            r.get::<String>(2)?,
            r.get::<String>(3)?,
            r.get::<i64>(4)?,
            r.get::<String>(5)?,
            r.get::<String>(6)?,
        ));
    }
    drop(rows);
    // Every per-device limit is counted before any key is taken, so a refused request consumes none.
    for device in &devices {
        ratelimit::hit(&state.db, "claim_device", &format!("{}:{}", user.id, device.0), limits.claim_device).await?;
    }
    let mut out = Vec::with_capacity(devices.len());
    for (device_id, ik, sk, isig, spk_id, spk_public, spk_sig) in devices {
        // One statement picks and removes the key, so concurrent claims never receive the same one.
        let mut rows = conn
            .query(
                "DELETE FROM one_time_key WHERE rowid = (SELECT rowid FROM one_time_key WHERE device_id = ?1 \
                 ORDER BY key_id LIMIT 1) RETURNING key_id, public_key",
                [device_id.as_str()],
            )
            .await?;
        let otk = match rows.next().await? {
            Some(r) => Some(json!({"key_id": r.get::<i64>(0)?, "public_key": r.get::<String>(1)?})),
            None => None,
        };
        drop(rows);
        out.push(json!({
            "device_id": device_id,
            "identity_key": ik,
            "signing_key": sk,
            "identity_signature": isig,
            "signed_prekey": {"key_id": spk_id, "public_key": spk_public, "signature": spk_sig},
            "fallback": otk.is_none(),
            "one_time_key": otk,
        }));
    }
    Ok(ok(&json!({"user_id": target, "devices": out})))
}

/// `DELETE /devices/{device_id}`
/// - own devices only; removes the device, its keys and envelopes, closes its connections (its tokens die
///   with it) and sends `key_change` `removed`; deleting the current device is a logout
async fn delete_device(state: &AppState, user: &AuthUser, m: &Matched) -> Result<Response<Body>, ApiError> {
    let device_id = m.str("device_id").to_owned();
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let mut rows =
        tx.query("SELECT 1 FROM device WHERE id = ?1 AND user_id = ?2", (device_id.as_str(), user.id)).await?;
    if rows.next().await?.is_none() {
        return Err(ApiError::client(404, "device_not_found", "Device not found"));
    }
    drop(rows);
    let mut rows = tx
        .query("SELECT id FROM connection WHERE device_id = ?1 AND user_id = ?2", (device_id.as_str(), user.id))
        .await?;
    let mut connections = Vec::new();
    while let Some(r) = rows.next().await? {
        connections.push(r.get::<String>(0)?);
    }
    drop(rows);
    delete_device_rows(&tx, &device_id).await?;
    tx.commit().await?;
    drop(conn);
    realtime::close(state, &connections).await;
    broadcast_key_change(state, user.id, &device_id, "removed").await;
    Ok(no_content())
}

/// `POST /keys/exchange` — the legacy registration key of a user.
async fn exchange_key(state: &AppState, params: &Params) -> Result<Response<Body>, ApiError> {
    let id = params.int("user_id")?.ok_or_else(|| ApiError::field("user_id", "field required"))?;
    let conn = state.db.conn().await?;
    let mut rows = conn.query("SELECT public_key FROM user WHERE id = ?1 AND is_deleted = 0", [id]).await?;
    let row = rows.next().await?.ok_or(ApiError::client(404, "user_not_found", "User not found"))?;
    let key: Option<String> = row.get(0)?;
    let key = key.ok_or(ApiError::client(404, "no_public_key", "User does not have a public key"))?;
    Ok(ok(&json!({"user_id": id, "public_key": key})))
}
