#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::init_tracing();
    let config = shared::secrets::load_config().await?;
    fn_admin::check_config(&config)?;
    shared::lambda::run_with(config, fn_admin::handle).await
}
