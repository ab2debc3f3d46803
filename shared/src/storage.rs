//! User files in one private S3 bucket, handed out as presigned URLs (API.md §6).
//!
//! [`ObjectStore`] is the narrow boundary the rest of the crate uses; [`S3Storage`] (`aws-sdk-s3`) is its
//! one implementation, pointed at AWS or at the local stack's embedded S3.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use futures_util::future::BoxFuture;

use crate::config::Config;
use crate::secret::StaticCredentials;

/// Presigned GET URLs are signed at the start of a window of at most 15 minutes, so a viewer gets the same URL
/// within the window and clients can cache by URL.
const SIGNING_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The signing time of a GET URL issued at `now` (since the epoch) with lifetime `ttl`: the start of the
/// current window, the window being at most half the TTL, so every URL stays valid for at least half its TTL
/// (a 120 s TTL must not hand out URLs signed 14 minutes ago, already expired).
pub fn signing_start(now: Duration, ttl: Duration) -> Duration {
    let window = SIGNING_WINDOW.min(ttl / 2).as_secs().max(1);
    Duration::from_secs(now.as_secs() - now.as_secs() % window)
}

/// A presigned upload: the URL and the headers the client must send with the PUT.
#[derive(Debug, Clone)]
pub struct PresignedPut {
    /// Where to PUT.
    pub url: String,
    /// Headers that are part of the signature.
    pub headers: Vec<(String, String)>,
}

/// One object of a bucket listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The key.
    pub key: String,
    /// When it was last written, epoch ms.
    pub last_modified_ms: i64,
}

/// One page of a bucket listing and where the next one starts (`None`: the last page).
pub type ListPage = (Vec<Listed>, Option<String>);

/// The object store the functions use: one private bucket behind presigned URLs.
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// The bucket name.
    fn bucket(&self) -> &str;
    /// Lifetime of presigned GET URLs.
    fn get_ttl(&self) -> Duration;
    /// Lifetime of presigned PUT URLs.
    fn put_ttl(&self) -> Duration;
    /// Stores an object.
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, content_type: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Reads an object (tools and tests).
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u8>>>;
    /// Every key in the bucket (tools and tests).
    fn list_keys(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>>;
    /// One page (up to 1 000 objects, key order) of the bucket listing, from `continuation` (`None`: the
    /// start): the clean-up's sweep for objects without a row.
    fn list_page(&self, continuation: Option<String>) -> BoxFuture<'_, anyhow::Result<ListPage>>;
    /// Deletes an object (deleting a missing object succeeds, as in S3).
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// A presigned GET URL; `attachment` makes the store serve it as `application/octet-stream` with
    /// `Content-Disposition: attachment`, whatever type it was uploaded with.
    fn presign_get_as<'a>(&'a self, key: &'a str, attachment: bool) -> BoxFuture<'a, anyhow::Result<String>>;
    /// A presigned PUT whose content type and length are signed, so another size or type fails.
    fn presign_put<'a>(
        &'a self,
        key: &'a str,
        content_type: &'a str,
        size: u64,
    ) -> BoxFuture<'a, anyhow::Result<PresignedPut>>;
    /// A presigned GET URL served with the object's own type.
    fn presign_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<String>> {
        self.presign_get_as(key, false)
    }
}

/// The S3 bucket of the deployment, with a client built once per process, on first use.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: crate::aws::OnFirstCall<aws_sdk_s3::Config, aws_sdk_s3::Client>,
    bucket: String,
    get_ttl: Duration,
    put_ttl: Duration,
}

impl S3Storage {
    /// Builds the client: the default AWS chain on Lambda, or static credentials for a local endpoint.
    pub async fn new(config: &Config, credentials: Option<StaticCredentials>) -> Self {
        let mut builder = match credentials {
            Some(c) => aws_sdk_s3::config::Builder::new()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .http_client(crate::aws::http_client())
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    c.access_key,
                    c.secret_key,
                    None,
                    None,
                    "static",
                )),
            None => aws_sdk_s3::config::Builder::from(&crate::aws::load_defaults().await),
        };
        if let Some(endpoint) = &config.s3_endpoint {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        Self {
            client: crate::aws::OnFirstCall::new(builder.build(), aws_sdk_s3::Client::from_conf),
            bucket: config.s3_bucket.clone(),
            get_ttl: config.presigned_get_ttl,
            put_ttl: config.presigned_put_ttl,
        }
    }

    /// The underlying client (for tools and tests).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        self.client.get()
    }
}

impl ObjectStore for S3Storage {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    fn get_ttl(&self) -> Duration {
        self.get_ttl
    }

    fn put_ttl(&self) -> Duration {
        self.put_ttl
    }

    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>, content_type: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.client
                .get()
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .context("s3 put_object")?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u8>>> {
        Box::pin(async move {
            let out =
                self.client.get().get_object().bucket(&self.bucket).key(key).send().await.context("s3 get_object")?;
            Ok(out.body.collect().await.context("s3 get_object body")?.into_bytes().to_vec())
        })
    }

    fn list_keys(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let mut keys = Vec::new();
            let mut token = None;
            loop {
                let (page, next) = self.list_page(token).await?;
                keys.extend(page.into_iter().map(|o| o.key));
                token = next;
                if token.is_none() {
                    return Ok(keys);
                }
            }
        })
    }

    fn list_page(&self, continuation: Option<String>) -> BoxFuture<'_, anyhow::Result<ListPage>> {
        Box::pin(async move {
            let out = self
                .client
                .get()
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(KEY_PREFIX)
                .set_continuation_token(continuation)
                .send()
                .await
                .context("s3 list_objects_v2")?;
            let page = out
                .contents()
                .iter()
                .filter_map(|o| {
                    let key = o.key()?.to_owned();
                    // An object without a date counts as new: a sweep never deletes what it cannot date.
                    let last_modified_ms = o.last_modified().and_then(|t| t.to_millis().ok()).unwrap_or(i64::MAX);
                    Some(Listed { key, last_modified_ms })
                })
                .collect();
            Ok((page, out.next_continuation_token().map(str::to_owned)))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.client.get().delete_object().bucket(&self.bucket).key(key).send().await.context("s3 delete_object")?;
            Ok(())
        })
    }

    /// Signed at the start of the current window ([`signing_start`]), so a viewer gets the same URL within it.
    fn presign_get_as<'a>(&'a self, key: &'a str, attachment: bool) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let start = UNIX_EPOCH + signing_start(now, self.get_ttl);
            let presigning = PresigningConfig::builder().start_time(start).expires_in(self.get_ttl).build()?;
            let mut get = self.client.get().get_object().bucket(&self.bucket).key(key);
            if attachment {
                get = get.response_content_type("application/octet-stream").response_content_disposition("attachment");
            }
            let req = get.presigned(presigning).await.context("presign get_object")?;
            Ok(req.uri().to_owned())
        })
    }

    fn presign_put<'a>(
        &'a self,
        key: &'a str,
        content_type: &'a str,
        size: u64,
    ) -> BoxFuture<'a, anyhow::Result<PresignedPut>> {
        Box::pin(async move {
            let presigning = PresigningConfig::expires_in(self.put_ttl)?;
            let req = self
                .client
                .get()
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .content_length(i64::try_from(size)?)
                // Signed, so every PUT through this URL must send it: once the object exists (and a message
                // may reference it), the URL cannot overwrite it.
                .if_none_match("*")
                .presigned(presigning)
                .await
                .context("presign put_object")?;
            Ok(PresignedPut {
                url: req.uri().to_owned(),
                headers: req.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            })
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
    format!("{KEY_PREFIX}{}", uuid::Uuid::new_v4().simple())
}

/// The prefix of every object key: the functions' IAM policies grant object access only under it.
pub const KEY_PREFIX: &str = "u/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_stays_valid_for_at_least_half_its_ttl() {
        for ttl in [60, 61, 120, 899, 1800, 3600, 86_400] {
            let ttl = Duration::from_secs(ttl);
            for now in (1_700_000_000..1_700_000_000 + 4000).step_by(7) {
                let now = Duration::from_secs(now);
                let start = signing_start(now, ttl);
                assert!(start <= now);
                assert!(start + ttl >= now + ttl / 2, "ttl {ttl:?} at {now:?}: valid until {:?}", start + ttl);
            }
        }
        // Long TTLs keep the 15-minute window, so URLs stay cacheable.
        let ttl = Duration::from_secs(3600);
        let a = signing_start(Duration::from_secs(1_700_000_100), ttl);
        assert_eq!(a, signing_start(Duration::from_secs(1_700_000_100 + 600), ttl));
    }

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
