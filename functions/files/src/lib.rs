//! The `files` function: image uploads and presigned uploads for large or encrypted attachments (API.md §6).

use shared::api::Router;
use shared::auth::AuthUser;
use shared::files::kind;
use shared::ratelimit::Scope;
use shared::storage::{ImageType, new_key};
use shared::{ApiError, AppState, db};
use wire::files::{PresignRequest, PresignUpload, Presigned, PresignedHeaders, UploadFile, Uploaded};
use wire::{ErrorCode, FileUpload};

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "files";

/// The 413 `detail` of a direct upload above `MAX_UPLOAD_BYTES`.
const TOO_LARGE_FOR_DIRECT_UPLOAD: &str =
    "File too large for a direct upload: send files above 4 MiB with POST /uploads/presign";

/// Every route of this function.
pub fn router() -> Router {
    Router::new(FUNCTION).upload(UploadFile, upload_file).route(PresignUpload, presign_upload)
}

shared::http_function!(router);

/// Records the object row of a new upload.
async fn record(
    state: &AppState,
    key: &str,
    owner: i64,
    kind: &str,
    content_type: &str,
    size: u64,
) -> Result<(), ApiError> {
    let conn = state.db.conn().await?;
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let new =
        db::objects::NewObject { key, owner_id: owner, kind, content_type, size, created_at: shared::time::now_ms() };
    db::objects::insert(&conn, new).await?;
    Ok(())
}

/// `POST /upload`
/// - multipart `file`, at most `MAX_UPLOAD_BYTES` (4 MiB: what fits through Lambda); larger files are
///   pointed at `/uploads/presign`, JPEG/PNG/GIF/WebP by magic bytes only
/// - stored privately with its detected type; unreferenced uploads are deleted after 24 h
async fn upload_file(state: &AppState, user: AuthUser, part: FileUpload) -> Result<Uploaded, ApiError> {
    if part.file.len() > state.config.max_upload_bytes {
        return Err(ApiError::with_detail(ErrorCode::PayloadTooLarge, TOO_LARGE_FOR_DIRECT_UPLOAD));
    }
    let image = ImageType::detect(&part.file).ok_or(ApiError::code(ErrorCode::InvalidImage))?;
    state.limiter.hit(&state.db, Scope::Upload, &user.id.to_string()).await?;
    let key = new_key();
    let size = part.file.len() as u64;
    // The row comes first: an object in S3 is always owned by someone and visible to the clean-up.
    record(state, &key, user.id, kind::UPLOAD, image.mime(), size).await?;
    if let Err(e) = state.storage.put(&key, part.file, image.mime()).await {
        shared::files::delete_if_orphaned(state, std::slice::from_ref(&key)).await;
        return Err(e.into());
    }
    let filename = format!("{}.{}", key.trim_start_matches("u/"), image.extension());
    Ok(Uploaded {
        url: state.storage.presign_get(&key).await?,
        filename,
        key,
        expires_in: state.storage.get_ttl().as_secs(),
    })
}

/// Whether `ct` is a `type/subtype` MIME type of RFC 7230 token characters, at most 128 bytes.
fn valid_content_type(ct: &str) -> bool {
    let (kind, sub) = ct.split_once('/').unwrap_or(("", ""));
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    ct.len() <= 128 && token(kind) && token(sub)
}

/// `POST /uploads/presign`
/// - `{size, content_type?}`: a presigned PUT whose size and type are signed, so S3 refuses anything else
/// - the server never sees the bytes; the object is served back as `application/octet-stream` attachment
async fn presign_upload(state: &AppState, user: AuthUser, input: PresignRequest) -> Result<Presigned, ApiError> {
    let size = match u64::try_from(input.size) {
        Ok(size) if size >= 1 => size,
        _ => return Err(ApiError::field("size", "must be at least 1 byte")),
    };
    if size > state.config.max_presigned_upload_bytes {
        return Err(ApiError::PayloadTooLarge);
    }
    let content_type = input.content_type.map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty());
    let content_type = content_type.unwrap_or_else(|| "application/octet-stream".into());
    if !valid_content_type(&content_type) {
        return Err(ApiError::field("content_type", "must be a MIME type such as application/octet-stream"));
    }
    state.limiter.hit(&state.db, Scope::Upload, &user.id.to_string()).await?;
    let key = new_key();
    record(state, &key, user.id, kind::PRESIGNED, &content_type, size).await?;
    let put = state.storage.presign_put(&key, &content_type, size).await?;
    Ok(Presigned {
        upload_url: put.url,
        key,
        expires_in: state.storage.put_ttl().as_secs(),
        headers: PresignedHeaders { content_type, content_length: size.to_string(), if_none_match: "*".into() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_files_endpoints() {
        shared::api::assert_serves_its_endpoints(&super::router());
    }

    #[test]
    fn content_types_are_mime_tokens() {
        assert!(valid_content_type("application/octet-stream"));
        assert!(valid_content_type("image/svg+xml"));
        assert!(!valid_content_type("not a type"));
        assert!(!valid_content_type("text/"));
        assert!(!valid_content_type("text"));
        assert!(!valid_content_type(&format!("a/{}", "b".repeat(127))));
    }
}
