//! The `system` function: service banners, reference lists and the API documentation (API.md §8, §10).

use std::fmt::Write as _;

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::http::{match_route, ok};
use shared::users::{AVATAR_FRAMES, PRESET_AVATAR_IDS};
use shared::{ApiError, AppState};

/// Name of this function in `template.yaml` and in the routing table.
pub const FUNCTION: &str = "system";

/// Serves one request; every error becomes its contract response.
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    dispatch(state, &req).unwrap_or_else(ApiError::into_response)
}

fn dispatch(state: &AppState, req: &Request) -> Result<Response<Body>, ApiError> {
    let m = match_route(FUNCTION, req.method(), req.uri().path())?;
    Ok(match m.route.op {
        "root" => ok(&json!({"message": "Messenger Backend API"})),
        "test" => ok(&json!({"status": "ok", "message": "Backend is running"})),
        "health" => ok(&json!({"status": "healthy"})),
        "list_preset_avatars" => {
            let avatars: Vec<_> =
                PRESET_AVATAR_IDS.iter().map(|id| json!({"id": id, "url": state.preset_avatar_url(id)})).collect();
            ok(&json!({ "avatars": avatars }))
        }
        "list_avatar_frames" => {
            let frames: Vec<_> =
                AVATAR_FRAMES.iter().map(|(id, name, color)| json!({"id": id, "name": name, "color": color})).collect();
            ok(&json!({ "frames": frames }))
        }
        "openapi" => ok(&shared::routes::openapi()),
        "docs" => docs(),
        _ => return Err(ApiError::RouteNotFound),
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// `GET /docs` — the OpenAPI document rendered server-side as plain HTML (no scripts, no third parties).
fn docs() -> Response<Body> {
    let doc = shared::routes::openapi();
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Messenger Backend API</title>\
         <style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;text-align:left;vertical-align:top}\
         code{background:#f3f3f3}</style></head><body><h1>Messenger Backend API</h1>\
         <p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1)</p>\
         <table><tr><th>Method</th><th>Path</th><th>Summary</th><th>Auth</th><th>Parameters</th><th>Success</th></tr>",
    );
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let params: Vec<String> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| format!("{} ({})", p["name"].as_str().unwrap_or(""), p["in"].as_str().unwrap_or("")))
                    .collect();
                let success = op["responses"]
                    .as_object()
                    .and_then(|r| r.keys().find(|k| k.starts_with('2')).cloned())
                    .unwrap_or_default();
                let _ = write!(
                    html,
                    "<tr><td><b>{}</b></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&method.to_uppercase()),
                    escape(path),
                    escape(op["summary"].as_str().unwrap_or("")),
                    if op.get("security").is_some() { "bearer" } else { "—" },
                    escape(&params.join(", ")),
                    escape(&success),
                );
            }
        }
    }
    html.push_str("</table></body></html>");
    Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .header("content-security-policy", "default-src 'self'; style-src 'unsafe-inline'")
        .body(Body::Text(html))
        .unwrap_or_default()
}
