use std::time::Duration;

use messenger_tests::{TestApp, Ws};
use serde_json::{Value, json};

fn status_of(err: tokio_tungstenite::tungstenite::Error) -> u16 {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP rejection, got {other}"),
    }
}

#[tokio::test]
async fn connect_rejects_missing_and_bad_tokens_with_401_before_the_upgrade() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    for url in [app.ws_url(), format!("{}?token=garbage", app.ws_url()), format!("{}?token=", app.ws_url())] {
        let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
        assert_eq!(status_of(err), 401);
    }
    app.db().await.execute("UPDATE user SET token_version = 5 WHERE id = ?1", [user.id]).await.unwrap();
    let err = tokio_tungstenite::connect_async(format!("{}?token={}", app.ws_url(), user.token)).await.unwrap_err();
    assert_eq!(status_of(err), 401, "a revoked token cannot connect");
}

#[tokio::test]
async fn tokens_are_accepted_from_the_header_and_the_subprotocol() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let mut req = app.ws_url().into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", user.token).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut ws_header = Ws { stream: ws };
    ws_header.send(&json!({"action": "ping"})).await;
    assert!(ws_header.expect("pong").await["time"].as_str().unwrap().ends_with('Z'));

    let mut req = app.ws_url().into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", format!("messenger.v1, bearer.{}", user.token).parse().unwrap());
    let (stream, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "messenger.v1");
    ws = stream;
    let mut ws_proto = Ws { stream: ws };
    ws_proto.send(&json!({"action": "ping"})).await;
    ws_proto.expect("pong").await;
}

#[tokio::test]
async fn a_message_reaches_every_receiver_connection_and_the_senders_other_ones() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut a1 = app.ws(&alice.token).await;
    let mut a2 = app.ws(&alice.token).await;
    let mut b1 = app.ws(&bob.token).await;
    let mut b2 = app.ws(&bob.token).await;
    a1.send(&json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "c1",
        "client_msg_id": "5b0c1c1e-aaaa-4bbb-8ccc-000000000001"}))
        .await;
    let sent = a1.expect("message_sent").await;
    assert_eq!(sent["client_msg_id"], "5b0c1c1e-aaaa-4bbb-8ccc-000000000001");
    let id = sent["message_id"].as_i64().unwrap();
    for ws in [&mut b1, &mut b2] {
        let m = ws.expect("new_message").await;
        assert_eq!(
            (m["id"].as_i64(), m["sender_id"].as_i64(), m["receiver_id"].as_i64()),
            (Some(id), Some(alice.id), Some(bob.id))
        );
        assert_eq!(m["encrypted_content"], "c1");
        assert_eq!(m["is_read"], false);
        assert_eq!(m["message_type"], "text");
        assert_eq!(m["sender_device_id"], alice.device_id.as_str());
    }
    let echo = a2.expect("new_message").await;
    assert_eq!(echo["id"], id);
    a1.expect_quiet().await;
    // Stored before it was acknowledged.
    let history = bob.get(&format!("/chats/{}/messages", alice.id)).await.expect(200);
    assert_eq!(history[0]["id"], id);
}

#[tokio::test]
async fn a_retried_client_msg_id_stores_one_message() {
    let app = TestApp::spawn().await;
    let (alice, mut a, bob, mut b) = app.two_online().await;
    let frame = json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "once", "client_msg_id": "retry-1"});
    a.send(&frame).await;
    let first = a.expect("message_sent").await;
    a.send(&frame).await;
    let second = a.expect("message_sent").await;
    assert_eq!(first, second, "the original id and timestamp are repeated");
    b.expect("new_message").await;
    b.expect_quiet().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM message").await, 1);
    // Another sender may use the same id.
    let mut b_send = app.ws(&bob.token).await;
    b_send.send(&json!({"action": "send_message", "receiver_id": alice.id, "encrypted_content": "x", "client_msg_id": "retry-1"})).await;
    assert_ne!(b_send.expect("message_sent").await["message_id"], first["message_id"]);
}

#[tokio::test]
async fn every_send_error_comes_back_as_an_error_event() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let mut a = app.ws(&alice.token).await;
    let mut b = app.ws(&bob.token).await;
    let carol_msg = {
        let mut c = app.ws(&carol.token).await;
        carol.send_via(&mut c, bob.id, "private").await
    };
    let gone = app.user().await;
    app.db().await.execute("UPDATE user SET is_deleted = 1 WHERE id = ?1", [gone.id]).await.unwrap();
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"receiver_id": bob.id}), "missing_fields", "Missing receiver_id or encrypted_content"),
        (json!({"encrypted_content": "x"}), "missing_fields", "Missing receiver_id or encrypted_content"),
        (
            json!({"receiver_id": bob.id, "encrypted_content": ""}),
            "missing_fields",
            "Missing receiver_id or encrypted_content",
        ),
        (json!({"receiver_id": "bob", "encrypted_content": "x"}), "invalid_id", "Invalid user ID format"),
        (json!({"receiver_id": 1.5, "encrypted_content": "x"}), "invalid_id", "Invalid user ID format"),
        (json!({"receiver_id": alice.id, "encrypted_content": "x"}), "self_message", "Cannot send message to yourself"),
        (json!({"receiver_id": 999_999, "encrypted_content": "x"}), "receiver_not_found", "Receiver not found"),
        (json!({"receiver_id": gone.id, "encrypted_content": "x"}), "receiver_not_found", "Receiver not found"),
        (
            json!({"receiver_id": bob.id, "encrypted_content": "x", "reply_to_message_id": carol_msg}),
            "reply_not_found",
            "Reply message not found",
        ),
        (
            json!({"receiver_id": bob.id, "encrypted_content": "x", "reply_to_message_id": 999_999}),
            "reply_not_found",
            "Reply message not found",
        ),
        (
            json!({"receiver_id": bob.id, "encrypted_content": "x".repeat(64 * 1024 + 1)}),
            "payload_too_large",
            "Message too large",
        ),
        (
            json!({"receiver_id": bob.id, "encrypted_content": "x", "message_type": "video"}),
            "invalid_message_type",
            "Invalid message_type",
        ),
        (
            json!({"receiver_id": bob.id, "encrypted_content": "x", "media_url": "u/someone-elses"}),
            "invalid_media",
            "Invalid media reference",
        ),
        (
            json!({"receiver_id": bob.id, "encrypted_content": "x", "media_url": "https://evil.example/x.png"}),
            "invalid_media",
            "Invalid media reference",
        ),
        (
            json!({"receiver_id": bob.id, "encrypted_content": "x", "client_msg_id": "has space"}),
            "invalid_client_msg_id",
            "Invalid client_msg_id",
        ),
        (
            json!({"receiver_id": bob.id, "encrypted_content": "x", "client_msg_id": "a".repeat(65)}),
            "invalid_client_msg_id",
            "Invalid client_msg_id",
        ),
    ];
    for (mut frame, code, message) in cases {
        frame["action"] = json!("send_message");
        a.send_fragmented(&frame.to_string()).await;
        let e = a.expect("error").await;
        assert_eq!((e["code"].as_str(), e["message"].as_str()), (Some(code), Some(message)), "{frame}");
    }
    // The client_msg_id travels with the error.
    a.send(
        &json!({"action": "send_message", "receiver_id": 999_999, "encrypted_content": "x", "client_msg_id": "cm-1"}),
    )
    .await;
    assert_eq!(a.expect("error").await["client_msg_id"], "cm-1");
    a.send_text("{not json").await;
    assert_eq!(a.expect("error").await["message"], "Invalid JSON");
    a.send(&json!({"action": "dance"})).await;
    assert_eq!(a.expect("error").await["message"], "Unknown action");
    a.send(&json!({"no_action": true})).await;
    assert_eq!(a.expect("error").await["code"], "unknown_action");
    // Nothing of all that was stored: only carol's message exists, and bob got nothing from alice.
    assert_eq!(app.count("SELECT COUNT(*) FROM message").await, 1);
    b.expect("new_message").await;
    b.expect_quiet().await;
}

#[tokio::test]
async fn sends_over_the_rate_limit_are_refused_with_an_error_naming_the_message() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_SEND_MESSAGE", "3/60")]).await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut a = app.ws(&alice.token).await;
    for i in 0..3 {
        alice.send_via(&mut a, bob.id, &format!("m{i}")).await;
    }
    a.send(
        &json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x", "client_msg_id": "over"}),
    )
    .await;
    let e = a.expect("error").await;
    assert_eq!((e["code"].as_str(), e["client_msg_id"].as_str()), (Some("rate_limited"), Some("over")));
    assert_eq!(e["message"], "Rate limit exceeded");
    assert_eq!(app.count("SELECT COUNT(*) FROM message").await, 3);
}

#[tokio::test]
async fn typing_is_relayed_only_within_a_conversation_and_per_privacy() {
    let app = TestApp::spawn().await;
    let (alice, mut a, bob, mut b) = app.two_online().await;
    a.send(&json!({"action": "typing", "receiver_id": bob.id, "is_typing": true})).await;
    b.expect_quiet().await;
    alice.send_delivered(&mut a, &bob, &mut b, "hi").await;
    a.send(&json!({"action": "typing", "receiver_id": bob.id, "is_typing": true})).await;
    assert_eq!(b.expect("typing").await, json!({"sender_id": alice.id, "is_typing": true}));
    a.send(&json!({"action": "typing", "receiver_id": bob.id, "is_typing": false})).await;
    b.expect_quiet().await;
    a.send(&json!({"action": "typing", "receiver_id": "x"})).await;
    a.expect_quiet().await;
    alice.put("/users/me/privacy?show_online_status=false", None).await.expect(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.send(&json!({"action": "typing", "receiver_id": bob.id, "is_typing": true})).await;
    b.expect_quiet().await;
}

#[tokio::test]
async fn read_receipts_are_sent_only_when_both_users_show_them() {
    let app = TestApp::spawn().await;
    let (alice, mut a, bob, mut b) = app.two_online().await;
    let m1 = alice.send_delivered(&mut a, &bob, &mut b, "one").await;
    let m2 = alice.send_delivered(&mut a, &bob, &mut b, "two").await;
    b.send(&json!({"action": "mark_read", "peer_id": alice.id, "up_to_id": m1})).await;
    assert_eq!(a.expect("messages_read").await, json!({"message_ids": [m1], "reader_id": bob.id}));
    let sent = alice.get(&format!("/chats/{}/messages", bob.id)).await.expect(200);
    assert_eq!((sent[0]["is_read"].as_bool(), sent[1]["is_read"].as_bool()), (Some(true), Some(false)));

    bob.put("/users/me/privacy?show_read_receipts=false", None).await.expect(200);
    let r = bob.post(&format!("/chats/{}/mark-read", alice.id), None).await.expect(200);
    assert_eq!(r, json!({"marked_count": 1, "message": "Messages marked as read"}));
    a.expect_quiet().await;
    let sent = alice.get(&format!("/chats/{}/messages", bob.id)).await.expect(200);
    assert!(sent[0]["is_read"].is_null() && sent[1]["is_read"].is_null(), "hidden from the sender");
    let received = bob.get(&format!("/chats/{}/messages", alice.id)).await.expect(200);
    assert_eq!(received[1]["is_read"], true, "the reader's own unread state is still kept");
    let _ = m2;
}

#[tokio::test]
async fn presence_follows_the_first_and_last_connection() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut b = app.ws(&bob.token).await;
    let mut a = app.ws(&alice.token).await;
    bob.send_via(&mut b, alice.id, "hello").await;
    a.expect("new_message").await;
    drop(a);
    let mut got = None;
    for _ in 0..5 {
        let ev = b.next_event().await.expect("open");
        if ev["event"] == "presence" && ev["data"]["is_online"] == false {
            got = Some(ev["data"].clone());
            break;
        }
    }
    let data = got.expect("offline presence");
    assert_eq!(data["user_id"], alice.id);
    assert!(data["last_seen"].as_str().unwrap().ends_with('Z'));
    let _a = app.ws(&alice.token).await;
    loop {
        let ev = b.next_event().await.expect("open");
        if ev["event"] == "presence" && ev["data"]["is_online"] == true {
            break;
        }
    }
    assert_eq!(bob.get(&format!("/users/{}/profile", alice.id)).await.expect(200)["is_online"], true);
}

#[tokio::test]
async fn a_connection_that_vanished_without_disconnect_is_purged_on_the_next_push() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    app.db()
        .await
        .execute(
            "INSERT INTO connection (id, user_id, device_id, token_version, token_exp, connected_at) VALUES ('ghost=', ?1, ?2, 0, 0, 0)",
            (bob.id, bob.device_id.as_str()),
        )
        .await
        .unwrap();
    let mut b = app.ws(&bob.token).await;
    let mut a = app.ws(&alice.token).await;
    alice.send_via(&mut a, bob.id, "to a ghost").await;
    b.expect("new_message").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM connection WHERE id = 'ghost='").await, 0);
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM connection WHERE user_id = {}", bob.id)).await,
        1,
        "only the gone one"
    );
}

#[tokio::test]
async fn frames_over_32_kb_close_the_connection_with_1009() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mut a = app.ws(&alice.token).await;
    a.send_text(&"x".repeat(40 * 1024)).await;
    assert_eq!(a.closed().await, Some(1009));
}

#[tokio::test]
async fn messages_over_128_kb_close_the_connection_with_1009_even_in_small_frames() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut a = app.ws(&alice.token).await;
    // A 100 KB message in 16 KB frames is fine (and too large as content)...
    a.send_fragmented(
        &json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x".repeat(100 * 1024)})
            .to_string(),
    )
    .await;
    assert_eq!(a.expect("error").await["code"], "payload_too_large");
    // ...one over 128 KB is not.
    a.send_fragmented(&"y".repeat(130 * 1024)).await;
    assert_eq!(a.closed().await, Some(1009));
}

/// Revokes every token of `user_id` in the database only: a revocation whose sockets were not closed.
async fn revoke_in_database(app: &TestApp, user_id: i64) {
    let conn = app.db().await;
    conn.execute("UPDATE user SET token_version = token_version + 1 WHERE id = ?1", [user_id]).await.unwrap();
}

#[tokio::test]
async fn a_revoked_token_gets_unauthorized_and_the_connection_closes() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mut a = app.ws(&alice.token).await;
    revoke_in_database(&app, alice.id).await;
    a.send(&json!({"action": "ping"})).await;
    let e = a.expect("error").await;
    assert_eq!((e["message"].as_str(), e["code"].as_str()), (Some("Unauthorized"), Some("unauthorized")));
    assert_eq!(a.closed().await, Some(1000));
}

#[tokio::test]
async fn a_session_is_trusted_for_the_cache_time_then_checked_again() {
    // API.md §7.1: tokens are re-checked on every action, cached at most 60 s; here 3 s.
    let app = TestApp::spawn_with(&[("WS_SESSION_CACHE_SECONDS", "3")]).await;
    let alice = app.user().await;
    let mut a = app.ws(&alice.token).await;
    a.send(&json!({"action": "ping"})).await;
    a.expect("pong").await;
    let looked_up = std::time::Instant::now();
    // A revocation whose close was lost: only the session check can notice it.
    revoke_in_database(&app, alice.id).await;
    a.send(&json!({"action": "ping"})).await;
    a.expect("pong").await;
    assert!(looked_up.elapsed() < Duration::from_secs(3), "the cached session answered, not a late lookup");
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(looked_up.elapsed()) + Duration::from_millis(100)).await;
    a.send(&json!({"action": "ping"})).await;
    assert_eq!(a.expect("error").await["code"], "unauthorized");
    assert_eq!(a.closed().await, Some(1000));
}

#[tokio::test]
async fn changing_the_password_closes_every_connection_and_the_new_token_reconnects() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let other = app
        .client()
        .call("POST", "/auth/login", None, Some(&json!({"phone": alice.phone, "password": alice.password})))
        .await
        .expect(200);
    let mut mine = app.ws(&alice.token).await;
    let mut theirs = app.ws(other["access_token"].as_str().unwrap()).await;
    let fresh = alice
        .put(
            "/users/me/password",
            Some(&json!({"current_password": alice.password, "new_password": "a new passphrase"})),
        )
        .await
        .expect(200);
    assert!(theirs.closed().await.is_some());
    assert!(mine.closed().await.is_some(), "even the caller's socket carried the old token");
    let mut again = app.ws(fresh["access_token"].as_str().unwrap()).await;
    again.send(&json!({"action": "ping"})).await;
    again.expect("pong").await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let limits = messenger_local::connections::WsLimits {
        idle_timeout: Duration::from_millis(300),
        max_duration: Duration::from_secs(60),
    };
    let app = TestApp::spawn_full(&[], Some(limits)).await;
    let alice = app.user().await;
    let mut a = app.ws(&alice.token).await;
    assert_eq!(a.closed().await, Some(1001));
    // The disconnect removed the row and set last_seen.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM connection").await, 0);
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM user WHERE id = {} AND last_seen IS NOT NULL", alice.id)).await,
        1
    );
}

#[tokio::test]
async fn connections_end_at_the_maximum_duration_even_when_active() {
    let limits = messenger_local::connections::WsLimits {
        idle_timeout: Duration::from_secs(60),
        max_duration: Duration::from_millis(500),
    };
    let app = TestApp::spawn_full(&[], Some(limits)).await;
    let alice = app.user().await;
    let mut a = app.ws(&alice.token).await;
    a.send(&json!({"action": "ping"})).await;
    a.expect("pong").await;
    assert_eq!(a.closed().await, Some(1001));
}

#[tokio::test]
async fn an_eleventh_connection_closes_the_oldest() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mut first = app.ws(&alice.token).await;
    let mut rest = Vec::new();
    for _ in 0..10 {
        rest.push(app.ws(&alice.token).await);
    }
    assert!(first.closed().await.is_some());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM connection").await, 10);
}

#[tokio::test]
async fn the_management_endpoint_behaves_like_api_gateways() {
    use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Credentials, Region};
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mut a = app.ws(&alice.token).await;
    let conf = aws_sdk_apigatewaymanagement::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .http_client(shared::aws::http_client())
        .credentials_provider(Credentials::new("k", "s", None, None, "test"))
        .endpoint_url(format!("http://{}/ws", app.stack.http_addr))
        .build();
    let client = aws_sdk_apigatewaymanagement::Client::from_conf(conf);
    let id: String = {
        let conn = app.db().await;
        let mut rows = conn.query("SELECT id FROM connection", ()).await.unwrap();
        rows.next().await.unwrap().unwrap().get(0).unwrap()
    };
    let info = client.get_connection().connection_id(&id).send().await.unwrap();
    assert!(info.connected_at().is_some() && info.last_active_at().is_some());
    client
        .post_to_connection()
        .connection_id(&id)
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(r#"{"event":"custom","data":{}}"#))
        .send()
        .await
        .unwrap();
    // Any payload passes through the management endpoint, not only the server's own events.
    let raw = a.next_unchecked_event().await.expect("open");
    assert_eq!(raw, json!({"event": "custom", "data": {}}));
    let err = client
        .post_to_connection()
        .connection_id("unknown=")
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_gone_exception());
    client.delete_connection().connection_id(&id).send().await.unwrap();
    assert!(a.closed().await.is_some());
}

#[tokio::test]
async fn hostile_frames_never_break_the_gateway() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let mut a = app.ws(&alice.token).await;
    for frame in [
        "",
        "null",
        "[]",
        "123",
        "\"action\"",
        r#"{"action": null}"#,
        r#"{"action": 5}"#,
        r#"{"action": "$connect"}"#,
        r#"{"action": "$disconnect"}"#,
        r#"{"action": "send_message", "receiver_id": {"a": 1}, "encrypted_content": []}"#,
        r#"{"action": "mark_read", "peer_id": "x"}"#,
        r#"{"action": "mark_read"}"#,
        r#"{"action": "typing", "is_typing": "yes"}"#,
    ] {
        a.send_text(frame).await;
    }
    a.send(&json!({"action": "ping"})).await;
    loop {
        let ev = a.next_event().await.expect("still open");
        if ev["event"] == "pong" {
            break;
        }
        assert_eq!(ev["event"], "error", "{ev}");
    }
    alice.get("/me").await.expect(200);
}

#[tokio::test]
async fn a_storage_failure_is_reported_and_nothing_is_acknowledged() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut a = app.ws(&alice.token).await;
    app.db().await.execute("ALTER TABLE message RENAME TO message_broken", ()).await.unwrap();
    a.send(&json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x", "client_msg_id": "f1"}))
        .await;
    let e = a.expect("error").await;
    assert_eq!(e, json!({"message": "Failed to send message", "code": "internal_error", "client_msg_id": "f1"}));
    a.expect_quiet().await;
}

#[tokio::test]
async fn purging_a_users_last_connection_announces_them_offline() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let carol = app.user().await;
    app.db()
        .await
        .execute(
            "INSERT INTO connection (id, user_id, device_id, token_version, token_exp, connected_at) VALUES ('ghost=', ?1, ?2, 0, 0, 0)",
            (carol.id, carol.device_id.as_str()),
        )
        .await
        .unwrap();
    let mut a = app.ws(&alice.token).await;
    alice.send_via(&mut a, carol.id, "are you there?").await;
    let presence = loop {
        let ev = a.next_event().await.expect("open");
        if ev["event"] == "presence" && ev["data"]["user_id"] == carol.id {
            break ev["data"].clone();
        }
    };
    assert_eq!(presence["is_online"], false);
    assert!(presence["last_seen"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.count("SELECT COUNT(*) FROM connection WHERE id = 'ghost='").await, 0);
}

#[tokio::test]
async fn a_retry_is_acknowledged_even_when_the_sender_is_over_the_rate_limit() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_SEND_MESSAGE", "2/60")]).await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut a = app.ws(&alice.token).await;
    let frame =
        json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x", "client_msg_id": "once"});
    a.send(&frame).await;
    let first = a.expect("message_sent").await;
    alice.send_via(&mut a, bob.id, "second").await;
    a.send(&frame).await;
    assert_eq!(a.expect("message_sent").await, first, "stored, so acknowledged again, not rate_limited");
    // Also after the receiver is gone.
    bob.delete_account().await;
    a.expect("key_change").await;
    a.send(&frame).await;
    assert_eq!(a.expect("message_sent").await, first);
}

#[tokio::test]
async fn no_presence_for_users_who_hide_their_online_status_or_from_cleared_chats() {
    let app = TestApp::spawn().await;
    let shy = app.user().await;
    let peer = app.user().await;
    let mut p = app.ws(&peer.token).await;
    peer.send_via(&mut p, shy.id, "hello").await;
    shy.put("/users/me/privacy?show_online_status=false&show_last_seen=true", None).await.expect(200);
    let s = app.ws(&shy.token).await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.send(&json!({"action": "ping"})).await;
    let ev = p.next_event().await.expect("open");
    assert_eq!(ev["event"], "pong", "no presence arrives: {ev}");

    // A chat the peer cleared for itself no longer counts as shared.
    let other = app.user().await;
    let mut o = app.ws(&other.token).await;
    other.send_via(&mut o, peer.id, "hi").await;
    p.expect("new_message").await;
    peer.delete(&format!("/chats/{}/messages", other.id)).await.expect(200);
    p.expect("chat_cleared").await;
    drop(o);
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.send(&json!({"action": "ping"})).await;
    let ev = p.next_event().await.expect("open");
    assert_eq!(ev["event"], "pong", "no presence from a cleared chat: {ev}");
}

/// Reads `ws` until the server closes it; fails if an event other than `presence` arrives first.
async fn closed_without_events(ws: &mut Ws) {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let msg = tokio::time::timeout(messenger_tests::EVENT_TIMEOUT, ws.stream.next()).await.expect("closed in time");
        match msg {
            Some(Ok(Message::Text(text))) => {
                let ev: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(ev["event"], "presence", "no event after the session ended: {ev}");
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn connections_whose_session_ended_get_no_more_events_and_are_closed() {
    let app = TestApp::spawn().await;
    let sender = app.user().await;
    let mut out = app.ws(&sender.token).await;
    // Each way a session ends without its sockets being closed (a revocation whose close was lost, a token
    // that expired while connected): the next push to that user closes the socket instead of delivering.
    let endings = [
        "UPDATE connection SET token_exp = 1 WHERE user_id = ?1",
        "UPDATE user SET token_version = token_version + 1 WHERE id = ?1",
        "UPDATE user SET is_banned = 1 WHERE id = ?1",
        "DELETE FROM device WHERE user_id = ?1",
    ];
    for ending in endings {
        let receiver = app.user().await;
        let mut inbox = app.ws(&receiver.token).await;
        sender.send_via(&mut out, receiver.id, "before").await;
        assert_eq!(inbox.expect("new_message").await["encrypted_content"], "before");
        app.db().await.execute(ending, [receiver.id]).await.unwrap();
        sender.send_via(&mut out, receiver.id, "after").await;
        closed_without_events(&mut inbox).await;
        let left = format!("SELECT COUNT(*) FROM connection WHERE user_id = {}", receiver.id);
        assert_eq!(app.count(&left).await, 0, "{ending}: the row is gone too");
    }
}
