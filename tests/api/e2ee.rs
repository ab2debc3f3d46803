use std::time::Duration;

use messenger_client::store::Home;
use messenger_client::{Client, Event, Received, Socket};
use messenger_tests::{TestApp, unique_phone};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

async fn register(app: &TestApp, name: &str) -> (Client, String) {
    let phone = unique_phone();
    let c = Client::register(&app.base, None, (name, "E2EE", &phone), PASSWORD, name).await.unwrap();
    (c, phone)
}

async fn login(app: &TestApp, phone: &str, device: &str) -> Client {
    Client::login(&app.base, None, messenger_client::LoginAs::Phone(phone.to_owned()), PASSWORD, device).await.unwrap()
}

/// The next event, as the client interprets it.
async fn next_event(client: &mut Client, socket: &mut Socket) -> Event {
    let event = tokio::time::timeout(Duration::from_secs(10), socket.next_event())
        .await
        .expect("an event")
        .unwrap()
        .expect("open");
    client.handle(socket, event).await.unwrap()
}

/// Reads events until a decrypted message arrives.
async fn next_message(client: &mut Client, socket: &mut Socket) -> Received {
    loop {
        if let Event::Message(m) = next_event(client, socket).await {
            return m;
        }
    }
}

/// Reads events until a session-reset request has been taken in; returns who sent it.
async fn next_renewal(client: &mut Client, socket: &mut Socket) -> (i64, String) {
    loop {
        match next_event(client, socket).await {
            Event::SessionRenewed { user_id, device_id } => return (user_id, device_id),
            Event::Message(m) => panic!("unexpected message {m:?}"),
            _ => {}
        }
    }
}

/// Sends one message each way and checks both arrive decrypted.
async fn exchange(a: &mut Client, sa: &mut Socket, b: &mut Client, sb: &mut Socket, text: &str) {
    let there = format!("{text} (there)");
    let id = a.send_text(sa, b.user_id, &there).await.unwrap();
    let m = next_message(b, sb).await;
    assert_eq!((m.message_id, m.text.as_deref()), (id, Some(there.as_str())));
    let back = format!("{text} (back)");
    let id = b.send_text(sb, a.user_id, &back).await.unwrap();
    let m = next_message(a, sa).await;
    assert_eq!((m.message_id, m.text.as_deref()), (id, Some(back.as_str())));
}

#[tokio::test]
async fn a_device_whose_sessions_fell_out_of_step_asks_for_a_fresh_one_and_reads_the_next_message() {
    let app = TestApp::spawn().await;
    let homes = tempfile::tempdir().unwrap();
    let bob_home = homes.path().join("bob");
    let (mut alice, _) = register(&app, "alice").await;
    let home = Home::lock(&bob_home).unwrap();
    let mut bob =
        Client::register(&app.base, Some(home), ("bob", "E2EE", &unique_phone()), PASSWORD, "bob").await.unwrap();
    let mut sa = alice.connect().await.unwrap();
    let mut sb = bob.connect().await.unwrap();
    exchange(&mut alice, &mut sa, &mut bob, &mut sb, "first").await;
    let mut resets = Vec::new();

    for round in ["live", "catch-up"] {
        // Bob's device goes back to an older copy of its state (a restore from backup, or two processes
        // that overwrote each other's state), while both ratchets moved on in between.
        let snapshot = std::fs::read(bob_home.join("state.bin")).unwrap();
        exchange(&mut alice, &mut sa, &mut bob, &mut sb, &format!("{round}: moves the ratchets")).await;
        drop((sb, bob));
        std::fs::write(bob_home.join("state.bin"), snapshot).unwrap();
        bob = Client::open(Home::lock(&bob_home).unwrap()).unwrap();
        sb = bob.connect().await.unwrap();

        // Alice's next message cannot be decrypted any more: bob's device asks hers for a fresh session.
        let lost = alice.send_text(&mut sa, bob.user_id, &format!("{round}: lost")).await.unwrap();
        let m = next_message(&mut bob, &mut sb).await;
        assert_eq!(m.message_id, lost);
        assert!(m.undecryptable && m.session_reset, "{round}: {m:?}");
        if round == "live" {
            // A listening device takes the request in as it arrives...
            assert_eq!(next_renewal(&mut alice, &mut sa).await, (bob.user_id, bob.device_id.clone()));
        }
        // ...and one that was not listening takes it in before its next send. Either way the next messages,
        // both ways, are readable again.
        let next = alice.send_text(&mut sa, bob.user_id, &format!("{round}: readable again")).await.unwrap();
        let m = next_message(&mut bob, &mut sb).await;
        assert_eq!((m.message_id, m.text), (next, Some(format!("{round}: readable again"))));
        exchange(&mut alice, &mut sa, &mut bob, &mut sb, &format!("{round}: after the reset")).await;
        resets.push(lost);
    }

    // The requests are control messages: neither history shows them.
    let (alice_id, bob_id) = (alice.user_id, bob.user_id);
    for (client, peer) in [(&mut alice, bob_id), (&mut bob, alice_id)] {
        let history = client.history(peer).await.unwrap();
        assert_eq!(history.len(), 14, "{:?}", history.iter().map(|m| &m.text).collect::<Vec<_>>());
    }
    let requests = app.count("SELECT COUNT(*) FROM message WHERE encrypted_content = 'e2ee:v1:session-reset'").await;
    assert_eq!(requests, 2, "one request per lost message, not one per undecryptable message");
    let history = bob.history(alice.user_id).await.unwrap();
    assert!(resets.iter().all(|id| history.iter().any(|m| m.message_id == *id && m.undecryptable)));
}

#[tokio::test]
async fn two_users_with_two_devices_each_read_what_they_should() {
    let app = TestApp::spawn().await;
    let (mut alice1, alice_phone) = register(&app, "alice").await;
    let (mut bob1, bob_phone) = register(&app, "bob").await;
    let mut alice2 = login(&app, &alice_phone, "alice-laptop").await;
    let mut bob2 = login(&app, &bob_phone, "bob-tablet").await;
    let mut sa1 = alice1.connect().await.unwrap();
    let mut sa2 = alice2.connect().await.unwrap();
    let mut sb1 = bob1.connect().await.unwrap();
    let mut sb2 = bob2.connect().await.unwrap();

    let id = alice1.send_text(&mut sa1, bob1.user_id, "meet at the old mill").await.unwrap();
    for (client, socket) in [(&mut bob1, &mut sb1), (&mut bob2, &mut sb2), (&mut alice2, &mut sa2)] {
        let m = next_message(client, socket).await;
        assert_eq!((m.message_id, m.text.as_deref()), (id, Some("meet at the old mill")));
    }
    let reply = bob2.send_text(&mut sb2, alice1.user_id, "bring the map").await.unwrap();
    for (client, socket) in [(&mut alice1, &mut sa1), (&mut alice2, &mut sa2), (&mut bob1, &mut sb1)] {
        let m = next_message(client, socket).await;
        assert_eq!((m.message_id, m.text.as_deref()), (reply, Some("bring the map")));
    }
    // A second exchange goes over the established sessions.
    let again = alice2.send_text(&mut sa2, bob1.user_id, "and a lantern").await.unwrap();
    assert_eq!(next_message(&mut bob1, &mut sb1).await.text.as_deref(), Some("and a lantern"));
    assert_eq!(next_message(&mut bob2, &mut sb2).await.message_id, again);

    // History decrypts on every device that took part.
    let texts: Vec<Option<String>> = bob1.history(alice1.user_id).await.unwrap().into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts,
        vec![Some("meet at the old mill".into()), Some("bring the map".into()), Some("and a lantern".into())]
    );

    // A device added later cannot read what was sent before it existed (as in Signal)...
    let mut bob3 = login(&app, &bob_phone, "bob-new-phone").await;
    let old = bob3.history(alice1.user_id).await.unwrap();
    assert_eq!(old.len(), 3);
    assert!(old.iter().all(|m| m.undecryptable && m.text.is_none()));
    // ...but reads what comes after.
    let mut sb3 = bob3.connect().await.unwrap();
    let later = alice1.send_text(&mut sa1, bob1.user_id, "welcome, new phone").await.unwrap();
    let m = next_message(&mut bob3, &mut sb3).await;
    assert_eq!((m.message_id, m.text.as_deref()), (later, Some("welcome, new phone")));

    // The server stored only the marker.
    let history = app.count("SELECT COUNT(*) FROM message WHERE encrypted_content != 'e2ee:v1'").await;
    assert_eq!(history, 0);
}

#[tokio::test]
async fn an_encrypted_file_round_trips_and_the_server_never_sees_plaintext() {
    let app = TestApp::spawn().await;
    let (mut alice, _) = register(&app, "alice").await;
    let (mut bob, _) = register(&app, "bob").await;
    let mut sa = alice.connect().await.unwrap();
    let mut sb = bob.connect().await.unwrap();
    let secret_text = "PLAINTEXT-CANARY-the-launch-code-is-0000";
    let file: Vec<u8> = b"FILE-CANARY-".iter().copied().chain((0..20_000u32).map(|i| (i % 251) as u8)).collect();
    alice.send_text(&mut sa, bob.user_id, secret_text).await.unwrap();
    assert_eq!(next_message(&mut bob, &mut sb).await.text.as_deref(), Some(secret_text));
    let id = alice.send_file(&mut sa, bob.user_id, "plans.bin", &file).await.unwrap();
    let m = next_message(&mut bob, &mut sb).await;
    assert_eq!(m.message_id, id);
    let f = m.file.expect("a file reference");
    assert_eq!((f.name.as_str(), f.size), ("plans.bin", file.len() as u64));
    assert_eq!(bob.download(&f).await.unwrap(), file);
    // Alice's own history view knows the file too.
    assert!(
        alice
            .history(bob.user_id)
            .await
            .unwrap()
            .iter()
            .any(|r| r.file.as_ref().is_some_and(|f| f.name == "plans.bin"))
    );

    // Scan every byte the server holds: database (with WAL) and every object in the bucket.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.file_name().unwrap().to_string_lossy().starts_with("messenger.db") {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    let storage = &app.stack.state.storage;
    let keys = app.bucket_keys().await;
    assert_eq!(keys.len(), 1);
    for key in keys {
        stored.extend(storage.get(&key).await.unwrap());
    }
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(secret_text.as_bytes()), "message plaintext found in server storage");
    assert!(!contains(b"FILE-CANARY-"), "file plaintext found in server storage");
    assert!(!contains(&file[100..164]), "file bytes found in server storage");
    assert!(!contains(b"plans.bin"), "file name found in server storage");
}

#[tokio::test]
async fn concurrent_claims_hand_out_each_one_time_key_at_most_once() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_CLAIM", "1000/60"),
        ("RATE_LIMIT_CLAIM_DEVICE", "1000/3600"),
        ("RATE_LIMIT_CLAIM_TARGET", "1000/3600"),
        ("RATE_LIMIT_REST_WRITE", "1000/60"),
    ])
    .await;
    let target = app.user().await;
    let mut crypto = messenger_client::crypto::Crypto::new();
    let body = serde_json::to_value(crypto.initial_keys(50)).unwrap();
    let r = target.put("/keys", Some(&body)).await.expect(200);
    assert_eq!(r["one_time_key_count"], 50);
    let claimer = std::sync::Arc::new(app.user().await);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (claimer, id) = (claimer.clone(), target.id);
        tasks.push(tokio::spawn(async move { claimer.claim_keys(&json!({"user_id": id})).await }));
    }
    let mut ids = Vec::new();
    let mut fallbacks = 0;
    for t in tasks {
        let body = t.await.unwrap();
        let device = &body["devices"][0];
        if device["fallback"] == true {
            assert!(device["one_time_key"].is_null());
            assert_eq!(device["signed_prekey"]["key_id"], body["devices"][0]["signed_prekey"]["key_id"]);
            fallbacks += 1;
        } else {
            ids.push(device["one_time_key"]["key_id"].as_i64().unwrap());
        }
    }
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!((ids.len(), distinct.len(), fallbacks), (50, 50, 150));
    assert_eq!(target.get("/keys/count").await.expect(200)["one_time_key_count"], 0);
}
