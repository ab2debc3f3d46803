#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fn_admin::check_config(&shared::config::Config::from_env()?)?;
    shared::lambda::run(fn_admin::handle).await
}
