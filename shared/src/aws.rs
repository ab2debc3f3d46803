//! What the AWS SDK clients share: one HTTPS client per process and the default configuration chain.
//!
//! The SDK's `default-https-client` feature would bring rustls on aws-lc, a second cryptography library
//! next to the ring the libSQL client already links; the client here is the same hyper + rustls stack on
//! ring, so each function carries one.

use std::sync::OnceLock;

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The hyper + rustls client, built on first use: building it loads the platform's root certificates
/// (about 150 files, milliseconds of every cold start), and most invocations never open a connection —
/// presigning is local, and only the functions that push or touch objects call AWS at all.
#[derive(Debug, Default)]
struct OnFirstUse(OnceLock<SharedHttpClient>);

impl HttpClient for OnFirstUse {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.0
            .get_or_init(|| aws_smithy_http_client::Builder::new().tls_provider(tls_provider()).build_https())
            .http_connector(settings, components)
    }
}

/// rustls on ring, the one TLS stack of every HTTPS connection a function opens to AWS.
pub(crate) fn tls_provider() -> tls::Provider {
    tls::Provider::Rustls(CryptoMode::Ring)
}

/// The process's HTTP client for every SDK client (its connection pools are shared too); plain `http://`
/// endpoints (the local stack) work as well as HTTPS.
pub fn http_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT.get_or_init(|| SharedHttpClient::new(OnFirstUse::default())).clone()
}

/// The default AWS configuration chain (on Lambda: region and role credentials from the environment),
/// resolved once per process for every client.
pub async fn load_defaults() -> aws_config::SdkConfig {
    static DEFAULTS: tokio::sync::OnceCell<aws_config::SdkConfig> = tokio::sync::OnceCell::const_new();
    DEFAULTS
        .get_or_init(|| aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client()).load())
        .await
        .clone()
}
