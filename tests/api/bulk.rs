//! Work on many rows in bounded steps (issue 24 item 3): clearing a long chat, `mark_read` over a long
//! backlog, and deleting an account with a long history never hold the one database writer for long, and
//! finish completely.

use messenger_tests::TestApp;
use serde_json::json;

/// Inserts `count` messages alternating between `a` and `b` in one statement; returns the newest id.
async fn insert_history(app: &TestApp, a: i64, b: i64, count: i64) -> i64 {
    let conn = app.db().await;
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?3) \
         INSERT INTO message (sender_id, receiver_id, encrypted_content, created_at) \
         SELECT CASE i % 2 WHEN 0 THEN ?1 ELSE ?2 END, CASE i % 2 WHEN 0 THEN ?2 ELSE ?1 END, 'ct-' || i, ?4 + i \
         FROM n",
        (a, b, count, shared::time::now_ms()),
    )
    .await
    .unwrap();
    drop(conn);
    app.count(&format!("SELECT MAX(id) FROM message WHERE sender_id IN ({a}, {b}) AND receiver_id IN ({a}, {b})")).await
}

fn visible_to(user: i64, peer: i64) -> String {
    format!(
        "SELECT COUNT(*) FROM message WHERE deleted_for_everyone = 0 AND \
         ((sender_id = {user} AND receiver_id = {peer} AND hidden_for_sender = 0) OR \
          (receiver_id = {user} AND sender_id = {peer} AND hidden_for_receiver = 0))"
    )
}

fn lifted(app_limits: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut limits = vec![("RATE_LIMIT_SEND_MESSAGE", "1000000/10"), ("RATE_LIMIT_WS_FRAMES", "1000000/10")];
    limits.extend_from_slice(app_limits);
    limits
}

#[tokio::test]
async fn clearing_fifty_thousand_messages_goes_in_steps_that_let_other_users_send() {
    let app = TestApp::spawn_with(&lifted(&[])).await;
    let (alice, bob) = (app.user().await, app.user().await);
    let last = insert_history(&app, alice.id, bob.id, 50_000).await;
    let mut a = app.ws(&alice.token).await;
    let (carol, dave) = (app.user().await, app.user().await);
    let mut c = app.ws(&carol.token).await;

    let path = format!("/chats/{}/messages", bob.id);
    let cleared = std::sync::atomic::AtomicBool::new(false);
    let clear = async {
        let answer = alice.delete(&path).await;
        cleared.store(true, std::sync::atomic::Ordering::SeqCst);
        answer
    };
    let sending = async {
        // Sends until the clear has answered; each acknowledged one says whether the clear was under way.
        let mut during = 0;
        let mut sent = 0;
        while !cleared.load(std::sync::atomic::Ordering::SeqCst) {
            sent += 1;
            carol.send_via(&mut c, dave.id, &format!("during the clear {sent}")).await;
            if app.count("SELECT COUNT(*) FROM bulk_job WHERE cursor > 0").await > 0 {
                during += 1;
            }
        }
        during
    };
    let (answer, during) = tokio::join!(clear, sending);
    let answer = answer.expect(200);
    assert_eq!(answer["deleted_count"], 50_000);
    assert!(during > 0, "a send was acknowledged between two steps of the clear");
    assert_eq!(app.count(&visible_to(alice.id, bob.id)).await, 0, "everything is hidden for the caller");
    assert_eq!(app.count(&visible_to(bob.id, alice.id)).await, 50_000, "the peer keeps every message");
    assert_eq!(app.count("SELECT COUNT(*) FROM bulk_job").await, 0, "the job is gone with its last step");
    assert_eq!(a.expect("chat_cleared").await, json!({"peer_id": bob.id, "for_everyone": false, "up_to_id": last}));
    let chats = alice.get("/chats/active").await.expect(200);
    assert!(chats.as_array().unwrap().iter().all(|c| c["id"] != bob.id), "{chats}");
    let history = alice.get(&format!("/chats/{}/messages", bob.id)).await.expect(200);
    assert!(history.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn clearing_for_everyone_in_steps_wipes_every_message_and_tells_both() {
    let app = TestApp::spawn_with(&lifted(&[])).await;
    let (alice, bob) = (app.user().await, app.user().await);
    let last = insert_history(&app, alice.id, bob.id, 2_500).await;
    let mut b = app.ws(&bob.token).await;
    let r = alice.delete(&format!("/chats/{}/messages?for_everyone=true", bob.id)).await.expect(200);
    assert_eq!(r["deleted_count"], 2_500);
    let pair = format!("sender_id IN ({0}, {1}) AND receiver_id IN ({0}, {1})", alice.id, bob.id);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM message WHERE {pair} AND deleted_for_everyone = 0")).await, 0);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM message WHERE {pair} AND encrypted_content != ''")).await, 0);
    assert_eq!(b.expect("chat_cleared").await, json!({"peer_id": alice.id, "for_everyone": true, "up_to_id": last}));
}

#[tokio::test]
async fn mark_read_is_capped_per_call_and_its_events_stay_small() {
    let app = TestApp::spawn_with(&lifted(&[])).await;
    let (alice, bob) = (app.user().await, app.user().await);
    // 25 000 from alice to bob (every second of 50 000), all unread.
    insert_history(&app, alice.id, bob.id, 50_000).await;
    let unread = format!("SELECT COUNT(*) FROM message WHERE receiver_id = {} AND is_read = 0", bob.id);
    assert_eq!(app.count(&unread).await, 25_000);
    let mut a = app.ws(&alice.token).await;
    let path = format!("/chats/{}/mark-read", alice.id);
    let mut counts = Vec::new();
    for _ in 0..4 {
        counts.push(bob.post(&path, None).await.expect(200)["marked_count"].as_i64().unwrap());
    }
    assert_eq!(counts, vec![10_000, 10_000, 5_000, 0], "at most 10 000 per call, the rest on the next");
    assert_eq!(app.count(&unread).await, 0);
    let mut receipts = 0;
    while receipts < 25_000 {
        let event = a.expect("messages_read").await;
        let ids = event["message_ids"].as_array().unwrap().len();
        assert!((1..=1000).contains(&ids), "{ids} ids in one event");
        assert!(event.to_string().len() < 128 * 1024);
        receipts += ids;
    }
    assert_eq!(receipts, 25_000);
}

#[tokio::test]
async fn deleting_an_account_with_a_long_history_purges_it_all_in_steps() {
    let app = TestApp::spawn_with(&lifted(&[])).await;
    let (alice, bob) = (app.user().await, app.user().await);
    insert_history(&app, alice.id, bob.id, 5_000).await;
    // Bob hid every message of the chat: only alice could still see them, so they go with her account.
    bob.delete(&format!("/chats/{}/messages", alice.id)).await.expect(200);
    let carol = app.user().await;
    insert_history(&app, alice.id, carol.id, 3_000).await;
    let media = format!("UPDATE message SET media_key = 'u/{}/x' WHERE sender_id = {}", alice.id, alice.id);
    app.db().await.execute(&media, ()).await.unwrap();
    let device = alice.device_id.clone();
    let envelopes = format!(
        "INSERT INTO message_envelope (message_id, device_id, user_id, ciphertext) \
         SELECT id, '{device}', {}, 'e' FROM message WHERE receiver_id = {}",
        alice.id, alice.id
    );
    app.db().await.execute(&envelopes, ()).await.unwrap();

    assert_eq!(alice.delete_account().await.status.as_u16(), 204);
    let with_bob = format!(
        "SELECT COUNT(*) FROM message WHERE sender_id IN ({0}, {1}) AND receiver_id IN ({0}, {1})",
        alice.id, bob.id
    );
    assert_eq!(app.count(&with_bob).await, 0, "what nobody can see any more is gone");
    assert_eq!(app.count(&visible_to(carol.id, alice.id)).await, 3_000, "carol keeps her copy");
    let attached = format!("SELECT COUNT(*) FROM message WHERE sender_id = {} AND media_key IS NOT NULL", alice.id);
    assert_eq!(app.count(&attached).await, 0, "media detached");
    let left = format!("SELECT COUNT(*) FROM message_envelope WHERE device_id = '{device}'");
    assert_eq!(app.count(&left).await, 0, "the device's envelopes are purged");
    assert_eq!(app.count("SELECT COUNT(*) FROM bulk_job").await, 0);
}
