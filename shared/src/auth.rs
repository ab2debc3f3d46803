//! Access tokens (HS256 JWT, API.md §2), password hashing and request authentication.

use std::sync::OnceLock;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user's numeric id as a decimal string.
    pub sub: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// The user's token version when issued.
    pub ver: i64,
    /// The device the token is bound to.
    pub did: String,
}

/// Signing and verification keys, built once per process.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("ttl_secs", &self.ttl_secs).finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Builds the keys from the configured secret and lifetime.
    pub fn new(config: &Config) -> Self {
        let secret = config.jwt_secret.expose().as_bytes();
        // HS256 only: any other algorithm, `none` included, fails validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 60;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs: i64::try_from(config.access_token_ttl.as_secs()).unwrap_or(86_400),
        }
    }

    /// Token lifetime in seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Issues a token for `user_id` at token version `ver`, bound to `device_id`.
    pub fn issue(&self, user_id: i64, ver: i64, device_id: &str) -> Result<String, ApiError> {
        let iat = crate::time::now_ms() / 1000;
        let claims = Claims { sub: user_id.to_string(), iat, exp: iat + self.ttl_secs, ver, did: device_id.to_owned() };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("sign token")))
    }

    /// Verifies signature, algorithm and expiry; the caller still checks the user, version and device.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|d| d.claims).map_err(|e| {
            tracing::debug!(reason = %e, "token rejected");
            ApiError::InvalidToken
        })
    }
}

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
    let mut rows = conn
        .query(
            "SELECT 1 FROM user u JOIN device d ON d.user_id = u.id \
             WHERE u.id = ?1 AND d.id = ?2 AND u.is_deleted = 0 AND u.is_banned = 0 AND u.token_version = ?3",
            (user.id, user.device_id.as_str(), user.version),
        )
        .await?;
    rows.next().await?.map(|_| ()).ok_or(ApiError::InvalidToken)
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

/// Authenticates a request by its `Authorization: Bearer` header.
pub async fn authenticate_request(state: &AppState, req: &lambda_http::Request) -> Result<AuthUser, ApiError> {
    let token = bearer_token(crate::http::authorization(req))?;
    authenticate_token(state, token).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn keys(secret: &str) -> JwtKeys {
        let cfg = Config::from_lookup(|k| match k {
            "JWT_SECRET" => Some(secret.into()),
            "DATABASE_URL" => Some("file:x".into()),
            "S3_BUCKET" => Some("b".into()),
            _ => None,
        })
        .unwrap();
        JwtKeys::new(&cfg)
    }

    const SECRET: &str = "an-adequately-long-secret-for-tests-0001";

    #[test]
    fn issued_tokens_verify_and_carry_the_claims() {
        let k = keys(SECRET);
        let token = k.issue(42, 3, "dev1").unwrap();
        let claims = k.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.ver, claims.did.as_str()), ("42", 3, "dev1"));
        assert_eq!(claims.exp - claims.iat, 1440 * 60);
    }

    #[test]
    fn tokens_signed_with_another_secret_are_rejected() {
        let token = keys("some-other-secret-that-is-long-enough!!").issue(1, 0, "d").unwrap();
        assert!(matches!(keys(SECRET).verify(&token), Err(ApiError::InvalidToken)));
    }

    #[test]
    fn alg_none_tokens_are_rejected() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = crate::time::now_ms() / 1000;
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64.encode(format!(r#"{{"sub":"1","iat":{now},"exp":{},"ver":0,"did":"d"}}"#, now + 600));
        assert!(keys(SECRET).verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn expired_tokens_are_rejected_beyond_the_leeway() {
        let k = keys(SECRET);
        let now = crate::time::now_ms() / 1000;
        let claims = Claims { sub: "1".into(), iat: now - 7200, exp: now - 120, ver: 0, did: "d".into() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.encoding).unwrap();
        assert!(k.verify(&token).is_err());
        let claims = Claims { exp: now - 30, ..claims };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.encoding).unwrap();
        assert!(k.verify(&token).is_ok(), "within the 60 s leeway");
    }

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
