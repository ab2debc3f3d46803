//! Access tokens (HS256 JWT, API.md §2): claims, signing and verification keys.
//!
//! `jsonwebtoken` parses and validates; its cryptography is [`HS256_ONLY`], a provider that knows HMAC-SHA256
//! and nothing else (`hmac` + `sha2`, already in the build). Its bundled providers would link RSA, ECDSA and
//! EdDSA (through aws-lc or RustCrypto) into every function for tokens that never use them.

use hmac::{Hmac, Mac as _};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, new_error};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

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

/// The process's JWT cryptography: HS256 signing and constant-time verification; any other algorithm is
/// [`ErrorKind::InvalidAlgorithm`] (validation already refuses them before a key is used).
pub static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: |alg, key| match (alg, key.family()) {
        (Algorithm::HS256, AlgorithmFamily::Hmac) => Ok(Box::new(Hs256(hmac_for(key.as_bytes())?))),
        _ => Err(new_error(ErrorKind::InvalidAlgorithm)),
    },
    verifier_factory: |alg, key| match (alg, key.family()) {
        (Algorithm::HS256, AlgorithmFamily::Hmac) => Ok(Box::new(Hs256(hmac_for(key.try_get_as_bytes()?)?))),
        _ => Err(new_error(ErrorKind::InvalidAlgorithm)),
    },
    key_utils: KeyUtils::new_unimplemented(),
};

fn hmac_for(secret: &[u8]) -> jsonwebtoken::errors::Result<Hmac<Sha256>> {
    Hmac::<Sha256>::new_from_slice(secret).map_err(|_| new_error(ErrorKind::InvalidKeyFormat))
}

struct Hs256(Hmac<Sha256>);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        mac.verify_slice(signature).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
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
        // Once per process; a second call (tests build several keys) finds it installed.
        let _ = HS256_ONLY.install_default();
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
    fn other_algorithms_are_rejected_even_with_the_right_secret() {
        let k = keys(SECRET);
        let now = crate::time::now_ms() / 1000;
        let claims = Claims { sub: "1".into(), iat: now, exp: now + 600, ver: 0, did: "d".into() };
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let err = jsonwebtoken::encode(&Header::new(alg), &claims, &k.encoding).unwrap_err();
            assert_eq!(err.kind(), &ErrorKind::InvalidAlgorithm, "{alg:?} has no signer");
        }
        // A token claiming HS512, signed with HMAC-SHA512 by someone holding the secret, still fails.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = format!(
            "{}.{}",
            b64.encode(r#"{"alg":"HS512","typ":"JWT"}"#),
            b64.encode(serde_json::to_vec(&claims).unwrap())
        );
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(head.as_bytes());
        let token = format!("{head}.{}", b64.encode(mac.finalize().into_bytes()));
        assert!(matches!(k.verify(&token), Err(ApiError::InvalidToken)));
    }

    #[test]
    fn signatures_are_standard_hmac_sha256_over_header_and_payload() {
        let token = keys(SECRET).issue(5, 1, "d").unwrap();
        let (head, sig) = token.rsplit_once('.').unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(head.as_bytes());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(sig, b64.encode(mac.finalize().into_bytes()), "any HS256 library can verify our tokens");
        let header: serde_json::Value =
            serde_json::from_slice(&b64.decode(head.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "HS256");
    }

    #[test]
    fn a_tampered_signature_or_payload_is_rejected() {
        let k = keys(SECRET);
        let token = k.issue(7, 0, "d").unwrap();
        let (head, sig) = token.rsplit_once('.').unwrap();
        let mut flipped = sig.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        assert!(k.verify(&format!("{head}.{}", String::from_utf8(flipped).unwrap())).is_err());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (header, _) = head.split_once('.').unwrap();
        let now = crate::time::now_ms() / 1000;
        let forged = b64.encode(format!(r#"{{"sub":"8","iat":{now},"exp":{},"ver":0,"did":"d"}}"#, now + 600));
        assert!(k.verify(&format!("{header}.{forged}.{sig}")).is_err(), "another user's id under 7's signature");
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
