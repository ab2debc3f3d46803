//! Cold start: exec → ready for the first event, for every function binary, next to a hello-world
//! `lambda_http` function built the same way (`bench-hello`).
//!
//! Each run starts the binary as Lambda does, with `AWS_LAMBDA_RUNTIME_API` pointing at a Runtime API served
//! here. *Ready* is the binary's first `GET …/invocation/next` (its init is done: configuration read, clients
//! and the database connection built). HTTP functions then get one API Gateway v2 event (`GET /health`) and
//! *first answer* is when their response arrives. The functions run against a fresh database that the
//! `migrate` binary brings to the current schema first, with the configuration the local stack would give.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::Notify;

use crate::stats::{Latencies, Summary};

/// Every function of `template.yaml`, HTTP ones first; `bench-hello` is the baseline.
pub const FUNCTIONS: &[(&str, Kind)] = &[
    ("bench-hello", Kind::Http),
    ("auth", Kind::Http),
    ("users", Kind::Http),
    ("system", Kind::Http),
    ("chats", Kind::Http),
    ("files", Kind::Http),
    ("themes", Kind::Http),
    ("contacts", Kind::Http),
    ("keys", Kind::Http),
    ("admin", Kind::Http),
    ("ws-connect", Kind::Other),
    ("ws-disconnect", Kind::Other),
    ("ws-message", Kind::Other),
    ("cleanup", Kind::Other),
    ("migrate", Kind::Other),
];

/// Whether a function gets the HTTP event after it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Other,
}

/// The API Gateway HTTP API (v2) event of `GET /health`.
const HEALTH_EVENT: &str = r#"{"version":"2.0","routeKey":"$default","rawPath":"/health","rawQueryString":"",
"headers":{"host":"bench.local","user-agent":"messenger-bench"},"requestContext":{"accountId":"123456789012",
"apiId":"bench","domainName":"bench.local","domainPrefix":"bench","http":{"method":"GET","path":"/health",
"protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":"messenger-bench"},"requestId":"bench-1",
"routeKey":"$default","stage":"$default","time":"06/Dec/2026:00:00:00 +0000","timeEpoch":0},"isBase64Encoded":false}"#;

/// One function's cold starts.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    pub function: String,
    /// Exec → first `GET /invocation/next`.
    pub ready: Summary,
    /// Exec → the answer to the first event (HTTP functions only).
    pub first_answer: Option<Summary>,
    /// `ready` p50 over the hello-world's.
    pub vs_hello: Option<f64>,
    /// Size of the binary in bytes.
    pub binary_bytes: u64,
}

/// What the Runtime API saw of one run.
#[derive(Default)]
struct Run {
    ready: Option<Instant>,
    answered: Option<Instant>,
    error: Option<String>,
    served: bool,
    kind_http: bool,
}

#[derive(Clone, Default)]
struct Api {
    runs: Arc<Mutex<HashMap<String, Run>>>,
    changed: Arc<Notify>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn next(State(api): State<Api>, UrlPath(run): UrlPath<String>) -> Response {
    let now = Instant::now();
    let serve = {
        let mut runs = lock(&api.runs);
        let Some(r) = runs.get_mut(&run) else { return StatusCode::NOT_FOUND.into_response() };
        r.ready.get_or_insert(now);
        let serve = r.kind_http && !r.served;
        r.served = true;
        serve
    };
    api.changed.notify_waiters();
    if !serve {
        // Nothing more to invoke: the process waits here until it is killed.
        std::future::pending::<()>().await;
    }
    let deadline = (std::time::SystemTime::now() + Duration::from_secs(15))
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", format!("{run}-1")),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned()),
        ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".to_owned()),
        ("content-type", "application/json".to_owned()),
    ] {
        if let Ok(v) = value.parse() {
            headers.insert(name, v);
        }
    }
    (headers, HEALTH_EVENT).into_response()
}

async fn answered(State(api): State<Api>, UrlPath((run, _id)): UrlPath<(String, String)>) -> StatusCode {
    if let Some(r) = lock(&api.runs).get_mut(&run) {
        r.answered.get_or_insert_with(Instant::now);
    }
    api.changed.notify_waiters();
    StatusCode::ACCEPTED
}

/// Records a run's failure as the function reported it.
fn record_error(api: &Api, run: &str, body: &str) -> StatusCode {
    if let Some(r) = lock(&api.runs).get_mut(run) {
        r.error = Some(body.chars().take(500).collect());
    }
    api.changed.notify_waiters();
    StatusCode::ACCEPTED
}

async fn failed(State(api): State<Api>, UrlPath((run, _id)): UrlPath<(String, String)>, body: String) -> StatusCode {
    record_error(&api, &run, &body)
}

async fn init_failed(State(api): State<Api>, UrlPath(run): UrlPath<String>, body: String) -> StatusCode {
    record_error(&api, &run, &body)
}

/// The configuration every function gets: a fresh database under `dir` and the local stack's settings.
fn environment(dir: &Path, database_url: Option<&str>) -> Vec<(String, String)> {
    let secret = |label: &str| format!("{label}-{}", "0123456789abcdef".repeat(4));
    vec![
        ("JWT_SECRET".into(), secret("bench-jwt")),
        ("ADMIN_SESSION_SECRET".into(), secret("bench-admin")),
        ("ADMIN_COOKIE_SECURE".into(), "false".into()),
        (
            "DATABASE_URL".into(),
            database_url.map_or_else(|| format!("file:{}", dir.join("bench.db").display()), str::to_owned),
        ),
        ("S3_BUCKET".into(), "messenger".into()),
        ("S3_ENDPOINT".into(), "http://127.0.0.1:9".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "messenger-local".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "messenger-local-secret".into()),
        ("WS_ENDPOINT".into(), "http://127.0.0.1:9/ws".into()),
        ("RUST_LOG".into(), "warn".into()),
    ]
}

/// Measures `runs` cold starts of every function binary found in `dir`, against a fresh database file or
/// the database at `database_url` (migrated first).
pub async fn measure(
    dir: &Path,
    runs: usize,
    only: &[String],
    database_url: Option<&str>,
) -> anyhow::Result<Vec<ColdStart>> {
    let mut nonce = [0u8; 8];
    let _ = getrandom::fill(&mut nonce);
    let scratch = std::env::temp_dir().join(format!(
        "messenger-bench-cold-{}-{:016x}",
        std::process::id(),
        u64::from_le_bytes(nonce)
    ));
    std::fs::create_dir(&scratch).with_context(|| format!("create {}", scratch.display()))?;
    let result = measure_in(dir, &scratch, runs, only, database_url).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn measure_in(
    dir: &Path,
    scratch: &Path,
    runs: usize,
    only: &[String],
    database_url: Option<&str>,
) -> anyhow::Result<Vec<ColdStart>> {
    let env = environment(scratch, database_url);
    let migrate = dir.join("migrate");
    anyhow::ensure!(
        migrate.is_file(),
        "no function binaries in {} (build them with `cargo build --release --workspace --bins`, or pass \
         --functions-dir)",
        dir.display()
    );
    let out = tokio::process::Command::new(&migrate)
        .envs(env.iter().cloned())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .await
        .context("run migrate")?;
    anyhow::ensure!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));

    let api = Api::default();
    let app = Router::new()
        .route("/{run}/2018-06-01/runtime/invocation/next", get(next))
        .route("/{run}/2018-06-01/runtime/invocation/{id}/response", post(answered))
        .route("/{run}/2018-06-01/runtime/invocation/{id}/error", post(failed))
        .route("/{run}/2018-06-01/runtime/init/error", post(init_failed))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut out = Vec::new();
    let mut hello_p50 = None;
    for &(name, kind) in FUNCTIONS {
        if !only.is_empty() && name != "bench-hello" && !only.iter().any(|o| o == name) {
            continue;
        }
        let binary = dir.join(name);
        if !binary.is_file() {
            eprintln!("cold-start: no {} — skipped", binary.display());
            continue;
        }
        let bar = crate::counter(runs as u64, &format!("cold start {name}"));
        let (mut ready, mut answer) = (Latencies::default(), Latencies::default());
        for i in 0..runs {
            let (r, a) = one(&api, addr, &binary, name, kind, &env, i).await?;
            ready.record(r);
            if let Some(a) = a {
                answer.record(a);
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let ready = ready.summary();
        if name == "bench-hello" {
            hello_p50 = Some(ready.p50_ms);
        }
        out.push(ColdStart {
            function: name.to_owned(),
            ready,
            first_answer: (kind == Kind::Http).then(|| answer.summary()),
            vs_hello: hello_p50.filter(|h| *h > 0.0).map(|h| ready.p50_ms / h),
            binary_bytes: std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0),
        });
    }
    server.abort();
    Ok(out)
}

/// One cold start: exec, wait for ready (and the first answer), kill.
async fn one(
    api: &Api,
    addr: std::net::SocketAddr,
    binary: &Path,
    name: &str,
    kind: Kind,
    env: &[(String, String)],
    i: usize,
) -> anyhow::Result<(Duration, Option<Duration>)> {
    let run = format!("{}-{i}", name.replace(|c: char| !c.is_ascii_alphanumeric(), ""));
    lock(&api.runs).insert(run.clone(), Run { kind_http: kind == Kind::Http, ..Run::default() });
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .envs(env.iter().cloned())
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://{addr}/{run}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("exec {}", binary.display()))?;
    let give_up = started + Duration::from_secs(20);
    let outcome = loop {
        let notified = api.changed.notified();
        {
            let runs = lock(&api.runs);
            let r = &runs[&run];
            if let Some(e) = &r.error {
                break Err(anyhow::anyhow!("{name} failed: {e}"));
            }
            let done = r.ready.is_some() && (kind == Kind::Other || r.answered.is_some());
            if done {
                break Ok((r.ready.map(|t| t - started).unwrap_or_default(), r.answered.map(|t| t - started)));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                use tokio::io::AsyncReadExt as _;
                let _ = s.read_to_string(&mut err).await;
            }
            break Err(anyhow::anyhow!("{name} exited ({status}) before it was ready: {}", err.trim()));
        }
        if Instant::now() > give_up {
            break Err(anyhow::anyhow!("{name} was not ready within 20 s"));
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
    };
    let _ = child.kill().await;
    lock(&api.runs).remove(&run);
    outcome
}
