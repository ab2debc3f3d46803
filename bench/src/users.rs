//! Bench accounts: sign-up, login, WebSocket connections, and the few frames the bench reads.

use std::borrow::Cow;

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use futures_util::stream::{self, TryStreamExt as _};
use messenger_client::api::Api;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The password of every bench account.
pub const PASSWORD: &str = "bench-password-1";

/// A signed-up account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub phone: String,
    pub token: String,
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A random phone number in the fictional 555-01xx style, unique enough for one stage.
fn random_phone() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    format!("+1555{:010}", u64::from_le_bytes(b) % 10_000_000_000)
}

/// A run-unique tag for `client_msg_id`s (so repeated runs against one stage never replay each other).
pub fn run_tag() -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    format!("{:08x}", u32::from_le_bytes(b))
}

/// Signs up `n` accounts, at most `parallel` at a time (the server hashes every password with bcrypt).
pub async fn sign_up(base: &str, n: usize, parallel: usize) -> anyhow::Result<Vec<User>> {
    stream::iter(0..n)
        .map(|i| async move {
            let phone = random_phone();
            let req = wire::auth::RegisterRequest {
                first_name: "Bench".into(),
                last_name: format!("User{i}"),
                phone: phone.clone(),
                password: PASSWORD.into(),
                public_key: None,
                device_name: Some("bench".into()),
            };
            let token = Api::new(base).call(wire::auth::Register, &req).await.map_err(|e| hint(e, "sign-up"))?;
            anyhow::Ok(User { id: token.user_id, phone, token: token.access_token })
        })
        .buffered(parallel.max(1))
        .try_collect()
        .await
}

/// Logs `user` in again (a new device), answering the new token.
pub async fn login(base: &str, user: &User) -> anyhow::Result<String> {
    let req = wire::auth::LoginRequest {
        phone: Some(user.phone.clone()),
        username: None,
        password: PASSWORD.into(),
        device_name: Some("bench".into()),
        device_id: None,
    };
    let token = Api::new(base).call(wire::auth::Login, &req).await.map_err(|e| hint(e, "login"))?;
    Ok(token.access_token)
}

/// Adds what to do about a rate limit to an error.
fn hint(e: anyhow::Error, what: &str) -> anyhow::Error {
    if e.to_string().contains("429") {
        e.context(format!(
            "{what} was rate limited: run the stack with the bench's limits (bench/local.sh does, see README \
             \"Performance\")"
        ))
    } else {
        e.context(what.to_owned())
    }
}

/// Opens `user`'s WebSocket (the token in the subprotocol, as the reference client sends it).
pub async fn connect(base: &str, user: &User) -> anyhow::Result<Socket> {
    let req = Api::new(base).ws_request(&user.token)?;
    // Nagle off: a frame is written in pieces, and the second would wait for the server's delayed ACK.
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(req, None, true).await.context("WebSocket connect")?;
    Ok(socket)
}

/// The parts of a server frame the bench reads.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(default, borrow)]
    pub data: Data<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Data<'a> {
    #[serde(default, borrow)]
    pub client_msg_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub encrypted_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default)]
    pub message_id: Option<i64>,
}

/// Parses a server frame; anything unparsable is an error (the server never sends one).
pub fn frame(text: &str) -> anyhow::Result<Frame<'_>> {
    match serde_json::from_str(text) {
        Ok(f) => Ok(f),
        Err(e) => bail!("unparsable frame ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_expose_what_the_bench_reads() {
        let f =
            frame(r#"{"event":"message_sent","data":{"message_id":7,"client_msg_id":"a-1","timestamp":"t"}}"#).unwrap();
        assert_eq!(f.event, "message_sent");
        assert_eq!(f.data.client_msg_id.as_deref(), Some("a-1"));
        assert_eq!(f.data.message_id, Some(7));
        let f =
            frame(r#"{"event":"error","data":{"message":"x","code":"rate_limited","client_msg_id":null}}"#).unwrap();
        assert_eq!(f.data.code.as_deref(), Some("rate_limited"));
        assert!(frame("{").is_err());
    }

    #[test]
    fn phones_have_the_digits_the_server_wants() {
        let p = random_phone();
        assert_eq!(p.len(), 15);
        assert!(p[1..].bytes().all(|b| b.is_ascii_digit()));
    }
}
