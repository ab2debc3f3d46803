//! Messages as stored and as each viewer sees them (API.md §3.2).

use libsql::{Connection, Row};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// Columns of [`MessageRow`], in order.
pub const MESSAGE_COLUMNS: &str = "id, sender_id, receiver_id, encrypted_content, message_type, media_key, \
    reply_to_message_id, client_msg_id, sender_device_id, is_read, created_at";

/// `WHERE` fragment: the message is visible to the user bound as `?1`.
pub const VISIBLE_TO_1: &str = "deleted_for_everyone = 0 AND NOT (sender_id = ?1 AND hidden_for_sender = 1) \
    AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1)";

/// `WHERE` fragment: the conversation between the users bound as `?1` and `?2` (uses the pair index).
pub const PAIR_1_2: &str = "min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2)";

/// A stored message.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub sender_id: i64,
    pub receiver_id: i64,
    pub encrypted_content: String,
    pub message_type: String,
    pub media_key: Option<String>,
    pub reply_to_message_id: Option<i64>,
    pub client_msg_id: Option<String>,
    pub sender_device_id: Option<String>,
    pub is_read: bool,
    pub created_at: i64,
}

impl MessageRow {
    /// Maps a row selected with [`MESSAGE_COLUMNS`].
    pub fn from_row(row: &Row) -> Result<Self, libsql::Error> {
        Ok(Self {
            id: row.get(0)?,
            sender_id: row.get(1)?,
            receiver_id: row.get(2)?,
            encrypted_content: row.get(3)?,
            message_type: row.get(4)?,
            media_key: row.get(5)?,
            reply_to_message_id: row.get(6)?,
            client_msg_id: row.get(7)?,
            sender_device_id: row.get(8)?,
            is_read: row.get(9)?,
            created_at: row.get(10)?,
        })
    }

    /// The other user of the conversation, seen from `user_id`.
    pub fn peer_of(&self, user_id: i64) -> i64 {
        if self.sender_id == user_id { self.receiver_id } else { self.sender_id }
    }
}

/// Collects every row of a `SELECT MESSAGE_COLUMNS ...` query.
pub async fn query_messages(
    conn: &Connection,
    sql: &str,
    params: impl libsql::params::IntoParams,
) -> Result<Vec<MessageRow>, libsql::Error> {
    let mut rows = conn.query(sql, params).await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(MessageRow::from_row(&row)?);
    }
    Ok(out)
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
pub async fn receipts_shared(conn: &Connection, a: i64, b: i64) -> Result<bool, libsql::Error> {
    let mut rows =
        conn.query("SELECT COUNT(*) FROM user WHERE id IN (?1, ?2) AND show_read_receipts = 1", (a, b)).await?;
    Ok(rows.next().await?.map(|r| r.get::<i64>(0)).transpose()?.unwrap_or(0) == 2)
}

/// The envelopes addressed to `device_id` among `message_ids`.
pub async fn envelopes_for(
    conn: &Connection,
    message_ids: &[i64],
    device_id: &str,
) -> Result<std::collections::HashMap<i64, String>, libsql::Error> {
    let ids = serde_json::to_string(message_ids).unwrap_or_else(|_| "[]".into());
    let mut rows = conn
        .query(
            "SELECT message_id, ciphertext FROM message_envelope WHERE device_id = ?1 \
             AND message_id IN (SELECT value FROM json_each(?2))",
            (device_id, ids),
        )
        .await?;
    let mut out = std::collections::HashMap::new();
    while let Some(r) = rows.next().await? {
        out.insert(r.get::<i64>(0)?, r.get::<String>(1)?);
    }
    Ok(out)
}

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
    let mut rows = conn
        .query(
            "UPDATE message SET is_read = 1 WHERE receiver_id = ?1 AND sender_id = ?2 AND is_read = 0 \
             AND id <= ?3 AND deleted_for_everyone = 0 RETURNING id",
            (reader, peer, up_to_id.unwrap_or(i64::MAX)),
        )
        .await?;
    let mut ids = Vec::new();
    while let Some(r) = rows.next().await? {
        ids.push(r.get::<i64>(0)?);
    }
    drop(rows);
    ids.sort_unstable();
    if !ids.is_empty() && receipts_shared(&conn, reader, peer).await? {
        drop(conn);
        let payload =
            crate::realtime::frame("messages_read", serde_json::json!({"message_ids": ids, "reader_id": reader}));
        crate::realtime::push_to_users(state, &[peer], None, &payload).await;
    }
    Ok(ids)
}
