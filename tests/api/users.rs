use messenger_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn usernames_follow_the_rules_and_are_unique_case_insensitively() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    for bad in ["abcd", "1alice", "_alice", "ali%20ce", "%D0%B0%D0%BB%D0%B8%D1%81%D0%B0"] {
        alice.put(&format!("/users/me/username?new_username={bad}"), None).await.expect_error(422, "invalid_username");
    }
    let me = alice.put("/users/me/username?new_username=Alice_01", None).await.expect(200);
    assert_eq!(me["username"], "Alice_01");
    assert_eq!(me["phone"], alice.phone.as_str(), "edit responses are the full self view");
    assert_eq!(me["first_name"], "Test");
    alice.put("/users/me/username?new_username=Alice_01", None).await.expect(200);
    bob.put("/users/me/username?new_username=alice_01", None).await.expect_error(400, "username_taken");
    bob.put("/users/me/username", Some(&json!({"new_username": "bob_the_builder"}))).await.expect(200);
    // Renaming keeps the token working.
    alice.put("/users/me/username?new_username=Alice_02", None).await.expect(200);
    alice.get("/me").await.expect(200);
    // The old name is free again.
    bob.put("/users/me/username?new_username=ALICE_01", None).await.expect(200);
}

#[tokio::test]
async fn availability_reports_taken_and_invalid_names() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    alice.put("/users/me/username?new_username=alice_x", None).await.expect(200);
    let r = bob.get("/users/check_availability?username=ALICE_X").await.expect(200);
    assert_eq!(r, json!({"available": false, "reason": "taken"}));
    let r = bob.get("/users/check_availability?username=abc").await.expect(200);
    assert_eq!(r, json!({"available": false, "reason": "invalid"}));
    let r = bob.get("/users/check_availability?username=free_name").await.expect(200);
    assert_eq!(r, json!({"available": true, "reason": null}));
    app.client().get("/users/check_availability?username=free_name", None).await.expect_error(401, "not_authenticated");
}

#[tokio::test]
async fn profile_fields_are_validated_and_blank_clears() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let me = u.put("/users/me/profile?bio=%20Hello%20&birthdate=1990-12-10", None).await.expect(200);
    assert_eq!((me["bio"].as_str(), me["birthdate"].as_str()), (Some("Hello"), Some("1990-12-10")));
    let me = u.put("/users/me/profile?bio=Only%20bio", None).await.expect(200);
    assert_eq!(me["birthdate"], "1990-12-10", "fields not given stay");
    for q in ["birthdate=1990-02-30", "birthdate=1899-12-31", "birthdate=2999-01-01", "birthdate=10.12.1990"] {
        u.put(&format!("/users/me/profile?{q}"), None).await.expect_error(422, "validation_error");
    }
    u.put(&format!("/users/me/profile?bio={}", "b".repeat(501)), None).await.expect_error(422, "validation_error");
    let me = u.put("/users/me/bio", Some(&json!({"bio": "x".repeat(500)}))).await.expect(200);
    assert_eq!(me["bio"].as_str().unwrap().len(), 500);
    let me = u.put("/users/me/bio", Some(&json!({"bio": "   "}))).await.expect(200);
    assert!(me["bio"].is_null());
    let me = u.put("/users/me/birthdate", Some(&json!({"birthdate": "2000-02-29"}))).await.expect(200);
    assert_eq!(me["birthdate"], "2000-02-29");
    let me = u.put("/users/me/birthdate", Some(&json!({}))).await.expect(200);
    assert!(me["birthdate"].is_null());
    u.put("/users/me/birthdate", Some(&json!({"birthdate": "2001-02-29"}))).await.expect_error(422, "validation_error");
    u.client
        .raw("PUT", "/users/me/bio", Some(&u.token), "application/json", b"not json".to_vec())
        .await
        .expect_error(422, "validation_error");
}

#[tokio::test]
async fn the_user_list_is_paged_and_excludes_the_caller_and_deleted_accounts() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push(app.user().await.id);
    }
    app.db().await.execute("UPDATE user SET is_deleted = 1, phone = NULL WHERE id = ?1", [others[4]]).await.unwrap();
    let all = me.get("/users").await.expect(200);
    let ids: Vec<i64> = all.as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, others[..4].to_vec());
    let page = me.get(&format!("/users?limit=2&after_id={}", others[0])).await.expect(200);
    let ids: Vec<i64> = page.as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, others[1..3].to_vec());
    me.get("/users?limit=0").await.expect_error(422, "validation_error");
    me.get("/users?limit=abc").await.expect_error(422, "validation_error");
    assert_eq!(me.get("/users?limit=100000").await.expect(200).as_array().unwrap().len(), 4, "large limits are capped");
}

#[tokio::test]
async fn search_matches_names_and_usernames_literally() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    let ada = app.user_named("Ада", "Lovelace").await;
    let grace = app.user_named("Grace", "Hopper").await;
    grace.put("/users/me/username?new_username=amazing_grace", None).await.expect(200);
    let ids = |v: serde_json::Value| -> Vec<i64> {
        v.as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect()
    };
    assert_eq!(ids(me.get("/users/search?query=LOVE").await.expect(200)), vec![ada.id]);
    assert_eq!(
        ids(me.get("/users/search?query=%D0%B0%D0%B4%D0%B0").await.expect(200)),
        vec![ada.id],
        "unicode case folding"
    );
    assert_eq!(ids(me.get("/users/search?query=grace%20hop").await.expect(200)), vec![grace.id], "first last");
    assert_eq!(ids(me.get("/users/search?query=AMAZING").await.expect(200)), vec![grace.id]);
    assert!(ids(me.get("/users/search?query=%25").await.expect(200)).is_empty(), "under 2 chars");
    assert!(ids(me.get("/users/search?query=%25%25").await.expect(200)).is_empty(), "% is literal");
    assert!(ids(me.get("/users/search?query=__").await.expect(200)).is_empty(), "_ is literal");
    assert!(ids(me.get("/users/search?query=Test").await.expect(200)).is_empty(), "the caller is excluded");
    me.get(&format!("/users/search?query={}", "a".repeat(65))).await.expect_error(422, "validation_error");
}

#[tokio::test]
async fn search_and_availability_are_rate_limited_per_user() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_SEARCH", "3/60")]).await;
    let me = app.user().await;
    me.get("/users/search?query=ab").await.expect(200);
    me.get("/users/check_availability?username=abcde").await.expect(200);
    me.get("/users/search?query=ab").await.expect(200);
    me.get("/users/search?query=ab").await.expect_error(429, "rate_limited");
    me.get("/users/check_availability?username=abcde").await.expect_error(429, "rate_limited");
}

#[tokio::test]
async fn profiles_of_unknown_and_deleted_users() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    let gone = app.user().await;
    let stranger_gone = app.user().await;
    me.get("/users/999999/profile").await.expect_error(404, "user_not_found");
    me.get("/users/abc/profile").await.expect_error(422, "validation_error");
    let conn = app.db().await;
    conn.execute(
        "INSERT INTO message (sender_id, receiver_id, encrypted_content, created_at) VALUES (?1, ?2, 'x', 0)",
        [gone.id, me.id],
    )
    .await
    .unwrap();
    conn.execute(
        "UPDATE user SET is_deleted = 1, first_name = NULL, phone = NULL WHERE id IN (?1, ?2)",
        [gone.id, stranger_gone.id],
    )
    .await
    .unwrap();
    let stub = me.get(&format!("/users/{}/profile", gone.id)).await.expect(200);
    assert_eq!(stub["is_deleted"], true);
    assert!(stub["first_name"].is_null() && stub["avatar_url"].is_null());
    me.get(&format!("/users/{}/profile", stranger_gone.id)).await.expect_error(404, "user_not_found");
}

#[tokio::test]
async fn frames_and_preset_avatars() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    assert_eq!(u.put("/users/me/avatar-frame?frame=fire", None).await.expect(200), json!({"avatar_frame": "fire"}));
    assert_eq!(u.get("/me").await.expect(200)["avatar_frame"], "fire");
    assert_eq!(u.put("/users/me/avatar-frame?frame=none", None).await.expect(200), json!({"avatar_frame": null}));
    u.put("/users/me/avatar-frame?frame=gold", None).await.expect_error(400, "invalid_frame");
    let set = u.put("/users/me/preset-avatar?avatar_id=3", None).await.expect(200);
    let list = app.client().get("/avatars/list", None).await.expect(200);
    let listed = list["avatars"].as_array().unwrap().iter().find(|a| a["id"] == "3").unwrap();
    assert_eq!(set["avatar_url"], listed["url"], "the client compares these");
    assert_eq!(u.get("/me").await.expect(200)["avatar_url"], listed["url"]);
    for bad in ["0", "13", "x"] {
        u.put(&format!("/users/me/preset-avatar?avatar_id={bad}"), None).await.expect_error(400, "invalid_avatar_id");
    }
}
