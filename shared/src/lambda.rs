//! The Lambda entry point every HTTP function's `main` calls.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use lambda_http::{Body, Request, Response, service_fn};

use crate::config::Config;
use crate::state::AppState;

static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Whether logs are JSON lines (`AWS_LAMBDA_LOG_FORMAT=JSON`, Lambda's advanced logging controls).
pub fn json_logs() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
}

/// Installs the process's log subscriber, once. `RUST_LOG` sets the filter, else `AWS_LAMBDA_LOG_LEVEL`,
/// else `info`. With `AWS_LAMBDA_LOG_FORMAT=JSON` every line is a JSON object (CloudWatch indexes its
/// fields): the event's fields at the top level, and inside a request its `request_id`, `function` and
/// `route`; otherwise plain text. Tokens, phone numbers and message contents are never logged either way.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| {
            let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").unwrap_or_default().to_ascii_lowercase();
            tracing_subscriber::EnvFilter::try_new(if level.is_empty() { "info".to_owned() } else { level })
        })
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let installed = if json {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .try_init()
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).without_time().with_ansi(false).try_init()
    };
    if installed.is_ok() {
        JSON_LOGS.store(json, Ordering::Relaxed);
    }
}

/// Builds the state once (config with its secrets, database, clients, keys), checks the schema version and
/// serves events (the check runs in the background: `SchemaGate`).
pub async fn run<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static AppState, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    init_tracing();
    let config = crate::secrets::load_config().await?;
    run_with(config, handler).await
}

/// [`run`] with a configuration the caller loaded (and checked) already, after [`init_tracing`].
pub async fn run_with<F, Fut>(config: Config, handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static AppState, Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let state = AppState::new(config, None).await?;
    let state: &'static AppState = Box::leak(Box::new(state));
    let schema: &'static SchemaGate = Box::leak(Box::new(SchemaGate::start(&state.db)));
    let handler = &*Box::leak(Box::new(handler));
    let function: &'static str = Box::leak(function_name().into_boxed_str());
    lambda_http::run(service_fn(move |req: Request| {
        let (span, started) = request_span(function, &req);
        let serve = async move {
            match schema.passed().await {
                Ok(()) => handler(state, req).await,
                Err(e) => crate::ApiError::Internal(e).into_response(),
            }
        };
        let fut = tracing::Instrument::instrument(serve, span.clone());
        async move { Ok::<_, Infallible>(finish_request(&span, started, fut.await)) }
    }))
    .await
}

/// The schema check of a cold start ([`crate::db::check_schema`]): the database must be at this build's
/// version before anything is served. It starts before the runtime asks for the first event, so its round
/// trip to the database (and the connection it opens, which requests reuse) overlaps that request instead of
/// coming before it; every invocation waits until the check has passed. A failed check answers the invocation
/// with a 500 (its cause logged: "run the migrate function") and is run again by the next one, so a process
/// that started before `migrate` finished serves once it has.
struct SchemaGate {
    db: &'static crate::db::Db,
    passed: tokio::sync::OnceCell<()>,
    first: std::sync::Mutex<Option<tokio::task::JoinHandle<anyhow::Result<()>>>>,
}

impl SchemaGate {
    /// Starts the first check of `db` in the background.
    fn start(db: &'static crate::db::Db) -> Self {
        let first = tokio::spawn(crate::db::check_schema(db));
        Self { db, passed: tokio::sync::OnceCell::new(), first: std::sync::Mutex::new(Some(first)) }
    }

    /// Waits for the check; the first failure is the background check's, later ones are checks of their own.
    async fn passed(&self) -> anyhow::Result<()> {
        self.passed
            .get_or_try_init(|| async {
                let first = self.first.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                match first {
                    Some(task) => task.await?,
                    None => crate::db::check_schema(self.db).await,
                }
            })
            .await
            .copied()
    }
}

/// This function's name: Lambda's `AWS_LAMBDA_FUNCTION_NAME`, else the binary's name.
fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| {
        std::env::args().next().and_then(|a| a.rsplit('/').next().map(str::to_owned)).unwrap_or_default()
    })
}

/// The span of one invocation: its request id (Lambda's when the runtime gave one, else API Gateway's), the
/// function and the route (the template route key such as `GET /users/{user_id}/profile`, or the WebSocket
/// route); never the query string, headers or body. Returns the start time for [`finish_request`].
pub fn request_span(function: &str, req: &Request) -> (tracing::Span, std::time::Instant) {
    use lambda_http::RequestExt as _;
    use lambda_http::request::RequestContext;
    let (api_request_id, route) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (ctx.request_id.clone(), ctx.route_key.clone()),
        Some(RequestContext::WebSocket(ctx)) => (ctx.request_id.clone(), ctx.route_key.clone()),
        _ => (None, None),
    };
    let request_id = req.lambda_context_ref().map(|c| c.request_id.clone()).or(api_request_id).unwrap_or_default();
    let route = route.unwrap_or_else(|| "-".to_owned());
    let span = tracing::info_span!("request", request_id = %request_id, function, route = %route);
    (span, std::time::Instant::now())
}

/// Ends an invocation's span with its one `request` line: status and latency in milliseconds (at `info`
/// with JSON logs, where it is the access log; at `debug` otherwise).
pub fn finish_request(span: &tracing::Span, started: std::time::Instant, resp: Response<Body>) -> Response<Body> {
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = resp.status().as_u16();
    span.in_scope(|| {
        if json_logs() {
            tracing::info!(status, latency_ms, "request");
        } else {
            tracing::debug!(status, latency_ms, "request");
        }
    });
    resp
}
