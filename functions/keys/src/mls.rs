//! The MLS key-package directory (API.md §15.1). Every package is parsed and verified with `openmls` before it
//! is stored: ciphersuite 0x0001, a basic credential naming the uploading device, that device's directory
//! signing key as the leaf's signature key, valid leaf and package signatures, and a current lifetime.
//!
//! The server verifies signatures and hashes, nothing else: [`DirectoryCrypto`] implements only those two
//! operations of `openmls`'s crypto provider, so this function links no HPKE, AEAD or key generation.

use ed25519_dalek::{Signature, VerifyingKey};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::tls_codec::SecretVLBytes;
use openmls::prelude::{BasicCredential, Ciphersuite, MlsMessageBodyIn, MlsMessageIn, ProtocolVersion};
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::{
    AeadType, CryptoError, ExporterSecret, HashType, HpkeCiphertext, HpkeConfig, HpkeKeyPair, KemOutput,
    SignatureScheme,
};
use sha2::Digest as _;
use shared::api::Router;
use shared::auth::AuthUser;
use shared::keys::{decode, encode};
use shared::ratelimit::Scope;
use shared::{ApiError, AppState, db};
use wire::mls::{
    ClaimKeyPackages, ClaimKeyPackagesRequest, ClaimedKeyPackage, ClaimedKeyPackages, CountKeyPackages,
    KeyPackageCount, UploadKeyPackages, UploadKeyPackagesRequest,
};
use wire::{Empty, ErrorCode};

/// Most unclaimed ordinary key packages per device, and per request.
pub const MAX_KEY_PACKAGES: usize = 100;

/// Most users one claim may name.
const MAX_CLAIMED_USERS: usize = 50;

/// Largest key package accepted, in bytes. One with a basic credential and the default extensions is about
/// 300 bytes; the room above that is for extensions a newer client may add.
const MAX_KEY_PACKAGE_BYTES: usize = 16 * 1024;

/// The one ciphersuite of API.md §15.
const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Adds the §15.1 routes to the `keys` function's router.
pub fn routes(router: Router) -> Router {
    router
        .route(UploadKeyPackages, upload_key_packages)
        .route(CountKeyPackages, count_key_packages)
        .route(ClaimKeyPackages, claim_key_packages)
}

/// The crypto a key directory needs: Ed25519 verification (strict, as the rest of the directory) and
/// SHA-256 (key package references). Everything else fails: the server holds no group secret.
struct DirectoryCrypto;

fn unsupported<T>() -> Result<T, CryptoError> {
    Err(CryptoError::UnsupportedCiphersuite)
}

impl OpenMlsCrypto for DirectoryCrypto {
    fn supports(&self, ciphersuite: Ciphersuite) -> Result<(), CryptoError> {
        if ciphersuite == CIPHERSUITE { Ok(()) } else { unsupported() }
    }

    fn supported_ciphersuites(&self) -> Vec<Ciphersuite> {
        vec![CIPHERSUITE]
    }

    fn hkdf_extract(&self, _: HashType, _: &[u8], _: &[u8]) -> Result<SecretVLBytes, CryptoError> {
        unsupported()
    }

    fn hmac(&self, _: HashType, _: &[u8], _: &[u8]) -> Result<SecretVLBytes, CryptoError> {
        unsupported()
    }

    fn hkdf_expand(&self, _: HashType, _: &[u8], _: &[u8], _: usize) -> Result<SecretVLBytes, CryptoError> {
        unsupported()
    }

    fn hash(&self, hash_type: HashType, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match hash_type {
            HashType::Sha2_256 => Ok(sha2::Sha256::digest(data).to_vec()),
            _ => Err(CryptoError::UnsupportedHashAlgorithm),
        }
    }

    fn aead_encrypt(&self, _: AeadType, _: &[u8], _: &[u8], _: &[u8], _: &[u8]) -> Result<Vec<u8>, CryptoError> {
        unsupported()
    }

    fn aead_decrypt(&self, _: AeadType, _: &[u8], _: &[u8], _: &[u8], _: &[u8]) -> Result<Vec<u8>, CryptoError> {
        unsupported()
    }

    fn signature_key_gen(&self, _: SignatureScheme) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        unsupported()
    }

    fn verify_signature(
        &self,
        alg: SignatureScheme,
        data: &[u8],
        pk: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        if alg != SignatureScheme::ED25519 {
            return Err(CryptoError::UnsupportedSignatureScheme);
        }
        let key: [u8; 32] = pk.try_into().map_err(|_| CryptoError::InvalidPublicKey)?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| CryptoError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(CryptoError::InvalidPublicKey);
        }
        let signature = Signature::from_slice(signature).map_err(|_| CryptoError::InvalidSignature)?;
        key.verify_strict(data, &signature).map_err(|_| CryptoError::InvalidSignature)
    }

    fn sign(&self, _: SignatureScheme, _: &[u8], _: &[u8]) -> Result<Vec<u8>, CryptoError> {
        unsupported()
    }

    fn hpke_seal(&self, _: HpkeConfig, _: &[u8], _: &[u8], _: &[u8], _: &[u8]) -> Result<HpkeCiphertext, CryptoError> {
        unsupported()
    }

    fn hpke_open(
        &self,
        _: HpkeConfig,
        _: &HpkeCiphertext,
        _: &[u8],
        _: &[u8],
        _: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        unsupported()
    }

    fn hpke_setup_sender_and_export(
        &self,
        _: HpkeConfig,
        _: &[u8],
        _: &[u8],
        _: &[u8],
        _: usize,
    ) -> Result<(KemOutput, ExporterSecret), CryptoError> {
        unsupported()
    }

    fn hpke_setup_receiver_and_export(
        &self,
        _: HpkeConfig,
        _: &[u8],
        _: &[u8],
        _: &[u8],
        _: &[u8],
        _: usize,
    ) -> Result<ExporterSecret, CryptoError> {
        unsupported()
    }

    fn derive_hpke_keypair(&self, _: HpkeConfig, _: &[u8]) -> Result<HpkeKeyPair, CryptoError> {
        unsupported()
    }
}

/// A key package that passed every check, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checked {
    /// Its `KeyPackageRef`, base64.
    key_ref: String,
    /// The `MLSMessage`, canonical base64.
    package: String,
    /// End of its lifetime, seconds since the Unix epoch.
    not_after: i64,
}

impl Checked {
    fn row(&self) -> db::mls::NewKeyPackage<'_> {
        db::mls::NewKeyPackage { key_ref: &self.key_ref, package: &self.package, not_after: self.not_after }
    }
}

/// Parses and verifies one uploaded key package of the device whose credential identity is `identity`
/// (`"<user_id>:<device_id>"`) and whose directory signing key is `signing_key`. Every failure is the same
/// 400 `invalid_key_package`: which check failed helps nobody but a forger.
fn check(text: &str, identity: &[u8], signing_key: &[u8]) -> Result<Checked, ApiError> {
    let invalid = || ApiError::code(ErrorCode::InvalidKeyPackage);
    let bytes = decode(text).filter(|b| !b.is_empty() && b.len() <= MAX_KEY_PACKAGE_BYTES).ok_or_else(invalid)?;
    let message = MlsMessageIn::tls_deserialize_exact(&bytes).map_err(|_| invalid())?;
    let MlsMessageBodyIn::KeyPackage(package) = message.extract() else {
        return Err(invalid());
    };
    // Verifies the leaf node's and the package's signatures with the leaf's key, the lifetime against now,
    // the protocol version, that the init and encryption keys differ and that the extensions are supported.
    let package = package.validate(&DirectoryCrypto, ProtocolVersion::Mls10).map_err(|_| invalid())?;
    if package.ciphersuite() != CIPHERSUITE || !package.life_time().has_acceptable_range() {
        return Err(invalid());
    }
    let leaf = package.leaf_node();
    if leaf.signature_key().as_slice() != signing_key {
        return Err(invalid());
    }
    let credential = BasicCredential::try_from(leaf.credential().clone()).map_err(|_| invalid())?;
    if credential.identity() != identity {
        return Err(invalid());
    }
    let key_ref = package.hash_ref(&DirectoryCrypto).map_err(|_| invalid())?;
    let not_after = i64::try_from(package.life_time().not_after()).map_err(|_| invalid())?;
    Ok(Checked { key_ref: encode(key_ref.as_slice()), package: encode(&bytes), not_after })
}

fn now_s() -> i64 {
    shared::time::now_ms().div_euclid(1000)
}

fn count(device_id: &str, counts: db::mls::Counts) -> KeyPackageCount {
    KeyPackageCount {
        device_id: device_id.to_owned(),
        key_package_count: counts.key_package_count,
        has_last_resort: counts.has_last_resort,
    }
}

/// `PUT /mls/key-packages`
/// - the token's device, which must have uploaded its identity keys (409 `no_device_keys`)
/// - every package checked before anything is stored (one bad package stores none); a package already stored
///   or already handed out is not stored again
/// - the last-resort package replaces the previous one; at most 100 per request and unclaimed per device
async fn upload_key_packages(
    state: &AppState,
    user: AuthUser,
    input: UploadKeyPackagesRequest,
) -> Result<KeyPackageCount, ApiError> {
    let packages = input.key_packages.unwrap_or_default();
    if packages.len() > MAX_KEY_PACKAGES {
        return Err(ErrorCode::TooManyKeyPackages.into());
    }
    let device = user.device_id.as_str();
    let identity = format!("{}:{device}", user.id);
    state.limiter.hit(&state.db, Scope::KeyUpload, &identity).await?;
    let signing_key = {
        let conn = state.db.conn().await?;
        db::keys::identity(&conn, device).await?.ok_or(ApiError::code(ErrorCode::NoDeviceKeys))?.signing_key
    };
    let key = decode(&signing_key).unwrap_or_default();
    // Signatures are checked before the write transaction: no writer waits on them.
    let checked = packages.iter().map(|p| check(p, identity.as_bytes(), &key)).collect::<Result<Vec<_>, _>>()?;
    let last_resort = input.last_resort.as_deref().map(|p| check(p, identity.as_bytes(), &key)).transpose()?;

    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    // Identity keys replaced meanwhile: the packages are signed with a key the directory no longer has.
    let now_signing = db::keys::identity(&tx, device).await?.map(|i| i.signing_key);
    if now_signing.as_deref() != Some(signing_key.as_str()) {
        return Err(ErrorCode::InvalidKeyPackage.into());
    }
    let now = now_s();
    db::mls::delete_dead(&tx, device, now).await?;
    for package in &checked {
        db::mls::insert(&tx, device, &package.row()).await?;
    }
    if let Some(package) = &last_resort {
        // Its ref is stored as an ordinary package: one package cannot be both.
        if !db::mls::replace_last_resort(&tx, device, &package.row()).await? {
            return Err(ErrorCode::InvalidKeyPackage.into());
        }
    }
    let counts = db::mls::counts(&tx, device, now).await?;
    if counts.key_package_count > MAX_KEY_PACKAGES as i64 {
        return Err(ErrorCode::TooManyKeyPackages.into());
    }
    tx.commit().await?;
    Ok(count(device, counts))
}

/// `GET /mls/key-packages/count` — a device without packages: 0 and false.
async fn count_key_packages(state: &AppState, user: AuthUser, _input: Empty) -> Result<KeyPackageCount, ApiError> {
    let conn = state.db.conn().await?;
    let counts = db::mls::counts(&conn, &user.device_id, now_s()).await?;
    Ok(count(&user.device_id, counts))
}

/// `POST /mls/key-packages/claim`
/// - 1–50 users, each live (404 `user_not_found` otherwise); one package per device of theirs that has one
/// - ordinary packages are taken in one write transaction, so concurrent claims never get the same one; a
///   device with none left answers with its last-resort package, which is not consumed
/// - rate limits as `POST /keys/claim` (API.md §1.2), counted before anything is taken; past the per-device
///   claim target of a window a device answers with its last-resort package and keeps the others
async fn claim_key_packages(
    state: &AppState,
    user: AuthUser,
    input: ClaimKeyPackagesRequest,
) -> Result<ClaimedKeyPackages, ApiError> {
    let mut users = input.user_ids;
    if users.is_empty() || users.len() > MAX_CLAIMED_USERS {
        return Err(ApiError::field("user_ids", "must list 1 to 50 user ids"));
    }
    users.sort_unstable();
    users.dedup();
    state.limiter.hit(&state.db, Scope::MlsClaim, &user.id.to_string()).await?;
    let holders = {
        let conn = state.db.conn().await?;
        if db::mls::live_count(&conn, &users).await? != users.len() as i64 {
            return Err(ErrorCode::UserNotFound.into());
        }
        db::mls::holders(&conn, &users).await?
    };
    for holder in &holders {
        let subject = format!("{}:{}", user.id, holder.device_id);
        state.limiter.hit(&state.db, Scope::MlsClaimDevice, &subject).await?;
    }
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let (now, now_ms) = (now_s(), shared::time::now_ms());
    let mut out = Vec::new();
    // Read again under the writer: devices removed meanwhile have no packages left.
    for holder in db::mls::holders(&tx, &users).await? {
        let taken = match state.limiter.hit_on(&tx, Scope::MlsClaimTarget, &holder.device_id).await {
            Ok(()) => db::mls::take(&tx, &holder.device_id, now, now_ms).await?,
            Err(ApiError::RateLimited { .. }) => db::mls::last_resort(&tx, &holder.device_id, now).await?,
            Err(other) => return Err(other),
        };
        if let Some(taken) = taken {
            out.push(ClaimedKeyPackage {
                user_id: holder.user_id,
                device_id: holder.device_id,
                key_package: taken.package,
                last_resort: taken.last_resort,
            });
        }
    }
    tx.commit().await?;
    Ok(ClaimedKeyPackages { key_packages: out })
}
