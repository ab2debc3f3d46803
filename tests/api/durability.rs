//! Durability: the local stack as a child process, killed with SIGKILL mid-load and started again on the
//! same data directory. Every message acknowledged with `message_sent` must be in history exactly once, and
//! retries with the same `client_msg_id` after the restart must not duplicate anything.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The `messenger-local` binary, built from `local/src/main.rs` for this package (see `Cargo.toml`).
const STACK: &str = env!("CARGO_BIN_EXE_messenger-local-under-test");

struct Stack {
    child: Child,
    base: String,
}

impl Stack {
    async fn start(data: &Path, port: u16, s3_port: u16) -> Self {
        let child = Command::new(STACK)
            .args(["--port", &port.to_string(), "--s3-port", &s3_port.to_string(), "--data-dir"])
            .arg(data)
            .env("BCRYPT_COST", "4")
            .env("RUST_LOG", "warn")
            // The load, not the per-user message limit, is what this test is about.
            .env("RATE_LIMIT_SEND_MESSAGE", "1000000/10")
            .env("RATE_LIMIT_WS_FRAMES", "1000000/10")
            .env("RATE_LIMIT_CONNECT", "1000/60")
            .env("RATE_LIMIT_REST_READ", "1000000/60")
            .env_remove("DATABASE_URL")
            .env_remove("JWT_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Owned at once, so that a failed start below still kills and reaps the child (Drop).
        let stack = Self { child, base: format!("http://127.0.0.1:{port}") };
        assert!(messenger_tests::wait_healthy(&stack.base).await, "the stack did not come up");
        stack
    }

    fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
        self.child.wait().unwrap();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn register(base: &str, n: usize) -> (i64, String) {
    let account = messenger_tests::register_at(base, &format!("D{n}"), "long enough").await;
    (account.id, account.token)
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn socket(base: &str, token: &str) -> Socket {
    let url = format!("{}/ws?token={token}", base.replace("http", "ws"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

fn frame(to: i64, id: &str) -> Message {
    let f = json!({"action": "send_message", "receiver_id": to, "encrypted_content": format!("m {id}"), "client_msg_id": id});
    Message::Text(f.to_string().into())
}

/// Sends `ids` one after the other; returns the acknowledged ones (client_msg_id → message id) until the
/// connection drops.
async fn send_all(mut ws: Socket, to: i64, ids: Vec<String>) -> HashMap<String, i64> {
    let mut acked = HashMap::new();
    for id in ids {
        if ws.send(frame(to, &id)).await.is_err() {
            break;
        }
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["event"] == "message_sent" && v["data"]["client_msg_id"] == id.as_str() {
                        acked.insert(id.clone(), v["data"]["message_id"].as_i64().unwrap());
                        break;
                    }
                    assert_ne!(v["event"], "error", "{v}");
                }
                Some(Ok(_)) => {}
                _ => return acked,
            }
        }
    }
    acked
}

/// Every message of the conversation, oldest first.
async fn history(base: &str, token: &str, peer: i64) -> Vec<Value> {
    let http = reqwest::Client::new();
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page: Vec<Value> = http
            .get(format!("{base}/chats/{peer}/messages?limit=200&after_id={after}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let Some(last) = page.last() else { return all };
        after = last["id"].as_i64().unwrap();
        all.extend(page);
    }
}

#[tokio::test]
async fn every_acknowledged_message_survives_a_kill_9_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let (port, s3_port) = (messenger_tests::free_port(), messenger_tests::free_port());
    let mut stack = Stack::start(data.path(), port, s3_port).await;
    let (receiver, _) = register(&stack.base, 0).await;
    let mut senders = Vec::new();
    for n in 1..=4 {
        senders.push(register(&stack.base, n).await);
    }

    // Eight sockets send as fast as they are acknowledged; the stack is killed in the middle.
    let mut tasks = Vec::new();
    let mut planned: HashMap<usize, Vec<String>> = HashMap::new();
    for (s, (_, token)) in senders.iter().enumerate() {
        for c in 0..2 {
            let ids: Vec<String> = (0..10_000).map(|i| format!("s{s}-c{c}-{i}")).collect();
            planned.entry(s).or_default().extend(ids.iter().cloned());
            let ws = socket(&stack.base, token).await;
            tasks.push((s, tokio::spawn(send_all(ws, receiver, ids))));
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stack.kill();
    let mut acked: HashMap<usize, HashMap<String, i64>> = HashMap::new();
    for (s, task) in tasks {
        acked.entry(s).or_default().extend(task.await.unwrap());
    }
    let total: usize = acked.values().map(HashMap::len).sum();
    assert!(total >= 20, "the load ran before the kill ({total} acknowledged)");

    let stack = Stack::start(data.path(), port, s3_port).await;
    for (s, (_, token)) in senders.iter().enumerate() {
        let stored = history(&stack.base, token, receiver).await;
        let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
        for m in &stored {
            seen.entry(m["client_msg_id"].as_str().unwrap().to_owned()).or_default().push(m["id"].as_i64().unwrap());
        }
        for (id, message_id) in &acked[&s] {
            assert_eq!(seen.get(id), Some(&vec![*message_id]), "{id} acknowledged as #{message_id}");
        }
        // Retrying everything that was acknowledged, and the first unacknowledged one of each socket (it may
        // have been stored just before the kill), answers the stored id and stores nothing new.
        let ws = socket(&stack.base, token).await;
        let mut retry: Vec<String> = acked[&s].keys().cloned().collect();
        retry.extend(planned[&s].iter().filter(|id| !acked[&s].contains_key(*id)).take(40).cloned());
        let again = send_all(ws, receiver, retry.clone()).await;
        assert_eq!(again.len(), retry.len(), "every retry is acknowledged");
        for (id, message_id) in &acked[&s] {
            assert_eq!(again[id], *message_id, "a retry of {id} answers the stored message");
        }
        let after = history(&stack.base, token, receiver).await;
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for m in &after {
            *counts.entry(m["client_msg_id"].as_str().unwrap()).or_default() += 1;
        }
        assert!(counts.values().all(|&n| n == 1), "a client_msg_id stored twice");
        assert_eq!(after.len(), stored.len() + retry.iter().filter(|id| !seen.contains_key(*id)).count());
    }
}

/// Counts rows of `sql` (one integer) on the stack's database file, as another process.
async fn count(db: &shared::db::Db, sql: &str) -> i64 {
    let conn = db.conn().await.unwrap();
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

#[tokio::test]
async fn a_chat_clear_killed_in_the_middle_is_finished_after_the_restart() {
    let data = tempfile::tempdir().unwrap();
    let (port, s3_port) = (messenger_tests::free_port(), messenger_tests::free_port());
    let mut stack = Stack::start(data.path(), port, s3_port).await;
    let (alice, alice_token) = register(&stack.base, 1).await;
    let (bob, bob_token) = register(&stack.base, 2).await;
    let url = format!("file:{}", data.path().join("messenger.db").display());
    let db = shared::db::Db::open(&url, None).await.unwrap();
    // Long enough that the clear takes many steps, so the kill lands between two of them.
    db.conn()
        .await
        .unwrap()
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) \
             INSERT INTO message (sender_id, receiver_id, encrypted_content, created_at) \
             SELECT CASE i % 2 WHEN 0 THEN ?1 ELSE ?2 END, CASE i % 2 WHEN 0 THEN ?2 ELSE ?1 END, 'ct', i FROM n",
            (alice, bob),
        )
        .await
        .unwrap();
    let hidden = format!(
        "SELECT COUNT(*) FROM message WHERE (sender_id = {alice} AND hidden_for_sender = 1) \
         OR (receiver_id = {alice} AND hidden_for_receiver = 1)"
    );
    let hidden_for_bob = format!(
        "SELECT COUNT(*) FROM message WHERE (sender_id = {bob} AND hidden_for_sender = 1) \
         OR (receiver_id = {bob} AND hidden_for_receiver = 1)"
    );

    let url = format!("{}/chats/{bob}/messages", stack.base);
    let clear = tokio::spawn(async move { reqwest::Client::new().delete(url).bearer_auth(alice_token).send().await });
    // Kill -9 as soon as the clear is under way: some steps committed, the job not finished.
    let mut under_way = false;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if count(&db, "SELECT COUNT(*) FROM bulk_job WHERE cursor > 0").await > 0 {
            under_way = true;
            break;
        }
        if clear.is_finished() {
            break;
        }
        // Local libSQL calls do not yield: let the request's task run.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stack.kill();
    assert!(under_way, "the clear was seen between two steps: {:?}", clear.is_finished());
    assert!(clear.await.unwrap().is_err(), "the request died with the stack");
    let done = count(&db, &hidden).await;
    assert!(done > 0 && done < 200_000, "the kill left the clear half-way ({done} hidden)");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM bulk_job").await, 1, "its job is still recorded");

    // The restarted stack's clean-up finishes it: nothing stays half-done.
    let stack = Stack::start(data.path(), port, s3_port).await;
    let mut finished = false;
    for _ in 0..600 {
        if count(&db, "SELECT COUNT(*) FROM bulk_job").await == 0 {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(finished, "the job was not finished after the restart");
    assert_eq!(count(&db, &hidden).await, 200_000, "every message is hidden for the one who cleared");
    assert_eq!(count(&db, &hidden_for_bob).await, 0, "and none for the peer");
    let summary = format!("SELECT COUNT(*) FROM chat_summary WHERE user_id = {alice} AND peer_id = {bob}");
    assert_eq!(count(&db, &summary).await, 0, "the chat left alice's list");
    let theirs = history(&stack.base, &bob_token, alice).await;
    assert_eq!(theirs.len(), 200_000, "bob keeps every message");
}
