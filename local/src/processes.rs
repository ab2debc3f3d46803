//! `--processes`: every function as its own process behind a Lambda Runtime API endpoint, as AWS runs them.
//! Each function binary is started on its first invocation (a cold start, logged with its init time), polls
//! `GET /2018-06-01/runtime/invocation/next` and posts its response; one invocation at a time per process,
//! as in one Lambda execution environment. A process that exits fails its invocation with a 502 (as API
//! Gateway answers a failed invocation) and is started again on the next one; an init error is logged with
//! the function's own message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::{get, post};
use base64::Engine as _;
use lambda_http::{Body, Response};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::gateway::{Handler, bad_gateway};

/// How long an invocation may take before the gateway gives up (the template's function timeout).
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(15);

/// What a process answered for one invocation.
enum Outcome {
    Response(Bytes),
    Error(String),
}

struct Invocation {
    id: String,
    event: String,
    done: oneshot::Sender<Outcome>,
}

/// One function: its binary, its environment, its queue and its current process.
struct Function {
    name: &'static str,
    binary: PathBuf,
    env: Vec<(String, String)>,
    queue: mpsc::UnboundedSender<Invocation>,
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// The running process's generation, 0 when none runs; bumped on every start.
    running: Mutex<Option<u64>>,
    started: Mutex<Option<Instant>>,
    /// The stack's shutdown: every process is killed then.
    shutdown: watch::Receiver<bool>,
}

/// The Runtime API of every function, on one listener, each under `/<function>`.
pub struct RuntimeApi {
    functions: HashMap<&'static str, Arc<Function>>,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RuntimeApi {
    /// Checks that every function's binary is in `dir`, binds the Runtime API and serves it until shutdown.
    /// `env` is the configuration every process gets (the stack's own, resolved).
    pub async fn start(
        names: &[&'static str],
        dir: &Path,
        env: Vec<(String, String)>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let missing: Vec<&str> = names.iter().copied().filter(|n| !dir.join(n).is_file()).collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "--processes needs the function binaries in {}; missing: {} (build them with `cargo build --workspace --bins`, \
                 or point --functions-dir at them)",
                dir.display(),
                missing.join(", ")
            );
        }
        let listener =
            TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.context("bind the Runtime API")?;
        let addr = listener.local_addr()?;
        // As on AWS, the secrets reach each process as the ARNs of Secrets Manager secrets, read through the
        // Secrets Manager API (served on this listener), never as values in its environment.
        let (env, secrets) = Secrets::take(env, addr);
        let mut functions = HashMap::new();
        for &name in names {
            let (queue, next) = mpsc::unbounded_channel();
            let mut env = env.clone();
            env.extend([
                ("AWS_LAMBDA_RUNTIME_API".to_owned(), format!("http://{addr}/{name}")),
                ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), name.to_owned()),
                ("AWS_LAMBDA_FUNCTION_VERSION".to_owned(), "$LATEST".to_owned()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(), "256".to_owned()),
            ]);
            functions.insert(
                name,
                Arc::new(Function {
                    name,
                    binary: dir.join(name),
                    env,
                    queue,
                    next: tokio::sync::Mutex::new(next),
                    pending: Mutex::new(HashMap::new()),
                    running: Mutex::new(None),
                    started: Mutex::new(None),
                    shutdown: shutdown.clone(),
                }),
            );
        }
        let api = Self { functions };
        let app = Router::new()
            .route("/{function}/2018-06-01/runtime/invocation/next", get(next))
            .route("/{function}/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/{function}/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/{function}/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::new(api.functions.clone()))
            .merge(
                Router::new()
                    .route(SECRETS_PATH, post(get_secret_value))
                    .route(&format!("{SECRETS_PATH}/"), post(get_secret_value))
                    .with_state(Arc::new(secrets)),
            );
        let mut shutdown = shutdown;
        // Not a graceful shutdown: the processes' long polls of `next` would hold it open forever.
        let task = tokio::spawn(async move {
            tokio::select! {
                served = axum::serve(listener, app).into_future() => {
                    if let Err(e) = served {
                        tracing::error!(error = %e, "Runtime API stopped");
                    }
                }
                _ = shutdown.changed() => {}
            }
        });
        Ok((api, task))
    }

    /// The gateway's handlers: each forwards the event to its function's process.
    pub fn handlers(&self) -> HashMap<&'static str, Handler> {
        self.functions
            .iter()
            .map(|(&name, f)| {
                let f = f.clone();
                let h: Handler = Arc::new(move |_state, event| {
                    let f = f.clone();
                    Box::pin(async move { f.invoke(event).await })
                });
                (name, h)
            })
            .collect()
    }
}

impl Function {
    /// Starts the process if none runs (a cold start).
    fn ensure_running(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut running = lock(&self.running);
        if running.is_some() {
            return Ok(());
        }
        let mut command = tokio::process::Command::new(&self.binary);
        // Not even the stack's own environment passes a secret's value on.
        for name in shared::secrets::SECRETS {
            command.env_remove(name);
        }
        let mut child = command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        *running = Some(generation);
        *lock(&self.started) = Some(Instant::now());
        tracing::info!(function = self.name, pid = child.id(), "cold start");
        let this = self.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = shutdown.changed() => {
                    let _ = child.kill().await;
                    return;
                }
            };
            tracing::warn!(function = this.name, ?status, "function process exited");
            let mut running = lock(&this.running);
            if *running == Some(generation) {
                *running = None;
            }
            drop(running);
            // Whatever it held fails now (the senders are dropped), instead of at the timeout; so do the
            // invocations queued for it that it never took (a process that dies during its init).
            lock(&this.pending).clear();
            if let Ok(mut queued) = this.next.try_lock() {
                while queued.try_recv().is_ok() {}
            }
        });
        Ok(())
    }

    async fn invoke(self: &Arc<Self>, event: String) -> Response<Body> {
        if let Err(e) = self.ensure_running() {
            tracing::error!(function = self.name, error = ?e, "function could not start");
            return bad_gateway("The function could not start");
        }
        let (done, outcome) = oneshot::channel();
        let id = uuid::Uuid::new_v4().to_string();
        if self.queue.send(Invocation { id, event, done }).is_err() {
            return bad_gateway("The function is not available");
        }
        match tokio::time::timeout(INVOCATION_TIMEOUT, outcome).await {
            Ok(Ok(Outcome::Response(body))) => parse_response(&body).unwrap_or_else(|e| {
                tracing::error!(function = self.name, error = %e, "function response is not a Lambda HTTP response");
                bad_gateway("The function answered something API Gateway cannot use")
            }),
            Ok(Ok(Outcome::Error(text))) => {
                tracing::error!(function = self.name, error = %text, "function returned an error");
                bad_gateway("The function failed")
            }
            Ok(Err(_)) => bad_gateway("The function's process exited during the invocation"),
            Err(_) => {
                tracing::error!(function = self.name, "function timed out");
                let mut resp = bad_gateway("The function timed out");
                *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
                resp
            }
        }
    }
}

type Functions = Arc<HashMap<&'static str, Arc<Function>>>;

fn function(functions: &Functions, name: &str) -> Result<Arc<Function>, StatusCode> {
    functions.get(name).cloned().ok_or(StatusCode::NOT_FOUND)
}

/// Where the processes reach the Secrets Manager API, under the Runtime API's listener.
const SECRETS_PATH: &str = "/secretsmanager";

/// The stack's secrets as AWS Secrets Manager secrets, behind a `GetSecretValue` endpoint.
struct Secrets {
    /// The access key id the processes sign with: requests without it are refused, as AWS refuses
    /// unsigned ones.
    access_key: String,
    /// Secret ARN → value.
    values: HashMap<String, String>,
}

impl Secrets {
    /// Moves each secret of `env` into a secret: the process gets `<NAME>_ARN` instead, and the endpoint to
    /// read it at (`addr`).
    fn take(env: Vec<(String, String)>, addr: SocketAddr) -> (Vec<(String, String)>, Self) {
        let access_key = env.iter().find(|(k, _)| k == "AWS_ACCESS_KEY_ID").map(|(_, v)| v.clone()).unwrap_or_default();
        let mut values = HashMap::new();
        let mut out = Vec::new();
        for (name, value) in env {
            if shared::secrets::SECRETS.contains(&name.as_str()) {
                let arn = format!(
                    "arn:aws:secretsmanager:us-east-1:000000000000:secret:messenger-local/{}",
                    name.to_lowercase().replace('_', "-")
                );
                out.push((shared::secrets::arn_variable(&name), arn.clone()));
                values.insert(arn, value);
            } else {
                out.push((name, value));
            }
        }
        out.push(("AWS_ENDPOINT_URL_SECRETS_MANAGER".to_owned(), format!("http://{addr}{SECRETS_PATH}")));
        (out, Self { access_key, values })
    }
}

/// An AWS JSON-protocol error.
fn aws_error(status: StatusCode, kind: &str, message: &str) -> AxumResponse {
    let body = serde_json::json!({"__type": kind, "message": message}).to_string();
    (status, [("x-amzn-errortype", kind), ("content-type", "application/x-amz-json-1.1")], body).into_response()
}

/// `POST /` with `X-Amz-Target: secretsmanager.GetSecretValue`, as Secrets Manager answers it: the secret's
/// current value, `ResourceNotFoundException` for an unknown id, and a refusal without the stack's
/// credentials.
async fn get_secret_value(State(secrets): State<Arc<Secrets>>, headers: HeaderMap, body: Bytes) -> AxumResponse {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !header("authorization").contains(&format!("Credential={}/", secrets.access_key)) {
        return aws_error(StatusCode::BAD_REQUEST, "UnrecognizedClientException", "The security token is invalid.");
    }
    if header("x-amz-target") != "secretsmanager.GetSecretValue" {
        return aws_error(StatusCode::BAD_REQUEST, "UnknownOperationException", "Only GetSecretValue is served.");
    }
    #[derive(Deserialize)]
    struct Request {
        #[serde(rename = "SecretId")]
        secret_id: String,
    }
    let Ok(request) = serde_json::from_slice::<Request>(&body) else {
        return aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", "SecretId is required.");
    };
    let Some(value) = secrets.values.get(&request.secret_id) else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        );
    };
    let name = request.secret_id.rsplit(':').next().unwrap_or_default();
    let body = serde_json::json!({
        "ARN": request.secret_id, "Name": name, "SecretString": value,
        "VersionId": "00000000-0000-0000-0000-000000000001", "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1.7e9,
    });
    ([("content-type", "application/x-amz-json-1.1")], body.to_string()).into_response()
}

/// `GET /runtime/invocation/next`: waits for the next invocation of this function.
async fn next(State(functions): State<Functions>, UrlPath(name): UrlPath<String>) -> AxumResponse {
    let f = match function(&functions, &name) {
        Ok(f) => f,
        Err(status) => return status.into_response(),
    };
    if let Some(started) = lock(&f.started).take() {
        tracing::info!(function = f.name, init_ms = started.elapsed().as_secs_f64() * 1000.0, "function ready");
    }
    let Some(invocation) = f.next.lock().await.recv().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    lock(&f.pending).insert(invocation.id.clone(), invocation.done);
    let deadline = shared::time::now_ms() + i64::try_from(INVOCATION_TIMEOUT.as_millis()).unwrap_or(15_000);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = value.parse() {
            headers.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", invocation.id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set("lambda-runtime-invoked-function-arn", format!("arn:aws:lambda:us-east-1:000000000000:function:{}", f.name));
    set("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned());
    set("content-type", "application/json".to_owned());
    (StatusCode::OK, headers, invocation.event).into_response()
}

/// `POST /runtime/invocation/{id}/response`
async fn response(
    State(functions): State<Functions>,
    UrlPath((name, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> StatusCode {
    finish(&functions, &name, &id, Outcome::Response(body))
}

/// `POST /runtime/invocation/{id}/error`
async fn error(
    State(functions): State<Functions>,
    UrlPath((name, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> StatusCode {
    finish(&functions, &name, &id, Outcome::Error(String::from_utf8_lossy(&body).into_owned()))
}

fn finish(functions: &Functions, name: &str, id: &str, outcome: Outcome) -> StatusCode {
    let Ok(f) = function(functions, name) else { return StatusCode::NOT_FOUND };
    match lock(&f.pending).remove(id) {
        Some(done) => {
            let _ = done.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

/// `POST /runtime/init/error`: the function failed before serving; it exits next.
async fn init_error(State(functions): State<Functions>, UrlPath(name): UrlPath<String>, body: Bytes) -> StatusCode {
    tracing::error!(function = %name, error = %String::from_utf8_lossy(&body), "function init failed");
    if function(&functions, &name).is_err() {
        return StatusCode::NOT_FOUND;
    }
    StatusCode::ACCEPTED
}

/// A Lambda HTTP response (payload format 2.0 or the WebSocket/proxy shape) as the runtime posts it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LambdaResponse {
    status_code: u16,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    multi_value_headers: HashMap<String, Vec<String>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
    #[serde(default)]
    cookies: Vec<String>,
}

fn parse_response(bytes: &[u8]) -> anyhow::Result<Response<Body>> {
    let r: LambdaResponse = serde_json::from_slice(bytes)?;
    let body = match r.body {
        None => Body::Empty,
        Some(b) if r.is_base64_encoded => Body::Binary(base64::engine::general_purpose::STANDARD.decode(b)?),
        Some(b) => Body::Text(b),
    };
    let mut builder = Response::builder().status(r.status_code);
    for (name, value) in &r.headers {
        builder = builder.header(name, value);
    }
    for (name, values) in &r.multi_value_headers {
        if !r.headers.contains_key(name) {
            for value in values {
                builder = builder.header(name, value);
            }
        }
    }
    for cookie in &r.cookies {
        builder = builder.header("set-cookie", cookie);
    }
    Ok(builder.body(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_responses_become_http_responses() {
        let r = parse_response(
            br#"{"statusCode":201,"headers":{"content-type":"application/json"},"multiValueHeaders":{},
                "body":"{\"a\":1}","isBase64Encoded":false,"cookies":["a=b"]}"#,
        )
        .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["set-cookie"], "a=b");
        assert_eq!(r.body(), &Body::Text(r#"{"a":1}"#.into()));
        let r = parse_response(br#"{"statusCode":200,"body":"AAEC","isBase64Encoded":true}"#).unwrap();
        assert_eq!(r.body(), &Body::Binary(vec![0, 1, 2]));
        assert!(parse_response(b"not json").is_err());
    }
}
