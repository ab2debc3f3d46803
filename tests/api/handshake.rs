//! The MLS handshake through the Delivery Service (API.md §15.3): real `openmls` clients create a group, add
//! and remove devices with commits and welcomes, race commits for one epoch and catch up from stored commits.
//! The server sees plaintext headers only; every device ends in the same epoch and decrypts.

use std::collections::HashMap;

use messenger_client::crypto::{b64, random};
use openmls::prelude::MlsGroup;
use serde_json::{Value, json};
use wire::mls::ClaimedKeyPackage;

use super::mls::{Device, device};
use messenger_tests::TestApp;

/// A device in a group: its server-side id and its MLS group state.
struct Member {
    device: Device,
    group: Option<MlsGroup>,
}

impl Member {
    async fn new(app: &TestApp) -> Self {
        let device = device(app).await;
        let body = json!({"key_packages": device.packages(3)});
        device.user.put("/mls/key-packages", Some(&body)).await.expect(200);
        Self { device, group: None }
    }

    fn me(&self) -> Value {
        json!({"user_id": self.device.user.id, "device_id": self.device.user.device_id})
    }

    fn epoch(&self) -> u64 {
        self.group.as_ref().unwrap().epoch().as_u64()
    }

    /// Creates the group on the server and in MLS; returns its server id.
    async fn create(&mut self) -> i64 {
        let group_id = random::<16>();
        let d = &self.device;
        self.group = Some(d.mls.create_group(&d.crypto.account, d.user.id, &d.user.device_id, &group_id).unwrap());
        d.user.post("/groups", Some(&json!({"group_id": b64(&group_id)}))).await.expect(201)["id"].as_i64().unwrap()
    }

    /// A commit adding `others` (their packages claimed now) with its welcome, as the commit body.
    async fn add_body(&mut self, others: &[&Member]) -> Value {
        let ids: Vec<i64> = others.iter().map(|m| m.device.user.id).collect();
        let claimed =
            self.device.user.post("/mls/key-packages/claim", Some(&json!({"user_ids": ids}))).await.expect(200);
        let packages: Vec<ClaimedKeyPackage> = serde_json::from_value(claimed["key_packages"].clone()).unwrap();
        let directory: HashMap<String, Vec<u8>> = others
            .iter()
            .map(|m| {
                (m.device.user.device_id.clone(), m.device.crypto.account.identity_keys().ed25519.as_bytes().to_vec())
            })
            .collect();
        let d = &self.device;
        let (commit, welcome) = d
            .mls
            .add(&d.crypto.account, self.group.as_mut().unwrap(), &packages, |_, device| directory.get(device).cloned())
            .unwrap();
        json!({"commit": commit, "welcome": welcome, "added": others.iter().map(|m| m.me()).collect::<Vec<_>>()})
    }

    async fn commit(&self, id: i64, body: &Value) -> messenger_tests::Resp {
        self.device.user.post(&format!("/groups/{id}/commits"), Some(body)).await
    }

    fn merge(&mut self) {
        let d = &self.device;
        self.group.as_mut().unwrap().merge_pending_commit(&d.mls).unwrap();
    }

    fn join(&mut self, welcome: &str) {
        self.group = Some(self.device.mls.join(welcome).unwrap());
    }

    fn update(&mut self) -> String {
        let d = &self.device;
        d.mls.update(&d.crypto.account, self.group.as_mut().unwrap()).unwrap()
    }

    fn process(&mut self, message: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let d = &self.device;
        d.mls.process(self.group.as_mut().unwrap(), message)
    }

    fn encrypt(&mut self, text: &str) -> String {
        let d = &self.device;
        d.mls.encrypt(&d.crypto.account, self.group.as_mut().unwrap(), text.as_bytes()).unwrap()
    }

    /// Fetches and merges the commits after its epoch.
    async fn catch_up(&mut self, id: i64) {
        let path = format!("/groups/{id}/commits?after_epoch={}", self.epoch());
        let commits = self.device.user.get(&path).await.expect(200);
        for c in commits.as_array().unwrap() {
            assert_eq!(self.process(c["commit"].as_str().unwrap()).unwrap(), None);
        }
    }
}

/// Alice's group with Bob (made an admin too) and Carol added by one commit; Bob joins from the event,
/// Carol over REST.
async fn three(app: &TestApp) -> (i64, Member, Member, Member) {
    let (mut alice, mut bob, mut carol) = (Member::new(app).await, Member::new(app).await, Member::new(app).await);
    let id = alice.create().await;
    let mut bob_ws = app.ws(&bob.device.user.token).await;
    let mut body = alice.add_body(&[&bob, &carol]).await;
    body["role"] = json!({bob.device.user.id.to_string(): "admin"});
    assert_eq!(alice.commit(id, &body).await.expect(200), json!({"epoch": 1}));
    alice.merge();

    let event = bob_ws.expect("group_welcome").await;
    assert_eq!(event["epoch"], 1);
    assert_eq!(event["group"]["id"], id);
    assert_eq!(event["group"]["members"].as_array().unwrap().len(), 3);
    bob.join(event["welcome"].as_str().unwrap());
    let welcome_id = event["welcome_id"].as_i64().unwrap();
    bob.device.user.delete(&format!("/mls/welcomes/{welcome_id}")).await.expect(204);

    let pending = carol.device.user.get("/mls/welcomes").await.expect(200);
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["id"], welcome_id, "one welcome for every device it adds");
    carol.join(pending[0]["welcome"].as_str().unwrap());
    carol.device.user.delete(&format!("/mls/welcomes/{welcome_id}")).await.expect(204);
    carol.device.user.delete(&format!("/mls/welcomes/{welcome_id}")).await.expect_error(404, "welcome_not_found");
    assert!(carol.device.user.get("/mls/welcomes").await.expect(200).as_array().unwrap().is_empty());
    (id, alice, bob, carol)
}

#[tokio::test]
async fn devices_added_by_a_commit_join_from_the_welcome_and_decrypt() {
    let app = TestApp::spawn().await;
    let (id, mut alice, mut bob, mut carol) = three(&app).await;
    assert_eq!((alice.epoch(), bob.epoch(), carol.epoch()), (1, 1, 1));
    let group = bob.device.user.get(&format!("/groups/{id}")).await.expect(200);
    assert_eq!(group["epoch"], 1);
    let row = |user: i64| group["members"].as_array().unwrap().iter().find(|m| m["user_id"] == user).unwrap().clone();
    let (bob_row, carol_row) = (row(bob.device.user.id), row(carol.device.user.id));
    assert_eq!((bob_row["role"].as_str(), bob_row["joined_epoch"].as_i64()), (Some("admin"), Some(1)));
    assert_eq!((carol_row["role"].as_str(), carol_row["joined_epoch"].as_i64()), (Some("member"), Some(1)));
    let commits = carol.device.user.get(&format!("/groups/{id}/commits?after_epoch=0")).await.expect(200);
    assert_eq!(commits.as_array().unwrap().len(), 1);
    assert_eq!((commits[0]["epoch"].as_i64(), commits[0]["sender_id"].as_i64()), (Some(1), Some(alice.device.user.id)));
    assert_eq!(alice.device.user.get("/groups").await.expect(200)[0]["member_count"], 3);

    let ciphertext = alice.encrypt("hello, group");
    for m in [&mut bob, &mut carol] {
        assert_eq!(m.process(&ciphertext).unwrap().as_deref(), Some(&b"hello, group"[..]));
    }
}

#[tokio::test]
async fn two_admins_adding_at_once_serialise_and_the_loser_catches_up_and_retries() {
    let app = TestApp::spawn().await;
    let (id, mut alice, mut bob, mut carol) = three(&app).await;
    let (mut dave, mut erin) = (Member::new(&app).await, Member::new(&app).await);
    let (a, b) = (alice.add_body(&[&dave]).await, bob.add_body(&[&erin]).await);
    let (ra, rb) = tokio::join!(alice.commit(id, &a), bob.commit(id, &b));
    let statuses = [ra.status.as_u16(), rb.status.as_u16()];
    assert!(statuses.contains(&200) && statuses.contains(&409), "{statuses:?}: {} {}", ra.text, rb.text);
    let alice_won = ra.status.as_u16() == 200;
    let lost = if alice_won { rb } else { ra };
    assert_eq!(lost.body["code"], "stale_epoch");
    let (winner, loser, loser_adds) =
        if alice_won { (&mut alice, &mut bob, &erin) } else { (&mut bob, &mut alice, &dave) };
    winner.merge();
    // The loser drops its commit, merges the winner's from the server, and adds again at the new epoch.
    loser.device.mls.discard_pending(loser.group.as_mut().unwrap()).unwrap();
    loser.catch_up(id).await;
    let again = loser.add_body(&[loser_adds]).await;
    assert_eq!(loser.commit(id, &again).await.expect(200), json!({"epoch": 3}));
    loser.merge();
    winner.catch_up(id).await;
    carol.catch_up(id).await;
    for newcomer in [&mut dave, &mut erin] {
        let welcome =
            newcomer.device.user.get("/mls/welcomes").await.expect(200)[0]["welcome"].as_str().unwrap().to_owned();
        newcomer.join(&welcome);
        newcomer.catch_up(id).await;
    }
    assert_eq!([alice.epoch(), bob.epoch(), carol.epoch(), dave.epoch(), erin.epoch()], [3; 5]);
    assert_eq!(
        alice.device.user.get(&format!("/groups/{id}")).await.expect(200)["members"].as_array().unwrap().len(),
        5
    );
    let ciphertext = carol.encrypt("same epoch");
    for m in [&mut alice, &mut bob, &mut dave, &mut erin] {
        assert_eq!(m.process(&ciphertext).unwrap().as_deref(), Some(&b"same epoch"[..]));
    }
}

#[tokio::test]
async fn a_member_offline_during_two_commits_catches_up_from_the_server() {
    let app = TestApp::spawn().await;
    let (id, mut alice, mut bob, mut carol) = three(&app).await;
    let mut alice_ws = app.ws(&alice.device.user.token).await;
    for epoch in [2, 3] {
        let commit = carol.update();
        assert_eq!(carol.commit(id, &json!({"commit": commit})).await.expect(200)["epoch"], epoch);
        carol.merge();
        let event = alice_ws.expect("group_commit").await;
        assert_eq!(event["epoch"], epoch);
        assert_eq!(event["sender_id"], carol.device.user.id);
        assert_eq!(alice.process(event["commit"].as_str().unwrap()).unwrap(), None);
    }
    // Bob was not connected: he reads both commits after his epoch.
    assert_eq!(bob.epoch(), 1);
    bob.catch_up(id).await;
    assert_eq!(bob.epoch(), 3);
    let ciphertext = carol.encrypt("while you were away");
    assert_eq!(bob.process(&ciphertext).unwrap().as_deref(), Some(&b"while you were away"[..]));
    assert_eq!(alice.process(&ciphertext).unwrap().as_deref(), Some(&b"while you were away"[..]));
}

#[tokio::test]
async fn a_removed_device_hears_of_its_removal_then_nothing_and_cannot_decrypt_what_follows() {
    let app = TestApp::spawn().await;
    let (id, mut alice, mut bob, mut carol) = three(&app).await;
    let mut carol_ws = app.ws(&carol.device.user.token).await;
    let d = &alice.device;
    let commit = d
        .mls
        .remove(
            &d.crypto.account,
            alice.group.as_mut().unwrap(),
            &[(carol.device.user.id, carol.device.user.device_id.clone())],
        )
        .unwrap();
    let body = json!({"commit": commit, "removed": [carol.me()]});
    assert_eq!(alice.commit(id, &body).await.expect(200), json!({"epoch": 2}));
    alice.merge();
    // Carol is told of the commit that removed her, and the server routes nothing to her from then on.
    let event = carol_ws.expect("group_commit").await;
    assert_eq!(event["epoch"], 2);
    let _ = carol.process(event["commit"].as_str().unwrap());
    carol.device.user.get(&format!("/groups/{id}")).await.expect_error(404, "group_not_found");
    carol.device.user.get(&format!("/groups/{id}/commits")).await.expect_error(404, "group_not_found");
    bob.catch_up(id).await;
    let ciphertext = alice.encrypt("after carol left");
    assert_eq!(bob.process(&ciphertext).unwrap().as_deref(), Some(&b"after carol left"[..]));
    assert!(carol.process(&ciphertext).is_err(), "a removed device cannot read what follows its removal");
    carol_ws.expect_quiet().await;
}

#[tokio::test]
async fn commits_that_do_not_fit_change_nothing() {
    let app = TestApp::spawn().await;
    let (id, mut alice, bob, mut carol) = three(&app).await;
    let outsider = Member::new(&app).await;
    let stale = alice.device.user.get(&format!("/groups/{id}/commits")).await.expect(200)[0]["commit"].clone();
    let update = carol.update();

    // A non-member's device gets 404 whatever it sends.
    outsider.commit(id, &json!({"commit": update})).await.expect_error(404, "group_not_found");
    outsider.commit(id, &json!({"commit": "garbage"})).await.expect_error(404, "group_not_found");
    // Garbage, a welcome where a commit belongs, a commit of another group, an epoch already taken.
    for garbage in [json!("AAAA"), json!(b64(&[0, 1, 0, 1])), json!("not base64!")] {
        carol.commit(id, &json!({"commit": garbage})).await.expect_error(400, "invalid_mls_message");
    }
    let mut other = Member::new(&app).await;
    let other_id = other.create().await;
    let other_update = other.update();
    carol.commit(id, &json!({"commit": other_update})).await.expect_error(400, "invalid_mls_message");
    other.commit(other_id, &json!({"commit": update})).await.expect_error(400, "invalid_mls_message");
    carol.commit(id, &json!({"commit": stale})).await.expect_error(409, "stale_epoch");
    // A plain member cannot add or remove others, or change roles.
    carol.device.mls.discard_pending(carol.group.as_mut().unwrap()).unwrap();
    let add = carol.add_body(&[&outsider]).await;
    carol.commit(id, &add).await.expect_error(403, "not_group_admin");
    let remove = json!({"commit": update, "removed": [bob.me()]});
    carol.commit(id, &remove).await.expect_error(403, "not_group_admin");
    let promote = json!({"commit": update, "role": {carol.device.user.id.to_string(): "admin"}});
    carol.commit(id, &promote).await.expect_error(403, "not_group_admin");
    // An added device must be its user's; a welcome goes with added devices only.
    let mut wrong = alice.add_body(&[&outsider]).await;
    wrong["added"][0]["user_id"] = json!(bob.device.user.id);
    alice.commit(id, &wrong).await.expect_error(400, "invalid_member");
    let mut no_welcome = wrong.clone();
    no_welcome.as_object_mut().unwrap().remove("welcome");
    alice.commit(id, &no_welcome).await.expect_error(400, "invalid_mls_message");
    let group = alice.device.user.get(&format!("/groups/{id}")).await.expect(200);
    assert_eq!((group["epoch"].as_i64(), group["members"].as_array().unwrap().len()), (Some(1), 3), "nothing changed");

    // After Bob leaves, a commit that does not remove his leaf is refused.
    bob.device.user.delete(&format!("/groups/{id}/members/me")).await.expect(204);
    carol.commit(id, &json!({"commit": update})).await.expect_error(409, "pending_removals");
    let d = &carol.device;
    d.mls.discard_pending(carol.group.as_mut().unwrap()).unwrap();
    let removal = d
        .mls
        .remove(
            &d.crypto.account,
            carol.group.as_mut().unwrap(),
            &[(bob.device.user.id, bob.device.user.device_id.clone())],
        )
        .unwrap();
    // Any member may commit the removal of a pending one.
    let body = json!({"commit": removal, "removed": [bob.me()]});
    assert_eq!(carol.commit(id, &body).await.expect(200), json!({"epoch": 2}));
    carol.merge();
    alice.catch_up(id).await;
    assert_eq!(alice.epoch(), 2);
}

fn send(id: i64, ciphertext: &str, client_msg_id: &str) -> Value {
    json!({"action": "send_group_message", "group_id": id, "ciphertext": ciphertext, "client_msg_id": client_msg_id})
}

#[tokio::test]
async fn group_messages_reach_every_other_member_device_and_history_starts_where_a_device_joined() {
    let app = TestApp::spawn().await;
    let (mut alice, mut bob, mut carol, mut dave) =
        (Member::new(&app).await, Member::new(&app).await, Member::new(&app).await, Member::new(&app).await);
    let id = alice.create().await;
    let early = alice.encrypt("from epoch 0");
    let body = alice.add_body(&[&bob, &carol]).await;
    alice.commit(id, &body).await.expect(200);
    alice.merge();
    let welcome = bob.device.user.get("/mls/welcomes").await.expect(200)[0]["welcome"].as_str().unwrap().to_owned();
    bob.join(&welcome);
    carol.join(&welcome);
    let mut alice_ws = app.ws(&alice.device.user.token).await;
    let mut bob_ws = app.ws(&bob.device.user.token).await;
    let mut carol_ws = app.ws(&carol.device.user.token).await;

    let ciphertext = alice.encrypt("hello, group");
    alice_ws.send(&send(id, &ciphertext, "m-1")).await;
    let sent = alice_ws.expect("group_message_sent").await;
    assert_eq!(sent["client_msg_id"], "m-1");
    let message_id = sent["message_id"].as_i64().unwrap();
    for (ws, member) in [(&mut bob_ws, &mut bob), (&mut carol_ws, &mut carol)] {
        let m = ws.expect("new_group_message").await;
        assert_eq!(
            (m["id"].as_i64(), m["group_id"].as_i64(), m["epoch"].as_i64()),
            (Some(message_id), Some(id), Some(1))
        );
        assert_eq!(
            (m["sender_id"].as_i64(), m["sender_device_id"].as_str()),
            (Some(alice.device.user.id), Some(alice.device.user.device_id.as_str()))
        );
        let plain = member.process(m["ciphertext"].as_str().unwrap()).unwrap();
        assert_eq!(plain.as_deref(), Some(&b"hello, group"[..]));
    }
    // A retry is acknowledged again and stored once.
    alice_ws.send(&send(id, &ciphertext, "m-1")).await;
    assert_eq!(alice_ws.expect("group_message_sent").await["message_id"], message_id);
    bob_ws.expect_quiet().await;
    alice_ws.expect_quiet().await;

    // Dave joins at epoch 2: his history starts there.
    let body = alice.add_body(&[&dave]).await;
    alice.commit(id, &body).await.expect(200);
    alice.merge();
    assert_eq!(bob.process(bob_ws.expect("group_commit").await["commit"].as_str().unwrap()).unwrap(), None);
    assert_eq!(carol.process(carol_ws.expect("group_commit").await["commit"].as_str().unwrap()).unwrap(), None);
    let welcome = dave.device.user.get("/mls/welcomes").await.expect(200)[0]["welcome"].as_str().unwrap().to_owned();
    dave.join(&welcome);
    let later = carol.encrypt("from epoch 2");
    carol_ws.send(&send(id, &later, "m-2")).await;
    carol_ws.expect("group_message_sent").await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        assert_eq!(ws.expect("new_group_message").await["client_msg_id"], "m-2");
    }
    let seen = dave.device.user.get(&format!("/groups/{id}/messages")).await.expect(200);
    assert_eq!(seen.as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(dave.process(seen[0]["ciphertext"].as_str().unwrap()).unwrap().as_deref(), Some(&b"from epoch 2"[..]));
    let all = bob.device.user.get(&format!("/groups/{id}/messages")).await.expect(200);
    let ids: Vec<i64> = all.as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "ascending ids");
    let newest = bob.device.user.get(&format!("/groups/{id}/messages?limit=1")).await.expect(200);
    assert_eq!(newest[0]["id"], ids[1]);
    let after = bob.device.user.get(&format!("/groups/{id}/messages?after_id={}", ids[0])).await.expect(200);
    assert_eq!(after.as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect::<Vec<_>>(), vec![ids[1]]);
    let outsider = Member::new(&app).await;
    outsider.device.user.get(&format!("/groups/{id}/messages")).await.expect_error(404, "group_not_found");

    // The database holds ciphertext only.
    for plain in ["hello, group", "from epoch 2"] {
        for text in [plain.to_owned(), b64(plain.as_bytes())] {
            let sql = format!(
                "SELECT COUNT(*) FROM mls_message WHERE instr(ciphertext, '{text}') > 0 OR instr(CAST(ciphertext AS BLOB), CAST('{text}' AS BLOB)) > 0"
            );
            assert_eq!(app.count(&sql).await, 0, "{plain} stored in the clear");
        }
    }

    // The group is at epoch 2: a message of epoch 0 is refused, one of epoch 1 (sent just before a commit)
    // is still taken.
    alice_ws.send(&send(id, &early, "m-early")).await;
    let e = alice_ws.expect("error").await;
    assert_eq!((e["code"].as_str(), e["client_msg_id"].as_str()), (Some("stale_epoch"), Some("m-early")));
    alice_ws.send(&send(id, &ciphertext, "m-one-back")).await;
    alice_ws.expect("group_message_sent").await;
}

#[tokio::test]
async fn group_messages_that_do_not_fit_are_refused_with_their_error() {
    let app = TestApp::spawn().await;
    let (id, mut alice, _bob, _carol) = three(&app).await;
    let mut other = Member::new(&app).await;
    let other_id = other.create().await;
    let foreign = other.encrypt("other group");
    let commit = alice.update();
    let mut ws = app.ws(&alice.device.user.token).await;
    let cases = [
        (send(id, &foreign, "c-1"), "invalid_mls_message"),
        (send(id, &commit, "c-2"), "invalid_mls_message"),
        (send(id, "not base64!", "c-3"), "invalid_mls_message"),
        (send(id, &b64(&[0, 1, 0, 2]), "c-4"), "invalid_mls_message"),
        (send(other_id, &foreign, "c-5"), "group_not_found"),
        (json!({"action": "send_group_message", "group_id": "x", "ciphertext": foreign}), "invalid_id"),
        (json!({"action": "send_group_message", "group_id": id}), "missing_fields"),
        (send(id, &foreign, "bad id!"), "invalid_client_msg_id"),
    ];
    for (frame, code) in cases {
        ws.send(&frame).await;
        let e = ws.expect("error").await;
        assert_eq!(e["code"], code, "{frame}");
    }
    // Over 64 KiB (sent in 32 KB fragments, as API Gateway takes frames).
    ws.send_fragmented(&send(id, &b64(&vec![7; 64 * 1024 + 1]), "c-6").to_string()).await;
    assert_eq!(ws.expect("error").await["code"], "payload_too_large");
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM mls_message WHERE group_id IN ({id}, {other_id})")).await, 0);
}

#[tokio::test]
async fn commits_and_welcomes_are_kept_30_days() {
    let app = TestApp::spawn().await;
    let (id, mut alice, _bob, _carol) = three(&app).await;
    let dave = Member::new(&app).await;
    let body = alice.add_body(&[&dave]).await;
    alice.commit(id, &body).await.expect(200);
    alice.merge();
    assert_eq!(dave.device.user.get("/mls/welcomes").await.expect(200).as_array().unwrap().len(), 1);
    // The two commits and Dave's welcome were stored 31 days ago.
    let month_ago = shared::time::now_ms() - 31 * 24 * 3600 * 1000;
    let db = app.db().await;
    db.execute("UPDATE mls_commit SET created_at = ?1", [month_ago]).await.unwrap();
    db.execute("UPDATE mls_welcome SET created_at = ?1", [month_ago]).await.unwrap();
    drop(db);
    let update = alice.update();
    alice.commit(id, &json!({"commit": update})).await.expect(200);
    alice.merge();
    let cutoff = shared::time::now_ms() - shared::mls::HANDSHAKE_TTL_MS;
    assert_eq!(shared::mls::expire(&app.stack.state, cutoff).await.unwrap(), 3);
    let left = alice.device.user.get(&format!("/groups/{id}/commits")).await.expect(200);
    assert_eq!(left.as_array().unwrap().iter().map(|c| c["epoch"].as_i64().unwrap()).collect::<Vec<_>>(), vec![3]);
    assert!(dave.device.user.get("/mls/welcomes").await.expect(200).as_array().unwrap().is_empty());
    assert_eq!(app.count("SELECT COUNT(*) FROM mls_welcome_device").await, 0);
    assert_eq!(shared::mls::expire(&app.stack.state, cutoff).await.unwrap(), 0);
}

#[tokio::test]
async fn group_sends_count_against_the_same_send_limit_as_one_to_one_sends() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_SEND_MESSAGE", "2/60")]).await;
    let (id, mut alice, bob, _carol) = three(&app).await;
    let mut ws = app.ws(&alice.device.user.token).await;
    alice.device.user.send_via(&mut ws, bob.device.user.id, "one-to-one").await;
    let first = alice.encrypt("group one");
    ws.send(&send(id, &first, "l-1")).await;
    ws.expect("group_message_sent").await;
    let second = alice.encrypt("group two");
    ws.send(&send(id, &second, "l-2")).await;
    let e = ws.expect("error").await;
    assert_eq!((e["code"].as_str(), e["client_msg_id"].as_str()), (Some("rate_limited"), Some("l-2")));
    assert_eq!(app.count("SELECT COUNT(*) FROM mls_message").await, 1, "the refused one is not stored");
}
