//! The `ws-connect` function: WebSocket `$connect` (API.md §7.1).

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt as _, Response};
use shared::auth::{authenticate_token, bearer_token};
use shared::db::connections::NewConnection;
use shared::ratelimit::Scope;
use shared::{ApiError, AppState, db, realtime};
use wire::ErrorCode;

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "ws-connect";

/// Most connections one user may hold; the oldest is closed beyond it.
pub const MAX_CONNECTIONS_PER_USER: usize = 10;

/// The subprotocol selected when the client sends `messenger.v1, bearer.<JWT>`.
pub const SUBPROTOCOL: &str = "messenger.v1";

/// `$connect`
/// - the token comes from `?token=`, `Authorization: Bearer` or the `bearer.<JWT>` subprotocol
/// - any failure rejects the handshake with 401; success records (connection, user, device)
/// - at most 10 connections per user (the oldest is closed); the first one sends `presence`
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    connect(state, &req).await.unwrap_or_else(ApiError::into_response)
}

/// The token of a handshake and whether it came as the `bearer.<JWT>` subprotocol: `?token=` (when not
/// empty) first, then the subprotocol, then `Authorization: Bearer` (401 without any).
fn token_of(req: &Request) -> Result<(String, bool), ApiError> {
    if let Some(t) = req.query_string_parameters_ref().and_then(|q| q.first("token")).filter(|t| !t.is_empty()) {
        return Ok((t.to_owned(), false));
    }
    let protocols = req.headers().get_all(http::header::SEC_WEBSOCKET_PROTOCOL);
    for value in protocols.iter().filter_map(|v| v.to_str().ok()) {
        if let Some(t) = value.split(',').map(str::trim).find_map(|p| p.strip_prefix("bearer.")) {
            return Ok((t.to_owned(), true));
        }
    }
    bearer_token(shared::http::authorization(req)).map(|t| (t.to_owned(), false))
}

async fn connect(state: &AppState, req: &Request) -> Result<Response<Body>, ApiError> {
    let Some(RequestContext::WebSocket(ctx)) = req.request_context_ref() else {
        return Err(ErrorCode::NotWebsocket.into());
    };
    let connection_id =
        ctx.connection_id.clone().ok_or(ApiError::with_detail(ErrorCode::NotWebsocket, "No connection id"))?;
    let (token, by_subprotocol) = token_of(req)?;
    let user = authenticate_token(state, &token).await?;
    // Each connection (and its disconnect) is announced to every peer.
    state.limiter.hit(&state.db, Scope::Connect, &user.id.to_string()).await?;

    let (conns, first) = {
        let conn = state.db.conn().await?;
        // Insert and count in one write transaction, so two simultaneous first connections cannot both
        // see two rows and announce nothing.
        let tx = conn.write_tx().await?;
        let new = NewConnection {
            id: &connection_id,
            user_id: user.id,
            device_id: &user.device_id,
            token_version: user.version,
            token_exp: user.exp,
            connected_at: shared::time::now_ms(),
        };
        db::connections::insert(&tx, new).await?;
        let conns = db::connections::of_users(&tx, &[user.id]).await?;
        tx.commit().await?;
        let first = conns.len() == 1;
        (conns, first)
    };
    if conns.len() > MAX_CONNECTIONS_PER_USER {
        let oldest: Vec<String> =
            conns.iter().take(conns.len() - MAX_CONNECTIONS_PER_USER).map(|c| c.id.clone()).collect();
        realtime::close(state, &oldest).await;
    }
    if first {
        realtime::broadcast_presence(state, user.id).await;
    }
    let mut resp = Response::builder().status(200);
    if by_subprotocol {
        resp = resp.header(http::header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL);
    }
    Ok(resp.body(Body::Empty).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &[(&str, &str)], headers: &[(&str, &str)]) -> Request {
        let mut builder = http::Request::builder().uri("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let params: std::collections::HashMap<String, String> =
            query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        builder.body(Body::Empty).unwrap().with_query_string_parameters(params)
    }

    #[test]
    fn the_token_comes_from_the_query_the_subprotocol_or_the_header() {
        let protocol = ("sec-websocket-protocol", "messenger.v1, bearer.p");
        let header = ("authorization", "Bearer h");
        assert_eq!(token_of(&request(&[("token", "q")], &[protocol, header])).unwrap(), ("q".into(), false));
        assert_eq!(token_of(&request(&[("token", "")], &[protocol, header])).unwrap(), ("p".into(), true));
        assert_eq!(token_of(&request(&[], &[header])).unwrap(), ("h".into(), false));
        assert!(matches!(token_of(&request(&[], &[])), Err(ApiError::NotAuthenticated)));
    }
}
