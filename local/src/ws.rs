//! The API Gateway WebSocket API emulator: `$connect` / `$disconnect` / route selection on `action`, the
//! `@connections` management endpoint, API Gateway's size limits, idle timeout and maximum duration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body as AxumBody;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response as AxumResponse};
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::connections::{ConnEntry, Outgoing, lock};
use crate::gateway::{Gateway, into_axum};

/// Largest message (API Gateway: 128 KB) and frame (32 KB).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;
/// Largest single frame.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// An id shaped like API Gateway's (16 characters, base64).
fn connection_id() -> String {
    let mut b = [0u8; 11];
    let _ = getrandom::fill(&mut b);
    base64::engine::general_purpose::URL_SAFE.encode(b)
}

fn request_context(gw: &Gateway, id: &str, route_key: &str, event_type: &str, entry: (&str, &str, i64)) -> Value {
    let now = shared::time::now_ms();
    json!({
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": connection_id(),
        "requestTime": shared::time::format_ms(now),
        "messageDirection": "IN",
        "stage": "local",
        "connectedAt": entry.2,
        "requestTimeEpoch": now,
        "identity": {"sourceIp": entry.0, "userAgent": entry.1},
        "requestId": connection_id(),
        "domainName": gw.host(),
        "connectionId": id,
        "apiId": "local-ws",
    })
}

/// Calls the function behind `route_key` with a WebSocket event.
async fn invoke(gw: &Gateway, route_key: &str, event: Value) -> Option<lambda_http::Response<lambda_http::Body>> {
    let function = gw.ws_function(route_key)?;
    tokio::spawn(function(gw.state.clone(), event.to_string())).await.ok()
}

/// `GET /ws`: runs `$connect` before the upgrade; a rejection is answered as an HTTP status.
pub async fn entry(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: http::Uri,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> AxumResponse {
    let Ok(upgrade) = upgrade else {
        return crate::gateway::error_response(shared::ApiError::code(shared::error::ErrorCode::UpgradeRequired));
    };
    let id = connection_id();
    let now = shared::time::now_ms();
    let source_ip = peer.ip().to_string();
    let user_agent = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    // Register first, so pushes that race with the upgrade are buffered instead of answered 410.
    let (tx, rx) = mpsc::unbounded_channel();
    let last_active = Arc::new(AtomicI64::new(now));
    lock(&gw.conns).insert(
        id.clone(),
        ConnEntry {
            tx,
            connected_at: now,
            last_active: last_active.clone(),
            source_ip: source_ip.clone(),
            user_agent: user_agent.clone(),
        },
    );

    let mut single = Map::new();
    let mut multi = Map::new();
    for (name, value) in &headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        single.insert(name.as_str().to_owned(), Value::String(v.clone()));
        if let Value::Array(values) = multi.entry(name.as_str().to_owned()).or_insert_with(|| Value::Array(Vec::new()))
        {
            values.push(Value::String(v));
        }
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let query: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let multi_query: Map<String, Value> =
        query.iter().map(|(k, v)| (k.clone(), Value::Array(vec![v.clone()]))).collect();
    let mut event = json!({
        "headers": single,
        "multiValueHeaders": multi,
        "requestContext": request_context(&gw, &id, "$connect", "CONNECT", (&source_ip, &user_agent, now)),
        "isBase64Encoded": false,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
        event["multiValueQueryStringParameters"] = Value::Object(multi_query);
    }
    let resp = match invoke(&gw, "$connect", event).await {
        Some(r) => r,
        None if gw.ws_function("$connect").is_none() => lambda_http::Response::new(lambda_http::Body::Empty),
        None => {
            lock(&gw.conns).remove(&id);
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if !resp.status().is_success() {
        lock(&gw.conns).remove(&id);
        return into_axum(resp);
    }
    let protocol =
        resp.headers().get(http::header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut upgrade = upgrade.max_frame_size(MAX_FRAME_BYTES).max_message_size(MAX_MESSAGE_BYTES);
    if let Some(p) = protocol {
        upgrade = upgrade.protocols([p]);
    }
    let gw2 = gw.clone();
    let id2 = id.clone();
    upgrade
        .on_failed_upgrade(move |_| {
            lock(&gw2.conns).remove(&id2);
        })
        .on_upgrade(move |socket| run(gw, id, socket, rx, last_active, (source_ip, user_agent, now)))
}

fn is_capacity_error(err: &axum::Error) -> bool {
    std::error::Error::source(err)
        .and_then(|e| e.downcast_ref::<tokio_tungstenite::tungstenite::Error>())
        .is_some_and(|e| matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_)))
}

async fn run(
    gw: Gateway,
    id: String,
    socket: WebSocket,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    last_active: Arc<AtomicI64>,
    identity: (String, String, i64),
) {
    let (mut sink, mut stream) = socket.split();
    let limits = gw.ws_limits;
    let deadline = tokio::time::Instant::now() + limits.max_duration;
    let mut idle = tokio::time::Instant::now() + limits.idle_timeout;
    let mut close_code = 1000u16;
    loop {
        let close: Option<(u16, &'static str)> = tokio::select! {
            out = rx.recv() => match out {
                Some(Outgoing::Text(t)) => {
                    if sink.send(Message::Text(t.into())).await.is_err() { break; }
                    None
                }
                Some(Outgoing::Close(code, reason)) => Some((code, reason)),
                None => Some((1001, "Going away")),
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    idle = tokio::time::Instant::now() + limits.idle_timeout;
                    last_active.store(shared::time::now_ms(), Ordering::Relaxed);
                    dispatch(&gw, &id, text.as_str(), &identity).await;
                    None
                }
                Some(Ok(Message::Binary(bytes))) => {
                    idle = tokio::time::Instant::now() + limits.idle_timeout;
                    last_active.store(shared::time::now_ms(), Ordering::Relaxed);
                    dispatch(&gw, &id, &String::from_utf8_lossy(&bytes), &identity).await;
                    None
                }
                Some(Ok(Message::Close(frame))) => {
                    close_code = frame.map_or(1005, |f| f.code);
                    break;
                }
                Some(Ok(_)) => None,
                Some(Err(e)) if is_capacity_error(&e) => Some((1009, "Message too big")),
                Some(Err(_)) => {
                    close_code = 1006;
                    break;
                }
                None => { close_code = 1006; break; }
            },
            () = tokio::time::sleep_until(idle) => Some((1001, "Going away")),
            () = tokio::time::sleep_until(deadline) => Some((1001, "Going away")),
        };
        if let Some((code, reason)) = close {
            let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
            close_code = code;
            break;
        }
    }
    lock(&gw.conns).remove(&id);
    let mut ctx = request_context(&gw, &id, "$disconnect", "DISCONNECT", (&identity.0, &identity.1, identity.2));
    ctx["disconnectStatusCode"] = json!(close_code);
    ctx["disconnectReason"] = json!("");
    let event = json!({"headers": {}, "multiValueHeaders": {}, "requestContext": ctx, "isBase64Encoded": false});
    let _ = invoke(&gw, "$disconnect", event).await;
}

/// Route selection on `$request.body.action`, `$default` as fallback.
async fn dispatch(gw: &Gateway, id: &str, text: &str, identity: &(String, String, i64)) {
    let action = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_owned))
        .filter(|a| !a.starts_with('$') && gw.ws_function(a).is_some());
    let route_key = action.unwrap_or_else(|| "$default".to_owned());
    let mut ctx = request_context(gw, id, &route_key, "MESSAGE", (&identity.0, &identity.1, identity.2));
    ctx["messageId"] = json!(connection_id());
    let event = json!({"requestContext": ctx, "body": text, "isBase64Encoded": false});
    if invoke(gw, &route_key, event).await.is_none() {
        tracing::warn!(route = %route_key, "no function for WebSocket route");
    }
}

fn gone() -> AxumResponse {
    http::Response::builder()
        .status(StatusCode::GONE)
        .header("x-amzn-errortype", "GoneException")
        .header("content-type", "application/json")
        .body(AxumBody::from(r#"{"__type":"GoneException","message":null}"#))
        .unwrap_or_default()
}

/// `POST /ws/@connections/{id}`: sends the body as a text frame.
pub async fn post_to_connection(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AxumResponse {
    if body.len() > MAX_MESSAGE_BYTES {
        return http::Response::builder()
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .header("x-amzn-errortype", "PayloadTooLargeException")
            .body(AxumBody::from(r#"{"__type":"PayloadTooLargeException","message":"Message too long"}"#))
            .unwrap_or_default();
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    match lock(&gw.conns).get(&id) {
        Some(entry) if entry.tx.send(Outgoing::Text(text)).is_ok() => StatusCode::OK.into_response(),
        _ => gone(),
    }
}

/// `GET /ws/@connections/{id}`: connection info as API Gateway returns it.
pub async fn get_connection(State(gw): State<Gateway>, Path(id): Path<String>) -> AxumResponse {
    let conns = lock(&gw.conns);
    let Some(entry) = conns.get(&id) else { return gone() };
    let body = json!({
        "connectedAt": shared::time::format_ms(entry.connected_at),
        "lastActiveAt": shared::time::format_ms(entry.last_active.load(Ordering::Relaxed)),
        "identity": {"sourceIp": entry.source_ip, "userAgent": entry.user_agent},
    });
    http::Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(AxumBody::from(body.to_string()))
        .unwrap_or_default()
}

/// `DELETE /ws/@connections/{id}`: closes the connection.
pub async fn delete_connection(State(gw): State<Gateway>, Path(id): Path<String>) -> AxumResponse {
    match lock(&gw.conns).get(&id) {
        Some(entry) if entry.tx.send(Outgoing::Close(1000, "")).is_ok() => StatusCode::NO_CONTENT.into_response(),
        _ => gone(),
    }
}
