//! The cold-start baseline: the smallest `lambda_http` function, built with the same profile and
//! dependency features as the real ones, so `messenger-bench cold-start` can show what our init adds.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, Error>(Response::builder().status(200).header("content-type", "text/plain").body(Body::from("hello"))?)
    }))
    .await
}
