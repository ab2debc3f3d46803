//! Secrets out of the environment (issue 24 item 9): on AWS, `JWT_SECRET`, `DATABASE_AUTH_TOKEN` and
//! `ADMIN_SESSION_SECRET` live in AWS Secrets Manager, not in plain environment variables of the template,
//! where anyone allowed to read a function's configuration would see them. A function gets
//! `<NAME>_ARN` (the secret's ARN) instead of `<NAME>` and reads the value once per cold start with
//! `GetSecretValue`; its role may read only the secrets it uses. The local stack's `--processes` mode serves
//! the same API to its function processes (`AWS_ENDPOINT_URL_SECRETS_MANAGER`).
//!
//! Not the Parameters and Secrets Lambda Extension: it may be called only during invocations, not during the
//! init phase where the configuration is built.

use anyhow::Context as _;
use aws_credential_types::provider::ProvideCredentials as _;
use aws_smithy_runtime_api::client::http::HttpConnector as _;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use crate::config::Config;
/// The secrets that may come from Secrets Manager.
pub const SECRETS: &[&str] = &["JWT_SECRET", "DATABASE_AUTH_TOKEN", "ADMIN_SESSION_SECRET"];

/// The environment variable naming the secret that holds `name`.
pub fn arn_variable(name: &str) -> String {
    format!("{name}_ARN")
}

/// The configuration of this process: the environment, with each secret whose `<NAME>_ARN` is set read from
/// Secrets Manager (which wins over a `<NAME>` also set). Without any `<NAME>_ARN` no AWS call is made.
pub async fn load_config() -> anyhow::Result<Config> {
    let wanted: Vec<(&str, String)> = SECRETS
        .iter()
        .filter_map(|&name| {
            let arn = std::env::var(arn_variable(name)).ok()?;
            let arn = arn.trim();
            (!arn.is_empty()).then(|| (name, arn.to_owned()))
        })
        .collect();
    let mut resolved = std::collections::HashMap::new();
    if !wanted.is_empty() {
        let client = SecretsClient::new().await?;
        let reads = wanted.iter().map(|(name, arn)| {
            let client = &client;
            async move {
                let value = client
                    .secret_string(arn)
                    .await
                    // The error names the secret variable, never a value.
                    .with_context(|| format!("read {name} from Secrets Manager ({})", arn_variable(name)))?;
                anyhow::Ok((*name, value.trim().to_owned()))
            }
        });
        for read in futures_util::future::join_all(reads).await {
            let (name, value) = read?;
            resolved.insert(name, value);
        }
    }
    Ok(Config::from_lookup(|name| resolved.get(name).cloned().or_else(|| std::env::var(name).ok()))?)
}

/// `GetSecretValue` as one SigV4-signed JSON request: the operation this needs, without the generated SDK
/// client for all of Secrets Manager, which made every function about 0.17 MiB larger (issue 12: each
/// function's zip stays within 6 MiB). Region, credentials and endpoint come from the same default chain the
/// SDK clients use, including `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL`.
struct SecretsClient {
    endpoint: String,
    region: String,
    identity: aws_smithy_runtime_api::client::identity::Identity,
    connector: aws_smithy_http_client::Connector,
}

impl SecretsClient {
    async fn new() -> anyhow::Result<Self> {
        let defaults = crate::aws::load_defaults().await;
        let region = defaults.region().context("no AWS region configured (AWS_REGION)")?.to_string();
        let credentials = defaults
            .credentials_provider()
            .context("no AWS credentials configured")?
            .provide_credentials()
            .await
            .context("load AWS credentials")?;
        let endpoint = ["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|url| !url.trim().is_empty()))
            .unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com"));
        let connector = aws_smithy_http_client::Connector::builder().tls_provider(crate::aws::tls_provider()).build();
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region,
            identity: credentials.into(),
            connector,
        })
    }

    async fn secret_string(&self, arn: &str) -> anyhow::Result<String> {
        #[derive(serde::Serialize)]
        struct Request<'a> {
            #[serde(rename = "SecretId")]
            secret_id: &'a str,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "SecretString")]
            secret_string: Option<String>,
        }
        #[derive(serde::Deserialize, Default)]
        struct Failure {
            #[serde(rename = "__type", default)]
            kind: String,
            #[serde(alias = "Message", default)]
            message: String,
        }

        let body = serde_json::to_vec(&Request { secret_id: arn })?;
        let url = format!("{}/", self.endpoint);
        let headers =
            [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", "secretsmanager.GetSecretValue")];
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("secretsmanager")
            .time(std::time::SystemTime::now())
            .settings(aws_sigv4::http_request::SigningSettings::default())
            .build()?
            .into();
        let signable = aws_sigv4::http_request::SignableRequest::new(
            "POST",
            &url,
            headers.into_iter(),
            aws_sigv4::http_request::SignableBody::Bytes(&body),
        )?;
        let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)?.into_parts();
        let mut request = http::Request::builder().method("POST").uri(&url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut request = request.body(SdkBody::from(body))?;
        instructions.apply_to_request_http1x(&mut request);

        let response = self.connector.call(HttpRequest::try_from(request)?).await?;
        let status = response.status().as_u16();
        let bytes = ByteStream::new(response.into_body()).collect().await?.into_bytes();
        if !(200..300).contains(&status) {
            let failure: Failure = serde_json::from_slice(&bytes).unwrap_or_default();
            anyhow::bail!("GetSecretValue answered {status} {} {}", failure.kind, failure.message);
        }
        let answer: Answer =
            serde_json::from_slice(&bytes).context("GetSecretValue answered something that is not JSON")?;
        answer.secret_string.context("the secret has no SecretString")
    }
}
