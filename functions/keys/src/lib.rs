//! The `keys` function: the end-to-end encryption key directory (API.md §9). The server stores public keys
//! only, verifies their signatures strictly and hands each one-time key out at most once. The MLS key
//! packages of group chats (API.md §15.1) are in [`mls`].

use ed25519_dalek::{Signature, VerifyingKey};
use shared::api::Router;
use shared::auth::AuthUser;
use shared::db::keys::KeyIdUse;
use shared::keys::{broadcast_key_change, decode, delete_device_rows, encode};
use shared::ratelimit::Scope;
use shared::{ApiError, AppState, db, realtime};
use wire::keys::{
    ClaimKeys, ClaimKeysRequest, ClaimedDevice, ClaimedKeys, CountKeys, DeleteDevice, DeleteDeviceRequest, Device,
    ExchangeKey, ExchangeKeyRequest, KeyCount, LegacyKey, ListDevices, ListDevicesRequest, OneTimeKey, SignedPrekey,
    UploadKeys, UploadKeysRequest,
};
use wire::ws::KeyChangeKind;
use wire::{Empty, ErrorCode};

pub mod mls;

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "keys";

/// Most unclaimed one-time keys per device, and per request.
pub const MAX_ONE_TIME_KEYS: usize = 100;

/// Most device ids one claim may name.
const MAX_CLAIMED_DEVICES: usize = 100;

/// Signature prefixes of API.md §9.2.
const ID_PREFIX: &[u8] = b"MSGR-ID-V1";
const SPK_PREFIX: &[u8] = b"MSGR-SPK-V1";

/// Every route of this function.
pub fn router() -> Router {
    let router = Router::new(FUNCTION)
        .route(UploadKeys, upload_keys)
        .route(CountKeys, count_keys)
        .route(ListDevices, list_devices)
        .route(ClaimKeys, claim_keys)
        .route(DeleteDevice, delete_device)
        .route(ExchangeKey, exchange_key);
    mls::routes(router)
}

shared::http_function!(router);

/// A base64 field of exactly `len` bytes; anything else (also absence) is a 422 naming `field`.
fn key_field(value: Option<&str>, field: &str, len: usize) -> Result<Vec<u8>, ApiError> {
    value
        .and_then(decode)
        .filter(|b| b.len() == len)
        .ok_or_else(|| ApiError::field(field, format!("must be {len} bytes in standard base64")))
}

/// Strict Ed25519 verification: canonical point and signature encodings, no small-order keys.
fn verify(signing_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), ApiError> {
    let invalid = || ApiError::code(ErrorCode::InvalidSignature);
    let key: [u8; 32] = signing_key.try_into().map_err(|_| invalid())?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| invalid())?;
    if key.is_weak() {
        return Err(invalid());
    }
    let sig = Signature::from_slice(signature).map_err(|_| invalid())?;
    key.verify_strict(message, &sig).map_err(|_| invalid())
}

/// A validated identity part: the raw bytes and their canonical base64.
struct NewIdentity {
    signing_key: Vec<u8>,
    stored: db::keys::Identity,
}

/// Checks the identity part, if any of its fields is present: lengths (422), then the signature (400).
fn identity_part(input: &UploadKeysRequest) -> Result<Option<NewIdentity>, ApiError> {
    if input.identity_key.is_none() && input.signing_key.is_none() && input.identity_signature.is_none() {
        return Ok(None);
    }
    let identity_key = key_field(input.identity_key.as_deref(), "identity_key", 32)?;
    let signing_key = key_field(input.signing_key.as_deref(), "signing_key", 32)?;
    let signature = key_field(input.identity_signature.as_deref(), "identity_signature", 64)?;
    verify(&signing_key, &[ID_PREFIX, &identity_key].concat(), &signature)?;
    let stored = db::keys::Identity {
        identity_key: encode(&identity_key),
        signing_key: encode(&signing_key),
        identity_signature: encode(&signature),
    };
    Ok(Some(NewIdentity { signing_key, stored }))
}

/// Whether `new` keeps the device's identity: the same identity and signing keys (a fresh signature over
/// them changes nothing a peer's session depends on).
fn same_identity(stored: &db::keys::Identity, new: &db::keys::Identity) -> bool {
    stored.identity_key == new.identity_key && stored.signing_key == new.signing_key
}

/// The key state answer of `device_id`.
fn key_count(device_id: &str, counts: db::keys::KeyCounts) -> KeyCount {
    KeyCount {
        device_id: device_id.to_owned(),
        one_time_key_count: counts.one_time_key_count,
        signed_prekey_id: counts.signed_prekey_id,
    }
}

/// `PUT /keys`
/// - acts on the token's device; the first upload needs the identity part and a signed prekey
/// - signatures verified strictly; identical re-uploads are no-ops; a new identity discards the old keys
/// - at most 100 one-time keys per request and unclaimed per device; `key_change` to devices and peers
async fn upload_keys(state: &AppState, user: AuthUser, input: UploadKeysRequest) -> Result<KeyCount, ApiError> {
    let identity = identity_part(&input)?;
    // An identity change is announced to every peer.
    let device = format!("{}:{}", user.id, user.device_id);
    state.limiter.hit(&state.db, Scope::KeyUpload, &device).await?;
    let spk = match &input.signed_prekey {
        None => None,
        Some(spk) => Some((
            spk.key_id,
            key_field(Some(&spk.public_key), "signed_prekey.public_key", 32)?,
            key_field(Some(&spk.signature), "signed_prekey.signature", 64)?,
        )),
    };
    let mut otks: Vec<(u32, String)> = Vec::new();
    if let Some(list) = &input.one_time_keys {
        if list.len() > MAX_ONE_TIME_KEYS {
            return Err(ErrorCode::TooManyOneTimeKeys.into());
        }
        for k in list {
            let public = key_field(Some(&k.public_key), "one_time_keys.public_key", 32)?;
            if otks.iter().any(|(existing, _)| *existing == k.key_id) {
                return Err(ErrorCode::KeyIdConflict.into());
            }
            otks.push((k.key_id, encode(&public)));
        }
    }

    let device = user.device_id.as_str();
    // Swapping a device's identity for a different one would let a stolen token read the sessions peers open
    // next: it needs the account's password, checked before the write transaction (bcrypt holds no writer).
    let mut reauthenticated = false;
    if let Some(new) = &identity {
        let stored = {
            let conn = state.db.conn().await?;
            db::keys::identity(&conn, device).await?
        };
        if stored.is_some_and(|s| !same_identity(&s, &new.stored)) {
            shared::auth::reauthenticate(state, user.id, input.password.as_deref().unwrap_or("")).await?;
            reauthenticated = true;
        }
    }
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let stored = db::keys::identity(&tx, device).await?;
    let now = shared::time::now_ms();
    let mut change = None;
    let signing_key = match (identity, &stored) {
        (None, None) => {
            return Err(ApiError::field(
                "identity_key",
                "the first upload needs the identity keys and a signed prekey",
            ));
        }
        (None, Some(s)) => decode(&s.signing_key).unwrap_or_default(),
        (Some(new), stored) => {
            if !stored.as_ref().is_some_and(|s| same_identity(s, &new.stored)) {
                if stored.is_some() && !reauthenticated {
                    // Replaced since the check above: the password was not asked for.
                    return Err(ErrorCode::InvalidPassword.into());
                }
                if stored.is_none() && spk.is_none() {
                    return Err(ApiError::field("signed_prekey", "the first upload needs a signed prekey"));
                }
                change = Some(if stored.is_some() { KeyChangeKind::IdentityChanged } else { KeyChangeKind::Added });
                // A new identity invalidates every key signed or issued under the old one.
                db::keys::delete_one_time_keys(&tx, device).await?;
                db::mls::delete_of_device(&tx, device).await?;
                db::keys::set_identity(&tx, device, user.id, &new.stored, now).await?;
            }
            new.signing_key
        }
    };
    if let Some((id, public, sig)) = &spk {
        verify(&signing_key, &[SPK_PREFIX, &id.to_be_bytes(), public].concat(), sig)?;
        db::keys::set_signed_prekey(&tx, device, *id, &encode(public), &encode(sig), now).await?;
    }
    for (id, public) in &otks {
        match db::keys::key_id_use(&tx, device, *id).await? {
            KeyIdUse::Stored(p) if &p == public => {}
            // A claimed id is spent: a peer may hold a session over it.
            KeyIdUse::Stored(_) | KeyIdUse::Claimed => return Err(ErrorCode::KeyIdConflict.into()),
            KeyIdUse::Free => db::keys::insert_one_time_key(&tx, device, *id, public).await?,
        }
    }
    let counts = db::keys::counts(&tx, device).await?;
    if counts.one_time_key_count > MAX_ONE_TIME_KEYS as i64 {
        return Err(ErrorCode::TooManyOneTimeKeys.into());
    }
    tx.commit().await?;
    drop(conn);
    if let Some(change) = change {
        broadcast_key_change(state, user.id, device, change).await;
    }
    Ok(key_count(device, counts))
}

/// `GET /keys/count` — a device that never uploaded keys: count 0, id null.
async fn count_keys(state: &AppState, user: AuthUser, _input: Empty) -> Result<KeyCount, ApiError> {
    let conn = state.db.conn().await?;
    let counts = db::keys::counts(&conn, &user.device_id).await?;
    Ok(key_count(&user.device_id, counts))
}

/// `GET /users/{user_id}/devices` — devices that uploaded identity keys; names only for one's own.
async fn list_devices(state: &AppState, user: AuthUser, input: ListDevicesRequest) -> Result<Vec<Device>, ApiError> {
    let id = input.user_id;
    shared::users::count_lookup(state, user.id).await?;
    let conn = state.db.conn().await?;
    if !db::users::is_live(&conn, id).await? {
        return Err(ErrorCode::UserNotFound.into());
    }
    let devices = db::keys::devices_with_keys(&conn, id).await?;
    Ok(devices
        .into_iter()
        .map(|d| Device {
            device_id: d.device_id,
            device_name: if id == user.id { d.device_name } else { None },
            identity_key: d.identity_key,
            signing_key: d.signing_key,
            identity_signature: d.identity_signature,
            created_at: (id == user.id).then(|| shared::time::format_ms(d.created_at)),
        })
        .collect())
}

/// `POST /keys/claim`
/// - per device of the user (or the listed ones): identity keys, the signed prekey and one one-time key,
///   counted, read and taken in one write transaction, so the bundle is consistent and concurrent claims never
///   get the same key; when none is left, the signed prekey is the fallback
/// - a taken key's id is remembered, so its re-upload is refused
/// - past `CLAIM_TARGET` claims of a device in a window, from all callers together, the device answers with
///   its fallback and keeps its one-time keys: draining them takes longer than the window, and nobody is
///   refused a session
async fn claim_keys(state: &AppState, user: AuthUser, input: ClaimKeysRequest) -> Result<ClaimedKeys, ApiError> {
    let target = input.user_id;
    let wanted = input.device_ids;
    if wanted.as_ref().is_some_and(|w| w.len() > MAX_CLAIMED_DEVICES) {
        return Err(ApiError::field("device_ids", "must be a list of at most 100 device ids"));
    }
    // One write transaction from the first count to the last key: one turn of the database's writer per claim
    // (on a libSQL server, each statement is a round trip while it holds the writer). A caller this process
    // knows to be over the limit is refused before it queues for the writer.
    state.limiter.check(Scope::Claim, &user.id.to_string())?;
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let counted = async {
        state.limiter.hit_on(&tx, Scope::Claim, &user.id.to_string()).await?;
        if !db::users::is_live(&tx, target).await? {
            return Err(ApiError::from(ErrorCode::UserNotFound));
        }
        let mut devices = db::keys::claimable_devices(&tx, target).await?;
        devices.retain(|d| wanted.as_ref().is_none_or(|w| w.contains(&d.device_id)));
        // Every per-device limit is counted before any key is taken, so a refused request consumes none.
        for device in &devices {
            let subject = format!("{}:{}", user.id, device.device_id);
            state.limiter.hit_on(&tx, Scope::ClaimDevice, &subject).await?;
        }
        Ok(devices)
    };
    let devices = match counted.await {
        Ok(devices) => devices,
        // A refused claim keeps the counts it made (as when each was its own transaction).
        Err(refused) if refused.status().is_client_error() => {
            tx.commit().await?;
            return Err(refused);
        }
        Err(failed) => return Err(failed),
    };
    let mut out = Vec::with_capacity(devices.len());
    for d in devices {
        let otk = match state.limiter.hit_on(&tx, Scope::ClaimTarget, &d.device_id).await {
            Ok(()) => db::keys::take_one_time_key(&tx, &d.device_id).await?,
            Err(ApiError::RateLimited { .. }) => None,
            Err(other) => return Err(other),
        };
        out.push(ClaimedDevice {
            device_id: d.device_id,
            identity_key: d.identity_key,
            signing_key: d.signing_key,
            identity_signature: d.identity_signature,
            signed_prekey: SignedPrekey { key_id: d.spk_id, public_key: d.spk_public, signature: d.spk_signature },
            fallback: otk.is_none(),
            one_time_key: otk.map(|k| OneTimeKey { key_id: k.key_id, public_key: k.public_key }),
        });
    }
    tx.commit().await?;
    Ok(ClaimedKeys { user_id: target, devices: out })
}

/// `DELETE /devices/{device_id}`
/// - own devices only; removes the device, its keys and envelopes, closes its connections (its tokens die
///   with it) and sends `key_change` `removed`; deleting the current device is a logout
async fn delete_device(state: &AppState, user: AuthUser, input: DeleteDeviceRequest) -> Result<Empty, ApiError> {
    let device_id = input.device_id;
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    if !db::devices::belongs_to(&tx, &device_id, user.id).await? {
        return Err(ErrorCode::DeviceNotFound.into());
    }
    let connections = db::connections::ids_of_device(&tx, user.id, &device_id).await?;
    delete_device_rows(&tx, user.id, &device_id).await?;
    tx.commit().await?;
    drop(conn);
    realtime::close(state, &connections).await;
    shared::bulk::finish_queued(state, user.id).await;
    broadcast_key_change(state, user.id, &device_id, KeyChangeKind::Removed).await;
    shared::mls::announce_removed_device(state, user.id, &device_id).await;
    Ok(Empty {})
}

/// `POST /keys/exchange` — the legacy registration key of a user (query parameter or JSON body).
async fn exchange_key(state: &AppState, user: AuthUser, input: ExchangeKeyRequest) -> Result<LegacyKey, ApiError> {
    let id = input.user_id;
    shared::users::count_lookup(state, user.id).await?;
    let conn = state.db.conn().await?;
    let key = db::users::public_key(&conn, id).await?.ok_or(ApiError::code(ErrorCode::UserNotFound))?;
    let key = key.ok_or(ApiError::code(ErrorCode::NoPublicKey))?;
    Ok(LegacyKey { user_id: id, public_key: key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_keys_endpoints() {
        shared::api::assert_serves_its_endpoints(&super::router());
    }

    #[test]
    fn key_fields_must_be_canonical_base64_of_their_length() {
        assert_eq!(key_field(Some(&encode(&[7; 32])), "identity_key", 32).unwrap(), vec![7; 32]);
        for bad in [None, Some("not base64!"), Some("AAE=")] {
            match key_field(bad, "identity_key", 32) {
                Err(ApiError::Validation(errors)) => {
                    assert_eq!(errors[0].field, "identity_key");
                    assert_eq!(errors[0].message, "must be 32 bytes in standard base64");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_partial_identity_part_names_the_missing_field() {
        let input = UploadKeysRequest { identity_key: Some(encode(&[1; 32])), ..Default::default() };
        match identity_part(&input) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "signing_key"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(identity_part(&UploadKeysRequest::default()).unwrap().is_none());
    }

    #[test]
    fn signatures_are_verified_strictly() {
        use ed25519_dalek::{Signer as _, SigningKey};
        let key = SigningKey::from_bytes(&[9; 32]);
        let public = key.verifying_key().to_bytes();
        let sig = key.sign(b"MSGR-ID-V1 message").to_bytes();
        verify(&public, b"MSGR-ID-V1 message", &sig).unwrap();
        assert!(verify(&public, b"MSGR-ID-V1 other", &sig).is_err());
        // The identity point is a small-order (weak) key: refused even with a "valid" signature.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let err = verify(&weak, b"m", &[0; 64]).unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::InvalidSignature);
        assert_eq!(verify(&[0; 31], b"m", &[0; 64]).unwrap_err().error_code(), ErrorCode::InvalidSignature);
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn key_fields_take_exactly_their_length_in_canonical_base64(
            bytes in proptest::collection::vec(any::<u8>(), 0..70), len in proptest::sample::select(vec![32usize, 64]),
        ) {
            let text = encode(&bytes);
            match key_field(Some(&text), "k", len) {
                Ok(out) => prop_assert!(bytes.len() == len && out == bytes),
                Err(ApiError::Validation(errors)) => {
                    prop_assert!(bytes.len() != len);
                    prop_assert_eq!(&errors[0].field, "k");
                }
                Err(other) => prop_assert!(false, "{:?}", other),
            }
            // Whitespace around a key is not the key.
            let padded = format!(" {text}");
            prop_assert!(key_field(Some(&padded), "k", len).is_err());
        }

        #[test]
        fn signatures_verify_only_unchanged(
            seed in any::<[u8; 32]>(), message in proptest::collection::vec(any::<u8>(), 0..64),
            flip in any::<prop::sample::Index>(), bit in 0u8..8, part in 0u8..3,
        ) {
            use ed25519_dalek::Signer as _;
            let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
            let key = signing.verifying_key().to_bytes().to_vec();
            let signature = signing.sign(&message).to_bytes().to_vec();
            prop_assert!(verify(&key, &message, &signature).is_ok());
            let (mut key2, mut message2, mut signature2) = (key.clone(), message.clone(), signature.clone());
            let target = match part { 0 => &mut key2, 1 => &mut message2, _ => &mut signature2 };
            if !target.is_empty() {
                let i = flip.index(target.len());
                target[i] ^= 1 << bit;
                prop_assert!(verify(&key2, &message2, &signature2).is_err());
            }
        }

        #[test]
        fn verification_never_panics_on_any_lengths(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            signature in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let _ = verify(&key, b"m", &signature);
        }
    }
}
