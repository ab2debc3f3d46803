//! `messenger-local --processes`: every function as its own process behind the Lambda Runtime API, as on
//! AWS. Requests and WebSocket frames reach their function's process; a crashed function is started again
//! on its next invocation (a cold start) without touching the others.

use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const STACK: &str = env!("CARGO_BIN_EXE_messenger-local-under-test");

/// Builds the function binaries `--processes` runs, next to the stack's binary: `cargo test` builds only the
/// binaries of packages with integration tests. Always, not only when they are missing: binaries left in a
/// reused target directory by an older commit would run against this commit's schema. The same package
/// selection as the README's test command, so nothing but the binaries themselves is compiled, and nothing
/// at all when they are up to date.
fn ensure_function_binaries() {
    // As from a shell: without the variables cargo sets for a test run, which would change fingerprints and
    // make the next `cargo test` recompile.
    let mut cargo = Command::new(env!("CARGO"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if (name.starts_with("CARGO_") && !matches!(&*name, "CARGO_HOME" | "CARGO_TARGET_DIR"))
            || name == "LD_LIBRARY_PATH"
        {
            cargo.env_remove(&*name);
        }
    }
    let status = cargo
        .args(["build", "--quiet", "--workspace", "--all-targets"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --workspace --all-targets");
}

/// The stack's child processes by name (their `comm`).
fn children(parent: u32) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let ppid = stat[close + 2..].split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && !stat[close + 2..].starts_with('Z') {
            found.push((stat[open + 1..close].to_owned(), pid));
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn functions_run_as_their_own_processes_and_a_crash_is_a_cold_start() {
    ensure_function_binaries();
    let dir = tempfile::tempdir().unwrap();
    let (port, s3_port) = (messenger_tests::free_port(), messenger_tests::free_port());
    let log = dir.path().join("stack.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut stack = Command::new(STACK)
        .args(["--processes", "--port", &port.to_string(), "--s3-port", &s3_port.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .env("BCRYPT_COST", "4")
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env_remove("AWS_LAMBDA_LOG_FORMAT")
        .stdout(log_file.try_clone().unwrap())
        // The functions' own output (why one exits) goes to the same log.
        .stderr(log_file)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    assert!(
        messenger_tests::wait_healthy(&base).await,
        "the stack came up: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let messenger_tests::Registered { id: alice, token: alice_token, .. } =
        messenger_tests::register_at(&base, "P", "long enough").await;
    let messenger_tests::Registered { id: bob, token: bob_token, .. } =
        messenger_tests::register_at(&base, "Q", "long enough").await;
    let me = http.get(format!("{base}/me")).bearer_auth(&alice_token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["id"], alice);

    // The WebSocket routes run in their processes too: connect, send, receive.
    let ws = format!("ws://127.0.0.1:{port}/ws");
    let (mut a, _) = tokio_tungstenite::connect_async(format!("{ws}?token={alice_token}")).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(format!("{ws}?token={bob_token}")).await.unwrap();
    let frame = json!({"action": "send_message", "receiver_id": bob, "encrypted_content": "through processes"});
    a.send(Message::Text(frame.to_string().into())).await.unwrap();
    let received = loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), b.next()).await.unwrap().unwrap().unwrap();
        let event: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        if event["event"] == "new_message" {
            break event;
        }
    };
    assert_eq!(received["data"]["encrypted_content"], "through processes");

    let running = children(stack.id());
    let names: Vec<&str> = running.iter().map(|(n, _)| n.as_str()).collect();
    for function in ["auth", "users", "system", "ws-connect", "ws-message"] {
        assert!(names.contains(&function), "{function} runs as its own process: {names:?}");
    }
    assert!(!names.contains(&"themes"), "a function nobody called has not started: {names:?}");

    // As on AWS, the secrets are not in any function's environment: each gets the ARN of a Secrets Manager
    // secret and reads the value with GetSecretValue at its cold start (which these calls above needed: a
    // function without the JWT secret cannot check a token).
    let secret = std::fs::read_to_string(dir.path().join("data/jwt_secret")).unwrap();
    for (name, pid) in &running {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let vars: Vec<String> = environ.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
        for secret_name in ["JWT_SECRET", "ADMIN_SESSION_SECRET"] {
            let arn = format!("{secret_name}_ARN=arn:aws:secretsmanager:");
            assert!(vars.iter().any(|v| v.starts_with(&arn)), "{name}: {secret_name}");
            assert!(!vars.iter().any(|v| v.starts_with(&format!("{secret_name}="))), "{name}: {secret_name} in env");
        }
        assert!(!String::from_utf8_lossy(&environ).contains(secret.trim()), "{name}: the JWT secret in its env");
    }

    // Kill one function: its next invocation starts it again; the others keep their processes.
    let pid_of = |name: &str| children(stack.id()).into_iter().find(|(n, _)| n == name).map(|(_, p)| p);
    let (users_before, auth_before) = (pid_of("users").unwrap(), pid_of("auth").unwrap());
    Command::new("kill").args(["-9", &users_before.to_string()]).status().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = http.get(format!("{base}/me")).bearer_auth(&alice_token).send().await.unwrap();
    assert_eq!(again.status(), 200, "the crashed function was started again");
    let users_after = pid_of("users").expect("users runs again");
    assert_ne!(users_after, users_before);
    assert_eq!(pid_of("auth"), Some(auth_before), "other functions are untouched");

    // The schema check: a cold start against a database at another schema version (here: a newer one, as
    // while a newer build's `migrate` runs) answers 500 instead of serving, and checks again on each
    // invocation, so the same process serves once the database is at its version.
    let db =
        shared::db::Db::open(&format!("file:{}", dir.path().join("data/messenger.db").display()), None).await.unwrap();
    let conn = db.conn().await.unwrap();
    let newer = shared::db::latest_version() + 1;
    conn.execute("INSERT INTO schema_migration (version, name, applied_at) VALUES (?1, 'newer', 0)", [newer])
        .await
        .unwrap();
    let me = http.get(format!("{base}/me")).bearer_auth(&alice_token).send().await.unwrap();
    assert_eq!(me.status(), 200, "a warm process checked its schema at its cold start only");
    Command::new("kill").args(["-9", &users_after.to_string()]).status().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = http.get(format!("{base}/me")).bearer_auth(&alice_token).send().await.unwrap();
    assert_eq!(refused.status(), 500, "a cold start at another schema version does not serve");
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "internal_error");
    let checking = pid_of("users").expect("users runs, refusing");
    conn.execute("DELETE FROM schema_migration WHERE version = ?1", [newer]).await.unwrap();
    let served = http.get(format!("{base}/me")).bearer_auth(&alice_token).send().await.unwrap();
    assert_eq!(served.status(), 200, "the next invocation checks again and passes");
    assert_eq!(pid_of("users"), Some(checking), "in the same process");

    let _ = stack.kill();
    let _ = stack.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let cold_starts = text.lines().filter(|l| l.contains("cold start") && l.contains("function=\"users\"")).count();
    assert_eq!(cold_starts, 3, "three cold starts of users in the log:\n{text}");
    assert!(text.contains("function ready") && text.contains("init_ms"), "init times are logged");
    assert!(text.contains("run the migrate function"), "the refusal's cause is logged:\n{text}");
}

/// A function whose process dies during its init (here: every function exits at once, as a binary built for
/// an older schema does) fails its invocation at once with a 502, instead of holding it until the timeout.
#[tokio::test]
async fn a_function_that_exits_before_taking_its_invocation_fails_it_at_once() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let functions = dir.path().join("functions");
    std::fs::create_dir(&functions).unwrap();
    for name in messenger_local::gateway::functions().keys() {
        let path = functions.join(name);
        std::fs::write(&path, "#!/bin/sh\necho 'this binary refuses to start' >&2\nexit 1\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (port, s3_port) = (messenger_tests::free_port(), messenger_tests::free_port());
    let mut stack = Command::new(STACK)
        .args(["--processes", "--port", &port.to_string(), "--s3-port", &s3_port.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--functions-dir")
        .arg(&functions)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/health");
    let mut answer = None;
    for _ in 0..600 {
        if let Ok(r) = http.get(&url).send().await {
            answer = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stack.kill();
    let _ = stack.wait();
    let answer = answer.expect("the stack listens");
    assert_eq!(answer.status(), 502, "not a 504 after the invocation timeout");
}
