//! Values that are secret: they never show up in `Debug` output or logs. At the bottom of the crate, so the
//! configuration, the database client, storage and the push client can all hold one. (Reading secrets out
//! of AWS Secrets Manager is [`crate::secrets`].)

use std::fmt;

/// A secret string that never shows up in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Static credentials for a local S3 endpoint (the local stack); `None` uses the default AWS chain.
#[derive(Clone)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials").field("access_key", &self.access_key).field("secret_key", &"***").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secrets() {
        let shown = format!(
            "{:?} {:?}",
            Secret::new("hunter2"),
            StaticCredentials { access_key: "AKID".into(), secret_key: "hunter3".into() }
        );
        assert!(shown.contains("AKID") && !shown.contains("hunter2") && !shown.contains("hunter3"), "{shown}");
    }
}
