use messenger_tests::{PNG, TestApp};
use serde_json::{Value, json};

fn theme(name: &str) -> Value {
    json!({"name": name, "primary_color": "4286336511", "background_color": "0xFF000000", "bubble_color_me": "4282339765",
        "bubble_color_other": "4281545523", "text_color": "4294967295", "secondary_text_color": "4288585374", "brightness": "dark"})
}

#[tokio::test]
async fn themes_are_created_listed_replaced_and_deleted() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let t = u.post("/users/me/themes", Some(&theme("Night"))).await.expect(201);
    assert_eq!(t["name"], "Night");
    assert_eq!(t["background_color"], "4278190080", "hex is stored as the decimal the client parses");
    assert_eq!(t["wallpaper_blur"], "0.0");
    assert!(t["wallpaper_url"].is_null());
    assert!(t["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(t.get("user_id").is_none());
    let second = u.post("/users/me/themes", Some(&theme("Day"))).await.expect(201);
    let list = u.get("/users/me/themes").await.expect(200);
    assert_eq!(
        list.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect::<Vec<_>>(),
        vec!["Day", "Night"]
    );

    let mut replaced = theme("Night 2");
    replaced["brightness"] = json!("light");
    replaced["wallpaper_blur"] = json!("7.5");
    let t2 = u.put(&format!("/users/me/themes/{}", t["id"]), Some(&replaced)).await.expect(200);
    assert_eq!(
        (t2["name"].as_str(), t2["brightness"].as_str(), t2["wallpaper_blur"].as_str()),
        (Some("Night 2"), Some("light"), Some("7.5"))
    );
    assert_eq!(t2["id"], t["id"]);

    let other = app.user().await;
    other.put(&format!("/users/me/themes/{}", t["id"]), Some(&theme("x"))).await.expect_error(404, "theme_not_found");
    other.delete(&format!("/users/me/themes/{}", t["id"])).await.expect_error(404, "theme_not_found");
    assert!(other.get("/users/me/themes").await.expect(200).as_array().unwrap().is_empty());

    let resp = u.delete(&format!("/users/me/themes/{}", second["id"])).await;
    assert_eq!(resp.status.as_u16(), 204);
    assert!(resp.text.is_empty());
    u.delete(&format!("/users/me/themes/{}", second["id"])).await.expect_error(404, "theme_not_found");
    u.delete("/users/me/themes/abc").await.expect_error(422, "validation_error");
}

#[tokio::test]
async fn theme_fields_are_validated() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    for (field, value) in [
        ("name", json!("")),
        ("name", json!("n".repeat(65))),
        ("primary_color", json!("4294967296")),
        ("text_color", json!("blue")),
        ("brightness", json!("dim")),
        ("wallpaper_blur", json!("21")),
        ("wallpaper_blur", json!("-1")),
        ("wallpaper_url", json!("https://evil.example/wall.png")),
    ] {
        let mut body = theme("T");
        body[field] = value;
        let e = u.post("/users/me/themes", Some(&body)).await.expect_error(422, "validation_error");
        assert_eq!(e["errors"][0]["field"], field);
    }
    let mut missing = theme("T");
    missing.as_object_mut().unwrap().remove("bubble_color_me");
    u.post("/users/me/themes", Some(&missing)).await.expect_error(422, "validation_error");
}

#[tokio::test]
async fn at_most_fifty_themes() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    for i in 0..50 {
        u.post("/users/me/themes", Some(&theme(&format!("t{i}")))).await.expect(201);
    }
    u.post("/users/me/themes", Some(&theme("one too many"))).await.expect_error(409, "theme_limit");
}

#[tokio::test]
async fn wallpapers_get_fresh_urls_and_replaced_ones_are_deleted() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let w1 = u.client.upload("/upload", &u.token, "file", "w.png", PNG).await.expect(200);
    let w2 = u.client.upload("/upload", &u.token, "file", "w.png", PNG).await.expect(200);
    let mut body = theme("Wall");
    body["wallpaper_url"] = w1["url"].clone();
    let t = u.post("/users/me/themes", Some(&body)).await.expect(201);
    let url = t["wallpaper_url"].as_str().unwrap();
    assert_eq!(reqwest::get(url).await.unwrap().bytes().await.unwrap().as_ref(), PNG);
    body["wallpaper_url"] = w2["key"].clone();
    u.put(&format!("/users/me/themes/{}", t["id"]), Some(&body)).await.expect(200);
    assert_eq!(app.bucket_keys().await, vec![w2["key"].as_str().unwrap().to_owned()], "the replaced wallpaper is gone");
    u.delete(&format!("/users/me/themes/{}", t["id"])).await;
    assert!(app.bucket_keys().await.is_empty());
}
