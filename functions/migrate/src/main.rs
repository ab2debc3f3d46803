//! Applies pending migrations and exits: run once per deploy (as a Lambda invocation or from a shell).

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn apply() -> Result<Value, lambda_runtime::Error> {
    let config = shared::config::Config::from_env()?;
    let db = shared::db::Db::open(&config.database_url, config.database_auth_token.as_ref()).await?;
    let applied = shared::db::migrate(&db).await?;
    tracing::info!(?applied, "migrations applied");
    Ok(json!({ "applied": applied, "version": shared::db::latest_version() }))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| apply())).await
    } else {
        println!("{}", apply().await?);
        Ok(())
    }
}
