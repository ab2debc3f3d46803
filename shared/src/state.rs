//! Everything a function needs, built once per cold start and borrowed by every invocation.

use std::sync::Arc;

use anyhow::Context as _;

use crate::config::Config;
use crate::db::Db;
use crate::jwt::JwtKeys;
use crate::push::{ApiGatewayPush, PushToConnection};
use crate::ratelimit::Limiter;
use crate::secret::StaticCredentials;
use crate::sessions::SessionCache;
use crate::storage::{ObjectStore, S3Storage};

/// Shared per-process state.
#[derive(Debug)]
pub struct AppState {
    /// Configuration.
    pub config: Config,
    /// libSQL database.
    pub db: Db,
    /// Token keys.
    pub jwt: JwtKeys,
    /// The S3 bucket.
    pub storage: Arc<dyn ObjectStore>,
    /// WebSocket push client (`None` without `WS_ENDPOINT`).
    pub push: Option<Arc<dyn PushToConnection>>,
    /// Rate limits.
    pub limiter: Limiter,
    /// Sessions of WebSocket connections looked up by this process.
    pub sessions: SessionCache,
}

impl AppState {
    /// Builds the state for `config`; `s3_credentials` are static credentials for a local S3 endpoint.
    pub async fn new(config: Config, s3_credentials: Option<StaticCredentials>) -> anyhow::Result<Self> {
        let db = Db::open_with(&config.database_url, config.database_auth_token.as_ref(), config.database.clone())
            .await
            .context("open database")?;
        let storage: Arc<dyn ObjectStore> = Arc::new(S3Storage::new(&config, s3_credentials.clone()).await);
        let push = match &config.ws_endpoint {
            Some(endpoint) => {
                Some(Arc::new(ApiGatewayPush::new(endpoint, s3_credentials).await) as Arc<dyn PushToConnection>)
            }
            None => None,
        };
        let limiter = Limiter::new(config.jwt_secret.expose().as_bytes(), config.rate_limits.clone());
        let sessions = SessionCache::new(config.ws_session_cache);
        Ok(Self { jwt: JwtKeys::new(&config), db, storage, push, limiter, sessions, config })
    }

    /// URL of preset avatar `id`.
    pub fn preset_avatar_url(&self, id: &str) -> String {
        self.config.preset_avatar_url_template.replace("{id}", id)
    }
}
