//! Typed configuration, read once per process (API.md §12 plus the database and S3 endpoints).

use std::time::Duration;

use crate::secret::Secret;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} must be set")]
    Missing(&'static str),
    /// A variable is set but cannot be used.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why its value cannot be used.
        reason: String,
    },
}

/// One rate limit: at most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Events allowed per window.
    pub max: u32,
    /// Length of the window.
    pub window: Duration,
}

impl Limit {
    const fn new(max: u32, secs: u64) -> Self {
        Self { max, window: Duration::from_secs(secs) }
    }

    fn parse(name: &'static str, text: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::Invalid { name, reason: "expected <count>/<seconds>, e.g. 5/900".into() };
        let (max, secs) = text.split_once('/').ok_or_else(invalid)?;
        let max = max.trim().parse().map_err(|_| invalid())?;
        let secs: u64 = secs.trim().parse().map_err(|_| invalid())?;
        if secs == 0 {
            return Err(invalid());
        }
        Ok(Self::new(max, secs))
    }
}

/// Rate limits of API.md §1.2; each can be overridden with `RATE_LIMIT_<NAME>=<count>/<seconds>`.
#[derive(Debug, Clone)]
pub struct RateLimits {
    /// Login attempts per account from all addresses together (`RATE_LIMIT_LOGIN_ACCOUNT`); high, so that
    /// locking the owner out takes many addresses. Past it logins answer 401, never 429.
    pub login_account: Limit,
    /// Login attempts per (phone or username as typed, source IP) (`RATE_LIMIT_LOGIN_ACCOUNT_IP`).
    pub login_account_ip: Limit,
    /// Login attempts per source IP (`RATE_LIMIT_LOGIN_IP`).
    pub login_ip: Limit,
    /// Registrations per source IP (`RATE_LIMIT_REGISTER_IP`).
    pub register_ip: Limit,
    /// Searches and username checks per user (`RATE_LIMIT_SEARCH`).
    pub search: Limit,
    /// `send_message` per user (`RATE_LIMIT_SEND_MESSAGE`).
    pub send_message: Limit,
    /// `typing` per (sender, receiver) (`RATE_LIMIT_TYPING`).
    pub typing: Limit,
    /// Key claims per caller (`RATE_LIMIT_CLAIM`).
    pub claim: Limit,
    /// Key claims per (caller, target device) (`RATE_LIMIT_CLAIM_DEVICE`).
    pub claim_device: Limit,
    /// One-time keys taken per target device, from all callers together (`RATE_LIMIT_CLAIM_TARGET`); past it
    /// claims answer with the device's fallback key.
    pub claim_target: Limit,
    /// Uploads per user (`RATE_LIMIT_UPLOAD`).
    pub upload: Limit,
    /// Password changes per user, failed or not (`RATE_LIMIT_PASSWORD_CHANGE`).
    pub password_change: Limit,
    /// Look-ups of other users per user (`RATE_LIMIT_DIRECTORY`): `GET /users`, profiles, device lists, legacy
    /// keys and contact names ([`crate::users::count_lookup`]).
    pub directory: Limit,
    /// Username changes per user (`RATE_LIMIT_USERNAME_CHANGE`).
    pub username_change: Limit,
    /// WebSocket connections per user (`RATE_LIMIT_CONNECT`); each one tells every peer.
    pub connect: Limit,
    /// `PUT /keys` per device (`RATE_LIMIT_KEY_UPLOAD`).
    pub key_upload: Limit,
    /// Frames of any kind per connection (`RATE_LIMIT_WS_FRAMES`).
    pub ws_frames: Limit,
    /// Authenticated REST calls that change something (every method but `GET`) per user and process
    /// (`RATE_LIMIT_REST_WRITE`), counted in memory before the route's own limits.
    pub rest_write: Limit,
    /// Authenticated `GET` calls per user and process (`RATE_LIMIT_REST_READ`), counted in memory.
    pub rest_read: Limit,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            login_account: Limit::new(100, 15 * 60),
            login_account_ip: Limit::new(5, 15 * 60),
            login_ip: Limit::new(30, 15 * 60),
            register_ip: Limit::new(5, 3600),
            search: Limit::new(30, 60),
            send_message: Limit::new(20, 10),
            typing: Limit::new(1, 1),
            claim: Limit::new(60, 60),
            claim_device: Limit::new(10, 3600),
            claim_target: Limit::new(30, 3600),
            upload: Limit::new(60, 3600),
            password_change: Limit::new(5, 15 * 60),
            directory: Limit::new(120, 60),
            username_change: Limit::new(10, 3600),
            connect: Limit::new(30, 60),
            key_upload: Limit::new(60, 3600),
            ws_frames: Limit::new(60, 10),
            rest_write: Limit::new(120, 60),
            rest_read: Limit::new(600, 60),
        }
    }
}

/// The whole configuration of a function (or of the local stack).
#[derive(Debug, Clone)]
pub struct Config {
    /// HS256 secret for access tokens (`JWT_SECRET`, ≥ 32 bytes, required).
    pub jwt_secret: Secret,
    /// Access-token lifetime (`ACCESS_TOKEN_EXPIRE_MINUTES`, default 1440).
    pub access_token_ttl: Duration,
    /// bcrypt work factor (`BCRYPT_COST`, default 12).
    pub bcrypt_cost: u32,
    /// libSQL database: `file:path` (embedded) or `libsql://…`/`https://…` (`DATABASE_URL`).
    pub database_url: String,
    /// Token for a remote libSQL server (`DATABASE_AUTH_TOKEN`).
    pub database_auth_token: Option<Secret>,
    /// How the process uses the database: the server namespace (`DATABASE_NAMESPACE`), remote
    /// connections at once (`DATABASE_MAX_CONCURRENCY`, default 16) and how long an overloaded database is
    /// retried before a 503 (`DATABASE_RETRY_BUDGET_MS`, default 2000).
    pub database: crate::db::DbOptions,
    /// Private bucket for all user files (`S3_BUCKET`, required).
    pub s3_bucket: String,
    /// Custom S3 endpoint, e.g. the local stack's (`S3_ENDPOINT`); unset on AWS.
    pub s3_endpoint: Option<String>,
    /// Lifetime of presigned GET URLs (`PRESIGNED_GET_TTL_SECONDS`, default 3600).
    pub presigned_get_ttl: Duration,
    /// Lifetime of presigned PUT URLs (`PRESIGNED_PUT_TTL_SECONDS`, default 900).
    pub presigned_put_ttl: Duration,
    /// Largest avatar upload (`MAX_AVATAR_BYTES`, default and at most [`MAX_DIRECT_UPLOAD_BYTES`]).
    pub max_avatar_bytes: usize,
    /// Devices one account may have (`MAX_DEVICES_PER_USER`, default 20).
    pub max_devices_per_user: i64,
    /// Largest `/upload` file (`MAX_UPLOAD_BYTES`, default and at most [`MAX_DIRECT_UPLOAD_BYTES`]).
    pub max_upload_bytes: usize,
    /// Largest presigned upload (`MAX_PRESIGNED_UPLOAD_BYTES`, default 100 MiB).
    pub max_presigned_upload_bytes: u64,
    /// Allowed CORS origins (`CORS_ALLOWED_ORIGINS`, comma-separated, default none).
    pub cors_allowed_origins: Vec<String>,
    /// URL of preset avatar `{id}` (`PRESET_AVATAR_URL_TEMPLATE`).
    pub preset_avatar_url_template: String,
    /// API Gateway management endpoint for `PostToConnection` (`WS_ENDPOINT`).
    pub ws_endpoint: Option<String>,
    /// How long a process trusts a connection's session it looked up (`WS_SESSION_CACHE_SECONDS`, 0–60).
    pub ws_session_cache: Duration,
    /// Sends that may wait for the database writer in one process; past it a send is refused at once with
    /// `service_unavailable` (`SEND_QUEUE_LIMIT`, default 64).
    pub send_queue_limit: usize,
    /// Rate limits (`RATE_LIMIT_*`).
    pub rate_limits: RateLimits,
    /// The operator panel (API.md §11.2).
    pub admin: AdminConfig,
}

/// The operator panel's settings.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Whether `/admin` is served at all (`ADMIN_ENABLED`, default true); when false every path is a 404.
    pub enabled: bool,
    /// Key signing the panel's session cookies and CSRF tokens (`ADMIN_SESSION_SECRET`, ≥ 32 bytes, not
    /// `JWT_SECRET`); the panel refuses to serve without it.
    pub session_secret: Option<Secret>,
    /// Whether the session cookie carries `Secure` (`ADMIN_COOKIE_SECURE`, default true; the local stack
    /// serves plain HTTP and turns it off).
    pub cookie_secure: bool,
}

/// The largest file a direct upload (`POST /upload`, `POST /users/me/avatar`) takes: a binary body reaches
/// Lambda base64-encoded inside the event, which must fit Lambda's 6 MB payload. Larger files go through
/// `POST /uploads/presign`. `MAX_AVATAR_BYTES` and `MAX_UPLOAD_BYTES` can lower it, not raise it.
pub const MAX_DIRECT_UPLOAD_BYTES: usize = 4 << 20;

fn direct_upload_limit(configured: u64) -> usize {
    usize::try_from(configured).unwrap_or(usize::MAX).min(MAX_DIRECT_UPLOAD_BYTES)
}

/// The longest presigned PUT lifetime (`PRESIGNED_PUT_TTL_SECONDS`): one hour, far inside the clean-up's
/// [`crate::files::MAX_UNREFERENCED_MS`], so an upload URL never outlives its object row.
pub const MAX_PRESIGNED_PUT_TTL_SECONDS: u64 = 3600;

/// The preset avatar URL of the original backend.
pub const DEFAULT_PRESET_AVATAR_URL_TEMPLATE: &str = "https://api.dicebear.com/7.x/avataaars/svg?seed={id}";

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (name → value); empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            get(name).map_or(Ok(default), |v| {
                v.parse().map_err(|_| ConfigError::Invalid { name, reason: "expected a non-negative integer".into() })
            })
        };

        let jwt_secret = get("JWT_SECRET").ok_or(ConfigError::Missing("JWT_SECRET"))?;
        if jwt_secret.len() < 32 {
            return Err(ConfigError::Invalid { name: "JWT_SECRET", reason: "must be at least 32 bytes".into() });
        }
        let bcrypt_cost = number("BCRYPT_COST", 12)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(ConfigError::Invalid { name: "BCRYPT_COST", reason: "must be between 4 and 31".into() });
        }
        let minutes = number("ACCESS_TOKEN_EXPIRE_MINUTES", 1440)?;
        if minutes == 0 {
            return Err(ConfigError::Invalid {
                name: "ACCESS_TOKEN_EXPIRE_MINUTES",
                reason: "must be positive".into(),
            });
        }

        let mut rate_limits = RateLimits::default();
        for (name, slot) in [
            ("RATE_LIMIT_LOGIN_ACCOUNT", &mut rate_limits.login_account),
            ("RATE_LIMIT_LOGIN_IP", &mut rate_limits.login_ip),
            ("RATE_LIMIT_REGISTER_IP", &mut rate_limits.register_ip),
            ("RATE_LIMIT_SEARCH", &mut rate_limits.search),
            ("RATE_LIMIT_SEND_MESSAGE", &mut rate_limits.send_message),
            ("RATE_LIMIT_TYPING", &mut rate_limits.typing),
            ("RATE_LIMIT_CLAIM", &mut rate_limits.claim),
            ("RATE_LIMIT_CLAIM_DEVICE", &mut rate_limits.claim_device),
            ("RATE_LIMIT_CLAIM_TARGET", &mut rate_limits.claim_target),
            ("RATE_LIMIT_UPLOAD", &mut rate_limits.upload),
            ("RATE_LIMIT_LOGIN_ACCOUNT_IP", &mut rate_limits.login_account_ip),
            ("RATE_LIMIT_PASSWORD_CHANGE", &mut rate_limits.password_change),
            ("RATE_LIMIT_DIRECTORY", &mut rate_limits.directory),
            ("RATE_LIMIT_USERNAME_CHANGE", &mut rate_limits.username_change),
            ("RATE_LIMIT_CONNECT", &mut rate_limits.connect),
            ("RATE_LIMIT_KEY_UPLOAD", &mut rate_limits.key_upload),
            ("RATE_LIMIT_WS_FRAMES", &mut rate_limits.ws_frames),
            ("RATE_LIMIT_REST_WRITE", &mut rate_limits.rest_write),
            ("RATE_LIMIT_REST_READ", &mut rate_limits.rest_read),
        ] {
            if let Some(v) = get(name) {
                *slot = Limit::parse(name, &v)?;
            }
        }

        let flag = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            get(name).map_or(Ok(default), |v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(ConfigError::Invalid { name, reason: "expected true or false".into() }),
            })
        };
        let admin_secret = get("ADMIN_SESSION_SECRET");
        if let Some(secret) = &admin_secret {
            let reason = if secret.len() < 32 {
                "must be at least 32 bytes"
            } else if *secret == jwt_secret {
                "must differ from JWT_SECRET"
            } else {
                ""
            };
            if !reason.is_empty() {
                return Err(ConfigError::Invalid { name: "ADMIN_SESSION_SECRET", reason: reason.into() });
            }
        }
        let admin = AdminConfig {
            enabled: flag("ADMIN_ENABLED", true)?,
            session_secret: admin_secret.map(Secret::new),
            cookie_secure: flag("ADMIN_COOKIE_SECURE", true)?,
        };

        // A presigned upload must end long before the clean-up may purge its row (24 h unreferenced), so a
        // PUT can never re-create an object whose row is gone.
        let put_ttl = number("PRESIGNED_PUT_TTL_SECONDS", 900)?;
        if put_ttl > MAX_PRESIGNED_PUT_TTL_SECONDS {
            return Err(ConfigError::Invalid {
                name: "PRESIGNED_PUT_TTL_SECONDS",
                reason: format!("must be at most {MAX_PRESIGNED_PUT_TTL_SECONDS}"),
            });
        }

        let template = get("PRESET_AVATAR_URL_TEMPLATE").unwrap_or_else(|| DEFAULT_PRESET_AVATAR_URL_TEMPLATE.into());
        if !template.contains("{id}") {
            return Err(ConfigError::Invalid {
                name: "PRESET_AVATAR_URL_TEMPLATE",
                reason: "must contain {id}".into(),
            });
        }

        // API.md §7.1: tokens are re-checked on every action, cached at most 60 s.
        let session_cache = number("WS_SESSION_CACHE_SECONDS", 60)?;
        if session_cache > 60 {
            return Err(ConfigError::Invalid { name: "WS_SESSION_CACHE_SECONDS", reason: "must be at most 60".into() });
        }

        Ok(Self {
            jwt_secret: Secret::new(jwt_secret),
            access_token_ttl: Duration::from_secs(minutes * 60),
            bcrypt_cost: u32::try_from(bcrypt_cost).unwrap_or(12),
            database_url: get("DATABASE_URL").ok_or(ConfigError::Missing("DATABASE_URL"))?,
            database_auth_token: get("DATABASE_AUTH_TOKEN").map(Secret::new),
            database: crate::db::DbOptions {
                namespace: get("DATABASE_NAMESPACE"),
                max_concurrency: usize::try_from(number("DATABASE_MAX_CONCURRENCY", 16)?.max(1)).unwrap_or(16),
                retry_budget: Duration::from_millis(number("DATABASE_RETRY_BUDGET_MS", 2000)?),
                ..crate::db::DbOptions::default()
            },
            s3_bucket: get("S3_BUCKET").ok_or(ConfigError::Missing("S3_BUCKET"))?,
            s3_endpoint: get("S3_ENDPOINT"),
            presigned_get_ttl: Duration::from_secs(number("PRESIGNED_GET_TTL_SECONDS", 3600)?.max(60)),
            presigned_put_ttl: Duration::from_secs(put_ttl.max(60)),
            max_avatar_bytes: direct_upload_limit(number("MAX_AVATAR_BYTES", MAX_DIRECT_UPLOAD_BYTES as u64)?),
            max_devices_per_user: i64::try_from(number("MAX_DEVICES_PER_USER", 20)?.max(1)).unwrap_or(i64::MAX),
            max_upload_bytes: direct_upload_limit(number("MAX_UPLOAD_BYTES", MAX_DIRECT_UPLOAD_BYTES as u64)?),
            max_presigned_upload_bytes: number("MAX_PRESIGNED_UPLOAD_BYTES", 100 << 20)?,
            cors_allowed_origins: get("CORS_ALLOWED_ORIGINS")
                .map(|v| v.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect())
                .unwrap_or_default(),
            preset_avatar_url_template: template,
            ws_endpoint: get("WS_ENDPOINT"),
            ws_session_cache: Duration::from_secs(session_cache),
            send_queue_limit: usize::try_from(number("SEND_QUEUE_LIMIT", 64)?.max(1)).unwrap_or(usize::MAX),
            rate_limits,
            admin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] =
        [("JWT_SECRET", "0123456789abcdef0123456789abcdef"), ("DATABASE_URL", "file:x.db"), ("S3_BUCKET", "b")];

    /// The configuration of [`BASE`] plus `pairs`.
    fn with(pairs: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut all = BASE.to_vec();
        all.extend_from_slice(pairs);
        Config::from_lookup(lookup(&all))
    }

    #[test]
    fn missing_jwt_secret_refuses_to_start() {
        let err = Config::from_lookup(lookup(&BASE[1..])).unwrap_err();
        assert!(matches!(err, ConfigError::Missing("JWT_SECRET")));
    }

    #[test]
    fn short_jwt_secret_is_rejected() {
        let err = Config::from_lookup(lookup(&[("JWT_SECRET", "short"), BASE[1], BASE[2]])).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "JWT_SECRET", .. }));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_lookup(lookup(&BASE)).unwrap();
        assert_eq!(c.access_token_ttl, Duration::from_secs(1440 * 60));
        assert_eq!(c.bcrypt_cost, 12);
        assert_eq!(c.max_avatar_bytes, 4 << 20);
        assert_eq!(c.max_upload_bytes, 4 << 20);
        // API.md §1.2 says 5 failures per phone or username; issue 10 made that per (account, address) and
        // added a much higher per-account limit, so an owner cannot be locked out from one address.
        assert_eq!(c.rate_limits.login_account_ip, Limit::new(5, 900));
        assert_eq!(c.rate_limits.login_account, Limit::new(100, 900));
        assert!(c.cors_allowed_origins.is_empty());
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "secrets never appear in Debug output");
    }

    #[test]
    fn the_admin_secret_is_long_and_not_the_jwt_secret() {
        let c = Config::from_lookup(lookup(&BASE)).unwrap();
        assert!(c.admin.enabled && c.admin.cookie_secure && c.admin.session_secret.is_none());
        for bad in ["short", BASE[0].1] {
            let err = with(&[("ADMIN_SESSION_SECRET", bad)]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { name: "ADMIN_SESSION_SECRET", .. }), "{bad}");
        }
        let c =
            with(&[("ADMIN_SESSION_SECRET", "fedcba9876543210fedcba9876543210"), ("ADMIN_ENABLED", "false")]).unwrap();
        assert!(!c.admin.enabled && c.admin.session_secret.is_some());
        assert!(!format!("{c:?}").contains("fedcba9876543210"));
        assert!(with(&[("ADMIN_ENABLED", "maybe")]).is_err());
    }

    #[test]
    fn a_presigned_put_cannot_outlive_the_clean_up_window() {
        let ttl = |value| with(&[("PRESIGNED_PUT_TTL_SECONDS", value)]);
        assert_eq!(ttl("3600").unwrap().presigned_put_ttl, Duration::from_secs(3600));
        let err = ttl("3601").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "PRESIGNED_PUT_TTL_SECONDS", .. }), "{err}");
        assert!(
            Duration::from_secs(MAX_PRESIGNED_PUT_TTL_SECONDS).as_millis() * 2
                < crate::files::MAX_UNREFERENCED_MS as u128
        );
    }

    #[test]
    fn sessions_are_cached_at_most_the_contracts_60_seconds() {
        let cache = |value| with(&[("WS_SESSION_CACHE_SECONDS", value)]);
        assert_eq!(Config::from_lookup(lookup(&BASE)).unwrap().ws_session_cache, Duration::from_secs(60));
        assert_eq!(cache("0").unwrap().ws_session_cache, Duration::ZERO);
        let err = cache("61").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "WS_SESSION_CACHE_SECONDS", .. }), "{err}");
    }

    #[test]
    fn rate_limits_can_be_overridden() {
        let mut pairs = BASE.to_vec();
        pairs.push(("RATE_LIMIT_REGISTER_IP", "100/60"));
        let c = Config::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(c.rate_limits.register_ip, Limit::new(100, 60));
        pairs.push(("RATE_LIMIT_SEARCH", "nonsense"));
        assert!(Config::from_lookup(lookup(&pairs)).is_err());
    }
}
