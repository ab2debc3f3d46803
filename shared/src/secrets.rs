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
        let client = aws_sdk_secretsmanager::Client::new(&crate::aws::load_defaults().await);
        let reads = wanted.iter().map(|(name, arn)| {
            let client = &client;
            async move {
                let out = client
                    .get_secret_value()
                    .secret_id(arn)
                    .send()
                    .await
                    // The error names the secret variable, never a value.
                    .with_context(|| format!("read {name} from Secrets Manager ({})", arn_variable(name)))?;
                let value = out
                    .secret_string()
                    .with_context(|| format!("the secret of {name} has no SecretString"))?
                    .trim()
                    .to_owned();
                anyhow::Ok((*name, value))
            }
        });
        for read in futures_util::future::join_all(reads).await {
            let (name, value) = read?;
            resolved.insert(name, value);
        }
    }
    Ok(Config::from_lookup(|name| resolved.get(name).cloned().or_else(|| std::env::var(name).ok()))?)
}
