use messenger_tests::{PNG, TestApp, TestUser};
use serde_json::json;

/// Every row in every table that mentions `id` in a user-referencing column.
async fn rows_mentioning(app: &TestApp, id: i64) -> Vec<String> {
    let conn = app.db().await;
    let mut tables = Vec::new();
    let mut rows = conn
        .query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'", ())
        .await
        .unwrap();
    while let Some(r) = rows.next().await.unwrap() {
        tables.push(r.get::<String>(0).unwrap());
    }
    let mut found = Vec::new();
    for table in tables {
        let mut cols = conn.query(&format!("SELECT name FROM pragma_table_info('{table}')"), ()).await.unwrap();
        while let Some(c) = cols.next().await.unwrap() {
            let col: String = c.get(0).unwrap();
            if ["user_id", "owner_id", "contact_id", "sender_id", "receiver_id", "peer_id"].contains(&col.as_str()) {
                let mut n = conn.query(&format!("SELECT COUNT(*) FROM {table} WHERE {col} = ?1"), [id]).await.unwrap();
                let count: i64 = n.next().await.unwrap().unwrap().get(0).unwrap();
                if count > 0 {
                    found.push(format!("{table}.{col}: {count}"));
                }
            }
        }
    }
    found
}

async fn setup_rich_account(app: &TestApp, user: &TestUser, peer: &TestUser) -> (i64, i64) {
    user.put("/users/me/username?new_username=doomed_user", None).await.expect(200);
    user.client.upload("/users/me/avatar", &user.token, "file", "a.png", PNG).await.expect(200);
    let up = user.client.upload("/upload", &user.token, "file", "b.png", PNG).await.expect(200);
    let wall = user.client.upload("/upload", &user.token, "file", "c.png", PNG).await.expect(200);
    let presigned = user.post("/uploads/presign", Some(&json!({"size": 3}))).await.expect(200);
    reqwest::Client::new()
        .put(presigned["upload_url"].as_str().unwrap())
        .header("content-type", "application/octet-stream")
        .header("if-none-match", "*")
        .body(vec![1, 2, 3])
        .send()
        .await
        .unwrap();
    user.post(
        "/users/me/themes",
        Some(&json!({"name": "T", "primary_color": "1", "background_color": "1", "bubble_color_me": "1",
            "bubble_color_other": "1", "text_color": "1", "secondary_text_color": "1", "brightness": "dark", "wallpaper_url": wall["key"]})),
    )
    .await
    .expect(201);
    user.put(&format!("/contacts/{}/local-name?local_name=Peer", peer.id), None).await.expect(200);
    peer.put(&format!("/contacts/{}/local-name?local_name=Doomed", user.id), None).await.expect(200);
    let mut ws = app.ws(&user.token).await;
    ws.send(&json!({"action": "send_message", "receiver_id": peer.id, "encrypted_content": "with image", "message_type": "image", "media_url": up["key"]})).await;
    let shared_msg = ws.expect("message_sent").await["message_id"].as_i64().unwrap();
    let hidden_by_peer = user.send_via(&mut ws, peer.id, "the peer deleted this for itself").await;
    peer.delete(&format!("/messages/{hidden_by_peer}")).await.expect(200);
    let mut pw = app.ws(&peer.token).await;
    let received = peer.send_via(&mut pw, user.id, "peer to user").await;
    (shared_msg, received)
}

#[tokio::test]
async fn deleting_an_account_needs_its_password() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PASSWORD_CHANGE", "4/900")]).await;
    let user = app.user().await;
    let user = &user;
    let delete = |body: serde_json::Value| async move {
        user.client.call("DELETE", "/users/me", Some(&user.token), Some(&body)).await
    };
    user.delete("/users/me").await.expect_error(403, "invalid_password");
    for body in [json!({}), json!({"password": ""}), json!({"password": "not the password"})] {
        delete(body).await.expect_error(403, "invalid_password");
    }
    delete(json!({"password": 5})).await.expect_error(422, "validation_error");
    // Every check counted: past the budget even the right password waits, so a stolen token cannot guess on.
    delete(json!({"password": user.password})).await.expect_error(429, "rate_limited");
    assert_eq!(user.get("/me").await.expect(200)["phone"], user.phone.as_str(), "nothing was deleted");
}

#[tokio::test]
async fn deleting_an_account_leaves_nothing_behind_but_the_peers_copies() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let peer = app.user().await;
    let (shared_msg, received) = setup_rich_account(&app, &user, &peer).await;
    assert_eq!(app.bucket_keys().await.len(), 4);
    let mut open = app.ws(&user.token).await;

    let resp = user.delete_account().await;
    assert_eq!(resp.status.as_u16(), 204);
    assert!(resp.text.is_empty());

    assert!(open.closed().await.is_some(), "open connections are closed");
    assert!(app.bucket_keys().await.is_empty(), "every object of the user is gone");
    user.get("/me").await.expect_error(401, "invalid_token");
    // Only the stub row, the messages the peer still sees and the peer's summary of that chat remain.
    let mut left = rows_mentioning(&app, user.id).await;
    left.sort();
    assert_eq!(
        left,
        vec![
            "chat_summary.peer_id: 1".to_owned(),
            "message.receiver_id: 1".to_owned(),
            "message.sender_id: 1".to_owned(),
            // The objects' rows stay, marked deleted, until any presigned PUT for them has expired.
            "object.owner_id: 4".to_owned()
        ]
    );
    let marked = format!("SELECT COUNT(*) FROM object WHERE owner_id = {} AND kind = 'deleted'", user.id);
    assert_eq!(app.count(&marked).await, 4);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM user WHERE id = {} AND phone IS NULL AND password_hash IS NULL AND first_name IS NULL AND is_deleted = 1", user.id)).await, 1);

    let history = peer.get(&format!("/chats/{}/messages", user.id)).await.expect(200);
    let ids: Vec<i64> = history.as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![shared_msg, received]);
    assert!(history[0]["media_url"].is_null(), "the deleted user's attachment is gone");
    let stub = peer.get(&format!("/users/{}/profile", user.id)).await.expect(200);
    assert_eq!(stub["is_deleted"], true);
    assert!(stub["first_name"].is_null() && stub["username"].is_null() && stub["local_name"].is_null());
    let active = peer.get("/chats/active").await.expect(200);
    assert_eq!(active[0]["is_deleted"], true);

    // Phone and username are free again; the id is never reused.
    let again = app
        .client()
        .call(
            "POST",
            "/auth/register",
            None,
            Some(&json!({"first_name": "New", "last_name": "One", "phone": user.phone, "password": "long enough"})),
        )
        .await
        .expect(201);
    assert!(again["user_id"].as_i64().unwrap() > peer.id);
    let newcomer = app.client();
    newcomer.get("/me", again["access_token"].as_str()).await.expect(200);
    let t = again["access_token"].as_str().unwrap();
    newcomer.call("PUT", "/users/me/username?new_username=doomed_user", Some(t), None).await.expect(200);
    // The old token never opens the new account.
    user.get("/me").await.expect_error(401, "invalid_token");
}

#[tokio::test]
async fn a_failed_deletion_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    // Break one step of the transaction: deleting contacts fails.
    app.db()
        .await
        .execute(
            "CREATE TRIGGER no_contact_delete BEFORE DELETE ON contact BEGIN SELECT RAISE(ABORT, 'broken'); END",
            (),
        )
        .await
        .unwrap();
    let peer = app.user().await;
    user.put(&format!("/contacts/{}/local-name?local_name=P", peer.id), None).await.expect(200);
    let e = user.delete_account().await.expect_error(500, "internal_error");
    assert_eq!(e["detail"], "Failed to delete account");
    let me = user.get("/me").await.expect(200);
    assert_eq!(me["phone"], user.phone.as_str(), "nothing was deleted");
}
