//! The `auth` function: registration, login and password change (API.md §2).

use lambda_http::{Body, Request, Response};
use serde::Serialize;
use shared::auth::{AuthUser, authenticate_request, hash_password, verify_password};
use shared::error::{FieldError, OnConstraint as _};
use shared::http::{Params, json_response, match_route, ok, source_ip};
use shared::time::now_ms;
use shared::users::{normalize_phone, search_text};
use shared::{ApiError, AppState, ratelimit};

/// Name of this function in `template.yaml` and in the routing table.
pub const FUNCTION: &str = "auth";

/// Serves one request; every error becomes its contract response.
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    dispatch(state, req).await.unwrap_or_else(ApiError::into_response)
}

async fn dispatch(state: &AppState, req: Request) -> Result<Response<Body>, ApiError> {
    let matched = match_route(FUNCTION, req.method(), req.uri().path())?;
    match matched.route.op {
        "register" => register(state, &req).await,
        "login" => login(state, &req).await,
        "change_password" => {
            let user = authenticate_request(state, &req).await?;
            change_password(state, &user, &req).await
        }
        _ => Err(ApiError::RouteNotFound),
    }
}

/// The token response of API.md §2.
#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    user_id: i64,
    device_id: String,
}

fn token_response(state: &AppState, user_id: i64, version: i64, device_id: String) -> Result<TokenResponse, ApiError> {
    Ok(TokenResponse {
        access_token: state.jwt.issue(user_id, version, &device_id)?,
        token_type: "bearer",
        expires_in: state.jwt.ttl_secs(),
        user_id,
        device_id,
    })
}

/// Collects field failures so one 422 lists all of them.
#[derive(Default)]
struct Checks(Vec<FieldError>);

impl Checks {
    fn fail(&mut self, field: &str, message: &str) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }
    fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.0)) }
    }
    fn name(&mut self, params: &Params, field: &str) -> String {
        match params.str(field) {
            Ok(Some(v)) => {
                let v = v.trim().to_owned();
                if v.is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control) {
                    self.fail(field, "must be 1-64 characters without control characters");
                }
                v
            }
            _ => {
                self.fail(field, "field required");
                String::new()
            }
        }
    }
    fn password(&mut self, params: &Params, field: &str, min: usize) -> String {
        match params.str(field) {
            Ok(Some(v)) if (min..=72).contains(&v.len()) => v,
            Ok(Some(_)) => {
                self.fail(field, &format!("must be between {min} and 72 bytes"));
                String::new()
            }
            _ => {
                self.fail(field, "field required");
                String::new()
            }
        }
    }
    fn optional(&mut self, params: &Params, field: &str, max_chars: usize) -> Option<String> {
        match params.str(field) {
            Ok(v) => {
                let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
                if v.as_ref().is_some_and(|s| s.chars().count() > max_chars || s.chars().any(char::is_control)) {
                    self.fail(field, &format!("must be at most {max_chars} characters without control characters"));
                }
                v
            }
            Err(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }
}

fn new_device_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `POST /auth/register`
/// - creates the account and its first device, returns 201 with a token bound to that device
/// - 400 `phone_taken` after normalisation; 5 registrations per hour per source IP
async fn register(state: &AppState, req: &Request) -> Result<Response<Body>, ApiError> {
    let params = Params::body(req)?;
    let mut checks = Checks::default();
    let first_name = checks.name(&params, "first_name");
    let last_name = checks.name(&params, "last_name");
    let phone = match params.str("phone") {
        Ok(Some(p)) => normalize_phone(&p).unwrap_or_else(|| {
            checks.fail("phone", "must contain 7-15 digits");
            String::new()
        }),
        _ => {
            checks.fail("phone", "field required");
            String::new()
        }
    };
    let password = checks.password(&params, "password", 8);
    let public_key = match params.str("public_key") {
        Ok(k) if k.as_ref().is_none_or(|k| k.chars().count() <= 4096) => k.filter(|k| !k.is_empty()),
        _ => {
            checks.fail("public_key", "must be a string of at most 4096 characters");
            None
        }
    };
    let device_name = checks.optional(&params, "device_name", 64);
    checks.finish()?;

    ratelimit::hit(&state.db, "register_ip", &source_ip(req), state.config.rate_limits.register_ip).await?;
    let phone_taken = ApiError::client(400, "phone_taken", "Phone number already registered");
    {
        let conn = state.db.conn().await?;
        let mut rows = conn.query("SELECT 1 FROM user WHERE phone = ?1", [phone.as_str()]).await?;
        if rows.next().await?.is_some() {
            return Err(phone_taken);
        }
    }
    let hash = hash_password(state.config.bcrypt_cost, password).await?;
    let now = now_ms();
    let device_id = new_device_id();
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let mut rows = tx
        .query(
            "INSERT INTO user (phone, first_name, last_name, search_text, password_hash, public_key, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            (
                phone.as_str(),
                first_name.as_str(),
                last_name.as_str(),
                search_text(None, Some(&first_name), Some(&last_name)),
                hash,
                public_key,
                now,
            ),
        )
        .await
        .on_unique(ApiError::client(400, "phone_taken", "Phone number already registered"))?;
    // Embedded libSQL reports the constraint when the statement steps, not when it is prepared.
    let row = rows.next().await.on_unique(phone_taken)?;
    let user_id: i64 = row.ok_or_else(|| anyhow::anyhow!("insert returned no id"))?.get(0)?;
    drop(rows);
    tx.execute(
        "INSERT INTO device (id, user_id, name, created_at, last_used_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        (device_id.as_str(), user_id, device_name, now),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user_id, "account registered");
    Ok(json_response(http::StatusCode::CREATED, &token_response(state, user_id, 0, device_id)?))
}

/// `POST /auth/login`
/// - `password` plus exactly one of `phone` (digits, phones only) or `username` (case-insensitive)
/// - the same 401 for unknown, deleted and wrong password, with a dummy bcrypt check for equal timing
/// - 5 failures per account and 30 attempts per source IP in 15 minutes
async fn login(state: &AppState, req: &Request) -> Result<Response<Body>, ApiError> {
    let params = Params::body(req)?;
    let mut checks = Checks::default();
    let password = checks.password(&params, "password", 1);
    let phone = params.str("phone").ok().flatten();
    let username = params.str("username").ok().flatten();
    if phone.is_some() == username.is_some() {
        checks.fail("phone", "give exactly one of phone or username");
    }
    let device_name = checks.optional(&params, "device_name", 64);
    let device_id = checks.optional(&params, "device_id", 64);
    checks.finish()?;

    let limits = &state.config.rate_limits;
    ratelimit::hit(&state.db, "login_ip", &source_ip(req), limits.login_ip).await?;
    let (column, subject) = match phone {
        Some(p) => ("phone", p.chars().filter(char::is_ascii_digit).collect::<String>()),
        None => ("username_lower", username.unwrap_or_default().trim().to_lowercase()),
    };
    let account_key = format!("{column}:{subject}");
    // Counted before the (slow) password check, so parallel guesses cannot slip past the limit; a success
    // clears the counter, so only failures accumulate.
    ratelimit::hit(&state.db, "login_account", &account_key, limits.login_account).await?;

    let found = {
        let conn = state.db.conn().await?;
        let sql = format!(
            "SELECT id, password_hash, token_version, is_banned FROM user WHERE {column} = ?1 AND is_deleted = 0"
        );
        let mut rows = conn.query(&sql, [subject.as_str()]).await?;
        match rows.next().await? {
            Some(r) => Some((r.get::<i64>(0)?, r.get::<Option<String>>(1)?, r.get::<i64>(2)?, r.get::<bool>(3)?)),
            None => None,
        }
    };
    let hash = found.as_ref().and_then(|f| f.1.clone());
    let valid = verify_password(state.config.bcrypt_cost, password, hash).await?;
    let Some((user_id, _, version, banned)) = found.filter(|_| valid) else {
        return Err(ApiError::client(401, "invalid_credentials", "Логин или пароль неверен"));
    };
    if banned {
        return Err(ApiError::client(403, "account_banned", "Account is banned"));
    }
    ratelimit::clear(&state.db, "login_account", &account_key).await?;

    let now = now_ms();
    let conn = state.db.conn().await?;
    let mut reused = None;
    if let Some(id) = device_id {
        let updated = conn
            .execute(
                "UPDATE device SET last_used_at = ?3, name = COALESCE(?4, name) WHERE id = ?1 AND user_id = ?2",
                (id.as_str(), user_id, now, device_name.clone()),
            )
            .await?;
        reused = (updated > 0).then_some(id);
    }
    let device_id = match reused {
        Some(id) => id,
        None => {
            let id = new_device_id();
            conn.execute(
                "INSERT INTO device (id, user_id, name, created_at, last_used_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                (id.as_str(), user_id, device_name, now),
            )
            .await?;
            id
        }
    };
    Ok(ok(&token_response(state, user_id, version, device_id)?))
}

/// `PUT /users/me/password`
/// - verifies the current password, stores the new one and bumps the token version, so every other token dies
/// - returns a fresh token for the calling device
async fn change_password(state: &AppState, user: &AuthUser, req: &Request) -> Result<Response<Body>, ApiError> {
    let params = Params::body(req)?;
    let mut checks = Checks::default();
    let current = checks.password(&params, "current_password", 1);
    let new = checks.password(&params, "new_password", 8);
    if !current.is_empty() && current == new {
        checks.fail("new_password", "must differ from the current password");
    }
    checks.finish()?;

    let hash = {
        let conn = state.db.conn().await?;
        let mut rows = conn.query("SELECT password_hash FROM user WHERE id = ?1", [user.id]).await?;
        rows.next().await?.map(|r| r.get::<Option<String>>(0)).transpose()?.flatten()
    };
    if !verify_password(state.config.bcrypt_cost, current, hash).await? {
        return Err(ApiError::client(403, "wrong_password", "Current password is incorrect"));
    }
    let new_hash = hash_password(state.config.bcrypt_cost, new).await?;
    let conn = state.db.conn().await?;
    let mut rows = conn
        .query(
            "UPDATE user SET password_hash = ?2, token_version = token_version + 1 WHERE id = ?1 RETURNING token_version",
            (user.id, new_hash),
        )
        .await?;
    let version: i64 = rows.next().await?.ok_or(ApiError::InvalidToken)?.get(0)?;
    drop(rows);
    drop(conn);
    // Every open connection was opened with a token that is now revoked: all of them close, and the
    // calling device reconnects with its new token.
    shared::realtime::close_user_connections(state, user.id, None).await;
    tracing::info!(user_id = user.id, "password changed, tokens revoked");
    Ok(ok(&token_response(state, user.id, version, user.device_id.clone())?))
}
