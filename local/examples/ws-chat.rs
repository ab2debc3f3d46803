//! A minimal real-time chat client for trying the local stack:
//! `cargo run -p messenger-local --example ws-chat -- <access_token> [ws-url]`
//! where `ws-url` defaults to `ws://127.0.0.1:3000/ws` (the local stack's WebSocket API; a deployed stage's
//! `wss://<api>.execute-api.<region>.amazonaws.com/<stage>` works the same).
//! Type `<receiver_id> <text>` and Enter to send; every server event is printed as it arrives.
//!
//! **Not encrypted:** this example puts the typed text into `encrypted_content` as it is, so the server and
//! anyone reading the database see it. The end-to-end encrypting client is the `messenger` CLI (`client/`).

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncBufReadExt as _;
use tokio_tungstenite::tungstenite::Message;
use wire::ws::{ClientAction, LooseId, SendMessage};

const USAGE: &str = "type: <receiver_id> <text>   (e.g. `2 hello bob`)";

/// The frame for one typed line, or the hint to show instead.
fn frame_for(line: &str) -> Result<Option<ClientAction>, &'static str> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let (to, text) = line.split_once(' ').ok_or(USAGE)?;
    let to: i64 = to.parse().map_err(|_| USAGE)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(USAGE);
    }
    Ok(Some(ClientAction::SendMessage(SendMessage {
        receiver_id: Some(LooseId::Int(to)),
        encrypted_content: Some(text.to_owned()),
        ..SendMessage::default()
    })))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let token = args.next().ok_or_else(|| anyhow::anyhow!("usage: ws-chat <access_token> [ws-url]"))?;
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:3000/ws".into());
    // The token travels in the subprotocol header, never in the URL (where logs and proxies keep it).
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url.as_str())?;
    request
        .headers_mut()
        .insert(http::header::SEC_WEBSOCKET_PROTOCOL, format!("messenger.v1, bearer.{token}").parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    let (mut tx, mut rx) = ws.split();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut ping = tokio::time::interval(std::time::Duration::from_secs(240));
    eprintln!("connected (messages are sent as typed, NOT end-to-end encrypted); {USAGE}");
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                match frame_for(&line) {
                    Ok(Some(frame)) => tx.send(Message::Text(serde_json::to_string(&frame)?.into())).await?,
                    Ok(None) => {}
                    Err(hint) => eprintln!("{hint}"),
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(t))) => println!("{t}"),
                Some(Ok(Message::Close(c))) => { println!("closed: {c:?}"); break; }
                Some(Ok(_)) => {}
                Some(Err(e)) => { println!("error: {e}"); break; }
                None => break,
            },
            _ = ping.tick() => tx.send(Message::Text(serde_json::to_string(&ClientAction::Ping)?.into())).await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_with_an_id_and_no_text_gets_the_usage_hint() {
        assert_eq!(frame_for("2"), Err(USAGE));
        assert_eq!(frame_for("2   "), Err(USAGE));
        assert_eq!(frame_for("bob hello"), Err(USAGE));
        assert_eq!(frame_for("   "), Ok(None));
        let Ok(Some(ClientAction::SendMessage(m))) = frame_for("2 hello bob") else { panic!("a frame") };
        assert_eq!((m.receiver_id, m.encrypted_content.as_deref()), (Some(LooseId::Int(2)), Some("hello bob")));
    }
}
