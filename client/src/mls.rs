//! MLS (RFC 9420) state of this device for group chats (API.md §15), on `openmls` with RustCrypto.
//!
//! The device's MLS signature key is its directory signing key (the vodozemac account's Ed25519 key): a leaf
//! is bound to a directory device, and the private key never leaves the account. What `openmls` stores
//! (key package private keys, group state) is kept in memory and saved with the rest of the device state,
//! encrypted at rest ([`crate::store`]).

use anyhow::{Context as _, anyhow};
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{
    BasicCredential, Capabilities, Ciphersuite, CredentialWithKey, ExtensionType, KeyPackage, MlsMessageOut,
    SignaturePublicKey,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use openmls::prelude::tls_codec::Deserialize as _;
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
