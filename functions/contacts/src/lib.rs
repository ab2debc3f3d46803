//! The `contacts` function: private names a user gives other users (API.md §5.8).

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::auth::{AuthUser, authenticate_request};
use shared::http::{Matched, Params, match_route, ok};
use shared::{ApiError, AppState};

/// Name of this function in `template.yaml` and in the routing table.
pub const FUNCTION: &str = "contacts";

/// Serves one request; every error becomes its contract response.
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    dispatch(state, req).await.unwrap_or_else(ApiError::into_response)
}

async fn dispatch(state: &AppState, req: Request) -> Result<Response<Body>, ApiError> {
    let m = match_route(FUNCTION, req.method(), req.uri().path())?;
    let user = authenticate_request(state, &req).await?;
    match m.route.op {
        "set_local_name" => set_local_name(state, &user, &m, &Params::query_and_body(&req)?).await,
        "delete_local_name" => delete_local_name(state, &user, &m).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

/// `PUT /contacts/{contact_id}/local-name`
/// - trimmed, at most 64 characters, empty stores null; 404 for unknown or deleted users, then 400 for oneself
async fn set_local_name(
    state: &AppState,
    user: &AuthUser,
    m: &Matched,
    params: &Params,
) -> Result<Response<Body>, ApiError> {
    let contact = m.int("contact_id")?;
    let name = params.str("local_name")?.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 64 || n.chars().any(char::is_control)) {
        return Err(ApiError::field("local_name", "must be at most 64 characters"));
    }
    let conn = state.db.conn().await?;
    let mut rows = conn.query("SELECT 1 FROM user WHERE id = ?1 AND is_deleted = 0", [contact]).await?;
    if rows.next().await?.is_none() {
        return Err(ApiError::client(404, "contact_not_found", "Contact not found"));
    }
    drop(rows);
    if contact == user.id {
        return Err(ApiError::client(400, "self_contact", "Cannot set local name for yourself"));
    }
    conn.execute(
        "INSERT INTO contact (owner_id, contact_id, local_name) VALUES (?1, ?2, ?3) \
         ON CONFLICT (owner_id, contact_id) DO UPDATE SET local_name = excluded.local_name",
        (user.id, contact, name.clone()),
    )
    .await?;
    Ok(ok(&json!({"contact_id": contact, "local_name": name})))
}

/// `DELETE /contacts/{contact_id}/local-name` — 200 also when nothing existed.
async fn delete_local_name(state: &AppState, user: &AuthUser, m: &Matched) -> Result<Response<Body>, ApiError> {
    let contact = m.int("contact_id")?;
    let conn = state.db.conn().await?;
    conn.execute("DELETE FROM contact WHERE owner_id = ?1 AND contact_id = ?2", (user.id, contact)).await?;
    Ok(ok(&json!({"message": "Local name deleted"})))
}
