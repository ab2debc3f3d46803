use messenger_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn local_names_are_set_shown_to_their_owner_and_deleted() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    let bob = app.user().await;
    let r = me.put(&format!("/contacts/{}/local-name?local_name=%20Bobby%20", bob.id), None).await.expect(200);
    assert_eq!(r, json!({"contact_id": bob.id, "local_name": "Bobby"}));
    assert_eq!(me.get(&format!("/users/{}/profile", bob.id)).await.expect(200)["local_name"], "Bobby");
    let listed = me.get("/users").await.expect(200);
    assert_eq!(listed.as_array().unwrap().iter().find(|u| u["id"] == bob.id).unwrap()["local_name"], "Bobby");
    assert!(bob.get(&format!("/users/{}/profile", bob.id)).await.expect(200)["local_name"].is_null());
    let r = me.put(&format!("/contacts/{}/local-name?local_name=", bob.id), None).await.expect(200);
    assert!(r["local_name"].is_null());
    me.put(&format!("/contacts/{}/local-name?local_name=Rob", bob.id), None).await.expect(200);
    assert_eq!(
        me.delete(&format!("/contacts/{}/local-name", bob.id)).await.expect(200),
        json!({"message": "Local name deleted"})
    );
    assert!(me.get(&format!("/users/{}/profile", bob.id)).await.expect(200)["local_name"].is_null());
    me.delete(&format!("/contacts/{}/local-name", bob.id)).await.expect(200);
}

#[tokio::test]
async fn local_name_errors_come_in_the_contract_order() {
    let app = TestApp::spawn().await;
    let me = app.user().await;
    me.put("/contacts/999999/local-name?local_name=X", None).await.expect_error(404, "contact_not_found");
    me.put(&format!("/contacts/{}/local-name?local_name=X", me.id), None).await.expect_error(400, "self_contact");
    let bob = app.user().await;
    me.put(&format!("/contacts/{}/local-name?local_name={}", bob.id, "n".repeat(65)), None)
        .await
        .expect_error(422, "validation_error");
    bob.delete_account().await;
    me.put(&format!("/contacts/{}/local-name?local_name=X", bob.id), None).await.expect_error(404, "contact_not_found");
    me.put("/contacts/abc/local-name?local_name=X", None).await.expect_error(422, "validation_error");
}
