use messenger_client::crypto::{Crypto, b64, unb64};
use messenger_tests::{TestApp, TestUser};
use serde_json::{Value, json};

/// Adds the group order L to a little-endian scalar: the same signature, non-canonically encoded.
fn non_canonical(sig: &str) -> String {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut bytes = unb64(sig).unwrap();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(bytes[32 + i]) + u16::from(L[i]) + carry;
        bytes[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    b64(&bytes)
}

fn flip(text: &str) -> String {
    let mut bytes = unb64(text).unwrap();
    bytes[0] ^= 1;
    b64(&bytes)
}

async fn with_keys(app: &TestApp) -> (TestUser, Crypto, Value) {
    let user = app.user().await;
    let mut crypto = Crypto::new();
    let body = serde_json::to_value(crypto.initial_keys(5)).unwrap();
    let r = user.put("/keys", Some(&body)).await.expect(200);
    assert_eq!(r["one_time_key_count"], 5);
    assert_eq!(r["device_id"], user.device_id.as_str());
    (user, crypto, body)
}

#[tokio::test]
async fn forged_or_malformed_keys_are_rejected() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut crypto = Crypto::new();
    let good = serde_json::to_value(crypto.initial_keys(3)).unwrap();
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, u16, &str)> = vec![
        (
            "forged identity signature",
            Box::new(|b| b["identity_signature"] = json!(flip(b["identity_signature"].as_str().unwrap()))),
            400,
            "invalid_signature",
        ),
        (
            "non-canonical identity signature",
            Box::new(|b| b["identity_signature"] = json!(non_canonical(b["identity_signature"].as_str().unwrap()))),
            400,
            "invalid_signature",
        ),
        (
            "forged prekey signature",
            Box::new(|b| {
                b["signed_prekey"]["signature"] = json!(flip(b["signed_prekey"]["signature"].as_str().unwrap()))
            }),
            400,
            "invalid_signature",
        ),
        (
            "prekey signed for another id",
            Box::new(|b| b["signed_prekey"]["key_id"] = json!(b["signed_prekey"]["key_id"].as_u64().unwrap() + 1)),
            400,
            "invalid_signature",
        ),
        ("identity key of 31 bytes", Box::new(|b| b["identity_key"] = json!(b64(&[7; 31]))), 422, "validation_error"),
        (
            "signature of 63 bytes",
            Box::new(|b| b["identity_signature"] = json!(b64(&[7; 63]))),
            422,
            "validation_error",
        ),
        (
            "non-canonical base64",
            Box::new(|b| {
                let k = b["signing_key"].as_str().unwrap().trim_end_matches('=').to_owned();
                let mut c: Vec<char> = k.chars().collect();
                let last = c.pop().unwrap();
                let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                let idx = alphabet.find(last).unwrap();
                c.push(alphabet.chars().nth(idx ^ 1).unwrap());
                b["signing_key"] = json!(c.into_iter().collect::<String>());
            }),
            422,
            "validation_error",
        ),
        (
            "url-safe base64",
            Box::new(|b| {
                b["identity_key"] = json!(b["identity_key"].as_str().unwrap().replace('+', "-").replace('/', "_") + "-")
            }),
            422,
            "validation_error",
        ),
        (
            "key id over 32 bits",
            Box::new(|b| b["one_time_keys"][0]["key_id"] = json!(1u64 << 32)),
            422,
            "validation_error",
        ),
        (
            "no signed prekey on the first upload",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("signed_prekey");
            }),
            422,
            "validation_error",
        ),
        (
            "no identity on the first upload",
            Box::new(|b| {
                for k in ["identity_key", "signing_key", "identity_signature"] {
                    b.as_object_mut().unwrap().remove(k);
                }
            }),
            422,
            "validation_error",
        ),
    ];
    for (what, mutate, status, code) in cases {
        let mut body = good.clone();
        mutate(&mut body);
        let resp = user.put("/keys", Some(&body)).await;
        assert_eq!((resp.status.as_u16(), resp.body["code"].as_str()), (status, Some(code)), "{what}: {}", resp.text);
    }
    assert_eq!(
        user.get("/keys/count").await.expect(200),
        json!({"device_id": user.device_id, "one_time_key_count": 0, "signed_prekey_id": null})
    );
    user.put("/keys", Some(&good)).await.expect(200);
    user.put("/keys", Some(&good)).await.expect(200);
    assert_eq!(
        user.get("/keys/count").await.expect(200)["one_time_key_count"],
        3,
        "re-sending identical keys is a no-op"
    );
}

#[tokio::test]
async fn one_time_key_limits_and_conflicts() {
    let app = TestApp::spawn().await;
    let (user, mut crypto, _) = with_keys(&app).await;
    let too_many = serde_json::to_value(crypto.one_time_keys(101)).unwrap();
    user.put("/keys", Some(&too_many)).await.expect_error(400, "too_many_one_time_keys");
    let sixty = serde_json::to_value(crypto.one_time_keys(60)).unwrap();
    user.put("/keys", Some(&sixty)).await.expect(200);
    let more = serde_json::to_value(crypto.one_time_keys(40)).unwrap();
    user.put("/keys", Some(&more)).await.expect_error(400, "too_many_one_time_keys");
    assert_eq!(user.get("/keys/count").await.expect(200)["one_time_key_count"], 65, "a refused upload stores nothing");
    let mut conflict = serde_json::to_value(crypto.one_time_keys(1)).unwrap();
    conflict["one_time_keys"][0]["key_id"] = sixty["one_time_keys"][0]["key_id"].clone();
    user.put("/keys", Some(&conflict)).await.expect_error(409, "key_id_conflict");
}

#[tokio::test]
async fn the_directory_lists_devices_and_claims_fall_back_to_the_signed_prekey() {
    let app = TestApp::spawn().await;
    let (owner, _, body) = with_keys(&app).await;
    let other = app.user().await;
    let listed = other.get(&format!("/users/{}/devices", owner.id)).await.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["identity_key"], body["identity_key"]);
    assert!(listed[0]["device_name"].is_null(), "names are private");
    other.get("/users/999999/devices").await.expect_error(404, "user_not_found");
    for _ in 0..5 {
        let c = other.post("/keys/claim", Some(&json!({"user_id": owner.id}))).await.expect(200);
        assert_eq!(c["devices"][0]["fallback"], false);
    }
    let c = other.post("/keys/claim", Some(&json!({"user_id": owner.id}))).await.expect(200);
    assert_eq!(c["devices"][0]["fallback"], true);
    assert_eq!(c["devices"][0]["signed_prekey"], body["signed_prekey"]);
    let none = other.post("/keys/claim", Some(&json!({"user_id": owner.id, "device_ids": ["nope"]}))).await.expect(200);
    assert!(none["devices"].as_array().unwrap().is_empty());
    other.post("/keys/claim", Some(&json!({"user_id": 999_999}))).await.expect_error(404, "user_not_found");
}

#[tokio::test]
async fn claims_are_rate_limited_per_target_device() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_CLAIM_DEVICE", "2/3600")]).await;
    let (owner, _, _) = with_keys(&app).await;
    let other = app.user().await;
    for _ in 0..2 {
        other.post("/keys/claim", Some(&json!({"user_id": owner.id}))).await.expect(200);
    }
    other.post("/keys/claim", Some(&json!({"user_id": owner.id}))).await.expect_error(429, "rate_limited");
}

#[tokio::test]
async fn identity_changes_and_device_removal_are_announced() {
    let app = TestApp::spawn().await;
    let (owner, _, _) = with_keys(&app).await;
    let peer = app.user().await;
    let mut pw = app.ws(&peer.token).await;
    peer.send_via(&mut pw, owner.id, "hi").await;
    let second = app
        .client()
        .call("POST", "/auth/login", None, Some(&json!({"phone": owner.phone, "password": owner.password})))
        .await
        .expect(200);
    let second_token = second["access_token"].as_str().unwrap().to_owned();
    let mut other_device = app.ws(&second_token).await;

    // A new identity on the first device (with the password): old keys discarded, everyone told.
    let mut fresh = Crypto::new();
    let mut body = serde_json::to_value(fresh.initial_keys(0)).unwrap();
    body["password"] = json!(owner.password);
    let r = owner.put("/keys", Some(&body)).await.expect(200);
    assert_eq!(r["one_time_key_count"], 0);
    let expected = json!({"user_id": owner.id, "device_id": owner.device_id, "change": "identity_changed"});
    assert_eq!(pw.expect("key_change").await, expected);
    assert_eq!(other_device.expect("key_change").await, expected);

    // Removing a device: only one's own, it logs that device out and closes its connections.
    peer.delete(&format!("/devices/{}", owner.device_id)).await.expect_error(404, "device_not_found");
    let mut owner_ws = app.ws(&owner.token).await;
    let resp = owner.client.call("DELETE", &format!("/devices/{}", owner.device_id), Some(&second_token), None).await;
    assert_eq!(resp.status.as_u16(), 204);
    assert!(owner_ws.closed().await.is_some());
    owner.get("/me").await.expect_error(401, "invalid_token");
    let removed = json!({"user_id": owner.id, "device_id": owner.device_id, "change": "removed"});
    assert_eq!(pw.expect("key_change").await, removed);
    assert_eq!(other_device.expect("key_change").await, removed);
    assert!(peer.get(&format!("/users/{}/devices", owner.id)).await.expect(200).as_array().unwrap().is_empty());
}

#[tokio::test]
async fn replacing_an_identity_needs_the_password_and_a_stolen_token_is_not_enough() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PASSWORD_CHANGE", "3/900")]).await;
    let (owner, _, first) = with_keys(&app).await;
    let before = owner.get(&format!("/users/{}/devices", owner.id)).await.expect(200);
    let mut other = Crypto::new();
    let swap = serde_json::to_value(other.initial_keys(3)).unwrap();
    owner.put("/keys", Some(&swap)).await.expect_error(403, "invalid_password");
    let mut wrong = swap.clone();
    wrong["password"] = json!("not the password");
    owner.put("/keys", Some(&wrong)).await.expect_error(403, "invalid_password");
    assert_eq!(owner.get(&format!("/users/{}/devices", owner.id)).await.expect(200), before, "nothing changed");
    assert_eq!(owner.get("/keys/count").await.expect(200)["one_time_key_count"], 5, "the old keys stay");
    // Re-sending the same identity, or topping up keys, needs no password.
    let mut same = first.clone();
    same["one_time_keys"] = json!([]);
    owner.put("/keys", Some(&same)).await.expect(200);
    let mut right = swap.clone();
    right["password"] = json!(owner.password);
    owner.put("/keys", Some(&right)).await.expect(200);
    let after = owner.get(&format!("/users/{}/devices", owner.id)).await.expect(200);
    assert_eq!(after[0]["identity_key"], swap["identity_key"]);
    // Every password check under the token shares one budget: guessing is bounded.
    let mut again = Crypto::new();
    let mut guess = serde_json::to_value(again.initial_keys(0)).unwrap();
    guess["password"] = json!("another guess");
    owner.put("/keys", Some(&guess)).await.expect_error(429, "rate_limited");
}

#[tokio::test]
async fn envelopes_must_address_devices_of_the_two_users() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let stranger = app.user().await;
    let mut a = app.ws(&alice.token).await;
    let mut b = app.ws(&bob.token).await;
    let env = |user: i64, device: &str| json!({"user_id": user, "device_id": device, "ciphertext": "AAEC"});
    for envelopes in [
        json!([env(stranger.id, &stranger.device_id)]),
        json!([env(bob.id, &alice.device_id)]),
        json!([env(bob.id, "no-such-device")]),
        json!([env(bob.id, &bob.device_id), env(bob.id, &bob.device_id)]),
        json!([{"user_id": bob.id, "device_id": bob.device_id, "ciphertext": "not base64!"}]),
        // Blank text decodes to nothing, and padded text would be stored as clients cannot read it.
        json!([{"user_id": bob.id, "device_id": bob.device_id, "ciphertext": "   "}]),
        json!([{"user_id": bob.id, "device_id": bob.device_id, "ciphertext": " AAEC"}]),
        json!("nope"),
        json!((0..51).map(|_| env(bob.id, &bob.device_id)).collect::<Vec<_>>()),
    ] {
        a.send(
            &json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "m", "envelopes": envelopes}),
        )
        .await;
        assert_eq!(a.expect("error").await["code"], "invalid_envelope", "{envelopes}");
    }
    let big = "A".repeat(101 * 1024);
    a.send_fragmented(
        &json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x".repeat(20 * 1024),
        "envelopes": [{"user_id": bob.id, "device_id": bob.device_id, "ciphertext": big}]})
        .to_string(),
    )
    .await;
    assert_eq!(a.expect("error").await["code"], "payload_too_large");
    // A valid one reaches exactly its device, live and in history.
    a.send(&json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "m",
        "envelopes": [env(bob.id, &bob.device_id), env(alice.id, &alice.device_id)]}))
        .await;
    a.expect("message_sent").await;
    assert_eq!(b.expect("new_message").await["envelope"], "AAEC");
    assert_eq!(bob.get(&format!("/chats/{}/messages", alice.id)).await.expect(200)[0]["envelope"], "AAEC");
    let bob_other = app
        .client()
        .call("POST", "/auth/login", None, Some(&json!({"phone": bob.phone, "password": bob.password})))
        .await
        .expect(200);
    let page =
        bob.client.get(&format!("/chats/{}/messages", alice.id), bob_other["access_token"].as_str()).await.expect(200);
    assert!(page[0]["envelope"].is_null(), "another device gets no envelope");
}

#[tokio::test]
async fn the_legacy_key_exchange() {
    let app = TestApp::spawn().await;
    let with_key = app.user().await;
    let without = app
        .client()
        .call("POST", "/auth/register", None, Some(&json!({"first_name": "N", "last_name": "K", "phone": messenger_tests::unique_phone(), "password": "long enough"})))
        .await
        .expect(201);
    let r = with_key.post("/keys/exchange", Some(&json!({"user_id": with_key.id}))).await.expect(200);
    assert!(r["public_key"].as_str().unwrap().contains("BEGIN PUBLIC KEY"));
    with_key
        .post("/keys/exchange", Some(&json!({"user_id": without["user_id"]})))
        .await
        .expect_error(404, "no_public_key");
    with_key.post("/keys/exchange", Some(&json!({"user_id": 999_999}))).await.expect_error(404, "user_not_found");
}

#[tokio::test]
async fn client_device_state_is_encrypted_and_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = TestApp::spawn().await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("device");
    let phone = messenger_tests::unique_phone();
    let mut alice = messenger_client::Client::register(
        &app.base,
        Some(messenger_client::store::Home::lock(&dir).unwrap()),
        ("Al", "Ice", &phone),
        "correct horse battery",
        "cli",
    )
    .await
    .unwrap();
    let bob = app.user().await;
    let mut s = alice.connect().await.unwrap();
    alice.send_text(&mut s, bob.id, "STATE-CANARY sent from disk").await.unwrap();
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{}", path.display());
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(12).any(|w| w == b"STATE-CANARY"), "plaintext on disk in {}", path.display());
    }
    // One home is one device: a second opener is refused while the first holds it.
    let refused = messenger_client::store::Home::lock(&dir).unwrap_err().to_string();
    assert!(refused.contains("in use by another messenger process"), "{refused}");
    let alice_device = alice.device_id.clone();
    drop(alice);
    // Reopened from disk, the device still decrypts its own history and keeps its identity.
    let mut reopened = messenger_client::Client::open(messenger_client::store::Home::lock(&dir).unwrap()).unwrap();
    assert_eq!(reopened.device_id, alice_device);
    let history = reopened.history(bob.id).await.unwrap();
    assert_eq!(history[0].text.as_deref(), Some("STATE-CANARY sent from disk"));
}

#[tokio::test]
async fn a_claim_refused_by_a_device_limit_takes_no_key() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_CLAIM_DEVICE", "1/3600")]).await;
    let (owner, _, _) = with_keys(&app).await;
    let second = app
        .client()
        .call("POST", "/auth/login", None, Some(&json!({"phone": owner.phone, "password": owner.password})))
        .await
        .expect(200);
    let second_token = second["access_token"].as_str().unwrap();
    owner
        .client
        .call("PUT", "/keys", Some(second_token), Some(&serde_json::to_value(Crypto::new().initial_keys(5)).unwrap()))
        .await
        .expect(200);
    let claimer = app.user().await;
    let second_id = second["device_id"].as_str().unwrap();
    claimer.post("/keys/claim", Some(&json!({"user_id": owner.id, "device_ids": [second_id]}))).await.expect(200);
    claimer.post("/keys/claim", Some(&json!({"user_id": owner.id}))).await.expect_error(429, "rate_limited");
    assert_eq!(owner.get("/keys/count").await.expect(200)["one_time_key_count"], 5, "the first device lost nothing");
}

#[tokio::test]
async fn a_claimed_key_id_cannot_be_uploaded_again_until_the_identity_changes() {
    let app = TestApp::spawn().await;
    let (owner, _, body) = with_keys(&app).await;
    let claimer = app.user().await;
    let claimed = claimer.post("/keys/claim", Some(&json!({"user_id": owner.id}))).await.expect(200);
    let key = claimed["devices"][0]["one_time_key"].clone();
    assert_eq!(key["key_id"], body["one_time_keys"][0]["key_id"], "the lowest id goes first");
    assert_eq!(owner.get("/keys/count").await.expect(200)["one_time_key_count"], 4);
    // The same id again, with its old public key or a new one: a peer may hold a session over it.
    let mut fresh = Crypto::new();
    let mut reuse = serde_json::to_value(fresh.one_time_keys(1)).unwrap();
    reuse["one_time_keys"][0]["key_id"] = key["key_id"].clone();
    owner.put("/keys", Some(&reuse)).await.expect_error(409, "key_id_conflict");
    let replay = json!({"one_time_keys": [key]});
    owner.put("/keys", Some(&replay)).await.expect_error(409, "key_id_conflict");
    assert_eq!(owner.get("/keys/count").await.expect(200)["one_time_key_count"], 4, "nothing stored");
    // Unclaimed ids may be re-sent unchanged (a retried upload), and new ids are taken.
    let mut resend = body.clone();
    resend["one_time_keys"] = json!([body["one_time_keys"][1]]);
    owner.put("/keys", Some(&resend)).await.expect(200);
    // A new identity voids every old key: its own keys may use the old ids again.
    let mut swap = serde_json::to_value(fresh.initial_keys(0)).unwrap();
    swap["password"] = json!(owner.password);
    swap["one_time_keys"] = reuse["one_time_keys"].clone();
    let r = owner.put("/keys", Some(&swap)).await.expect(200);
    assert_eq!(r["one_time_key_count"], 1);
    let again = claimer.post("/keys/claim", Some(&json!({"user_id": owner.id}))).await.expect(200);
    assert_eq!(again["devices"][0]["one_time_key"], reuse["one_time_keys"][0]);
    assert_eq!(again["devices"][0]["identity_key"], swap["identity_key"]);
}

#[tokio::test]
async fn many_callers_cannot_drain_a_device_past_its_budget_and_still_get_its_fallback() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_CLAIM_TARGET", "3/3600")]).await;
    let owner = app.user().await;
    let mut crypto = Crypto::new();
    let body = serde_json::to_value(crypto.initial_keys(10)).unwrap();
    owner.put("/keys", Some(&body)).await.expect(200);
    let mut taken = Vec::new();
    for _ in 0..6 {
        // A fresh account each time: per-caller limits do not apply, only the target's budget.
        let caller = app.user().await;
        let claim = caller.post("/keys/claim", Some(&json!({"user_id": owner.id}))).await.expect(200);
        let device = &claim["devices"][0];
        assert_eq!(device["signed_prekey"], body["signed_prekey"], "every answer can start a session");
        if device["fallback"] == false {
            taken.push(device["one_time_key"]["key_id"].as_u64().unwrap());
        } else {
            assert!(device["one_time_key"].is_null());
        }
    }
    assert_eq!(taken.len(), 3, "only the budget's worth of one-time keys is handed out");
    assert_eq!(owner.get("/keys/count").await.expect(200)["one_time_key_count"], 7, "the rest stay for later");
}

#[tokio::test]
async fn a_claim_never_mixes_one_identity_with_another_identitys_one_time_key() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_CLAIM", "1000/60"),
        ("RATE_LIMIT_CLAIM_DEVICE", "1000/3600"),
        ("RATE_LIMIT_CLAIM_TARGET", "1000/3600"),
        ("RATE_LIMIT_PASSWORD_CHANGE", "1000/900"),
        ("RATE_LIMIT_KEY_UPLOAD", "1000/3600"),
        ("RATE_LIMIT_REST_WRITE", "10000/60"),
    ])
    .await;
    let owner = app.user().await;
    let claimer = app.user().await;
    let mut owners_keys = std::collections::HashMap::new();
    let mut crypto = Crypto::new();
    let first = serde_json::to_value(crypto.initial_keys(40)).unwrap();
    owner.put("/keys", Some(&first)).await.expect(200);
    owners_keys.insert(first["identity_key"].as_str().unwrap().to_owned(), first["one_time_keys"].clone());
    // Claims race identity replacements: whatever a claim answers, its one-time key was issued under the
    // identity it answers with.
    let mut swaps = Vec::new();
    for _ in 0..30 {
        let mut next = serde_json::to_value(Crypto::new().initial_keys(10)).unwrap();
        next["password"] = json!(owner.password);
        owners_keys.insert(next["identity_key"].as_str().unwrap().to_owned(), next["one_time_keys"].clone());
        swaps.push(next);
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let target = json!({"user_id": owner.id});
    let claiming = futures_util::future::join_all((0..10).map(|_| async {
        let mut answers = Vec::new();
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            answers.push(claimer.post("/keys/claim", Some(&target)).await);
        }
        answers
    }));
    let swapping = async {
        for next in &swaps {
            owner.put("/keys", Some(next)).await.expect(200);
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (answers, ()) = tokio::join!(claiming, swapping);
    let answers: Vec<_> = answers.into_iter().flatten().collect();
    let mut with_key = 0;
    for answer in answers {
        let claim = answer.expect(200);
        let device = &claim["devices"][0];
        let issued = &owners_keys[device["identity_key"].as_str().unwrap()];
        if device["fallback"] == false {
            with_key += 1;
            assert!(
                issued.as_array().unwrap().contains(&device["one_time_key"]),
                "a one-time key handed out with an identity it was not issued under"
            );
        }
    }
    assert!(with_key > 0);
}

async fn login_as(app: &TestApp, user: &TestUser) -> messenger_tests::Resp {
    app.client().call("POST", "/auth/login", None, Some(&json!({"phone": user.phone, "password": user.password}))).await
}

#[tokio::test]
async fn logins_at_the_device_cap_remove_the_least_recently_used_keyless_devices() {
    let app = TestApp::spawn_with(&[("MAX_DEVICES_PER_USER", "3")]).await;
    let (owner, _, _) = with_keys(&app).await; // device 1, with keys
    let second = login_as(&app, &owner).await.expect(200); // device 2, keyless
    let third = login_as(&app, &owner).await.expect(200); // device 3, keyless
    let fourth = login_as(&app, &owner).await.expect(200); // at the cap: device 2 goes
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM device WHERE user_id = {}", owner.id)).await, 3);
    let token = |r: &Value| r["access_token"].as_str().unwrap().to_owned();
    app.client().get("/me", Some(&token(&second))).await.expect_error(401, "invalid_token");
    for alive in [&owner.token, &token(&third), &token(&fourth)] {
        app.client().get("/me", Some(alive)).await.expect(200);
    }
    // Devices with keys are never removed behind the owner's back: with every device keyed, a login is refused.
    for r in [&third, &fourth] {
        let body = serde_json::to_value(Crypto::new().initial_keys(1)).unwrap();
        app.client().call("PUT", "/keys", Some(&token(r)), Some(&body)).await.expect(200);
    }
    login_as(&app, &owner).await.expect_error(409, "too_many_devices");
}

#[tokio::test]
async fn peers_see_only_what_end_to_end_encryption_needs_of_a_device() {
    let app = TestApp::spawn().await;
    let (owner, _, _) = with_keys(&app).await;
    let peer = app.user().await;
    let theirs = peer.get(&format!("/users/{}/devices", owner.id)).await.expect(200);
    assert_eq!(theirs[0]["device_name"], Value::Null);
    assert_eq!(theirs[0]["created_at"], Value::Null);
    assert!(theirs[0]["identity_key"].is_string());
    let mine = owner.get(&format!("/users/{}/devices", owner.id)).await.expect(200);
    assert!(mine[0]["created_at"].is_string());
}

proptest::proptest! {
    /// Whatever the server accepts as base64 (keys, envelopes, stored verbatim) the reference client reads as
    /// the same bytes.
    #[test]
    fn the_client_reads_every_encoding_the_server_accepts(
        text in "[A-Za-z0-9+/= ]{0,16}",
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
    ) {
        if let Some(server) = shared::keys::decode(&text) {
            proptest::prop_assert_eq!(messenger_client::crypto::unb64(&text).ok(), Some(server));
        }
        let encoded = shared::keys::encode(&bytes);
        proptest::prop_assert_eq!(messenger_client::crypto::unb64(&encoded).ok(), Some(bytes.clone()));
        proptest::prop_assert_eq!(shared::keys::decode(&messenger_client::crypto::b64(&bytes)), Some(bytes));
    }
}
