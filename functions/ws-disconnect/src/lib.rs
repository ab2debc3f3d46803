//! The `ws-disconnect` function: WebSocket `$disconnect` (API.md §7.1).

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt as _, Response};
use shared::{AppState, realtime};

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "ws-disconnect";

/// `$disconnect`
/// - drops the connection record; when the user's last one goes, `last_seen` is set and `presence` sent
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    if let Some(RequestContext::WebSocket(ctx)) = req.request_context_ref()
        && let Some(id) = &ctx.connection_id
    {
        match realtime::forget(state, id).await {
            Ok(Some(user_id)) => realtime::broadcast_presence(state, user_id).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = ?e, "connection not removed"),
        }
    }
    Response::builder().status(200).body(Body::Empty).unwrap_or_default()
}
