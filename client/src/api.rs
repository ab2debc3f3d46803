//! The REST API, typed by the `wire` crate: one generic call per endpoint declaration.

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wire::{Endpoint, Input, Output};

/// A REST client for one server and (once logged in) one token.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    /// Base URL, e.g. `http://127.0.0.1:3000`.
    pub base: String,
    /// Bearer token.
    pub token: Option<String>,
}

/// Selects ring as rustls' process-wide crypto provider (several may be compiled in); idempotent.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Splits a request into the endpoint's path (parameters substituted) and the remaining fields.
fn split<E: Endpoint>(request: &E::Request) -> anyhow::Result<(String, serde_json::Map<String, Value>)>
where
    E::Request: Serialize,
{
    let mut fields = match serde_json::to_value(request)? {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let mut path = E::PATH.to_owned();
    for name in wire::openapi::path_params(E::PATH) {
        let value = match fields.remove(name) {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => bail!("{}: path parameter {name} missing", E::OPERATION_ID),
        };
        let encoded = percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string();
        path = path.replace(&format!("{{{name}}}"), &encoded);
    }
    fields.retain(|_, v| !v.is_null());
    Ok((path, fields))
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

    /// The WebSocket handshake with `token`: it travels in `Sec-WebSocket-Protocol` (`messenger.v1,
    /// bearer.<JWT>`), never in the URL, where proxies and access logs would keep it.
    pub fn ws_request(
        &self,
        token: &str,
    ) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = self.ws_url().into_client_request()?;
        let protocols = format!("messenger.v1, bearer.{token}").parse()?;
        req.headers_mut().insert(tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL, protocols);
        Ok(req)
    }

    /// Calls endpoint `E` with `request` (path parameters, query and body placed as `E` declares) and decodes
    /// its answer; error statuses become errors with the server's `detail`.
    pub async fn call<E: Endpoint>(&self, _endpoint: E, request: &E::Request) -> anyhow::Result<E::Response>
    where
        E::Request: Serialize,
        E::Response: DeserializeOwned,
    {
        let (path, fields) = split::<E>(request)?;
        let method = reqwest::Method::from_bytes(E::METHOD.as_str().as_bytes())?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let bodyless = matches!(E::METHOD, wire::Method::Get | wire::Method::Delete);
        req = match E::INPUT {
            // What the original client does: query parameters on reads and deletes, JSON bodies otherwise.
            Input::Query | Input::QueryOrJson if bodyless => req.query(&fields),
            Input::Json | Input::QueryOrJson => req.json(&fields),
            Input::Multipart => bail!("{}: multipart uploads are not supported by this client", E::OPERATION_ID),
            _ => req,
        };
        let resp = req.send().await.with_context(|| format!("request to {path}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            let (code, detail) = match serde_json::from_str::<wire::ErrorBody>(&text) {
                Ok(e) => (Some(e.code), e.detail),
                Err(_) => (None, text),
            };
            return Err(Refused { path, status, code, detail }.into());
        }
        let text = if E::OUTPUT == Output::Empty || text.is_empty() { "{}" } else { text.as_str() };
        serde_json::from_str(text).with_context(|| format!("answer of {path}"))
    }

    /// Uploads bytes to a presigned URL with exactly the signed headers.
    pub async fn put_presigned(
        &self,
        url: &str,
        headers: &wire::files::PresignedHeaders,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        let resp = self
            .http
            .put(url)
            .header("Content-Type", &headers.content_type)
            .header("Content-Length", &headers.content_length)
            .header("If-None-Match", &headers.if_none_match)
            .body(bytes)
            .send()
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_substituted_and_removed_from_the_fields() {
        let req =
            wire::chats::ListMessagesRequest { target_user_id: 7, limit: Some(200), before_id: None, after_id: None };
        let (path, fields) = split::<wire::chats::ListMessages>(&req).unwrap();
        assert_eq!(path, "/chats/7/messages");
        assert_eq!(fields.len(), 1);
        assert_eq!(fields["limit"], 200);
        let req = wire::keys::DeleteDeviceRequest { device_id: "a b".into() };
        assert_eq!(split::<wire::keys::DeleteDevice>(&req).unwrap().0, "/devices/a%20b");
    }

    #[test]
    fn the_websocket_token_travels_in_the_subprotocol_never_in_the_url() {
        let req = Api::new("https://api.example.com/").ws_request("aaa.bbb.ccc").unwrap();
        assert_eq!(req.uri().to_string(), "wss://api.example.com/ws");
        assert_eq!(req.uri().query(), None);
        assert_eq!(req.headers()["sec-websocket-protocol"], "messenger.v1, bearer.aaa.bbb.ccc");
    }
}

/// An error answer of the server: `{path}: {status} {detail}`, with the contract's code to act on.
#[derive(Debug)]
pub struct Refused {
    /// The request path.
    pub path: String,
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The contract's error code, when the body had one.
    pub code: Option<wire::ErrorCode>,
    /// The server's `detail`.
    pub detail: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {}", self.path, self.status, self.detail)
    }
}

impl std::error::Error for Refused {}

/// Whether `error` is the server's answer with `code`.
pub fn refused_with(error: &anyhow::Error, code: wire::ErrorCode) -> bool {
    error.downcast_ref::<Refused>().is_some_and(|r| r.code == Some(code))
}
