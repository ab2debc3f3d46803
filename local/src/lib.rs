//! The local stack: an API Gateway emulator calling the functions in-process through `lambda_http`'s own
//! types, an embedded S3 endpoint (s3s + s3s-fs) and a libSQL file. One process, zero configuration.

pub mod connections;
pub mod gateway;
pub mod processes;
pub mod s3;
pub mod template;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use shared::AppState;
use shared::config::Config;
use shared::secret::StaticCredentials;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Static credentials of the embedded S3 endpoint.
pub const S3_ACCESS_KEY: &str = "messenger-local";
/// Static secret of the embedded S3 endpoint.
pub const S3_SECRET_KEY: &str = "messenger-local-secret";
/// Bucket used when `S3_BUCKET` is unset.
pub const DEFAULT_BUCKET: &str = "messenger";

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address of the HTTP API (port 0 = ephemeral).
    pub http_addr: SocketAddr,
    /// Address of the S3 endpoint (port 0 = ephemeral).
    pub s3_addr: SocketAddr,
    /// Where the database, S3 objects and the generated secret live.
    pub data_dir: PathBuf,
    /// The SAM template whose routes are served; `None` serves the one built into the binary.
    pub template: Option<PathBuf>,
    /// Configuration overrides (names of API.md §12); they win over the environment.
    pub overrides: Vec<(String, String)>,
    /// Whether to read the process environment for configuration.
    pub use_env: bool,
    /// WebSocket idle timeout and maximum duration.
    pub ws_limits: connections::WsLimits,
    /// Run each function as its own process behind a Lambda Runtime API endpoint (as on AWS) instead of
    /// in-process; the binaries come from `functions_dir`.
    pub processes: bool,
    /// Where the function binaries are for `processes`; `None` is this executable's directory.
    pub functions_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            s3_addr: SocketAddr::from(([127, 0, 0, 1], 3001)),
            data_dir: PathBuf::from(".data"),
            template: None,
            overrides: Vec::new(),
            use_env: true,
            ws_limits: connections::WsLimits::default(),
            processes: false,
            functions_dir: None,
        }
    }
}

/// A running stack.
pub struct Stack {
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where the S3 endpoint listens.
    pub s3_addr: SocketAddr,
    /// The state the functions share.
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The repository's `template.yaml`, built in so the stack starts from any directory.
pub const BUILT_IN_TEMPLATE: &str = include_str!("../../template.yaml");

impl Stack {
    /// Starts everything: S3, migrations, functions, gateway.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("create data dir {}", options.data_dir.display()))?;
        // The data dir holds the database, the JWT secret and every uploaded object: owner only.
        std::fs::set_permissions(&options.data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .with_context(|| format!("restrict data dir {}", options.data_dir.display()))?;
        let data_dir = options.data_dir.canonicalize()?;
        let (template_name, template_text) = match &options.template {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path).with_context(|| format!("read template {}", path.display()))?,
            ),
            None => ("the built-in template.yaml".to_owned(), BUILT_IN_TEMPLATE.to_owned()),
        };
        let routes = template::http_routes(&template_text).with_context(|| format!("routes of {template_name}"))?;
        let ws_routes =
            template::ws_routes(&template_text).with_context(|| format!("WebSocket routes of {template_name}"))?;
        let functions = gateway::functions();
        let names: Vec<&str> = functions.keys().copied().collect();
        template::check(&routes, &ws_routes, &names).with_context(|| format!("check {template_name}"))?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let s3_listener =
            TcpListener::bind(options.s3_addr).await.with_context(|| format!("bind S3 on {}", options.s3_addr))?;
        let http_listener = TcpListener::bind(options.http_addr)
            .await
            .with_context(|| format!("bind HTTP on {}", options.http_addr))?;
        let s3_addr = s3_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;

        let mut defaults: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), format!("file:{}", data_dir.join("messenger.db").display())),
            ("S3_BUCKET".into(), DEFAULT_BUCKET.into()),
            ("S3_ENDPOINT".into(), format!("http://{s3_addr}")),
            ("WS_ENDPOINT".into(), format!("http://{http_addr}/ws")),
        ];
        // Secrets are generated into the data dir on first start (owner-only files) unless set.
        for (name, file) in [("JWT_SECRET", "jwt_secret"), ("ADMIN_SESSION_SECRET", "admin_session_secret")] {
            if resolve(name, &options, &defaults).is_none() {
                defaults.push((name.into(), local_secret(&data_dir, file)?));
            }
        }
        // The local stack serves plain HTTP, where a browser would drop a `Secure` cookie.
        defaults.push(("ADMIN_COOKIE_SECURE".into(), "false".into()));
        let config = Config::from_lookup(|name| resolve(name, &options, &defaults))?;

        let s3_root = data_dir.join("s3");
        std::fs::create_dir_all(s3_root.join(&config.s3_bucket))?;
        let mut tasks = vec![tokio::spawn(s3::serve(s3_listener, s3_root, shutdown_rx.clone()))];

        let credentials = StaticCredentials { access_key: S3_ACCESS_KEY.into(), secret_key: S3_SECRET_KEY.into() };
        let state = Arc::new(AppState::new(config, Some(credentials)).await?);
        let applied = shared::db::migrate(&state.db).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "migrations applied");
        }
        shared::db::check_schema(&state.db).await?;

        tasks.push(tokio::spawn(cleanup_hourly(state.clone(), shutdown_rx.clone())));
        let functions = if options.processes {
            let dir = match &options.functions_dir {
                Some(dir) => dir.clone(),
                None => std::env::current_exe()?.parent().map(std::path::Path::to_path_buf).unwrap_or_default(),
            };
            // Each process gets the configuration this stack resolved, and the embedded S3's credentials.
            let mut env: Vec<(String, String)> = defaults.clone();
            env.extend(options.overrides.iter().cloned());
            env.extend([
                ("AWS_ACCESS_KEY_ID".to_owned(), S3_ACCESS_KEY.to_owned()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), S3_SECRET_KEY.to_owned()),
                ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            ]);
            let mut names: Vec<&'static str> = functions.keys().copied().collect();
            names.sort_unstable();
            let (api, task) = processes::RuntimeApi::start(&names, &dir, env, shutdown_rx.clone()).await?;
            tasks.push(task);
            tracing::info!(functions = names.len(), dir = %dir.display(), "functions run as processes");
            api.handlers()
        } else {
            functions
        };
        let gw = gateway::Gateway::new(
            state.clone(),
            routes,
            ws_routes,
            functions,
            options.ws_limits,
            http_addr.to_string(),
        );
        tasks.push(tokio::spawn(serve(http_listener, gw, shutdown_rx)));
        Ok(Self { http_addr, s3_addr, state, shutdown, tasks })
    }

    /// Stops accepting connections and waits for the servers to finish.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The scheduled `cleanup` function of the template, run in-process every hour (and once at start, which
/// also finishes the bulk jobs a killed stack left).
async fn cleanup_hourly(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(200);
        match shared::bulk::resume(&state, None, deadline).await {
            Ok(0) => {}
            Ok(jobs) => tracing::info!(jobs, "clean-up finished bulk jobs"),
            Err(e) => tracing::warn!(error = ?e, "clean-up of bulk jobs failed"),
        }
        match shared::files::cleanup(&state, shared::time::now_ms() - shared::files::MAX_UNREFERENCED_MS).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "clean-up removed unreferenced uploads"),
            Err(e) => tracing::warn!(error = ?e, "clean-up failed"),
        }
        match shared::files::sweep_bucket(&state, shared::time::now_ms() - shared::files::SWEEP_MIN_AGE_MS).await {
            Ok(0) => {}
            Ok(swept) => tracing::info!(swept, "clean-up swept objects without a row"),
            Err(e) => tracing::warn!(error = ?e, "bucket sweep failed"),
        }
        match shared::mls::expire(&state, shared::time::now_ms() - shared::mls::HANDSHAKE_TTL_MS).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "clean-up removed group commits and welcomes past 30 days"),
            Err(e) => tracing::warn!(error = ?e, "clean-up of group commits and welcomes failed"),
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
        }
    }
}

/// A configuration value: explicit override, then the environment, then the local default.
fn resolve(name: &str, options: &Options, defaults: &[(String, String)]) -> Option<String> {
    let pick = |list: &[(String, String)]| list.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    pick(&options.overrides)
        .or_else(|| options.use_env.then(|| std::env::var(name).ok()).flatten().filter(|v| !v.is_empty()))
        .or_else(|| pick(defaults))
}

/// A secret of this data dir (`file`): generated on first start, stored with mode 0600.
fn local_secret(data_dir: &std::path::Path, file: &str) -> anyhow::Result<String> {
    let path = data_dir.join(file);
    if let Ok(secret) = std::fs::read_to_string(&path) {
        let secret = secret.trim().to_owned();
        if secret.len() >= 32 {
            return Ok(secret);
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random: {e}"))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("write {}", path.display()))?;
        file.write_all(secret.as_bytes())?;
    }
    Ok(secret)
}

/// Serves the HTTP API and the WebSocket API on `listener` until shutdown.
async fn serve(listener: TcpListener, gateway: gateway::Gateway, mut shutdown: watch::Receiver<bool>) {
    let app = axum::Router::new()
        .route("/ws", axum::routing::get(crate::ws::entry))
        .route(
            "/ws/@connections/{id}",
            axum::routing::post(crate::ws::post_to_connection)
                .get(crate::ws::get_connection)
                .delete(crate::ws::delete_connection),
        )
        .fallback(gateway::http_entry)
        .with_state(gateway);
    // Frames and answers go out at once, as API Gateway's do: with Nagle's algorithm a small write behind an
    // unacknowledged one waits for the peer's delayed ACK (40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let result = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = ?e, "HTTP server stopped");
    }
}
