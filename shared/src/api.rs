//! The typed request path every HTTP function shares, written once: match method + path → authenticate →
//! decode the endpoint's wire request → call its typed handler → encode its wire response. Handlers are
//! `async fn verb_noun(state, user, input) -> Result<Output, ApiError>`; each function registers them on a
//! [`Router`] keyed by the endpoint types of the `wire` crate, so a route's method, path, auth, input form
//! and success status come from one declaration.

use std::future::Future;
use std::pin::Pin;

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wire::{Endpoint, EndpointInfo, FileUpload, Input, Output};

use crate::auth::{AuthUser, authenticate_request};
use crate::error::ApiError;
use crate::http::{decode_input, json_response, match_path, multipart_file, source_ip, specificity};
use crate::ratelimit::Scope;
use crate::state::AppState;

/// The caller of an endpoint without authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Source address as API Gateway reports it (never a client-supplied header).
    pub source_ip: String,
}

/// Who calls an endpoint, worked out from the request before its input is decoded.
pub trait Principal: Sized + Send + 'static {
    /// Whether the endpoints this caller type serves are authenticated (`wire`'s `AUTH`).
    const AUTH: bool;
    /// The caller of `req`, or the error that refuses it.
    fn identify(state: &AppState, req: &Request) -> impl Future<Output = Result<Self, ApiError>> + Send;
}

impl Principal for AuthUser {
    const AUTH: bool = true;
    fn identify(state: &AppState, req: &Request) -> impl Future<Output = Result<Self, ApiError>> + Send {
        authenticate_counted(state, req)
    }
}

impl Principal for Caller {
    const AUTH: bool = false;
    fn identify(_state: &AppState, req: &Request) -> impl Future<Output = Result<Self, ApiError>> + Send {
        std::future::ready(Ok(Caller { source_ip: source_ip(req) }))
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Call =
    Box<dyn for<'a> Fn(&'a AppState, Request, Vec<(&'static str, String)>) -> BoxFuture<'a, Reply> + Send + Sync>;
type Reply = Result<Response<Body>, ApiError>;

/// An async handler `fn(&AppState, Ctx, Req) -> Result<Res, ApiError>` for every lifetime of the state.
pub trait Handler<'a, Ctx, Req, Res>: Fn(&'a AppState, Ctx, Req) -> Self::Future {
    /// The handler's future.
    type Future: Future<Output = Result<Res, ApiError>> + Send + 'a;
}

impl<'a, F, Fut, Ctx, Req, Res> Handler<'a, Ctx, Req, Res> for F
where
    F: Fn(&'a AppState, Ctx, Req) -> Fut,
    Fut: Future<Output = Result<Res, ApiError>> + Send + 'a,
{
    type Future = Fut;
}

struct Route {
    info: EndpointInfo,
    call: Call,
}

/// The routes of one function.
pub struct Router {
    function: &'static str,
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("function", &self.function).field("routes", &self.endpoints()).finish()
    }
}

fn encode<E: Endpoint>(response: &E::Response) -> Response<Body>
where
    E::Response: Serialize,
{
    let status = StatusCode::from_u16(E::STATUS).unwrap_or(StatusCode::OK);
    match E::OUTPUT {
        Output::Json => json_response(status, response),
        Output::Empty => Response::builder().status(status).body(Body::Empty).unwrap_or_default(),
        Output::Html => {
            let text = match serde_json::to_value(response) {
                Ok(serde_json::Value::String(text)) => text,
                _ => String::new(),
            };
            Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
                .header(http::header::CONTENT_SECURITY_POLICY, "default-src 'self'; style-src 'unsafe-inline'")
                .body(Body::Text(text))
                .unwrap_or_default()
        }
    }
}

/// Authenticates a request and counts it against the user's budget of authenticated REST calls before the
/// body is decoded or the route's own limits are counted, so one user's flood of any endpoint is refused
/// early (429 with `Retry-After`), whatever it asks for: a call that changes something against
/// `RATE_LIMIT_REST_WRITE`, a `GET` against `RATE_LIMIT_REST_READ`. Both are counted in this process's
/// memory: a counter row in the database would add a write to every call (measured against sqld: the
/// extra write per mutation stalled concurrent sends and claims). The limits that must hold across
/// processes (messages, claims, searches, logins, ...) are the routes' own, counted in the database.
async fn authenticate_counted(state: &AppState, req: &Request) -> Result<AuthUser, ApiError> {
    let user = authenticate_request(state, req).await?;
    let subject = user.id.to_string();
    if matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
        state.limiter.hit_local(Scope::RestRead, &subject)?;
    } else {
        state.limiter.hit_local(Scope::RestWrite, &subject)?;
    }
    Ok(user)
}

impl Router {
    /// An empty router for `function` (its name in `template.yaml`).
    pub fn new(function: &'static str) -> Self {
        Self { function, routes: Vec::new() }
    }

    fn add<E: Endpoint>(mut self, auth: bool, input_is_multipart: bool, call: Call) -> Self {
        // Misdeclared routes stop the router from being built, which every function's router test does.
        assert_eq!(E::FUNCTION, self.function, "{} belongs to function {}", E::OPERATION_ID, E::FUNCTION);
        assert_eq!(E::AUTH, auth, "{}: authenticated handlers take an AuthUser, public ones a Caller", E::OPERATION_ID);
        assert_eq!(E::INPUT == Input::Multipart, input_is_multipart, "{}: multipart uses `upload`", E::OPERATION_ID);
        assert!(
            !self.routes.iter().any(|r| r.info.method == E::METHOD && r.info.path == E::PATH),
            "{} registered twice",
            E::OPERATION_ID
        );
        self.routes.push(Route { info: wire::info::<E>(), call });
        // Most specific path first, as API Gateway chooses, so registration order never decides.
        self.routes.sort_by_key(|r| std::cmp::Reverse(specificity(r.info.path)));
        self
    }

    /// Registers the handler of an endpoint. Its caller type says how the request is identified before its
    /// input is decoded: an [`AuthUser`] for an authenticated endpoint, a [`Caller`] for a public one.
    pub fn route<E, P, F>(self, _endpoint: E, handler: F) -> Self
    where
        E: Endpoint + 'static,
        E::Request: DeserializeOwned + Send + 'static,
        E::Response: Serialize + Send + 'static,
        P: Principal,
        F: for<'a> Handler<'a, P, E::Request, E::Response> + Copy + Send + Sync + 'static,
    {
        let call: Call = Box::new(move |state, req, path| {
            Box::pin(async move {
                let caller = P::identify(state, &req).await?;
                let input = decode_input::<E::Request>(E::INPUT, &req, path)?;
                Ok(encode::<E>(&handler(state, caller, input).await?))
            })
        });
        self.add::<E>(P::AUTH, false, call)
    }

    /// Registers the handler of an authenticated `multipart/form-data` upload.
    pub fn upload<E, F>(self, _endpoint: E, handler: F) -> Self
    where
        E: Endpoint<Request = FileUpload> + 'static,
        E::Response: Serialize + Send + 'static,
        F: for<'a> Handler<'a, AuthUser, FileUpload, E::Response> + Copy + Send + Sync + 'static,
    {
        let call: Call = Box::new(move |state, req, _path| {
            Box::pin(async move {
                let user = AuthUser::identify(state, &req).await?;
                let file = multipart_file(req, "file").await?;
                Ok(encode::<E>(&handler(state, user, file).await?))
            })
        });
        self.add::<E>(true, true, call)
    }

    /// The endpoints this router serves.
    pub fn endpoints(&self) -> Vec<EndpointInfo> {
        self.routes.iter().map(|r| r.info).collect()
    }

    /// Serves one request; every error becomes its contract response (never an `Err` to the runtime).
    pub async fn handle(&self, state: &AppState, req: Request) -> Response<Body> {
        let path = match req.uri().path().trim_end_matches('/') {
            "" => "/".to_owned(),
            trimmed => trimmed.to_owned(),
        };
        let mut path_exists = false;
        for route in &self.routes {
            if let Some(params) = match_path(route.info.path, &path) {
                if route.info.method.as_str() == req.method().as_str() {
                    return (route.call)(state, req, params).await.unwrap_or_else(ApiError::into_response);
                }
                path_exists = true;
            }
        }
        if path_exists { ApiError::MethodNotAllowed } else { ApiError::RouteNotFound }.into_response()
    }
}

/// Declares the function's process-wide router (built once, on first use) and its `handle` entry point,
/// which both `main` (through [`crate::lambda::run`]) and the local gateway call.
#[macro_export]
macro_rules! http_function {
    ($router:path) => {
        static ROUTER: std::sync::LazyLock<$crate::api::Router> = std::sync::LazyLock::new($router);

        /// Serves one request; every error becomes its contract response.
        pub async fn handle(
            state: &$crate::AppState,
            req: $crate::lambda_http::Request,
        ) -> $crate::lambda_http::Response<$crate::lambda_http::Body> {
            ROUTER.handle(state, req).await
        }
    };
}

/// Checks a function's router against the contract: it serves exactly the `wire` endpoints of its function.
pub fn assert_serves_its_endpoints(router: &Router) {
    let mut served: Vec<&str> = router.endpoints().iter().map(|e| e.operation_id).collect();
    let mut declared: Vec<&str> =
        wire::endpoints().iter().filter(|e| e.function == router.function).map(|e| e.operation_id).collect();
    served.sort_unstable();
    declared.sort_unstable();
    assert_eq!(served, declared, "function {} must serve exactly its endpoints", router.function);
}
