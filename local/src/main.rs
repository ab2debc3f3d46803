//! `messenger-local`: the whole stack on one laptop.

use std::net::SocketAddr;
use std::path::PathBuf;

use messenger_local::{Options, Stack};

const HELP: &str = "messenger-local: the messenger backend on this machine, with API Gateway and S3 emulated

Usage: messenger-local [options]

Options (each also as an environment variable):
  --host <ip>            address to bind both servers      [MESSENGER_HOST, default 127.0.0.1]
  --port <port>          HTTP API port                     [MESSENGER_PORT, default 3000]
  --s3-port <port>       embedded S3 endpoint port         [MESSENGER_S3_PORT, default 3001]
  --data-dir <dir>       database, objects and secrets     [MESSENGER_DATA_DIR, default .data]
  --template <file>      SAM template with the routes      [MESSENGER_TEMPLATE, default template.yaml]
  --ws-idle-timeout <s>  close idle WebSockets after s     [MESSENGER_WS_IDLE_TIMEOUT, default 600]
  --ws-max-duration <s>  close any WebSocket after s       [MESSENGER_WS_MAX_DURATION, default 7200]
  -h, --help             this text

Configuration of API.md §12 (JWT_SECRET, BCRYPT_COST, CORS_ALLOWED_ORIGINS, RATE_LIMIT_*, ...) is read
from the environment; JWT_SECRET is generated into <data-dir>/jwt_secret (mode 0600) when unset.";

fn parse_args() -> Result<Options, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut host = env("MESSENGER_HOST").unwrap_or_else(|| "127.0.0.1".into());
    let mut port = env("MESSENGER_PORT").unwrap_or_else(|| "3000".into());
    let mut s3_port = env("MESSENGER_S3_PORT").unwrap_or_else(|| "3001".into());
    let mut options = Options::default();
    if let Some(dir) = env("MESSENGER_DATA_DIR") {
        options.data_dir = PathBuf::from(dir);
    }
    if let Some(t) = env("MESSENGER_TEMPLATE") {
        options.template = PathBuf::from(t);
    }
    let secs = |name: &str, text: &str| -> Result<std::time::Duration, String> {
        text.parse::<u64>().map(std::time::Duration::from_secs).map_err(|_| format!("{name} needs whole seconds"))
    };
    if let Some(v) = env("MESSENGER_WS_IDLE_TIMEOUT") {
        options.ws_limits.idle_timeout = secs("MESSENGER_WS_IDLE_TIMEOUT", &v)?;
    }
    if let Some(v) = env("MESSENGER_WS_MAX_DURATION") {
        options.ws_limits.max_duration = secs("MESSENGER_WS_MAX_DURATION", &v)?;
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            "--host" => host = value()?,
            "--port" => port = value()?,
            "--s3-port" => s3_port = value()?,
            "--data-dir" => options.data_dir = PathBuf::from(value()?),
            "--template" => options.template = PathBuf::from(value()?),
            "--ws-idle-timeout" => options.ws_limits.idle_timeout = secs(&arg, &value()?)?,
            "--ws-max-duration" => options.ws_limits.max_duration = secs(&arg, &value()?)?,
            other => return Err(format!("unknown option {other} (see --help)")),
        }
    }
    let addr = |port: &str| -> Result<SocketAddr, String> {
        format!("{host}:{port}").parse().map_err(|_| format!("invalid address {host}:{port}"))
    };
    options.http_addr = addr(&port)?;
    options.s3_addr = addr(&s3_port)?;
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::lambda::init_tracing();
    let options = parse_args().map_err(anyhow::Error::msg)?;
    let stack = Stack::start(options).await?;
    println!("HTTP API   http://{}", stack.http_addr);
    println!(
        "S3         http://{}  (bucket {}, key {}, secret {})",
        stack.s3_addr,
        stack.state.storage.bucket(),
        messenger_local::S3_ACCESS_KEY,
        messenger_local::S3_SECRET_KEY
    );
    println!("WebSocket  ws://{}/ws", stack.http_addr);
    println!("API docs   http://{}/docs", stack.http_addr);
    shutdown_signal().await;
    println!("shutting down");
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
