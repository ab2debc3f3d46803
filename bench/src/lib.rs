//! `messenger-bench`: load and cold-start measurements of the messenger backend, against any base URL (the
//! local stack or a deployed stage). Speed is measured here, never asserted by timed tests.
//!
//! Scenarios: `closed` (chatting pairs, each sender waits for its `message_sent`), `open` (messages at fixed
//! rates, latency from the scheduled send time), `http` (`GET /me` at a concurrency sweep), `history`
//! (pages of a large conversation), `login-burst` (logins while the relay runs), `cold-start` (exec → ready
//! of every function binary next to a hello-world), `scale` (the reads whose cost must not grow with the
//! database: run it on a small and on a seeded one), `group` (one MLS group message to every other member
//! device, next to the one-to-one sends reaching the same devices), and `all`.

pub mod cold;
pub mod group;
pub mod http;
pub mod plot;
pub mod relay;
pub mod stats;
pub mod users;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::stats::Summary;

/// A bar over a duration (position in milliseconds); hidden when stderr is not a terminal.
pub fn progress(duration: Duration, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_millis().try_into().unwrap_or(u64::MAX));
    if let Ok(style) = ProgressStyle::with_template("{prefix:>18} [{bar:30}] {elapsed:>4} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_owned());
    bar
}

/// Moves `bar` along with the time since `start` every 200 ms, showing `done` with `unit`, until aborted.
pub fn tick(
    bar: &ProgressBar,
    start: Instant,
    done: &Arc<std::sync::atomic::AtomicU64>,
    unit: &'static str,
) -> tokio::task::JoinHandle<()> {
    let (bar, done) = (bar.clone(), done.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            bar.set_position(start.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
            bar.set_message(format!("{} {unit}", done.load(Ordering::Relaxed)));
        }
    })
}

/// A bar over a count.
pub fn counter(n: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(n);
    if let Ok(style) = ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len} {per_sec}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_owned());
    bar
}

/// Where and how a run happens.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL, e.g. `http://127.0.0.1:3000`.
    pub url: String,
    /// The server's process id, to report its CPU next to the bench's (local stack only).
    pub server_pid: Option<u32>,
}

/// Everything one invocation measured: written as JSON, drawn as SVG, printed as a table.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub machine: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<relay::RelayReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<relay::RelayReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<http::Level>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_burst: Option<LoginBurst>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cold_start: Vec<cold::ColdStart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<group::GroupReport>,
}

/// The reads whose cost must not grow with the database (issue 9 item 4), measured the same way on any
/// database: compare a run on a fresh stack with one on a seeded stack (`SEED_USERS`, `SEED_MESSAGES` of
/// `bench/local.sh`).
#[derive(Debug, Serialize)]
pub struct Scale {
    /// Conversations of the account whose `GET /chats/active` is read (one page).
    pub chats: usize,
    pub chats_active: Vec<http::Level>,
    /// `GET /users/search` whose answer is a full page of 20 (the bench's own accounts, "Bench User…").
    pub search: Vec<http::Level>,
    /// `GET /users/search` of two characters, which have no trigram in the index: a scan up to the 20th match.
    pub search_two_characters: Vec<http::Level>,
    /// History pages of a 10 000-message conversation.
    pub history: History,
    /// `POST /login`, one after another (bcrypt's cost dominates).
    pub login: Summary,
}

/// History pages of one large conversation.
#[derive(Debug, Serialize)]
pub struct History {
    pub messages: u64,
    pub page: u64,
    pub levels: Vec<http::Level>,
}

/// Logins fired while the relay runs closed loop.
#[derive(Debug, Serialize)]
pub struct LoginBurst {
    pub logins: usize,
    pub failed: usize,
    /// Each login's latency.
    pub login: Summary,
    /// The relay's acknowledgement latency before the burst and while logins were in flight.
    pub relay_before: Summary,
    pub relay_during: Summary,
    pub relay: relay::RelayReport,
}

/// This machine, for the record: CPU model and core count.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{model}, {cores} cores")
}

/// `closed`: `pairs` chatting pairs, each sender waiting for its acknowledgement.
pub async fn closed(t: &Target, pairs: usize, duration: Duration) -> anyhow::Result<relay::RelayReport> {
    let users = users::sign_up(&t.url, pairs * 2, 8).await?;
    relay::run(&t.url, &users, relay::Pace::Closed, duration, None, t.server_pid).await
}

/// `open`: the relay at each offered rate, with fresh pairs each time.
pub async fn open(
    t: &Target,
    pairs: usize,
    rates: &[f64],
    duration: Duration,
) -> anyhow::Result<Vec<relay::RelayReport>> {
    let users = users::sign_up(&t.url, pairs * 2, 8).await?;
    let mut out = Vec::new();
    for &rate in rates {
        out.push(relay::run(&t.url, &users, relay::Pace::Open { rate }, duration, None, t.server_pid).await?);
        // Let the server drain before the next rate.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(out)
}

/// `http`: `GET <path>` at each concurrency.
pub async fn http_sweep(
    t: &Target,
    path: &str,
    levels: &[usize],
    duration: Duration,
) -> anyhow::Result<Vec<http::Level>> {
    let users = users::sign_up(&t.url, 16, 8).await?;
    let path = path.to_owned();
    http::sweep(&t.url, &users, Arc::new(move |_| path.clone()), levels, duration, t.server_pid, "GET").await
}

/// `history`: a conversation of `messages`, then pages of 50 at random positions at each concurrency.
pub async fn history(t: &Target, messages: u64, levels: &[usize], duration: Duration) -> anyhow::Result<History> {
    let users = users::sign_up(&t.url, 2, 2).await?;
    relay::fill(&t.url, &users[0], &users[1], messages, 256).await?;
    // The newest message id bounds the pages: read it from the newest page.
    let http = http::client()?;
    let newest: Vec<wire::objects::Message> = http
        .get(format!("{}/chats/{}/messages?limit=1", t.url, users[1].id))
        .bearer_auth(&users[0].token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let top = newest.first().map(|m| m.id).ok_or_else(|| anyhow::anyhow!("the filled chat is empty"))?;
    let peer = users[1].id;
    let span = messages.saturating_sub(50).max(1);
    let path = Arc::new(move |i: u64| {
        let before = top - i64::try_from(http::spread(i, span)).unwrap_or(0);
        format!("/chats/{peer}/messages?limit=50&before_id={before}")
    });
    let levels = http::sweep(&t.url, &users[..1], path, levels, duration, t.server_pid, "history").await?;
    Ok(History { messages, page: 50, levels })
}

/// `scale`: an account with `chats` conversations (one message each) reads `GET /chats/active`; searches
/// whose answer is a page of the bench's own accounts, with and without the index; history pages; logins.
pub async fn scale(t: &Target, chats: usize, levels: &[usize], duration: Duration) -> anyhow::Result<Scale> {
    let users = users::sign_up(&t.url, chats.max(20) + 1, 8).await?;
    let (viewer, peers) = users.split_first().ok_or_else(|| anyhow::anyhow!("no users"))?;
    for peer in peers.iter().take(chats) {
        relay::fill(&t.url, viewer, peer, 1, 1).await?;
    }
    let viewer = std::slice::from_ref(viewer);
    let get = |path: &'static str| -> http::PathFn { Arc::new(move |_| path.to_owned()) };
    let chats_active =
        http::sweep(&t.url, viewer, get("/chats/active"), levels, duration, t.server_pid, "chats/active").await?;
    let search =
        http::sweep(&t.url, viewer, get("/users/search?query=bench"), levels, duration, t.server_pid, "search").await?;
    let search_two_characters =
        http::sweep(&t.url, viewer, get("/users/search?query=be"), levels, duration, t.server_pid, "search, 2 chars")
            .await?;
    let history = history(t, 10_000, levels, duration).await?;
    let mut login = stats::Latencies::default();
    for peer in peers.iter().take(10) {
        let start = Instant::now();
        users::login(&t.url, peer).await?;
        login.record(start.elapsed());
    }
    Ok(Scale { chats, chats_active, search, search_two_characters, history, login: login.summary() })
}

/// `login-burst`: the relay in closed loop; after a third of the run, `logins` logins at once.
pub async fn login_burst(t: &Target, pairs: usize, logins: usize, duration: Duration) -> anyhow::Result<LoginBurst> {
    let users = users::sign_up(&t.url, pairs * 2, 8).await?;
    let accounts = users::sign_up(&t.url, logins, 8).await?;
    let phase = relay::Phase::new(relay::NOT_STARTED.into());
    let relay = {
        let (url, users, phase, pid) = (t.url.clone(), users.clone(), phase.clone(), t.server_pid);
        tokio::spawn(async move { relay::run(&url, &users, relay::Pace::Closed, duration, Some(phase), pid).await })
    };
    // A third into the run itself, not into the sign-in of its sockets.
    while phase.load(Ordering::Relaxed) == relay::NOT_STARTED && !relay.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(duration / 3).await;
    phase.store(1, Ordering::Relaxed);
    let burst = accounts.iter().map(|a| {
        let url = t.url.clone();
        async move {
            let start = Instant::now();
            let ok = users::login(&url, a).await.is_ok();
            (start.elapsed(), ok)
        }
    });
    let results = futures_util::future::join_all(burst).await;
    phase.store(2, Ordering::Relaxed);
    let mut lat = stats::Latencies::default();
    for (d, _) in &results {
        lat.record(*d);
    }
    let relay = relay.await??;
    Ok(LoginBurst {
        logins,
        failed: results.iter().filter(|(_, ok)| !ok).count(),
        login: lat.summary(),
        relay_before: relay.ack_by_phase[0],
        relay_during: relay.ack_by_phase[1],
        relay,
    })
}

fn cores(c: &stats::CpuUse) -> String {
    let f = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
    format!("bench {} / server {} cores", f(c.bench_cores), f(c.server_cores))
}

/// The one-screen table.
pub fn table(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "messenger-bench against {} ({})", r.url, r.machine);
    let relay_line = |o: &mut String, name: &str, x: &relay::RelayReport| {
        let _ = writeln!(
            o,
            "{name:<26} {:>9.0} msg/s  ack p50 {:>7.2} p99 {:>8.2} max {:>8.1} ms  delivery p99 {:>8.2} ms  sent {} lost {} late {}{}  {}",
            x.throughput,
            x.ack.p50_ms,
            x.ack.p99_ms,
            x.ack.max_ms,
            x.delivery.p99_ms,
            x.sent,
            x.lost,
            x.late,
            if x.errors.is_empty() { String::new() } else { format!(" errors {:?}", x.errors) },
            cores(&x.cpu)
        );
    };
    if let Some(c) = &r.closed {
        relay_line(&mut o, &format!("closed loop, {} senders", c.senders), c);
    }
    for x in &r.open {
        relay_line(&mut o, &x.pace, x);
    }
    let level_line = |o: &mut String, name: &str, l: &http::Level| {
        let _ = writeln!(
            o,
            "{name:<26} {:>9.0} req/s  p50 {:>7.2} p99 {:>8.2} max {:>8.1} ms  failed {}  {}",
            l.throughput,
            l.latency.p50_ms,
            l.latency.p99_ms,
            l.latency.max_ms,
            l.failed,
            cores(&l.cpu)
        );
    };
    for l in &r.http {
        level_line(&mut o, &format!("GET ×{}", l.concurrency), l);
    }
    if let Some(h) = &r.history {
        for l in &h.levels {
            level_line(&mut o, &format!("history page ×{} ({}k)", l.concurrency, h.messages / 1000), l);
        }
    }
    if let Some(b) = &r.login_burst {
        let _ = writeln!(
            o,
            "login burst of {:<12} login p50 {:.0} p99 {:.0} ms (failed {}); relay ack p99 before {:.2} ms, during {:.2} ms",
            b.logins, b.login.p50_ms, b.login.p99_ms, b.failed, b.relay_before.p99_ms, b.relay_during.p99_ms
        );
    }
    if let Some(x) = &r.scale {
        for l in &x.chats_active {
            level_line(&mut o, &format!("chats/active ×{} ({})", l.concurrency, x.chats), l);
        }
        for l in &x.search {
            level_line(&mut o, &format!("search ×{}", l.concurrency), l);
        }
        for l in &x.search_two_characters {
            level_line(&mut o, &format!("search, 2 chars ×{}", l.concurrency), l);
        }
        for l in &x.history.levels {
            level_line(&mut o, &format!("history page ×{} (10k)", l.concurrency), l);
        }
        let _ = writeln!(o, "{:<26} p50 {:.0} p99 {:.0} ms", "login, one at a time", x.login.p50_ms, x.login.p99_ms);
    }
    if let Some(g) = &r.group {
        let server = |p: &group::Phase| {
            p.server_cpu_ms_per_round.map_or(String::new(), |ms| format!("  server {ms:.2} ms CPU per round"))
        };
        let _ = writeln!(
            o,
            "{:<26} fan-out p50 {:>7.2} p99 {:>8.2} ms  {} deliveries{}  {}",
            format!("group of {}, 1 message", g.devices),
            g.group.fan_out.p50_ms,
            g.group.fan_out.p99_ms,
            g.group.deliveries,
            server(&g.group),
            cores(&g.group.cpu)
        );
        let _ = writeln!(
            o,
            "{:<26} fan-out p50 {:>7.2} p99 {:>8.2} ms  {} deliveries{}  {}",
            format!("{} one-to-one sends", g.devices - 1),
            g.one_to_one.fan_out.p50_ms,
            g.one_to_one.fan_out.p99_ms,
            g.one_to_one.deliveries,
            server(&g.one_to_one),
            cores(&g.one_to_one.cpu)
        );
        if let Some(ratio) = g.server_cpu_ratio {
            let _ = writeln!(o, "{:<26} ×{ratio:.3} the server CPU of the one-to-one sends", "group message costs");
        }
    }
    for c in &r.cold_start {
        let _ = writeln!(
            o,
            "cold start {:<15} ready p50 {:>6.2} p90 {:>6.2} ms{}{}  ({:.1} MiB)",
            c.function,
            c.ready.p50_ms,
            c.ready.p90_ms,
            c.first_answer.map_or(String::new(), |a| format!("  first answer p50 {:>6.2} ms", a.p50_ms)),
            c.vs_hello.map_or(String::new(), |v| format!("  ×{v:.2} hello")),
            c.binary_bytes as f64 / 1048576.0
        );
    }
    o
}

/// The charts of a report: relay latency against offered load, HTTP latency against concurrency.
pub fn charts(r: &Report) -> String {
    use plot::{Chart, Series};
    let rate = |x: &relay::RelayReport| x.sent as f64 / x.seconds;
    let open = Chart {
        title: "Relay, open loop: scheduled send → message_sent".into(),
        x_label: "offered load (messages/s)",
        y_label: "latency (ms)",
        log_x: false,
        log_y: true,
        series: vec![
            Series { name: "p50", points: r.open.iter().map(|x| (rate(x), x.ack.p50_ms)).collect() },
            Series { name: "p99", points: r.open.iter().map(|x| (rate(x), x.ack.p99_ms)).collect() },
            Series { name: "max", points: r.open.iter().map(|x| (rate(x), x.ack.max_ms)).collect() },
        ],
    };
    let http = Chart {
        title: "GET /me: latency by concurrency".into(),
        x_label: "concurrent clients",
        y_label: "latency (ms)",
        log_x: true,
        log_y: true,
        series: vec![
            Series { name: "p50", points: r.http.iter().map(|l| (l.concurrency as f64, l.latency.p50_ms)).collect() },
            Series { name: "p99", points: r.http.iter().map(|l| (l.concurrency as f64, l.latency.p99_ms)).collect() },
        ],
    };
    plot::svg(&[open, http])
}
