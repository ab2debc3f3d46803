//! The abuse limits added beyond API.md §1.2: each endpoint that fans out or leaks answers, throttled.

use messenger_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn directory_reads_are_rate_limited_per_user() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_DIRECTORY", "3/60")]).await;
    let me = app.user().await;
    let other = app.user().await;
    me.get("/users").await.expect(200);
    me.get(&format!("/users/{}/profile", other.id)).await.expect(200);
    me.get(&format!("/users/{}/profile", other.id + 1000)).await.expect_error(404, "user_not_found");
    me.get(&format!("/users/{}/profile", other.id)).await.expect_error(429, "rate_limited");
    me.get("/users").await.expect_error(429, "rate_limited");
    // One's own profile is not a scrape.
    me.get(&format!("/users/{}/profile", me.id)).await.expect(200);
    other.get("/users").await.expect(200);
}

#[tokio::test]
async fn every_lookup_that_tells_whether_an_id_exists_shares_the_directory_budget() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_DIRECTORY", "3/60")]).await;
    let me = app.user().await;
    let other = app.user().await;
    // Each answers 404 for an id nobody has: an enumeration oracle unless it is limited.
    me.get("/users/987654/devices").await.expect_error(404, "user_not_found");
    me.post("/keys/exchange", Some(&json!({"user_id": 987654}))).await.expect_error(404, "user_not_found");
    me.put("/contacts/987654/local-name", Some(&json!({"local_name": "x"})))
        .await
        .expect_error(404, "contact_not_found");
    for path in ["/users/987655/devices".to_owned(), format!("/users/{}/devices", other.id)] {
        me.get(&path).await.expect_error(429, "rate_limited");
    }
    me.post("/keys/exchange", Some(&json!({"user_id": other.id}))).await.expect_error(429, "rate_limited");
    me.put(&format!("/contacts/{}/local-name", other.id), Some(&json!({"local_name": "x"})))
        .await
        .expect_error(429, "rate_limited");
    me.get(&format!("/users/{}/profile", other.id)).await.expect_error(429, "rate_limited");
    other.get(&format!("/users/{}/devices", me.id)).await.expect(200);
}

#[tokio::test]
async fn username_changes_are_rate_limited_per_user() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_USERNAME_CHANGE", "2/3600")]).await;
    let me = app.user().await;
    me.put("/users/me/username?new_username=first_name", None).await.expect(200);
    me.put("/users/me/username?new_username=first_name", None).await.expect(200); // unchanged: not counted
    me.put("/users/me/username?new_username=second_name", None).await.expect(200);
    me.put("/users/me/username?new_username=third_name", None).await.expect_error(429, "rate_limited");
}

#[tokio::test]
async fn key_uploads_are_rate_limited_per_device() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_KEY_UPLOAD", "2/3600")]).await;
    let me = app.user().await;
    for _ in 0..2 {
        me.put("/keys", Some(&json!({}))).await.expect_error(422, "validation_error");
    }
    me.put("/keys", Some(&json!({}))).await.expect_error(429, "rate_limited");
}

#[tokio::test]
async fn connections_are_rate_limited_per_user_before_the_upgrade() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_CONNECT", "2/60")]).await;
    let me = app.user().await;
    let _a = app.ws(&me.token).await;
    let _b = app.ws(&me.token).await;
    let err = tokio_tungstenite::connect_async(format!("{}?token={}", app.ws_url(), me.token)).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), 429),
        other => panic!("expected a 429 before the upgrade, got {other}"),
    }
}

#[tokio::test]
async fn each_connection_has_a_budget_for_ping_typing_and_mark_read() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_WS_FRAMES", "3/60")]).await;
    let me = app.user().await;
    let peer = app.user().await;
    let mut ws = app.ws(&me.token).await;
    ws.send(&json!({"action": "ping"})).await;
    ws.expect("pong").await;
    ws.send(&json!({"action": "typing", "receiver_id": peer.id, "is_typing": true})).await;
    ws.send(&json!({"action": "mark_read", "peer_id": peer.id})).await;
    ws.send(&json!({"action": "ping"})).await;
    let e = ws.expect("error").await;
    assert_eq!(e["code"], "rate_limited", "{e}");
    // Messages have their own limit, and another connection its own budget.
    let mut other = app.ws(&me.token).await;
    other.send(&json!({"action": "ping"})).await;
    other.expect("pong").await;
    let id = me.send_via(&mut ws, peer.id, "still sends").await;
    assert!(id > 0);
}
