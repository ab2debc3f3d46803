//! The OpenAPI 3.1 document of every endpoint, generated from the wire types (utoipa schemas) and the
//! endpoint metadata, so it cannot drift from what the server decodes and encodes.

use serde_json::{Map, Value, json};

use crate::endpoint::{EndpointInfo, Input, Output};
use crate::error::{ErrorBody, ErrorCode, FieldError};
use crate::ws::{ClientAction, ServerEvent};

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `(name, schema, required)` of every property of an object schema, following `$ref` and `allOf`.
fn properties(schema: &Value, components: &Map<String, Value>) -> Vec<(String, Value, bool)> {
    if let Some(name) = schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        return components.get(name).map(|s| properties(s, components)).unwrap_or_default();
    }
    let mut out = Vec::new();
    for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        out.extend(properties(part, components));
    }
    let required: Vec<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    for (name, prop) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        out.push((name.clone(), prop.clone(), required.contains(&name.as_str())));
    }
    out
}

/// The names of the `{param}` segments of a path template.
pub fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
}

fn object(props: &[(String, Value, bool)]) -> Value {
    let required: Vec<&str> = props.iter().filter(|p| p.2).map(|p| p.0.as_str()).collect();
    let properties: Map<String, Value> = props.iter().map(|p| (p.0.clone(), p.1.clone())).collect();
    let mut schema = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn operation(e: &EndpointInfo, components: &Map<String, Value>) -> Value {
    let request = to_value(&(e.request_schema)());
    let props = properties(&request, components);
    let in_path: Vec<&str> = path_params(e.path).collect();
    let mut parameters: Vec<Value> = in_path
        .iter()
        .map(|name| {
            let schema = props.iter().find(|p| p.0 == *name).map_or(json!({"type": "string"}), |p| p.1.clone());
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    let fields: Vec<(String, Value, bool)> =
        props.iter().filter(|p| !in_path.contains(&p.0.as_str())).cloned().collect();
    if matches!(e.input, Input::Query | Input::QueryOrJson) {
        parameters.extend(fields.iter().map(|(name, schema, required)| {
            let description = schema.get("description").cloned().unwrap_or(Value::Null);
            let mut p = json!({"name": name, "in": "query", "required": *required && e.input == Input::Query,
                "schema": schema});
            if !description.is_null() {
                p["description"] = description;
            }
            p
        }));
    }
    let mut op = json!({
        "operationId": e.operation_id,
        "summary": e.summary,
        "tags": [e.function],
        "parameters": parameters,
    });
    let body_schema = if in_path.is_empty() { request.clone() } else { object(&fields) };
    match e.input {
        Input::Json => {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": body_schema}}});
        }
        Input::QueryOrJson => {
            op["requestBody"] = json!({
                "required": false,
                "description": "The same fields as the query parameters, as a JSON object; the body wins.",
                "content": {"application/json": {"schema": body_schema}},
            });
        }
        Input::Multipart => {
            op["requestBody"] = json!({"required": true, "content": {"multipart/form-data": {"schema": body_schema}}});
        }
        Input::None | Input::Query => {}
    }
    let mut responses = Map::new();
    let response = to_value(&(e.response_schema)());
    let success = match e.output {
        Output::Json => json!({"description": "Success", "content": {"application/json": {"schema": response}}}),
        Output::Html => json!({"description": "Success", "content": {"text/html": {"schema": {"type": "string"}}}}),
        Output::Empty => json!({"description": "Success, no body"}),
    };
    responses.insert(e.status.to_string(), success);
    let mut errors: Vec<ErrorCode> = e.errors.to_vec();
    errors.extend([
        ErrorCode::ValidationError,
        ErrorCode::RateLimited,
        ErrorCode::InternalError,
        ErrorCode::ServiceUnavailable,
    ]);
    if e.auth {
        errors.extend([ErrorCode::NotAuthenticated, ErrorCode::InvalidToken]);
    }
    let mut statuses: Vec<u16> = errors.iter().map(|c| c.status()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let codes: Vec<&str> = errors.iter().filter(|c| c.status() == status).map(|c| c.as_str()).collect();
        responses.insert(
            status.to_string(),
            json!({"description": format!("Error: {}", codes.join(", ")), "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"}}}}),
        );
    }
    responses.insert("default".into(), json!({"$ref": "#/components/responses/Error"}));
    op["responses"] = Value::Object(responses);
    if e.auth {
        op["security"] = json!([{"bearer": []}]);
    }
    op
}

/// The OpenAPI 3.1 document of `endpoints` (normally [`crate::endpoints`]).
pub fn document(endpoints: &[EndpointInfo], version: &str) -> Value {
    use utoipa::{PartialSchema as _, ToSchema as _};
    let mut named = Vec::new();
    for e in endpoints {
        (e.schemas)(&mut named);
    }
    named.push((ErrorBody::name().into_owned(), ErrorBody::schema()));
    ErrorBody::schemas(&mut named);
    named.push((FieldError::name().into_owned(), FieldError::schema()));
    named.push((<ClientAction as utoipa::ToSchema>::name().into_owned(), ClientAction::schema()));
    ClientAction::schemas(&mut named);
    named.push((ServerEvent::name().into_owned(), ServerEvent::schema()));
    ServerEvent::schemas(&mut named);
    let mut components = Map::new();
    for (name, schema) in &named {
        let schema = to_value(schema);
        let previous = components.insert(name.clone(), schema.clone());
        // Two types of one name would leave one of them documented as the other.
        debug_assert!(previous.is_none_or(|p| p == schema), "two schemas are named {name}");
    }
    let mut paths = Map::new();
    for e in endpoints {
        let entry = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        entry[e.method.as_str().to_ascii_lowercase()] = operation(e, &components);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Messenger Backend API",
            "version": version,
            "description": "REST API of the end-to-end encrypted messenger backend. Errors are {\"detail\", \"code\"}; \
                            real-time is a WebSocket API (see ClientAction and ServerEvent).",
        },
        "paths": paths,
        // The WebSocket API (API Gateway routes each frame by its `action`; OpenAPI has no place for it).
        "x-websocket": {
            "routeSelectionExpression": "$request.body.action",
            "actions": ClientAction::NAMES,
            "clientFrame": {"$ref": "#/components/schemas/ClientAction"},
            "serverFrame": {"$ref": "#/components/schemas/ServerEvent"},
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/ErrorBody"}}}}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        document(&crate::endpoints(), "test")
    }

    #[test]
    fn every_operation_has_request_and_response_schemas() {
        let doc = doc();
        for e in crate::endpoints() {
            let op = &doc["paths"][e.path][e.method.as_str().to_ascii_lowercase()];
            assert_eq!(op["operationId"], e.operation_id);
            let success = &op["responses"][e.status.to_string()];
            match e.output {
                Output::Json => assert!(success["content"]["application/json"]["schema"].is_object(), "{e:?}"),
                Output::Html => assert!(success["content"]["text/html"].is_object(), "{e:?}"),
                Output::Empty => assert!(success.get("content").is_none(), "{e:?}"),
            }
            if matches!(e.input, Input::Json | Input::QueryOrJson | Input::Multipart) {
                assert!(op["requestBody"]["content"].is_object(), "{e:?}");
            }
            for name in path_params(e.path) {
                let p = op["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
                assert_eq!(p["in"], "path", "{e:?}");
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"").skip(1) {
            let target = part.split('"').next().unwrap();
            let pointer = target.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling {target}");
        }
    }

    #[test]
    fn lists_are_arrays_of_their_item_type() {
        let doc = doc();
        assert!(doc["components"]["schemas"].get("Vec").is_none());
        let users = &doc["paths"]["/users"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(users["type"], "array");
        assert!(users["items"]["properties"]["is_deleted"].is_object(), "{users}");
        let media = &doc["paths"]["/chats/{target_user_id}/media"]["get"]["responses"]["200"]["content"];
        assert!(media["application/json"]["schema"]["items"]["properties"]["media_url"].is_object());
    }

    #[test]
    fn the_websocket_actions_are_listed_with_the_frame_schemas() {
        let doc = doc();
        let ws = &doc["x-websocket"];
        assert_eq!(ws["actions"], json!(ClientAction::NAMES));
        let client = &doc["components"]["schemas"]["ClientAction"];
        let tags: Vec<&Value> =
            client["oneOf"].as_array().unwrap().iter().map(|v| &v["properties"]["action"]).collect();
        assert_eq!(tags.len(), ClientAction::NAMES.len(), "{client}");
        for name in ClientAction::NAMES {
            assert!(client.to_string().contains(&format!("\"{name}\"")), "{name} in {client}");
        }
        assert!(doc["components"]["schemas"]["ServerEvent"]["oneOf"].is_array());
    }

    #[test]
    fn path_ids_are_integers_and_bodies_exclude_path_fields() {
        let doc = doc();
        let op = &doc["paths"]["/users/me/themes/{theme_id}"]["put"];
        assert_eq!(op["parameters"][0]["schema"]["type"], "integer");
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        assert!(body["properties"].get("theme_id").is_none());
        assert!(body["properties"].get("primary_color").is_some());
    }
}
