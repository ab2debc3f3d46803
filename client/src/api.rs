//! The REST API, typed just enough for the client.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// A REST client for one server and (once logged in) one token.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    /// Base URL, e.g. `http://127.0.0.1:3000`.
    pub base: String,
    /// Bearer token.
    pub token: Option<String>,
}

/// The token response of register and login.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Session {
    pub access_token: String,
    pub user_id: i64,
    pub device_id: String,
}

/// Selects ring as rustls' process-wide crypto provider (several may be compiled in); idempotent.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Api {
    /// A client for `base`.
    pub fn new(base: &str) -> Self {
        init_tls();
        Self { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned(), token: None }
    }

    /// The WebSocket URL of the server (`http` → `ws`, `https` → `wss`, path `/ws`).
    pub fn ws_url(&self) -> String {
        let base = self.base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
        format!("{base}/ws")
    }

    /// Sends a request and returns the JSON body of a 2xx answer; other statuses become errors with the
    /// server's `detail`.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.with_context(|| format!("request to {path}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        let value: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        if !status.is_success() {
            bail!("{path}: {status} {}", value["detail"].as_str().unwrap_or(&text));
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn register(
        &self,
        first: &str,
        last: &str,
        phone: &str,
        password: &str,
        device: &str,
    ) -> anyhow::Result<Session> {
        let body = json!({"first_name": first, "last_name": last, "phone": phone, "password": password, "device_name": device});
        Ok(serde_json::from_value(self.post("/auth/register", &body).await?)?)
    }

    /// Logs in with `{"phone": ...}` or `{"username": ...}` in `login`.
    pub async fn login(&self, mut login: Value, password: &str, device: &str) -> anyhow::Result<Session> {
        login["password"] = json!(password);
        login["device_name"] = json!(device);
        Ok(serde_json::from_value(self.post("/auth/login", &login).await?)?)
    }

    /// Uploads bytes to a presigned URL with exactly the signed headers.
    pub async fn put_presigned(&self, url: &str, headers: &Value, bytes: Vec<u8>) -> anyhow::Result<()> {
        let mut req = self.http.put(url);
        for (k, v) in headers.as_object().into_iter().flatten() {
            if let Some(v) = v.as_str() {
                req = req.header(k.as_str(), v);
            }
        }
        let resp = req.body(bytes).send().await?;
        if !resp.status().is_success() {
            bail!("upload refused: {}", resp.status());
        }
        Ok(())
    }

    /// Downloads a presigned URL.
    pub async fn download(&self, url: &str) -> anyhow::Result<Vec<u8>> {
        let resp = self.http.get(url).send().await?;
        if !resp.status().is_success() {
            bail!("download failed: {}", resp.status());
        }
        Ok(resp.bytes().await?.to_vec())
    }
}
