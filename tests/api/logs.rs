//! Logs as Lambda's advanced logging controls ask for them: with `AWS_LAMBDA_LOG_FORMAT=JSON`, the local
//! stack (a child process, as a function runs on Lambda) writes JSON lines, one `request` line per
//! invocation with its request id, function, route and latency, and never a token, phone or password.

use std::process::{Command, Stdio};

use serde_json::Value;

const STACK: &str = env!("CARGO_BIN_EXE_messenger-local-under-test");

#[tokio::test]
async fn json_logs_carry_request_id_function_route_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stack.log");
    let (port, s3_port) = (messenger_tests::free_port(), messenger_tests::free_port());
    let mut child = Command::new(STACK)
        .args(["--port", &port.to_string(), "--s3-port", &s3_port.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("RUST_LOG", "info")
        .env("BCRYPT_COST", "4")
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    messenger_tests::wait_healthy(&base).await;
    let password = "a password to keep out of logs";
    let messenger_tests::Registered { id, token, phone } = messenger_tests::register_at(&base, "Log", password).await;
    let me = http.get(format!("{base}/users/{id}/profile?phone={phone}")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let _ = child.kill();
    let _ = child.wait();

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    let find = |route: &str| {
        requests
            .iter()
            .find(|l| l["span"]["route"] == route)
            .unwrap_or_else(|| panic!("no request line for {route} in {requests:?}"))
    };
    let register = find("POST /auth/register");
    assert_eq!(register["span"]["function"], "auth");
    assert_eq!(register["status"], 201);
    let profile = find("GET /users/{user_id}/profile");
    assert_eq!(profile["span"]["function"], "users");
    assert_eq!(profile["level"], "INFO");
    for line in [register, profile] {
        let request_id = line["span"]["request_id"].as_str().unwrap();
        assert!(request_id.len() >= 16, "a request id: {line}");
        assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "latency: {line}");
    }
    assert_ne!(register["span"]["request_id"], profile["span"]["request_id"], "one id per invocation");
    for secret in [token.as_str(), phone.as_str(), password] {
        assert!(!text.contains(secret), "a secret reached the log");
    }
}
