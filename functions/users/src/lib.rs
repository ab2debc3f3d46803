//! The `users` function: own profile, usernames, privacy, avatars and finding other users (API.md §4).

use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{Value, json};
use shared::auth::{AuthUser, authenticate_request};
use shared::error::OnConstraint as _;
use shared::http::{Matched, Params, match_route, multipart_file, ok};
use shared::privacy::{AvatarVisibility, PhoneVisibility, public_view, public_views, self_view};
use shared::storage::{ImageType, new_key};
use shared::users::{
    AVATAR_FRAMES, PRESET_AVATAR_IDS, USER_COLUMNS, UserRow, find, query_users, search_text, valid_username,
};
use shared::{ApiError, AppState, ratelimit};

/// Name of this function in `template.yaml` and in the routing table.
pub const FUNCTION: &str = "users";

/// Serves one request; every error becomes its contract response.
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    dispatch(state, req).await.unwrap_or_else(ApiError::into_response)
}

async fn dispatch(state: &AppState, req: Request) -> Result<Response<Body>, ApiError> {
    let m = match_route(FUNCTION, req.method(), req.uri().path())?;
    let user = authenticate_request(state, &req).await?;
    match m.route.op {
        "get_me" => get_me(state, &user).await,
        "set_username" => set_username(state, &user, &Params::query_and_body(&req)?).await,
        "check_availability" => check_availability(state, &user, &Params::query_and_body(&req)?).await,
        "update_profile" => update_profile(state, &user, &Params::query_and_body(&req)?).await,
        "set_bio" => set_text(state, &user, &Params::body(&req)?, "bio").await,
        "set_birthdate" => set_text(state, &user, &Params::body(&req)?, "birthdate").await,
        "list_users" => list_users(state, &user, &Params::query_and_body(&req)?).await,
        "search_users" => search_users(state, &user, &Params::query_and_body(&req)?).await,
        "get_profile" => get_profile(state, &user, &m).await,
        "get_privacy" => get_privacy(state, &user).await,
        "update_privacy" => update_privacy(state, &user, &Params::query_and_body(&req)?).await,
        "set_avatar_frame" => set_avatar_frame(state, &user, &Params::query_and_body(&req)?).await,
        "set_preset_avatar" => set_preset_avatar(state, &user, &Params::query_and_body(&req)?).await,
        "upload_avatar" => upload_avatar(state, &user, &req).await,
        "delete_account" => delete_account(state, &user).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

async fn load_self(state: &AppState, user: &AuthUser) -> Result<UserRow, ApiError> {
    let conn = state.db.conn().await?;
    find(&conn, user.id).await?.filter(|u| !u.is_deleted).ok_or(ApiError::InvalidToken)
}

async fn self_response(state: &AppState, user: &AuthUser) -> Result<Response<Body>, ApiError> {
    let row = load_self(state, user).await?;
    Ok(ok(&self_view(state, &row).await?))
}

/// `GET /me` — the caller's self view.
async fn get_me(state: &AppState, user: &AuthUser) -> Result<Response<Body>, ApiError> {
    self_response(state, user).await
}

fn invalid_username() -> ApiError {
    ApiError::client(
        422,
        "invalid_username",
        "Username must be 5-32 letters, digits or underscores and start with a letter",
    )
}

/// `PUT /users/me/username`
/// - rules of §4.1, unique case-insensitively; the caller's current name is a no-op; tokens are untouched
async fn set_username(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let name = params.required_str("new_username")?.trim().to_owned();
    if !valid_username(&name) {
        return Err(invalid_username());
    }
    let row = load_self(state, user).await?;
    if row.username.as_deref() != Some(name.as_str()) {
        let conn = state.db.conn().await?;
        conn.execute(
            "UPDATE user SET username = ?2, username_lower = ?3, search_text = ?4 WHERE id = ?1",
            (
                user.id,
                name.as_str(),
                name.to_lowercase(),
                search_text(Some(&name), row.first_name.as_deref(), row.last_name.as_deref()),
            ),
        )
        .await
        .on_unique(ApiError::client(400, "username_taken", "Username already taken"))?;
    }
    self_response(state, user).await
}

/// `GET /users/check_availability` — `{available, reason}`; rate-limited per user.
async fn check_availability(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let name = params.required_str("username")?.trim().to_owned();
    ratelimit::hit(&state.db, "search", &user.id.to_string(), state.config.rate_limits.search).await?;
    if !valid_username(&name) {
        return Ok(ok(&json!({"available": false, "reason": "invalid"})));
    }
    let conn = state.db.conn().await?;
    let mut rows =
        conn.query("SELECT 1 FROM user WHERE username_lower = ?1 AND id != ?2", (name.to_lowercase(), user.id)).await?;
    Ok(ok(&if rows.next().await?.is_some() {
        json!({"available": false, "reason": "taken"})
    } else {
        json!({"available": true, "reason": null})
    }))
}

/// A validated profile field: `None` = not given, `Some(None)` = clear, `Some(Some(v))` = set.
fn profile_field(params: &Params, field: &str) -> Result<Option<Option<String>>, ApiError> {
    if !params.has(field) {
        return Ok(None);
    }
    let value = params.str(field)?.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match (field, &value) {
        ("bio", Some(bio)) if bio.chars().count() > 500 => {
            Err(ApiError::field("bio", "must be at most 500 characters"))
        }
        ("birthdate", Some(date)) => {
            let parsed = time::Date::parse(date, time::macros::format_description!("[year]-[month]-[day]"))
                .map_err(|_| ApiError::field("birthdate", "must be a real date YYYY-MM-DD"))?;
            if parsed < time::macros::date!(1900 - 01 - 01) || parsed > shared::time::today() {
                return Err(ApiError::field("birthdate", "must be between 1900-01-01 and today"));
            }
            Ok(Some(value))
        }
        _ => Ok(Some(value)),
    }
}

async fn store_fields(state: &AppState, user: &AuthUser, fields: &[(&str, Option<String>)]) -> Result<(), ApiError> {
    let conn = state.db.conn().await?;
    for (field, value) in fields {
        // `field` is one of our own column names, never client input.
        let sql = format!("UPDATE user SET {field} = ?2 WHERE id = ?1");
        conn.execute(&sql, (user.id, value.clone())).await?;
    }
    Ok(())
}

/// `PUT /users/me/profile` — query `bio`, `birthdate`; only given fields change, blank clears.
async fn update_profile(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let mut fields = Vec::new();
    for name in ["bio", "birthdate"] {
        if let Some(value) = profile_field(params, name)? {
            fields.push((name, value));
        }
    }
    store_fields(state, user, &fields).await?;
    self_response(state, user).await
}

/// `PUT /users/me/bio` · `PUT /users/me/birthdate` — JSON body; missing or blank clears.
async fn set_text(state: &AppState, user: &AuthUser, params: &Params, field: &str) -> Result<Response<Body>, ApiError> {
    let value = profile_field(params, field)?.flatten();
    store_fields(state, user, &[(field, value)]).await?;
    self_response(state, user).await
}

/// `GET /users` — public views in ascending id, excluding the caller and deleted accounts; paged.
async fn list_users(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let limit = params.limit(100, 500)?;
    let after = params.int("after_id")?.unwrap_or(0);
    let conn = state.db.conn().await?;
    let sql =
        format!("SELECT {USER_COLUMNS} FROM user WHERE is_deleted = 0 AND id > ?1 AND id != ?2 ORDER BY id LIMIT ?3");
    let rows = query_users(&conn, &sql, (after, user.id, limit)).await?;
    Ok(ok(&public_views(state, &conn, user.id, &rows).await?))
}

/// `GET /users/search` — up to 20 public views whose username or names contain the query.
async fn search_users(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let query = params.str("query")?.unwrap_or_default().trim().to_lowercase();
    if query.chars().count() > 64 {
        return Err(ApiError::field("query", "must be at most 64 characters"));
    }
    ratelimit::hit(&state.db, "search", &user.id.to_string(), state.config.rate_limits.search).await?;
    if query.chars().count() < 2 {
        return Ok(ok(&Vec::<Value>::new()));
    }
    let conn = state.db.conn().await?;
    // instr() matches literally, so % and _ in the query are ordinary characters.
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM user WHERE is_deleted = 0 AND id != ?1 AND instr(search_text, ?2) > 0 \
         ORDER BY id LIMIT 20"
    );
    let rows = query_users(&conn, &sql, (user.id, query)).await?;
    Ok(ok(&public_views(state, &conn, user.id, &rows).await?))
}

/// `GET /users/{user_id}/profile`
/// - public view with the caller's local name; a deleted account is a stub for users who still have
///   messages with it and 404 for everyone else
async fn get_profile(state: &AppState, user: &AuthUser, m: &Matched) -> Result<Response<Body>, ApiError> {
    let id = m.int("user_id")?;
    let not_found = || ApiError::client(404, "user_not_found", "User not found");
    let conn = state.db.conn().await?;
    let target = find(&conn, id).await?.ok_or_else(not_found)?;
    if target.id == user.id {
        let mut view = self_view(state, &target).await?;
        view.local_name = None;
        return Ok(ok(&view));
    }
    if target.is_deleted {
        let mut rows = conn
            .query(
                "SELECT 1 FROM message WHERE deleted_for_everyone = 0 AND \
                 ((sender_id = ?1 AND receiver_id = ?2 AND hidden_for_sender = 0) OR \
                  (sender_id = ?2 AND receiver_id = ?1 AND hidden_for_receiver = 0)) LIMIT 1",
                (user.id, id),
            )
            .await?;
        if rows.next().await?.is_none() {
            return Err(not_found());
        }
    }
    Ok(ok(&public_view(state, &conn, user.id, &target).await?))
}

#[derive(Serialize)]
struct PrivacyResponse {
    avatar_visibility: &'static str,
    avatar_visibility_exceptions: Option<String>,
    show_read_receipts: bool,
    show_last_seen: bool,
    show_online_status: bool,
    phone_visibility: &'static str,
    avatar_visibility_exception_ids: Vec<i64>,
}

fn privacy_response(row: &UserRow) -> PrivacyResponse {
    let p = &row.privacy;
    PrivacyResponse {
        avatar_visibility: p.avatar_visibility.as_str(),
        avatar_visibility_exceptions: (!p.avatar_visibility_exceptions.is_empty())
            .then(|| serde_json::to_string(&p.avatar_visibility_exceptions).unwrap_or_default()),
        show_read_receipts: p.show_read_receipts,
        show_last_seen: p.show_last_seen,
        show_online_status: p.show_online_status,
        phone_visibility: p.phone_visibility.as_str(),
        avatar_visibility_exception_ids: p.avatar_visibility_exceptions.clone(),
    }
}

/// `GET /users/me/privacy`
async fn get_privacy(state: &AppState, user: &AuthUser) -> Result<Response<Body>, ApiError> {
    Ok(ok(&privacy_response(&load_self(state, user).await?)))
}

fn parse_exceptions(value: &Value) -> Result<Vec<i64>, ApiError> {
    let invalid = || ApiError::client(400, "invalid_exceptions", "Invalid avatar_visibility_exceptions format");
    let list = match value {
        Value::String(s) if s.trim().is_empty() => return Ok(Vec::new()),
        Value::String(s) => serde_json::from_str::<Value>(s).map_err(|_| invalid())?,
        other => other.clone(),
    };
    let Value::Array(items) = list else { return Err(invalid()) };
    if items.len() > 1000 {
        return Err(invalid());
    }
    let mut ids: Vec<i64> =
        items.iter().map(|v| v.as_i64().filter(|id| *id > 0).ok_or_else(invalid)).collect::<Result<_, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// `PUT /users/me/privacy`
/// - query (original client) or body; only given fields change; `[]` clears the exceptions
async fn update_privacy(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let mut updates: Vec<(&str, libsql::Value)> = Vec::new();
    if let Some(v) = params.str("avatar_visibility")? {
        let v = AvatarVisibility::parse(v.trim()).ok_or(ApiError::client(
            400,
            "invalid_privacy_value",
            "Invalid avatar_visibility value",
        ))?;
        updates.push(("avatar_visibility", v.as_str().into()));
    }
    if let Some(v) = params.str("phone_visibility")? {
        let v = PhoneVisibility::parse(v.trim()).ok_or(ApiError::client(
            400,
            "invalid_privacy_value",
            "Invalid phone_visibility value",
        ))?;
        updates.push(("phone_visibility", v.as_str().into()));
    }
    if let Some(v) = params.value("avatar_visibility_exceptions").filter(|v| !v.is_null()) {
        let ids = parse_exceptions(v)?;
        updates.push(("avatar_visibility_exceptions", serde_json::to_string(&ids).unwrap_or_default().into()));
    }
    for name in ["show_read_receipts", "show_last_seen", "show_online_status"] {
        if let Some(b) = params.bool(name)? {
            updates.push((name, b.into()));
        }
    }
    if !updates.is_empty() {
        let conn = state.db.conn().await?;
        let tx = conn.write_tx().await?;
        for (column, value) in updates {
            // `column` comes from the fixed list above.
            tx.execute(&format!("UPDATE user SET {column} = ?2 WHERE id = ?1"), (user.id, value)).await?;
        }
        tx.commit().await?;
    }
    get_privacy(state, user).await
}

/// `PUT /users/me/avatar-frame` — `none` stores and returns null.
async fn set_avatar_frame(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let frame = params.str("frame")?.unwrap_or_default();
    if !AVATAR_FRAMES.iter().any(|f| f.0 == frame) {
        return Err(ApiError::client(
            400,
            "invalid_frame",
            "Invalid frame. Must be one of: none, fire, rainbow, purple",
        ));
    }
    let stored = (frame != "none").then_some(frame);
    store_fields(state, user, &[("avatar_frame", stored.clone())]).await?;
    Ok(ok(&json!({ "avatar_frame": stored })))
}

/// Replaces the avatar columns and deletes the previous uploaded object (row and S3 object).
async fn replace_avatar(
    state: &AppState,
    user: &AuthUser,
    key: Option<&str>,
    preset: Option<&str>,
) -> Result<(), ApiError> {
    let previous = {
        let conn = state.db.conn().await?;
        let tx = conn.write_tx().await?;
        let mut rows = tx.query("SELECT avatar_key FROM user WHERE id = ?1", [user.id]).await?;
        let previous: Option<String> = rows.next().await?.map(|r| r.get(0)).transpose()?.flatten();
        drop(rows);
        tx.execute("UPDATE user SET avatar_key = ?2, avatar_preset = ?3 WHERE id = ?1", (user.id, key, preset)).await?;
        tx.commit().await?;
        previous
    };
    if let Some(old) = previous.filter(|old| Some(old.as_str()) != key) {
        shared::files::delete_if_orphaned(state, &[old]).await;
    }
    Ok(())
}

/// `PUT /users/me/preset-avatar` — stores the preset id; any uploaded avatar object is deleted.
async fn set_preset_avatar(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let id = params.str("avatar_id")?.unwrap_or_default();
    if !PRESET_AVATAR_IDS.contains(&id.trim()) {
        return Err(ApiError::client(400, "invalid_avatar_id", "Invalid avatar ID"));
    }
    replace_avatar(state, user, None, Some(id.trim())).await?;
    Ok(ok(&json!({ "avatar_url": state.preset_avatar_url(id.trim()) })))
}

/// `POST /users/me/avatar`
/// - multipart `file`, at most `MAX_AVATAR_BYTES`, JPEG/PNG/GIF/WebP by magic bytes only
/// - stored as a private S3 object; the previous one is deleted; answers a presigned URL
async fn upload_avatar(state: &AppState, user: &AuthUser, req: &Request) -> Result<Response<Body>, ApiError> {
    let part = multipart_file(req, "file")?;
    if part.data.len() > state.config.max_avatar_bytes {
        return Err(ApiError::PayloadTooLarge);
    }
    let kind = ImageType::detect(&part.data).ok_or(ApiError::client(400, "invalid_image", "File must be an image"))?;
    ratelimit::hit(&state.db, "upload", &user.id.to_string(), state.config.rate_limits.upload).await?;
    let key = new_key();
    let size = i64::try_from(part.data.len()).unwrap_or(i64::MAX);
    state.storage.put(&key, part.data, kind.mime()).await?;
    let recorded = async {
        let conn = state.db.conn().await?;
        conn.execute(
            "INSERT INTO object (key, owner_id, kind, content_type, size, created_at) VALUES (?1, ?2, 'avatar', ?3, ?4, ?5)",
            (key.as_str(), user.id, kind.mime(), size, shared::time::now_ms()),
        )
        .await?;
        drop(conn);
        replace_avatar(state, user, Some(&key), None).await
    }
    .await;
    if let Err(e) = recorded {
        // Do not leave an unreferenced object behind.
        shared::files::delete_if_orphaned(state, std::slice::from_ref(&key)).await;
        return Err(e);
    }
    Ok(ok(&json!({ "avatar_url": state.storage.presign_get(&key).await? })))
}

/// `DELETE /users/me`
/// - one transaction removes the profile, secrets, devices, connections, themes, contact rows in both
///   directions and the messages only this user could still see; the token version is bumped
/// - peers keep shared conversations (the user becomes the `is_deleted` stub, its attachments lose their URL)
/// - then every S3 object of the user is deleted (retried; leftovers are retried by the clean-up) and open
///   connections are closed; the id is never reused
async fn delete_account(state: &AppState, user: &AuthUser) -> Result<Response<Body>, ApiError> {
    let failed = |e: ApiError| match e {
        ApiError::Internal(source) => ApiError::InternalWith { detail: "Failed to delete account", source },
        other => other,
    };
    let shows_online = load_self(state, user).await?.privacy.show_online_status;
    let (keys, connections, devices, peers) = delete_account_rows(state, user.id).await.map_err(failed)?;
    tracing::info!(user_id = user.id, "account deleted");
    shared::realtime::close(state, &connections).await;
    for key in &keys {
        shared::files::purge(state, key).await;
    }
    for device in &devices {
        shared::keys::broadcast_key_change(state, user.id, device, "removed").await;
    }
    if shows_online {
        let gone =
            shared::realtime::frame("presence", json!({"user_id": user.id, "is_online": false, "last_seen": null}));
        shared::realtime::push_to_users(state, &peers, None, &gone).await;
    }
    Ok(shared::http::no_content())
}

/// (object keys, connection ids, device ids, peers) of the deleted account.
type Deleted = (Vec<String>, Vec<String>, Vec<String>, Vec<i64>);

async fn delete_account_rows(state: &AppState, user_id: i64) -> Result<Deleted, ApiError> {
    let conn = state.db.conn().await?;
    let peers = shared::realtime::peers_of(&conn, user_id).await?;
    let tx = conn.write_tx().await?;
    let collect = |sql: &'static str| {
        let tx = &tx;
        async move {
            let mut rows = tx.query(sql, [user_id]).await?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().await? {
                out.push(r.get::<String>(0)?);
            }
            Ok::<_, libsql::Error>(out)
        }
    };
    let keys = collect("SELECT key FROM object WHERE owner_id = ?1").await?;
    let connections = collect("SELECT id FROM connection WHERE user_id = ?1").await?;
    let devices = collect("SELECT id FROM device WHERE user_id = ?1").await?;
    for device in &devices {
        shared::keys::delete_device_rows(&tx, device).await?;
    }
    for sql in [
        // Pending deletion: the rows stay (without an owner that exists) until S3 confirms.
        "UPDATE object SET kind = 'deleted' WHERE owner_id = ?1",
        "DELETE FROM connection WHERE user_id = ?1",
        "DELETE FROM device WHERE user_id = ?1",
        "DELETE FROM theme WHERE user_id = ?1",
        "DELETE FROM contact WHERE owner_id = ?1 OR contact_id = ?1",
        // Messages the peer can no longer see are the user's alone.
        "DELETE FROM message WHERE sender_id = ?1 AND (hidden_for_receiver = 1 OR deleted_for_everyone = 1)",
        "DELETE FROM message WHERE receiver_id = ?1 AND (hidden_for_sender = 1 OR deleted_for_everyone = 1)",
        // Attachments the user sent are deleted with the account.
        "UPDATE message SET media_key = NULL WHERE sender_id = ?1",
        "UPDATE user SET phone = NULL, username = NULL, username_lower = NULL, first_name = NULL, last_name = NULL, \
         search_text = NULL, password_hash = NULL, public_key = NULL, avatar_key = NULL, avatar_preset = NULL, \
         avatar_frame = NULL, bio = NULL, birthdate = NULL, last_seen = NULL, avatar_visibility = 'all', \
         avatar_visibility_exceptions = '[]', show_read_receipts = 1, show_last_seen = 1, show_online_status = 1, \
         phone_visibility = 'nobody', is_admin = 0, is_deleted = 1, token_version = token_version + 1 WHERE id = ?1",
    ] {
        tx.execute(sql, [user_id]).await?;
    }
    tx.execute("DELETE FROM message_envelope WHERE user_id = ?1", [user_id]).await?;
    tx.commit().await?;
    Ok((keys, connections, devices, peers))
}
