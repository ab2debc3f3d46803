//! Olm sessions per peer device, key publishing and attachment encryption.

use std::collections::HashMap;

use aes_gcm::aead::Aead as _;
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use vodozemac::olm::{Account, OlmMessage, Session, SessionConfig};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};
use wire::keys::{ClaimedDevice, Device, OneTimeKey, SignedPrekey, UploadKeysRequest};

/// Signature prefixes of the key directory (API.md §9.2).
pub const ID_PREFIX: &[u8] = b"MSGR-ID-V1";
/// Prefix of signed prekey signatures.
pub const SPK_PREFIX: &[u8] = b"MSGR-SPK-V1";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Standard base64 with padding.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes standard base64 (padding optional).
pub fn unb64(text: &str) -> anyhow::Result<Vec<u8>> {
    let text = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(text).context("invalid base64")
}

fn key32(text: &str) -> anyhow::Result<[u8; 32]> {
    unb64(text)?.try_into().map_err(|_| anyhow!("key is not 32 bytes"))
}

/// Random bytes.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("system randomness");
    b
}

/// A device's public keys as the directory serves them, after verifying the identity signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeys {
    pub device_id: String,
    pub identity_key: Curve25519PublicKey,
    pub signing_key: Ed25519PublicKey,
}

impl DeviceKeys {
    /// Verifies the identity signature of a directory entry (`GET /users/{id}/devices`, `POST /keys/claim`).
    fn verify(
        device_id: &str,
        identity_key: &str,
        signing_key: &str,
        identity_signature: &str,
    ) -> anyhow::Result<Self> {
        let identity = key32(identity_key)?;
        let signing = Ed25519PublicKey::from_slice(&key32(signing_key)?)?;
        let signature = Ed25519Signature::from_slice(&unb64(identity_signature)?)?;
        signing.verify(&[ID_PREFIX, &identity].concat(), &signature).context("identity signature is invalid")?;
        Ok(Self {
            device_id: device_id.to_owned(),
            identity_key: Curve25519PublicKey::from_bytes(identity),
            signing_key: signing,
        })
    }

    /// Verifies a `GET /users/{id}/devices` entry.
    pub fn verified(entry: &Device) -> anyhow::Result<Self> {
        Self::verify(&entry.device_id, &entry.identity_key, &entry.signing_key, &entry.identity_signature)
    }

    /// Verifies a `POST /keys/claim` entry's identity.
    pub fn verified_claim(entry: &ClaimedDevice) -> anyhow::Result<Self> {
        Self::verify(&entry.device_id, &entry.identity_key, &entry.signing_key, &entry.identity_signature)
    }
}

/// The Olm state of this device.
pub struct Crypto {
    pub account: Account,
    /// Sessions per peer device (`"<user>:<device>"`), newest first.
    pub sessions: HashMap<String, Vec<Session>>,
    /// Next key id for published keys.
    pub next_key_id: u32,
}

impl Crypto {
    /// A fresh account.
    pub fn new() -> Self {
        Self { account: Account::new(), sessions: HashMap::new(), next_key_id: 1 }
    }

    /// The `PUT /keys` body for the first upload: identity, signed prekey and `count` one-time keys.
    pub fn initial_keys(&mut self, count: usize) -> UploadKeysRequest {
        let ids = self.account.identity_keys();
        let curve = ids.curve25519.to_bytes();
        let signature = self.account.sign([ID_PREFIX, &curve].concat());
        UploadKeysRequest {
            identity_key: Some(b64(&curve)),
            signing_key: Some(b64(ids.ed25519.as_bytes())),
            identity_signature: Some(b64(&signature.to_bytes())),
            signed_prekey: Some(self.signed_prekey()),
            ..self.one_time_keys(count)
        }
    }

    /// A new signed prekey (the Olm fallback key).
    pub fn signed_prekey(&mut self) -> SignedPrekey {
        self.account.generate_fallback_key();
        let key = self.account.fallback_key().into_values().next().expect("fallback key just generated");
        let id = self.next_id();
        let signature = self.account.sign([SPK_PREFIX, &id.to_be_bytes(), &key.to_bytes()].concat());
        SignedPrekey { key_id: id, public_key: b64(&key.to_bytes()), signature: b64(&signature.to_bytes()) }
    }

    /// `count` new one-time keys as a `PUT /keys` body.
    pub fn one_time_keys(&mut self, count: usize) -> UploadKeysRequest {
        let created = self.account.generate_one_time_keys(count).created;
        let keys: Vec<OneTimeKey> =
            created.iter().map(|k| OneTimeKey { key_id: self.next_id(), public_key: b64(&k.to_bytes()) }).collect();
        self.account.mark_keys_as_published();
        UploadKeysRequest { one_time_keys: Some(keys), ..UploadKeysRequest::default() }
    }

    fn next_id(&mut self) -> u32 {
        let id = self.next_key_id;
        self.next_key_id = self.next_key_id.wrapping_add(1);
        id
    }

    /// Whether there is a session with a peer device.
    pub fn has_session(&self, peer: &str) -> bool {
        self.sessions.get(peer).is_some_and(|s| !s.is_empty())
    }

    /// Creates an outbound session from a `POST /keys/claim` entry (verifying both signatures).
    pub fn start_session(&mut self, peer: &str, claimed: &ClaimedDevice) -> anyhow::Result<DeviceKeys> {
        let keys = DeviceKeys::verified_claim(claimed)?;
        let spk = &claimed.signed_prekey;
        let spk_public = key32(&spk.public_key)?;
        let spk_sig = Ed25519Signature::from_slice(&unb64(&spk.signature)?)?;
        keys.signing_key
            .verify(&[SPK_PREFIX, &spk.key_id.to_be_bytes(), &spk_public].concat(), &spk_sig)
            .context("signed prekey signature is invalid")?;
        let one_time = match &claimed.one_time_key {
            Some(k) => key32(&k.public_key)?,
            None => spk_public,
        };
        let session = self.account.create_outbound_session(
            SessionConfig::version_2(),
            keys.identity_key,
            Curve25519PublicKey::from_bytes(one_time),
        );
        self.sessions.entry(peer.to_owned()).or_default().insert(0, session);
        Ok(keys)
    }

    /// Encrypts for a peer device with its newest session; the envelope is `type byte ‖ Olm message`.
    pub fn encrypt(&mut self, peer: &str, plaintext: &[u8]) -> anyhow::Result<String> {
        let session = self.sessions.get_mut(peer).and_then(|s| s.first_mut()).ok_or_else(|| anyhow!("no session"))?;
        let (kind, body) = session.encrypt(plaintext).to_parts();
        let mut bytes = vec![u8::try_from(kind)?];
        bytes.extend(body);
        Ok(b64(&bytes))
    }

    /// Decrypts an envelope from a peer device whose identity key is `sender_identity`.
    pub fn decrypt(
        &mut self,
        peer: &str,
        sender_identity: Curve25519PublicKey,
        envelope: &str,
    ) -> anyhow::Result<Vec<u8>> {
        let bytes = unb64(envelope)?;
        let (&kind, body) = bytes.split_first().ok_or_else(|| anyhow!("empty envelope"))?;
        let message = OlmMessage::from_parts(usize::from(kind), body)?;
        let sessions = self.sessions.entry(peer.to_owned()).or_default();
        if let OlmMessage::PreKey(pre) = &message {
            if let Some(s) = sessions.iter_mut().find(|s| s.session_id() == pre.session_id()) {
                return Ok(s.decrypt(&message)?);
            }
            let created = self.account.create_inbound_session(sender_identity, pre)?;
            sessions.insert(0, created.session);
            return Ok(created.plaintext);
        }
        for s in sessions.iter_mut() {
            if let Ok(plain) = s.decrypt(&message) {
                return Ok(plain);
            }
        }
        bail!("no session can decrypt this message")
    }
}

impl Default for Crypto {
    fn default() -> Self {
        Self::new()
    }
}

/// Encrypts an attachment with a fresh AES-256-GCM key; returns (ciphertext, key, nonce).
pub fn seal_file(plain: &[u8]) -> anyhow::Result<(Vec<u8>, [u8; 32], [u8; 12])> {
    let key: [u8; 32] = random();
    let nonce: [u8; 12] = random();
    let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| anyhow!("bad key"))?;
    let sealed = cipher.encrypt(Nonce::from_slice(&nonce), plain).map_err(|_| anyhow!("encryption failed"))?;
    Ok((sealed, key, nonce))
}

/// Decrypts and authenticates an attachment.
pub fn open_file(sealed: &[u8], key: &[u8], nonce: &[u8]) -> anyhow::Result<Vec<u8>> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| anyhow!("bad key"))?;
    if nonce.len() != 12 {
        bail!("bad nonce");
    }
    cipher.decrypt(Nonce::from_slice(nonce), sealed).map_err(|_| anyhow!("attachment failed authentication"))
}
