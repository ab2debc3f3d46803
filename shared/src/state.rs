//! Everything a function needs, built once per cold start and borrowed by every invocation.

use anyhow::Context as _;

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::db::Db;
use crate::realtime::Realtime;
use crate::storage::{StaticCredentials, Storage};

/// Shared per-process state.
#[derive(Debug)]
pub struct AppState {
    /// Configuration.
    pub config: Config,
    /// libSQL database.
    pub db: Db,
    /// Token keys.
    pub jwt: JwtKeys,
    /// S3 bucket.
    pub storage: Storage,
    /// WebSocket push client (`None` without `WS_ENDPOINT`).
    pub realtime: Option<Realtime>,
}

impl AppState {
    /// Builds the state for `config`; `s3_credentials` are static credentials for a local S3 endpoint.
    pub async fn new(config: Config, s3_credentials: Option<StaticCredentials>) -> anyhow::Result<Self> {
        let db = Db::open(&config.database_url, config.database_auth_token.as_ref()).await.context("open database")?;
        let storage = Storage::new(&config, s3_credentials.clone()).await;
        let realtime = match &config.ws_endpoint {
            Some(endpoint) => Some(Realtime::new(endpoint, s3_credentials).await),
            None => None,
        };
        Ok(Self { jwt: JwtKeys::new(&config), db, storage, realtime, config })
    }

    /// URL of preset avatar `id`.
    pub fn preset_avatar_url(&self, id: &str) -> String {
        self.config.preset_avatar_url_template.replace("{id}", id)
    }
}
