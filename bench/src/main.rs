//! `messenger-bench --url <base> <scenario> [--json FILE] [--svg FILE]`: see the README's "Performance".

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use messenger_bench::{Report, Target};

/// Load and cold-start measurements of the messenger backend.
///
/// The server must allow the load: run the local stack with the bench's rate limits (`bench/local.sh` does).
#[derive(Debug, Parser)]
#[command(name = "messenger-bench", version)]
struct Cli {
    /// Base URL of the stack or stage.
    #[arg(long, env = "MESSENGER_URL", default_value = "http://127.0.0.1:3000", global = true)]
    url: String,
    /// Write the results as JSON here.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Draw latency against load as SVG here.
    #[arg(long, global = true)]
    svg: Option<PathBuf>,
    /// The server's process id: its CPU is reported next to the bench's.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Args, Clone)]
struct RelayArgs {
    /// Chatting pairs (both users of a pair send).
    #[arg(long, default_value_t = 10)]
    pairs: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

#[derive(Debug, Args, Clone)]
struct OpenArgs {
    #[command(flatten)]
    relay: RelayArgs,
    /// Offered loads in messages per second, all senders together.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000")]
    rates: Vec<f64>,
}

#[derive(Debug, Args, Clone)]
struct HttpArgs {
    /// Concurrent clients, one level after another.
    #[arg(long, value_delimiter = ',', default_value = "1,8,16,64,256")]
    concurrency: Vec<usize>,
    /// Seconds per level.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// The path to GET (with the bench user's token).
    #[arg(long, default_value = "/me")]
    path: String,
}

#[derive(Debug, Args, Clone)]
struct HistoryArgs {
    /// Messages in the conversation.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Concurrent clients, one level after another.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Seconds per level.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

#[derive(Debug, Args, Clone)]
struct BurstArgs {
    #[command(flatten)]
    relay: RelayArgs,
    /// Logins fired at once, a third into the run.
    #[arg(long, default_value_t = 20)]
    logins: usize,
}

#[derive(Debug, Args, Clone)]
struct ColdArgs {
    /// Where the function binaries are [default: this executable's directory, e.g. target/release].
    #[arg(long)]
    functions_dir: Option<PathBuf>,
    /// Cold starts per function.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Only these functions (besides the hello-world baseline).
    #[arg(long = "function")]
    functions: Vec<String>,
    /// The database the functions open, e.g. a libSQL server's `http://127.0.0.1:8080` as on AWS (migrated
    /// first) [default: a fresh database file].
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Debug, Args, Clone)]
struct ScaleArgs {
    /// Conversations of the account whose chat list is read.
    #[arg(long, default_value_t = 50)]
    chats: usize,
    /// Concurrent clients, one level after another.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    concurrency: Vec<usize>,
    /// Seconds per level.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

#[derive(Debug, Args, Clone)]
struct GroupArgs {
    /// Member devices, the sender's included.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Rounds of each phase.
    #[arg(long, default_value_t = 50)]
    rounds: usize,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Chatting pairs, each sender waiting for its `message_sent`.
    Closed(RelayArgs),
    /// Messages at fixed offered rates; latency from the scheduled send time.
    Open(OpenArgs),
    /// One endpoint at a concurrency sweep.
    Http(HttpArgs),
    /// History pages of a large conversation.
    History(HistoryArgs),
    /// Logins fired at once while the relay runs.
    LoginBurst(BurstArgs),
    /// Exec → ready for the first event, of every function binary and a hello-world.
    ColdStart(ColdArgs),
    /// Reads whose cost must not grow with the database: chat list, search, history, login. Run it on a
    /// fresh stack and on a seeded one (`SEED_USERS=… SEED_MESSAGES=… bench/local.sh scale`).
    Scale(ScaleArgs),
    /// One MLS group message to every other member device, next to one-to-one sends reaching the same devices.
    Group(GroupArgs),
    /// Every scenario with its defaults (cold start when the function binaries are found).
    All,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.1))
}

fn default_functions_dir() -> PathBuf {
    std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)).unwrap_or_else(|| PathBuf::from("."))
}

async fn run(cli: &Cli, report: &mut Report) -> anyhow::Result<()> {
    let t = Target { url: cli.url.trim_end_matches('/').to_owned(), server_pid: cli.server_pid };
    report.url.clone_from(&t.url);
    match &cli.scenario {
        Scenario::Closed(a) => report.closed = Some(messenger_bench::closed(&t, a.pairs, secs(a.duration)).await?),
        Scenario::Open(a) => {
            report.open = messenger_bench::open(&t, a.relay.pairs, &a.rates, secs(a.relay.duration)).await?;
        }
        Scenario::Http(a) => {
            report.http = messenger_bench::http_sweep(&t, &a.path, &a.concurrency, secs(a.duration)).await?;
        }
        Scenario::History(a) => {
            report.history = Some(messenger_bench::history(&t, a.messages, &a.concurrency, secs(a.duration)).await?);
        }
        Scenario::LoginBurst(a) => {
            report.login_burst =
                Some(messenger_bench::login_burst(&t, a.relay.pairs, a.logins, secs(a.relay.duration)).await?);
        }
        Scenario::ColdStart(a) => {
            let dir = a.functions_dir.clone().unwrap_or_else(default_functions_dir);
            report.cold_start =
                messenger_bench::cold::measure(&dir, a.runs.max(1), &a.functions, a.database_url.as_deref()).await?;
        }
        Scenario::Scale(a) => {
            report.scale = Some(messenger_bench::scale(&t, a.chats, &a.concurrency, secs(a.duration)).await?);
        }
        Scenario::Group(a) => {
            report.group = Some(messenger_bench::group::run(&t.url, a.devices, a.rounds.max(1), t.server_pid).await?);
        }
        Scenario::All => {
            let dir = default_functions_dir();
            if dir.join("migrate").is_file() {
                report.cold_start = messenger_bench::cold::measure(&dir, 20, &[], None).await?;
            } else {
                eprintln!("cold start skipped: no function binaries next to this one");
            }
            report.closed = Some(messenger_bench::closed(&t, 10, secs(10.0)).await?);
            report.open = messenger_bench::open(&t, 10, &[250.0, 500.0, 1000.0, 2000.0], secs(10.0)).await?;
            report.http = messenger_bench::http_sweep(&t, "/me", &[1, 8, 16, 64, 256], secs(5.0)).await?;
            report.history = Some(messenger_bench::history(&t, 10_000, &[1, 8, 64], secs(5.0)).await?);
            report.login_burst = Some(messenger_bench::login_burst(&t, 10, 20, secs(10.0)).await?);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    messenger_client::api::init_tls();
    let cli = Cli::parse();
    let mut report = Report { machine: messenger_bench::machine(), ..Report::default() };
    // Whatever finished is reported even when a later scenario fails.
    let outcome = run(&cli, &mut report).await;
    print!("{}", messenger_bench::table(&report));
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    if let Some(path) = &cli.svg {
        let svg = messenger_bench::charts(&report);
        if svg.is_empty() {
            eprintln!("no chart: the SVG needs the `open` or `http` scenario");
        } else {
            std::fs::write(path, svg)?;
        }
    }
    outcome
}
