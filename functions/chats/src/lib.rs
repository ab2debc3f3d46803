//! The `chats` function: active chats, history, clearing, deletion, read receipts and media (API.md §5.1–5.6),
//! and MLS groups (§15.2, in [`groups`]).

use std::collections::HashMap;

use shared::api::Router;
use shared::auth::AuthUser;
use shared::bulk::Outcome;
use shared::db::bulk::Kind as BulkKind;
use shared::db::messages::Holding;
use shared::messages::{self, MessageRow};
use shared::privacy::public_views;
use shared::{ApiError, AppState, db, realtime};
use wire::ErrorCode;
use wire::chats::{
    ChatCleared, ClearChat, ClearChatRequest, DeleteMessage, DeleteMessageRequest, ListActiveChats,
    ListActiveChatsRequest, ListMedia, ListMediaRequest, ListMessages, ListMessagesRequest, MarkRead, MarkReadRequest,
    MarkedRead, MediaItem,
};
use wire::objects::{Message, MessageText, User};
use wire::ws::{self, ServerEvent};

/// Name of this function in `template.yaml`.
pub const FUNCTION: &str = "chats";

/// A history page stays under this many bytes of content.
const MAX_PAGE_BYTES: usize = 5 * 1024 * 1024;

/// Every route of this function.
pub fn router() -> Router {
    let router = Router::new(FUNCTION)
        .route(ListActiveChats, list_active_chats)
        .route(ListMessages, list_messages)
        .route(ClearChat, clear_chat)
        .route(DeleteMessage, delete_message)
        .route(MarkRead, mark_read)
        .route(ListMedia, list_media);
    groups::routes(router)
}

pub mod groups;

shared::http_function!(router);

/// `GET /chats/active`
/// - every peer with a message visible to the caller, newest `last_message_time` first (ties: higher peer id
///   first), privacy applied; read from `chat_summary`, so the cost does not grow with history
/// - paged: `limit` (default 50, max 200); cursor `before` = last row's `last_message_time` and
///   `before_peer_id` = its `id`; a page stops early to stay under 5 MiB, never empty
async fn list_active_chats(
    state: &AppState,
    user: AuthUser,
    input: ListActiveChatsRequest,
) -> Result<Vec<User>, ApiError> {
    let limit = page_limit(input.limit, 50, 200)?;
    let cursor = match &input.before {
        None => (i64::MAX, i64::MAX),
        Some(text) => {
            let time = shared::time::parse_ms(text)
                .ok_or_else(|| ApiError::field("before", "must be an RFC 3339 timestamp (a last_message_time)"))?;
            (time, input.before_peer_id.unwrap_or(i64::MIN))
        }
    };
    let conn = state.db.conn().await?;
    let latest = db::messages::active_page(&conn, user.id, cursor, limit).await?;
    let peers: Vec<i64> = latest.iter().map(|m| m.peer_of(user.id)).collect();
    let users = db::users::by_ids(&conn, &peers).await?;
    let ordered: Vec<_> = peers.iter().filter_map(|id| users.iter().find(|u| u.id == *id).cloned()).collect();
    let views = public_views(state, &conn, user.id, &ordered).await?;
    drop(conn);
    let mut out = Vec::with_capacity(views.len());
    let mut total = 0;
    for mut peer in views {
        if let Some(m) = latest.iter().find(|m| m.peer_of(user.id) == peer.id) {
            peer.last_message = Some(m.encrypted_content.clone());
            peer.last_message_time = Some(shared::time::format_ms(m.created_at));
            peer.last_message_sender_id = Some(m.sender_id);
            peer.last_message_type = Some(messages::message_type(&m.message_type));
        }
        total += serde_json::to_vec(&peer).map_or(0, |b| b.len()) + 1;
        if total > MAX_PAGE_BYTES && !out.is_empty() {
            break;
        }
        out.push(peer);
    }
    Ok(out)
}

/// `GET /chats/{target_user_id}/messages`
/// - ascending ids; no cursor = newest `limit`; `before_id` = newest below it; `after_id` = oldest above it
/// - at most 200 per page and under 5 MiB; an unknown peer is an empty list
async fn list_messages(state: &AppState, user: AuthUser, input: ListMessagesRequest) -> Result<Vec<Message>, ApiError> {
    let peer = input.target_user_id;
    let limit = page_limit(input.limit, 50, 200)?;
    let before = input.before_id.unwrap_or(i64::MAX);
    let conn = state.db.conn().await?;
    // Rows come in the order the cap keeps them: oldest first after a cursor, newest first otherwise.
    let mut page = db::messages::page(&conn, user.id, peer, Holding::All, input.after_id, before, limit).await?;
    let receipts = db::users::both_show_read_receipts(&conn, user.id, peer).await?;
    let ids: Vec<i64> = page.iter().map(|m| m.id).collect();
    let mut envelopes = db::messages::envelopes_for(&conn, &ids, &user.device_id).await?;
    drop(conn);
    cap_size(&mut page, &envelopes);
    if input.after_id.is_none() {
        page.reverse();
    }
    let mut out = Vec::with_capacity(page.len());
    for msg in &page {
        out.push(messages::view(state, msg, user.id, receipts, envelopes.remove(&msg.id)).await?);
    }
    Ok(out)
}

/// `DELETE /chats/{target_user_id}/messages`
/// - default: hides the conversation for the caller; `chat_cleared` to the caller's connections
/// - `for_everyone=true`: deletes for both, removes the media objects; both users get `chat_cleared`
/// - in steps of at most 1 000 messages ([`shared::bulk`]): a history too long for the request's budget is
///   finished by the clean-up, and `chat_cleared` comes when it is done
async fn clear_chat(state: &AppState, user: AuthUser, input: ClearChatRequest) -> Result<ChatCleared, ApiError> {
    let peer = input.target_user_id;
    let for_everyone = input.for_everyone.unwrap_or(false);
    let deadline = std::time::Instant::now() + shared::bulk::REQUEST_BUDGET;
    let job = {
        let conn = state.db.conn().await?;
        let tx = conn.write_tx().await?;
        let (kind, up_to_id) = if for_everyone {
            // Every message of the conversation, also those the caller already hid for itself.
            (BulkKind::WipeChat, db::messages::last_live_id(&tx, user.id, peer).await?)
        } else {
            (BulkKind::HideChat, db::messages::last_visible_id(&tx, user.id, peer).await?)
        };
        if up_to_id == 0 {
            None
        } else {
            let id = db::bulk::upsert_chat(&tx, kind, user.id, peer, up_to_id, shared::time::now_ms()).await?;
            tx.commit().await?;
            Some(id)
        }
    };
    let count = match job {
        None => 0,
        Some(id) => match shared::bulk::run(state, id, deadline).await? {
            Outcome::Finished(n) | Outcome::Pending(n) => n,
            Outcome::Gone => 0,
        },
    };
    Ok(ChatCleared { deleted_count: count, message: "Chat cleared successfully".into() })
}

/// `DELETE /messages/{message_id}`
/// - the sender deletes for everyone by default (media removed, both sides told); the recipient (or the
///   sender with `for_everyone=false`) hides it for themselves; a recipient cannot delete for everyone
async fn delete_message(
    state: &AppState,
    user: AuthUser,
    input: DeleteMessageRequest,
) -> Result<MessageText, ApiError> {
    let id = input.message_id;
    if id <= 0 {
        return Err(ErrorCode::InvalidMessageId.into());
    }
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let msg = db::messages::find_visible(&tx, user.id, id).await?.ok_or(ApiError::code(ErrorCode::MessageNotFound))?;
    let is_sender = msg.sender_id == user.id;
    let for_everyone = input.for_everyone.unwrap_or(is_sender);
    if for_everyone && !is_sender {
        return Err(ErrorCode::NotMessageSender.into());
    }
    if for_everyone {
        let keys = messages::wipe_for_everyone(&tx, id).await?;
        tx.commit().await?;
        drop(conn);
        messages::deleted_for_everyone(state, &msg, &keys).await;
    } else {
        if is_sender {
            db::messages::hide_for_sender(&tx, id).await?;
        } else {
            db::messages::hide_for_receiver(&tx, id).await?;
        }
        tx.commit().await?;
        drop(conn);
        let peer = msg.peer_of(user.id);
        let mine = ServerEvent::MessageDeleted(ws::MessageDeleted { message_id: id, peer_id: peer, for_everyone });
        realtime::push_to_users(state, &[user.id], None, &mine.to_frame()).await;
    }
    Ok(MessageText { message: "Message deleted successfully".into() })
}

/// `POST /chats/{target_user_id}/mark-read` — marks the peer's messages read; `messages_read` per §4.3.
async fn mark_read(state: &AppState, user: AuthUser, input: MarkReadRequest) -> Result<MarkedRead, ApiError> {
    let ids = messages::mark_read(state, user.id, input.target_user_id, input.up_to_id).await?;
    Ok(MarkedRead { marked_count: i64::try_from(ids.len()).unwrap_or(0), message: "Messages marked as read".into() })
}

/// `GET /chats/{target_user_id}/media` — visible image messages, newest first.
async fn list_media(state: &AppState, user: AuthUser, input: ListMediaRequest) -> Result<Vec<MediaItem>, ApiError> {
    let limit = page_limit(input.limit, 100, 200)?;
    let before = input.before_id.unwrap_or(i64::MAX);
    let conn = state.db.conn().await?;
    let rows = db::messages::page(&conn, user.id, input.target_user_id, Holding::Images, None, before, limit).await?;
    drop(conn);
    let mut out = Vec::with_capacity(rows.len());
    for msg in rows {
        let media_url = match &msg.media_key {
            Some(k) => shared::files::url(state, k).await?,
            None => None,
        };
        out.push(MediaItem {
            id: msg.id,
            media_url,
            timestamp: shared::time::format_ms(msg.created_at),
            sender_id: msg.sender_id,
        });
    }
    Ok(out)
}

/// A page size: `default` when absent, capped at `max`; below 1 is a 422 naming `limit`.
fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(l) if l < 1 => Err(ApiError::field("limit", "must be at least 1")),
        Some(l) => Ok(l.min(max)),
    }
}

/// Truncates a page (in its current order) so content, envelopes and per-message overhead (fields, a
/// presigned URL) stay under [`MAX_PAGE_BYTES`], below Lambda's 6 MB response limit; never empty.
fn cap_size(page: &mut Vec<MessageRow>, envelopes: &HashMap<i64, String>) {
    let mut total = 0;
    let keep = page
        .iter()
        .take_while(|m| {
            total += m.encrypted_content.len() + envelopes.get(&m.id).map_or(0, String::len) + 1024;
            total <= MAX_PAGE_BYTES
        })
        .count()
        .max(1);
    page.truncate(keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_chats_endpoints() {
        shared::api::assert_serves_its_endpoints(&super::router());
    }

    fn row(id: i64, content_len: usize) -> MessageRow {
        MessageRow {
            id,
            sender_id: 1,
            receiver_id: 2,
            encrypted_content: "x".repeat(content_len),
            message_type: "text".into(),
            media_key: None,
            reply_to_message_id: None,
            client_msg_id: None,
            sender_device_id: None,
            is_read: false,
            created_at: 0,
        }
    }

    #[test]
    fn pages_are_capped_by_size_but_never_empty() {
        let mut page: Vec<MessageRow> = (1..=10).map(|id| row(id, 1024 * 1024)).collect();
        cap_size(&mut page, &HashMap::new());
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1, 2, 3, 4], "5 MiB hold four 1 MiB rows");
        let mut page = vec![row(1, 1024), row(2, 1024)];
        cap_size(&mut page, &HashMap::from([(1, "e".repeat(MAX_PAGE_BYTES))]));
        assert_eq!(page.len(), 1, "an oversized first message still comes back alone");
    }

    #[test]
    fn page_limits_default_cap_and_refuse_below_one() {
        assert_eq!(page_limit(None, 50, 200).unwrap(), 50);
        assert_eq!(page_limit(Some(1000), 50, 200).unwrap(), 200);
        assert_eq!(page_limit(Some(7), 50, 200).unwrap(), 7);
        match page_limit(Some(0), 50, 200) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "limit"),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn page_limits_are_within_one_and_the_cap(limit in proptest::option::of(any::<i64>()), default in 1i64..100, extra in 0i64..500) {
            let max = default + extra;
            match page_limit(limit, default, max) {
                Ok(n) => {
                    prop_assert!((1..=max).contains(&n));
                    prop_assert_eq!(n, limit.map_or(default, |l| l.min(max)));
                }
                Err(ApiError::Validation(errors)) => {
                    prop_assert!(limit.is_some_and(|l| l < 1));
                    prop_assert_eq!(&errors[0].field, "limit");
                }
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
