use messenger_tests::{PNG, TestApp};
use serde_json::json;

async fn fetch(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

#[tokio::test]
async fn an_upload_comes_back_through_its_presigned_url_with_the_detected_type() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let jpeg = [&[0xFF, 0xD8, 0xFF, 0xE0][..], b"JFIF body bytes"].concat();
    let r = u.client.upload("/upload", &u.token, "file", "photo.html", &jpeg).await.expect(200);
    let key = r["key"].as_str().unwrap();
    assert!(key.starts_with("u/"));
    assert!(r["filename"].as_str().unwrap().ends_with(".jpg"), "generated name with the detected extension");
    assert_eq!(r["expires_in"], 3600);
    let resp = fetch(r["url"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), jpeg.as_slice());
    assert_eq!(app.bucket_keys().await, vec![key.to_owned()]);
}

#[tokio::test]
async fn direct_uploads_take_what_fits_through_lambda_and_point_larger_files_at_presign() {
    // The limits the stack runs with on AWS, whatever is configured above them.
    let app = TestApp::spawn_with(&[("MAX_UPLOAD_BYTES", "10485760"), ("MAX_AVATAR_BYTES", "10485760")]).await;
    let u = app.user().await;
    let image = |len: usize| {
        let mut bytes = PNG.to_vec();
        bytes.resize(len, 7);
        bytes
    };
    let four_mib = image(4 << 20);
    let up = u.client.upload("/upload", &u.token, "file", "x.png", &four_mib).await.expect(200);
    let stored = fetch(up["url"].as_str().unwrap()).await.bytes().await.unwrap();
    assert_eq!(stored.len(), 4 << 20, "4 MiB arrive whole");
    u.client.upload("/users/me/avatar", &u.token, "file", "a.png", &four_mib).await.expect(200);

    // Over 4 MiB: the function refuses and names the way for large files.
    let e = u.client.upload("/upload", &u.token, "file", "x.png", &image((4 << 20) + 1)).await;
    let body = e.expect_error(413, "payload_too_large");
    assert!(body["detail"].as_str().unwrap().contains("/uploads/presign"), "{body}");
    u.client
        .upload("/users/me/avatar", &u.token, "file", "a.png", &image((4 << 20) + 1))
        .await
        .expect_error(413, "payload_too_large");

    // Base64 inside the event passes Lambda's 6 MB at about 4.5 MiB: the gateway answers as AWS would,
    // before any function runs, with the contract's body.
    let e = u.client.upload("/upload", &u.token, "file", "x.png", &image(4_800_000)).await;
    let body = e.expect_error(413, "payload_too_large");
    assert!(body["detail"].as_str().unwrap().contains("6 MB"), "the gateway's answer: {body}");
    assert!(body["detail"].as_str().unwrap().contains("/uploads/presign"), "{body}");
    // Text bodies count as they are: a 6.5 MiB JSON body never reaches the function either.
    let bio = json!({"bio": "b".repeat(6_500_000)});
    let e = u.client.call("PUT", "/users/me/profile", Some(&u.token), Some(&bio)).await;
    assert!(e.expect_error(413, "payload_too_large")["detail"].as_str().unwrap().contains("6 MB"));
    // Above API Gateway's 10 MB.
    u.client
        .upload("/upload", &u.token, "file", "x.png", &image(11 << 20))
        .await
        .expect_error(413, "payload_too_large");
    assert_eq!(app.bucket_keys().await.len(), 2, "only the two 4 MiB files were stored");
}

#[tokio::test]
async fn svg_html_polyglots_and_oversize_uploads_are_rejected() {
    let app = TestApp::spawn_with(&[("MAX_UPLOAD_BYTES", "2048")]).await;
    let u = app.user().await;
    for bad in [
        br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec(),
        b"<!DOCTYPE html><html><body onload=alert(1)>".to_vec(),
        [b"<html>".as_slice(), PNG].concat(),
        b"%PDF-1.7".to_vec(),
    ] {
        u.client.upload("/upload", &u.token, "file", "x.png", &bad).await.expect_error(400, "invalid_image");
    }
    let mut big = PNG.to_vec();
    big.resize(2049, 0);
    u.client.upload("/upload", &u.token, "file", "x.png", &big).await.expect_error(413, "payload_too_large");
    assert!(app.bucket_keys().await.is_empty());
}

#[tokio::test]
async fn a_presigned_put_accepts_exactly_the_signed_size_and_type() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let r = u.post("/uploads/presign", Some(&json!({"size": 16}))).await.expect(200);
    assert_eq!(
        r["headers"],
        json!({"Content-Type": "application/octet-stream", "Content-Length": "16", "If-None-Match": "*"})
    );
    assert_eq!(r["expires_in"], 900);
    let url = r["upload_url"].as_str().unwrap();
    let http = reqwest::Client::new();
    let put = |body: Vec<u8>, ct: &'static str| {
        http.put(url).header("content-type", ct).header("if-none-match", "*").body(body).send()
    };
    assert_eq!(put(vec![1; 17], "application/octet-stream").await.unwrap().status(), 403, "another size");
    assert_eq!(put(vec![1; 16], "text/html").await.unwrap().status(), 403, "another type");
    let unconditional = http.put(url).header("content-type", "application/octet-stream").body(vec![1; 16]);
    assert_eq!(unconditional.send().await.unwrap().status(), 403, "the condition is signed");
    assert!(app.bucket_keys().await.is_empty());
    assert_eq!(put(vec![7; 16], "application/octet-stream").await.unwrap().status(), 200);
    let key = r["key"].as_str().unwrap();
    assert_eq!(app.bucket_keys().await, vec![key.to_owned()]);
    // The URL is still within its lifetime, but it cannot swap the attachment once it exists.
    assert_eq!(put(vec![9; 16], "application/octet-stream").await.unwrap().status(), 412, "no overwrite");

    // Referenced as a file message; both sides get an attachment URL, nobody else.
    let bob = app.user().await;
    let mut ws = app.ws(&u.token).await;
    ws.send(&json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "file", "message_type": "file", "media_url": key})).await;
    ws.expect("message_sent").await;
    let history = bob.get(&format!("/chats/{}/messages", u.id)).await.expect(200);
    let resp = fetch(history[0]["media_url"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(resp.headers()["content-disposition"], "attachment");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &[7; 16]);
}

#[tokio::test]
async fn presign_requests_are_validated() {
    let app = TestApp::spawn_with(&[("MAX_PRESIGNED_UPLOAD_BYTES", "1000")]).await;
    let u = app.user().await;
    u.post("/uploads/presign", Some(&json!({"size": 1001}))).await.expect_error(413, "payload_too_large");
    for bad in
        [json!({}), json!({"size": 0}), json!({"size": "big"}), json!({"size": 10, "content_type": "not a type"})]
    {
        u.post("/uploads/presign", Some(&bad)).await.expect_error(422, "validation_error");
    }
    let r = u.post("/uploads/presign", Some(&json!({"size": 10, "content_type": "Image/PNG"}))).await.expect(200);
    assert_eq!(r["headers"]["Content-Type"], "image/png");
}

#[tokio::test]
async fn uploads_are_rate_limited_per_user() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_UPLOAD", "2/3600")]).await;
    let u = app.user().await;
    u.client.upload("/upload", &u.token, "file", "a.png", PNG).await.expect(200);
    u.post("/uploads/presign", Some(&json!({"size": 5}))).await.expect(200);
    u.client.upload("/upload", &u.token, "file", "a.png", PNG).await.expect_error(429, "rate_limited");
}

#[tokio::test]
async fn only_the_owner_may_reference_an_upload() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let up = alice.client.upload("/upload", &alice.token, "file", "a.png", PNG).await.expect(200);
    let mut b = app.ws(&bob.token).await;
    for reference in [up["key"].as_str().unwrap(), up["url"].as_str().unwrap()] {
        b.send(&json!({"action": "send_message", "receiver_id": alice.id, "encrypted_content": "x", "message_type": "image", "media_url": reference})).await;
        assert_eq!(b.expect("error").await["code"], "invalid_media");
    }
    let theme = json!({"name": "T", "primary_color": "1", "background_color": "1", "bubble_color_me": "1", "bubble_color_other": "1",
        "text_color": "1", "secondary_text_color": "1", "brightness": "dark", "wallpaper_url": up["url"]});
    bob.post("/users/me/themes", Some(&theme)).await.expect_error(422, "validation_error");
    // The owner may, by key or by the URL it was given.
    let mut a = app.ws(&alice.token).await;
    a.send(&json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x", "message_type": "image", "media_url": up["url"]})).await;
    a.expect("message_sent").await;
    alice.post("/users/me/themes", Some(&theme)).await.expect(201);
}

#[tokio::test]
async fn the_cleanup_deletes_only_unreferenced_old_uploads() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let used = alice.client.upload("/upload", &alice.token, "file", "a.png", PNG).await.expect(200);
    let unused = alice.client.upload("/upload", &alice.token, "file", "b.png", PNG).await.expect(200);
    let fresh = alice.client.upload("/upload", &alice.token, "file", "c.png", PNG).await.expect(200);
    let mut a = app.ws(&alice.token).await;
    a.send(&json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x", "message_type": "image", "media_url": used["key"]})).await;
    a.expect("message_sent").await;
    let conn = app.db().await;
    for k in [&used, &unused] {
        conn.execute("UPDATE object SET created_at = 0 WHERE key = ?1", [k["key"].as_str().unwrap()]).await.unwrap();
    }
    let removed = shared::files::cleanup(&app.stack.state, shared::time::now_ms() - 24 * 3600 * 1000).await.unwrap();
    assert_eq!(removed, 1);
    let mut keys = app.bucket_keys().await;
    keys.sort();
    let mut expected = vec![used["key"].as_str().unwrap().to_owned(), fresh["key"].as_str().unwrap().to_owned()];
    expected.sort();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn the_cleanup_reaches_orphans_behind_more_referenced_objects_than_one_batch() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let mut a = app.ws(&alice.token).await;
    let mut referenced = Vec::new();
    for i in 0..7 {
        let up = alice.client.upload("/upload", &alice.token, "file", &format!("{i}.png"), PNG).await.expect(200);
        a.send(&json!({"action": "send_message", "receiver_id": bob.id, "encrypted_content": "x", "message_type": "image", "media_url": up["key"]})).await;
        a.expect("message_sent").await;
        referenced.push(up["key"].as_str().unwrap().to_owned());
    }
    let orphan = alice.client.upload("/upload", &alice.token, "file", "o.png", PNG).await.expect(200);
    let conn = app.db().await;
    conn.execute("UPDATE object SET created_at = 0", ()).await.unwrap();
    // A deletion that failed earlier stays marked until the clean-up retries it.
    let failed = alice.client.upload("/upload", &alice.token, "file", "f.png", PNG).await.expect(200);
    conn.execute("UPDATE object SET kind = 'deleted' WHERE key = ?1", [failed["key"].as_str().unwrap()]).await.unwrap();
    let cutoff = shared::time::now_ms() - 24 * 3600 * 1000;
    // Batches of 3: seven referenced objects would have filled every batch of the old oldest-first scan.
    let removed = shared::files::cleanup_in_batches(&app.stack.state, cutoff, 3).await.unwrap();
    assert_eq!(removed, 2);
    let mut keys = app.bucket_keys().await;
    keys.sort();
    referenced.sort();
    assert_eq!(keys, referenced);
    assert_eq!(app.count("SELECT COUNT(*) FROM object WHERE kind != 'deleted'").await, 7);
    // The failed one's row is younger than a presigned PUT's lifetime: it stays, marked, until that ends.
    assert_eq!(app.count("SELECT COUNT(*) FROM object WHERE kind = 'deleted'").await, 1);
    assert!(orphan["key"].is_string());
}

#[tokio::test]
async fn a_presigned_put_whose_row_was_purged_cannot_keep_its_object() {
    let app = TestApp::spawn().await;
    let alice = app.user().await;
    let r = alice.post("/uploads/presign", Some(&json!({"size": 16}))).await.expect(200);
    let (url, key) = (r["upload_url"].as_str().unwrap().to_owned(), r["key"].as_str().unwrap().to_owned());
    let put = || {
        reqwest::Client::new()
            .put(&url)
            .header("content-type", "application/octet-stream")
            .header("if-none-match", "*")
            .body(vec![7; 16])
            .send()
    };
    let bob = app.user().await;
    let kept = bob.client.upload("/upload", &bob.token, "file", "kept.png", PNG).await.expect(200);
    let kept = kept["key"].as_str().unwrap().to_owned();
    let rows = format!("SELECT COUNT(*) FROM object WHERE key = '{key}'");
    let state = &app.stack.state;
    let long_ago = shared::time::now_ms() - 24 * 3600 * 1000;

    // The account goes before the upload: the URL is still valid and re-creates the object.
    assert_eq!(alice.delete_account().await.status.as_u16(), 204);
    assert_eq!(app.count(&rows).await, 1, "the row stays, marked, while the PUT may still be used");
    assert_eq!(put().await.unwrap().status(), 200);
    assert!(app.bucket_keys().await.contains(&key));
    // Every clean-up deletes it again while the row stays.
    shared::files::cleanup(state, long_ago).await.unwrap();
    assert!(!app.bucket_keys().await.contains(&key));
    assert_eq!(app.count(&rows).await, 1);

    // Once the PUT's lifetime has passed, the clean-up deletes object and row.
    app.db().await.execute("UPDATE object SET created_at = 0 WHERE key = ?1", [key.as_str()]).await.unwrap();
    assert_eq!(put().await.unwrap().status(), 200);
    shared::files::cleanup(state, long_ago).await.unwrap();
    assert_eq!(app.count(&rows).await, 0);
    assert!(!app.bucket_keys().await.contains(&key));

    // An object without a row (here: the URL used once more; in production, a process that died between
    // its S3 write and its row) is swept once it is old enough; objects with rows stay.
    assert_eq!(put().await.unwrap().status(), 200);
    assert_eq!(shared::files::sweep_bucket(state, shared::time::now_ms() - 60_000).await.unwrap(), 0, "too new");
    assert_eq!(shared::files::sweep_bucket(state, shared::time::now_ms() + 60_000).await.unwrap(), 1);
    assert_eq!(app.bucket_keys().await, vec![kept]);
}
