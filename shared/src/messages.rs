//! Messages as stored and as each viewer sees them (API.md §3.2).

use wire::objects::{Message, MessageType};
use wire::ws::{MessageDeleted, MessagesRead, ServerEvent};

use crate::db;
use crate::error::ApiError;
use crate::realtime;
use crate::state::AppState;

pub use crate::db::messages::MessageRow;

/// The type of a stored message: only `text`, `image` and `file` are ever stored (their
/// [`MessageType::as_str`]); anything else reads as `text`.
pub fn message_type(stored: &str) -> MessageType {
    MessageType::parse(stored).unwrap_or_default()
}

/// The view of `msg` for `viewer`: read state per §4.3, a fresh presigned media URL, the viewer device's
/// envelope.
pub async fn view(
    state: &AppState,
    msg: &MessageRow,
    viewer: i64,
    receipts: bool,
    envelope: Option<String>,
) -> Result<Message, ApiError> {
    let media_url = match &msg.media_key {
        Some(key) => crate::files::url(state, key).await?,
        None => None,
    };
    Ok(Message {
        id: msg.id,
        sender_id: msg.sender_id,
        receiver_id: msg.receiver_id,
        encrypted_content: msg.encrypted_content.clone(),
        message_type: message_type(&msg.message_type),
        media_url,
        reply_to_message_id: msg.reply_to_message_id,
        timestamp: crate::time::format_ms(msg.created_at),
        is_read: if viewer == msg.receiver_id || receipts { Some(msg.is_read) } else { None },
        client_msg_id: msg.client_msg_id.clone(),
        sender_device_id: msg.sender_device_id.clone(),
        envelope,
    })
}

/// Most messages one `mark_read` marks; the answer's count tells the client to call again.
pub const MAX_MARKED_PER_CALL: usize = 10_000;

/// Marks unread messages from `peer` to `reader` (up to `up_to_id`) as read, the oldest first, in steps of at
/// most [`crate::bulk::BATCH`] (each its own statement, so the writer is never held long) and at most
/// [`MAX_MARKED_PER_CALL`] per call. If both show read receipts, each step's ids go to the peer's
/// connections as one `messages_read` (a step's event stays far below API Gateway's 128 KB frame limit).
/// Returns the marked ids.
pub async fn mark_read(state: &AppState, reader: i64, peer: i64, up_to_id: Option<i64>) -> Result<Vec<i64>, ApiError> {
    let batch = usize::try_from(crate::bulk::BATCH).unwrap_or(1000);
    let mut marked = Vec::new();
    let mut receipts = None;
    while marked.len() < MAX_MARKED_PER_CALL {
        let take = i64::try_from(batch.min(MAX_MARKED_PER_CALL - marked.len())).unwrap_or(1);
        let conn = state.db.conn().await?;
        let ids = db::messages::mark_read(&conn, reader, peer, up_to_id, take).await?;
        if ids.is_empty() {
            break;
        }
        let full = ids.len() as i64 == take;
        let show = match receipts {
            Some(show) => show,
            None => *receipts.insert(db::users::both_show_read_receipts(&conn, reader, peer).await?),
        };
        drop(conn);
        if show {
            let event = ServerEvent::MessagesRead(MessagesRead { message_ids: ids.clone(), reader_id: reader });
            realtime::push_to_users(state, &[peer], None, &event.to_frame()).await;
        }
        marked.extend(ids);
        if !full {
            break;
        }
    }
    Ok(marked)
}

/// Deletes message `id` for everyone inside the caller's write transaction (content wiped, media detached,
/// envelopes removed); returns the media keys for [`deleted_for_everyone`], called once the transaction has
/// committed. `DELETE /messages/{id}` and the operator panel delete this way.
pub async fn wipe_for_everyone(tx: &db::Conn, id: i64) -> Result<Vec<String>, ApiError> {
    Ok(db::messages::delete_for_everyone(tx, id).await?.media_keys)
}

/// The rest of a committed delete for everyone: media no longer referenced leave the bucket, and both
/// sides get `message_deleted` (each with the other as `peer_id`).
pub async fn deleted_for_everyone(state: &AppState, msg: &MessageRow, media_keys: &[String]) {
    crate::files::delete_if_orphaned(state, media_keys).await;
    for (user, peer) in [(msg.sender_id, msg.receiver_id), (msg.receiver_id, msg.sender_id)] {
        let event =
            ServerEvent::MessageDeleted(MessageDeleted { message_id: msg.id, peer_id: peer, for_everyone: true });
        realtime::push_to_users(state, &[user], None, &event.to_frame()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_message_types_map_to_the_wire_enum() {
        assert_eq!(message_type("image"), MessageType::Image);
        assert_eq!(message_type("file"), MessageType::File);
        assert_eq!(message_type("text"), MessageType::Text);
        assert_eq!(message_type("sticker"), MessageType::Text, "never stored; reads as text");
    }
}
