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
async fn each_connection_has_one_budget_for_every_frame() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_WS_FRAMES", "3/60")]).await;
    let me = app.user().await;
    let peer = app.user().await;
    let mut ws = app.ws(&me.token).await;
    ws.send(&json!({"action": "ping"})).await;
    ws.expect("pong").await;
    ws.send(&json!({"action": "typing", "receiver_id": peer.id, "is_typing": true})).await;
    ws.send(&json!({"action": "send_message", "receiver_id": peer.id, "encrypted_content": "counted too",
        "client_msg_id": "m1"}))
        .await;
    ws.expect("message_sent").await;
    ws.send(&json!({"action": "send_message", "receiver_id": peer.id, "encrypted_content": "over",
        "client_msg_id": "m2"}))
        .await;
    let e = ws.expect("error").await;
    assert_eq!((e["code"].as_str(), e["client_msg_id"].as_str()), (Some("rate_limited"), Some("m2")), "{e}");
    // Another connection has its own budget.
    let mut other = app.ws(&me.token).await;
    other.send(&json!({"action": "ping"})).await;
    other.expect("pong").await;
    assert!(me.send_via(&mut other, peer.id, "still sends").await > 0);
    assert_eq!(app.count("SELECT count(*) FROM message WHERE client_msg_id = 'm2'").await, 0);
}

/// Frames the server answers with an error (or a repeated acknowledgement) without doing the action.
fn floods(peer: i64) -> Vec<(&'static str, String, Option<&'static str>)> {
    vec![
        ("invalid JSON", "{not json".to_owned(), Some("invalid_json")),
        ("unknown action", json!({"action": "dance"}).to_string(), Some("unknown_action")),
        ("no action ($default)", json!({"hello": 1}).to_string(), Some("unknown_action")),
        (
            "send_message without content",
            json!({"action": "send_message", "receiver_id": peer}).to_string(),
            Some("missing_fields"),
        ),
        (
            "send_message of a wrong type",
            json!({"action": "send_message", "receiver_id": true}).to_string(),
            Some("invalid_id"),
        ),
        (
            "a repeated client_msg_id",
            json!({"action": "send_message", "receiver_id": peer,
            "encrypted_content": "once", "client_msg_id": "again"})
            .to_string(),
            None,
        ),
    ]
}

#[tokio::test]
async fn floods_of_any_kind_get_one_refusal_then_the_socket_is_closed_and_others_still_send() {
    const BUDGET: usize = 5;
    let app = TestApp::spawn_with(&[("RATE_LIMIT_WS_FRAMES", "5/60")]).await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut bob_ws = app.ws(&bob.token).await;
    for (kind, frame, answer) in floods(bob.id) {
        let flooder = app.user().await;
        let mut ws = app.ws(&flooder.token).await;
        // The budget's worth, the refused frame that is answered, then as many as the budget into the full
        // window: the last one closes the connection.
        for _ in 0..2 * BUDGET {
            ws.send_text(&frame).await;
        }
        let mut events = Vec::new();
        while let Some(event) = ws.next_event().await {
            if event["event"] != "presence" {
                events.push(event);
            }
        }
        let codes: Vec<&str> = events.iter().map(|e| e["data"]["code"].as_str().unwrap_or("-")).collect();
        let mut expected = vec![answer.unwrap_or("-"); BUDGET];
        expected.push("rate_limited");
        assert_eq!(codes, expected, "{kind}: {events:?}");
        if answer.is_none() {
            assert!(events[..BUDGET].iter().all(|e| e["event"] == "message_sent"), "{kind}: {events:?}");
            assert_eq!(app.count("SELECT count(*) FROM message WHERE client_msg_id = 'again'").await, 1);
        }
        // Everyone else is unaffected.
        let mut alice_ws = app.ws(&alice.token).await;
        let id = alice.send_via(&mut alice_ws, bob.id, &format!("after {kind}")).await;
        // (The repeated send reached bob once, before alice's message.)
        while bob_ws.expect("new_message").await["id"] != id {}
    }
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM connection WHERE user_id NOT IN ({}, {})", alice.id, bob.id)).await,
        0,
        "a closed flooder's connection is forgotten"
    );
}

#[tokio::test]
async fn the_default_route_has_a_lower_throttle_than_the_stage() {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(messenger_tests::template_path()).unwrap()).unwrap();
    let stage = &yaml["Resources"]["WsStage"]["Properties"];
    let rate = |settings: &serde_yaml_ng::Value| settings["ThrottlingRateLimit"].as_f64().expect("a rate limit");
    let burst = |settings: &serde_yaml_ng::Value| settings["ThrottlingBurstLimit"].as_u64().expect("a burst limit");
    let (stage_default, unknown) = (&stage["DefaultRouteSettings"], &stage["RouteSettings"]["$default"]);
    assert!(rate(unknown) < rate(stage_default) && burst(unknown) < burst(stage_default));
}

#[tokio::test]
async fn every_authenticated_call_that_changes_something_draws_on_one_budget_per_user() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_REST_WRITE", "4/60")]).await;
    let me = app.user().await;
    let other = app.user().await;
    // Four calls to four endpoints of three functions use up the budget; a body that fails validation and a
    // target nobody has count as well: the budget is counted before anything else.
    me.put("/users/me/bio", Some(&json!({"bio": "hello"}))).await.expect(200);
    me.post(&format!("/chats/{}/mark-read", other.id), None).await.expect(200);
    me.put("/users/me/privacy", Some(&json!({"show_last_seen": "yes"}))).await.expect_error(422, "validation_error");
    me.put("/contacts/987654/local-name", Some(&json!({"local_name": "x"})))
        .await
        .expect_error(404, "contact_not_found");
    let refused = me.put("/users/me/bio", Some(&json!({"bio": "again"}))).await;
    assert!(refused.headers.contains_key("retry-after"), "{}", refused.text);
    refused.expect_error(429, "rate_limited");
    me.delete("/messages/1").await.expect_error(429, "rate_limited");
    // Uploads are authenticated routes too.
    let upload = me.client.upload("/upload", &me.token, "file", "a.png", messenger_tests::PNG).await;
    upload.expect_error(429, "rate_limited");
    // Reads have their own budget; another user is not affected; what needs no token (logging in) is not
    // counted, and a bad token is refused before anything is counted.
    me.get("/me").await.expect(200);
    other.put("/users/me/bio", Some(&json!({"bio": "mine"}))).await.expect(200);
    let login = json!({"phone": me.phone, "password": me.password});
    me.client.call("POST", "/auth/login", None, Some(&login)).await.expect(200);
    for _ in 0..5 {
        let call = other.client.call("PUT", "/users/me/bio", Some("not a token"), Some(&json!({"bio": "x"}))).await;
        call.expect_error(401, "invalid_token");
    }
    other.put("/users/me/bio", Some(&json!({"bio": "still mine"}))).await.expect(200);
}

#[tokio::test]
async fn reads_have_a_budget_of_their_own_counted_without_writing() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_REST_READ", "4/60")]).await;
    let me = app.user().await;
    let other = app.user().await;
    me.get("/me").await.expect(200);
    me.get("/chats/active").await.expect(200);
    me.get("/keys/count").await.expect(200);
    me.get("/users/987654/profile").await.expect_error(404, "user_not_found");
    let refused = me.get("/users/me/themes").await;
    assert!(refused.headers.contains_key("retry-after"), "{}", refused.text);
    refused.expect_error(429, "rate_limited");
    // Writes still pass, and the other user reads.
    me.put("/users/me/bio", Some(&json!({"bio": "hello"}))).await.expect(200);
    other.get("/me").await.expect(200);
}

#[tokio::test]
async fn the_http_api_has_a_stage_throttle_and_floodable_functions_reserved_concurrency() {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(messenger_tests::template_path()).unwrap()).unwrap();
    let api = &yaml["Resources"]["HttpApi"]["Properties"];
    let stage = &api["DefaultRouteSettings"];
    assert!(stage["ThrottlingRateLimit"].as_f64().is_some_and(|r| r > 0.0), "a stage rate limit");
    assert!(stage["ThrottlingBurstLimit"].as_u64().is_some_and(|b| b > 0), "a stage burst limit");
    // Route settings name route keys the first deploy has not created yet, and fail it.
    assert!(api.get("RouteSettings").is_none(), "no RouteSettings on the HttpApi");
    for (function, parameter) in
        [("AuthFunction", "AuthReservedConcurrency"), ("WsMessageFunction", "WsMessageReservedConcurrency")]
    {
        let reserved = &yaml["Resources"][function]["Properties"]["ReservedConcurrentExecutions"];
        let text = serde_yaml_ng::to_string(reserved).unwrap();
        assert!(text.contains(parameter), "{function} reserves {parameter}: {text}");
        let default = yaml["Parameters"][parameter]["Default"].as_u64().expect("a numeric default");
        assert!(default > 0, "{parameter} reserves by default");
    }
}
