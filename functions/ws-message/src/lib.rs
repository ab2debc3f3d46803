//! The `ws-message` function: WebSocket actions `send_message`, `typing`, `mark_read`, `ping` and
//! `$default` (API.md §7.2–7.4).

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt as _, Response};
use serde_json::{Value, json};
use shared::auth::AuthUser;
use shared::messages::{self, MESSAGE_COLUMNS, MessageRow, PAIR_1_2, VISIBLE_TO_1};
use shared::realtime::{self, frame};
use shared::time::now_ms;
use shared::{ApiError, AppState, ratelimit};

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "ws-message";

/// Largest `encrypted_content`.
const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Largest sum of content and envelopes, so every event fits in 128 KB.
const MAX_TOTAL_BYTES: usize = 120 * 1024;
/// A repeated `client_msg_id` within this window replays the original.
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// An `error` event for the sending connection.
#[derive(Debug)]
struct WsError {
    message: &'static str,
    code: &'static str,
}

const fn err(message: &'static str, code: &'static str) -> WsError {
    WsError { message, code }
}

impl From<ApiError> for WsError {
    fn from(e: ApiError) -> Self {
        if e.status().is_server_error() {
            tracing::error!(error = ?e, "action failed");
        }
        err("Failed to send message", "internal_error")
    }
}

impl From<libsql::Error> for WsError {
    fn from(e: libsql::Error) -> Self {
        ApiError::from(e).into()
    }
}

fn ok() -> Response<Body> {
    Response::builder().status(200).body(Body::Empty).unwrap_or_default()
}

/// Serves one WebSocket event; the answer always is 200, results travel as pushed events.
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    let Some(RequestContext::WebSocket(ctx)) = req.request_context_ref() else {
        return ApiError::client(400, "not_websocket", "Not a WebSocket event").into_response();
    };
    let (Some(connection_id), route) = (ctx.connection_id.clone(), ctx.route_key.clone().unwrap_or_default()) else {
        return ok();
    };
    let user = match session(state, &connection_id).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            // Revoked, expired, banned, deleted or unknown: tell the client, then close the connection.
            let payload =
                frame("error", json!({"message": "Unauthorized", "code": "unauthorized", "client_msg_id": null}));
            realtime::push(state, vec![(connection_id.clone(), payload)]).await;
            realtime::close(state, std::slice::from_ref(&connection_id)).await;
            return ok();
        }
        Err(e) => {
            tracing::error!(error = ?e, "session check failed");
            return ok();
        }
    };
    let body: Option<Value> = serde_json::from_slice(req.body().as_ref()).ok();
    let client_msg_id = body.as_ref().and_then(|b| b.get("client_msg_id")).and_then(Value::as_str).map(str::to_owned);
    let result = match (route.as_str(), &body) {
        ("send_message", Some(b)) => send_message(state, &user, &connection_id, b).await,
        ("typing", Some(b)) => typing(state, &user, b).await,
        ("mark_read", Some(b)) => mark_read(state, &user, b).await,
        ("ping", _) => {
            let payload = frame("pong", json!({"time": shared::time::format_ms(now_ms())}));
            realtime::push(state, vec![(connection_id.clone(), payload)]).await;
            Ok(())
        }
        (_, None) => Err(err("Invalid JSON", "invalid_json")),
        _ => Err(err("Unknown action", "unknown_action")),
    };
    if let Err(e) = result {
        let payload = frame("error", json!({"message": e.message, "code": e.code, "client_msg_id": client_msg_id}));
        realtime::push(state, vec![(connection_id, payload)]).await;
    }
    ok()
}

/// The connection's session, re-checked on every action: token version, expiry, device, account state.
async fn session(state: &AppState, connection_id: &str) -> Result<Option<AuthUser>, ApiError> {
    let conn = state.db.conn().await?;
    let mut rows = conn
        .query(
            "SELECT c.user_id, c.device_id, c.token_version, c.token_exp FROM connection c \
             JOIN user u ON u.id = c.user_id JOIN device d ON d.id = c.device_id AND d.user_id = c.user_id \
             WHERE c.id = ?1 AND u.is_deleted = 0 AND u.is_banned = 0 AND u.token_version = c.token_version",
            [connection_id],
        )
        .await?;
    let Some(r) = rows.next().await? else { return Ok(None) };
    let user = AuthUser { id: r.get(0)?, device_id: r.get(1)?, version: r.get(2)?, exp: r.get(3)? };
    Ok((user.exp + 60 >= now_ms() / 1000).then_some(user))
}

/// An integer field: a JSON integer or its decimal text.
fn int_field(body: &Value, name: &str) -> Result<Option<i64>, ()> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(()),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

fn valid_client_msg_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Resolves a `media_url` (object key or a URL we issued) to a key the sender owns.
async fn media_key(state: &AppState, sender: i64, reference: &str) -> Result<String, WsError> {
    shared::files::owned_key(state, sender, reference).await?.ok_or(err("Invalid media reference", "invalid_media"))
}

/// `send_message` — validates, stores (idempotent on `client_msg_id`), acknowledges with `message_sent`
/// and fans `new_message` out to the receiver's connections and the sender's other connections.
async fn send_message(state: &AppState, user: &AuthUser, connection_id: &str, body: &Value) -> Result<(), WsError> {
    let client_msg_id = match body.get("client_msg_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if valid_client_msg_id(s) => Some(s.clone()),
        Some(_) => return Err(err("Invalid client_msg_id", "invalid_client_msg_id")),
    };
    // A retry of a stored message is acknowledged again before any other check (rate limit, receiver gone):
    // an error would tell the client it was not stored.
    if let Some(cid) = &client_msg_id
        && let Some(existing) = stored_retry(state, user.id, cid).await?
    {
        let sent = frame(
            "message_sent",
            json!({"message_id": existing.id, "client_msg_id": existing.client_msg_id, "timestamp": shared::time::format_ms(existing.created_at)}),
        );
        realtime::push(state, vec![(connection_id.to_owned(), sent)]).await;
        return Ok(());
    }
    let missing = || err("Missing receiver_id or encrypted_content", "missing_fields");
    let receiver_id = int_field(body, "receiver_id").map_err(|()| err("Invalid user ID format", "invalid_id"))?;
    let content = body.get("encrypted_content").and_then(Value::as_str).filter(|c| !c.is_empty());
    let (Some(receiver_id), Some(content)) = (receiver_id, content) else { return Err(missing()) };
    if content.len() > MAX_CONTENT_BYTES || content.len() > MAX_TOTAL_BYTES {
        return Err(err("Message too large", "payload_too_large"));
    }
    let message_type = match body.get("message_type") {
        None | Some(Value::Null) => "text",
        Some(Value::String(t)) if ["text", "image", "file"].contains(&t.as_str()) => t.as_str(),
        Some(_) => return Err(err("Invalid message_type", "invalid_message_type")),
    };
    if receiver_id == user.id {
        return Err(err("Cannot send message to yourself", "self_message"));
    }
    let reply_to =
        int_field(body, "reply_to_message_id").map_err(|()| err("Reply message not found", "reply_not_found"))?;
    if ratelimit::hit(&state.db, "send_message", &user.id.to_string(), state.config.rate_limits.send_message)
        .await
        .is_err()
    {
        return Err(err("Rate limit exceeded", "rate_limited"));
    }
    {
        let conn = state.db.conn().await?;
        let mut rows = conn.query("SELECT 1 FROM user WHERE id = ?1 AND is_deleted = 0", [receiver_id]).await?;
        if rows.next().await?.is_none() {
            return Err(err("Receiver not found", "receiver_not_found"));
        }
        drop(rows);
        if let Some(reply) = reply_to {
            let sql = format!("SELECT 1 FROM message WHERE id = ?3 AND {PAIR_1_2} AND {VISIBLE_TO_1}");
            let mut rows = conn.query(&sql, (user.id, receiver_id, reply)).await?;
            if rows.next().await?.is_none() {
                return Err(err("Reply message not found", "reply_not_found"));
            }
        }
    }
    let envelopes = parse_envelopes(state, user.id, receiver_id, body).await?;
    if content.len() + envelopes.iter().map(|e| e.2.len()).sum::<usize>() > MAX_TOTAL_BYTES {
        return Err(err("Message too large", "payload_too_large"));
    }
    let media = match body.get("media_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(media_key(state, user.id, s).await?),
        Some(_) => return Err(err("Invalid media reference", "invalid_media")),
    };

    let new = NewMessage { receiver_id, content, message_type, media, reply_to, client_msg_id, envelopes: &envelopes };
    let (msg, duplicate) = match store(state, user, new).await {
        Err(e) if e.code() == "invalid_media" => return Err(err("Invalid media reference", "invalid_media")),
        other => other?,
    };
    let sent = frame(
        "message_sent",
        json!({"message_id": msg.id, "client_msg_id": msg.client_msg_id, "timestamp": shared::time::format_ms(msg.created_at)}),
    );
    let mut targets = vec![(connection_id.to_owned(), sent)];
    if !duplicate {
        let conn = state.db.conn().await?;
        let receipts = messages::receipts_shared(&conn, user.id, receiver_id).await?;
        let conns = realtime::connections_of(&conn, &[user.id, receiver_id]).await?;
        drop(conn);
        let for_receiver = messages::view(state, &msg, receiver_id, receipts, None).await?;
        let for_sender = messages::view(state, &msg, user.id, receipts, None).await?;
        for c in conns.into_iter().filter(|c| c.id != connection_id) {
            let mut view = if c.user_id == receiver_id { for_receiver.clone() } else { for_sender.clone() };
            // Each device gets only the ciphertext addressed to it.
            view.envelope = envelopes.iter().find(|e| e.0 == c.user_id && e.1 == c.device_id).map(|e| e.2.clone());
            targets.push((c.id, frame("new_message", view)));
        }
    }
    realtime::push(state, targets).await;
    Ok(())
}

/// The message a sender already stored under `client_msg_id` within the idempotency window.
async fn stored_retry(state: &AppState, sender: i64, client_msg_id: &str) -> Result<Option<MessageRow>, ApiError> {
    let conn = state.db.conn().await?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM message WHERE sender_id = ?1 AND client_msg_id = ?2 AND created_at > ?3"
    );
    Ok(messages::query_messages(&conn, &sql, (sender, client_msg_id, now_ms() - IDEMPOTENCY_WINDOW_MS)).await?.pop())
}

/// A validated message to store.
struct NewMessage<'a> {
    receiver_id: i64,
    content: &'a str,
    message_type: &'a str,
    media: Option<String>,
    reply_to: Option<i64>,
    client_msg_id: Option<String>,
    envelopes: &'a [(i64, String, String)],
}

/// Validates `envelopes`: at most 50, each addressed to an existing device of the sender or the receiver
/// (once), with base64 ciphertext. Returns (user id, device id, ciphertext).
async fn parse_envelopes(
    state: &AppState,
    sender: i64,
    receiver: i64,
    body: &Value,
) -> Result<Vec<(i64, String, String)>, WsError> {
    let invalid = || err("Invalid envelope", "invalid_envelope");
    let list = match body.get("envelopes") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) if list.len() <= 50 => list,
        Some(_) => return Err(invalid()),
    };
    let devices: Vec<(i64, String)> = {
        let conn = state.db.conn().await?;
        let mut rows =
            conn.query("SELECT user_id, id FROM device WHERE user_id IN (?1, ?2)", (sender, receiver)).await?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().await? {
            out.push((r.get(0)?, r.get(1)?));
        }
        out
    };
    let mut out: Vec<(i64, String, String)> = Vec::with_capacity(list.len());
    for e in list {
        let user_id = e.get("user_id").and_then(Value::as_i64).ok_or_else(invalid)?;
        let device_id = e.get("device_id").and_then(Value::as_str).ok_or_else(invalid)?;
        let ciphertext = e.get("ciphertext").and_then(Value::as_str).filter(|c| !c.is_empty()).ok_or_else(invalid)?;
        if !devices.iter().any(|(u, d)| *u == user_id && d == device_id)
            || out.iter().any(|(_, d, _)| d == device_id)
            || shared::keys::decode(ciphertext).is_none()
        {
            return Err(invalid());
        }
        out.push((user_id, device_id.to_owned(), ciphertext.to_owned()));
    }
    Ok(out)
}

/// Stores a message and its envelopes in one write transaction; a `client_msg_id` already used within 24 h
/// returns the original message instead (`true`).
async fn store(state: &AppState, user: &AuthUser, new: NewMessage<'_>) -> Result<(MessageRow, bool), ApiError> {
    let now = now_ms();
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    if let Some(cid) = &new.client_msg_id {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM message WHERE sender_id = ?1 AND client_msg_id = ?2");
        if let Some(existing) = messages::query_messages(&tx, &sql, (user.id, cid.as_str())).await?.pop() {
            if existing.created_at > now - IDEMPOTENCY_WINDOW_MS {
                tx.rollback().await?;
                return Ok((existing, true));
            }
            tx.execute("UPDATE message SET client_msg_id = NULL WHERE id = ?1", [existing.id]).await?;
        }
    }
    if let Some(key) = &new.media
        && !shared::files::still_owned(&tx, user.id, key).await?
    {
        return Err(ApiError::client(400, "invalid_media", "Invalid media reference"));
    }
    let sql = format!(
        "INSERT INTO message (sender_id, receiver_id, encrypted_content, message_type, media_key, reply_to_message_id, \
         client_msg_id, sender_device_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING {MESSAGE_COLUMNS}"
    );
    let msg = messages::query_messages(
        &tx,
        &sql,
        (
            user.id,
            new.receiver_id,
            new.content,
            new.message_type,
            new.media,
            new.reply_to,
            new.client_msg_id,
            user.device_id.as_str(),
            now,
        ),
    )
    .await?
    .pop()
    .ok_or_else(|| anyhow::anyhow!("insert returned no row"))?;
    for (user_id, device_id, ciphertext) in new.envelopes {
        tx.execute(
            "INSERT INTO message_envelope (message_id, device_id, user_id, ciphertext) VALUES (?1, ?2, ?3, ?4)",
            (msg.id, device_id.as_str(), *user_id, ciphertext.as_str()),
        )
        .await?;
    }
    tx.commit().await?;
    Ok((msg, false))
}

/// `typing` — relayed to the receiver's connections when they share a conversation and the sender shows
/// online status; anything else, and more than one per second, is dropped silently.
async fn typing(state: &AppState, user: &AuthUser, body: &Value) -> Result<(), WsError> {
    let (Ok(Some(receiver_id)), Some(is_typing)) =
        (int_field(body, "receiver_id"), body.get("is_typing").and_then(Value::as_bool))
    else {
        return Ok(());
    };
    if receiver_id == user.id {
        return Ok(());
    }
    let allowed = {
        let conn = state.db.conn().await?;
        let sql = format!(
            "SELECT u.show_online_status AND EXISTS (SELECT 1 FROM message WHERE {PAIR_1_2} AND deleted_for_everyone = 0) \
             FROM user u WHERE u.id = ?1"
        );
        let mut rows = conn.query(&sql, (user.id, receiver_id)).await?;
        rows.next().await?.map(|r| r.get::<bool>(0)).transpose()?.unwrap_or(false)
    };
    if !allowed {
        return Ok(());
    }
    let pair = format!("{}:{receiver_id}", user.id);
    if ratelimit::hit(&state.db, "typing", &pair, state.config.rate_limits.typing).await.is_err() {
        return Ok(());
    }
    let payload = frame("typing", json!({"sender_id": user.id, "is_typing": is_typing}));
    realtime::push_to_users(state, &[receiver_id], None, &payload).await;
    Ok(())
}

/// `mark_read` — same as `POST /chats/{peer_id}/mark-read`; no acknowledgement.
async fn mark_read(state: &AppState, user: &AuthUser, body: &Value) -> Result<(), WsError> {
    let invalid = || err("Invalid user ID format", "invalid_id");
    let peer = int_field(body, "peer_id").map_err(|()| invalid())?.ok_or_else(invalid)?;
    let up_to = int_field(body, "up_to_id").map_err(|()| invalid())?;
    messages::mark_read(state, user.id, peer, up_to).await?;
    Ok(())
}
