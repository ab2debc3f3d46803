use messenger_tests::{PNG, TestApp, TestUser};
use serde_json::{Value, json};

async fn profile(viewer: &TestUser, owner: &TestUser) -> Value {
    viewer.get(&format!("/users/{}/profile", owner.id)).await.expect(200)
}

async fn listed(viewer: &TestUser, owner: &TestUser) -> Value {
    let list = viewer.get("/users").await.expect(200);
    list.as_array().unwrap().iter().find(|u| u["id"] == owner.id).cloned().unwrap()
}

#[tokio::test]
async fn privacy_settings_round_trip_in_both_shapes() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let p = u.get("/users/me/privacy").await.expect(200);
    assert_eq!(
        p,
        json!({"avatar_visibility": "all", "avatar_visibility_exceptions": null, "show_read_receipts": true,
            "show_last_seen": true, "show_online_status": true, "phone_visibility": "nobody",
            "avatar_visibility_exception_ids": []})
    );
    let p = u
        .put(
            "/users/me/privacy?avatar_visibility=except&avatar_visibility_exceptions=%5B3%2C17%5D&show_last_seen=false",
            None,
        )
        .await
        .expect(200);
    assert_eq!(p["avatar_visibility_exceptions"], "[3,17]", "the original client decodes a JSON string");
    assert_eq!(p["avatar_visibility_exception_ids"], json!([3, 17]));
    assert_eq!(p["show_last_seen"], false);
    assert_eq!(p["show_online_status"], true, "fields not given stay");
    let p = u
        .put("/users/me/privacy", Some(&json!({"avatar_visibility_exceptions": [5], "phone_visibility": "all"})))
        .await
        .expect(200);
    assert_eq!(p["avatar_visibility_exception_ids"], json!([5]));
    assert_eq!(p["phone_visibility"], "all");
    let p = u.put("/users/me/privacy", Some(&json!({"avatar_visibility_exceptions": []}))).await.expect(200);
    assert!(p["avatar_visibility_exceptions"].is_null(), "an empty list clears");

    u.put("/users/me/privacy?avatar_visibility=friends", None).await.expect_error(400, "invalid_privacy_value");
    let e = u.put("/users/me/privacy?phone_visibility=except", None).await.expect_error(400, "invalid_privacy_value");
    assert_eq!(e["detail"], "Invalid phone_visibility value");
    for bad in ["%7B%7D", "%5B%221%22%5D", "nonsense", "%5B1.5%5D"] {
        u.put(&format!("/users/me/privacy?avatar_visibility_exceptions={bad}"), None)
            .await
            .expect_error(400, "invalid_exceptions");
    }
    let too_many: Vec<i64> = (1..=1001).collect();
    u.put("/users/me/privacy", Some(&json!({"avatar_visibility_exceptions": too_many})))
        .await
        .expect_error(400, "invalid_exceptions");
    u.put("/users/me/privacy?show_last_seen=maybe", None).await.expect_error(422, "validation_error");
}

#[tokio::test]
async fn phone_is_hidden_from_others_by_default_everywhere() {
    let app = TestApp::spawn().await;
    let owner = app.user_named("Phone", "Owner").await;
    let viewer = app.user().await;
    assert!(profile(&viewer, &owner).await["phone"].is_null());
    assert!(listed(&viewer, &owner).await["phone"].is_null());
    let found = viewer.get("/users/search?query=phone%20owner").await.expect(200);
    assert!(found[0]["phone"].is_null());
    assert_eq!(owner.get("/me").await.expect(200)["phone"], owner.phone.as_str(), "the self view is unfiltered");

    owner.put("/users/me/privacy?phone_visibility=contacts", None).await.expect(200);
    assert!(profile(&viewer, &owner).await["phone"].is_null());
    // The viewer messaging the owner does not make the viewer a contact; the owner messaging the viewer does.
    let conn = app.db().await;
    let msg = "INSERT INTO message (sender_id, receiver_id, encrypted_content, created_at) VALUES (?1, ?2, 'x', 0)";
    conn.execute(msg, [viewer.id, owner.id]).await.unwrap();
    assert!(profile(&viewer, &owner).await["phone"].is_null());
    conn.execute(msg, [owner.id, viewer.id]).await.unwrap();
    assert_eq!(profile(&viewer, &owner).await["phone"], owner.phone.as_str());
    conn.execute("UPDATE message SET deleted_for_everyone = 1 WHERE sender_id = ?1", [owner.id]).await.unwrap();
    assert!(profile(&viewer, &owner).await["phone"].is_null(), "deleted messages do not count");
    conn.execute(
        "INSERT INTO contact (owner_id, contact_id, local_name) VALUES (?1, ?2, 'Friend')",
        [owner.id, viewer.id],
    )
    .await
    .unwrap();
    assert_eq!(listed(&viewer, &owner).await["phone"], owner.phone.as_str(), "a local name makes a contact");

    owner.put("/users/me/privacy?phone_visibility=all", None).await.expect(200);
    let third = app.user().await;
    assert_eq!(listed(&third, &owner).await["phone"], owner.phone.as_str());
}

#[tokio::test]
async fn avatar_visibility_modes_apply_on_every_surface() {
    let app = TestApp::spawn().await;
    let owner = app.user_named("Avatar", "Owner").await;
    let excluded = app.user().await;
    let other = app.user().await;
    owner.client.upload("/users/me/avatar", &owner.token, "file", "a.png", PNG).await.expect(200);
    assert!(profile(&other, &owner).await["avatar_url"].is_string());

    owner
        .put(
            &format!("/users/me/privacy?avatar_visibility=except&avatar_visibility_exceptions=%5B{}%5D", excluded.id),
            None,
        )
        .await
        .expect(200);
    assert!(profile(&excluded, &owner).await["avatar_url"].is_null());
    assert!(listed(&excluded, &owner).await["avatar_url"].is_null());
    let found = excluded.get("/users/search?query=avatar").await.expect(200);
    assert!(found[0]["avatar_url"].is_null());
    assert!(profile(&other, &owner).await["avatar_url"].is_string());

    owner.put("/users/me/privacy?avatar_visibility=nobody", None).await.expect(200);
    assert!(profile(&other, &owner).await["avatar_url"].is_null());
    assert!(owner.get("/me").await.expect(200)["avatar_url"].is_string());

    owner.put("/users/me/privacy?avatar_visibility=contacts", None).await.expect(200);
    assert!(profile(&other, &owner).await["avatar_url"].is_null());
    app.db()
        .await
        .execute(
            "INSERT INTO message (sender_id, receiver_id, encrypted_content, created_at) VALUES (?1, ?2, 'x', 0)",
            [owner.id, other.id],
        )
        .await
        .unwrap();
    assert!(profile(&other, &owner).await["avatar_url"].is_string());
    assert!(profile(&excluded, &owner).await["avatar_url"].is_null());
}

#[tokio::test]
async fn last_seen_and_online_state_follow_their_settings() {
    let app = TestApp::spawn().await;
    let owner = app.user().await;
    let viewer = app.user().await;
    let conn = app.db().await;
    conn.execute("UPDATE user SET last_seen = 1740820542123 WHERE id = ?1", [owner.id]).await.unwrap();
    let p = profile(&viewer, &owner).await;
    assert_eq!(p["last_seen"], "2025-03-01T09:15:42.123Z");
    assert_eq!(p["is_online"], false);
    conn.execute(
        "INSERT INTO connection (id, user_id, device_id, token_version, token_exp, connected_at) VALUES ('c1', ?1, ?2, 0, 0, 0)",
        (owner.id, owner.device_id.as_str()),
    )
    .await
    .unwrap();
    assert_eq!(profile(&viewer, &owner).await["is_online"], true);
    owner.put("/users/me/privacy?show_last_seen=false&show_online_status=false", None).await.expect(200);
    let p = profile(&viewer, &owner).await;
    assert!(p["last_seen"].is_null() && p["is_online"].is_null());
    let l = listed(&viewer, &owner).await;
    assert!(l["last_seen"].is_null() && l["is_online"].is_null());
}

#[tokio::test]
async fn local_names_show_only_to_their_owner() {
    let app = TestApp::spawn().await;
    let a = app.user().await;
    let b = app.user().await;
    let c = app.user().await;
    app.db()
        .await
        .execute("INSERT INTO contact (owner_id, contact_id, local_name) VALUES (?1, ?2, 'Bobby')", [a.id, b.id])
        .await
        .unwrap();
    assert_eq!(profile(&a, &b).await["local_name"], "Bobby");
    assert!(profile(&c, &b).await["local_name"].is_null());
}
