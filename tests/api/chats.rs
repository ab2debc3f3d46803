use messenger_tests::TestApp;
use serde_json::{Value, json};

fn ids(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn history_pages_across_500_messages_with_every_cursor() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut all = app.insert_messages(alice.id, bob.id, 250).await;
    all.extend(app.insert_messages(bob.id, alice.id, 250).await);
    // Noise in other conversations must never show up.
    let carol = app.user().await;
    app.insert_messages(carol.id, alice.id, 20).await;
    let path = format!("/chats/{}/messages", bob.id);

    assert_eq!(ids(&alice.get(&path).await.expect(200)), all[450..].to_vec(), "newest 50, ascending");
    assert_eq!(ids(&alice.get(&format!("{path}?limit=200")).await.expect(200)), all[300..].to_vec());
    assert_eq!(ids(&alice.get(&format!("{path}?limit=1000")).await.expect(200)).len(), 200, "capped at 200");
    assert_eq!(
        ids(&alice.get(&format!("{path}?before_id={}&limit=10", all[100])).await.expect(200)),
        all[90..100].to_vec()
    );
    assert_eq!(
        ids(&alice.get(&format!("{path}?after_id={}&limit=10", all[100])).await.expect(200)),
        all[101..111].to_vec()
    );
    assert_eq!(
        ids(&alice.get(&format!("{path}?after_id={}&before_id={}&limit=100", all[10], all[15])).await.expect(200)),
        all[11..15].to_vec()
    );
    assert!(ids(&alice.get(&format!("{path}?after_id={}", all[499])).await.expect(200)).is_empty(), "nothing newer");
    assert!(ids(&alice.get(&format!("{path}?before_id={}", all[0])).await.expect(200)).is_empty(), "nothing older");

    // Walking backwards and forwards both visit every message exactly once.
    let mut back = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = ids(&alice.get(&format!("{path}?limit=64{cursor}")).await.expect(200));
        if page.is_empty() {
            break;
        }
        cursor = format!("&before_id={}", page[0]);
        back.splice(0..0, page);
    }
    assert_eq!(back, all);
    let mut forward = Vec::new();
    let mut after = 0;
    loop {
        let page = ids(&bob.get(&format!("/chats/{}/messages?limit=77&after_id={after}", alice.id)).await.expect(200));
        let Some(last) = page.last() else { break };
        after = *last;
        forward.extend(page);
    }
    assert_eq!(forward, all);

    for bad in ["limit=0", "limit=-3", "limit=x", "before_id=x", "after_id=1.5"] {
        alice.get(&format!("{path}?{bad}")).await.expect_error(422, "validation_error");
    }
    assert!(ids(&alice.get("/chats/999999/messages").await.expect(200)).is_empty(), "unknown peer");
    alice.get("/chats/abc/messages").await.expect_error(422, "validation_error");
}

#[tokio::test]
async fn a_user_offline_at_send_time_catches_up_through_history() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut a = app.ws(&alice.token).await;
    let first = alice.send_via(&mut a, bob.id, "while you were away").await;
    let second = alice.send_via(&mut a, bob.id, "and again").await;
    let page = bob.get(&format!("/chats/{}/messages?after_id=0", alice.id)).await.expect(200);
    assert_eq!(ids(&page), vec![first, second]);
    assert_eq!(page[0]["encrypted_content"], "while you were away");
    assert!(page[0]["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn active_chats_list_peers_by_latest_visible_message() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    let bob = app.user_named("Bob", "B").await;
    let carol = app.user_named("Carol", "C").await;
    let mut ws = app.ws(&me.token).await;
    me.send_via(&mut ws, bob.id, "to bob").await;
    let mut cw = app.ws(&carol.token).await;
    let latest = carol.send_via(&mut cw, me.id, "from carol").await;
    let active = me.get("/chats/active").await.expect(200);
    assert_eq!(ids(&active), vec![carol.id, bob.id]);
    assert_eq!(active[0]["last_message"], "from carol");
    assert_eq!(active[0]["last_message_sender_id"], carol.id);
    assert_eq!(active[0]["last_message_type"], "text");
    assert!(active[0]["phone"].is_null(), "privacy applies");
    assert_eq!(active[0]["first_name"], "Carol");
    // Hidden messages are ignored.
    me.client.call("DELETE", &format!("/messages/{latest}"), Some(&me.token), None).await.expect(200);
    assert_eq!(ids(&me.get("/chats/active").await.expect(200)), vec![bob.id]);
    assert_eq!(ids(&carol.get("/chats/active").await.expect(200)), vec![me.id], "the peer keeps it");
}

/// Inserts `count` users straight into the database (for arranging many conversations) and returns their ids.
async fn insert_users(app: &TestApp, count: usize) -> Vec<i64> {
    let conn = app.db().await;
    let mut ids = Vec::new();
    for i in 0..count {
        let mut rows = conn
            .query("INSERT INTO user (first_name, created_at) VALUES (?1, 0) RETURNING id", [format!("Peer {i}")])
            .await
            .unwrap();
        ids.push(rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap());
    }
    ids
}

/// Walks `/chats/active` page by page with the documented cursor; returns the pages' peer ids.
async fn walk_active(user: &messenger_tests::TestUser, limit: usize) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = user.get(&format!("/chats/active?limit={limit}{cursor}")).await.expect(200);
        let rows = page.as_array().unwrap();
        let Some(last) = rows.last() else { break };
        let time = last["last_message_time"].as_str().unwrap();
        cursor = format!("&before={}&before_peer_id={}", urlencoding(time), last["id"]);
        pages.push(ids(&page));
    }
    pages
}

/// Percent-encodes the characters of an RFC 3339 timestamp that a query string cannot carry as they are.
fn urlencoding(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn active_chats_page_by_time_then_peer_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    let peers = insert_users(&app, 230).await;
    // Many conversations end in the same millisecond: the peer id must break the tie.
    let conn = app.db().await;
    for (i, peer) in peers.iter().enumerate() {
        let (from, to) = if i % 3 == 0 { (me.id, *peer) } else { (*peer, me.id) };
        let time = 1_700_000_000_000 + i64::try_from(i / 7).unwrap();
        conn.execute(
            "INSERT INTO message (sender_id, receiver_id, encrypted_content, created_at) VALUES (?1, ?2, ?3, ?4)",
            (from, to, format!("last-{i}"), time),
        )
        .await
        .unwrap();
    }
    // Newest time first, then higher peer id first.
    let mut expected: Vec<(i64, i64)> =
        peers.iter().enumerate().map(|(i, p)| (i64::try_from(i / 7).unwrap(), *p)).collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    let expected: Vec<i64> = expected.into_iter().map(|(_, p)| p).collect();

    let first = me.get("/chats/active").await.expect(200);
    assert_eq!(ids(&first), expected[..50].to_vec(), "no parameters: the first 50");
    assert_eq!(first[0]["last_message"], "last-229");
    assert_eq!(ids(&me.get("/chats/active?limit=1000").await.expect(200)), expected[..200].to_vec(), "capped");

    for limit in [1, 7, 50, 200] {
        let pages = walk_active(&me, limit).await;
        assert!(pages.iter().all(|p| p.len() <= limit), "pages of at most {limit}");
        assert_eq!(pages.concat(), expected, "walking with limit {limit} visits every peer once, in order");
    }

    // `before` alone: strictly older than that time.
    let boundary = first[6]["last_message_time"].as_str().unwrap().to_owned();
    let older = me.get(&format!("/chats/active?limit=200&before={}", urlencoding(&boundary))).await.expect(200);
    let older_times: Vec<&str> =
        older.as_array().unwrap().iter().map(|u| u["last_message_time"].as_str().unwrap()).collect();
    assert!(!older_times.is_empty() && older_times.iter().all(|t| *t < boundary.as_str()), "{older_times:?}");

    for bad in ["limit=0", "limit=x", "before=yesterday", "before=2024-01-01", "before_peer_id=x"] {
        me.get(&format!("/chats/active?{bad}")).await.expect_error(422, "validation_error");
    }
}

#[tokio::test]
async fn active_chats_stay_under_the_response_budget_with_large_last_messages() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    let peers = insert_users(&app, 120).await;
    let conn = app.db().await;
    // 120 throwaway accounts each leaving a 64 KiB message: 7.5 MiB in one list.
    let big = "x".repeat(64 * 1024);
    for peer in &peers {
        conn.execute(
            "INSERT INTO message (sender_id, receiver_id, encrypted_content, created_at) VALUES (?1, ?2, ?3, ?4)",
            (*peer, me.id, big.as_str(), shared::time::now_ms()),
        )
        .await
        .unwrap();
    }
    let res = me.client.call("GET", "/chats/active?limit=200", Some(&me.token), None).await;
    let body = res.expect(200);
    let rows = body.as_array().unwrap();
    let size = serde_json::to_vec(&body).unwrap().len();
    assert!(size <= 5 * 1024 * 1024, "a page stays under 5 MiB, got {size} bytes");
    assert!(rows.len() >= 70 && rows.len() < 120, "the page stops early, got {} rows", rows.len());
    // The rest is reachable through the cursor.
    let pages = walk_active(&me, 200).await;
    let mut seen = pages.concat();
    seen.sort_unstable();
    assert_eq!(seen, peers, "every conversation is on some page");
}

#[tokio::test]
async fn active_chats_follow_clearing_and_deletion() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    app.insert_messages(me.id, bob.id, 3).await;
    let from_carol = app.insert_messages(carol.id, me.id, 2).await;
    assert_eq!(ids(&me.get("/chats/active").await.expect(200)), vec![carol.id, bob.id]);

    // Deleting the newest message for everyone moves the summary to the one before it.
    carol.delete(&format!("/messages/{}", from_carol[1])).await.expect(200);
    let active = me.get("/chats/active").await.expect(200);
    assert_eq!(active[0]["id"], carol.id);
    assert_eq!(active[0]["last_message"], "ct-0");

    // Clearing for me removes the chat from my list only.
    me.delete(&format!("/chats/{}/messages", bob.id)).await.expect(200);
    assert_eq!(ids(&me.get("/chats/active").await.expect(200)), vec![carol.id]);
    let theirs = bob.get("/chats/active").await.expect(200);
    assert_eq!(ids(&theirs), vec![me.id], "bob keeps the conversation");
    assert_eq!(theirs[0]["last_message"], "ct-2");

    // A new message brings it back; clearing for everyone removes it on both sides.
    app.insert_messages(bob.id, me.id, 1).await;
    assert_eq!(ids(&me.get("/chats/active").await.expect(200)), vec![bob.id, carol.id]);
    me.delete(&format!("/chats/{}/messages?for_everyone=true", bob.id)).await.expect(200);
    assert_eq!(ids(&me.get("/chats/active").await.expect(200)), vec![carol.id]);
    assert!(ids(&bob.get("/chats/active").await.expect(200)).is_empty());

    // A deleted account leaves a stub in the peer's list and nothing in the summary.
    assert_eq!(carol.delete_account().await.status.as_u16(), 204);
    let active = me.get("/chats/active").await.expect(200);
    assert_eq!(ids(&active), vec![carol.id]);
    assert_eq!(active[0]["is_deleted"], true);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM chat_summary WHERE user_id = {}", carol.id)).await, 0);
}

#[tokio::test]
async fn deleting_a_message_for_everyone_or_for_me() {
    let app = TestApp::spawn().await;
    let (alice, mut a, bob, mut b) = app.two_online().await;
    let m1 = alice.send_delivered(&mut a, &bob, &mut b, "one").await;
    let m2 = alice.send_delivered(&mut a, &bob, &mut b, "two").await;

    bob.client
        .call("DELETE", &format!("/messages/{m1}?for_everyone=true"), Some(&bob.token), None)
        .await
        .expect_error(403, "not_message_sender");
    let r = bob.delete(&format!("/messages/{m1}")).await.expect(200);
    assert_eq!(r, json!({"message": "Message deleted successfully"}));
    assert_eq!(
        b.expect("message_deleted").await,
        json!({"message_id": m1, "peer_id": alice.id, "for_everyone": false})
    );
    a.expect_quiet().await;
    assert_eq!(ids(&bob.get(&format!("/chats/{}/messages", alice.id)).await.expect(200)), vec![m2]);
    assert_eq!(ids(&alice.get(&format!("/chats/{}/messages", bob.id)).await.expect(200)), vec![m1, m2]);
    bob.delete(&format!("/messages/{m1}")).await.expect_error(404, "message_not_found");

    alice.delete(&format!("/messages/{m2}")).await.expect(200);
    assert_eq!(a.expect("message_deleted").await, json!({"message_id": m2, "peer_id": bob.id, "for_everyone": true}));
    assert_eq!(b.expect("message_deleted").await, json!({"message_id": m2, "peer_id": alice.id, "for_everyone": true}));
    assert!(ids(&bob.get(&format!("/chats/{}/messages", alice.id)).await.expect(200)).is_empty());
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM message WHERE id = {m2} AND encrypted_content = ''")).await,
        1,
        "content wiped"
    );

    alice.delete("/messages/0").await.expect_error(400, "invalid_message_id");
    alice.delete("/messages/999999").await.expect_error(404, "message_not_found");
    let carol = app.user().await;
    carol.delete(&format!("/messages/{m1}")).await.expect_error(404, "message_not_found");
}

#[tokio::test]
async fn clearing_a_chat_for_me_keeps_the_peers_copy_and_for_everyone_tells_both() {
    let app = TestApp::spawn().await;
    let (alice, mut a, bob, mut b) = app.two_online().await;
    alice.send_delivered(&mut a, &bob, &mut b, "1").await;
    let last = bob.send_delivered(&mut b, &alice, &mut a, "2").await;
    let path = format!("/chats/{}/messages", bob.id);
    let r = alice.delete(&path).await.expect(200);
    assert_eq!(r, json!({"deleted_count": 2, "message": "Chat cleared successfully"}));
    assert_eq!(a.expect("chat_cleared").await, json!({"peer_id": bob.id, "for_everyone": false, "up_to_id": last}));
    b.expect_quiet().await;
    assert!(ids(&alice.get(&path).await.expect(200)).is_empty());
    assert_eq!(ids(&bob.get(&format!("/chats/{}/messages", alice.id)).await.expect(200)).len(), 2);

    let newer = bob.send_via(&mut b, alice.id, "3").await;
    a.expect("new_message").await;
    let r = bob
        .client
        .call("DELETE", &format!("/chats/{}/messages?for_everyone=true", alice.id), Some(&bob.token), None)
        .await
        .expect(200);
    assert_eq!(r["deleted_count"], 3);
    assert_eq!(b.expect("chat_cleared").await, json!({"peer_id": alice.id, "for_everyone": true, "up_to_id": newer}));
    assert_eq!(a.expect("chat_cleared").await, json!({"peer_id": bob.id, "for_everyone": true, "up_to_id": newer}));
    assert!(ids(&alice.get(&path).await.expect(200)).is_empty());
    assert!(ids(&bob.get(&format!("/chats/{}/messages", alice.id)).await.expect(200)).is_empty());
}

#[tokio::test]
async fn media_lists_image_messages_newest_first_and_deletion_removes_the_object() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let key = "u/test-media-object";
    app.stack.state.storage.put(key, messenger_tests::PNG.to_vec(), "image/png").await.unwrap();
    app.db()
        .await
        .execute(
            "INSERT INTO object (key, owner_id, kind, content_type, size, created_at) VALUES (?1, ?2, 'upload', 'image/png', 10, 0)",
            (key, alice.id),
        )
        .await
        .unwrap();
    let mut a = app.ws(&alice.token).await;
    alice.send_via(&mut a, bob.id, "text").await;
    a.send(&json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "img", "message_type": "image", "media_url": key})).await;
    let img = a.expect("message_sent").await["message_id"].as_i64().unwrap();
    let media = bob.get(&format!("/chats/{}/media", alice.id)).await.expect(200);
    assert_eq!(ids(&media), vec![img]);
    assert_eq!(media[0]["sender_id"], alice.id);
    let url = media[0]["media_url"].as_str().unwrap();
    assert_eq!(reqwest::get(url).await.unwrap().bytes().await.unwrap().as_ref(), messenger_tests::PNG);
    // Bob cannot reuse alice's object.
    let mut b = app.ws(&bob.token).await;
    b.send(&json!({"action": "send_message", "receiver_id": alice.id, "encrypted_content": "x", "media_url": url}))
        .await;
    assert_eq!(b.expect("error").await["code"], "invalid_media");
    alice.delete(&format!("/messages/{img}")).await.expect(200);
    assert!(app.bucket_keys().await.is_empty(), "the orphaned object is removed");
    assert!(ids(&bob.get(&format!("/chats/{}/media", alice.id)).await.expect(200)).is_empty());
}

#[tokio::test]
async fn clearing_for_everyone_also_removes_what_the_caller_hid_for_itself() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut a = app.ws(&alice.token).await;
    let m1 = alice.send_via(&mut a, bob.id, "1").await;
    let m2 = alice.send_via(&mut a, bob.id, "2").await;
    alice.delete(&format!("/messages/{m2}?for_everyone=false")).await.expect(200);
    let r = alice
        .client
        .call("DELETE", &format!("/chats/{}/messages?for_everyone=true", bob.id), Some(&alice.token), None)
        .await
        .expect(200);
    assert_eq!(r["deleted_count"], 2);
    assert!(
        ids(&bob.get(&format!("/chats/{}/messages", alice.id)).await.expect(200)).is_empty(),
        "{m1} {m2} gone for bob"
    );
}

#[tokio::test]
async fn history_pages_stay_under_5_mib_counting_envelopes() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let stored = app.insert_messages(alice.id, bob.id, 60).await;
    let conn = app.db().await;
    for id in &stored {
        conn.execute(
            "INSERT INTO message_envelope (message_id, device_id, user_id, ciphertext) VALUES (?1, ?2, ?3, ?4)",
            (*id, bob.device_id.as_str(), bob.id, "A".repeat(110 * 1024)),
        )
        .await
        .unwrap();
    }
    let page = bob.get(&format!("/chats/{}/messages", alice.id)).await;
    assert!(page.text.len() <= 5 * 1024 * 1024, "{} bytes", page.text.len());
    let got = ids(&page.body);
    assert!(got.len() < 50 && !got.is_empty());
    assert_eq!(got.last(), stored.last(), "the newest are kept");
    let forward = bob.get(&format!("/chats/{}/messages?after_id=0", alice.id)).await;
    assert!(forward.text.len() <= 5 * 1024 * 1024);
    assert_eq!(ids(&forward.body)[0], stored[0], "after a cursor the oldest are kept");
}
