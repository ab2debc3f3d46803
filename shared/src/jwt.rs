//! Access tokens (HS256 JWT, API.md §2): claims, signing and verification keys.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::ApiError;

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
}
