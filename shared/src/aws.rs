//! What the AWS SDK clients share: one HTTPS client per process and the default configuration chain.
//!
//! The SDK's `default-https-client` feature would bring rustls on aws-lc, a second cryptography library
//! next to the ring the libSQL client already links; the client here is the same hyper + rustls stack on
//! ring, so each function carries one.

use std::sync::OnceLock;

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The process's HTTP client for every SDK client (its connection pools are shared too); plain `http://`
/// endpoints (the local stack) work as well as HTTPS.
pub fn http_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https()
        })
        .clone()
}

/// The default AWS configuration chain (on Lambda: region and role credentials from the environment).
pub async fn load_defaults() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client()).load().await
}
