//! Messages as stored and as each viewer sees them (API.md §3.2).

use libsql::Connection;
use serde::Serialize;

use crate::db;
use crate::error::ApiError;
use crate::realtime::fanout;
use crate::realtime::transport::frame;
use crate::state::AppState;

/// Columns of [`MessageRow`], for the function crates' remaining inline SQL.
pub use crate::db::messages::{MESSAGE_COLUMNS, MessageRow};

/// `WHERE` fragment for the function crates' remaining inline SQL: the message is visible to the user
/// bound as `?1`. The statements of [`crate::db::messages`] spell it out.
pub const VISIBLE_TO_1: &str = "deleted_for_everyone = 0 AND NOT (sender_id = ?1 AND hidden_for_sender = 1) \
    AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1)";

/// `WHERE` fragment for the function crates' remaining inline SQL: the conversation between the users bound
/// as `?1` and `?2` (uses the pair index).
pub const PAIR_1_2: &str = "min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2)";

/// Collects every row of a `SELECT MESSAGE_COLUMNS ...` query, mapped by column name. For the function
/// crates' remaining inline SQL; shared itself calls the named functions of [`crate::db::messages`].
pub async fn query_messages(
    conn: &Connection,
    sql: &str,
    params: impl libsql::params::IntoParams,
) -> Result<Vec<MessageRow>, libsql::Error> {
    crate::db::all(conn.query(sql, params).await?).await
}

/// The message object of API.md §3.2 for one viewer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MessageView {
    pub id: i64,
    pub sender_id: i64,
    pub receiver_id: i64,
    pub encrypted_content: String,
    pub message_type: String,
    pub media_url: Option<String>,
    pub reply_to_message_id: Option<i64>,
    pub timestamp: String,
    pub is_read: Option<bool>,
    pub client_msg_id: Option<String>,
    pub sender_device_id: Option<String>,
    pub envelope: Option<String>,
}

/// Whether both users show read receipts (reciprocal, §4.3).
pub use crate::db::users::both_show_read_receipts as receipts_shared;

/// The envelopes addressed to `device_id` among `message_ids`.
pub use crate::db::messages::envelopes_for;

/// The view of `msg` for `viewer`: read state per §4.3, a fresh presigned media URL, the viewer device's
/// envelope.
pub async fn view(
    state: &AppState,
    msg: &MessageRow,
    viewer: i64,
    receipts: bool,
    envelope: Option<String>,
) -> Result<MessageView, ApiError> {
    let media_url = match &msg.media_key {
        Some(key) => crate::files::url(state, key).await?,
        None => None,
    };
    Ok(MessageView {
        id: msg.id,
        sender_id: msg.sender_id,
        receiver_id: msg.receiver_id,
        encrypted_content: msg.encrypted_content.clone(),
        message_type: msg.message_type.clone(),
        media_url,
        reply_to_message_id: msg.reply_to_message_id,
        timestamp: crate::time::format_ms(msg.created_at),
        is_read: if viewer == msg.receiver_id || receipts { Some(msg.is_read) } else { None },
        client_msg_id: msg.client_msg_id.clone(),
        sender_device_id: msg.sender_device_id.clone(),
        envelope,
    })
}

/// Marks unread messages from `peer` to `reader` (up to `up_to_id`) as read and, if both show read
/// receipts, sends `messages_read` to the peer's connections. Returns the marked ids.
pub async fn mark_read(state: &AppState, reader: i64, peer: i64, up_to_id: Option<i64>) -> Result<Vec<i64>, ApiError> {
    let conn = state.db.conn().await?;
    let ids = db::messages::mark_read(&conn, reader, peer, up_to_id).await?;
    if !ids.is_empty() && db::users::both_show_read_receipts(&conn, reader, peer).await? {
        drop(conn);
        let payload = frame("messages_read", serde_json::json!({"message_ids": ids, "reader_id": reader}));
        fanout::push_to_users(state, &[peer], None, &payload).await;
    }
    Ok(ids)
}
