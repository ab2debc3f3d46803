//! Applies pending migrations and exits: run once per deploy (as a Lambda invocation or from a shell).

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::Value;

/// What a run reports: the migrations it applied and the schema version the database is now at.
#[derive(Serialize)]
struct Applied {
    applied: Vec<&'static str>,
    version: i64,
}

async fn apply() -> Result<Applied, lambda_runtime::Error> {
    let config = shared::config::Config::from_env()?;
    let db =
        shared::db::Db::open_with(&config.database_url, config.database_auth_token.as_ref(), config.database.clone())
            .await?;
    let applied = shared::db::migrate(&db).await?;
    tracing::info!(?applied, "migrations applied");
    Ok(Applied { applied, version: shared::db::latest_version() })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| apply())).await
    } else {
        println!("{}", serde_json::to_string(&apply().await?)?);
        Ok(())
    }
}
