//! Panel sessions: the `admin_session` cookie and the per-session CSRF token, both keyed by
//! `ADMIN_SESSION_SECRET` (never `JWT_SECRET`, so neither kind of credential can pass for the other).
//!
//! The cookie is `<id>.<mac>`: a random 256-bit id and its HMAC-SHA256. A forged or altered cookie fails
//! the HMAC before the database is asked; the database holds only the id's SHA-256 (a copy of it opens no
//! session) with the last-use time that gives the 8-hour idle expiry. The CSRF token is a second HMAC of the
//! id: nothing to store, valid for exactly one session.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// Name of the session cookie.
pub const COOKIE: &str = "admin_session";

/// A session is over after this long without a request.
pub const IDLE_MS: i64 = 8 * 3600 * 1000;

/// The keys of one process, from `ADMIN_SESSION_SECRET`.
#[derive(Clone)]
pub struct Keys {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

/// A session id as the cookie carries it (verified).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(***)")
    }
}

impl SessionId {
    /// A fresh random id.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// What the database stores: the id's SHA-256, hex.
    pub fn hash(&self) -> String {
        Sha256::digest(self.0.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Keys {
    /// Keys from the secret.
    pub fn new(secret: &[u8]) -> Self {
        Self { mac: Hmac::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")) }
    }

    fn tag(&self, purpose: &str, id: &SessionId) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(id.0.as_bytes());
        mac
    }

    /// The cookie value of a session.
    pub fn cookie_value(&self, id: &SessionId) -> String {
        format!("{}.{}", id.0, URL_SAFE_NO_PAD.encode(self.tag("session", id).finalize().into_bytes()))
    }

    /// The session id in a cookie value, if its HMAC is right (compared in constant time).
    pub fn verify_cookie(&self, value: &str) -> Option<SessionId> {
        let (id, tag) = value.split_once('.')?;
        if id.len() != 43 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return None;
        }
        let id = SessionId(id.to_owned());
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.tag("session", &id).verify_slice(&tag).ok()?;
        Some(id)
    }

    /// The CSRF token of a session.
    pub fn csrf_token(&self, id: &SessionId) -> String {
        URL_SAFE_NO_PAD.encode(self.tag("csrf", id).finalize().into_bytes())
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, id: &SessionId, token: &str) -> bool {
        URL_SAFE_NO_PAD.decode(token).is_ok_and(|t| self.tag("csrf", id).verify_slice(&t).is_ok())
    }
}

/// The `admin_session` cookie of a `Cookie` header value, if present.
pub fn cookie_of(header: &str) -> Option<&str> {
    header.split(';').filter_map(|pair| pair.trim().split_once('=')).find(|(name, _)| *name == COOKIE).map(|(_, v)| v)
}

/// The `Set-Cookie` value that starts a session: host-only, `/admin` only, no script access, never sent
/// cross-site, and `Secure` unless turned off for the local stack's plain HTTP. No `Max-Age`: the browser
/// forgets it when it closes, the server after 8 idle hours.
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!("{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict{}", if secure { "; Secure" } else { "" })
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!("{COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0{}", if secure { "; Secure" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> Keys {
        Keys::new(secret.as_bytes())
    }

    #[test]
    fn a_cookie_verifies_only_unaltered_and_under_its_key() {
        let k = keys("one secret of at least thirty-two bytes");
        let id = SessionId::generate().unwrap();
        let value = k.cookie_value(&id);
        assert_eq!(k.verify_cookie(&value), Some(id.clone()));
        assert_eq!(keys("another secret of thirty-two bytes!!").verify_cookie(&value), None, "other key");
        let (raw, tag) = value.split_once('.').unwrap();
        let other = SessionId::generate().unwrap();
        assert_eq!(k.verify_cookie(&format!("{}.{tag}", other.0)), None, "another id under this tag");
        assert_eq!(k.verify_cookie(raw), None, "no tag");
        assert_eq!(k.verify_cookie(&format!("{raw}.")), None, "empty tag");
        assert_eq!(k.verify_cookie(&format!("{raw}.{}", &tag[1..])), None, "cut tag");
        assert_eq!(k.verify_cookie(&format!("../x.{tag}")), None);
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let k = keys("one secret of at least thirty-two bytes");
        let (a, b) = (SessionId::generate().unwrap(), SessionId::generate().unwrap());
        assert!(k.csrf_ok(&a, &k.csrf_token(&a)));
        assert!(!k.csrf_ok(&a, &k.csrf_token(&b)), "another session's token");
        assert!(!k.csrf_ok(&a, ""));
        assert!(!k.csrf_ok(&a, "not base64!"));
        assert_ne!(k.csrf_token(&a), k.cookie_value(&a).split_once('.').unwrap().1, "token is not the cookie tag");
    }

    #[test]
    fn the_database_sees_a_hash_not_the_id() {
        let id = SessionId::generate().unwrap();
        assert_eq!(id.hash().len(), 64);
        assert!(!id.hash().contains(&id.0));
        assert_ne!(id.hash(), SessionId::generate().unwrap().hash());
    }

    #[test]
    fn the_cookie_is_found_among_others_and_set_strictly() {
        assert_eq!(cookie_of("a=1; admin_session=x.y; b=2"), Some("x.y"));
        assert_eq!(cookie_of("xadmin_session=x.y"), None);
        assert_eq!(cookie_of(""), None);
        let set = set_cookie("v", true);
        for part in ["admin_session=v", "Path=/admin", "HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(set.split("; ").any(|p| p == part), "{part} in {set}");
        }
        assert!(!set_cookie("v", false).contains("Secure"));
        assert!(clear_cookie(true).contains("Max-Age=0"));
    }
}
