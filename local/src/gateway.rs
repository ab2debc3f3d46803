//! The API Gateway HTTP API emulator: routes from `template.yaml`, each request turned into an API Gateway v2
//! event and parsed by `lambda_http` itself, so a handler sees exactly what it would see on Lambda.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body as AxumBody;
use axum::extract::{ConnectInfo, State};
use axum::response::Response as AxumResponse;
use base64::Engine as _;
use http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Response};
use serde_json::{Map, Value, json};
use shared::{ApiError, AppState};
use wire::ErrorCode;

use crate::connections::{Registry, WsLimits};
use crate::template::{HttpRoute, WsRoute};
use shared::http::match_path;

/// API Gateway's payload limit for HTTP APIs (10 MB): a larger request never reaches a function.
const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// Lambda's payload limit for synchronous invocations (6 MB), for the event and for the response: a binary
/// body travels base64-encoded in either, so about 4.5 MiB of file is the most that fits.
const LAMBDA_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The 413 `detail` when a request does not fit through API Gateway or Lambda.
const REQUEST_TOO_LARGE: &str =
    "Request too large for API Gateway and Lambda (6 MB per event): send files above 4 MiB with POST /uploads/presign";

/// A function as the gateway calls it: with the event's JSON, as Lambda delivers it.
pub type Handler =
    Arc<dyn Fn(Arc<AppState>, String) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync>;

/// A function's `handle` run in-process as Lambda runs it: the event parsed by `lambda_http`, then the
/// handler inside its request span, ending with its `request` log line.
macro_rules! handler {
    ($function:path, $f:path) => {{
        let h: Handler = Arc::new(|state: Arc<AppState>, event: String| {
            Box::pin(async move {
                let req = match lambda_http::request::from_str(&event) {
                    Ok(req) => req,
                    Err(e) => {
                        tracing::error!(error = %e, "event not parsed by lambda_http");
                        return ApiError::Internal(anyhow::anyhow!("event parsing failed")).into_response();
                    }
                };
                let (span, started) = shared::lambda::request_span($function, &req);
                let resp = tracing::Instrument::instrument($f(&state, req), span.clone()).await;
                shared::lambda::finish_request(&span, started, resp)
            })
        });
        h
    }};
}

/// Every function this gateway can call, by binary name.
pub fn functions() -> HashMap<&'static str, Handler> {
    HashMap::from([
        (fn_auth::FUNCTION, handler!(fn_auth::FUNCTION, fn_auth::handle)),
        (fn_users::FUNCTION, handler!(fn_users::FUNCTION, fn_users::handle)),
        (fn_system::FUNCTION, handler!(fn_system::FUNCTION, fn_system::handle)),
        (fn_chats::FUNCTION, handler!(fn_chats::FUNCTION, fn_chats::handle)),
        (fn_files::FUNCTION, handler!(fn_files::FUNCTION, fn_files::handle)),
        (fn_themes::FUNCTION, handler!(fn_themes::FUNCTION, fn_themes::handle)),
        (fn_contacts::FUNCTION, handler!(fn_contacts::FUNCTION, fn_contacts::handle)),
        (fn_keys::FUNCTION, handler!(fn_keys::FUNCTION, fn_keys::handle)),
        (fn_admin::FUNCTION, handler!(fn_admin::FUNCTION, fn_admin::handle)),
        (fn_ws_connect::FUNCTION, handler!(fn_ws_connect::FUNCTION, fn_ws_connect::handle)),
        (fn_ws_disconnect::FUNCTION, handler!(fn_ws_disconnect::FUNCTION, fn_ws_disconnect::handle)),
        (fn_ws_message::FUNCTION, handler!(fn_ws_message::FUNCTION, fn_ws_message::handle)),
    ])
}

/// The gateway: state, routes, functions and open WebSocket connections.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) state: Arc<AppState>,
    routes: Arc<Vec<HttpRoute>>,
    ws_routes: Arc<HashMap<String, String>>,
    functions: Arc<HashMap<&'static str, Handler>>,
    pub(crate) conns: Registry,
    pub(crate) ws_limits: WsLimits,
    host: Arc<str>,
}

impl Gateway {
    /// A gateway over checked routes.
    pub fn new(
        state: Arc<AppState>,
        routes: Vec<HttpRoute>,
        ws_routes: Vec<WsRoute>,
        functions: HashMap<&'static str, Handler>,
        ws_limits: WsLimits,
        host: String,
    ) -> Self {
        Self {
            state,
            routes: Arc::new(by_specificity(routes)),
            ws_routes: Arc::new(ws_routes.into_iter().map(|r| (r.route_key, r.function)).collect()),
            functions: Arc::new(functions),
            conns: Registry::default(),
            ws_limits,
            host: host.into(),
        }
    }

    /// The function behind a WebSocket route key.
    pub(crate) fn ws_function(&self, route_key: &str) -> Option<Handler> {
        self.ws_routes.get(route_key).and_then(|f| self.functions.get(f.as_str())).cloned()
    }

    /// The gateway's host name as events report it.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// Number of open WebSocket connections.
    pub fn open_connections(&self) -> usize {
        self.conns.lock().map(|c| c.len()).unwrap_or(0)
    }
}

pub(crate) fn error_response(err: ApiError) -> AxumResponse {
    into_axum(err.into_response())
}

/// The size of `resp` as Lambda returns it to API Gateway (status, headers, the body as a JSON string,
/// base64 for binary bodies).
fn lambda_response_bytes(resp: &Response<Body>) -> usize {
    let headers: usize = resp.headers().iter().map(|(k, v)| k.as_str().len() + v.as_bytes().len() + 6).sum();
    let body = match resp.body() {
        Body::Text(t) => serde_json::to_string(t).map_or(t.len(), |quoted| quoted.len()),
        Body::Binary(b) => b.len().div_ceil(3) * 4,
        _ => 0,
    };
    headers + body + 96
}

/// Lambda's response limit: 100 bytes above the request limit.
const LAMBDA_RESPONSE_BYTES: usize = LAMBDA_PAYLOAD_BYTES + 100;

/// A function's response as API Gateway passes it on: one above Lambda's response limit fails the
/// invocation, which API Gateway answers with a 502, as it does any failed invocation; the local stack does
/// the same (and logs why) instead of serving what AWS never would.
fn deliver(resp: Response<Body>) -> AxumResponse {
    let size = lambda_response_bytes(&resp);
    if size > LAMBDA_RESPONSE_BYTES {
        tracing::error!(size, limit = LAMBDA_RESPONSE_BYTES, "function response exceeds Lambda's payload limit");
        return into_axum(bad_gateway("Response too large for Lambda's 6 MB payload"));
    }
    into_axum(resp)
}

/// The 502 API Gateway answers for a failed invocation, with the contract's body.
pub(crate) fn bad_gateway(detail: &str) -> Response<Body> {
    let body = wire::ErrorBody { detail: detail.into(), code: ErrorCode::InternalError, errors: None };
    Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(serde_json::to_string(&body).unwrap_or_default()))
        .unwrap_or_default()
}

pub(crate) fn into_axum(resp: Response<Body>) -> AxumResponse {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    AxumResponse::from_parts(parts, AxumBody::from(bytes))
}

fn cors_origin(state: &AppState, headers: &http::HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(http::header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    state.config.cors_allowed_origins.iter().any(|o| o == text).then(|| origin.clone())
}

pub(crate) async fn http_entry(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: http::Request<AxumBody>,
) -> AxumResponse {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let origin = cors_origin(&gw.state, req.headers());
    let mut resp = if method == Method::OPTIONS && req.headers().contains_key("access-control-request-method") {
        preflight(origin.as_ref())
    } else {
        route(&gw, peer, req).await
    };
    if let Some(origin) = origin {
        resp.headers_mut().insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        resp.headers_mut().insert(http::header::VARY, HeaderValue::from_static("Origin"));
    }
    // Access log without query strings, tokens or bodies.
    tracing::info!(%method, path = %path, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "http");
    resp
}

fn preflight(origin: Option<&HeaderValue>) -> AxumResponse {
    let mut builder = http::Response::builder().status(StatusCode::NO_CONTENT);
    if origin.is_some() {
        builder = builder
            .header(http::header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, PUT, DELETE, OPTIONS")
            .header(http::header::ACCESS_CONTROL_ALLOW_HEADERS, "authorization, content-type")
            .header(http::header::ACCESS_CONTROL_MAX_AGE, "600");
    }
    builder.body(AxumBody::empty()).unwrap_or_default()
}

/// Orders routes as API Gateway prefers them: the most specific path first ([`shared::http::specificity`]),
/// and for the same path an explicit method before `ANY`.
fn by_specificity(mut routes: Vec<HttpRoute>) -> Vec<HttpRoute> {
    routes.sort_by_key(|r| std::cmp::Reverse((shared::http::specificity(&r.path), r.method != "ANY")));
    routes
}

/// Path parameters by name, in template order.
type PathParams<'r> = Vec<(&'r str, String)>;

/// The route for `method` and `path` among routes ordered [`by_specificity`]: 404 when no path matches, 405
/// when only other methods do.
fn select<'r>(routes: &'r [HttpRoute], method: &str, path: &str) -> Result<(&'r HttpRoute, PathParams<'r>), ApiError> {
    let mut path_exists = false;
    for r in routes {
        if let Some(params) = match_path(&r.path, path) {
            path_exists = true;
            if r.method == method || r.method == "ANY" {
                return Ok((r, params));
            }
        }
    }
    Err(if path_exists { ApiError::MethodNotAllowed } else { ApiError::RouteNotFound })
}

async fn route(gw: &Gateway, peer: SocketAddr, req: http::Request<AxumBody>) -> AxumResponse {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let (route, params) = match select(&gw.routes, &method, &path) {
        Ok(found) => found,
        Err(e) => return error_response(e),
    };
    let Some(handler) = gw.functions.get(route.function.as_str()).cloned() else {
        return error_response(ApiError::RouteNotFound);
    };
    let (parts, body) = req.into_parts();
    let too_large = || error_response(ApiError::with_detail(ErrorCode::PayloadTooLarge, REQUEST_TOO_LARGE));
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let event = http_event(&parts, &body, peer, route, &params).to_string();
    if event.len() > LAMBDA_PAYLOAD_BYTES {
        return too_large();
    }
    // Run the function in its own task so a panic becomes a 500 instead of a dropped connection.
    match tokio::spawn(handler(gw.state.clone(), event)).await {
        Ok(resp) => deliver(resp),
        Err(e) => error_response(ApiError::Internal(anyhow::anyhow!("function panicked: {e}"))),
    }
}

/// The API Gateway v2 (payload format 2.0) event for a request.
fn http_event(
    parts: &http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    route: &HttpRoute,
    params: &[(&str, String)],
) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| Value::String(c.trim().to_owned())));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let content_type = headers.get("content-type").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
    let textual = content_type.starts_with("text/")
        || content_type.contains("json")
        || content_type.contains("x-www-form-urlencoded")
        || content_type.contains("xml");
    let (body, is_base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) if textual => (Value::String(text.to_owned()), false),
        _ => (Value::String(base64::engine::general_purpose::STANDARD.encode(body)), true),
    };
    let now = shared::time::now_ms();
    let route_key = format!("{} {}", route.method, route.path);
    let raw_query = parts.uri.query().unwrap_or("");
    let mut query_params = Map::new();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query).unwrap_or_default();
    for (k, v) in pairs {
        query_params.insert(k, Value::String(v));
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers_host(&parts.headers),
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": parts.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or(""),
            },
            "requestId": uuid_like(),
            "routeKey": route_key,
            "stage": "$default",
            "time": shared::time::format_ms(now),
            "timeEpoch": now,
        },
        "isBase64Encoded": is_base64,
    });
    if !body.is_null() {
        event["body"] = body;
    }
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    if !query_params.is_empty() {
        event["queryStringParameters"] = Value::Object(query_params);
    }
    if !params.is_empty() {
        event["pathParameters"] =
            Value::Object(params.iter().map(|(k, v)| ((*k).to_owned(), Value::String(v.clone()))).collect());
    }
    event
}

fn headers_host(headers: &http::HeaderMap) -> String {
    headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_owned()
}

fn uuid_like() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: &str, path: &str, function: &str) -> HttpRoute {
        HttpRoute { method: method.into(), path: path.into(), function: function.into() }
    }

    #[test]
    fn the_most_specific_route_wins_whatever_the_template_order() {
        let routes = by_specificity(vec![
            r("ANY", "/{proxy+}", "catch_all"),
            r("ANY", "/items/{id}", "any_item"),
            r("GET", "/items/{id}", "get_item"),
            r("GET", "/items/special", "special"),
        ]);
        let pick = |method: &str, path: &str| select(&routes, method, path).map(|(route, _)| route.function.clone());
        assert_eq!(pick("GET", "/items/special").unwrap(), "special");
        assert_eq!(pick("GET", "/items/7").unwrap(), "get_item");
        assert_eq!(pick("DELETE", "/items/7").unwrap(), "any_item");
        assert_eq!(pick("POST", "/items/special").unwrap(), "any_item");
        assert_eq!(pick("GET", "/other/a/b").unwrap(), "catch_all");
        let (_, params) = select(&routes, "GET", "/items/7").unwrap();
        assert_eq!(params, vec![("id", "7".to_owned())]);
    }

    #[test]
    fn responses_above_lambdas_payload_limit_fail_as_on_aws() {
        let text = |len: usize| Response::builder().status(200).body(Body::Text("x".repeat(len))).unwrap();
        assert_eq!(deliver(text(5 << 20)).status(), StatusCode::OK);
        assert_eq!(deliver(text(LAMBDA_RESPONSE_BYTES)).status(), StatusCode::BAD_GATEWAY);
        // Binary bodies count base64-encoded: 4.6 MiB of bytes is over 6 MiB on the wire to API Gateway.
        let binary = |len: usize| Response::builder().status(200).body(Body::Binary(vec![0; len])).unwrap();
        assert_eq!(deliver(binary(4 << 20)).status(), StatusCode::OK);
        assert_eq!(deliver(binary(4_800_000)).status(), StatusCode::BAD_GATEWAY);
        // Escapes count too: quotes and control characters grow inside the JSON string.
        let quoted = Response::builder().status(200).body(Body::Text("\"".repeat((3 << 20) + 100))).unwrap();
        assert_eq!(deliver(quoted).status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn only_other_methods_is_405_and_no_path_is_404() {
        let routes = by_specificity(vec![r("GET", "/items/{id}", "get_item")]);
        assert!(matches!(select(&routes, "PUT", "/items/1"), Err(ApiError::MethodNotAllowed)));
        assert!(matches!(select(&routes, "GET", "/nope"), Err(ApiError::RouteNotFound)));
    }
}
