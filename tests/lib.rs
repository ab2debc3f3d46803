//! Test harness: the whole local stack in-process on ephemeral ports and a temp dir, with real HTTP clients.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use messenger_local::{Options, Stack};
use serde_json::{Value, json};

pub use reqwest::StatusCode;

#[path = "schema.rs"]
pub mod schema;

/// With `TEST_LOG_FILE` set, every log line of the process (the stacks and the test clients), filtered by
/// `RUST_LOG`, goes to that file, for `tests/scripts/log-secrets.sh`.
fn log_to_file() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let Some(path) = std::env::var_os("TEST_LOG_FILE") else { return };
    ONCE.call_once(|| {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("TEST_LOG_FILE opens");
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
    });
}

/// Path of the workspace's `template.yaml`.
pub fn template_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
}

/// A running stack for one test.
pub struct TestApp {
    pub stack: Stack,
    pub base: String,
    pub dir: tempfile::TempDir,
}

/// A response: status, headers and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        self.body
    }

    /// Asserts an error response with its status and code.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        assert_eq!(self.body["code"], code, "unexpected code; body: {}", self.text);
        assert!(self.body["detail"].is_string(), "detail is a string: {}", self.text);
        self.body
    }
}

/// A registered user with its own client (and its own source address).
pub struct TestUser {
    pub id: i64,
    pub token: String,
    pub device_id: String,
    pub phone: String,
    pub password: String,
    pub client: Client,
}

/// An HTTP client bound to a random loopback address, so per-IP rate limits are per client.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub ip: IpAddr,
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    u32::from_le_bytes(b)
}

impl Client {
    pub fn new(base: &str) -> Self {
        let r = random_u32();
        let ip = IpAddr::V4(Ipv4Addr::new(127, (r >> 16) as u8 | 1, (r >> 8) as u8, (r as u8).max(2)));
        let http = reqwest::Client::builder().local_address(ip).build().unwrap();
        Self { http, base: base.to_owned(), ip }
    }

    async fn send(&self, method: &str, path: &str, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.expect("request failed");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        secrets::record_json(&body);
        let is_json = headers.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if is_json {
            schema::check_response(method, path, status.as_u16(), &body);
        }
        Resp { status, headers, body, text }
    }

    fn with_token(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Any method and path (with query), optional token and JSON body.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
        let http_method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = Self::with_token(self.http.request(http_method, format!("{}{path}", self.base)), token);
        secrets::record_query(path);
        if let Some(b) = body {
            secrets::record_json(b);
            req = req.json(b);
        }
        self.send(method, path, req).await
    }

    /// A raw body with a content type.
    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>, content_type: &str, body: Vec<u8>) -> Resp {
        let http_method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        secrets::record_query(path);
        if content_type.starts_with("application/json") {
            secrets::record_frame(&String::from_utf8_lossy(&body));
        }
        let req = Self::with_token(self.http.request(http_method, format!("{}{path}", self.base)), token)
            .header("content-type", content_type)
            .body(body);
        self.send(method, path, req).await
    }

    /// A multipart upload of one part named `field`.
    pub async fn upload(&self, path: &str, token: &str, field: &str, filename: &str, data: &[u8]) -> Resp {
        let boundary = "----testboundary7MA4YWxkTrZu0gW";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.raw("POST", path, Some(token), &format!("multipart/form-data; boundary={boundary}"), body).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call("GET", path, token, None).await
    }
}

/// Records what the tests send and receive that must never reach a log (tokens, passwords, phone numbers,
/// message contents and ciphertexts), one per line, into the file `TEST_SECRETS_FILE` names, for
/// `tests/scripts/log-secrets.sh` to look for in the log of the whole suite. Nothing without the variable.
pub mod secrets {
    use std::io::Write as _;
    use std::sync::Mutex;

    use serde_json::Value;

    /// JSON fields (request and response bodies, WebSocket frames) whose values are secret.
    const FIELDS: &[&str] = &[
        "password",
        "current_password",
        "new_password",
        "old_password",
        "phone",
        "login",
        "access_token",
        "token",
        "encrypted_content",
        "ciphertext",
        "last_message",
    ];

    /// Shorter values would match ordinary log text by chance ("one", a port number).
    const MIN_LEN: usize = 8;

    static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

    fn enabled() -> bool {
        std::env::var_os("TEST_SECRETS_FILE").is_some()
    }

    /// Records one secret value (and, for a token, its signature; for a phone, its digits).
    pub fn record(value: &str) {
        if !enabled() {
            return;
        }
        let mut forms = vec![value.to_owned()];
        if value.matches('.').count() == 2 && value.starts_with("eyJ") {
            forms.extend(value.rsplit('.').next().map(str::to_owned));
        }
        let digits: String = value.chars().filter(char::is_ascii_digit).collect();
        if value.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c)) && digits != value {
            forms.push(digits);
        }
        let mut guard = FILE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            let path = std::env::var_os("TEST_SECRETS_FILE").unwrap_or_default();
            *guard = std::fs::OpenOptions::new().create(true).append(true).open(path).ok();
        }
        let Some(file) = guard.as_mut() else { return };
        for form in forms {
            // A prefix is enough to find a leak and keeps 64 KiB contents out of the pattern file.
            let form: String = form.chars().filter(|c| *c != '\n' && *c != '\r').take(64).collect();
            if form.len() >= MIN_LEN {
                let _ = writeln!(file, "{form}");
            }
        }
    }

    /// Records the secret fields anywhere in a JSON value.
    pub fn record_json(value: &Value) {
        if !enabled() {
            return;
        }
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match v {
                        Value::String(s) if FIELDS.contains(&key.as_str()) => record(s),
                        other => record_json(other),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(record_json),
            _ => {}
        }
    }

    /// Records the secret fields of a query string (`/path?phone=...&password=...`).
    pub fn record_query(path: &str) {
        let Some((_, query)) = path.split_once('?') else { return };
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=')
                && FIELDS.contains(&key)
            {
                record(value);
            }
        }
        // And as the server reads them, percent-decoded.
        let Ok(url) = reqwest::Url::parse(&format!("http://x{path}")) else { return };
        for (key, value) in url.query_pairs() {
            if FIELDS.contains(&key.as_ref()) {
                record(&value);
            }
        }
    }

    /// Records a WebSocket frame's secret fields (frames that are not JSON are recorded whole).
    pub fn record_frame(text: &str) {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => record_json(&v),
            Err(_) => record(text),
        }
    }
}

/// A free local TCP port, for a stack run as a child process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits up to 30 s for a stack run as a child process to answer `GET /health`; whether it did.
pub async fn wait_healthy(base: &str) -> bool {
    // A deadline, not a number of tries: a stack that hangs each request must not hold the suite for long.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().unwrap();
    while std::time::Instant::now() < deadline {
        if http.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// An account registered on a stack run as a child process.
pub struct Registered {
    /// Its id.
    pub id: i64,
    /// Its access token.
    pub token: String,
    /// Its phone, as registered.
    pub phone: String,
}

/// Registers an account named `first_name` with a fresh phone and `password` on the stack at `base`.
pub async fn register_at(base: &str, first_name: &str, password: &str) -> Registered {
    let phone = unique_phone();
    let body = serde_json::json!({"first_name": first_name, "last_name": "Test", "phone": phone, "password": password});
    let r = reqwest::Client::new().post(format!("{base}/auth/register")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201, "registration at {base}");
    let v: serde_json::Value = r.json().await.unwrap();
    Registered { id: v["user_id"].as_i64().unwrap(), token: v["access_token"].as_str().unwrap().to_owned(), phone }
}

/// Unique phone numbers across a test run.
pub fn unique_phone() -> String {
    format!("1555{:08}", random_u32() % 100_000_000)
}

/// Creates a fresh namespace on a libSQL server through its admin API; returns its name. Creations are
/// serialised: sqld sometimes loses a namespace created concurrently with others.
pub async fn create_namespace(admin_url: &str) -> String {
    // sqld rolls back a transaction that has held the write lock for 5 s once another writer waits. On a
    // 2-core machine running many stacks at once a test's task can be starved that long between two
    // statements; only `remote.rs` exercises that takeover, so the test namespaces allow 30 s.
    create_namespace_with(admin_url, 30).await
}

/// [`create_namespace`] with the server's write-lock takeover after `txn_timeout_s` (sqld reads it when it
/// opens the namespace, so it is given at creation: set later, it is stored but not used).
pub async fn create_namespace_with(admin_url: &str, txn_timeout_s: u64) -> String {
    static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = CREATING.lock().await;
    let name = format!("t{:08x}{:08x}", random_u32(), random_u32());
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{admin_url}/v1/namespaces/{name}/create"))
        .json(&json!({"txn_timeout_s": txn_timeout_s}))
        .send()
        .await
        .expect("sqld admin API reachable");
    assert!(resp.status().is_success(), "namespace {name} not created: {}", resp.text().await.unwrap_or_default());
    // Under load sqld may not know the namespace it just created yet: configuring it is retried briefly.
    let mut configured = false;
    for _ in 0..50 {
        let config = http
            .post(format!("{admin_url}/v1/namespaces/{name}/config"))
            .json(&json!({"block_reads": false, "block_writes": false, "txn_timeout_s": txn_timeout_s}))
            .send()
            .await
            .expect("sqld admin API reachable");
        if config.status().is_success() {
            configured = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(configured, "namespace {name} not configured");
    // sqld records a new namespace asynchronously: wait until the user API knows it.
    let user_url = std::env::var("TEST_DATABASE_URL").unwrap_or_default();
    for _ in 0..100 {
        let probe = http
            .post(format!("{user_url}/v2/pipeline"))
            .header("x-namespace", &name)
            .json(&json!({"requests": [{"type": "execute", "stmt": {"sql": "SELECT 1"}}, {"type": "close"}]}))
            .send()
            .await;
        if probe.is_ok_and(|r| r.status().is_success()) {
            return name;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("namespace {name} never became usable")
}

impl TestApp {
    /// Starts a fresh stack.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts a fresh stack with configuration overrides.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        Self::spawn_full(overrides, None).await
    }

    /// Starts a fresh stack with configuration overrides and WebSocket limits.
    pub async fn spawn_full(
        overrides: &[(&str, &str)],
        ws_limits: Option<messenger_local::connections::WsLimits>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_owned();
        Self::start(dir, data_dir, Some(template_path()), overrides, ws_limits).await
    }

    /// Starts a fresh stack on `data_dir` (which the caller cleans up), exactly as `messenger-local` runs:
    /// the template built into the binary and a database file of its own in `data_dir`, whatever
    /// `TEST_DATABASE_URL` says.
    pub async fn spawn_in(data_dir: &std::path::Path) -> Self {
        let file = format!("file:{}", data_dir.join("messenger.db").display());
        Self::start(tempfile::tempdir().unwrap(), data_dir.to_owned(), None, &[("DATABASE_URL", &file)], None).await
    }

    async fn start(
        dir: tempfile::TempDir,
        data_dir: PathBuf,
        template: Option<PathBuf>,
        overrides: &[(&str, &str)],
        ws_limits: Option<messenger_local::connections::WsLimits>,
    ) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            shared::lambda::init_tracing();
        }
        log_to_file();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut all = vec![("BCRYPT_COST".to_owned(), "4".to_owned())];
            // TEST_DATABASE_URL points every stack at a libSQL server (e.g. sqld) instead of a file of its
            // own; with TEST_SQLD_ADMIN_URL (sqld's admin API, namespaces enabled) each stack gets a
            // namespace of its own.
            if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
                all.push(("DATABASE_URL".to_owned(), url));
                if let Ok(admin) = std::env::var("TEST_SQLD_ADMIN_URL") {
                    all.push(("DATABASE_NAMESPACE".to_owned(), create_namespace(&admin).await));
                }
            }
            // A test's own settings win over the ones above.
            all.retain(|(name, _)| !overrides.iter().any(|(k, _)| k == name));
            all.extend(overrides.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
            let options = Options {
                http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                s3_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                data_dir: data_dir.clone(),
                template: template.clone(),
                overrides: all,
                use_env: false,
                ws_limits: ws_limits.unwrap_or_default(),
                ..Options::default()
            };
            match Stack::start(options).await {
                Ok(stack) => {
                    let base = format!("http://{}", stack.http_addr);
                    return Self { stack, base, dir };
                }
                // sqld now and then forgets a namespace it has just created (a server quirk, not ours):
                // start over on a new one.
                Err(e) if attempt < 3 && format!("{e:#}").contains("doesn't exist") => {}
                Err(e) => panic!("stack starts: {e:?}"),
            }
        }
    }

    /// A new client with its own source address.
    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// Registers a user with fresh names and phone; returns it with its own client.
    pub async fn user(&self) -> TestUser {
        self.user_named("Test", "User").await
    }

    /// Registers a user with the given names.
    pub async fn user_named(&self, first: &str, last: &str) -> TestUser {
        let client = self.client();
        let phone = unique_phone();
        let password = "correct horse battery".to_owned();
        let body = client
            .call(
                "POST",
                "/auth/register",
                None,
                Some(&json!({"first_name": first, "last_name": last, "phone": phone, "password": password,
                    "public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"})),
            )
            .await
            .expect(201);
        TestUser {
            id: body["user_id"].as_i64().unwrap(),
            token: body["access_token"].as_str().unwrap().to_owned(),
            device_id: body["device_id"].as_str().unwrap().to_owned(),
            phone,
            password,
            client,
        }
    }

    /// A second handle on the stack's database, as another process (another Lambda instance) has one.
    pub async fn foreign_db(&self) -> shared::db::Db {
        let c = &self.stack.state.config;
        shared::db::Db::open_with(&c.database_url, c.database_auth_token.as_ref(), c.database.clone()).await.unwrap()
    }

    /// A connection to the stack's libSQL file, for arranging and inspecting state.
    pub async fn db(&self) -> shared::db::PooledConn<'_> {
        self.stack.state.db.conn().await.unwrap()
    }

    /// Every key in the bucket, listed through the S3 endpoint.
    pub async fn bucket_keys(&self) -> Vec<String> {
        self.stack.state.storage.list_keys().await.unwrap()
    }
}

/// A WebSocket client connected through the local gateway.
pub struct Ws {
    pub stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

/// How long a test waits for an event before failing.
pub const EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Ws {
    /// Sends one JSON frame.
    pub async fn send(&mut self, value: &Value) {
        use futures_util::SinkExt as _;
        secrets::record_json(value);
        self.stream.send(tokio_tungstenite::tungstenite::Message::Text(value.to_string().into())).await.unwrap();
    }

    /// Sends a text message as frames of at most 16 KiB, as clients must behind API Gateway (32 KB frames).
    pub async fn send_fragmented(&mut self, text: &str) {
        use futures_util::SinkExt as _;
        use tokio_tungstenite::tungstenite::protocol::frame::{
            Frame,
            coding::{Data, OpCode},
        };
        secrets::record_frame(text);
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(16 * 1024).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
            let frame = Frame::message(chunk.to_vec(), opcode, i + 1 == chunks.len());
            self.stream.send(tokio_tungstenite::tungstenite::Message::Frame(frame)).await.unwrap();
        }
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt as _;
        secrets::record_frame(text);
        self.stream.send(tokio_tungstenite::tungstenite::Message::Text(text.to_owned().into())).await.unwrap();
    }

    /// The next server event (`{"event", "data"}`, checked against `wire::ws::ServerEvent`), or `None` if the
    /// connection closed.
    pub async fn next_event(&mut self) -> Option<Value> {
        let event = self.next_unchecked_event().await?;
        schema::check_event(&event);
        Some(event)
    }

    /// The next frame as JSON, without checking it against `ServerEvent`.
    pub async fn next_unchecked_event(&mut self) -> Option<Value> {
        use futures_util::StreamExt as _;
        loop {
            let msg =
                tokio::time::timeout(EVENT_TIMEOUT, self.stream.next()).await.expect("timed out waiting for an event");
            match msg {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                    let event: Value = serde_json::from_str(&t).unwrap();
                    secrets::record_json(&event);
                    return Some(event);
                }
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Waits for the next event named `name`, skipping `presence` events; returns its data.
    pub async fn expect(&mut self, name: &str) -> Value {
        loop {
            let ev = self.next_event().await.unwrap_or_else(|| panic!("connection closed while waiting for {name}"));
            if ev["event"] == name {
                return ev["data"].clone();
            }
            assert_eq!(ev["event"], "presence", "expected {name}, got {ev}");
        }
    }

    /// Asserts that no event other than `presence` arrives for a while (a `ping` round-trip bounds the wait).
    pub async fn expect_quiet(&mut self) {
        self.send(&json!({"action": "ping"})).await;
        loop {
            let ev = self.next_event().await.expect("connection closed");
            match ev["event"].as_str() {
                Some("pong") => return,
                Some("presence") => {}
                _ => panic!("expected no event, got {ev}"),
            }
        }
    }

    /// Waits for the server to close the connection; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        use futures_util::StreamExt as _;
        loop {
            let msg =
                tokio::time::timeout(EVENT_TIMEOUT, self.stream.next()).await.expect("timed out waiting for close");
            match msg {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => return frame.map(|f| f.code.into()),
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }
}

impl TestApp {
    /// WebSocket URL of the local gateway.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.stack.http_addr)
    }

    /// Opens a WebSocket connection with `?token=`.
    pub async fn ws(&self, token: &str) -> Ws {
        let (stream, _) =
            tokio_tungstenite::connect_async(format!("{}?token={token}", self.ws_url())).await.expect("ws connects");
        Ws { stream }
    }

    /// Two new users (who share no conversation yet), each online with one WebSocket connection:
    /// `(alice, alice's socket, bob, bob's socket)`.
    pub async fn two_online(&self) -> (TestUser, Ws, TestUser, Ws) {
        let (alice, bob) = (self.user().await, self.user().await);
        let (a, b) = (self.ws(&alice.token).await, self.ws(&bob.token).await);
        (alice, a, bob, b)
    }

    /// Inserts messages straight into the database (for arranging large histories).
    pub async fn insert_messages(&self, from: i64, to: i64, count: usize) -> Vec<i64> {
        let conn = self.db().await;
        let mut ids = Vec::new();
        for i in 0..count {
            let mut rows = conn
                .query(
                    "INSERT INTO message (sender_id, receiver_id, encrypted_content, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                    (from, to, format!("ct-{i}"), shared::time::now_ms()),
                )
                .await
                .unwrap();
            ids.push(rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap());
        }
        ids
    }

    /// Counts rows of a query with one integer result.
    pub async fn count(&self, sql: &str) -> i64 {
        let conn = self.db().await;
        let mut rows = conn.query(sql, ()).await.unwrap();
        rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
    }
}

impl TestUser {
    /// Sends a message over a fresh connection and waits for `message_sent`; returns the message id.
    pub async fn send_via(&self, ws: &mut Ws, to: i64, content: &str) -> i64 {
        ws.send(&json!({"action": "send_message", "receiver_id": to, "encrypted_content": content})).await;
        ws.expect("message_sent").await["message_id"].as_i64().unwrap()
    }

    /// Sends `content` to `to` over `ws` and waits until `to`'s socket `to_ws` gets it as `new_message`.
    pub async fn send_delivered(&self, ws: &mut Ws, to: &TestUser, to_ws: &mut Ws, content: &str) -> i64 {
        let id = self.send_via(ws, to.id, content).await;
        assert_eq!(to_ws.expect("new_message").await["id"].as_i64(), Some(id), "delivered to {}", to.id);
        id
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.client.get(path, Some(&self.token)).await
    }
    pub async fn put(&self, path: &str, body: Option<&Value>) -> Resp {
        self.client.call("PUT", path, Some(&self.token), body).await
    }
    pub async fn post(&self, path: &str, body: Option<&Value>) -> Resp {
        self.client.call("POST", path, Some(&self.token), body).await
    }
    /// `POST /keys/claim` as a client makes it, expecting 200: a 503 (the database was too busy; nothing was
    /// done, API.md §1) is tried again after its `Retry-After`. Against a debug `sqld` on a loaded machine, 200
    /// claims queued at once for the one writer can outlast the queue's time.
    pub async fn claim_keys(&self, body: &Value) -> Value {
        for _ in 0..30 {
            let answer = self.post("/keys/claim", Some(body)).await;
            if answer.status.as_u16() != 503 {
                return answer.expect(200);
            }
            let after = answer.headers.get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(1);
            tokio::time::sleep(std::time::Duration::from_secs(after)).await;
        }
        panic!("claims still refused as overloaded after 30 tries");
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.client.call("DELETE", path, Some(&self.token), None).await
    }
    /// `DELETE /users/me` with the account's password.
    pub async fn delete_account(&self) -> Resp {
        self.client.call("DELETE", "/users/me", Some(&self.token), Some(&json!({"password": self.password}))).await
    }
}

/// A tiny valid PNG (1x1).
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];
