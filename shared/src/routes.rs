//! The REST routing table: which function serves which method + path. Routers dispatch on it and
//! `/openapi.json` is generated from it, so the documentation cannot drift from what is served.

use serde_json::{Value, json};

/// One REST route.
#[derive(Debug)]
pub struct Route {
    /// Function (binary) that serves it.
    pub function: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Path template with `{param}` segments, as in `template.yaml`.
    pub path: &'static str,
    /// Operation id, also the handler name.
    pub op: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Whether a bearer token is required.
    pub auth: bool,
    /// Success status.
    pub status: u16,
    /// Query parameters it reads (also accepted in a JSON body where the contract says so).
    pub query: &'static [&'static str],
    /// Request body: `None`, `Some("json")` or `Some("multipart")`.
    pub body: Option<&'static str>,
}

const fn r(
    function: &'static str,
    method: &'static str,
    path: &'static str,
    op: &'static str,
    summary: &'static str,
    auth: bool,
    status: u16,
) -> Route {
    Route { function, method, path, op, summary, auth, status, query: &[], body: None }
}

const fn q(route: Route, query: &'static [&'static str]) -> Route {
    Route { query, ..route }
}

const fn b(route: Route, body: &'static str) -> Route {
    Route { body: Some(body), ..route }
}

/// Every REST route of every function.
pub static ROUTES: &[Route] = &[
    // auth
    b(
        r("auth", "POST", "/auth/register", "register", "Create an account and a device; returns a token", false, 201),
        "json",
    ),
    b(r("auth", "POST", "/auth/login", "login", "Log in with phone or username and password", false, 200), "json"),
    b(
        r(
            "auth",
            "PUT",
            "/users/me/password",
            "change_password",
            "Change the password; revokes every other token",
            true,
            200,
        ),
        "json",
    ),
    // users
    r("users", "GET", "/me", "get_me", "The caller's own profile (self view)", true, 200),
    q(
        r("users", "PUT", "/users/me/username", "set_username", "Set or change the username", true, 200),
        &["new_username"],
    ),
    q(
        r("users", "GET", "/users/check_availability", "check_availability", "Whether a username is free", true, 200),
        &["username"],
    ),
    q(
        r("users", "PUT", "/users/me/profile", "update_profile", "Update bio and birthdate", true, 200),
        &["bio", "birthdate"],
    ),
    b(r("users", "PUT", "/users/me/bio", "set_bio", "Set the bio", true, 200), "json"),
    b(r("users", "PUT", "/users/me/birthdate", "set_birthdate", "Set the birthdate", true, 200), "json"),
    q(
        r("users", "GET", "/users", "list_users", "List users (public view), paged by id", true, 200),
        &["limit", "after_id"],
    ),
    q(r("users", "GET", "/users/search", "search_users", "Search users by username or name", true, 200), &["query"]),
    r("users", "GET", "/users/{user_id}/profile", "get_profile", "A user's public profile", true, 200),
    r("users", "GET", "/users/me/privacy", "get_privacy", "The caller's privacy settings", true, 200),
    q(
        r("users", "PUT", "/users/me/privacy", "update_privacy", "Change privacy settings", true, 200),
        &[
            "avatar_visibility",
            "avatar_visibility_exceptions",
            "show_read_receipts",
            "show_last_seen",
            "show_online_status",
            "phone_visibility",
        ],
    ),
    q(r("users", "PUT", "/users/me/avatar-frame", "set_avatar_frame", "Choose an avatar frame", true, 200), &["frame"]),
    q(
        r("users", "PUT", "/users/me/preset-avatar", "set_preset_avatar", "Choose a preset avatar", true, 200),
        &["avatar_id"],
    ),
    b(
        r(
            "users",
            "POST",
            "/users/me/avatar",
            "upload_avatar",
            "Upload an avatar image (JPEG, PNG, GIF, WebP)",
            true,
            200,
        ),
        "multipart",
    ),
    r("users", "DELETE", "/users/me", "delete_account", "Delete the account and everything of it", true, 204),
    // files
    b(
        r("files", "POST", "/upload", "upload_file", "Upload an image (JPEG, PNG, GIF, WebP) up to 10 MiB", true, 200),
        "multipart",
    ),
    b(
        r(
            "files",
            "POST",
            "/uploads/presign",
            "presign_upload",
            "A presigned S3 PUT for a large or encrypted attachment",
            true,
            200,
        ),
        "json",
    ),
    // themes
    b(r("themes", "POST", "/users/me/themes", "create_theme", "Create a theme", true, 201), "json"),
    r("themes", "GET", "/users/me/themes", "list_themes", "The caller's themes, newest first", true, 200),
    b(r("themes", "PUT", "/users/me/themes/{theme_id}", "update_theme", "Replace a theme", true, 200), "json"),
    r("themes", "DELETE", "/users/me/themes/{theme_id}", "delete_theme", "Delete a theme", true, 204),
    // contacts
    q(
        r(
            "contacts",
            "PUT",
            "/contacts/{contact_id}/local-name",
            "set_local_name",
            "Set a private name for a user",
            true,
            200,
        ),
        &["local_name"],
    ),
    r(
        "contacts",
        "DELETE",
        "/contacts/{contact_id}/local-name",
        "delete_local_name",
        "Remove the private name",
        true,
        200,
    ),
    // keys
    b(
        r(
            "keys",
            "PUT",
            "/keys",
            "upload_keys",
            "Upload this device's identity, signed prekey and one-time keys",
            true,
            200,
        ),
        "json",
    ),
    r("keys", "GET", "/keys/count", "count_keys", "Unclaimed one-time keys of this device", true, 200),
    r("keys", "GET", "/users/{user_id}/devices", "list_devices", "A user's devices with identity keys", true, 200),
    b(
        r(
            "keys",
            "POST",
            "/keys/claim",
            "claim_keys",
            "Claim a one-time key (or the fallback) per device of a user",
            true,
            200,
        ),
        "json",
    ),
    r("keys", "DELETE", "/devices/{device_id}", "delete_device", "Remove one of the caller's devices", true, 204),
    b(r("keys", "POST", "/keys/exchange", "exchange_key", "The legacy public key of a user", true, 200), "json"),
    // chats
    r("chats", "GET", "/chats/active", "list_active_chats", "Peers with visible messages, newest first", true, 200),
    q(
        r(
            "chats",
            "GET",
            "/chats/{target_user_id}/messages",
            "list_messages",
            "A page of the conversation (ascending)",
            true,
            200,
        ),
        &["limit", "before_id", "after_id"],
    ),
    q(
        r(
            "chats",
            "DELETE",
            "/chats/{target_user_id}/messages",
            "clear_chat",
            "Clear the chat for me or for everyone",
            true,
            200,
        ),
        &["for_everyone"],
    ),
    q(
        r("chats", "DELETE", "/messages/{message_id}", "delete_message", "Delete a message", true, 200),
        &["for_everyone"],
    ),
    q(
        r(
            "chats",
            "POST",
            "/chats/{target_user_id}/mark-read",
            "mark_read",
            "Mark the peer's messages as read",
            true,
            200,
        ),
        &["up_to_id"],
    ),
    q(
        r(
            "chats",
            "GET",
            "/chats/{target_user_id}/media",
            "list_media",
            "Images of the conversation, newest first",
            true,
            200,
        ),
        &["limit", "before_id"],
    ),
    // system
    r("system", "GET", "/", "root", "Service banner", false, 200),
    r("system", "GET", "/test", "test", "Liveness check used by the client", false, 200),
    r("system", "GET", "/health", "health", "Health check", false, 200),
    r("system", "GET", "/avatars/list", "list_preset_avatars", "Preset avatars", false, 200),
    r("system", "GET", "/avatar-frames/list", "list_avatar_frames", "Avatar frames", false, 200),
    r("system", "GET", "/openapi.json", "openapi", "This OpenAPI document", false, 200),
    r("system", "GET", "/docs", "docs", "HTML page rendering the OpenAPI document", false, 200),
];

/// The OpenAPI 3.1 document of every route in [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths = serde_json::Map::new();
    for route in ROUTES {
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let schema = if name.ends_with("_id") && name != "device_id" {
                    json!({"type": "integer"})
                } else {
                    json!({"type": "string"})
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        parameters.extend(
            route.query.iter().map(|name| json!({"name": name, "in": "query", "required": false, "schema": {}})),
        );
        let mut responses = serde_json::Map::new();
        let success = if route.status == 204 {
            json!({"description": "Success, no body"})
        } else {
            json!({"description": "Success", "content": {"application/json": {"schema": {}}}})
        };
        responses.insert(route.status.to_string(), success);
        let error = json!({"$ref": "#/components/responses/Error"});
        responses.insert("422".into(), error.clone());
        if route.auth {
            responses.insert("401".into(), error.clone());
        }
        responses.insert("default".into(), error);
        let mut op = json!({
            "operationId": route.op,
            "summary": route.summary,
            "tags": [route.function],
            "parameters": parameters,
            "responses": responses,
        });
        if route.auth {
            op["security"] = json!([{"bearer": []}]);
        }
        match route.body {
            Some("json") => {
                op["requestBody"] = json!({"content": {"application/json": {"schema": {"type": "object"}}}});
            }
            Some(_) => {
                op["requestBody"] = json!({"required": true, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "properties": {"file": {"type": "string", "contentEncoding": "binary"}},
                    "required": ["file"]}}}});
            }
            None => {}
        }
        let entry = paths.entry(route.path.to_owned()).or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Messenger Backend API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["detail", "code"],
                "properties": {
                    "detail": {"type": "string"},
                    "code": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object", "properties": {
                        "field": {"type": "string"}, "message": {"type": "string"}}}}
                }
            }}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_and_path_pairs_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.method, r.path)), "duplicate route {} {}", r.method, r.path);
        }
    }

    #[test]
    fn openapi_lists_every_route() {
        let doc = openapi();
        for r in ROUTES {
            assert!(doc["paths"][r.path][r.method.to_ascii_lowercase()].is_object(), "{} {}", r.method, r.path);
        }
    }
}
