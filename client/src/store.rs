//! Device state on disk: pickled Olm account and sessions plus the decrypted-message cache, encrypted with
//! AES-256-GCM under a random key; the directory is 0700 and every file in it 0600.
//!
//! One home is one device: a process holds an exclusive lock on `lock` for as long as it uses the state
//! (see [`HomeLock`]), so two processes can never interleave their Olm ratchets. Every write goes to a
//! temporary file that is synced and renamed over the old one, and the directory is synced after the
//! rename, so a crash leaves either the old state or the new one, never a torn file.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use aes_gcm::aead::Aead as _;
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use anyhow::{Context as _, anyhow, bail};
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
    /// The `openmls` store (key package private keys, group state), base64 key → base64 value.
    #[serde(default)]
    pub mls: Vec<(String, String)>,
    /// The groups this device is in: server id → MLS group id, base64.
    #[serde(default)]
    pub groups: BTreeMap<i64, String>,
    /// Pinned identity keys per `"<user>:<device>"`.
    pub identities: HashMap<String, String>,
    /// Decrypted payloads per message id (an Olm message can be decrypted only once).
    pub plaintexts: BTreeMap<i64, Value>,
    /// Per peer device, the id of the last session-reset request this device sent to it.
    #[serde(default)]
    pub resets: HashMap<String, i64>,
    /// Per conversation peer, the newest message id this device has caught up to.
    #[serde(default)]
    pub synced: HashMap<i64, i64>,
}

const KEY_FILE: &str = "device.key";
const STATE_FILE: &str = "state.bin";
const LOCK_FILE: &str = "lock";
/// The Unix socket a running `listen` accepts other processes' commands on.
pub const CONTROL_SOCKET: &str = "control.sock";

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable only once the directory is.
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok::<_, std::io::Error>(())
    })();
    written.with_context(|| format!("write {}", path.display()))
}

fn create_home(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))
}

/// An exclusive lock on a home directory, held until dropped (the OS releases it if the process dies).
#[derive(Debug)]
pub struct HomeLock {
    dir: PathBuf,
    _file: std::fs::File,
}

impl HomeLock {
    /// Takes the lock of `dir` (created if needed) if no other process holds it.
    pub fn try_acquire(dir: &Path) -> anyhow::Result<Option<Self>> {
        create_home(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow!(e).context(format!("lock {}", path.display())));
            }
        }
        // The holder's pid, for the message another process shows.
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Some(Self { dir: dir.to_owned(), _file: file }))
    }

    /// Takes the lock of `dir` or explains who holds it.
    pub fn acquire(dir: &Path) -> anyhow::Result<Self> {
        Self::try_acquire(dir)?.ok_or_else(|| anyhow!("{}", in_use(dir)))
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// "`dir` is in use by another messenger process (pid N)".
pub fn in_use(dir: &Path) -> String {
    let pid = std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap_or_default();
    let pid = pid.trim();
    let holder = if pid.is_empty() { String::new() } else { format!(" (pid {pid})") };
    format!("{} is in use by another messenger process{holder}: one home is one device", dir.display())
}

/// A locked home directory and the passphrase that wraps its state key, if any.
#[derive(Debug)]
pub struct Home {
    lock: HomeLock,
    passphrase: Option<String>,
}

impl Home {
    /// Locks `dir` for this process (an error names the holder when another process has it).
    pub fn lock(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self::from(HomeLock::acquire(dir)?))
    }

    /// Wraps (on creation) or unwraps (on open) the state key with `passphrase`.
    #[must_use]
    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(passphrase.into());
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.lock.dir()
    }

    /// Whether the state key of this home is wrapped by a passphrase.
    pub fn is_protected(&self) -> bool {
        std::fs::read(self.dir().join(KEY_FILE)).is_ok_and(|b| b.starts_with(WRAPPED_MAGIC))
    }

    /// The state key, created on first use (wrapped when a passphrase is set).
    pub fn key(&self) -> anyhow::Result<[u8; 32]> {
        let path = self.dir().join(KEY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = crate::crypto::random();
                let stored = match &self.passphrase {
                    Some(p) => wrap(&key, p)?,
                    None => key.to_vec(),
                };
                write_private(&path, &stored)?;
                return Ok(key);
            }
            Err(e) => return Err(anyhow!(e).context(format!("read {}", path.display()))),
        };
        if let Some(wrapped) = bytes.strip_prefix(WRAPPED_MAGIC) {
            let passphrase = self.passphrase.as_deref().ok_or_else(|| {
                anyhow!("{} is protected by a passphrase (set MESSENGER_PASSPHRASE)", self.dir().display())
            })?;
            return unwrap(wrapped, passphrase).ok_or_else(|| anyhow!("wrong passphrase for {}", self.dir().display()));
        }
        bytes.try_into().map_err(|_| anyhow!("{} is corrupt", path.display()))
    }

    /// Whether a device already lives here.
    pub fn has_device(&self) -> bool {
        self.dir().join(STATE_FILE).exists()
    }
}

impl From<HomeLock> for Home {
    fn from(lock: HomeLock) -> Self {
        Self { lock, passphrase: None }
    }
}

/// `device.key` wrapped by a passphrase: magic ‖ salt (16) ‖ nonce (12) ‖ AES-256-GCM(KEK, key), where the
/// KEK is Argon2id(passphrase, salt) with the argon2 crate's default cost (19 MiB, 2 passes).
const WRAPPED_MAGIC: &[u8] = b"MSGRKEY1";

fn kek(passphrase: &str, salt: &[u8]) -> anyhow::Result<Aes256Gcm> {
    let mut out = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(passphrase.as_bytes(), salt, &mut out)
        .map_err(|e| anyhow!("derive the passphrase key: {e}"))?;
    Aes256Gcm::new_from_slice(&out).map_err(|_| anyhow!("bad key"))
}

fn wrap(key: &[u8; 32], passphrase: &str) -> anyhow::Result<Vec<u8>> {
    if passphrase.is_empty() {
        bail!("the passphrase is empty");
    }
    let salt: [u8; 16] = crate::crypto::random();
    let nonce: [u8; 12] = crate::crypto::random();
    let sealed = kek(passphrase, &salt)?
        .encrypt(Nonce::from_slice(&nonce), key.as_slice())
        .map_err(|_| anyhow!("encryption failed"))?;
    Ok([WRAPPED_MAGIC, &salt, &nonce, &sealed].concat())
}

fn unwrap(wrapped: &[u8], passphrase: &str) -> Option<[u8; 32]> {
    let (salt, rest) = wrapped.split_at_checked(16)?;
    let (nonce, sealed) = rest.split_at_checked(12)?;
    let key = kek(passphrase, salt).ok()?.decrypt(Nonce::from_slice(nonce), sealed).ok()?;
    key.try_into().ok()
}

/// Writes the state, encrypted.
pub fn save(home: &Home, key: &[u8; 32], saved: &Saved) -> anyhow::Result<()> {
    let plain = serde_json::to_vec(saved)?;
    let nonce: [u8; 12] = crate::crypto::random();
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| anyhow!("bad key"))?;
    let mut out = nonce.to_vec();
    out.extend(cipher.encrypt(Nonce::from_slice(&nonce), plain.as_slice()).map_err(|_| anyhow!("encryption failed"))?);
    write_private(&home.dir().join(STATE_FILE), &out)
}

/// Reads the state of a home.
pub fn load(home: &Home) -> anyhow::Result<(Saved, [u8; 32])> {
    let dir = home.dir();
    let bytes = std::fs::read(dir.join(STATE_FILE))
        .with_context(|| format!("no device in {} (register or login first)", dir.display()))?;
    let key = home.key()?;
    if bytes.len() < 12 {
        bail!("{} is corrupt", dir.join(STATE_FILE).display());
    }
    let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| anyhow!("bad key"))?;
    let plain = cipher
        .decrypt(Nonce::from_slice(&bytes[..12]), &bytes[12..])
        .map_err(|_| anyhow!("{} failed authentication", dir.join(STATE_FILE).display()))?;
    Ok((serde_json::from_slice(&plain)?, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_home_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = HomeLock::try_acquire(dir.path()).unwrap().expect("free home");
        assert!(HomeLock::try_acquire(dir.path()).unwrap().is_none());
        let message = HomeLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
        drop(first);
        assert!(HomeLock::try_acquire(dir.path()).unwrap().is_some());
    }

    #[test]
    fn a_wrapped_key_opens_only_with_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let created = Home::lock(dir.path()).unwrap().with_passphrase("tr0ub4dor");
        let key = created.key().unwrap();
        assert!(created.is_protected());
        let stored = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
        assert!(!stored.windows(32).any(|w| w == key), "the raw key is on disk");
        drop(created);
        let home = Home::lock(dir.path()).unwrap();
        assert!(home.key().unwrap_err().to_string().contains("MESSENGER_PASSPHRASE"));
        let home = home.with_passphrase("wrong");
        assert!(home.key().unwrap_err().to_string().contains("wrong passphrase"));
        let home = Home::from(home.lock).with_passphrase("tr0ub4dor");
        assert_eq!(home.key().unwrap(), key);
    }

    #[test]
    fn an_unprotected_key_is_stable_and_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let home = Home::lock(&dir.path().join("h")).unwrap();
        let key = home.key().unwrap();
        assert_eq!(home.key().unwrap(), key);
        assert!(!home.is_protected());
        for name in [KEY_FILE, LOCK_FILE] {
            let mode = std::fs::metadata(home.dir().join(name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        assert_eq!(std::fs::metadata(home.dir()).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
