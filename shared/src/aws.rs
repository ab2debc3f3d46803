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

/// An SDK client made from its configuration on first use, once per process. Making one parses the SDK's
/// partition table (JSON, with a regular expression per partition) and assembles its runtime plugins; a
/// function that never touches S3 or pushes in a sandbox's life need not pay for that before its first event.
#[derive(Debug, Clone)]
pub(crate) struct OnFirstCall<Conf, Client> {
    conf: Conf,
    client: OnceLock<Client>,
    make: fn(Conf) -> Client,
}

impl<Conf: Clone, Client> OnFirstCall<Conf, Client> {
    pub(crate) fn new(conf: Conf, make: fn(Conf) -> Client) -> Self {
        Self { conf, client: OnceLock::new(), make }
    }

    pub(crate) fn get(&self) -> &Client {
        self.client.get_or_init(|| (self.make)(self.conf.clone()))
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
///
/// When the environment holds the region and a key pair, as Lambda's always does, those are what the
/// default chain would pick first, and they are passed in directly: the rest of the chain (the
/// instance-metadata client, the profile and web-identity providers with their STS client) was built at every
/// cold start for providers that are never asked (with the SDK clients, now built on first use, about 0.3 ms).
/// Without them (a laptop with an SSO profile, a container role) the full chain runs as before.
pub async fn load_defaults() -> aws_config::SdkConfig {
    static DEFAULTS: tokio::sync::OnceCell<aws_config::SdkConfig> = tokio::sync::OnceCell::const_new();
    DEFAULTS
        .get_or_init(|| {
            let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client());
            if set("AWS_REGION") || set("AWS_DEFAULT_REGION") {
                loader = loader.region(aws_config::environment::EnvironmentVariableRegionProvider::new());
            }
            if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
                loader =
                    loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
            }
            loader.load()
        })
        .await
        .clone()
}
