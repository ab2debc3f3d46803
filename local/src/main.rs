//! `messenger-local`: the whole stack on one laptop.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use messenger_local::{Options, Stack};

/// The messenger backend on this machine, with API Gateway and S3 emulated.
///
/// Configuration of API.md §12 (JWT_SECRET, BCRYPT_COST, CORS_ALLOWED_ORIGINS, RATE_LIMIT_*, ...) is read from
/// the environment; JWT_SECRET is generated into <data-dir>/jwt_secret (mode 0600) when unset.
#[derive(Debug, Parser)]
#[command(name = "messenger-local", version)]
struct Args {
    /// What to do instead of running the stack.
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to bind both servers.
    #[arg(long, env = "MESSENGER_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// HTTP API port.
    #[arg(long, env = "MESSENGER_PORT", default_value_t = 3000)]
    port: u16,
    /// Embedded S3 endpoint port.
    #[arg(long, env = "MESSENGER_S3_PORT", default_value_t = 3001)]
    s3_port: u16,
    /// Database, objects and secrets.
    #[arg(long, env = "MESSENGER_DATA_DIR", default_value = ".data", global = true)]
    data_dir: PathBuf,
    /// SAM template with the routes [default: the template.yaml built into this binary].
    #[arg(long, env = "MESSENGER_TEMPLATE")]
    template: Option<PathBuf>,
    /// Close idle WebSockets after this many seconds.
    #[arg(long, env = "MESSENGER_WS_IDLE_TIMEOUT", default_value_t = 600)]
    ws_idle_timeout: u64,
    /// Close any WebSocket after this many seconds.
    #[arg(long, env = "MESSENGER_WS_MAX_DURATION", default_value_t = 7200)]
    ws_max_duration: u64,
    /// Run every function as its own process behind a Lambda Runtime API endpoint, as AWS does (cold
    /// starts, init failures and crashes show up per function); needs the function binaries
    /// (`cargo build --workspace --bins`).
    #[arg(long, env = "MESSENGER_PROCESSES")]
    processes: bool,
    /// Where the function binaries are for --processes [default: this executable's directory].
    #[arg(long, env = "MESSENGER_FUNCTIONS_DIR")]
    functions_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Operator rights for the admin panel at /admin: the only way to grant or revoke them (also while the
    /// stack runs on the same data directory).
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Makes the account with this phone or username an operator.
    Grant {
        /// Phone number or username of a live account.
        login: String,
    },
    /// Takes operator rights away and ends the account's panel sessions.
    Revoke {
        /// Phone number or username of a live account.
        login: String,
    },
}

/// `admin grant|revoke`: on the stack's database (`DATABASE_URL` if set, else the data dir's file), brought
/// to the current schema first; each change is in the panel's audit log.
async fn admin(data_dir: &std::path::Path, action: AdminAction) -> anyhow::Result<()> {
    let (login, grant) = match action {
        AdminAction::Grant { login } => (login, true),
        AdminAction::Revoke { login } => (login, false),
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = match env("DATABASE_URL") {
        Some(url) => url,
        None => {
            let file = data_dir.join("messenger.db");
            anyhow::ensure!(
                file.exists(),
                "no database at {}: start the stack once (cargo run -p messenger-local) or pass --data-dir",
                file.display()
            );
            format!("file:{}", file.display())
        }
    };
    let token = env("DATABASE_AUTH_TOKEN").map(shared::secret::Secret::new);
    let db = shared::db::Db::open_with(
        &url,
        token.as_ref(),
        shared::db::DbOptions { namespace: env("DATABASE_NAMESPACE"), ..shared::db::DbOptions::default() },
    )
    .await?;
    shared::db::migrate(&db).await?;
    let change = shared::accounts::set_operator(&db, &login, grant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no live account has that phone number or username"))?;
    let user = change.user_id;
    println!(
        "{}",
        match (grant, change.changed) {
            (true, true) => format!("user {user} is now an operator"),
            (true, false) => format!("user {user} already is an operator"),
            (false, true) => format!("user {user} is no longer an operator; their panel sessions ended"),
            (false, false) => format!("user {user} was not an operator"),
        }
    );
    Ok(())
}

/// Settings whose deployed default does not suit a laptop.
const LOCAL_DEFAULTS: [(&str, &str); 1] = [("RATE_LIMIT_REGISTER_IP", "100/3600")];

impl Args {
    fn options(self) -> Options {
        let mut options = Options {
            http_addr: SocketAddr::new(self.host, self.port),
            s3_addr: SocketAddr::new(self.host, self.s3_port),
            data_dir: self.data_dir,
            template: self.template,
            processes: self.processes,
            functions_dir: self.functions_dir,
            ..Options::default()
        };
        options.ws_limits.idle_timeout = Duration::from_secs(self.ws_idle_timeout);
        options.ws_limits.max_duration = Duration::from_secs(self.ws_max_duration);
        // One laptop registers more accounts from one address than a public deployment should accept from
        // one client (5 per hour, kept across restarts): a local default unless the variable is set.
        for (name, value) in LOCAL_DEFAULTS {
            if std::env::var_os(name).is_none_or(|v| v.is_empty()) {
                options.overrides.push((name.to_owned(), value.to_owned()));
            }
        }
        options
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the cause chain, never a backtrace (RUST_BACKTRACE is common among Rust users).
            eprintln!("messenger-local: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if let Some(Command::Admin { action }) = args.command.take() {
        return admin(&args.data_dir, action).await;
    }
    shared::lambda::init_tracing();
    let options = args.options();
    let stack = Stack::start(options).await?;
    let (http, s3) = (format!("http://{}", stack.http_addr), format!("http://{}", stack.s3_addr));
    // With JSON logs stdout holds only JSON lines, so the banner is a log line too.
    if shared::lambda::json_logs() {
        tracing::info!(http = %http, s3 = %s3, bucket = stack.state.storage.bucket(), "local stack listening");
    } else {
        println!("HTTP API   {http}");
        println!(
            "S3         {s3}  (bucket {}, key {}, secret {})",
            stack.state.storage.bucket(),
            messenger_local::S3_ACCESS_KEY,
            messenger_local::S3_SECRET_KEY
        );
        println!("WebSocket  ws://{}/ws", stack.http_addr);
        println!("API docs   {http}/docs");
        println!("Admin      {http}/admin  (grant rights: messenger-local admin grant <phone|username>)");
    }
    shutdown_signal().await;
    if shared::lambda::json_logs() {
        tracing::info!("shutting down");
    } else {
        println!("shutting down");
    }
    stack.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
