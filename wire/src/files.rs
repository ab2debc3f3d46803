//! Direct and presigned uploads (API.md §6): the `files` function.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FileUpload, endpoint};

/// `POST /upload` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Uploaded {
    /// Presigned GET URL of the stored image.
    pub url: String,
    /// Generated `<uuid>.<ext>`.
    pub filename: String,
    /// The object key, to reference as `media_url` or `wallpaper_url`.
    pub key: String,
    /// Seconds the URL stays valid.
    pub expires_in: u64,
}

/// `POST /uploads/presign` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PresignRequest {
    /// Exact size in bytes, 1 … `MAX_PRESIGNED_UPLOAD_BYTES`.
    pub size: i64,
    /// MIME type; default `application/octet-stream`.
    #[serde(default)]
    pub content_type: Option<String>,
}

/// The headers a presigned PUT must carry (they are signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PresignedHeaders {
    /// The signed content type.
    #[serde(rename = "Content-Type")]
    pub content_type: String,
    /// The signed size, as decimal text.
    #[serde(rename = "Content-Length")]
    pub content_length: String,
    /// Always `*`: the PUT only creates the object, it never overwrites it (S3 answers 412 then).
    #[serde(rename = "If-None-Match")]
    pub if_none_match: String,
}

/// `POST /uploads/presign` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Presigned {
    /// Presigned S3 PUT URL.
    pub upload_url: String,
    /// The object key, to reference as `media_url`.
    pub key: String,
    /// Seconds the URL stays valid.
    pub expires_in: u64,
    /// Headers to send with the PUT, exactly.
    pub headers: PresignedHeaders,
}

endpoint! {
    /// Upload an image.
    UploadFile: Post "/upload" in "files" {
        op: "upload_file", summary: "Upload an image (JPEG, PNG, GIF, WebP)", auth: true, status: 200,
        input: Multipart, output: Json, request: FileUpload, response: Uploaded,
        errors: [InvalidImage, PayloadTooLarge],
    }
}

endpoint! {
    /// A presigned S3 PUT for a large or encrypted attachment.
    PresignUpload: Post "/uploads/presign" in "files" {
        op: "presign_upload", summary: "A presigned S3 PUT for a large or encrypted attachment", auth: true,
        status: 200, input: Json, output: Json, request: PresignRequest, response: Presigned,
        errors: [PayloadTooLarge],
    }
}
