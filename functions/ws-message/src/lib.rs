//! The `ws-message` function: WebSocket actions `send_message`, `typing`, `mark_read`, `ping`,
//! `send_group_message` (API.md §15.4) and `$default` (API.md §7.2–7.4).
//!
//! API Gateway selects the route by the frame's `action` (`$default` for anything else);
//! [`ClientAction::decode`] turns the frame of a route into its action, and `perform` has one arm per action.

use std::collections::HashMap;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt as _, Response};
use serde::Deserialize;
use serde::de::IgnoredAny;
use shared::auth::AuthUser;
use shared::db::messages::NewMessage;
use shared::db::mls_groups::MessageRow as GroupMessageRow;
use shared::messages::{self, MessageRow};
use shared::ratelimit::Scope;
use shared::time::{format_ms, now_ms};
use shared::{ApiError, AppState, db, realtime};
use wire::ErrorCode;
use wire::objects::MessageType;
use wire::ws::{
    ClientAction, Envelope, ErrorEvent, GroupMessageSent, LooseId, MarkRead, MessageSent, Pong, Refused,
    SendGroupMessage, SendMessage, ServerEvent, Typing, TypingEvent, WsErrorCode,
};

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "ws-message";

/// Largest `encrypted_content`.
const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Largest sum of content and envelopes, so every event fits in 128 KB.
const MAX_TOTAL_BYTES: usize = 120 * 1024;
/// Most envelopes of one message.
const MAX_ENVELOPES: usize = 50;
/// A repeated `client_msg_id` within this window replays the original.
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The `client_msg_id` an `error` event echoes: the frame's when it is a string (a malformed one too).
fn echoed_client_msg_id(frame: &[u8]) -> Option<String> {
    /// A top-level value of the frame: text, or anything else.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Field {
        Text(String),
        Other(IgnoredAny),
    }
    let mut fields: HashMap<String, Field> = serde_json::from_slice(frame).ok()?;
    match fields.remove("client_msg_id")? {
        Field::Text(text) => Some(text),
        Field::Other(_) => None,
    }
}

/// An action that failed: the sending connection gets an `error` event of this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failed(WsErrorCode);

impl From<ApiError> for Failed {
    fn from(e: ApiError) -> Self {
        if let ApiError::RateLimited { .. } = e {
            return Self(WsErrorCode::RateLimited);
        }
        if e.error_code() == ErrorCode::ServiceUnavailable {
            tracing::warn!(error = ?e, "action refused: database overloaded");
            return Self(WsErrorCode::ServiceUnavailable);
        }
        if e.status().is_server_error() {
            tracing::error!(error = ?e, "action failed");
        }
        Self(WsErrorCode::InternalError)
    }
}

impl From<libsql::Error> for Failed {
    fn from(e: libsql::Error) -> Self {
        ApiError::from(e).into()
    }
}

fn ok() -> Response<Body> {
    Response::builder().status(200).body(Body::Empty).unwrap_or_default()
}

/// The rate-limit scope of every frame of a connection.
const FRAMES: Scope = Scope::WsFrames;

/// Serves one WebSocket event; the answer always is 200, results travel as pushed events.
///
/// Every frame counts against its connection's budget (`RATE_LIMIT_WS_FRAMES`) before anything else is done
/// for it — frames that fail to decode, unknown actions and retried sends too: a send in its own write
/// transaction, any other frame here. A window this process knows is full refuses before the session query
/// and decoding, without database work; see [`over_budget`] for how a refused frame is answered.
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    let Some(RequestContext::WebSocket(ctx)) = req.request_context_ref() else {
        return ApiError::code(ErrorCode::NotWebsocket).into_response();
    };
    let (Some(connection_id), route) = (ctx.connection_id.clone(), ctx.route_key.clone().unwrap_or_default()) else {
        return ok();
    };
    let frame = req.body().as_ref();
    if state.limiter.check(FRAMES, &connection_id).is_err() {
        over_budget(state, &connection_id, frame).await;
        return ok();
    }
    let decoded = ClientAction::decode(&route, frame);
    // Sends count their frame inside their own write transaction.
    if !matches!(decoded, Ok(ClientAction::SendMessage(_) | ClientAction::SendGroupMessage(_)))
        && let Err(e) = state.limiter.hit(&state.db, FRAMES, &connection_id).await
    {
        fail(state, &connection_id, frame, e.into()).await;
        return ok();
    }
    let user = match session(state, &connection_id).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            // Revoked, expired, banned, deleted or unknown: tell the client, then close the connection.
            let event = ServerEvent::Error(ErrorEvent::new(WsErrorCode::Unauthorized, None));
            realtime::push(state, vec![(connection_id.clone(), event.to_frame())]).await;
            realtime::close(state, std::slice::from_ref(&connection_id)).await;
            return ok();
        }
        Err(e) => {
            // The action was not performed: say so, with the code that tells the client whether to retry.
            fail(state, &connection_id, frame, e.into()).await;
            return ok();
        }
    };
    let result = match decoded {
        Ok(action) => perform(state, &user, &connection_id, action).await,
        Err(Refused::Dropped) => Ok(()),
        Err(Refused::Error(code)) => Err(Failed(code)),
    };
    if let Err(failed) = result {
        fail(state, &connection_id, frame, failed).await;
    }
    ok()
}

/// Answers a frame whose action failed with an `error` event — unless the frame was over its connection's
/// budget, which [`over_budget`] answers.
async fn fail(state: &AppState, connection_id: &str, frame: &[u8], Failed(code): Failed) {
    if code == WsErrorCode::RateLimited && state.limiter.refusals(FRAMES, connection_id) > 0 {
        // The frame budget refused it (a send's own limit refuses only frames the budget let through).
        return over_budget(state, connection_id, frame).await;
    }
    let event = ServerEvent::Error(ErrorEvent::new(code, echoed_client_msg_id(frame)));
    realtime::push(state, vec![(connection_id.to_owned(), event.to_frame())]).await;
}

/// A frame over its connection's budget: the first refusal of a window is answered with `rate_limited`, the
/// next ones are dropped unanswered, and a connection that goes on sending a whole budget's worth of frames
/// into a full window is closed (its client reconnects through `$connect`, which has its own limit).
async fn over_budget(state: &AppState, connection_id: &str, frame: &[u8]) {
    let refusals = state.limiter.refusals(FRAMES, connection_id);
    if refusals >= state.limiter.limit(FRAMES).max.max(1) {
        tracing::warn!("connection closed: frames far over its budget");
        realtime::close(state, &[connection_id.to_owned()]).await;
    } else if refusals <= 1 {
        let event = ServerEvent::Error(ErrorEvent::new(WsErrorCode::RateLimited, echoed_client_msg_id(frame)));
        realtime::push(state, vec![(connection_id.to_owned(), event.to_frame())]).await;
    }
}

/// Performs one action of the WebSocket API (its frame was counted).
async fn perform(state: &AppState, user: &AuthUser, connection_id: &str, action: ClientAction) -> Result<(), Failed> {
    match action {
        ClientAction::SendMessage(input) => send_message(state, user, connection_id, input).await,
        ClientAction::Typing(input) => typing(state, user, input).await,
        ClientAction::MarkRead(input) => mark_read(state, user, input).await,
        ClientAction::Ping => ping(state, connection_id).await,
        ClientAction::SendGroupMessage(input) => send_group_message(state, user, connection_id, input).await,
    }
}

/// The connection's session, re-checked on every action (looked up at most the session cache's time ago):
/// token version, device, account state; the expiry every time.
async fn session(state: &AppState, connection_id: &str) -> Result<Option<AuthUser>, ApiError> {
    let s = match state.sessions.get(connection_id) {
        Some(s) => s,
        None => {
            let conn = state.db.conn().await?;
            let Some(s) = db::connections::session(&conn, connection_id).await? else { return Ok(None) };
            state.sessions.put(connection_id, &s);
            s
        }
    };
    let user = AuthUser { id: s.user_id, device_id: s.device_id, version: s.token_version, exp: s.token_exp };
    Ok((user.exp + 60 >= now_ms() / 1000).then_some(user))
}

/// An id field that may hold decimal text; text that is no integer is the error `code`.
fn loose_id(id: Option<&LooseId>, code: WsErrorCode) -> Result<Option<i64>, Failed> {
    id.map(|id| id.get().ok_or(Failed(code))).transpose()
}

fn valid_client_msg_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The fields of a `send_message` checked before the database is asked anything but the retry lookup.
#[derive(Debug, PartialEq, Eq)]
struct Checked<'a> {
    receiver_id: i64,
    content: &'a str,
    message_type: MessageType,
    reply_to: Option<i64>,
}

/// Checks, in the contract's order: the receiver id, the presence of receiver and content, the content
/// size, the receiver being someone else, the reply id.
fn check_fields(input: &SendMessage, sender: i64) -> Result<Checked<'_>, Failed> {
    let receiver_id = loose_id(input.receiver_id.as_ref(), WsErrorCode::InvalidId)?;
    let content = input.encrypted_content.as_deref().filter(|c| !c.is_empty());
    let (Some(receiver_id), Some(content)) = (receiver_id, content) else {
        return Err(Failed(WsErrorCode::MissingFields));
    };
    if content.len() > MAX_CONTENT_BYTES || content.len() > MAX_TOTAL_BYTES {
        return Err(Failed(WsErrorCode::PayloadTooLarge));
    }
    if receiver_id == sender {
        return Err(Failed(WsErrorCode::SelfMessage));
    }
    let reply_to = loose_id(input.reply_to_message_id.as_ref(), WsErrorCode::ReplyNotFound)?;
    Ok(Checked { receiver_id, content, message_type: input.message_type.unwrap_or_default(), reply_to })
}

/// `message_sent` for a stored message.
fn message_sent(msg: &MessageRow) -> String {
    let sent = MessageSent {
        message_id: msg.id,
        client_msg_id: msg.client_msg_id.clone(),
        timestamp: format_ms(msg.created_at),
    };
    ServerEvent::MessageSent(sent).to_frame()
}

/// `send_message` — validates, stores (idempotent on `client_msg_id`), acknowledges with `message_sent`
/// and fans `new_message` out to the receiver's connections and the sender's other connections.
///
/// Everything the database is asked before the fan-out happens in one write transaction: the frame's count,
/// the retry lookup, the rate limit's count, the receiver, reply, envelope and media checks, and the insert.
/// A check that fails after a count commits the counts alone (a refused send still counts).
async fn send_message(
    state: &AppState,
    user: &AuthUser,
    connection_id: &str,
    mut input: SendMessage,
) -> Result<(), Failed> {
    let listed_envelopes = input.envelopes.take();
    let now = now_ms();
    let conn = state.db.conn().await?;
    let cid = input.client_msg_id.as_deref();
    let (tx, expired) = match begin_send::<MessageRow>(state, &conn, connection_id, user.id, cid, now).await? {
        Begun::Go { tx, expired } => (tx, expired),
        Begun::Acknowledged(frame) => {
            realtime::push(state, vec![(connection_id.to_owned(), frame)]).await;
            return Ok(());
        }
    };
    let checked = match check_fields(&input, user.id) {
        Ok(checked) => checked,
        Err(refused) => return refuse(tx, refused).await,
    };
    // A refusal is `rate_limited`; a limiter that could not count is not (see `From<ApiError> for Failed`).
    state.limiter.hit_on(&tx, Scope::SendMessage, &user.id.to_string()).await?;
    let allowed = match allowed(state, &tx, user.id, &checked, input.media_url.as_deref(), listed_envelopes).await {
        Ok(allowed) => allowed,
        Err(refused) => return refuse(tx, refused).await,
    };
    if let Some(id) = expired {
        db::messages::clear_client_msg_id(&tx, id).await?;
    }
    let new = NewMessage {
        sender_id: user.id,
        receiver_id: checked.receiver_id,
        encrypted_content: checked.content,
        message_type: checked.message_type.as_str(),
        media_key: allowed.media.as_deref(),
        reply_to_message_id: checked.reply_to,
        client_msg_id: input.client_msg_id.as_deref(),
        sender_device_id: &user.device_id,
        created_at: now,
    };
    let msg = db::messages::insert(&tx, new).await?;
    for e in &allowed.envelopes {
        db::messages::insert_envelope(&tx, msg.id, &e.device_id, e.user_id, &e.ciphertext).await?;
    }
    let conns = commit_and_find(state, tx, &conn, &[user.id, checked.receiver_id]).await?;
    drop(conn);

    let mut targets = vec![(connection_id.to_owned(), message_sent(&msg))];
    let (conns, ended) = realtime::split_live(conns);
    let for_receiver = messages::view(state, &msg, checked.receiver_id, allowed.receipts, None).await?;
    let for_sender = messages::view(state, &msg, user.id, allowed.receipts, None).await?;
    for c in conns.into_iter().filter(|c| c.id != connection_id) {
        let mut view = if c.user_id == checked.receiver_id { for_receiver.clone() } else { for_sender.clone() };
        // Each device gets only the ciphertext addressed to it.
        view.envelope = allowed
            .envelopes
            .iter()
            .find(|e| e.user_id == c.user_id && e.device_id == c.device_id)
            .map(|e| e.ciphertext.clone());
        targets.push((c.id, ServerEvent::NewMessage(view).to_frame()));
    }
    realtime::push(state, targets).await;
    // Connections whose session ended got nothing; they close after the others were served.
    realtime::close(state, &ended).await;
    Ok(())
}

/// `group_message_sent` for a stored group message.
fn group_message_sent(msg: &db::mls_groups::MessageRow) -> String {
    let sent = GroupMessageSent {
        message_id: msg.id,
        client_msg_id: msg.client_msg_id.clone(),
        timestamp: format_ms(msg.created_at),
    };
    ServerEvent::GroupMessageSent(sent).to_frame()
}

/// The fields of a `send_group_message` checked before the database: the group id, the ciphertext's
/// presence, size and plaintext header.
fn check_group_fields(input: &SendGroupMessage) -> Result<(i64, &str, shared::mls::Header), Failed> {
    let group_id = loose_id(input.group_id.as_ref(), WsErrorCode::InvalidId)?;
    let ciphertext = input.ciphertext.as_deref().filter(|c| !c.is_empty());
    let (Some(group_id), Some(ciphertext)) = (group_id, ciphertext) else {
        return Err(Failed(WsErrorCode::MissingFields));
    };
    // Base64 of 64 KiB is at most this long; the decoded size is checked below as well.
    if ciphertext.len() > MAX_CONTENT_BYTES.div_ceil(3) * 4 {
        return Err(Failed(WsErrorCode::PayloadTooLarge));
    }
    let bytes = shared::keys::decode(ciphertext).ok_or(Failed(WsErrorCode::InvalidMlsMessage))?;
    if bytes.len() > MAX_CONTENT_BYTES {
        return Err(Failed(WsErrorCode::PayloadTooLarge));
    }
    let header = shared::mls::protocol_header(&bytes).map_err(|_| Failed(WsErrorCode::InvalidMlsMessage))?;
    if header.kind != shared::mls::Kind::Application {
        return Err(Failed(WsErrorCode::InvalidMlsMessage));
    }
    Ok((group_id, ciphertext, header))
}

/// `send_group_message` (API.md §15.4) — an MLS application message of a group the sending device is a member
/// of, at the group's epoch or the one before (a message sent just before a commit); stored (idempotent on
/// `client_msg_id`), acknowledged with `group_message_sent`, and fanned out as `new_group_message` to every
/// connection of every other member device. The send limit counts group sends with one-to-one ones.
async fn send_group_message(
    state: &AppState,
    user: &AuthUser,
    connection_id: &str,
    input: SendGroupMessage,
) -> Result<(), Failed> {
    let now = now_ms();
    let conn = state.db.conn().await?;
    let cid = input.client_msg_id.as_deref();
    let (tx, expired) = match begin_send::<GroupMessageRow>(state, &conn, connection_id, user.id, cid, now).await? {
        Begun::Go { tx, expired } => (tx, expired),
        Begun::Acknowledged(frame) => {
            realtime::push(state, vec![(connection_id.to_owned(), frame)]).await;
            return Ok(());
        }
    };
    let (group_id, ciphertext, header) = match check_group_fields(&input) {
        Ok(checked) => checked,
        Err(refused) => return refuse(tx, refused).await,
    };
    state.limiter.hit_on(&tx, Scope::SendMessage, &user.id.to_string()).await?;
    let group = match db::mls_groups::member(&tx, group_id, &user.device_id).await? {
        Some(_) => db::mls_groups::get_for(&tx, group_id, user.id).await?,
        None => None,
    };
    let Some(group) = group else { return refuse(tx, Failed(WsErrorCode::GroupNotFound)).await };
    if shared::keys::decode(&group.group_id).unwrap_or_default() != header.group_id {
        return refuse(tx, Failed(WsErrorCode::InvalidMlsMessage)).await;
    }
    let epoch = i64::try_from(header.epoch).unwrap_or(i64::MAX);
    if epoch > group.epoch || epoch < group.epoch - 1 {
        return refuse(tx, Failed(WsErrorCode::StaleEpoch)).await;
    }
    if let Some(id) = expired {
        db::mls_groups::clear_client_msg_id(&tx, id).await?;
    }
    let new = db::mls_groups::NewMessage {
        group_id,
        sender: (user.id, &user.device_id),
        epoch,
        ciphertext,
        client_msg_id: input.client_msg_id.as_deref(),
        created_at: now,
    };
    let msg = db::mls_groups::insert_message(&tx, &new).await?;
    let members = db::mls_groups::members(&tx, group_id).await?;
    let mut users: Vec<i64> = members.iter().map(|m| m.user_id).collect();
    users.sort_unstable();
    users.dedup();
    let conns = commit_and_find(state, tx, &conn, &users).await?;
    drop(conn);

    let mut targets = vec![(connection_id.to_owned(), group_message_sent(&msg))];
    let (conns, ended) = realtime::split_live(conns);
    let event = ServerEvent::NewGroupMessage(shared::mls::group_message(msg)).to_frame();
    for c in conns {
        let member = members.iter().any(|m| m.user_id == c.user_id && m.device_id == c.device_id);
        if member && c.device_id != user.device_id {
            targets.push((c.id, event.clone()));
        }
    }
    realtime::push(state, targets).await;
    realtime::close(state, &ended).await;
    Ok(())
}

/// Commits a send's transaction and finds the connections of `users` to push it to. On a database file they
/// are read inside the transaction, on the writer connection, whose page cache is warm: every commit drops
/// the cache of the process's other connections, and the look-up on one of them after the commit was 11 % of
/// the relay's CPU (`perf`, closed loop). On a libSQL server they are read after the commit, on `conn`:
/// inside, the process's one writer would be held for another round trip.
async fn commit_and_find(
    state: &AppState,
    tx: db::WriteTx<'_>,
    conn: &db::Conn,
    users: &[i64],
) -> Result<Vec<db::connections::Socket>, Failed> {
    if state.db.is_file() {
        let conns = db::connections::of_users(&tx, users).await?;
        tx.commit().await?;
        return Ok(conns);
    }
    tx.commit().await?;
    Ok(db::connections::of_users(conn, users).await?)
}

/// A stored message a send may be a retry of.
trait Stored: Sized {
    /// The caller's message with this `client_msg_id`, if one is stored.
    async fn find(conn: &db::Conn, sender: i64, client_msg_id: &str) -> Result<Option<Self>, libsql::Error>;
    /// Its id and storage time.
    fn id_and_time(&self) -> (i64, i64);
    /// Its acknowledgement.
    fn acknowledgement(&self) -> String;
}

impl Stored for MessageRow {
    async fn find(conn: &db::Conn, sender: i64, client_msg_id: &str) -> Result<Option<Self>, libsql::Error> {
        db::messages::by_client_msg_id(conn, sender, client_msg_id).await
    }
    fn id_and_time(&self) -> (i64, i64) {
        (self.id, self.created_at)
    }
    fn acknowledgement(&self) -> String {
        message_sent(self)
    }
}

impl Stored for GroupMessageRow {
    async fn find(conn: &db::Conn, sender: i64, client_msg_id: &str) -> Result<Option<Self>, libsql::Error> {
        db::mls_groups::message_by_client_msg_id(conn, sender, client_msg_id).await
    }
    fn id_and_time(&self) -> (i64, i64) {
        (self.id, self.created_at)
    }
    fn acknowledgement(&self) -> String {
        group_message_sent(self)
    }
}

/// How a send goes on after [`begin_send`].
enum Begun<'c> {
    /// With its checks, in its write transaction; `expired` is the stored message whose `client_msg_id`
    /// (stored before the window) this send takes over.
    Go { tx: db::WriteTx<'c>, expired: Option<i64> },
    /// It was a retry of a message stored within the window: acknowledge it again with this frame.
    Acknowledged(String),
}

/// The first steps of every send, in its write transaction: the frame's count, the `client_msg_id` check and
/// the retry lookup. Past the queue limit a send is refused at once (`service_unavailable`, retried by the
/// client) instead of waiting behind a queue that grows with the load. A retry of a stored message is
/// acknowledged again before any other check (rate limit, receiver gone): an error would tell the client it
/// was not stored.
async fn begin_send<'c, S: Stored>(
    state: &AppState,
    conn: &'c db::PooledConn<'_>,
    connection_id: &str,
    sender: i64,
    client_msg_id: Option<&str>,
    now: i64,
) -> Result<Begun<'c>, Failed> {
    let tx = conn.write_tx_queued(state.config.send_queue_limit).await?;
    // The frame counts first, whatever follows (a refusal writes nothing).
    state.limiter.hit_on(&tx, FRAMES, connection_id).await?;
    let Some(cid) = client_msg_id else { return Ok(Begun::Go { tx, expired: None }) };
    if !valid_client_msg_id(cid) {
        tx.commit().await?;
        return Err(Failed(WsErrorCode::InvalidClientMsgId));
    }
    let Some(stored) = S::find(&tx, sender, cid).await? else { return Ok(Begun::Go { tx, expired: None }) };
    let (id, created_at) = stored.id_and_time();
    if created_at > now - IDEMPOTENCY_WINDOW_MS {
        tx.commit().await?;
        return Ok(Begun::Acknowledged(stored.acknowledgement()));
    }
    Ok(Begun::Go { tx, expired: Some(id) })
}

/// Ends a send's transaction keeping the counts it made, and passes its refusal on.
async fn refuse(tx: db::WriteTx<'_>, refused: Failed) -> Result<(), Failed> {
    tx.commit().await?;
    Err(refused)
}

/// What the checks of a send found: its envelopes, its media object and whether read receipts are shared.
struct Allowed {
    envelopes: Vec<Envelope>,
    media: Option<String>,
    receipts: bool,
}

/// The checks of a send that ask the database, in the contract's order, inside its write transaction: the
/// receiver exists, the reply is visible in the conversation, the envelopes address the two users' devices,
/// the total size, the media object is a live upload of the sender.
async fn allowed(
    state: &AppState,
    tx: &db::Conn,
    sender: i64,
    checked: &Checked<'_>,
    media_url: Option<&str>,
    envelopes: Option<Vec<Envelope>>,
) -> Result<Allowed, Failed> {
    let receiver = checked.receiver_id;
    let receipts = db::users::receiver_of(tx, sender, receiver).await?.ok_or(Failed(WsErrorCode::ReceiverNotFound))?;
    if let Some(reply) = checked.reply_to
        && !db::messages::visible_in_conversation(tx, sender, receiver, reply).await?
    {
        return Err(Failed(WsErrorCode::ReplyNotFound));
    }
    let envelopes = match envelopes {
        None => Vec::new(),
        Some(list) => check_envelopes(tx, sender, receiver, list).await?,
    };
    if checked.content.len() + envelopes.iter().map(|e| e.ciphertext.len()).sum::<usize>() > MAX_TOTAL_BYTES {
        return Err(Failed(WsErrorCode::PayloadTooLarge));
    }
    let media = match media_url {
        None | Some("") => None,
        Some(reference) => Some(
            shared::files::owned_key_on(state, tx, sender, reference)
                .await?
                .ok_or(Failed(WsErrorCode::InvalidMedia))?,
        ),
    };
    Ok(Allowed { envelopes, media, receipts })
}

/// Checks `envelopes`: at most 50, each addressed to an existing device of the sender or the receiver
/// (once), with base64 ciphertext.
async fn check_envelopes(
    conn: &db::Conn,
    sender: i64,
    receiver: i64,
    envelopes: Vec<Envelope>,
) -> Result<Vec<Envelope>, Failed> {
    let invalid = Failed(WsErrorCode::InvalidEnvelope);
    if envelopes.len() > MAX_ENVELOPES {
        return Err(invalid);
    }
    let devices = db::devices::envelope_devices(conn, sender, receiver).await?;
    let mut out: Vec<Envelope> = Vec::with_capacity(envelopes.len());
    for e in envelopes {
        if e.ciphertext.is_empty()
            || !devices.iter().any(|d| d.user_id == e.user_id && d.id == e.device_id)
            || out.iter().any(|o| o.device_id == e.device_id)
            || shared::keys::decode(&e.ciphertext).is_none_or(|bytes| bytes.is_empty())
        {
            return Err(invalid);
        }
        out.push(e);
    }
    Ok(out)
}

/// `typing` — relayed to the receiver's connections when they share a conversation and the sender shows
/// online status; anything else, and more than one per second, is dropped silently.
async fn typing(state: &AppState, user: &AuthUser, input: Typing) -> Result<(), Failed> {
    let Some(receiver_id) = input.receiver_id.get() else { return Ok(()) };
    if receiver_id == user.id {
        return Ok(());
    }
    let allowed = {
        let conn = state.db.conn().await?;
        db::messages::typing_allowed(&conn, user.id, receiver_id).await?
    };
    if !allowed {
        return Ok(());
    }
    let pair = format!("{}:{receiver_id}", user.id);
    if state.limiter.hit(&state.db, Scope::Typing, &pair).await.is_err() {
        return Ok(());
    }
    let event = ServerEvent::Typing(TypingEvent { sender_id: user.id, is_typing: input.is_typing });
    realtime::push_to_users(state, &[receiver_id], None, &event.to_frame()).await;
    Ok(())
}

/// `mark_read` — same as `POST /chats/{peer_id}/mark-read`; no acknowledgement.
async fn mark_read(state: &AppState, user: &AuthUser, input: MarkRead) -> Result<(), Failed> {
    let peer = input.peer_id.get().ok_or(Failed(WsErrorCode::InvalidId))?;
    let up_to = loose_id(input.up_to_id.as_ref(), WsErrorCode::InvalidId)?;
    messages::mark_read(state, user.id, peer, up_to).await?;
    Ok(())
}

/// `ping` — answered with `pong` on the same connection.
async fn ping(state: &AppState, connection_id: &str) -> Result<(), Failed> {
    let event = ServerEvent::Pong(Pong { time: format_ms(now_ms()) });
    realtime::push(state, vec![(connection_id.to_owned(), event.to_frame())]).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use WsErrorCode as E;

    fn send(frame: &str) -> Result<ClientAction, Refused> {
        ClientAction::decode("send_message", frame.as_bytes())
    }

    fn send_error(frame: &str) -> WsErrorCode {
        match send(frame) {
            Err(Refused::Error(code)) => code,
            other => panic!("{frame}: expected an error, got {other:?}"),
        }
    }

    fn fields_of(frame: &str) -> SendMessage {
        match send(frame) {
            Ok(ClientAction::SendMessage(m)) => m,
            other => panic!("{frame}: expected send_message, got {other:?}"),
        }
    }

    #[test]
    fn every_action_decodes_from_its_route() {
        let actions = [
            ClientAction::SendMessage(SendMessage {
                receiver_id: Some(LooseId::Int(2)),
                encrypted_content: Some("c".into()),
                message_type: Some(MessageType::Image),
                media_url: Some("u/1".into()),
                reply_to_message_id: Some(LooseId::Text("3".into())),
                client_msg_id: Some("m-1".into()),
                envelopes: Some(vec![Envelope { user_id: 2, device_id: "d".into(), ciphertext: "AA==".into() }]),
            }),
            ClientAction::Typing(Typing { receiver_id: LooseId::Int(2), is_typing: true }),
            ClientAction::MarkRead(MarkRead { peer_id: LooseId::Int(2), up_to_id: Some(LooseId::Int(9)) }),
            ClientAction::Ping,
            ClientAction::SendGroupMessage(SendGroupMessage {
                group_id: Some(LooseId::Int(4)),
                ciphertext: Some("AAEAAg==".into()),
                client_msg_id: Some("g-1".into()),
            }),
        ];
        for action in actions {
            let frame = serde_json::to_vec(&action).unwrap();
            assert_eq!(ClientAction::decode(action.name(), &frame), Ok(action.clone()), "{}", action.name());
        }
    }

    #[test]
    fn send_group_message_fields_of_the_wrong_type_name_their_error() {
        let error = |frame: &str| match ClientAction::decode("send_group_message", frame.as_bytes()) {
            Err(Refused::Error(code)) => code,
            other => panic!("{frame}: {other:?}"),
        };
        assert_eq!(error(r#"{"group_id": true, "ciphertext": "AA=="}"#), WsErrorCode::InvalidId);
        assert_eq!(error(r#"{"group_id": 1, "ciphertext": 5}"#), WsErrorCode::MissingFields);
        assert_eq!(
            error(r#"{"group_id": 1, "ciphertext": "AA==", "client_msg_id": 5}"#),
            WsErrorCode::InvalidClientMsgId
        );
        let input =
            SendGroupMessage { group_id: Some(LooseId::Int(1)), ciphertext: Some("AA==".into()), client_msg_id: None };
        assert_eq!(
            check_group_fields(&input).unwrap_err(),
            Failed(WsErrorCode::InvalidMlsMessage),
            "not an MLS message"
        );
        let big = SendGroupMessage { ciphertext: Some("A".repeat(90_000)), ..input.clone() };
        assert_eq!(check_group_fields(&big).unwrap_err(), Failed(WsErrorCode::PayloadTooLarge));
        let absent = SendGroupMessage { ciphertext: Some(String::new()), ..input };
        assert_eq!(check_group_fields(&absent).unwrap_err(), Failed(WsErrorCode::MissingFields));
    }

    #[test]
    fn unparsable_frames_and_unknown_actions() {
        for route in ["send_message", "typing", "mark_read", "$default"] {
            assert_eq!(ClientAction::decode(route, b"{not json"), Err(Refused::Error(E::InvalidJson)), "{route}");
        }
        assert_eq!(ClientAction::decode("ping", b"{not json"), Ok(ClientAction::Ping), "ping reads nothing");
        assert_eq!(ClientAction::decode("$default", br#"{"action":"dance"}"#), Err(Refused::Error(E::UnknownAction)));
        assert_eq!(ClientAction::decode("$default", br#"{"no_action":true}"#), Err(Refused::Error(E::UnknownAction)));
        assert_eq!(ClientAction::decode("$default", b"[1]"), Err(Refused::Error(E::UnknownAction)));
    }

    #[test]
    fn send_message_fields_of_the_wrong_type_name_their_error() {
        assert_eq!(send_error(r#"{"receiver_id": 1.5, "encrypted_content": "x"}"#), E::InvalidId);
        assert_eq!(send_error(r#"{"receiver_id": true, "encrypted_content": "x"}"#), E::InvalidId);
        assert_eq!(send_error(r#"{"receiver_id": 18446744073709551615}"#), E::InvalidId);
        assert_eq!(send_error(r#"{"receiver_id": 2, "encrypted_content": 5}"#), E::MissingFields);
        assert_eq!(
            send_error(r#"{"receiver_id": 2, "encrypted_content": "x", "message_type": "video"}"#),
            E::InvalidMessageType
        );
        assert_eq!(send_error(r#"{"receiver_id": 2, "message_type": 1}"#), E::InvalidMessageType);
        assert_eq!(send_error(r#"{"receiver_id": 2, "client_msg_id": 5}"#), E::InvalidClientMsgId);
        assert_eq!(send_error(r#"{"receiver_id": 2, "reply_to_message_id": 1.5}"#), E::ReplyNotFound);
        assert_eq!(send_error(r#"{"receiver_id": 2, "media_url": 5}"#), E::InvalidMedia);
        assert_eq!(send_error(r#"{"receiver_id": 2, "envelopes": "x"}"#), E::InvalidEnvelope);
        assert_eq!(
            send_error(
                r#"{"receiver_id": 2, "envelopes": [{"user_id": "2", "device_id": "d", "ciphertext": "AA=="}]}"#
            ),
            E::InvalidEnvelope
        );
        assert_eq!(
            send_error(r#"{"receiver_id": 2, "envelopes": [{"user_id": 2, "device_id": "d"}]}"#),
            E::InvalidEnvelope
        );
    }

    #[test]
    fn send_message_accepts_absent_null_and_decimal_text() {
        let m =
            fields_of(r#"{"action": "send_message", "receiver_id": " 7", "message_type": null, "envelopes": null}"#);
        assert_eq!(m.receiver_id.and_then(|id| id.get()), Some(7));
        assert_eq!((m.message_type, m.envelopes, m.encrypted_content), (None, None, None));
        assert_eq!(fields_of(r#"{"receiver_id": "bob"}"#).receiver_id, Some(LooseId::Text("bob".into())));
    }

    #[test]
    fn checks_before_the_database_follow_the_contract() {
        let check = |frame: &str| check_fields(&fields_of(frame), 1).map(|c| (c.receiver_id, c.reply_to));
        assert_eq!(
            check(r#"{"receiver_id": 2, "encrypted_content": "x", "reply_to_message_id": "5"}"#),
            Ok((2, Some(5)))
        );
        assert_eq!(check(r#"{"receiver_id": "bob"}"#), Err(Failed(E::InvalidId)), "before the missing content");
        assert_eq!(check(r#"{"encrypted_content": "x"}"#), Err(Failed(E::MissingFields)));
        assert_eq!(check(r#"{"receiver_id": 2, "encrypted_content": ""}"#), Err(Failed(E::MissingFields)));
        assert_eq!(check(r#"{"receiver_id": 1, "encrypted_content": "x"}"#), Err(Failed(E::SelfMessage)));
        let big = format!(r#"{{"receiver_id": 1, "encrypted_content": "{}"}}"#, "x".repeat(MAX_CONTENT_BYTES + 1));
        assert_eq!(check(&big), Err(Failed(E::PayloadTooLarge)), "size before the receiver");
        let reply = r#"{"receiver_id": 2, "encrypted_content": "x", "reply_to_message_id": "x"}"#;
        assert_eq!(check(reply), Err(Failed(E::ReplyNotFound)));
        let default = fields_of(r#"{"receiver_id": 2, "encrypted_content": "x"}"#);
        assert_eq!(check_fields(&default, 1).unwrap().message_type, MessageType::Text);
    }

    #[test]
    fn client_msg_ids_are_short_safe_tokens() {
        assert!(valid_client_msg_id("5b0c1c1e-aaaa-4bbb-8ccc-000000000001"));
        assert!(valid_client_msg_id("a_B-9"));
        assert!(!valid_client_msg_id(""));
        assert!(!valid_client_msg_id("has space"));
        assert!(!valid_client_msg_id(&"a".repeat(65)));
    }

    #[test]
    fn bad_typing_is_dropped_and_bad_mark_read_is_an_invalid_id() {
        for frame in [r#"{"receiver_id": null, "is_typing": true}"#, r#"{"receiver_id": 2, "is_typing": "yes"}"#, "{}"]
        {
            assert_eq!(ClientAction::decode("typing", frame.as_bytes()), Err(Refused::Dropped), "{frame}");
        }
        for frame in ["{}", r#"{"peer_id": null}"#, r#"{"peer_id": 2, "up_to_id": 1.5}"#] {
            assert_eq!(
                ClientAction::decode("mark_read", frame.as_bytes()),
                Err(Refused::Error(E::InvalidId)),
                "{frame}"
            );
        }
        let Ok(ClientAction::MarkRead(m)) = ClientAction::decode("mark_read", br#"{"peer_id": "x", "up_to_id": "7"}"#)
        else {
            panic!()
        };
        assert_eq!((m.peer_id.get(), loose_id(m.up_to_id.as_ref(), E::InvalidId)), (None, Ok(Some(7))));
        assert_eq!(loose_id(Some(&LooseId::Text("x".into())), E::InvalidId), Err(Failed(E::InvalidId)));
    }

    #[test]
    fn errors_echo_the_frames_client_msg_id_when_it_is_text() {
        assert_eq!(echoed_client_msg_id(br#"{"client_msg_id": "has space"}"#).as_deref(), Some("has space"));
        assert_eq!(echoed_client_msg_id(br#"{"client_msg_id": 5}"#), None);
        assert_eq!(echoed_client_msg_id(br#"{"action": "dance"}"#), None);
        assert_eq!(echoed_client_msg_id(br#"["client_msg_id"]"#), None);
        assert_eq!(echoed_client_msg_id(b"{not json"), None);
        let event =
            ServerEvent::Error(ErrorEvent::new(E::RateLimited, echoed_client_msg_id(br#"{"client_msg_id":"m"}"#)));
        assert_eq!(
            event.to_frame(),
            r#"{"event":"error","data":{"message":"Rate limit exceeded","code":"rate_limited","client_msg_id":"m"}}"#
        );
    }

    use proptest::prelude::*;

    fn envelope() -> impl Strategy<Value = Envelope> {
        (any::<i64>(), "\\PC{0,40}", "[A-Za-z0-9+/=]{0,60}|\\PC{0,20}")
            .prop_map(|(user_id, device_id, ciphertext)| Envelope { user_id, device_id, ciphertext })
    }

    proptest! {
        #[test]
        fn arbitrary_frames_on_any_route_never_panic(
            route in proptest::sample::select(
                vec!["send_message", "send_group_message", "typing", "mark_read", "ping", "$default", "x"],
            ),
            frame in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let _ = ClientAction::decode(route, &frame);
            let _ = echoed_client_msg_id(&frame);
        }

        #[test]
        fn envelope_lists_decode_exactly_as_sent(
            envelopes in proptest::collection::vec(envelope(), 0..60),
            receiver in any::<i64>(),
            content in "\\PC{0,50}",
        ) {
            let frame = serde_json::json!({
                "action": "send_message", "receiver_id": receiver, "encrypted_content": content,
                "envelopes": envelopes,
            });
            match ClientAction::decode("send_message", frame.to_string().as_bytes()) {
                Ok(ClientAction::SendMessage(m)) => {
                    prop_assert_eq!(m.envelopes.unwrap_or_default(), envelopes);
                    prop_assert_eq!(m.encrypted_content.as_deref(), Some(content.as_str()));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn client_msg_ids_are_exactly_short_safe_tokens(id in "[A-Za-z0-9_-]{0,70}|\\PC{0,70}") {
            let oracle = (1..=64).contains(&id.len())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            prop_assert_eq!(valid_client_msg_id(&id), oracle);
        }
    }
}
