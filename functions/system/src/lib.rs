//! The `system` function: service banners, reference lists and the API documentation (API.md §8, §10).

use shared::api::{Caller, Router};
use shared::users::{AVATAR_FRAMES, PRESET_AVATAR_IDS};
use shared::{ApiError, AppState};
use wire::Empty;
use wire::system::{
    Banner, Docs, Frame, Frames, Health, HtmlPage, ListAvatarFrames, ListPresetAvatars, OpenApi, OpenApiDocument,
    PresetAvatar, PresetAvatars, Root, Status, Test,
};

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "system";

/// Every route of this function.
pub fn router() -> Router {
    Router::new(FUNCTION)
        .route(Root, root)
        .route(Test, test)
        .route(Health, health)
        .route(ListPresetAvatars, list_preset_avatars)
        .route(ListAvatarFrames, list_avatar_frames)
        .route(OpenApi, openapi)
        .route(Docs, docs)
}

shared::http_function!(router);

/// `GET /` — the service banner (the original's `docs` and `admin` links are dropped).
async fn root(_state: &AppState, _caller: Caller, _input: Empty) -> Result<Banner, ApiError> {
    Ok(Banner { message: "Messenger Backend API".into() })
}

/// `GET /test` — the liveness check the client "wakes" the server with.
async fn test(_state: &AppState, _caller: Caller, _input: Empty) -> Result<Status, ApiError> {
    Ok(Status { status: "ok".into(), message: Some("Backend is running".into()) })
}

/// `GET /health`
async fn health(_state: &AppState, _caller: Caller, _input: Empty) -> Result<Status, ApiError> {
    Ok(Status { status: "healthy".into(), message: None })
}

/// `GET /avatars/list` — every preset avatar with its public URL (from `PRESET_AVATAR_URL_TEMPLATE`).
async fn list_preset_avatars(state: &AppState, _caller: Caller, _input: Empty) -> Result<PresetAvatars, ApiError> {
    let avatars =
        PRESET_AVATAR_IDS.iter().map(|id| PresetAvatar { id: (*id).to_owned(), url: state.preset_avatar_url(id) });
    Ok(PresetAvatars { avatars: avatars.collect() })
}

/// `GET /avatar-frames/list`
async fn list_avatar_frames(_state: &AppState, _caller: Caller, _input: Empty) -> Result<Frames, ApiError> {
    let frames = AVATAR_FRAMES.iter().map(|(id, name, color)| Frame {
        id: *id,
        name: (*name).to_owned(),
        color: (*color).to_owned(),
    });
    Ok(Frames { frames: frames.collect() })
}

/// `GET /openapi.json` — the OpenAPI 3.1 document generated from the wire types.
async fn openapi(_state: &AppState, _caller: Caller, _input: Empty) -> Result<OpenApiDocument, ApiError> {
    Ok(OpenApiDocument(shared::routes::openapi_json().clone()))
}

/// `GET /docs` — the OpenAPI document rendered server-side as one self-contained HTML page (no scripts, no
/// third parties; a `Content-Security-Policy` meta tag allows nothing but its inline style).
async fn docs(_state: &AppState, _caller: Caller, _input: Empty) -> Result<HtmlPage, ApiError> {
    static PAGE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| wire::openapi::render_html(shared::routes::openapi()));
    Ok(HtmlPage(PAGE.clone()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_router_serves_exactly_the_system_endpoints() {
        shared::api::assert_serves_its_endpoints(&super::router());
    }
}
