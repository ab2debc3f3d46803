//! MLS groups (API.md §15.2): create, list, show, rename and leave, members only. Adding members needs
//! commits (§15.3, not built yet): until then the tests that need a second member put its row in place
//! through the database, as a commit will.

use messenger_client::crypto::{b64, random};
use messenger_tests::{TestApp, TestUser};
use serde_json::{Value, json};

fn new_group_id() -> String {
    b64(&random::<16>())
}

async fn create(user: &TestUser, name: Option<&str>) -> Value {
    user.post("/groups", Some(&json!({"group_id": new_group_id(), "name": name}))).await.expect(201)
}

/// Makes `user`'s device a plain member of group `id`, as an admin's commit adding it will.
async fn add_member(app: &TestApp, id: i64, user: &TestUser) {
    app.db()
        .await
        .execute(
            "INSERT INTO mls_member (group_id, device_id, user_id, role, joined_epoch) VALUES (?1, ?2, ?3, 'member', 0)",
            (id, user.device_id.as_str(), user.id),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_group_is_created_with_its_creator_as_admin_and_only_members_see_it() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let group_id = new_group_id();
    let group = alice.post("/groups", Some(&json!({"group_id": group_id, "name": "  Team  "}))).await.expect(201);
    let id = group["id"].as_i64().unwrap();
    assert_eq!(group["group_id"], group_id.as_str());
    assert_eq!(group["name"], "Team");
    assert_eq!(group["epoch"], 0);
    assert_eq!(group["created_by"], alice.id);
    assert!(group["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        group["members"],
        json!([{"user_id": alice.id, "device_id": alice.device_id, "role": "admin", "joined_epoch": 0}])
    );
    assert_eq!(alice.get(&format!("/groups/{id}")).await.expect(200), group);

    bob.post("/groups", Some(&json!({"group_id": group_id}))).await.expect_error(409, "group_exists");
    for bad in [
        json!({"group_id": b64(&[1; 15])}),
        json!({"group_id": b64(&[1; 33])}),
        json!({"group_id": "not base64!"}),
        json!({"group_id": new_group_id(), "name": " "}),
        json!({"group_id": new_group_id(), "name": "x".repeat(65)}),
        json!({"name": "no id"}),
    ] {
        bob.post("/groups", Some(&bad)).await.expect_error(422, "validation_error");
    }
    let unnamed = bob.post("/groups", Some(&json!({"group_id": new_group_id()}))).await.expect(201);
    assert!(unnamed["name"].is_null());

    // To anyone but a member, every path of the group is 404.
    bob.get(&format!("/groups/{id}")).await.expect_error(404, "group_not_found");
    bob.put(&format!("/groups/{id}"), Some(&json!({"name": "Mine"}))).await.expect_error(404, "group_not_found");
    bob.delete(&format!("/groups/{id}/members/me")).await.expect_error(404, "group_not_found");
    alice.get("/groups/999999").await.expect_error(404, "group_not_found");
    assert_eq!(alice.get(&format!("/groups/{id}")).await.expect(200)["name"], "Team", "nothing changed");
}

#[tokio::test]
async fn groups_are_listed_most_recent_first_and_paged() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        ids.push(create(&alice, Some(name)).await["id"].as_i64().unwrap());
    }
    create(&bob, Some("bob's")).await;
    let all = alice.get("/groups").await.expect(200);
    let listed: Vec<i64> = all.as_array().unwrap().iter().map(|g| g["id"].as_i64().unwrap()).collect();
    assert_eq!(listed, ids.iter().rev().copied().collect::<Vec<_>>(), "newest first, only the caller's");
    assert_eq!(all[0]["name"], "three");
    assert_eq!(all[0]["member_count"], 1);
    assert_eq!(all[0]["epoch"], 0);
    assert!(all[0]["last_message_at"].is_null(), "no message or commit yet");
    let first = alice.get("/groups?limit=2").await.expect(200);
    assert_eq!(first.as_array().unwrap().len(), 2);
    let cursor = first[1]["id"].as_i64().unwrap();
    let rest = alice.get(&format!("/groups?limit=2&before={cursor}")).await.expect(200);
    assert_eq!(rest.as_array().unwrap().iter().map(|g| g["id"].as_i64().unwrap()).collect::<Vec<_>>(), vec![ids[0]]);
    // Another user's group as the cursor gives nothing away.
    let bobs = bob.get("/groups").await.expect(200)[0]["id"].as_i64().unwrap();
    assert!(alice.get(&format!("/groups?before={bobs}")).await.expect(200).as_array().unwrap().is_empty());
    for bad in ["limit=0", "limit=101", "limit=x"] {
        alice.get(&format!("/groups?{bad}")).await.expect_error(422, "validation_error");
    }
}

#[tokio::test]
async fn admins_rename_members_cannot_and_every_member_device_is_told() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let id = create(&alice, Some("Team")).await["id"].as_i64().unwrap();
    add_member(&app, id, &bob).await;
    let mut alice_ws = app.ws(&alice.token).await;
    let mut bob_ws = app.ws(&bob.token).await;
    assert_eq!(bob.get(&format!("/groups/{id}")).await.expect(200)["members"].as_array().unwrap().len(), 2);
    bob.put(&format!("/groups/{id}"), Some(&json!({"name": "Bob's"}))).await.expect_error(403, "not_group_admin");
    let renamed = alice.put(&format!("/groups/{id}"), Some(&json!({"name": "Crew"}))).await.expect(200);
    assert_eq!(renamed["name"], "Crew");
    for ws in [&mut alice_ws, &mut bob_ws] {
        assert_eq!(ws.expect("group_updated").await, json!({"group_id": id, "name": "Crew"}));
    }
    let cleared = alice.put(&format!("/groups/{id}"), Some(&json!({"name": null}))).await.expect(200);
    assert!(cleared["name"].is_null());
    assert_eq!(bob_ws.expect("group_updated").await, json!({"group_id": id, "name": null}));
    alice.put(&format!("/groups/{id}"), Some(&json!({"name": ""}))).await.expect_error(422, "validation_error");
}

#[tokio::test]
async fn leaving_stops_routing_at_once_and_leaves_a_pending_removal() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let carol = app.user().await;
    let id = create(&alice, Some("Team")).await["id"].as_i64().unwrap();
    add_member(&app, id, &bob).await;
    add_member(&app, id, &carol).await;
    let mut alice_ws = app.ws(&alice.token).await;
    let mut bob_ws = app.ws(&bob.token).await;

    bob.delete(&format!("/groups/{id}/members/me")).await.expect(204);
    let left = json!({"group_id": id, "left": [{"user_id": bob.id, "device_id": bob.device_id}]});
    assert_eq!(alice_ws.expect("group_updated").await, left);
    bob_ws.expect_quiet().await;
    bob.get(&format!("/groups/{id}")).await.expect_error(404, "group_not_found");
    assert!(bob.get("/groups").await.expect(200).as_array().unwrap().is_empty());
    let members = alice.get(&format!("/groups/{id}")).await.expect(200)["members"].clone();
    assert!(members.as_array().unwrap().iter().all(|m| m["user_id"] != bob.id), "{members}");
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM mls_pending_removal WHERE group_id = {id}")).await, 1);

    // A deleted account's devices leave every group the same way, and the members are told.
    carol.delete_account().await.expect(204);
    let gone = json!({"group_id": id, "left": [{"user_id": carol.id, "device_id": carol.device_id}]});
    assert_eq!(alice_ws.expect("group_updated").await, gone);
    assert_eq!(alice.get(&format!("/groups/{id}")).await.expect(200)["members"].as_array().unwrap().len(), 1);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM mls_pending_removal WHERE group_id = {id}")).await, 2);

    // The last member leaving deletes the group.
    alice.delete(&format!("/groups/{id}/members/me")).await.expect(204);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM mls_group WHERE id = {id}")).await, 0);
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM mls_pending_removal WHERE group_id = {id}")).await, 0);
}

#[tokio::test]
async fn a_user_is_in_at_most_100_groups() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_REST_WRITE", "1000/60")]).await;
    let alice = app.user().await;
    let mut last = 0;
    for _ in 0..100 {
        last = create(&alice, None).await["id"].as_i64().unwrap();
    }
    let over = json!({"group_id": new_group_id()});
    alice.post("/groups", Some(&over)).await.expect_error(400, "too_many_groups");
    alice.delete(&format!("/groups/{last}/members/me")).await.expect(204);
    alice.post("/groups", Some(&over)).await.expect(201);
}
