use messenger_tests::{PNG, TestApp};

async fn fetch(url: &str) -> (u16, Option<String>, Vec<u8>) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn an_uploaded_avatar_is_served_from_s3_through_a_presigned_url() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let url = u.client.upload("/users/me/avatar", &u.token, "file", "x.svg", PNG).await.expect(200)["avatar_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.contains(&app.stack.s3_addr.to_string()), "served by S3, never the API origin: {url}");
    assert!(url.contains("X-Amz-Signature="));
    let (status, ct, bytes) = fetch(&url).await;
    assert_eq!(status, 200);
    assert_eq!(ct.as_deref(), Some("image/png"), "the detected type, not the file name");
    assert_eq!(bytes, PNG);
    assert_eq!(u.get("/me").await.expect(200)["avatar_url"], url.as_str(), "same URL within a signing window");
    let keys = app.bucket_keys().await;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("u/"));

    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &url[sig_at..=sig_at] == "0" { "1" } else { "0" };
    let tampered = format!("{}{flipped}{}", &url[..sig_at], &url[sig_at + 1..]);
    assert_eq!(fetch(&tampered).await.0, 403);
    let unsigned = url.split('?').next().unwrap();
    assert_eq!(fetch(unsigned).await.0, 403, "the bucket is private");
}

#[tokio::test]
async fn a_new_avatar_or_a_preset_deletes_the_previous_object() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let first = u.client.upload("/users/me/avatar", &u.token, "file", "a.png", PNG).await.expect(200);
    let first_key = app.bucket_keys().await;
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    let second = u.client.upload("/users/me/avatar", &u.token, "file", "b.gif", &gif).await.expect(200);
    let keys = app.bucket_keys().await;
    assert_eq!(keys.len(), 1);
    assert_ne!(keys, first_key);
    assert_ne!(fetch(first["avatar_url"].as_str().unwrap()).await.0, 200, "the old object is gone");
    let (status, ct, bytes) = fetch(second["avatar_url"].as_str().unwrap()).await;
    assert_eq!((status, ct.as_deref(), bytes), (200, Some("image/gif"), gif));
    u.put("/users/me/preset-avatar?avatar_id=5", None).await.expect(200);
    assert!(app.bucket_keys().await.is_empty());
    // Rows stay marked deleted (kept while a presigned PUT could re-create the object); none is live.
    assert_eq!(app.count("SELECT COUNT(*) FROM object WHERE kind != 'deleted'").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM object WHERE kind = 'deleted'").await, 2);
}

#[tokio::test]
async fn non_images_and_oversize_files_are_rejected() {
    let app = TestApp::spawn_with(&[("MAX_AVATAR_BYTES", "1024")]).await;
    let u = app.user().await;
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#;
    let html = b"<!doctype html><script>alert(1)</script>";
    let polyglot = [b"<html>".as_slice(), PNG].concat();
    for bad in [svg.as_slice(), html.as_slice(), polyglot.as_slice(), b"".as_slice()] {
        u.client.upload("/users/me/avatar", &u.token, "file", "a.png", bad).await.expect_error(400, "invalid_image");
    }
    let mut big = PNG.to_vec();
    big.resize(1025, 0);
    u.client.upload("/users/me/avatar", &u.token, "file", "a.png", &big).await.expect_error(413, "payload_too_large");
    u.client.upload("/users/me/avatar", &u.token, "other", "a.png", PNG).await.expect_error(422, "validation_error");
    u.client
        .raw("POST", "/users/me/avatar", Some(&u.token), "application/json", b"{}".to_vec())
        .await
        .expect_error(422, "validation_error");
    assert!(app.bucket_keys().await.is_empty());
}

#[tokio::test]
async fn bodies_over_the_gateway_limit_are_413() {
    let app = TestApp::spawn().await;
    let u = app.user().await;
    let huge = vec![0u8; 11 * 1024 * 1024];
    u.client.upload("/users/me/avatar", &u.token, "file", "a.png", &huge).await.expect_error(413, "payload_too_large");
    u.client
        .upload("/users/me/avatar", &u.token, "file", "a.png", &huge[..6 * 1024 * 1024])
        .await
        .expect_error(413, "payload_too_large");
}

/// Seconds since the epoch of an `X-Amz-Date` (`20250301T091542Z`).
fn amz_date_secs(text: &str) -> i64 {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(text, format).unwrap().assume_utc().unix_timestamp()
}

#[tokio::test]
async fn urls_issued_at_the_minimum_ttl_are_valid_for_at_least_half_of_it() {
    let app = TestApp::spawn_with(&[("PRESIGNED_GET_TTL_SECONDS", "60")]).await;
    let u = app.user().await;
    let url = u.client.upload("/users/me/avatar", &u.token, "file", "a.png", PNG).await.expect(200)["avatar_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let param = |name: &str| {
        let start = url.find(&format!("{name}=")).unwrap() + name.len() + 1;
        url[start..].split('&').next().unwrap().to_owned()
    };
    let signed_at = amz_date_secs(&param("X-Amz-Date"));
    let expires: i64 = param("X-Amz-Expires").parse().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(expires, 60);
    assert!(signed_at + expires - now >= 29, "valid for {} s only", signed_at + expires - now);
    assert_eq!(fetch(&url).await.0, 200, "a fresh URL works");
}
