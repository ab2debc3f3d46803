//! The `chats` function: active chats, history, clearing, deletion, read receipts and media (API.md §5.1–5.6).

use lambda_http::{Body, Request, Response};
use serde_json::json;
use shared::auth::{AuthUser, authenticate_request};
use shared::http::{Matched, Params, match_route, ok};
use shared::messages::{self, MESSAGE_COLUMNS, MessageRow, PAIR_1_2, VISIBLE_TO_1, query_messages};
use shared::privacy::public_views;
use shared::realtime::{self, frame};
use shared::users::{USER_COLUMNS, query_users};
use shared::{ApiError, AppState};

/// Name of this function in `template.yaml` and in the routing table.
pub const FUNCTION: &str = "chats";

/// A history page stays under this many bytes of content.
const MAX_PAGE_BYTES: usize = 5 * 1024 * 1024;

/// Serves one request; every error becomes its contract response.
pub async fn handle(state: &AppState, req: Request) -> Response<Body> {
    dispatch(state, req).await.unwrap_or_else(ApiError::into_response)
}

async fn dispatch(state: &AppState, req: Request) -> Result<Response<Body>, ApiError> {
    let m = match_route(FUNCTION, req.method(), req.uri().path())?;
    let user = authenticate_request(state, &req).await?;
    let params = Params::query_and_body(&req)?;
    match m.route.op {
        "list_active_chats" => list_active_chats(state, &user).await,
        "list_messages" => list_messages(state, &user, &m, &params).await,
        "clear_chat" => clear_chat(state, &user, &m, &params).await,
        "delete_message" => delete_message(state, &user, &m, &params).await,
        "mark_read" => mark_read(state, &user, &m, &params).await,
        "list_media" => list_media(state, &user, &m, &params).await,
        _ => Err(ApiError::RouteNotFound),
    }
}

/// `GET /chats/active`
/// - every peer with a message visible to the caller, newest `last_message_time` first, privacy applied
async fn list_active_chats(state: &AppState, user: &AuthUser) -> Result<Response<Body>, ApiError> {
    let conn = state.db.conn().await?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM message WHERE id IN (\
           SELECT MAX(id) FROM message WHERE {VISIBLE_TO_1} AND (sender_id = ?1 OR receiver_id = ?1) \
           GROUP BY CASE WHEN sender_id = ?1 THEN receiver_id ELSE sender_id END) ORDER BY id DESC"
    );
    let latest = query_messages(&conn, &sql, [user.id]).await?;
    let peers: Vec<i64> = latest.iter().map(|m| m.peer_of(user.id)).collect();
    let sql = format!("SELECT {USER_COLUMNS} FROM user WHERE id IN (SELECT value FROM json_each(?1))");
    let users = query_users(&conn, &sql, [serde_json::to_string(&peers).unwrap_or_default()]).await?;
    let ordered: Vec<_> = peers.iter().filter_map(|id| users.iter().find(|u| u.id == *id).cloned()).collect();
    let mut views = public_views(state, &conn, user.id, &ordered).await?;
    for view in &mut views {
        if let Some(m) = latest.iter().find(|m| m.peer_of(user.id) == view.id) {
            view.last_message = Some(m.encrypted_content.clone());
            view.last_message_time = Some(shared::time::format_ms(m.created_at));
            view.last_message_sender_id = Some(m.sender_id);
            view.last_message_type = Some(m.message_type.clone());
        }
    }
    Ok(ok(&views))
}

/// `GET /chats/{target_user_id}/messages`
/// - ascending ids; no cursor = newest `limit`; `before_id` = newest below it; `after_id` = oldest above it
/// - at most 200 per page and under 5 MiB; an unknown peer is an empty list
async fn list_messages(
    state: &AppState,
    user: &AuthUser,
    m: &Matched,
    params: &Params,
) -> Result<Response<Body>, ApiError> {
    let peer = m.int("target_user_id")?;
    let limit = params.limit(50, 200)?;
    let before = params.int("before_id")?.unwrap_or(i64::MAX);
    let after = params.int("after_id")?;
    let conn = state.db.conn().await?;
    // Rows come in the order the cap keeps them: oldest first after a cursor, newest first otherwise.
    let mut page = match after {
        Some(after) => {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM message WHERE {PAIR_1_2} AND {VISIBLE_TO_1} AND id > ?3 AND id < ?4 \
                 ORDER BY id ASC LIMIT ?5"
            );
            query_messages(&conn, &sql, (user.id, peer, after, before, limit)).await?
        }
        None => {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM message WHERE {PAIR_1_2} AND {VISIBLE_TO_1} AND id < ?3 \
                 ORDER BY id DESC LIMIT ?4"
            );
            query_messages(&conn, &sql, (user.id, peer, before, limit)).await?
        }
    };
    let receipts = messages::receipts_shared(&conn, user.id, peer).await?;
    let ids: Vec<i64> = page.iter().map(|m| m.id).collect();
    let mut envelopes = messages::envelopes_for(&conn, &ids, &user.device_id).await?;
    drop(conn);
    cap_size(&mut page, &envelopes);
    if after.is_none() {
        page.reverse();
    }
    let mut out = Vec::with_capacity(page.len());
    for msg in &page {
        out.push(messages::view(state, msg, user.id, receipts, envelopes.remove(&msg.id)).await?);
    }
    Ok(ok(&out))
}

/// Truncates a page (in its current order) so content, envelopes and per-message overhead (fields, a
/// presigned URL) stay under [`MAX_PAGE_BYTES`], below Lambda's 6 MB response limit; never empty.
fn cap_size(page: &mut Vec<MessageRow>, envelopes: &std::collections::HashMap<i64, String>) {
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

/// Removes the envelopes of messages that are deleted for everyone.
async fn delete_envelopes(tx: &libsql::Connection, ids: &[i64]) -> Result<(), ApiError> {
    let list = serde_json::to_string(ids).unwrap_or_default();
    tx.execute("DELETE FROM message_envelope WHERE message_id IN (SELECT value FROM json_each(?1))", [list]).await?;
    Ok(())
}

/// Marks messages deleted for everyone, wiping their content; returns (ids, media keys).
async fn delete_for_everyone(
    tx: &libsql::Connection,
    where_sql: &str,
    params: impl libsql::params::IntoParams,
) -> Result<(Vec<i64>, Vec<String>), ApiError> {
    let select = format!("SELECT id, media_key FROM message WHERE {where_sql} AND deleted_for_everyone = 0");
    let mut rows = tx.query(&select, params).await?;
    let (mut ids, mut keys) = (Vec::new(), Vec::new());
    while let Some(r) = rows.next().await? {
        ids.push(r.get::<i64>(0)?);
        if let Some(k) = r.get::<Option<String>>(1)? {
            keys.push(k);
        }
    }
    drop(rows);
    let list = serde_json::to_string(&ids).unwrap_or_default();
    tx.execute(
        "UPDATE message SET deleted_for_everyone = 1, encrypted_content = '', media_key = NULL \
         WHERE id IN (SELECT value FROM json_each(?1))",
        [list],
    )
    .await?;
    delete_envelopes(tx, &ids).await?;
    Ok((ids, keys))
}

/// `DELETE /chats/{target_user_id}/messages`
/// - default: hides the conversation for the caller; `chat_cleared` to the caller's connections
/// - `for_everyone=true`: deletes for both, removes the media objects; both users get `chat_cleared`
async fn clear_chat(
    state: &AppState,
    user: &AuthUser,
    m: &Matched,
    params: &Params,
) -> Result<Response<Body>, ApiError> {
    let peer = m.int("target_user_id")?;
    let for_everyone = params.bool("for_everyone")?.unwrap_or(false);
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    // For everyone: every message of the conversation, also those the caller already hid for itself.
    let visible = if for_everyone { "deleted_for_everyone = 0" } else { VISIBLE_TO_1 };
    let sql = format!("SELECT COALESCE(MAX(id), 0) FROM message WHERE {PAIR_1_2} AND {visible}");
    let mut rows = tx.query(&sql, (user.id, peer)).await?;
    let up_to_id: i64 = rows.next().await?.map(|r| r.get(0)).transpose()?.unwrap_or(0);
    drop(rows);
    let (count, keys) = if for_everyone {
        let (ids, keys) =
            delete_for_everyone(&tx, &format!("{PAIR_1_2} AND id <= ?3"), (user.id, peer, up_to_id)).await?;
        (ids.len(), keys)
    } else {
        let sent = tx
            .execute(
                "UPDATE message SET hidden_for_sender = 1 WHERE sender_id = ?1 AND receiver_id = ?2 \
                 AND hidden_for_sender = 0 AND deleted_for_everyone = 0 AND id <= ?3",
                (user.id, peer, up_to_id),
            )
            .await?;
        let received = tx
            .execute(
                "UPDATE message SET hidden_for_receiver = 1 WHERE receiver_id = ?1 AND sender_id = ?2 \
                 AND hidden_for_receiver = 0 AND deleted_for_everyone = 0 AND id <= ?3",
                (user.id, peer, up_to_id),
            )
            .await?;
        (usize::try_from(sent + received).unwrap_or(0), Vec::new())
    };
    tx.commit().await?;
    drop(conn);
    shared::files::delete_if_orphaned(state, &keys).await;
    if count > 0 {
        let mine = frame("chat_cleared", json!({"peer_id": peer, "for_everyone": for_everyone, "up_to_id": up_to_id}));
        realtime::push_to_users(state, &[user.id], None, &mine).await;
        if for_everyone {
            let theirs = frame("chat_cleared", json!({"peer_id": user.id, "for_everyone": true, "up_to_id": up_to_id}));
            realtime::push_to_users(state, &[peer], None, &theirs).await;
        }
    }
    Ok(ok(&json!({"deleted_count": count, "message": "Chat cleared successfully"})))
}

/// `DELETE /messages/{message_id}`
/// - the sender deletes for everyone by default (media removed, both sides told); the recipient (or the
///   sender with `for_everyone=false`) hides it for themselves; a recipient cannot delete for everyone
async fn delete_message(
    state: &AppState,
    user: &AuthUser,
    m: &Matched,
    params: &Params,
) -> Result<Response<Body>, ApiError> {
    let id = m.int("message_id")?;
    if id <= 0 {
        return Err(ApiError::client(400, "invalid_message_id", "Invalid message ID"));
    }
    let not_found = || ApiError::client(404, "message_not_found", "Message not found");
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM message WHERE id = ?2 AND {VISIBLE_TO_1} AND (sender_id = ?1 OR receiver_id = ?1)"
    );
    let msg = query_messages(&tx, &sql, (user.id, id)).await?.pop().ok_or_else(not_found)?;
    let is_sender = msg.sender_id == user.id;
    let for_everyone = params.bool("for_everyone")?.unwrap_or(is_sender);
    if for_everyone && !is_sender {
        return Err(ApiError::client(403, "not_message_sender", "You can only delete your own messages"));
    }
    let keys = if for_everyone {
        delete_for_everyone(&tx, "id = ?1", [id]).await?.1
    } else {
        let column = if is_sender { "hidden_for_sender" } else { "hidden_for_receiver" };
        tx.execute(&format!("UPDATE message SET {column} = 1 WHERE id = ?1"), [id]).await?;
        Vec::new()
    };
    tx.commit().await?;
    drop(conn);
    shared::files::delete_if_orphaned(state, &keys).await;
    let peer = msg.peer_of(user.id);
    let mine = frame("message_deleted", json!({"message_id": id, "peer_id": peer, "for_everyone": for_everyone}));
    realtime::push_to_users(state, &[user.id], None, &mine).await;
    if for_everyone {
        let theirs = frame("message_deleted", json!({"message_id": id, "peer_id": user.id, "for_everyone": true}));
        realtime::push_to_users(state, &[peer], None, &theirs).await;
    }
    Ok(ok(&json!({"message": "Message deleted successfully"})))
}

/// `POST /chats/{target_user_id}/mark-read` — marks the peer's messages read; `messages_read` per §4.3.
async fn mark_read(
    state: &AppState,
    user: &AuthUser,
    m: &Matched,
    params: &Params,
) -> Result<Response<Body>, ApiError> {
    let peer = m.int("target_user_id")?;
    let up_to = params.int("up_to_id")?;
    let ids = messages::mark_read(state, user.id, peer, up_to).await?;
    Ok(ok(&json!({"marked_count": ids.len(), "message": "Messages marked as read"})))
}

/// `GET /chats/{target_user_id}/media` — visible image messages, newest first.
async fn list_media(
    state: &AppState,
    user: &AuthUser,
    m: &Matched,
    params: &Params,
) -> Result<Response<Body>, ApiError> {
    let peer = m.int("target_user_id")?;
    let limit = params.limit(100, 200)?;
    let before = params.int("before_id")?.unwrap_or(i64::MAX);
    let conn = state.db.conn().await?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM message WHERE {PAIR_1_2} AND {VISIBLE_TO_1} AND message_type = 'image' \
         AND id < ?3 ORDER BY id DESC LIMIT ?4"
    );
    let rows = query_messages(&conn, &sql, (user.id, peer, before, limit)).await?;
    drop(conn);
    let mut out = Vec::with_capacity(rows.len());
    for msg in rows {
        let media_url = match &msg.media_key {
            Some(k) => shared::files::url(state, k).await?,
            None => None,
        };
        out.push(json!({"id": msg.id, "media_url": media_url, "timestamp": shared::time::format_ms(msg.created_at), "sender_id": msg.sender_id}));
    }
    Ok(ok(&out))
}
