//! The `system` function: service banners, reference lists and the API documentation (API.md §8, §10).

use std::fmt::Write as _;

use serde_json::{Map, Value};
use shared::api::{Caller, Router};
use shared::users::{AVATAR_FRAMES, PRESET_AVATAR_IDS};
use shared::{ApiError, AppState};
use wire::system::{
    Banner, Docs, Frame, Frames, Health, HtmlPage, ListAvatarFrames, ListPresetAvatars, OpenApi, OpenApiDocument,
    PresetAvatar, PresetAvatars, Root, Status, Test,
};
use wire::{Empty, ErrorCode};

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "system";

/// Every route of this function.
pub fn router() -> Router {
    Router::new(FUNCTION)
        .public(Root, root)
        .public(Test, test)
        .public(Health, health)
        .public(ListPresetAvatars, list_preset_avatars)
        .public(ListAvatarFrames, list_avatar_frames)
        .public(OpenApi, openapi)
        .public(Docs, docs)
}

shared::http_function!(router);

/// `GET /` — the service banner (the original's `docs` and `admin` links are dropped).
async fn root(_state: &AppState, _caller: Caller, _input: Empty) -> Result<Banner, ApiError> {
    Ok(Banner { message: "Messenger Backend API".into() })
}

/// `GET /test` — the liveness check the client "wakes" the server with.
async fn test(_state: &AppState, _caller: Caller, _input: Empty) -> Result<Status, ApiError> {
    Ok(Status { status: "ok".into(), message: Some("Backend is running".into()) })
}

/// `GET /health`
async fn health(_state: &AppState, _caller: Caller, _input: Empty) -> Result<Status, ApiError> {
    Ok(Status { status: "healthy".into(), message: None })
}

/// `GET /avatars/list` — every preset avatar with its public URL (from `PRESET_AVATAR_URL_TEMPLATE`).
async fn list_preset_avatars(state: &AppState, _caller: Caller, _input: Empty) -> Result<PresetAvatars, ApiError> {
    let avatars =
        PRESET_AVATAR_IDS.iter().map(|id| PresetAvatar { id: (*id).to_owned(), url: state.preset_avatar_url(id) });
    Ok(PresetAvatars { avatars: avatars.collect() })
}

/// `GET /avatar-frames/list`
async fn list_avatar_frames(_state: &AppState, _caller: Caller, _input: Empty) -> Result<Frames, ApiError> {
    let frames = AVATAR_FRAMES.iter().map(|(id, name, color)| Frame {
        id: *id,
        name: (*name).to_owned(),
        color: (*color).to_owned(),
    });
    Ok(Frames { frames: frames.collect() })
}

/// `GET /openapi.json` — the OpenAPI 3.1 document generated from the wire types.
async fn openapi(_state: &AppState, _caller: Caller, _input: Empty) -> Result<OpenApiDocument, ApiError> {
    Ok(OpenApiDocument(shared::routes::openapi().clone()))
}

/// `GET /docs` — the OpenAPI document rendered server-side as one self-contained HTML page (no scripts, no
/// third parties; a `Content-Security-Policy` meta tag allows nothing but its inline style).
async fn docs(_state: &AppState, _caller: Caller, _input: Empty) -> Result<HtmlPage, ApiError> {
    static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| render_docs(shared::routes::openapi()));
    Ok(HtmlPage(PAGE.clone()))
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A string member of a JSON object, or `""`.
fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The component name a `$ref` points at (`#/components/schemas/Name` → `Name`).
fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.rsplit('/').next()
}

/// An anchor id for a component schema (names are identifiers, but escape anyway).
fn schema_anchor(name: &str) -> String {
    format!("schema-{}", escape(name))
}

/// The type of a schema as HTML: named types link to their definition, lists are `[T]`, nullable
/// types `T | null`, enums list their values.
fn type_html(schema: &Value) -> String {
    if let Some(name) = ref_name(schema) {
        return format!("<a href=\"#{}\">{}</a>", schema_anchor(name), escape(name));
    }
    for (key, sep) in [("oneOf", " | "), ("anyOf", " | "), ("allOf", " &amp; ")] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            return parts.iter().map(type_html).collect::<Vec<_>>().join(sep);
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(|v| format!("<code>{}</code>", escape(&v.to_string()))).collect();
        return format!("one of {}", values.join(", "));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        return "any".into();
    }
    let rendered: Vec<String> = types
        .iter()
        .map(|t| match *t {
            "array" => format!("[{}]", schema.get("items").map_or_else(|| "any".into(), type_html)),
            "object" if schema.get("properties").is_some() => "object (fields below)".into(),
            other => {
                let format = text(schema, "format");
                if format.is_empty() { escape(other) } else { format!("{} ({})", escape(other), escape(format)) }
            }
        })
        .collect();
    rendered.join(" | ")
}

/// A schema's description; for a nullable reference (`oneOf: [null, $ref]`) the one on its reference.
fn description(schema: &Value) -> &str {
    let nested = ["oneOf", "anyOf", "allOf"].iter().filter_map(|k| schema.get(*k)?.as_array()).flatten();
    std::iter::once(schema).chain(nested).map(|s| text(s, "description")).find(|d| !d.is_empty()).unwrap_or_default()
}

/// `(name, schema, required)` of every property of an object schema, following `allOf` (not `$ref`).
fn fields(schema: &Value) -> Vec<(String, Value, bool)> {
    let mut out = Vec::new();
    for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        out.extend(fields(part));
    }
    let required: Vec<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    for (name, prop) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        out.push((name.clone(), prop.clone(), required.contains(&name.as_str())));
    }
    out
}

/// A table of an object schema's fields, or nothing when it has none.
fn fields_table(html: &mut String, schema: &Value) {
    let fields = fields(schema);
    if fields.is_empty() {
        return;
    }
    html.push_str("<table><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr>");
    for (name, prop, required) in fields {
        let _ = write!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&name),
            type_html(&prop),
            if required { "yes" } else { "no" },
            escape(description(&prop)),
        );
    }
    html.push_str("</table>");
}

/// A schema as the operation shows it: its name (linked) and the fields of an inline object.
fn schema_block(html: &mut String, schema: &Value) {
    let _ = write!(html, "<p>Schema: {}</p>", type_html(schema));
    if ref_name(schema).is_none() {
        fields_table(html, schema);
    }
}

/// The first media type and schema of a `content` map.
fn media(content: &Value) -> Option<(&String, &Value)> {
    let (media_type, entry) = content.as_object()?.iter().next()?;
    Some((media_type, entry.get("schema").unwrap_or(&Value::Null)))
}

/// The error codes of an error response's description (`Error: a, b`), each with its default detail.
fn error_codes(description: &str) -> String {
    let codes = description.strip_prefix("Error: ").unwrap_or(description);
    codes
        .split(", ")
        .filter(|c| !c.is_empty())
        .map(|code| match ErrorCode::ALL.iter().find(|c| c.as_str() == code) {
            Some(c) => format!("<code>{}</code> ({})", escape(code), escape(c.detail())),
            None => format!("<code>{}</code>", escape(code)),
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn operation_html(html: &mut String, method: &str, path: &str, op: &Value) {
    let id = text(op, "operationId");
    let _ = write!(
        html,
        "<section class=\"op\" id=\"op-{}\"><h3><span class=\"method\">{}</span> <code>{}</code></h3><p>{}</p>",
        escape(id),
        escape(&method.to_ascii_uppercase()),
        escape(path),
        escape(text(op, "summary")),
    );
    let auth =
        if op.get("security").is_some() { "bearer token (<code>Authorization: Bearer …</code>)" } else { "none" };
    let _ = write!(html, "<p>Operation <code>{}</code>. Auth: {auth}.</p>", escape(id));

    let params = op.get("parameters").and_then(Value::as_array).filter(|p| !p.is_empty());
    if let Some(params) = params {
        html.push_str(
            "<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Type</th><th>Required</th>\
             <th>Description</th></tr>",
        );
        for p in params {
            let _ = write!(
                html,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(text(p, "name")),
                escape(text(p, "in")),
                type_html(p.get("schema").unwrap_or(&Value::Null)),
                if p.get("required").and_then(Value::as_bool).unwrap_or(false) { "yes" } else { "no" },
                escape(description(p)),
            );
        }
        html.push_str("</table>");
    }

    if let Some(body) = op.get("requestBody") {
        let required = if body.get("required").and_then(Value::as_bool).unwrap_or(false) { "" } else { " (optional)" };
        let _ = write!(html, "<h4>Request body{required}</h4>");
        let description = text(body, "description");
        if !description.is_empty() {
            let _ = write!(html, "<p>{}</p>", escape(description));
        }
        if let Some((media_type, schema)) = body.get("content").and_then(media) {
            let _ = write!(html, "<p>Content type: <code>{}</code></p>", escape(media_type));
            schema_block(html, schema);
        }
    }

    let empty = Map::new();
    let responses = op.get("responses").and_then(Value::as_object).unwrap_or(&empty);
    html.push_str("<h4>Responses</h4>");
    for (status, response) in responses.iter().filter(|(s, _)| s.starts_with('2')) {
        let _ = write!(html, "<p><b>{}</b> {}</p>", escape(status), escape(text(response, "description")));
        if let Some((media_type, schema)) = response.get("content").and_then(media) {
            let _ = write!(html, "<p>Content type: <code>{}</code></p>", escape(media_type));
            schema_block(html, schema);
        }
    }
    let errors: Vec<(&String, &Value)> =
        responses.iter().filter(|(s, _)| !s.starts_with('2') && s.as_str() != "default").collect();
    if !errors.is_empty() {
        html.push_str("<table><tr><th>Error status</th><th>Codes (default detail)</th></tr>");
        for (status, response) in errors {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(status),
                error_codes(text(response, "description"))
            );
        }
        html.push_str("</table><p>Errors are <a href=\"#schema-ErrorBody\">ErrorBody</a> objects.</p>");
    }
    html.push_str("</section>");
}

/// Renders an OpenAPI document as a self-contained HTML page: every operation with method, path, summary,
/// auth, parameters, request body and response schemas and error codes, then every named schema.
fn render_docs(doc: &Value) -> String {
    let info = doc.get("info").unwrap_or(&Value::Null);
    let title = match text(info, "title") {
        "" => "API",
        title => title,
    };
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:.5em 0}}\
         td,th{{padding:.3em .8em;text-align:left;vertical-align:top;border-bottom:1px solid #ddd}}\
         code{{background:#f3f3f3;padding:0 .2em}}.op{{border-top:2px solid #888;margin-top:1.5em}}\
         .method{{display:inline-block;min-width:4.5em;font-family:monospace}}</style></head><body>\
         <h1>{title}</h1><p>Version {version}. {description}</p>\
         <p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI {openapi})</p>",
        title = escape(title),
        version = escape(text(info, "version")),
        description = escape(text(info, "description")),
        openapi = escape(text(doc, "openapi")),
    );
    let empty = Map::new();
    let paths = doc.get("paths").and_then(Value::as_object).unwrap_or(&empty);
    let operations: Vec<(&str, &str, &Value)> = paths
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().into_iter().flatten().map(move |(method, op)| (method.as_str(), path.as_str(), op))
        })
        .collect();

    html.push_str("<h2>Operations</h2><table><tr><th>Method</th><th>Path</th><th>Summary</th><th>Auth</th></tr>");
    for (method, path, op) in &operations {
        let _ = write!(
            html,
            "<tr><td><b>{}</b></td><td><a href=\"#op-{}\"><code>{}</code></a></td><td>{}</td><td>{}</td></tr>",
            escape(&method.to_ascii_uppercase()),
            escape(text(op, "operationId")),
            escape(path),
            escape(text(op, "summary")),
            if op.get("security").is_some() { "bearer" } else { "—" },
        );
    }
    html.push_str("</table>");

    if let Some(ws) = doc.get("x-websocket") {
        let actions: Vec<String> = ws
            .get("actions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|a| format!("<code>{}</code>", escape(a)))
            .collect();
        let _ = write!(
            html,
            "<h2>WebSocket</h2><p>Frames are routed by <code>{}</code>; actions: {}. Any other frame is answered \
             with an <code>error</code> event.</p><p>Client frames: {}. Server frames: {}.</p>",
            escape(text(ws, "routeSelectionExpression")),
            actions.join(", "),
            type_html(ws.get("clientFrame").unwrap_or(&Value::Null)),
            type_html(ws.get("serverFrame").unwrap_or(&Value::Null)),
        );
    }

    for (method, path, op) in &operations {
        operation_html(&mut html, method, path, op);
    }

    let schemas = doc.pointer("/components/schemas").and_then(Value::as_object).unwrap_or(&empty);
    html.push_str("<h2>Schemas</h2>");
    for (name, schema) in schemas {
        let _ = write!(html, "<section id=\"{}\"><h3>{}</h3>", schema_anchor(name), escape(name));
        let about = description(schema);
        if !about.is_empty() {
            let _ = write!(html, "<p>{}</p>", escape(about));
        }
        if fields(schema).is_empty() {
            let _ = write!(html, "<p>Type: {}</p>", type_html(schema));
        } else {
            fields_table(&mut html, schema);
        }
        html.push_str("</section>");
    }
    html.push_str("</body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_system_endpoints() {
        shared::api::assert_serves_its_endpoints(&super::router());
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn the_docs_show_every_operation_with_its_details() {
        let html = render_docs(shared::routes::openapi());
        for e in wire::endpoints() {
            assert!(html.contains(&format!("<code>{}</code>", e.path)), "{e:?}");
            assert!(html.contains(&format!("id=\"op-{}\"", e.operation_id)), "{e:?}");
        }
        // Parameters with where they go and their type, body schemas with their fields, responses, errors.
        let devices = html.split("id=\"op-list_devices\"").nth(1).unwrap().split("</section>").next().unwrap();
        assert!(devices.contains("<td><code>user_id</code></td><td>path</td><td>integer (int64)</td>"), "{devices}");
        assert!(devices.contains("bearer token"));
        assert!(devices.contains("<code>user_not_found</code> (User not found)"), "{devices}");
        assert!(devices.contains("<p><b>200</b> Success</p><p>Content type: <code>application/json</code></p>"));
        let claim = html.split("id=\"op-claim_keys\"").nth(1).unwrap().split("</section>").next().unwrap();
        assert!(claim.contains("<a href=\"#schema-ClaimKeysRequest\">ClaimKeysRequest</a>"), "{claim}");
        assert!(claim.contains("application/json"));
        assert!(html.contains("id=\"schema-ClaimKeysRequest\""));
        assert!(html.contains("<code>device_ids</code>"));
        assert!(html.contains("A one-time key handed out to this caller only"), "nullable references keep their text");
        let ws = html.split("<h2>WebSocket</h2>").nth(1).unwrap().split("</p><p>").next().unwrap();
        for action in wire::ws::ClientAction::NAMES {
            assert!(ws.contains(&format!("<code>{action}</code>")), "{action} in {ws}");
        }
        assert!(html.contains("<a href=\"#schema-ClientAction\">ClientAction</a>"));
        assert!(html.contains("id=\"schema-ServerEvent\""));
        let health = html.split("id=\"op-health\"").nth(1).unwrap().split("</section>").next().unwrap();
        assert!(health.contains("Auth: none"));
        assert!(!html.contains("<script"), "no scripts");
        assert!(!html.contains("http://") && !html.contains("https://"), "no third parties");
    }

    #[test]
    fn everything_from_the_document_is_escaped() {
        let doc: Value = serde_json::from_str(
            r#"{
            "openapi": "3.1.0",
            "info": {"title": "<T>", "version": "1", "description": "<script>alert(1)</script>"},
            "paths": {"/x/{a}": {"get": {"operationId": "o\"p", "summary": "<b>bold</b>",
                "parameters": [{"name": "<a>", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"<f>": {"type": "string", "description": "<d>"}}}}}},
                    "400": {"description": "Error: <c>"}}}}},
            "components": {"schemas": {"<S>": {"type": "string", "enum": ["<e>"]}}}
        }"#,
        )
        .unwrap();
        let html = render_docs(&doc);
        for raw in ["<T>", "<script>", "<b>bold", "o\"p", "<a>", "<f>", "<d>", "<c>", "<S>", "<e>"] {
            assert!(!html.contains(raw), "{raw} unescaped");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("<code>/x/{a}</code>"));
    }
}
