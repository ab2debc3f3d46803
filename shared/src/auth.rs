//! Request authentication (API.md §2) and password hashing; the tokens themselves are [`crate::jwt`]'s.

use std::sync::OnceLock;

use crate::db::users;
use crate::error::{ApiError, ErrorCode};
pub use crate::jwt::{Claims, JwtKeys};
use crate::ratelimit::Scope;
use crate::state::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// User id.
    pub id: i64,
    /// Device the token is bound to.
    pub device_id: String,
    /// Token version the token carries.
    pub version: i64,
    /// Expiry of the token (seconds since the epoch).
    pub exp: i64,
}

/// Extracts the bearer token of an `Authorization` header value.
pub fn bearer_token(header: Option<&str>) -> Result<&str, ApiError> {
    let value = header.map(str::trim).filter(|v| !v.is_empty()).ok_or(ApiError::NotAuthenticated)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::InvalidToken);
    }
    Ok(token.trim())
}

/// Validates a token fully: signature, expiry, the user exists, is neither deleted nor banned, the token
/// version is current and the device still exists.
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let claims = state.jwt.verify(token)?;
    let user = AuthUser {
        id: claims.sub.parse().map_err(|_| ApiError::InvalidToken)?,
        device_id: claims.did,
        version: claims.ver,
        exp: claims.exp,
    };
    check_session(state, &user).await?;
    Ok(user)
}

/// Re-checks an already verified session (e.g. of an open WebSocket): not expired (60 s leeway), user
/// present, not deleted or banned, same token version, device still there.
pub async fn check_session(state: &AppState, user: &AuthUser) -> Result<(), ApiError> {
    if user.exp + 60 < crate::time::now_ms() / 1000 {
        return Err(ApiError::InvalidToken);
    }
    let conn = state.db.conn().await?;
    if users::session_valid(&conn, user.id, &user.device_id, user.version).await? {
        Ok(())
    } else {
        Err(ApiError::InvalidToken)
    }
}

/// What a login names the account by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginName {
    /// Phone digits.
    Phone(String),
    /// Lower-cased username.
    Username(String),
}

impl LoginName {
    /// Reads one text that is either (the panel's `login` field): a username starts with a letter, so
    /// anything else is a phone (its digits).
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
            Self::Username(text.to_lowercase())
        } else {
            Self::Phone(text.chars().filter(char::is_ascii_digit).collect())
        }
    }
}

/// Checks a password login, the same for the API and the operator panel (their counters are shared, so
/// guesses through either count together). Counted before the slow bcrypt check, so parallel guesses cannot
/// slip past:
/// - 30 attempts per source IP (`login_ip`);
/// - 5 per (identifier as typed, source IP) (`login_subject_ip`: the normalised phone or the lower-cased
///   username, never the account it resolves to, so its 429 says nothing about which phone belongs to which
///   username); a success clears it;
/// - 100 per account from all addresses (`login_account`, by the identifier typed when no account has it).
///   Past that cap the answer is the same 401 as a wrong password, after the same bcrypt work: a 429 there
///   would tell that two identifiers name one account.
///
/// Unknown, deleted and wrong password are the same 401 `invalid_credentials` after a dummy bcrypt check of
/// equal cost; a banned account gets 403 `account_banned` once its password is right.
pub async fn check_login(
    state: &AppState,
    source_ip: &str,
    name: LoginName,
    password: String,
) -> Result<users::LoginRecord, ApiError> {
    state.limiter.hit(&state.db, Scope::LoginIp, source_ip).await?;
    let typed = match &name {
        LoginName::Phone(digits) => format!("phone:{digits}"),
        LoginName::Username(lower) => format!("username:{lower}"),
    };
    let from_here = format!("{typed}|{source_ip}");
    state.limiter.hit(&state.db, Scope::LoginSubjectIp, &from_here).await?;
    let found = {
        let conn = state.db.conn().await?;
        match &name {
            LoginName::Phone(digits) => users::find_login_by_phone(&conn, digits).await?,
            LoginName::Username(lower) => users::find_login_by_username(&conn, lower).await?,
        }
    };
    let account = found.as_ref().map_or(typed, |f| format!("user:{}", f.id));
    let capped = match state.limiter.hit(&state.db, Scope::LoginAccount, &account).await {
        Ok(()) => false,
        Err(ApiError::RateLimited { .. }) => true,
        Err(other) => return Err(other),
    };
    let hash = found.as_ref().filter(|_| !capped).and_then(|f| f.password_hash.clone());
    let valid = verify_password(state.config.bcrypt_cost, password, hash).await?;
    let Some(account) = found.filter(|_| valid) else {
        return Err(ErrorCode::InvalidCredentials.into());
    };
    if account.is_banned {
        return Err(ErrorCode::AccountBanned.into());
    }
    state.limiter.clear(&state.db, Scope::LoginSubjectIp, &from_here).await?;
    Ok(account)
}

/// Hashes a password with bcrypt on the blocking pool.
pub async fn hash_password(cost: u32, password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password.as_bytes(), cost))
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("bcrypt task")))?
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("bcrypt hash")))
}

/// Verifies a password on the blocking pool. Without a stored hash a dummy hash of the same cost is checked,
/// so unknown accounts take as long as wrong passwords.
pub async fn verify_password(cost: u32, password: String, hash: Option<String>) -> Result<bool, ApiError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    tokio::task::spawn_blocking(move || {
        let dummy = hash.is_none();
        let hash = hash.unwrap_or_else(|| {
            DUMMY.get_or_init(|| bcrypt::hash(b"dummy password for timing", cost).unwrap_or_default()).clone()
        });
        let ok = bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false);
        ok && !dummy
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("bcrypt task")))
}

/// Whether `password` is the current password of `user_id`. Every check counts against the
/// `PASSWORD_CHANGE` budget, which all password checks under a token share (with a stolen token each one is
/// an oracle for the password); an empty or over-long password never matches. Bcrypt runs off the runtime.
pub async fn password_matches(state: &AppState, user_id: i64, password: &str) -> Result<bool, ApiError> {
    state.limiter.hit(&state.db, Scope::PasswordChange, &user_id.to_string()).await?;
    if password.is_empty() || password.len() > 72 {
        return Ok(false);
    }
    let hash = {
        let conn = state.db.conn().await?;
        users::password_hash(&conn, user_id).await?
    };
    verify_password(state.config.bcrypt_cost, password.to_owned(), hash).await
}

/// Checks the password of the token's account before a destructive action (deleting the account, replacing a
/// device's identity keys): a stolen token alone is not enough. A wrong or empty password is 403
/// `invalid_password`.
pub async fn reauthenticate(state: &AppState, user_id: i64, password: &str) -> Result<(), ApiError> {
    if password_matches(state, user_id, password).await? { Ok(()) } else { Err(ErrorCode::InvalidPassword.into()) }
}

/// Authenticates a request by its `Authorization: Bearer` header.
pub async fn authenticate_request(state: &AppState, req: &lambda_http::Request) -> Result<AuthUser, ApiError> {
    let token = bearer_token(crate::http::authorization(req))?;
    authenticate_token(state, token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        assert!(matches!(bearer_token(None), Err(ApiError::NotAuthenticated)));
        assert!(matches!(bearer_token(Some("  ")), Err(ApiError::NotAuthenticated)));
        assert!(matches!(bearer_token(Some("Basic abc")), Err(ApiError::InvalidToken)));
        assert_eq!(bearer_token(Some("bearer abc")).unwrap(), "abc");
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_hash() {
        let hash = hash_password(4, "correct horse".into()).await.unwrap();
        assert!(verify_password(4, "correct horse".into(), Some(hash.clone())).await.unwrap());
        assert!(!verify_password(4, "wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!verify_password(4, "dummy password for timing".into(), None).await.unwrap());
    }
}
