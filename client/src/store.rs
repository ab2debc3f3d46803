//! Device state on disk: pickled Olm account and sessions plus the decrypted-message cache, encrypted with
//! AES-256-GCM under a random key; the directory is 0700 and both files 0600.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;

use aes_gcm::aead::Aead as _;
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use anyhow::{Context as _, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use vodozemac::olm::{AccountPickle, SessionPickle};

/// Everything a device must remember.
#[derive(Serialize, Deserialize)]
pub struct Saved {
    pub server: String,
    pub user_id: i64,
    pub device_id: String,
    pub token: String,
    pub account: AccountPickle,
    pub sessions: HashMap<String, Vec<SessionPickle>>,
    pub next_key_id: u32,
    /// Pinned identity keys per `"<user>:<device>"`.
    pub identities: HashMap<String, String>,
    /// Decrypted payloads per message id (an Olm message can be decrypted only once).
    pub plaintexts: BTreeMap<i64, Value>,
}

const KEY_FILE: &str = "device.key";
const STATE_FILE: &str = "state.bin";

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The state key of `dir`, created on first use.
pub fn key(dir: &Path) -> anyhow::Result<[u8; 32]> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|_| anyhow!("{} is corrupt", path.display())),
        Err(_) => {
            let key: [u8; 32] = crate::crypto::random();
            write_private(&path, &key)?;
            Ok(key)
        }
    }
}

/// Writes the state, encrypted.
pub fn save(dir: &Path, key: &[u8; 32], saved: &Saved) -> anyhow::Result<()> {
    let plain = serde_json::to_vec(saved)?;
    let nonce: [u8; 12] = crate::crypto::random();
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| anyhow!("bad key"))?;
    let mut out = nonce.to_vec();
    out.extend(cipher.encrypt(Nonce::from_slice(&nonce), plain.as_slice()).map_err(|_| anyhow!("encryption failed"))?);
    write_private(&dir.join(STATE_FILE), &out)
}

/// Reads the state of `dir`.
pub fn load(dir: &Path) -> anyhow::Result<(Saved, [u8; 32])> {
    let key = key(dir)?;
    let bytes = std::fs::read(dir.join(STATE_FILE))
        .with_context(|| format!("no device in {} (register or login first)", dir.display()))?;
    if bytes.len() < 12 {
        return Err(anyhow!("state file is corrupt"));
    }
    let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| anyhow!("bad key"))?;
    let plain = cipher
        .decrypt(Nonce::from_slice(&bytes[..12]), &bytes[12..])
        .map_err(|_| anyhow!("state file failed authentication"))?;
    Ok((serde_json::from_slice(&plain)?, key))
}
