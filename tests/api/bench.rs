//! The benchmark tool's own accounting, against the real stack: every message it counts as acknowledged is a
//! committed row, nothing is counted twice or lost, and the cold-start meter runs real function binaries.
//! (Speed is the bench's output, never asserted here.)

use std::time::Duration;

use messenger_bench::{Target, relay, users};
use messenger_tests::TestApp;

/// The limits `bench/local.sh` lifts.
const BENCH_LIMITS: &[(&str, &str)] = &[
    ("RATE_LIMIT_SEND_MESSAGE", "1000000/1"),
    ("RATE_LIMIT_WS_FRAMES", "1000000/1"),
    ("RATE_LIMIT_REGISTER_IP", "100000/3600"),
    ("RATE_LIMIT_LOGIN_IP", "100000/900"),
    ("RATE_LIMIT_CONNECT", "100000/60"),
    ("RATE_LIMIT_REST_WRITE", "1000000/1"),
    ("RATE_LIMIT_REST_READ", "1000000/1"),
];

#[tokio::test]
async fn the_closed_loop_counts_exactly_the_messages_the_server_committed() {
    let app = TestApp::spawn_with(BENCH_LIMITS).await;
    let users = users::sign_up(&app.base, 4, 4).await.unwrap();
    let r = relay::run(&app.base, &users, relay::Pace::Closed, Duration::from_millis(800), None, None).await.unwrap();
    assert!(r.acknowledged > 0, "{r:?}");
    assert_eq!((r.lost, r.late), (0, 0), "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.sent, r.acknowledged, "closed loop: every send is answered before the next");
    let rows = app.count("SELECT COUNT(*) FROM message").await;
    assert_eq!(rows, i64::try_from(r.acknowledged).unwrap(), "one committed row per acknowledgement");
    assert_eq!(r.ack.count, r.acknowledged);
    assert_eq!(r.delivery.count, r.acknowledged, "each message reached its receiver's socket");
    assert!(r.ack.p50_ms > 0.0 && r.ack.p50_ms <= r.ack.p99_ms && r.ack.p99_ms <= r.ack.max_ms);
}

#[tokio::test]
async fn the_open_loop_sends_on_schedule_and_times_from_it() {
    let app = TestApp::spawn_with(BENCH_LIMITS).await;
    let users = users::sign_up(&app.base, 2, 2).await.unwrap();
    // 20 msg/s for 1 s from two senders: 20 scheduled sends, none skipped, all answered within the bench's
    // 5 s (a rate that sqld under the debug suite, about 8 sends/s, also carries).
    let pace = relay::Pace::Open { rate: 20.0 };
    let r = relay::run(&app.base, &users, pace, Duration::from_secs(1), None, None).await.unwrap();
    assert_eq!(r.sent, 20, "{r:?}");
    assert_eq!((r.acknowledged, r.lost), (20, 0), "{r:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM message").await, 20);
}

#[tokio::test]
async fn refused_sends_are_reported_as_errors_not_as_lost_or_acknowledged() {
    // One send per minute per user: a closed loop runs into it with its second send, however slow the
    // database (3 s leave room for sends of up to 1.5 s, on sqld too).
    let mut limits = BENCH_LIMITS[1..].to_vec();
    limits.push(("RATE_LIMIT_SEND_MESSAGE", "1/60"));
    let app = TestApp::spawn_with(&limits).await;
    let users = users::sign_up(&app.base, 2, 2).await.unwrap();
    let r = relay::run(&app.base, &users, relay::Pace::Closed, Duration::from_secs(3), None, None).await.unwrap();
    assert_eq!(r.acknowledged, 2, "1 per sender: {r:?}");
    assert!(r.errors.get("rate_limited").is_some_and(|n| *n > 0), "{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.sent, 2 + r.errors.values().sum::<u64>(), "every send was answered one way or the other");
    assert_eq!(app.count("SELECT COUNT(*) FROM message").await, 2);
}

#[tokio::test]
async fn the_history_scenario_pages_a_filled_conversation() {
    let app = TestApp::spawn_with(BENCH_LIMITS).await;
    let t = Target { url: app.base.clone(), server_pid: None };
    let h = messenger_bench::history(&t, 300, &[1, 4], Duration::from_millis(300)).await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM message").await, 300);
    assert_eq!(h.levels.len(), 2);
    for l in &h.levels {
        assert!(l.requests > 0, "{l:?}");
        assert_eq!(l.failed, 0, "every page is a 200: {l:?}");
    }
}

#[tokio::test]
async fn the_login_burst_logs_every_account_in_while_the_relay_runs() {
    let app = TestApp::spawn_with(BENCH_LIMITS).await;
    let t = Target { url: app.base.clone(), server_pid: None };
    // 1 s of relay before the burst: sends of up to 0.5 s (sqld under the debug suite) still show there.
    let b = messenger_bench::login_burst(&t, 1, 3, Duration::from_secs(3)).await.unwrap();
    assert_eq!((b.logins, b.failed), (3, 0), "{b:?}");
    assert_eq!(b.login.count, 3);
    assert!(b.relay_before.count > 0, "the relay ran before the burst: {b:?}");
    assert_eq!(b.relay.lost, 0);
    // Three logins made three more devices (each account had one from sign-up).
    assert_eq!(app.count("SELECT COUNT(*) FROM device").await, 2 + 3 + 3);
}

/// A directory with the binaries the cold-start meter looks for, linked to this package's builds of them.
fn functions_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_migrate-under-test"), dir.path().join("migrate")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_bench-hello-under-test"), dir.path().join("bench-hello")).unwrap();
    dir
}

#[tokio::test]
async fn cold_starts_are_measured_on_real_processes_through_a_runtime_api() {
    let dir = functions_dir();
    let results = messenger_bench::cold::measure(dir.path(), 3, &[], None).await.unwrap();
    let names: Vec<&str> = results.iter().map(|c| c.function.as_str()).collect();
    assert_eq!(names, ["bench-hello", "migrate"], "functions not in the directory are skipped");
    let hello = &results[0];
    assert_eq!(hello.ready.count, 3);
    let answer = hello.first_answer.expect("an HTTP function answers its first event");
    assert_eq!(answer.count, 3);
    assert!(answer.p50_ms >= hello.ready.p50_ms, "the answer comes after ready: {hello:?}");
    let migrate = &results[1];
    assert_eq!(migrate.ready.count, 3, "{migrate:?}");
    assert!(migrate.first_answer.is_none(), "non-HTTP functions are only timed to ready");
    assert!(migrate.vs_hello.is_some());
}

#[tokio::test]
async fn a_function_that_dies_in_init_is_an_error_naming_it() {
    let dir = functions_dir();
    let broken = dir.path().join("auth");
    std::fs::write(&broken, "#!/bin/sh\necho 'config: JWT_SECRET missing' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut err = String::new();
    // Exec of a file just written can meet ETXTBSY while another test's thread forks: try again then.
    for _ in 0..5 {
        err = messenger_bench::cold::measure(dir.path(), 1, &["auth".into()], None).await.unwrap_err().to_string();
        if !err.contains("Text file busy") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(err.contains("auth exited") && err.contains("JWT_SECRET missing"), "{err}");
}

#[tokio::test]
async fn the_group_scenario_counts_every_delivery_of_both_phases() {
    let app = TestApp::spawn_with(BENCH_LIMITS).await;
    // More members than one key-package claim may name (50): the client claims in batches.
    let r = messenger_bench::group::run(&app.base, 52, 2, None).await.unwrap();
    assert_eq!((r.devices, r.rounds), (52, 2));
    // 2 group messages to 51 devices, then 2 rounds of 51 one-to-one sends.
    assert_eq!(r.group.deliveries, 102, "{r:?}");
    assert_eq!(r.one_to_one.deliveries, 102, "{r:?}");
    assert_eq!((r.group.fan_out.count, r.one_to_one.fan_out.count), (2, 2));
    assert_eq!(app.count("SELECT COUNT(*) FROM mls_member").await, 52);
    assert_eq!(app.count("SELECT COUNT(*) FROM mls_message").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM message").await, 102);
    assert!(r.server_cpu_ratio.is_none(), "no server process id given");
}

#[tokio::test]
async fn cold_starts_open_the_database_they_are_given() {
    let dir = functions_dir();
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("chosen.db");
    let url = format!("file:{}", db.display());
    let results = messenger_bench::cold::measure(dir.path(), 1, &[], Some(url.as_str())).await.unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
    // migrate ran against the given database, not a scratch file of the meter's.
    let conn = libsql::Builder::new_local(&db).build().await.unwrap().connect().unwrap();
    let mut rows = conn.query("SELECT COUNT(*) FROM sqlite_master WHERE name = 'user'", ()).await.unwrap();
    let row = rows.next().await.unwrap().unwrap();
    assert_eq!(row.get::<i64>(0).unwrap(), 1);
}
