//! User files in one private S3 bucket, handed out as presigned URLs (API.md §6).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use crate::config::Config;

/// Presigned GET URLs are signed at the start of a 15-minute window, so a viewer gets the same URL
/// within the window and clients can cache by URL.
const SIGNING_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Static credentials for a local S3 endpoint (the local stack); `None` uses the default AWS chain.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

/// A presigned upload: the URL and the headers the client must send with the PUT.
#[derive(Debug, Clone)]
pub struct PresignedPut {
    /// Where to PUT.
    pub url: String,
    /// Headers that are part of the signature.
    pub headers: Vec<(String, String)>,
}

/// The S3 bucket of the deployment, with a client built once per process.
#[derive(Debug, Clone)]
pub struct Storage {
    client: aws_sdk_s3::Client,
    bucket: String,
    get_ttl: Duration,
    put_ttl: Duration,
}

impl Storage {
    /// Builds the client: the default AWS chain on Lambda, or static credentials for a local endpoint.
    pub async fn new(config: &Config, credentials: Option<StaticCredentials>) -> Self {
        let mut builder = match credentials {
            Some(c) => aws_sdk_s3::config::Builder::new()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    c.access_key,
                    c.secret_key,
                    None,
                    None,
                    "static",
                )),
            None => {
                let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                aws_sdk_s3::config::Builder::from(&sdk)
            }
        };
        if let Some(endpoint) = &config.s3_endpoint {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: config.s3_bucket.clone(),
            get_ttl: config.presigned_get_ttl,
            put_ttl: config.presigned_put_ttl,
        }
    }

    /// The underlying client (for tools and tests).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Lifetime of presigned GET URLs.
    pub fn get_ttl(&self) -> Duration {
        self.get_ttl
    }

    /// Lifetime of presigned PUT URLs.
    pub fn put_ttl(&self) -> Duration {
        self.put_ttl
    }

    /// Stores an object.
    pub async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> anyhow::Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .context("s3 put_object")?;
        Ok(())
    }

    /// Deletes an object (deleting a missing object succeeds, as in S3).
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.client.delete_object().bucket(&self.bucket).key(key).send().await.context("s3 delete_object")?;
        Ok(())
    }

    /// A presigned GET URL, signed at the start of the current 15-minute window.
    pub async fn presign_get(&self, key: &str) -> anyhow::Result<String> {
        self.presign_get_as(key, false).await
    }

    /// A presigned GET URL; `attachment` makes S3 serve it as `application/octet-stream` with
    /// `Content-Disposition: attachment`, whatever type it was uploaded with.
    pub async fn presign_get_as(&self, key: &str, attachment: bool) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let start = UNIX_EPOCH + Duration::from_secs(now.as_secs() - now.as_secs() % SIGNING_WINDOW.as_secs());
        let presigning = PresigningConfig::builder().start_time(start).expires_in(self.get_ttl).build()?;
        let mut get = self.client.get_object().bucket(&self.bucket).key(key);
        if attachment {
            get = get.response_content_type("application/octet-stream").response_content_disposition("attachment");
        }
        let req = get.presigned(presigning).await.context("presign get_object")?;
        Ok(req.uri().to_owned())
    }

    /// A presigned PUT whose content type and length are signed, so another size or type fails at S3.
    pub async fn presign_put(&self, key: &str, content_type: &str, size: u64) -> anyhow::Result<PresignedPut> {
        let presigning = PresigningConfig::expires_in(self.put_ttl)?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(size)?)
            .presigned(presigning)
            .await
            .context("presign put_object")?;
        Ok(PresignedPut {
            url: req.uri().to_owned(),
            headers: req.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        })
    }
}

/// Image types accepted for avatars and `/upload`, by magic bytes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG.
    Png,
    /// GIF87a / GIF89a.
    Gif,
    /// WebP (`RIFF....WEBP`).
    Webp,
}

impl ImageType {
    /// Detects the type from the first bytes; anything else (SVG, HTML, ...) is `None`.
    pub fn detect(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    /// MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }
}

/// A new opaque object key `u/<uuid>`.
pub fn new_key() -> String {
    format!("u/{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_by_magic_bytes_only() {
        assert_eq!(ImageType::detect(b"\xFF\xD8\xFF\xE0rest"), Some(ImageType::Jpeg));
        assert_eq!(ImageType::detect(b"\x89PNG\r\n\x1a\n...."), Some(ImageType::Png));
        assert_eq!(ImageType::detect(b"GIF89a..."), Some(ImageType::Gif));
        assert_eq!(ImageType::detect(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageType::Webp));
        assert_eq!(ImageType::detect(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), None);
        assert_eq!(ImageType::detect(b"<html><script>alert(1)</script>"), None);
        assert_eq!(ImageType::detect(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(ImageType::detect(b""), None);
    }
}
