#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(fn_ws_message::handle).await
}
