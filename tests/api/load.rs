//! Concurrency and overload: the loads that once broke the remote database path, and what an overloaded
//! database answers. They run on the embedded file and, in CI when `sqld` is there, against a real server.

use std::collections::HashSet;

use futures_util::future::join_all;
use messenger_client::crypto::Crypto;
use messenger_tests::{TestApp, TestUser};
use serde_json::{Value, json};

#[tokio::test]
async fn two_hundred_concurrent_claims_hand_out_each_of_fifty_keys_exactly_once() {
    let app = TestApp::spawn_with(&[
        ("RATE_LIMIT_CLAIM", "1000/60"),
        ("RATE_LIMIT_CLAIM_DEVICE", "1000/3600"),
        ("RATE_LIMIT_CLAIM_TARGET", "1000/3600"),
    ])
    .await;
    let owner = app.user().await;
    let mut crypto = Crypto::new();
    let keys = serde_json::to_value(crypto.initial_keys(50)).unwrap();
    owner.put("/keys", Some(&keys)).await.expect(200);
    let claimers: Vec<TestUser> = join_all((0..20).map(|_| app.user())).await;
    let body = json!({"user_id": owner.id});
    let answers = join_all((0..200).map(|i| claimers[i % claimers.len()].claim_keys(&body))).await;

    let mut handed_out = Vec::new();
    let mut fallbacks = 0;
    for claim in answers {
        let device = &claim["devices"][0];
        if device["fallback"] == true {
            assert!(device["one_time_key"].is_null());
            fallbacks += 1;
        } else {
            handed_out.push(device["one_time_key"]["key_id"].as_u64().unwrap());
        }
    }
    let distinct: HashSet<u64> = handed_out.iter().copied().collect();
    assert_eq!(handed_out.len(), 50, "every key is handed out");
    assert_eq!(distinct.len(), 50, "no key twice");
    assert_eq!(fallbacks, 150);
    assert_eq!(owner.get("/keys/count").await.expect(200)["one_time_key_count"], 0);
}

#[tokio::test]
async fn one_socket_pipelining_500_messages_gets_every_answer_and_the_database_stays_writable() {
    let app =
        TestApp::spawn_with(&[("RATE_LIMIT_SEND_MESSAGE", "100000/60"), ("RATE_LIMIT_WS_FRAMES", "100000/60")]).await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut ws = app.ws(&alice.token).await;
    let frame = |i: usize| {
        json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": format!("ct-{i}"),
            "client_msg_id": format!("m{i}")})
    };
    const TOTAL: usize = 500;
    const IN_FLIGHT: usize = 10;
    for i in 0..IN_FLIGHT {
        ws.send(&frame(i)).await;
    }
    let (mut next, mut acked) = (IN_FLIGHT, HashSet::new());
    while acked.len() < TOTAL {
        let event = ws.next_event().await.expect("the connection stays open");
        match event["event"].as_str() {
            Some("message_sent") => {
                assert!(acked.insert(event["data"]["client_msg_id"].as_str().unwrap().to_owned()), "one answer each");
                if next < TOTAL {
                    ws.send(&frame(next)).await;
                    next += 1;
                }
            }
            Some("presence") => {}
            _ => panic!("unexpected event {event}"),
        }
    }
    let stored = app.count(&format!("SELECT COUNT(*) FROM message WHERE sender_id = {}", alice.id)).await;
    assert_eq!(stored, i64::try_from(TOTAL).unwrap());
    let history = bob.get(&format!("/chats/{}/messages?limit=200", alice.id)).await.expect(200);
    assert_eq!(history.as_array().unwrap().len(), 200);
    // Nothing kept the write lock: registrations and sends go on working.
    let carol = app.user().await;
    let mut carols = app.ws(&carol.token).await;
    carol.send_via(&mut carols, alice.id, "still fine").await;
}

/// Holds the database's write lock from another handle, as a stuck writer in another process would.
async fn hold_write_lock(db: &shared::db::Db) -> (shared::db::PooledConn<'_>, libsql::Transaction) {
    let conn = db.conn().await.unwrap();
    let tx = conn.raw().transaction_with_behavior(libsql::TransactionBehavior::Immediate).await.unwrap();
    (conn, tx)
}

/// On the embedded file, as locally: a libSQL server does not answer "busy" but waits for (and after a few
/// seconds steals) the lock, so the holder here would not stall it.
#[tokio::test]
async fn an_overloaded_database_answers_503_with_retry_after_and_nothing_is_half_done() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("file:{}", dir.path().join("locked.db").display());
    let app = TestApp::spawn_with(&[("DATABASE_URL", &file), ("DATABASE_RETRY_BUDGET_MS", "300")]).await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut ws = app.ws(&alice.token).await;
    let other = app.foreign_db().await;
    let (_conn, lock) = hold_write_lock(&other).await;
    lock.execute("UPDATE user SET first_name = first_name WHERE id = ?1", [alice.id]).await.unwrap();

    let client = app.client();
    let phone = messenger_tests::unique_phone();
    let register = json!({"first_name": "Dan", "last_name": "D", "phone": phone, "password": "correct horse battery"});
    let refused = client.call("POST", "/auth/register", None, Some(&register)).await;
    assert_eq!(refused.headers.get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]), "{}", refused.text);
    refused.expect_error(503, "service_unavailable");
    alice.put("/users/me/profile", Some(&json!({"bio": "Alicia"}))).await.expect_error(503, "service_unavailable");
    ws.send(&json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x", "client_msg_id": "k1"}))
        .await;
    let error: Value = ws.expect("error").await;
    assert_eq!(error["code"], "service_unavailable");
    assert_eq!(error["client_msg_id"], "k1");
    // Reads do not need the write lock.
    alice.get("/me").await.expect(200);

    lock.rollback().await.unwrap();
    client.call("POST", "/auth/register", None, Some(&register)).await.expect(201);
    assert_eq!(alice.put("/users/me/profile", Some(&json!({"bio": "Alicia"}))).await.expect(200)["bio"], "Alicia");
    ws.send(&json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x", "client_msg_id": "k1"}))
        .await;
    ws.expect("message_sent").await;
    let stored = app.count(&format!("SELECT COUNT(*) FROM message WHERE sender_id = {}", alice.id)).await;
    assert_eq!(stored, 1, "the refused send stored nothing, the retry stored one");
}

/// Back-pressure: while the writer is busy, at most `SEND_QUEUE_LIMIT` sends wait for it; the next is refused
/// at once, and the ones that waited are stored and acknowledged when the writer is free.
#[tokio::test]
async fn sends_past_the_queue_limit_are_refused_at_once_and_the_queued_ones_are_stored() {
    let app = TestApp::spawn_with(&[("SEND_QUEUE_LIMIT", "2"), ("DATABASE_RETRY_BUDGET_MS", "30000")]).await;
    let bob = app.user().await;
    // Three senders with one socket each (a sender's other sockets would get its messages too).
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let sender = app.user().await;
        sockets.push(app.ws(&sender.token).await);
    }
    let send = |cid: &str| json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x", "client_msg_id": cid});
    // This process's writer is busy: a write transaction of the stack's own database handle holds it.
    let holder = app.db().await;
    let busy = holder.write_tx().await.unwrap();
    sockets[0].send(&send("q1")).await;
    sockets[1].send(&send("q2")).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sockets[2].send(&send("q3")).await;
    let refused = sockets[2].expect("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["client_msg_id"].as_str()),
        (Some("service_unavailable"), Some("q3"))
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM message").await, 0, "nothing stored while the writer is busy");

    busy.commit().await.unwrap();
    assert_eq!(sockets[0].expect("message_sent").await["client_msg_id"], "q1");
    assert_eq!(sockets[1].expect("message_sent").await["client_msg_id"], "q2");
    assert_eq!(app.count("SELECT COUNT(*) FROM message").await, 2);
    sockets[2].send(&send("q3")).await;
    assert_eq!(sockets[2].expect("message_sent").await["client_msg_id"], "q3", "the writer is free again");
}
