use std::collections::BTreeSet;

use messenger_tests::{TestApp, template_path};
use serde_json::json;

#[tokio::test]
async fn service_endpoints_answer_as_the_original() {
    let app = TestApp::spawn().await;
    let c = app.client();
    assert_eq!(c.get("/", None).await.expect(200), json!({"message": "Messenger Backend API"}));
    assert_eq!(c.get("/test", None).await.expect(200), json!({"status": "ok", "message": "Backend is running"}));
    assert_eq!(c.get("/health", None).await.expect(200), json!({"status": "healthy"}));
    let avatars = c.get("/avatars/list", None).await.expect(200);
    let avatars = avatars["avatars"].as_array().unwrap();
    assert_eq!(avatars.len(), 12);
    assert_eq!(avatars[0], json!({"id": "1", "url": "https://api.dicebear.com/7.x/avataaars/svg?seed=1"}));
    let frames = c.get("/avatar-frames/list", None).await.expect(200);
    assert_eq!(frames["frames"][1], json!({"id": "fire", "name": "Огненная", "color": "#FF4500"}));
    assert_eq!(frames["frames"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn preset_urls_follow_the_configured_template() {
    let app = TestApp::spawn_with(&[("PRESET_AVATAR_URL_TEMPLATE", "https://static.example/avatars/{id}.png")]).await;
    let list = app.client().get("/avatars/list", None).await.expect(200);
    assert_eq!(list["avatars"][11]["url"], "https://static.example/avatars/12.png");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_contract_errors() {
    let app = TestApp::spawn().await;
    let c = app.client();
    c.get("/nope", None).await.expect_error(404, "not_found");
    c.call("DELETE", "/health", None, None).await.expect_error(405, "method_not_allowed");
}

/// The template's JSON API routes: all but the operator panel's, which serves HTML to browsers and is not
/// part of the API document.
fn api_routes() -> Vec<messenger_local::template::HttpRoute> {
    let yaml = std::fs::read_to_string(template_path()).unwrap();
    let routes = messenger_local::template::http_routes(&yaml).unwrap();
    assert!(routes.iter().any(|r| r.function == fn_admin::FUNCTION && r.path == "/admin/{proxy+}"));
    routes.into_iter().filter(|r| r.function != fn_admin::FUNCTION).collect()
}

fn template_routes() -> BTreeSet<(String, String)> {
    api_routes().into_iter().map(|r| (r.method, r.path)).collect()
}

#[tokio::test]
async fn openapi_lists_exactly_the_routes_of_the_template() {
    let app = TestApp::spawn().await;
    let doc = app.client().get("/openapi.json", None).await.expect(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    assert_eq!(documented, template_routes(), "every template route documented, nothing else");
    // Each route is served by the function the contract assigns it to.
    let served: BTreeSet<(String, String, String)> =
        api_routes().into_iter().map(|r| (r.method, r.path, r.function)).collect();
    let declared: BTreeSet<(String, String, String)> = wire::endpoints()
        .iter()
        .map(|e| (e.method.as_str().to_owned(), e.path.to_owned(), e.function.to_owned()))
        .collect();
    assert_eq!(served, declared, "template.yaml routes each path to the function the wire crate declares");
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let success = responses.iter().find(|(status, _)| status.starts_with('2')).expect("a success response");
            assert!(success.1["content"].is_object() || success.0 == "204", "{method} {path}: no response schema");
            if !["get", "delete"].contains(&method.as_str()) {
                assert!(op["requestBody"]["content"].is_object(), "{method} {path}: no request schema");
            }
        }
    }
    let me = &doc["paths"]["/me"]["get"];
    assert_eq!(me["security"], json!([{"bearer": []}]));
    assert_eq!(doc["paths"]["/users/{user_id}/profile"]["get"]["parameters"][0]["schema"]["type"], "integer");
}

#[test]
fn the_template_routes_exactly_the_client_actions_to_ws_message() {
    let yaml = std::fs::read_to_string(template_path()).unwrap();
    let routes = messenger_local::template::ws_routes(&yaml).unwrap();
    let to_ws_message: BTreeSet<&str> =
        routes.iter().filter(|r| r.function == fn_ws_message::FUNCTION).map(|r| r.route_key.as_str()).collect();
    let mut declared: BTreeSet<&str> = wire::ws::ClientAction::NAMES.iter().copied().collect();
    declared.insert("$default");
    assert_eq!(to_ws_message, declared, "one route per action, and $default for anything else");
}

#[tokio::test]
async fn docs_render_every_route_as_html() {
    let app = TestApp::spawn().await;
    let resp = app.client().get("/docs", None).await;
    assert_eq!(resp.status.as_u16(), 200);
    assert!(resp.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    for (_, path) in template_routes() {
        assert!(resp.text.contains(&format!("<code>{path}</code>")), "{path} missing from /docs");
    }
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{}/me", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example");
    assert!(ok.headers().get("access-control-allow-credentials").is_none());
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(denied.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_data_dir_and_database_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("data");
    // A directory and a database file left readable by an older version are tightened too.
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data_dir.join("messenger.db"), b"").unwrap();
    std::fs::set_permissions(data_dir.join("messenger.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let app = messenger_tests::TestApp::spawn_in(&data_dir).await;
    app.user().await; // a write, so the WAL and shared-memory files exist
    let mode = |name: &str| {
        let path = if name.is_empty() { data_dir.clone() } else { data_dir.join(name) };
        std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
    };
    assert_eq!(mode(""), 0o700, "data dir");
    for file in ["messenger.db", "messenger.db-wal", "messenger.db-shm", "jwt_secret", "admin_session_secret"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
}

#[tokio::test]
async fn a_plain_get_of_the_websocket_endpoint_gets_the_contract_error() {
    let app = TestApp::spawn().await;
    app.client().get("/ws", None).await.expect_error(426, "upgrade_required");
}

#[tokio::test]
async fn a_broken_template_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken-template.yaml");
    std::fs::write(&bad, "Resources: [not, a, map").unwrap();
    let options = messenger_local::Options {
        http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        s3_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.path().join("data"),
        template: Some(bad.clone()),
        use_env: false,
        ..messenger_local::Options::default()
    };
    let err = match messenger_local::Stack::start(options).await {
        Ok(_) => panic!("a broken template must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(&bad.display().to_string()), "the error names the file: {err}");
    let missing = messenger_local::Options {
        template: Some(dir.path().join("nope.yaml")),
        data_dir: dir.path().join("data2"),
        http_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        s3_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        use_env: false,
        ..messenger_local::Options::default()
    };
    let err = match messenger_local::Stack::start(missing).await {
        Ok(_) => panic!("a missing template must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("nope.yaml"), "{err}");
}

/// The cold-start schema check is one executed statement (one round trip to a libSQL server): it must tell
/// the build's version from any other on the suite's database, the embedded file or a real `sqld`.
#[tokio::test]
async fn the_cold_start_schema_check_tells_versions_apart_on_this_database() {
    let app = TestApp::spawn().await;
    let conn = app.db().await;
    let latest = shared::db::latest_version();
    assert!(shared::db::at_version(&conn, latest).await);
    assert!(!shared::db::at_version(&conn, latest - 1).await);
    assert!(!shared::db::at_version(&conn, latest + 1).await);
}
