//! Hourly clean-up (a scheduled function): deletes uploads nothing referenced within 24 hours and retries
//! pending object deletions.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::Value;

/// What a run reports: how many objects it removed.
#[derive(Serialize)]
struct Removed {
    removed: usize,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let config = shared::config::Config::from_env()?;
    let state = shared::AppState::new(config, None).await?;
    shared::db::check_schema(&state.db).await?;
    let state = &state;
    let run = || async move {
        let removed = shared::files::cleanup(state, shared::time::now_ms() - shared::files::MAX_UNREFERENCED_MS)
            .await
            .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
        tracing::info!(removed, "clean-up done");
        Ok::<Removed, lambda_runtime::Error>(Removed { removed })
    };
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| run())).await
    } else {
        println!("{}", serde_json::to_string(&run().await?)?);
        Ok(())
    }
}
