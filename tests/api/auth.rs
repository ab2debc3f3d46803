use base64::Engine as _;
use messenger_tests::{TestApp, unique_phone};
use serde_json::json;

#[tokio::test]
async fn register_returns_201_and_a_token_that_opens_me() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let phone = unique_phone();
    let body = client
        .call(
            "POST",
            "/auth/register",
            None,
            Some(&json!({"first_name": " Ada ", "last_name": "Lovelace", "phone": format!("+{}", phone),
                "password": "correct horse battery", "device_name": "Pixel"})),
        )
        .await
        .expect(201);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1440 * 60);
    assert!(body["device_id"].as_str().unwrap().chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    let me = client.get("/me", body["access_token"].as_str()).await.expect(200);
    assert_eq!(me["id"], body["user_id"]);
    assert_eq!(me["first_name"], "Ada", "names are trimmed");
    assert_eq!(me["phone"], phone, "phone is stored as digits");
    assert_eq!(me["is_deleted"], false);
}

#[tokio::test]
async fn a_phone_is_taken_after_normalisation() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let formatted = format!("+{} ({}) {}-{}", &user.phone[..1], &user.phone[1..4], &user.phone[4..7], &user.phone[7..]);
    app.client()
        .call(
            "POST",
            "/auth/register",
            None,
            Some(&json!({"first_name": "B", "last_name": "C", "phone": formatted, "password": "another password"})),
        )
        .await
        .expect_error(400, "phone_taken");
}

#[tokio::test]
async fn registration_validates_every_field() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let cases = [
        (json!({"first_name": "A", "last_name": "B", "phone": unique_phone(), "password": "short"}), "password"),
        (json!({"first_name": "A", "last_name": "B", "phone": unique_phone(), "password": "x".repeat(73)}), "password"),
        (json!({"first_name": "", "last_name": "B", "phone": unique_phone(), "password": "long enough"}), "first_name"),
        (
            json!({"first_name": "A\u{7}", "last_name": "B", "phone": unique_phone(), "password": "long enough"}),
            "first_name",
        ),
        (
            json!({"first_name": "A", "last_name": "B".repeat(65), "phone": unique_phone(), "password": "long enough"}),
            "last_name",
        ),
        (json!({"first_name": "A", "last_name": "B", "phone": "12-34", "password": "long enough"}), "phone"),
        (json!({"first_name": "A", "last_name": "B", "password": "long enough"}), "phone"),
        (
            json!({"first_name": "A", "last_name": "B", "phone": unique_phone(), "password": "long enough", "public_key": "k".repeat(4097)}),
            "public_key",
        ),
    ];
    for (body, field) in cases {
        let err = client.call("POST", "/auth/register", None, Some(&body)).await.expect_error(422, "validation_error");
        assert!(err["errors"].as_array().unwrap().iter().any(|e| e["field"] == field), "{field}: {err}");
    }
    // 72 bytes of multi-byte characters are fine, 73 bytes are not.
    let ok = json!({"first_name": "A", "last_name": "B", "phone": unique_phone(), "password": "é".repeat(36)});
    client.call("POST", "/auth/register", None, Some(&ok)).await.expect(201);
}

#[tokio::test]
async fn login_by_phone_or_username_and_the_same_401_for_every_failure() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    user.put("/users/me/username?new_username=Ada_Lovelace", None).await.expect(200);
    let c = app.client();
    let by_phone = c
        .call(
            "POST",
            "/auth/login",
            None,
            Some(&json!({"phone": format!("+{}", user.phone), "password": user.password})),
        )
        .await
        .expect(200);
    assert_eq!(by_phone["user_id"], user.id);
    assert_ne!(by_phone["device_id"], user.device_id.as_str(), "a new device per login without device_id");
    let by_name = c
        .call("POST", "/auth/login", None, Some(&json!({"username": "ada_LOVELACE", "password": user.password})))
        .await
        .expect(200);
    assert_eq!(by_name["user_id"], user.id);
    let reuse = c
        .call(
            "POST",
            "/auth/login",
            None,
            Some(&json!({"phone": user.phone, "password": user.password, "device_id": user.device_id})),
        )
        .await
        .expect(200);
    assert_eq!(reuse["device_id"], user.device_id.as_str(), "an existing device is reused");

    for body in [
        json!({"phone": user.phone, "password": "wrong password"}),
        json!({"phone": "15559999999", "password": user.password}),
        json!({"username": "nobody_here", "password": user.password}),
        // A username never matches a phone and vice versa.
        json!({"username": user.phone, "password": user.password}),
    ] {
        let resp = c.call("POST", "/auth/login", None, Some(&body)).await;
        assert_eq!(resp.headers["www-authenticate"], "Bearer");
        let err = resp.expect_error(401, "invalid_credentials");
        assert_eq!(err["detail"], "Логин или пароль неверен");
    }
    for body in [
        json!({"phone": user.phone, "username": "Ada_Lovelace", "password": user.password}),
        json!({"password": user.password}),
        json!({"phone": user.phone, "password": "x".repeat(73)}),
    ] {
        c.call("POST", "/auth/login", None, Some(&body)).await.expect_error(422, "validation_error");
    }
}

async fn login(c: &messenger_tests::Client, by: (&str, &str), password: &str) -> messenger_tests::Resp {
    c.call("POST", "/auth/login", None, Some(&json!({by.0: by.1, "password": password}))).await
}

#[tokio::test]
async fn failures_from_one_address_lock_only_that_address_out_of_the_identifier() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    app.client().call("PUT", "/users/me/username?new_username=lock_target", Some(&user.token), None).await.expect(200);
    let attacker = app.client();
    // Counted by the identifier as typed (case does not matter for usernames).
    for i in 0..5 {
        let name = if i % 2 == 0 { "LOCK_target" } else { "lock_target" };
        login(&attacker, ("username", name), "wrong password").await.expect_error(401, "invalid_credentials");
    }
    let resp = login(&attacker, ("username", "lock_target"), &user.password).await;
    let retry: u64 = resp.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900);
    resp.expect_error(429, "rate_limited");
    // The owner, from another address, is not locked out.
    login(&app.client(), ("username", "lock_target"), &user.password).await.expect(200);
}

#[tokio::test]
async fn the_login_limits_do_not_tell_which_phone_a_username_has() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_LOGIN_ACCOUNT", "8/900")]).await;
    let user = app.user().await;
    app.client()
        .call("PUT", "/users/me/username?new_username=oracle_target", Some(&user.token), None)
        .await
        .expect(200);
    let other = messenger_tests::unique_phone();
    let prober = app.client();
    for _ in 0..5 {
        login(&prober, ("username", "oracle_target"), "wrong password").await.expect_error(401, "invalid_credentials");
    }
    login(&prober, ("username", "oracle_target"), "wrong password").await.expect_error(429, "rate_limited");
    // The username is locked for this address; a candidate phone answers the same whether it is the
    // username's or not.
    let probe = |phone: String| {
        let prober = prober.clone();
        async move { login(&prober, ("phone", &phone), "wrong password").await.expect_error(401, "invalid_credentials") }
    };
    assert_eq!(probe(user.phone.clone()).await, probe(other.clone()).await);
    // Past the all-address cap of the account (8 failures, from other addresses too), still the same answer.
    for _ in 0..2 {
        login(&app.client(), ("username", "oracle_target"), "wrong password")
            .await
            .expect_error(401, "invalid_credentials");
    }
    let fresh = app.client();
    let matching = login(&fresh, ("phone", &user.phone), "wrong password").await;
    let unrelated = login(&fresh, ("phone", &other), "wrong password").await;
    assert_eq!((matching.status, &matching.body), (unrelated.status, &unrelated.body));
    matching.expect_error(401, "invalid_credentials");
}

#[tokio::test]
async fn failures_from_many_addresses_reach_the_per_account_cap() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_LOGIN_ACCOUNT", "3/900")]).await;
    let user = app.user().await;
    for _ in 0..3 {
        login(&app.client(), ("phone", &user.phone), "wrong password").await.expect_error(401, "invalid_credentials");
    }
    // Past the cap even the right password is refused, with the answer of a wrong one.
    login(&app.client(), ("phone", &user.phone), &user.password).await.expect_error(401, "invalid_credentials");
}

#[tokio::test]
async fn a_success_clears_the_failures_of_its_address() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let c = app.client();
    for _ in 0..4 {
        login(&c, ("phone", &user.phone), "wrong password").await.expect_error(401, "invalid_credentials");
    }
    login(&c, ("phone", &user.phone), &user.password).await.expect(200);
    for _ in 0..4 {
        login(&c, ("phone", &user.phone), "wrong password").await.expect_error(401, "invalid_credentials");
    }
    login(&c, ("phone", &user.phone), &user.password).await.expect(200);
}

#[tokio::test]
async fn password_changes_are_rate_limited_per_user() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PASSWORD_CHANGE", "2/900")]).await;
    let user = app.user().await;
    let body = json!({"current_password": "not it at all", "new_password": "another long one"});
    for _ in 0..2 {
        user.client
            .call("PUT", "/users/me/password", Some(&user.token), Some(&body))
            .await
            .expect_error(403, "wrong_password");
    }
    let right = json!({"current_password": user.password, "new_password": "another long one"});
    user.client
        .call("PUT", "/users/me/password", Some(&user.token), Some(&right))
        .await
        .expect_error(429, "rate_limited");
}

#[tokio::test]
async fn names_with_bidirectional_or_invisible_characters_are_refused() {
    let app = TestApp::spawn().await;
    let c = app.client();
    for (field, value) in
        [("first_name", "evil\u{202E}gpj.exe"), ("last_name", "a\u{200B}b"), ("device_name", "\u{2066}x")]
    {
        let mut body = json!({"first_name": "A", "last_name": "B", "phone": unique_phone(), "password": "long enough"});
        body[field] = json!(value);
        let err = c.call("POST", "/auth/register", None, Some(&body)).await.expect_error(422, "validation_error");
        assert_eq!(err["errors"][0]["field"], field, "{err}");
    }
    let user = app.user().await;
    let peer = app.user().await;
    user.client
        .call(
            "PUT",
            &format!("/contacts/{}/local-name", peer.id),
            Some(&user.token),
            Some(&json!({"local_name": "x\u{202E}y"})),
        )
        .await
        .expect_error(422, "validation_error");
    let body = json!({"first_name": "Emoji", "last_name": "👨\u{200D}👩\u{200D}👧", "phone": unique_phone(), "password": "long enough"});
    app.client().call("POST", "/auth/register", None, Some(&body)).await.expect(201);
}

#[tokio::test]
async fn logins_are_rate_limited_per_source_address() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_LOGIN_IP", "3/900")]).await;
    let user = app.user().await;
    let c = app.client();
    for _ in 0..3 {
        c.call("POST", "/auth/login", None, Some(&json!({"phone": user.phone, "password": user.password})))
            .await
            .expect(200);
    }
    c.call("POST", "/auth/login", None, Some(&json!({"phone": user.phone, "password": user.password})))
        .await
        .expect_error(429, "rate_limited");
    app.client()
        .call("POST", "/auth/login", None, Some(&json!({"phone": user.phone, "password": user.password})))
        .await
        .expect(200);
}

#[tokio::test]
async fn registration_is_limited_to_five_per_hour_per_address() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let body = || json!({"first_name": "A", "last_name": "B", "phone": unique_phone(), "password": "long enough"});
    for _ in 0..5 {
        c.call("POST", "/auth/register", None, Some(&body())).await.expect(201);
    }
    c.call("POST", "/auth/register", None, Some(&body())).await.expect_error(429, "rate_limited");
}

#[tokio::test]
async fn changing_the_password_revokes_every_other_token() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let other_device = app
        .client()
        .call("POST", "/auth/login", None, Some(&json!({"phone": user.phone, "password": user.password})))
        .await
        .expect(200);
    user.put("/users/me/password", Some(&json!({"current_password": "not it", "new_password": "brand new secret"})))
        .await
        .expect_error(403, "wrong_password");
    user.put("/users/me/password", Some(&json!({"current_password": user.password, "new_password": "short"})))
        .await
        .expect_error(422, "validation_error");
    user.put("/users/me/password", Some(&json!({"current_password": user.password, "new_password": user.password})))
        .await
        .expect_error(422, "validation_error");
    let fresh = user
        .put(
            "/users/me/password",
            Some(&json!({"current_password": user.password, "new_password": "brand new secret"})),
        )
        .await
        .expect(200);
    assert_eq!(fresh["device_id"], user.device_id.as_str());
    user.get("/me").await.expect_error(401, "invalid_token");
    user.client.get("/me", other_device["access_token"].as_str()).await.expect_error(401, "invalid_token");
    user.client.get("/me", fresh["access_token"].as_str()).await.expect(200);
    let c = app.client();
    c.call("POST", "/auth/login", None, Some(&json!({"phone": user.phone, "password": user.password})))
        .await
        .expect_error(401, "invalid_credentials");
    c.call("POST", "/auth/login", None, Some(&json!({"phone": user.phone, "password": "brand new secret"})))
        .await
        .expect(200);
}

#[tokio::test]
async fn forged_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = user.token.split('.');
    let (_, payload) = (parts.next().unwrap(), parts.next().unwrap());
    let none = format!("{}.{payload}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#));
    user.client.get("/me", Some(&none)).await.expect_error(401, "invalid_token");

    let other_secret = shared::auth::JwtKeys::new(
        &shared::config::Config::from_lookup(|k| match k {
            "JWT_SECRET" => Some("a-completely-different-secret-of-32-bytes".into()),
            "DATABASE_URL" => Some("file:x".into()),
            "S3_BUCKET" => Some("b".into()),
            _ => None,
        })
        .unwrap(),
    )
    .issue(user.id, 0, &user.device_id)
    .unwrap();
    user.client.get("/me", Some(&other_secret)).await.expect_error(401, "invalid_token");

    let resp = user.client.get("/me", None).await;
    assert_eq!(resp.headers["www-authenticate"], "Bearer");
    resp.expect_error(401, "not_authenticated");
    user.client.get("/me", Some("garbage")).await.expect_error(401, "invalid_token");
}

#[tokio::test]
async fn a_token_for_a_removed_device_or_deleted_user_dies() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let conn = app.db().await;
    conn.execute("DELETE FROM device WHERE id = ?1", [user.device_id.as_str()]).await.unwrap();
    user.get("/me").await.expect_error(401, "invalid_token");
    let other = app.user().await;
    conn.execute("UPDATE user SET is_deleted = 1 WHERE id = ?1", [other.id]).await.unwrap();
    other.get("/me").await.expect_error(401, "invalid_token");
}

#[tokio::test]
async fn a_banned_account_cannot_log_in_or_use_its_tokens() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    app.db().await.execute("UPDATE user SET is_banned = 1 WHERE id = ?1", [user.id]).await.unwrap();
    user.get("/me").await.expect_error(401, "invalid_token");
    let c = app.client();
    c.call("POST", "/auth/login", None, Some(&json!({"phone": user.phone, "password": "wrong password"})))
        .await
        .expect_error(401, "invalid_credentials");
    let e = c
        .call("POST", "/auth/login", None, Some(&json!({"phone": user.phone, "password": user.password})))
        .await
        .expect_error(403, "account_banned");
    assert_eq!(e["detail"], "Account is banned");
    let err = tokio_tungstenite::connect_async(format!("{}?token={}", app.ws_url(), user.token)).await.unwrap_err();
    assert!(matches!(err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 401));
}

#[tokio::test]
async fn parallel_guesses_cannot_slip_past_the_account_limit() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_LOGIN_IP", "1000/900"), ("RATE_LIMIT_LOGIN_ACCOUNT", "5/900")]).await;
    let user = app.user().await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (c, phone) = (app.client(), user.phone.clone());
        tasks.push(tokio::spawn(async move {
            c.call("POST", "/auth/login", None, Some(&json!({"phone": phone, "password": "wrong password"})))
                .await
                .status
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    // Every guess counted: the account is capped, so the right password is refused too.
    let right = json!({"phone": user.phone, "password": user.password});
    app.client().call("POST", "/auth/login", None, Some(&right)).await.expect_error(401, "invalid_credentials");
}

#[tokio::test]
async fn concurrent_registrations_of_one_phone_get_one_201_and_400s() {
    let app = TestApp::spawn().await;
    let phone = unique_phone();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, phone) = (app.client(), phone.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"first_name": "A", "last_name": "B", "phone": phone, "password": "long enough"});
            let r = c.call("POST", "/auth/register", None, Some(&body)).await;
            (r.status.as_u16(), r.body["code"].clone())
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            (201, _) => created += 1,
            (400, code) => assert_eq!(code, "phone_taken"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
}
