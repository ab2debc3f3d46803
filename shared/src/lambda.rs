//! The Lambda entry point every HTTP function's `main` calls.

use std::convert::Infallible;
use std::future::Future;

use lambda_http::{Body, Request, Response, service_fn};

use crate::config::Config;
use crate::state::AppState;

/// Logs to stderr (CloudWatch adds timestamps); `RUST_LOG` sets the filter, default `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).without_time().with_ansi(false).try_init();
}

/// Builds the state once (config, database, clients, keys), checks the schema version and serves events.
pub async fn run<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static AppState, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    init_tracing();
    let config = Config::from_env()?;
    let state = AppState::new(config, None).await?;
    crate::db::check_schema(&state.db).await?;
    let state: &'static AppState = Box::leak(Box::new(state));
    let handler = &*Box::leak(Box::new(handler));
    lambda_http::run(service_fn(move |req: Request| {
        let fut = handler(state, req);
        async move { Ok::<_, Infallible>(fut.await) }
    }))
    .await
}
