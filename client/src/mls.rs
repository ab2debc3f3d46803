//! MLS (RFC 9420) state of this device for group chats (API.md §15), on `openmls` with RustCrypto.
//!
//! The device's MLS signature key is its directory signing key (the vodozemac account's Ed25519 key): a leaf
//! is bound to a directory device, and the private key never leaves the account. What `openmls` stores
//! (key package private keys, group state) is kept in memory and saved with the rest of the device state,
//! encrypted at rest ([`crate::store`]).

use anyhow::{Context as _, anyhow, bail};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Capabilities, Ciphersuite, CredentialWithKey, ExtensionType, GroupId, KeyPackage, LeafNodeIndex,
    MlsGroup, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut, ProcessedMessageContent,
    ProtocolVersion, SignaturePublicKey, StagedWelcome,
};
use openmls_rust_crypto::{MemoryStorage, RustCrypto};
use openmls_traits::OpenMlsProvider;
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use vodozemac::olm::Account;

use crate::crypto::{b64, unb64};

/// The one ciphersuite of API.md §15.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Signs MLS objects with the device's directory key.
pub struct DeviceSigner<'a>(pub &'a Account);

impl Signer for DeviceSigner<'_> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.0.sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// The `openmls` provider of this device: RustCrypto and an in-memory store saved with the device.
#[derive(Default)]
pub struct Mls {
    crypto: RustCrypto,
    storage: MemoryStorage,
}

impl OpenMlsProvider for Mls {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}

impl Mls {
    /// The stored entries, base64 key → base64 value, for saving.
    pub fn export(&self) -> Vec<(String, String)> {
        let values = self.storage.values.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out: Vec<(String, String)> = values.iter().map(|(k, v)| (b64(k), b64(v))).collect();
        out.sort();
        out
    }

    /// Restores what [`Mls::export`] saved.
    pub fn import(entries: &[(String, String)]) -> anyhow::Result<Self> {
        let mls = Self::default();
        {
            let mut values = mls.storage.values.write().map_err(|_| anyhow!("MLS store poisoned"))?;
            for (k, v) in entries {
                values.insert(unb64(k)?, unb64(v)?);
            }
        }
        Ok(mls)
    }

    /// The leaf credential of device `device_id` of `user_id` with the account's signing key.
    pub fn credential(account: &Account, user_id: i64, device_id: &str) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(format!("{user_id}:{device_id}").into_bytes()).into(),
            signature_key: SignaturePublicKey::from(account.identity_keys().ed25519.as_bytes().to_vec()),
        }
    }

    /// A new key package (its private keys kept in this store) as the base64 `MLSMessage` the directory
    /// takes (`PUT /mls/key-packages`); `last_resort` marks it with the last-resort extension.
    pub fn key_package(
        &self,
        account: &Account,
        user_id: i64,
        device_id: &str,
        last_resort: bool,
    ) -> anyhow::Result<String> {
        // A leaf lists the extensions its packages carry (RFC 9420 §7.2): the last-resort one, on every
        // package of this device so all its leaves look alike.
        let capabilities = Capabilities::builder().extensions(vec![ExtensionType::LastResort]).build();
        let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities);
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(CIPHERSUITE, self, &DeviceSigner(account), Self::credential(account, user_id, device_id))
            .context("build an MLS key package")?;
        let message = MlsMessageOut::from(bundle.key_package().clone());
        Ok(b64(&message.tls_serialize_detached().context("serialise a key package")?))
    }

    /// A new group with id `group_id` and this device as its only member (ratchet tree in welcomes).
    pub fn create_group(
        &self,
        account: &Account,
        user_id: i64,
        device_id: &str,
        group_id: &[u8],
    ) -> anyhow::Result<MlsGroup> {
        MlsGroup::builder()
            .with_group_id(GroupId::from_slice(group_id))
            .ciphersuite(CIPHERSUITE)
            .use_ratchet_tree_extension(true)
            .with_capabilities(Capabilities::builder().extensions(vec![ExtensionType::LastResort]).build())
            .build(self, &DeviceSigner(account), Self::credential(account, user_id, device_id))
            .context("create an MLS group")
    }

    /// A commit adding the devices of `packages` (claimed with `POST /mls/key-packages/claim`) and its
    /// welcome, both base64. Each package must verify, carry the credential `"<user_id>:<device_id>"` of its
    /// claim and, as its signature key, the device's directory key that `directory_key` returns: a leaf is
    /// bound to a directory device. Merge with [`MlsGroup::merge_pending_commit`] once the server accepted it.
    pub fn add(
        &self,
        account: &Account,
        group: &mut MlsGroup,
        packages: &[wire::mls::ClaimedKeyPackage],
        directory_key: impl Fn(i64, &str) -> Option<Vec<u8>>,
    ) -> anyhow::Result<(String, String)> {
        let mut verified = Vec::new();
        for claimed in packages {
            let message = MlsMessageIn::tls_deserialize_exact(unb64(&claimed.key_package)?)?;
            let MlsMessageBodyIn::KeyPackage(package) = message.extract() else { bail!("not a key package") };
            let package = package.validate(self.crypto(), ProtocolVersion::Mls10).context("invalid key package")?;
            let leaf = package.leaf_node();
            let credential = BasicCredential::try_from(leaf.credential().clone())?;
            if credential.identity() != format!("{}:{}", claimed.user_id, claimed.device_id).as_bytes() {
                bail!("key package of {}:{} names another device", claimed.user_id, claimed.device_id);
            }
            let expected = directory_key(claimed.user_id, &claimed.device_id).context("device not in the directory")?;
            if leaf.signature_key().as_slice() != expected.as_slice() {
                bail!("key package of {}:{} is not signed with its directory key", claimed.user_id, claimed.device_id);
            }
            verified.push(package);
        }
        let (commit, welcome, _) = group.add_members(self, &DeviceSigner(account), &verified).context("add members")?;
        Ok((b64(&commit.tls_serialize_detached()?), b64(&welcome.tls_serialize_detached()?)))
    }

    /// A commit removing the leaves of `devices` (`"<user_id>:<device_id>"` credentials), base64.
    pub fn remove(&self, account: &Account, group: &mut MlsGroup, devices: &[(i64, String)]) -> anyhow::Result<String> {
        let wanted: Vec<Vec<u8>> = devices.iter().map(|(u, d)| format!("{u}:{d}").into_bytes()).collect();
        let leaves: Vec<LeafNodeIndex> = group
            .members()
            .filter(|m| {
                BasicCredential::try_from(m.credential.clone()).is_ok_and(|c| wanted.iter().any(|w| w == c.identity()))
            })
            .map(|m| m.index)
            .collect();
        let (commit, _, _) = group.remove_members(self, &DeviceSigner(account), &leaves).context("remove members")?;
        Ok(b64(&commit.tls_serialize_detached()?))
    }

    /// Joins a group from its welcome (base64).
    pub fn join(&self, welcome: &str) -> anyhow::Result<MlsGroup> {
        let message = MlsMessageIn::tls_deserialize_exact(unb64(welcome)?)?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else { bail!("not a welcome") };
        let config = MlsGroupJoinConfig::builder().use_ratchet_tree_extension(true).build();
        let staged = StagedWelcome::new_from_welcome(self, &config, welcome, None).context("process the welcome")?;
        staged.into_group(self).context("join the group")
    }

    /// Processes a commit or an application message (base64) of `group`: a commit is merged (the group moves
    /// to the next epoch) and gives `None`; an application message gives its plaintext.
    pub fn process(&self, group: &mut MlsGroup, message: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let message = MlsMessageIn::tls_deserialize_exact(unb64(message)?)?;
        let protocol = message.try_into_protocol_message().context("not a group message")?;
        let processed = group.process_message(self, protocol).context("process the group message")?;
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(m) => Ok(Some(m.into_bytes())),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                group.merge_staged_commit(self, *staged).context("merge the commit")?;
                Ok(None)
            }
            _ => bail!("unexpected group message"),
        }
    }

    /// A commit that updates this device's leaf (new keys, no change of membership), base64. Merge with
    /// [`MlsGroup::merge_pending_commit`] once the server accepted it.
    pub fn update(&self, account: &Account, group: &mut MlsGroup) -> anyhow::Result<String> {
        let bundle = group
            .self_update(self, &DeviceSigner(account), openmls::prelude::LeafNodeParameters::default())
            .context("update own leaf")?;
        Ok(b64(&bundle.commit().tls_serialize_detached()?))
    }

    /// Drops this device's commit that the server refused (`409 stale_epoch`), before it processes the commits
    /// it missed and commits again.
    pub fn discard_pending(&self, group: &mut MlsGroup) -> anyhow::Result<()> {
        group.clear_pending_commit(self.storage()).map_err(|e| anyhow!("clear the pending commit: {e:?}"))
    }

    /// Encrypts `plaintext` for `group` as a base64 `PrivateMessage`.
    pub fn encrypt(&self, account: &Account, group: &mut MlsGroup, plaintext: &[u8]) -> anyhow::Result<String> {
        let message = group.create_message(self, &DeviceSigner(account), plaintext).context("encrypt")?;
        Ok(b64(&message.tls_serialize_detached()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openmls::prelude::{KeyPackageBundle, KeyPackageRef, MlsMessageBodyIn, MlsMessageIn};
    use openmls_traits::storage::StorageProvider as _;

    fn reference(mls: &Mls, package: &str) -> KeyPackageRef {
        let message = MlsMessageIn::tls_deserialize_exact(unb64(package).unwrap()).unwrap();
        let MlsMessageBodyIn::KeyPackage(package) = message.extract() else { panic!("not a key package") };
        let package = package.validate(mls.crypto(), openmls::prelude::ProtocolVersion::Mls10).unwrap();
        package.hash_ref(mls.crypto()).unwrap()
    }

    #[test]
    fn saved_state_keeps_the_private_keys_of_published_packages() {
        let account = Account::new();
        let mls = Mls::default();
        let package = mls.key_package(&account, 7, "dev", false).unwrap();
        let key_ref = reference(&mls, &package);
        let restored = Mls::import(&mls.export()).unwrap();
        let bundle: Option<KeyPackageBundle> = restored.storage().key_package(&key_ref).unwrap();
        assert!(bundle.is_some(), "a package handed out after a restart must still be usable");
        assert!(Mls::default().storage().key_package::<_, KeyPackageBundle>(&key_ref).unwrap().is_none());
        assert_eq!(restored.export(), mls.export());
    }

    #[test]
    fn packages_carry_the_device_credential_and_directory_key() {
        let account = Account::new();
        let mls = Mls::default();
        for last_resort in [false, true] {
            let text = mls.key_package(&account, 7, "dev", last_resort).unwrap();
            let message = MlsMessageIn::tls_deserialize_exact(unb64(&text).unwrap()).unwrap();
            let MlsMessageBodyIn::KeyPackage(package) = message.extract() else { panic!("not a key package") };
            // openmls's own validation accepts it: the last-resort extension is listed in the capabilities.
            let package = package.validate(mls.crypto(), openmls::prelude::ProtocolVersion::Mls10).unwrap();
            assert_eq!(package.last_resort(), last_resort);
            assert_eq!(package.ciphersuite(), CIPHERSUITE);
            let leaf = package.leaf_node();
            assert_eq!(leaf.signature_key().as_slice(), account.identity_keys().ed25519.as_bytes());
            let credential = BasicCredential::try_from(leaf.credential().clone()).unwrap();
            assert_eq!(credential.identity(), b"7:dev");
        }
    }
}
