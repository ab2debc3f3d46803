//! Every sample event in `events/` goes through `lambda_http`'s own event parsing into its function.

use messenger_tests::TestApp;

#[tokio::test]
async fn every_sample_event_reaches_its_handler() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
    let mut seen = 0;
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    // Deleting the account revokes the token, so that event goes last.
    paths.sort_by_key(|p| (p.ends_with("users-delete_account.json"), p.clone()));
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        let functions = [
            "ws-disconnect",
            "ws-connect",
            "ws-message",
            "auth",
            "users",
            "system",
            "chats",
            "files",
            "themes",
            "contacts",
            "keys",
            "admin",
        ];
        let Some(function) = functions.into_iter().find(|f| name.starts_with(&format!("{f}-"))) else {
            panic!("{name}: names no known function")
        };
        let text = std::fs::read_to_string(&path).unwrap().replace("EXAMPLE_TOKEN", &user.token);
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            event.get("httpMethod").is_none() && event.get("path").is_none(),
            "{name}: WebSocket events without httpMethod/path, HTTP events in payload format 2.0"
        );
        let req = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let resp = match function {
            "auth" => fn_auth::handle(&app.stack.state, req).await,
            "users" => fn_users::handle(&app.stack.state, req).await,
            "system" => fn_system::handle(&app.stack.state, req).await,
            "chats" => fn_chats::handle(&app.stack.state, req).await,
            "files" => fn_files::handle(&app.stack.state, req).await,
            "themes" => fn_themes::handle(&app.stack.state, req).await,
            "contacts" => fn_contacts::handle(&app.stack.state, req).await,
            "keys" => fn_keys::handle(&app.stack.state, req).await,
            "admin" => fn_admin::handle(&app.stack.state, req).await,
            "ws-connect" => fn_ws_connect::handle(&app.stack.state, req).await,
            "ws-disconnect" => fn_ws_disconnect::handle(&app.stack.state, req).await,
            "ws-message" => fn_ws_message::handle(&app.stack.state, req).await,
            other => panic!("{name}: unknown function {other}"),
        };
        let body: serde_json::Value = serde_json::from_slice(resp.body().as_ref()).unwrap_or_default();
        let status = resp.status().as_u16();
        assert!(status < 500, "{name}: {status} {body}");
        assert!(!["not_found", "method_not_allowed"].contains(&body["code"].as_str().unwrap_or("")), "{name}: {body}");
        assert_ne!(body["code"], "not_authenticated", "{name}: the token was substituted");
        seen += 1;
    }
    assert!(seen >= wire::endpoints().len() + 3, "one event per route, saw {seen}");
    for e in wire::endpoints() {
        let sample = format!("{dir}/{}-{}.json", e.function, e.operation_id);
        assert!(
            std::path::Path::new(&sample).exists(),
            "no sample event for {} {}: {sample}",
            e.method.as_str(),
            e.path
        );
    }
}
