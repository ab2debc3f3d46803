//! A minimal real-time chat client for trying the local stack:
//! `cargo run -p messenger-local --example ws-chat -- <access_token> [ws://127.0.0.1:3000/ws]`
//! Type `<receiver_id> <text>` and Enter to send; every server event is printed as it arrives.
//! (`encrypted_content` is opaque to the server; the end-to-end encrypting client is `client/`.)

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncBufReadExt as _;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let token = args.next().ok_or_else(|| anyhow::anyhow!("usage: ws-chat <access_token> [ws-url]"))?;
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:3000/ws".into());
    let (ws, _) = tokio_tungstenite::connect_async(format!("{url}?token={token}")).await?;
    let (mut tx, mut rx) = ws.split();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut ping = tokio::time::interval(std::time::Duration::from_secs(240));
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let Some((to, text)) = line.trim().split_once(' ') else { continue };
                let Ok(to) = to.parse::<i64>() else { eprintln!("usage: <receiver_id> <text>"); continue };
                let frame = serde_json::json!({"action": "send_message", "receiver_id": to, "encrypted_content": text});
                tx.send(Message::Text(frame.to_string().into())).await?;
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Text(t))) => println!("{t}"),
                Some(Ok(Message::Close(c))) => { println!("closed: {c:?}"); break; }
                Some(Ok(_)) => {}
                Some(Err(e)) => { println!("error: {e}"); break; }
                None => break,
            },
            _ = ping.tick() => tx.send(Message::Text(r#"{"action":"ping"}"#.into())).await?,
        }
    }
    Ok(())
}
