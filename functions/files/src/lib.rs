//! The `files` function: image uploads and presigned uploads for large or encrypted attachments (API.md §6).

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::auth::{AuthUser, authenticate_request};
use shared::files::kind;
use shared::http::{Params, match_route, multipart_file, ok};
use shared::storage::{ImageType, new_key};
use shared::{ApiError, AppState, ratelimit};

/// Name of this function in `template.yaml` and in the routing table.
pub const FUNCTION: &str = "files";

/// Serves one request; every error becomes its contract response.
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    dispatch(state, req).await.unwrap_or_else(ApiError::into_response)
}

async fn dispatch(state: &AppState, req: Request) -> Result<Response<Body>, ApiError> {
    let m = match_route(FUNCTION, req.method(), req.uri().path())?;
    let user = authenticate_request(state, &req).await?;
    match m.route.op {
        "upload_file" => upload_file(state, &user, &req).await,
        "presign_upload" => presign_upload(state, &user, &Params::body(&req)?).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

async fn record(
    state: &AppState,
    key: &str,
    owner: i64,
    kind: &str,
    content_type: &str,
    size: u64,
) -> Result<(), ApiError> {
    let conn = state.db.conn().await?;
    conn.execute(
        "INSERT INTO object (key, owner_id, kind, content_type, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        (key, owner, kind, content_type, i64::try_from(size).unwrap_or(i64::MAX), shared::time::now_ms()),
    )
    .await?;
    Ok(())
}

/// `POST /upload`
/// - multipart `file`, at most `MAX_UPLOAD_BYTES`, JPEG/PNG/GIF/WebP by magic bytes only
/// - stored privately with its detected type; unreferenced uploads are deleted after 24 h
async fn upload_file(state: &AppState, user: &AuthUser, req: &Request) -> Result<Response<Body>, ApiError> {
    let part = multipart_file(req, "file")?;
    if part.data.len() > state.config.max_upload_bytes {
        return Err(ApiError::PayloadTooLarge);
    }
    let image = ImageType::detect(&part.data).ok_or(ApiError::client(400, "invalid_image", "File must be an image"))?;
    ratelimit::hit(&state.db, "upload", &user.id.to_string(), state.config.rate_limits.upload).await?;
    let key = new_key();
    let size = part.data.len() as u64;
    // The row comes first: an object in S3 is always owned by someone and visible to the clean-up.
    record(state, &key, user.id, kind::UPLOAD, image.mime(), size).await?;
    if let Err(e) = state.storage.put(&key, part.data, image.mime()).await {
        shared::files::delete_if_orphaned(state, std::slice::from_ref(&key)).await;
        return Err(e.into());
    }
    let filename = format!("{}.{}", key.trim_start_matches("u/"), image.extension());
    Ok(ok(&json!({
        "url": state.storage.presign_get(&key).await?,
        "filename": filename,
        "key": key,
        "expires_in": state.storage.get_ttl().as_secs(),
    })))
}

fn valid_content_type(ct: &str) -> bool {
    let (kind, sub) = ct.split_once('/').unwrap_or(("", ""));
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    ct.len() <= 128 && token(kind) && token(sub)
}

/// `POST /uploads/presign`
/// - `{size, content_type?}`: a presigned PUT whose size and type are signed, so S3 refuses anything else
/// - the server never sees the bytes; the object is served back as `application/octet-stream` attachment
async fn presign_upload(state: &AppState, user: &AuthUser, params: &Params) -> Result<Response<Body>, ApiError> {
    let size = params.int("size")?.ok_or_else(|| ApiError::field("size", "field required"))?;
    if size < 1 {
        return Err(ApiError::field("size", "must be at least 1 byte"));
    }
    let size = size as u64;
    if size > state.config.max_presigned_upload_bytes {
        return Err(ApiError::PayloadTooLarge);
    }
    let content_type = params.str("content_type")?.map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty());
    let content_type = content_type.unwrap_or_else(|| "application/octet-stream".into());
    if !valid_content_type(&content_type) {
        return Err(ApiError::field("content_type", "must be a MIME type such as application/octet-stream"));
    }
    ratelimit::hit(&state.db, "upload", &user.id.to_string(), state.config.rate_limits.upload).await?;
    let key = new_key();
    record(state, &key, user.id, kind::PRESIGNED, &content_type, size).await?;
    let put = state.storage.presign_put(&key, &content_type, size).await?;
    Ok(ok(&json!({
        "upload_url": put.url,
        "key": key,
        "expires_in": state.storage.put_ttl().as_secs(),
        "headers": {"Content-Type": content_type, "Content-Length": size.to_string()},
    })))
}
