//! The `auth` function: registration, login and password change (API.md §2).

use shared::api::{Caller, Router};
use shared::auth::{AuthUser, LoginName, check_login, hash_password};
use shared::error::{FieldError, OnConstraint as _};
use shared::ratelimit::Scope;
use shared::time::now_ms;
use shared::users::{normalize_phone, search_text};
use shared::validate::DisplayName;
use shared::{ApiError, AppState, db};
use wire::ErrorCode;
use wire::auth::{ChangePassword, ChangePasswordRequest, Login, LoginRequest, Register, RegisterRequest};
use wire::objects::TokenResponse;

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "auth";

/// Every route of this function.
pub fn router() -> Router {
    Router::new(FUNCTION).route(Register, register).route(Login, login).route(ChangePassword, change_password)
}

shared::http_function!(router);

fn token_response(state: &AppState, user_id: i64, version: i64, device_id: String) -> Result<TokenResponse, ApiError> {
    Ok(TokenResponse {
        access_token: state.jwt.issue(user_id, version, &device_id)?,
        token_type: "bearer".into(),
        expires_in: state.jwt.ttl_secs(),
        user_id,
        device_id,
    })
}

/// Collects field failures so one 422 lists all of them.
#[derive(Debug, Default)]
struct Checks(Vec<FieldError>);

impl Checks {
    fn fail(&mut self, field: &str, message: &str) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.0)) }
    }

    /// A name ([`DisplayName`]), trimmed.
    fn name(&mut self, field: &str, value: &str) -> String {
        DisplayName::parse(value).map(DisplayName::into_string).unwrap_or_else(|rule| {
            self.fail(field, rule);
            value.trim().to_owned()
        })
    }

    /// A password of `min`–72 bytes; `None` when it fails.
    fn password<'a>(&mut self, field: &str, value: &'a str, min: usize) -> Option<&'a str> {
        if (min..=72).contains(&value.len()) {
            Some(value)
        } else {
            self.fail(field, &format!("must be between {min} and 72 bytes"));
            None
        }
    }

    /// An optional name ([`DisplayName`]): blank is none.
    fn optional(&mut self, field: &str, value: Option<&str>) -> Option<String> {
        match DisplayName::parse_optional(value) {
            Ok(name) => name.map(DisplayName::into_string),
            Err(rule) => {
                self.fail(field, rule);
                None
            }
        }
    }
}

/// Creates a device for a login. At the cap (`MAX_DEVICES_PER_USER`), the least recently used devices
/// that never published keys are removed first (their tokens stop working); devices with keys are never
/// removed behind the owner's back, so an account whose every device has keys gets 409 `too_many_devices`.
async fn new_device(state: &AppState, user_id: i64, name: Option<&str>, now: i64) -> Result<String, ApiError> {
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let excess = db::devices::count_of_user(&tx, user_id).await? - state.config.max_devices_per_user + 1;
    let mut gone = Vec::new();
    let mut purges = false;
    if excess > 0 {
        let evicted = db::devices::oldest_keyless(&tx, user_id, excess).await?;
        if i64::try_from(evicted.len()).unwrap_or(0) < excess {
            return Err(ErrorCode::TooManyDevices.into());
        }
        for id in &evicted {
            gone.extend(db::connections::ids_of_device(&tx, user_id, id).await?);
            purges |= db::devices::delete_with_keys(&tx, user_id, id, now).await?;
        }
        tracing::info!(user_id, evicted = evicted.len(), "keyless devices removed at the device cap");
    }
    let id = new_device_id();
    db::devices::insert(&tx, &id, user_id, name, now).await?;
    tx.commit().await?;
    drop(conn);
    shared::realtime::close(state, &gone).await;
    if purges {
        shared::bulk::finish_queued(state, user_id).await;
    }
    Ok(id)
}

fn new_device_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `POST /auth/register`
/// - creates the account and its first device, returns 201 with a token bound to that device
/// - one 422 lists every failed field; 400 `phone_taken` after normalisation; 5 registrations per hour per
///   source IP
async fn register(state: &AppState, caller: Caller, input: RegisterRequest) -> Result<TokenResponse, ApiError> {
    let mut checks = Checks::default();
    let first_name = checks.name("first_name", &input.first_name);
    let last_name = checks.name("last_name", &input.last_name);
    let phone = normalize_phone(&input.phone).unwrap_or_else(|| {
        checks.fail("phone", "must contain 7-15 digits");
        String::new()
    });
    let password = checks.password("password", &input.password, 8).map(str::to_owned);
    let public_key = match input.public_key {
        Some(k) if k.chars().count() > 4096 => {
            checks.fail("public_key", "must be a string of at most 4096 characters");
            None
        }
        k => k.filter(|k| !k.is_empty()),
    };
    let device_name = checks.optional("device_name", input.device_name.as_deref());
    checks.finish()?;
    let password = password.unwrap_or_default();

    state.limiter.hit(&state.db, Scope::RegisterIp, &caller.source_ip).await?;
    {
        let conn = state.db.conn().await?;
        if db::users::phone_exists(&conn, &phone).await? {
            return Err(ErrorCode::PhoneTaken.into());
        }
    }
    let hash = hash_password(state.config.bcrypt_cost, password).await?;
    let now = now_ms();
    let device_id = new_device_id();
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let user = db::users::NewUser {
        phone: &phone,
        first_name: &first_name,
        last_name: &last_name,
        search_text: &search_text(None, Some(&first_name), Some(&last_name)),
        password_hash: &hash,
        public_key: public_key.as_deref(),
        created_at: now,
    };
    // A concurrent registration of the same phone loses on the unique index.
    let user_id = db::users::insert(&tx, user).await.on_unique(ErrorCode::PhoneTaken.into())?;
    db::devices::insert(&tx, &device_id, user_id, device_name.as_deref(), now).await?;
    tx.commit().await?;
    tracing::info!(user_id, "account registered");
    token_response(state, user_id, 0, device_id)
}

/// `POST /auth/login`
/// - `password` plus exactly one of `phone` (digits, phones only) or `username` (case-insensitive)
/// - the same 401 for unknown, deleted and wrong password, with a dummy bcrypt check for equal timing
/// - the limits of [`check_login`]: 5 attempts per (identifier as typed, source IP), a success clears them;
///   100 per account from all addresses (then 401, never 429); 30 per source IP; each in 15 minutes
async fn login(state: &AppState, caller: Caller, input: LoginRequest) -> Result<TokenResponse, ApiError> {
    let mut checks = Checks::default();
    let password = checks.password("password", &input.password, 1).map(str::to_owned);
    if input.phone.is_some() == input.username.is_some() {
        checks.fail("phone", "give exactly one of phone or username");
    }
    let device_name = checks.optional("device_name", input.device_name.as_deref());
    let device_id = checks.optional("device_id", input.device_id.as_deref());
    checks.finish()?;
    let password = password.unwrap_or_default();

    let name = match input.phone {
        Some(p) => LoginName::Phone(p.chars().filter(char::is_ascii_digit).collect()),
        None => LoginName::Username(input.username.unwrap_or_default().trim().to_lowercase()),
    };
    let account = check_login(state, &caller.source_ip, name, password).await?;

    let now = now_ms();
    let conn = state.db.conn().await?;
    let mut reused = None;
    if let Some(id) = device_id {
        reused = db::devices::touch(&conn, &id, account.id, device_name.as_deref(), now).await?.then_some(id);
    }
    drop(conn);
    let device_id = match reused {
        Some(id) => id,
        None => new_device(state, account.id, device_name.as_deref(), now).await?,
    };
    token_response(state, account.id, account.token_version, device_id)
}

/// `PUT /users/me/password`
/// - verifies the current password, stores the new one and bumps the token version, so every other token dies
/// - returns a fresh token for the calling device
async fn change_password(
    state: &AppState,
    user: AuthUser,
    input: ChangePasswordRequest,
) -> Result<TokenResponse, ApiError> {
    let mut checks = Checks::default();
    let current = checks.password("current_password", &input.current_password, 1);
    let new = checks.password("new_password", &input.new_password, 8);
    if current.is_some() && current == new {
        checks.fail("new_password", "must differ from the current password");
    }
    checks.finish()?;
    // Every attempt counts: with a stolen token this endpoint is an oracle for the current password.
    if !shared::auth::password_matches(state, user.id, &input.current_password).await? {
        return Err(ErrorCode::WrongPassword.into());
    }
    let new_hash = hash_password(state.config.bcrypt_cost, input.new_password).await?;
    let version = {
        let conn = state.db.conn().await?;
        db::users::set_password(&conn, user.id, &new_hash).await?.ok_or(ApiError::InvalidToken)?
    };
    // Every open connection was opened with a token that is now revoked: all of them close, and the
    // calling device reconnects with its new token.
    shared::realtime::close_user_connections(state, user.id, None).await;
    tracing::info!(user_id = user.id, "password changed, tokens revoked");
    token_response(state, user.id, version, user.device_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_auth_endpoints() {
        shared::api::assert_serves_its_endpoints(&super::router());
    }

    fn fields(checks: Checks) -> Vec<String> {
        match checks.finish() {
            Err(ApiError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            Err(other) => panic!("expected a 422, got {other:?}"),
            Ok(()) => Vec::new(),
        }
    }

    #[test]
    fn every_failed_field_is_listed_once() {
        let mut checks = Checks::default();
        assert_eq!(checks.name("first_name", "  Ada "), "Ada");
        checks.name("last_name", " ");
        assert_eq!(checks.password("password", "short", 8), None);
        assert_eq!(checks.password("current_password", "x", 1), Some("x"));
        assert_eq!(checks.optional("device_name", Some("  ")), None);
        checks.optional("device_id", Some(&"d".repeat(65)));
        assert_eq!(fields(checks), ["last_name", "password", "device_id"]);
    }

    #[test]
    fn names_and_passwords_have_their_limits() {
        let mut checks = Checks::default();
        checks.name("first_name", &"n".repeat(64));
        checks.password("password", &"é".repeat(36), 8);
        assert!(fields(checks).is_empty(), "64 characters and 72 bytes are fine");
        let mut checks = Checks::default();
        checks.name("first_name", "A\u{7}");
        checks.name("last_name", &"n".repeat(65));
        checks.password("password", &"x".repeat(73), 8);
        checks.optional("device_name", Some("a\nb"));
        assert_eq!(fields(checks), ["first_name", "last_name", "password", "device_name"]);
    }
}
