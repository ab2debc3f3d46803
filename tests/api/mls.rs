//! The MLS key-package directory (API.md §15.1): packages verified on upload, counted, claimed at most once
//! (concurrently too), the last resort never consumed, and gone with their device or its identity.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use messenger_client::crypto::{Crypto, b64, unb64};
use messenger_client::mls::{CIPHERSUITE, DeviceSigner, Mls};
use messenger_tests::{TestApp, TestUser};
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, KeyPackage, Lifetime, MlsMessageBodyIn, MlsMessageIn,
    MlsMessageOut, SignaturePublicKey,
};
use serde_json::{Value, json};
use vodozemac::olm::Account;

/// A user whose device published its identity keys, with its MLS state.
pub(crate) struct Device {
    pub(crate) user: TestUser,
    pub(crate) crypto: Crypto,
    pub(crate) mls: Mls,
}

pub(crate) async fn device(app: &TestApp) -> Device {
    let user = app.user().await;
    let mut crypto = Crypto::new();
    user.put("/keys", Some(&serde_json::to_value(crypto.initial_keys(0)).unwrap())).await.expect(200);
    Device { user, crypto, mls: Mls::default() }
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

impl Device {
    fn identity(&self) -> String {
        format!("{}:{}", self.user.id, self.user.device_id)
    }

    pub(crate) fn packages(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| self.mls.key_package(&self.crypto.account, self.user.id, &self.user.device_id, false).unwrap())
            .collect()
    }

    fn last_resort(&self) -> String {
        self.mls.key_package(&self.crypto.account, self.user.id, &self.user.device_id, true).unwrap()
    }

    /// A package built with openmls directly: any ciphersuite, lifetime, credential identity and signer.
    fn package_with(&self, suite: Ciphersuite, lifetime: Option<Lifetime>, identity: &str, signer: &Account) -> String {
        let mut builder = KeyPackage::builder();
        if let Some(lifetime) = lifetime {
            builder = builder.key_package_lifetime(lifetime);
        }
        let credential = CredentialWithKey {
            credential: BasicCredential::new(identity.as_bytes().to_vec()).into(),
            signature_key: SignaturePublicKey::from(signer.identity_keys().ed25519.as_bytes().to_vec()),
        };
        let bundle = builder.build(suite, &self.mls, &DeviceSigner(signer), credential).unwrap();
        b64(&MlsMessageOut::from(bundle.key_package().clone()).tls_serialize_detached().unwrap())
    }

    async fn count(&self) -> Value {
        self.user.get("/mls/key-packages/count").await.expect(200)
    }
}

/// The credential identity of a claimed package, parsed as a client would.
fn identity_of(package: &str) -> String {
    let MlsMessageBodyIn::KeyPackage(package) =
        MlsMessageIn::tls_deserialize_exact(unb64(package).unwrap()).unwrap().extract()
    else {
        panic!("not a key package")
    };
    let credential = BasicCredential::try_from(package.unverified_credential().credential).unwrap();
    String::from_utf8(credential.identity().to_vec()).unwrap()
}

#[tokio::test]
async fn key_packages_are_counted_claimed_once_each_and_the_last_resort_is_never_consumed() {
    let app = TestApp::spawn().await;
    let owner = device(&app).await;
    let claimer = app.user().await;
    assert_eq!(
        owner.count().await,
        json!({"device_id": owner.user.device_id, "key_package_count": 0, "has_last_resort": false})
    );

    let packages = owner.packages(3);
    let last = owner.last_resort();
    let body = json!({"key_packages": packages, "last_resort": last});
    let expected = json!({"device_id": owner.user.device_id, "key_package_count": 3, "has_last_resort": true});
    assert_eq!(owner.user.put("/mls/key-packages", Some(&body)).await.expect(200), expected);
    assert_eq!(
        owner.user.put("/mls/key-packages", Some(&body)).await.expect(200),
        expected,
        "a package is stored once"
    );
    assert_eq!(owner.count().await, expected);

    let claim = json!({"user_ids": [owner.user.id]});
    let mut handed = HashSet::new();
    for _ in 0..3 {
        let r = claimer.post("/mls/key-packages/claim", Some(&claim)).await.expect(200);
        let list = r["key_packages"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{r}");
        assert_eq!(list[0]["user_id"], owner.user.id);
        assert_eq!(list[0]["device_id"], owner.user.device_id.as_str());
        assert_eq!(list[0]["last_resort"], false);
        assert_eq!(identity_of(list[0]["key_package"].as_str().unwrap()), owner.identity());
        handed.insert(list[0]["key_package"].as_str().unwrap().to_owned());
    }
    assert_eq!(handed, packages.iter().cloned().collect::<HashSet<_>>(), "each ordinary package exactly once");
    for _ in 0..2 {
        let r = claimer.post("/mls/key-packages/claim", Some(&claim)).await.expect(200);
        assert_eq!(r["key_packages"][0]["last_resort"], true);
        assert_eq!(r["key_packages"][0]["key_package"], last.as_str());
    }
    assert_eq!(owner.count().await["key_package_count"], 0);
    assert_eq!(owner.count().await["has_last_resort"], true, "the last resort is not consumed");

    // A package already handed out is not stored again when re-uploaded: it would reach a second group.
    let again = json!({"key_packages": [packages[0]]});
    assert_eq!(owner.user.put("/mls/key-packages", Some(&again)).await.expect(200)["key_package_count"], 0);
    // A new last resort replaces the old one.
    let newer = owner.last_resort();
    owner.user.put("/mls/key-packages", Some(&json!({"last_resort": newer}))).await.expect(200);
    let r = claimer.post("/mls/key-packages/claim", Some(&claim)).await.expect(200);
    assert_eq!(r["key_packages"][0]["key_package"], newer.as_str());
    // One package cannot be both: an ordinary one offered as the last resort is refused.
    let ordinary = owner.packages(1);
    owner.user.put("/mls/key-packages", Some(&json!({"key_packages": ordinary}))).await.expect(200);
    let both = json!({"last_resort": ordinary[0]});
    owner.user.put("/mls/key-packages", Some(&both)).await.expect_error(400, "invalid_key_package");
    assert_eq!(
        owner.count().await,
        json!({"device_id": owner.user.device_id, "key_package_count": 1, "has_last_resort": true})
    );
}

#[tokio::test]
async fn forged_foreign_expired_or_malformed_key_packages_are_refused_and_store_nothing() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_KEY_UPLOAD", "1000/3600")]).await;
    let owner = device(&app).await;
    let other = device(&app).await;
    let stranger = Account::new();
    let me = owner.identity();
    let account = &owner.crypto.account;
    let now = now_s();
    let mut flipped = unb64(&owner.packages(1)[0]).unwrap();
    *flipped.last_mut().unwrap() ^= 1;
    let other_suite = Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519;
    let cases: Vec<(&str, String)> = vec![
        ("not base64", "not base64!".into()),
        ("empty", String::new()),
        ("garbage", b64(&[0, 1, 0, 5, 1, 2, 3])),
        ("a signature bit flipped", b64(&flipped)),
        ("another device's package", other.packages(1).remove(0)),
        (
            "my identity, another device id",
            owner.package_with(CIPHERSUITE, None, &format!("{}:other", owner.user.id), account),
        ),
        ("my identity, a key the directory does not have", owner.package_with(CIPHERSUITE, None, &me, &stranger)),
        ("another ciphersuite", owner.package_with(other_suite, None, &me, account)),
        ("expired", owner.package_with(CIPHERSUITE, Some(Lifetime::init(now - 7200, now - 3600)), &me, account)),
        ("not valid yet", owner.package_with(CIPHERSUITE, Some(Lifetime::init(now + 3600, now + 7200)), &me, account)),
        (
            "a lifetime of a year",
            owner.package_with(CIPHERSUITE, Some(Lifetime::init(now - 60, now + 365 * 86_400)), &me, account),
        ),
        ("too large", b64(&vec![0u8; 17 * 1024])),
    ];
    let good = owner.packages(2);
    for (what, bad) in &cases {
        for body in [json!({"key_packages": [good[0], bad, good[1]]}), json!({"last_resort": bad})] {
            let r = owner.user.put("/mls/key-packages", Some(&body)).await;
            assert_eq!(
                (r.status.as_u16(), r.body["code"].as_str()),
                (400, Some("invalid_key_package")),
                "{what}: {}",
                r.text
            );
        }
    }
    assert_eq!(owner.count().await["key_package_count"], 0, "a refused upload stores none of its packages");
    assert_eq!(owner.count().await["has_last_resort"], false);
    // The same builder with the right parameters is accepted: the cases above fail for what they change.
    let fine = owner.package_with(CIPHERSUITE, Some(Lifetime::init(now - 60, now + 86_400)), &me, account);
    owner.user.put("/mls/key-packages", Some(&json!({"key_packages": [fine]}))).await.expect(200);

    let too_many = json!({"key_packages": owner.packages(101)});
    owner.user.put("/mls/key-packages", Some(&too_many)).await.expect_error(400, "too_many_key_packages");
    let ninety_nine = json!({"key_packages": owner.packages(99)});
    assert_eq!(owner.user.put("/mls/key-packages", Some(&ninety_nine)).await.expect(200)["key_package_count"], 100);
    let one_more = json!({"key_packages": owner.packages(1)});
    owner.user.put("/mls/key-packages", Some(&one_more)).await.expect_error(400, "too_many_key_packages");
    assert_eq!(owner.count().await["key_package_count"], 100);

    // A device without identity keys has nothing to bind packages to.
    let keyless = app.user().await;
    let body = json!({"key_packages": owner.packages(1)});
    keyless.put("/mls/key-packages", Some(&body)).await.expect_error(409, "no_device_keys");
}

#[tokio::test]
async fn concurrent_claims_never_hand_out_the_same_package() {
    let app = TestApp::spawn().await;
    let owner = device(&app).await;
    let packages = owner.packages(20);
    let last = owner.last_resort();
    let body = json!({"key_packages": packages, "last_resort": last});
    owner.user.put("/mls/key-packages", Some(&body)).await.expect(200);
    let mut claimers = Vec::new();
    for _ in 0..10 {
        claimers.push(app.user().await);
    }
    let claim = json!({"user_ids": [owner.user.id]});
    let answers = futures_util::future::join_all(
        claimers.iter().flat_map(|c| (0..3).map(|_| c.post("/mls/key-packages/claim", Some(&claim)))),
    )
    .await;
    let mut ordinary = Vec::new();
    let mut last_resorts = 0;
    for answer in answers {
        let r = answer.expect(200);
        let entry = &r["key_packages"][0];
        if entry["last_resort"] == true {
            assert_eq!(entry["key_package"], last.as_str());
            last_resorts += 1;
        } else {
            ordinary.push(entry["key_package"].as_str().unwrap().to_owned());
        }
    }
    let distinct: HashSet<_> = ordinary.iter().cloned().collect();
    assert_eq!(distinct.len(), ordinary.len(), "a package was handed out twice");
    assert_eq!(distinct, packages.iter().cloned().collect::<HashSet<_>>());
    assert_eq!(last_resorts, 10);
    assert_eq!(owner.count().await["key_package_count"], 0);
}

#[tokio::test]
async fn claims_name_live_users_and_skip_devices_without_packages() {
    let app = TestApp::spawn().await;
    let owner = device(&app).await;
    let without = device(&app).await;
    let claimer = app.user().await;
    let packages = owner.packages(2);
    owner.user.put("/mls/key-packages", Some(&json!({"key_packages": packages}))).await.expect(200);
    for bad in [json!({"user_ids": []}), json!({"user_ids": (1..=51).collect::<Vec<i64>>()}), json!({})] {
        claimer.post("/mls/key-packages/claim", Some(&bad)).await.expect_error(422, "validation_error");
    }
    let unknown = json!({"user_ids": [owner.user.id, 999_999]});
    claimer.post("/mls/key-packages/claim", Some(&unknown)).await.expect_error(404, "user_not_found");
    assert_eq!(owner.count().await["key_package_count"], 2, "a refused claim takes nothing");
    // Duplicates name one user; a user whose devices have no packages is absent.
    let r = claimer
        .post("/mls/key-packages/claim", Some(&json!({"user_ids": [owner.user.id, without.user.id, owner.user.id]})))
        .await
        .expect(200);
    let list = r["key_packages"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{r}");
    assert_eq!(list[0]["user_id"], owner.user.id);
    without.user.delete_account().await.expect(204);
    let gone = json!({"user_ids": [without.user.id]});
    claimer.post("/mls/key-packages/claim", Some(&gone)).await.expect_error(404, "user_not_found");
}

#[tokio::test]
async fn packages_die_with_their_device_and_with_its_identity_keys() {
    let app = TestApp::spawn().await;
    let owner = device(&app).await;
    let claimer = app.user().await;
    // A second device of the same account, with packages of its own.
    let login = json!({"phone": owner.user.phone, "password": owner.user.password});
    let second = app.client().call("POST", "/auth/login", None, Some(&login)).await.expect(200);
    let (token, second_id) =
        (second["access_token"].as_str().unwrap().to_owned(), second["device_id"].as_str().unwrap().to_owned());
    let mut second_crypto = Crypto::new();
    let keys = serde_json::to_value(second_crypto.initial_keys(0)).unwrap();
    owner.user.client.call("PUT", "/keys", Some(&token), Some(&keys)).await.expect(200);
    let second_mls = Mls::default();
    let second_packages: Vec<String> = (0..2)
        .map(|_| second_mls.key_package(&second_crypto.account, owner.user.id, &second_id, false).unwrap())
        .collect();
    let body = json!({"key_packages": second_packages});
    owner.user.client.call("PUT", "/mls/key-packages", Some(&token), Some(&body)).await.expect(200);
    owner
        .user
        .put("/mls/key-packages", Some(&json!({"key_packages": owner.packages(2), "last_resort": owner.last_resort()})))
        .await
        .expect(200);

    let claim = json!({"user_ids": [owner.user.id]});
    let r = claimer.post("/mls/key-packages/claim", Some(&claim)).await.expect(200);
    let devices: HashSet<_> =
        r["key_packages"].as_array().unwrap().iter().map(|p| p["device_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(devices, HashSet::from([owner.user.device_id.clone(), second_id.clone()]), "one package per device");

    // Removing the second device removes its packages.
    owner.user.delete(&format!("/devices/{second_id}")).await.expect(204);
    let r = claimer.post("/mls/key-packages/claim", Some(&claim)).await.expect(200);
    let list = r["key_packages"].as_array().unwrap();
    assert_eq!((list.len(), list[0]["device_id"].as_str()), (1, Some(owner.user.device_id.as_str())));
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM mls_key_package WHERE device_id = '{second_id}'")).await, 0);

    // New identity keys void every package signed with the old signing key, the last resort too, and
    // packages signed with the old key are refused from then on.
    let stale = owner.packages(1);
    let mut fresh = serde_json::to_value(Crypto::new().initial_keys(0)).unwrap();
    fresh["password"] = json!(owner.user.password);
    owner.user.put("/keys", Some(&fresh)).await.expect(200);
    assert_eq!(
        owner.count().await,
        json!({"device_id": owner.user.device_id, "key_package_count": 0, "has_last_resort": false})
    );
    owner
        .user
        .put("/mls/key-packages", Some(&json!({"key_packages": stale})))
        .await
        .expect_error(400, "invalid_key_package");
    let r = claimer.post("/mls/key-packages/claim", Some(&claim)).await.expect(200);
    assert!(r["key_packages"].as_array().unwrap().is_empty(), "{r}");
}

#[tokio::test]
async fn the_client_publishes_and_tops_up_key_packages_on_its_own() {
    let app =
        TestApp::spawn_with(&[("RATE_LIMIT_CLAIM_DEVICE", "1000/3600"), ("RATE_LIMIT_CLAIM_TARGET", "1000/3600")])
            .await;
    let phone = messenger_tests::unique_phone();
    let mut client =
        messenger_client::Client::register(&app.base, None, ("Mls", "Client", &phone), "a long password", "laptop")
            .await
            .unwrap();
    let count = client.api.call(wire::mls::CountKeyPackages, &wire::Empty {}).await.unwrap();
    assert_eq!((count.key_package_count, count.has_last_resort), (50, true));
    let claimer = app.user().await;
    let claim = json!({"user_ids": [client.user_id]});
    for _ in 0..31 {
        let r = claimer.post("/mls/key-packages/claim", Some(&claim)).await.expect(200);
        let entry = &r["key_packages"][0];
        assert_eq!(entry["last_resort"], false);
        assert_eq!(
            identity_of(entry["key_package"].as_str().unwrap()),
            format!("{}:{}", client.user_id, client.device_id)
        );
    }
    client.top_up_keys().await.unwrap();
    let topped = client.api.call(wire::mls::CountKeyPackages, &wire::Empty {}).await.unwrap();
    assert_eq!((topped.key_package_count, topped.has_last_resort), (19 + 50, true), "below 20 left: 50 more");
    client.top_up_keys().await.unwrap();
    let same = client.api.call(wire::mls::CountKeyPackages, &wire::Empty {}).await.unwrap();
    assert_eq!(same.key_package_count, 69, "enough left: nothing uploaded");
}

#[tokio::test]
async fn claims_are_rate_limited_and_a_device_is_not_drained_past_its_budget() {
    let app =
        TestApp::spawn_with(&[("RATE_LIMIT_CLAIM_DEVICE", "2/3600"), ("RATE_LIMIT_CLAIM_TARGET", "3/3600")]).await;
    let owner = device(&app).await;
    let last = owner.last_resort();
    let body = json!({"key_packages": owner.packages(6), "last_resort": last});
    owner.user.put("/mls/key-packages", Some(&body)).await.expect(200);
    let claim = json!({"user_ids": [owner.user.id]});
    let first = app.user().await;
    for _ in 0..2 {
        let r = first.post("/mls/key-packages/claim", Some(&claim)).await.expect(200);
        assert_eq!(r["key_packages"][0]["last_resort"], false);
    }
    first.post("/mls/key-packages/claim", Some(&claim)).await.expect_error(429, "rate_limited");
    assert_eq!(owner.count().await["key_package_count"], 4, "a refused claim takes nothing");
    // Past the device's budget for the window, from all callers together, claims get the last resort.
    let second = app.user().await;
    let r = second.post("/mls/key-packages/claim", Some(&claim)).await.expect(200);
    assert_eq!(r["key_packages"][0]["last_resort"], false);
    let r = second.post("/mls/key-packages/claim", Some(&claim)).await.expect(200);
    assert_eq!(
        (r["key_packages"][0]["last_resort"].as_bool(), r["key_packages"][0]["key_package"].as_str()),
        (Some(true), Some(last.as_str()))
    );
    assert_eq!(owner.count().await["key_package_count"], 3, "the rest stay for later");
}
