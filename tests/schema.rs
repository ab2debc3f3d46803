//! Every response the suite receives is checked against the OpenAPI document's schema for its operation and
//! status, and every WebSocket event against `wire::ws::ServerEvent`: the generated contract is held to what
//! the server really sends.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{Value, json};

struct Operation {
    method: &'static str,
    path: &'static str,
    /// Validators by status (`"200"`, `"404"`, ..., `"default"`).
    validators: HashMap<String, jsonschema::Validator>,
}

/// A path as one JSON-pointer segment inside a URI fragment (`~`, `/`, and the braces URIs forbid).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1").replace('{', "%7B").replace('}', "%7D")
}

static OPERATIONS: LazyLock<Vec<Operation>> = LazyLock::new(|| {
    let doc = shared::routes::openapi_json();
    wire::endpoints()
        .into_iter()
        .map(|e| {
            let method = e.method.as_str().to_ascii_lowercase();
            let responses = &doc["paths"][e.path][&method]["responses"];
            let mut validators = HashMap::new();
            for (status, response) in responses.as_object().into_iter().flatten() {
                let pointer = if response.get("$ref").is_some() {
                    "/components/schemas/ErrorBody".to_owned()
                } else if response["content"]["application/json"]["schema"].is_object() {
                    format!("/paths/{}/{method}/responses/{status}/content/application~1json/schema", escape(e.path))
                } else {
                    continue;
                };
                let mut schema = doc.clone();
                schema["$ref"] = json!(format!("#{pointer}"));
                let validator = jsonschema::draft202012::new(&schema)
                    .unwrap_or_else(|err| panic!("schema of {} {status}: {err}", e.operation_id));
                validators.insert(status.clone(), validator);
            }
            Operation { method: e.method.as_str(), path: e.path, validators }
        })
        .collect()
});

/// Panics unless `body` matches the documented schema of the operation `method path` for `status`.
/// Paths no operation serves (404s of unknown routes) are checked against the error schema.
pub fn check_response(method: &str, path_and_query: &str, status: u16, body: &Value) {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let operation = OPERATIONS
        .iter()
        .find(|o| o.method.eq_ignore_ascii_case(method) && shared::http::match_path(o.path, path).is_some())
        .or_else(|| OPERATIONS.iter().find(|o| shared::http::match_path(o.path, path).is_some()));
    let Some(operation) = operation else {
        let parsed: Result<wire::ErrorBody, _> = serde_json::from_value(body.clone());
        assert!(parsed.is_ok(), "{method} {path}: {status} is not an error body: {body}");
        return;
    };
    let validator = operation
        .validators
        .get(&status.to_string())
        .or_else(|| (status >= 400).then(|| operation.validators.get("default")).flatten())
        .unwrap_or_else(|| panic!("{method} {path}: status {status} is not documented for {}", operation.path));
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{method} {path} ({status}) does not match its schema: {errors:?}\nbody: {body}");
}

/// Panics unless `event` is exactly a `wire::ws::ServerEvent` (decodes, and encodes back to the same JSON).
pub fn check_event(event: &Value) {
    let decoded: wire::ws::ServerEvent =
        serde_json::from_value(event.clone()).unwrap_or_else(|e| panic!("not a ServerEvent ({e}): {event}"));
    assert_eq!(&serde_json::to_value(&decoded).unwrap(), event, "event fields differ from ServerEvent");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_that_breaks_its_schema_is_caught() {
        let bad = json!({"id": "seven", "is_deleted": false});
        let caught = std::panic::catch_unwind(|| check_response("GET", "/me", 200, &bad));
        assert!(caught.is_err(), "a string id must not pass the User schema");
        let missing = json!({"detail": "x"});
        assert!(std::panic::catch_unwind(|| check_response("GET", "/me", 401, &missing)).is_err());
        check_response("GET", "/me", 401, &json!({"detail": "Not authenticated", "code": "not_authenticated"}));
    }

    #[test]
    fn an_event_with_a_foreign_field_is_caught() {
        check_event(&json!({"event": "pong", "data": {"time": "2025-01-01T00:00:00.000Z"}}));
        let extra = json!({"event": "pong", "data": {"time": "t", "secret": 1}});
        assert!(std::panic::catch_unwind(|| check_event(&extra)).is_err());
        assert!(std::panic::catch_unwind(|| check_event(&json!({"event": "nope", "data": {}}))).is_err());
    }
}
