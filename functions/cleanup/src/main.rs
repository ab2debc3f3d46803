//! Hourly clean-up (a scheduled function): finishes bulk jobs a request left (a long chat clear, a killed
//! process: `shared::bulk`), deletes uploads nothing referenced within 24 hours, retries pending object
//! deletions, sweeps the bucket for objects without a row and drops group commits and welcomes kept 30 days.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::Value;

/// Of the function's 300 s timeout, how long a run works on bulk jobs.
const JOB_BUDGET: std::time::Duration = std::time::Duration::from_secs(200);

/// What a run reports: how many bulk jobs it finished, how many objects it removed and how many objects
/// without a row it swept.
#[derive(Serialize)]
struct Removed {
    jobs: usize,
    removed: usize,
    swept: usize,
    expired: u64,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let config = shared::secrets::load_config().await?;
    let state = shared::AppState::new(config, None).await?;
    shared::db::check_schema(&state.db).await?;
    let state = &state;
    let run = || async move {
        let deadline = std::time::Instant::now() + JOB_BUDGET;
        let jobs = shared::bulk::resume(state, None, deadline)
            .await
            .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
        let removed = shared::files::cleanup(state, shared::time::now_ms() - shared::files::MAX_UNREFERENCED_MS)
            .await
            .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
        let swept = shared::files::sweep_bucket(state, shared::time::now_ms() - shared::files::SWEEP_MIN_AGE_MS)
            .await
            .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
        let expired = shared::mls::expire(state, shared::time::now_ms() - shared::mls::HANDSHAKE_TTL_MS)
            .await
            .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
        tracing::info!(jobs, removed, swept, expired, "clean-up done");
        Ok::<Removed, lambda_runtime::Error>(Removed { jobs, removed, swept, expired })
    };
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| run())).await
    } else {
        println!("{}", serde_json::to_string(&run().await?)?);
        Ok(())
    }
}
