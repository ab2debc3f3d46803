//! The `message` and `message_envelope` tables.
//!
//! A conversation is read through `min(sender_id, receiver_id), max(sender_id, receiver_id)` so both
//! directions use the `message_pair` index; "visible to `?1`" means not deleted for everyone and not hidden
//! by `?1`. Those two conditions and the columns of a [`MessageRow`] are the constants below, spliced into the
//! statements with `format!` (the plan test fills them in the same way).

use super::Conn;
use crate::db::{all, column, exists, first, id_list, int_bool, value};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// The columns of a [`MessageRow`].
const COLUMNS: &str = "id, sender_id, receiver_id, encrypted_content, message_type, media_key, reply_to_message_id, \
                       client_msg_id, sender_device_id, is_read, created_at";
/// The conversation of `?1` and `?2`, in either direction, through the `message_pair` index.
const CONVERSATION: &str = "min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2)";
/// Visible to `?1`: not deleted for everyone, and not hidden by `?1`.
const VISIBLE: &str = "deleted_for_everyone = 0 AND NOT (sender_id = ?1 AND hidden_for_sender = 1) \
                       AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1)";

/// A stored message.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageRow {
    /// Id (strictly increasing).
    pub id: i64,
    /// Sender.
    pub sender_id: i64,
    /// Receiver.
    pub receiver_id: i64,
    /// Ciphertext (empty once deleted for everyone).
    pub encrypted_content: String,
    /// `text`, `image` or `file`.
    pub message_type: String,
    /// S3 key of the attachment.
    pub media_key: Option<String>,
    /// The message replied to.
    pub reply_to_message_id: Option<i64>,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// The sending device.
    pub sender_device_id: Option<String>,
    /// Read by the receiver.
    #[serde(deserialize_with = "int_bool")]
    pub is_read: bool,
    /// Epoch ms.
    pub created_at: i64,
}

impl MessageRow {
    /// The other user of the conversation, seen from `user_id`.
    pub fn peer_of(&self, user_id: i64) -> i64 {
        if self.sender_id == user_id { self.receiver_id } else { self.sender_id }
    }
}

/// A message to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// Sender.
    pub sender_id: i64,
    /// Receiver.
    pub receiver_id: i64,
    /// Ciphertext.
    pub encrypted_content: &'a str,
    /// `text`, `image` or `file`.
    pub message_type: &'a str,
    /// S3 key of the attachment.
    pub media_key: Option<&'a str>,
    /// The message replied to.
    pub reply_to_message_id: Option<i64>,
    /// The sender's idempotency key.
    pub client_msg_id: Option<&'a str>,
    /// The sending device.
    pub sender_device_id: &'a str,
    /// Epoch ms.
    pub created_at: i64,
}

/// A message about to be deleted for everyone and its attachment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Deletable {
    /// Message id.
    pub id: i64,
    /// S3 key of its attachment.
    pub media_key: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    message_id: i64,
    ciphertext: String,
}

/// Peers sharing a conversation with `user_id` that is still visible to the peer.
pub async fn peers_of(conn: &Conn, user_id: i64) -> Result<Vec<i64>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT receiver_id FROM message WHERE sender_id = ?1 AND deleted_for_everyone = 0 AND hidden_for_receiver = 0 \
             UNION SELECT sender_id FROM message WHERE receiver_id = ?1 AND deleted_for_everyone = 0 AND hidden_for_sender = 0",
            [user_id],
        )
        .await?;
    column(rows).await
}

/// Which of `senders` have sent `receiver` a message not deleted for everyone.
pub async fn senders_among(conn: &Conn, receiver: i64, senders: &[i64]) -> Result<HashSet<i64>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT DISTINCT sender_id FROM message WHERE receiver_id = ?1 \
             AND sender_id IN (SELECT value FROM json_each(?2)) AND deleted_for_everyone = 0",
            (receiver, id_list(senders)),
        )
        .await?;
    Ok(column::<i64>(rows).await?.into_iter().collect())
}

/// The envelopes addressed to `device_id` among `message_ids`, by message id.
pub async fn envelopes_for(
    conn: &Conn,
    message_ids: &[i64],
    device_id: &str,
) -> Result<HashMap<i64, String>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT message_id, ciphertext FROM message_envelope WHERE device_id = ?1 \
             AND message_id IN (SELECT value FROM json_each(?2))",
            (device_id, id_list(message_ids)),
        )
        .await?;
    Ok(all::<Envelope>(rows).await?.into_iter().map(|e| (e.message_id, e.ciphertext)).collect())
}

/// Marks read at most `batch` unread messages from `peer` to `reader` up to `up_to_id` (`None`: all), the
/// oldest first; returns their ids in order. Each call is one bounded step of `mark_read`.
pub async fn mark_read(
    conn: &Conn,
    reader: i64,
    peer: i64,
    up_to_id: Option<i64>,
    batch: i64,
) -> Result<Vec<i64>, libsql::Error> {
    let rows = conn
        .query(
            "UPDATE message SET is_read = 1 WHERE id IN (SELECT id FROM message WHERE receiver_id = ?1 \
             AND sender_id = ?2 AND is_read = 0 AND id <= ?3 AND deleted_for_everyone = 0 ORDER BY id LIMIT ?4) \
             RETURNING id",
            (reader, peer, up_to_id.unwrap_or(i64::MAX), batch),
        )
        .await?;
    let mut ids: Vec<i64> = column(rows).await?;
    ids.sort_unstable();
    Ok(ids)
}

/// `GET /chats/active`: from the `chat_summary` rows of `user_id` (kept by triggers, migration 0004), the
/// newest message visible to it of each conversation, ordered by (`created_at`, peer id) descending, strictly
/// below the cursor `before` = (`created_at`, peer id), at most `limit`.
pub async fn active_page(
    conn: &Conn,
    user_id: i64,
    before: (i64, i64),
    limit: i64,
) -> Result<Vec<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT m.id, m.sender_id, m.receiver_id, m.encrypted_content, m.message_type, m.media_key, \
             m.reply_to_message_id, m.client_msg_id, m.sender_device_id, m.is_read, m.created_at \
             FROM chat_summary s JOIN message m ON m.id = s.last_message_id \
             WHERE s.user_id = ?1 AND (s.last_time, s.peer_id) < (?2, ?3) \
             ORDER BY s.last_time DESC, s.peer_id DESC LIMIT ?4",
            (user_id, before.0, before.1, limit),
        )
        .await?;
    all(rows).await
}

/// What a page of a conversation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// Every message (`GET /chats/{peer}/messages`).
    All,
    /// Image messages only (`GET /chats/{peer}/media`).
    Images,
}

/// A page of the conversation of `user_id` and `peer` visible to `user_id`, of the messages `holding` says,
/// with ids strictly between `after_id` and `before_id`, at most `limit`: oldest first from `after_id` when
/// it is given, else newest first from `before_id` (the rows the limit keeps, in the order it keeps them).
pub async fn page(
    conn: &Conn,
    user_id: i64,
    peer: i64,
    holding: Holding,
    after_id: Option<i64>,
    before_id: i64,
    limit: i64,
) -> Result<Vec<MessageRow>, libsql::Error> {
    let order = if after_id.is_some() { "id ASC" } else { "id DESC" };
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM message WHERE {CONVERSATION} AND {VISIBLE} \
                 AND (?6 = 0 OR message_type = 'image') AND id > ?3 AND id < ?4 ORDER BY {order} LIMIT ?5"
            ),
            (user_id, peer, after_id.unwrap_or(i64::MIN), before_id, limit, i64::from(holding == Holding::Images)),
        )
        .await?;
    all(rows).await
}

/// Message `id` unless it was deleted for everyone, whoever may see it (the operator panel).
pub async fn find_live(conn: &Conn, id: i64) -> Result<Option<MessageRow>, libsql::Error> {
    let rows =
        conn.query(&format!("SELECT {COLUMNS} FROM message WHERE id = ?1 AND deleted_for_everyone = 0"), [id]).await?;
    first(rows).await
}

/// Message `id` if `user_id` sent or received it and it is visible to them.
pub async fn find_visible(conn: &Conn, user_id: i64, id: i64) -> Result<Option<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM message WHERE id = ?2 AND {VISIBLE} AND (sender_id = ?1 OR receiver_id = ?1)"
            ),
            (user_id, id),
        )
        .await?;
    first(rows).await
}

/// Whether message `id` belongs to the conversation of `user_id` and `peer` and is visible to `user_id`
/// (a reply target).
pub async fn visible_in_conversation(conn: &Conn, user_id: i64, peer: i64, id: i64) -> Result<bool, libsql::Error> {
    let rows = conn
        .query(&format!("SELECT 1 FROM message WHERE id = ?3 AND {CONVERSATION} AND {VISIBLE}"), (user_id, peer, id))
        .await?;
    exists(rows).await
}

/// Whether `viewer` still sees any message of the conversation with `other`.
pub async fn conversation_visible_to(conn: &Conn, viewer: i64, other: i64) -> Result<bool, libsql::Error> {
    let rows = conn
        .query(
            "SELECT 1 FROM message WHERE deleted_for_everyone = 0 AND \
             ((sender_id = ?1 AND receiver_id = ?2 AND hidden_for_sender = 0) OR \
              (sender_id = ?2 AND receiver_id = ?1 AND hidden_for_receiver = 0)) LIMIT 1",
            (viewer, other),
        )
        .await?;
    exists(rows).await
}

/// The message `sender` stored under `client_msg_id` (`message_client_msg`).
pub async fn by_client_msg_id(
    conn: &Conn,
    sender: i64,
    client_msg_id: &str,
) -> Result<Option<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM message WHERE sender_id = ?1 AND client_msg_id = ?2"),
            (sender, client_msg_id),
        )
        .await?;
    first(rows).await
}

/// Frees an expired `client_msg_id` for reuse.
pub async fn clear_client_msg_id(conn: &Conn, id: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE message SET client_msg_id = NULL WHERE id = ?1", [id]).await?;
    Ok(())
}

/// Stores a message and returns it as stored.
pub async fn insert(conn: &Conn, new: NewMessage<'_>) -> Result<MessageRow, libsql::Error> {
    let rows = conn
        .query(
            &format!(
                "INSERT INTO message (sender_id, receiver_id, encrypted_content, message_type, media_key, \
                 reply_to_message_id, client_msg_id, sender_device_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING {COLUMNS}"
            ),
            (
                new.sender_id,
                new.receiver_id,
                new.encrypted_content,
                new.message_type,
                new.media_key,
                new.reply_to_message_id,
                new.client_msg_id,
                new.sender_device_id,
                new.created_at,
            ),
        )
        .await?;
    first(rows).await?.ok_or(libsql::Error::QueryReturnedNoRows)
}

/// Stores the envelope of a message for one device.
pub async fn insert_envelope(
    conn: &Conn,
    message_id: i64,
    device_id: &str,
    user_id: i64,
    ciphertext: &str,
) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO message_envelope (message_id, device_id, user_id, ciphertext) VALUES (?1, ?2, ?3, ?4)",
        (message_id, device_id, user_id, ciphertext),
    )
    .await?;
    Ok(())
}

/// Whether `sender` may send `typing` to `receiver`: the sender shows online status and they share a
/// conversation not deleted for everyone.
pub async fn typing_allowed(conn: &Conn, sender: i64, receiver: i64) -> Result<bool, libsql::Error> {
    let rows = conn
        .query(
            &format!(
                "SELECT u.show_online_status AND EXISTS (SELECT 1 FROM message \
                 WHERE {CONVERSATION} AND deleted_for_everyone = 0) FROM user u WHERE u.id = ?1"
            ),
            (sender, receiver),
        )
        .await?;
    Ok(value::<i64>(rows).await?.is_some_and(|v| v != 0))
}

/// The newest id of the conversation of `user_id` and `peer` visible to `user_id` (0 if none).
pub async fn last_visible_id(conn: &Conn, user_id: i64, peer: i64) -> Result<i64, libsql::Error> {
    let rows = conn
        .query(&format!("SELECT COALESCE(MAX(id), 0) FROM message WHERE {CONVERSATION} AND {VISIBLE}"), (user_id, peer))
        .await?;
    Ok(value(rows).await?.unwrap_or(0))
}

/// The newest id of the conversation not deleted for everyone, also if `user_id` hid it (0 if none).
pub async fn last_live_id(conn: &Conn, user_id: i64, peer: i64) -> Result<i64, libsql::Error> {
    let rows = conn
        .query(
            &format!("SELECT COALESCE(MAX(id), 0) FROM message WHERE {CONVERSATION} AND deleted_for_everyone = 0"),
            (user_id, peer),
        )
        .await?;
    Ok(value(rows).await?.unwrap_or(0))
}

/// Everyone `user_id` exchanged a message with, whatever is left of it (account deletion).
pub async fn correspondents(conn: &Conn, user_id: i64) -> Result<Vec<i64>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT DISTINCT receiver_id FROM message WHERE sender_id = ?1 \
             UNION SELECT DISTINCT sender_id FROM message WHERE receiver_id = ?1",
            [user_id],
        )
        .await?;
    column(rows).await
}

/// Where the next bounded step of work on the conversation of `a` and `b` ends: the id of its `batch`-th
/// message after `after` (up to `up_to_id`), or `None` when no more than `batch` are left, so the step ends
/// at `up_to_id` and is the last.
pub async fn window_end(
    conn: &Conn,
    a: i64,
    b: i64,
    after: i64,
    up_to_id: i64,
    batch: i64,
) -> Result<Option<i64>, libsql::Error> {
    let rows = conn
        .query(
            &format!(
                "SELECT id FROM message WHERE {CONVERSATION} AND id > ?3 AND id <= ?4 ORDER BY id LIMIT 1 OFFSET ?5"
            ),
            (a, b, after, up_to_id, batch - 1),
        )
        .await?;
    value(rows).await
}

/// Hides, for `user_id`, the messages of the conversation with `peer` with ids in (`after`, `end`]; returns
/// how many. One bounded step of clearing a chat.
pub async fn hide_window(conn: &Conn, user_id: i64, peer: i64, after: i64, end: i64) -> Result<u64, libsql::Error> {
    let sent = conn
        .execute(
            "UPDATE message SET hidden_for_sender = 1 WHERE sender_id = ?1 AND receiver_id = ?2 \
             AND id > ?3 AND id <= ?4 AND hidden_for_sender = 0 AND deleted_for_everyone = 0",
            (user_id, peer, after, end),
        )
        .await?;
    let received = conn
        .execute(
            "UPDATE message SET hidden_for_receiver = 1 WHERE receiver_id = ?1 AND sender_id = ?2 \
             AND id > ?3 AND id <= ?4 AND hidden_for_receiver = 0 AND deleted_for_everyone = 0",
            (user_id, peer, after, end),
        )
        .await?;
    Ok(sent + received)
}

/// Deletes for everyone the messages of the conversation of `a` and `b` with ids in (`after`, `end`] (also
/// those one side hid). One bounded step of clearing a chat for everyone.
pub async fn wipe_window(conn: &Conn, a: i64, b: i64, after: i64, end: i64) -> Result<Wiped, libsql::Error> {
    let rows = conn
        .query(
            &format!(
                "SELECT id, media_key FROM message WHERE {CONVERSATION} AND id > ?3 AND id <= ?4 \
                 AND deleted_for_everyone = 0"
            ),
            (a, b, after, end),
        )
        .await?;
    wipe(conn, all(rows).await?).await
}

/// Removes, from the conversation of deleted account `user_id` with `peer`, the messages with ids in
/// (`after`, `end`] that nobody can see any more (with their envelopes), and detaches the media the account
/// sent; returns how many rows changed. One bounded step of account deletion.
pub async fn purge_window(conn: &Conn, user_id: i64, peer: i64, after: i64, end: i64) -> Result<u64, libsql::Error> {
    let mut gone: Vec<i64> = column(
        conn.query(
            "DELETE FROM message WHERE sender_id = ?1 AND receiver_id = ?2 AND id > ?3 AND id <= ?4 \
             AND (hidden_for_receiver = 1 OR deleted_for_everyone = 1) RETURNING id",
            (user_id, peer, after, end),
        )
        .await?,
    )
    .await?;
    gone.extend(
        column::<i64>(
            conn.query(
                "DELETE FROM message WHERE receiver_id = ?1 AND sender_id = ?2 AND id > ?3 AND id <= ?4 \
                 AND (hidden_for_sender = 1 OR deleted_for_everyone = 1) RETURNING id",
                (user_id, peer, after, end),
            )
            .await?,
        )
        .await?,
    );
    let detached = conn
        .execute(
            "UPDATE message SET media_key = NULL WHERE sender_id = ?1 AND receiver_id = ?2 AND id > ?3 AND id <= ?4 \
             AND media_key IS NOT NULL",
            (user_id, peer, after, end),
        )
        .await?;
    if !gone.is_empty() {
        conn.execute(
            "DELETE FROM message_envelope WHERE message_id IN (SELECT value FROM json_each(?1))",
            [id_list(&gone)],
        )
        .await?;
    }
    Ok(gone.len() as u64 + detached)
}

/// Deletes at most `batch` envelopes addressed to removed device `device_id`; returns how many.
pub async fn purge_envelopes_of_device(conn: &Conn, device_id: &str, batch: i64) -> Result<u64, libsql::Error> {
    conn.execute(
        "DELETE FROM message_envelope WHERE rowid IN \
         (SELECT rowid FROM message_envelope WHERE device_id = ?1 LIMIT ?2)",
        (device_id, batch),
    )
    .await
}

/// Hides one message for its sender.
pub async fn hide_for_sender(conn: &Conn, id: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE message SET hidden_for_sender = 1 WHERE id = ?1", [id]).await?;
    Ok(())
}

/// Hides one message for its receiver.
pub async fn hide_for_receiver(conn: &Conn, id: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE message SET hidden_for_receiver = 1 WHERE id = ?1", [id]).await?;
    Ok(())
}

/// Message `id` if it is not yet deleted for everyone.
pub async fn deletable(conn: &Conn, id: i64) -> Result<Option<Deletable>, libsql::Error> {
    first(conn.query("SELECT id, media_key FROM message WHERE id = ?1 AND deleted_for_everyone = 0", [id]).await?).await
}

/// Account deletion: the account's chat list goes first, inside the deletion transaction, so the triggers of
/// the purge that follows ([`purge_window`]) recompute no summary nobody will read.
pub async fn delete_summaries_of_user(conn: &Conn, user_id: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM chat_summary WHERE user_id = ?1", [user_id]).await?;
    Ok(())
}

/// What deleting for everyone removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wiped {
    /// The messages deleted for everyone.
    pub ids: Vec<i64>,
    /// Their media keys (the objects may now be orphaned).
    pub media_keys: Vec<String>,
}

/// Marks the `found` messages deleted for everyone: content wiped, media detached, envelopes removed.
async fn wipe(conn: &Conn, found: Vec<Deletable>) -> Result<Wiped, libsql::Error> {
    let mut wiped = Wiped::default();
    for live in found {
        wiped.ids.push(live.id);
        wiped.media_keys.extend(live.media_key);
    }
    let list = id_list(&wiped.ids);
    conn.execute(
        "UPDATE message SET deleted_for_everyone = 1, encrypted_content = '', media_key = NULL \
         WHERE id IN (SELECT value FROM json_each(?1))",
        [list.as_str()],
    )
    .await?;
    conn.execute("DELETE FROM message_envelope WHERE message_id IN (SELECT value FROM json_each(?1))", [list]).await?;
    Ok(wiped)
}

/// Deletes message `id` for everyone (nothing if it already is). Run it inside the caller's write
/// transaction.
pub async fn delete_for_everyone(conn: &Conn, id: i64) -> Result<Wiped, libsql::Error> {
    let found = deletable(conn, id).await?;
    wipe(conn, found.into_iter().collect()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, migrate};

    /// A whole clear in one step (the service runs it in bounded steps through `crate::bulk`).
    async fn hide_conversation(conn: &Conn, user_id: i64, peer: i64, up_to_id: i64) -> Result<u64, libsql::Error> {
        hide_window(conn, user_id, peer, 0, up_to_id).await
    }

    async fn delete_chat_for_everyone(conn: &Conn, a: i64, b: i64, up_to_id: i64) -> Result<Wiped, libsql::Error> {
        wipe_window(conn, a, b, 0, up_to_id).await
    }

    /// What account deletion does to messages, in one step.
    async fn delete_of_user(conn: &Conn, user_id: i64) -> Result<(), libsql::Error> {
        delete_summaries_of_user(conn, user_id).await?;
        for peer in correspondents(conn, user_id).await? {
            purge_window(conn, user_id, peer, 0, i64::MAX).await?;
        }
        Ok(())
    }

    /// What `chat_summary` must hold: the newest message visible to `user_id` of each conversation, grouped
    /// over the whole history (the query `GET /chats/active` ran before the summary existed).
    async fn latest_per_peer(conn: &Conn, user_id: i64) -> Result<Vec<MessageRow>, libsql::Error> {
        let rows = conn
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM message WHERE id IN (\
                       SELECT MAX(id) FROM message WHERE {VISIBLE} AND (sender_id = ?1 OR receiver_id = ?1) \
                       GROUP BY CASE WHEN sender_id = ?1 THEN receiver_id ELSE sender_id END) ORDER BY id DESC"
                ),
                [user_id],
            )
            .await?;
        all(rows).await
    }

    #[tokio::test]
    async fn message_rows_map_by_column_name_and_pages_respect_visibility() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&format!("file:{}", dir.path().join("m.db").display()), None).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        let conn = db.conn().await.unwrap();
        let new = |content| NewMessage {
            sender_id: 1,
            receiver_id: 2,
            encrypted_content: content,
            message_type: "text",
            media_key: None,
            reply_to_message_id: None,
            client_msg_id: None,
            sender_device_id: "d1",
            created_at: 5,
        };
        let a = insert(&conn, new("a")).await.unwrap();
        let b = insert(&conn, NewMessage { client_msg_id: Some("c1"), ..new("b") }).await.unwrap();
        assert!(b.id > a.id && !a.is_read && a.sender_device_id.as_deref() == Some("d1"));
        assert_eq!(by_client_msg_id(&conn, 1, "c1").await.unwrap().unwrap().id, b.id);
        let page: Vec<i64> =
            page(&conn, 2, 1, Holding::All, None, i64::MAX, 10).await.unwrap().iter().map(|m| m.id).collect();
        assert_eq!(page, vec![b.id, a.id]);
        assert_eq!(
            mark_read(&conn, 2, 1, Some(b.id), 1).await.unwrap(),
            vec![a.id],
            "the oldest first, a batch at most"
        );
        hide_for_receiver(&conn, b.id).await.unwrap();
        assert_eq!(last_visible_id(&conn, 2, 1).await.unwrap(), a.id);
        assert_eq!(last_live_id(&conn, 2, 1).await.unwrap(), b.id);
        assert_eq!(peers_of(&conn, 1).await.unwrap(), vec![2]);
        let latest = latest_per_peer(&conn, 2).await.unwrap();
        assert_eq!((latest.len(), latest[0].id, latest[0].is_read), (1, a.id, true));
        delete_for_everyone(&conn, a.id).await.unwrap();
        assert!(find_visible(&conn, 1, a.id).await.unwrap().is_none());
        assert!(find_visible(&conn, 1, b.id).await.unwrap().is_some(), "hidden only for the receiver");
    }

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&format!("file:{}", dir.path().join("t.db").display()), None).await.unwrap();
        migrate(&db).await.unwrap();
        let conn = db.conn().await.unwrap();
        for id in [1, 2, 3] {
            conn.execute("INSERT INTO user (id, first_name, created_at) VALUES (?1, 'U', 0)", [id]).await.unwrap();
            conn.execute(
                "INSERT INTO device (id, user_id, created_at, last_used_at) VALUES (?1, ?2, 0, 0)",
                (format!("d{id}"), id),
            )
            .await
            .unwrap();
        }
        drop(conn);
        (dir, db)
    }

    /// A text message from `from` to `to` at time 1000.
    fn message(from: i64, to: i64) -> NewMessage<'static> {
        NewMessage {
            sender_id: from,
            receiver_id: to,
            encrypted_content: "c",
            message_type: "text",
            media_key: None,
            reply_to_message_id: None,
            client_msg_id: None,
            sender_device_id: "d",
            created_at: 1000,
        }
    }

    async fn send(conn: &Conn, from: i64, to: i64, message_type: &str, cid: Option<&str>) -> MessageRow {
        insert(conn, NewMessage { message_type, client_msg_id: cid, ..message(from, to) }).await.unwrap()
    }

    fn ids(rows: &[MessageRow]) -> Vec<i64> {
        rows.iter().map(|m| m.id).collect()
    }

    #[tokio::test]
    async fn pages_follow_the_conversation_and_visibility() {
        let (_dir, db) = db().await;
        let conn = db.conn().await.unwrap();
        let m1 = send(&conn, 1, 2, "text", Some("a")).await;
        assert_eq!((m1.sender_id, m1.receiver_id, m1.client_msg_id.as_deref(), m1.is_read), (1, 2, Some("a"), false));
        let m2 = send(&conn, 2, 1, "image", None).await.id;
        let m3 = send(&conn, 1, 2, "text", None).await.id;
        let other = send(&conn, 1, 3, "text", None).await.id;
        assert_eq!(ids(&page(&conn, 1, 2, Holding::All, None, i64::MAX, 2).await.unwrap()), vec![m3, m2]);
        assert_eq!(ids(&page(&conn, 2, 1, Holding::All, Some(m1.id), i64::MAX, 10).await.unwrap()), vec![m2, m3]);
        assert_eq!(ids(&page(&conn, 2, 1, Holding::All, Some(0), m3, 10).await.unwrap()), vec![m1.id, m2]);
        assert_eq!(ids(&page(&conn, 1, 2, Holding::Images, None, i64::MAX, 10).await.unwrap()), vec![m2]);
        assert_eq!(ids(&latest_per_peer(&conn, 1).await.unwrap()), vec![other, m3]);
        assert!(visible_in_conversation(&conn, 1, 2, m2).await.unwrap());
        assert!(!visible_in_conversation(&conn, 3, 2, m2).await.unwrap(), "another conversation");
        assert_eq!(last_visible_id(&conn, 1, 2).await.unwrap(), m3);

        hide_for_sender(&conn, m3).await.unwrap();
        assert!(find_visible(&conn, 1, m3).await.unwrap().is_none(), "hidden for the sender");
        assert_eq!(find_visible(&conn, 2, m3).await.unwrap().map(|m| m.id), Some(m3), "not for the receiver");
        assert!(find_visible(&conn, 3, m3).await.unwrap().is_none(), "not a message of user 3");
        assert_eq!(last_visible_id(&conn, 1, 2).await.unwrap(), m2);
        assert_eq!(last_live_id(&conn, 1, 2).await.unwrap(), m3, "what the caller hid still counts");
        assert_eq!(hide_conversation(&conn, 2, 1, m2).await.unwrap(), 2);
        assert_eq!(ids(&page(&conn, 2, 1, Holding::All, None, i64::MAX, 10).await.unwrap()), vec![m3]);
        assert_eq!(last_visible_id(&conn, 3, 2).await.unwrap(), 0);
        let mut peers: Vec<i64> =
            crate::db::users::by_ids(&conn, &[2, 3, 99]).await.unwrap().iter().map(|u| u.id).collect();
        peers.sort_unstable();
        assert_eq!(peers, vec![2, 3]);
    }

    #[tokio::test]
    async fn deleting_for_everyone_wipes_content_media_and_envelopes() {
        let (_dir, db) = db().await;
        let conn = db.conn().await.unwrap();
        let m1 = send(&conn, 1, 2, "text", None).await.id;
        let m2 = send(&conn, 2, 1, "text", None).await.id;
        conn.execute("UPDATE message SET media_key = 'k' WHERE id = ?1", [m2]).await.unwrap();
        insert_envelope(&conn, m1, "d2", 2, "e").await.unwrap();
        let wiped = delete_for_everyone(&conn, m2).await.unwrap();
        assert_eq!(wiped, Wiped { ids: vec![m2], media_keys: vec!["k".into()] });
        assert_eq!(delete_for_everyone(&conn, m2).await.unwrap(), Wiped::default(), "already deleted");
        let wiped = delete_chat_for_everyone(&conn, 2, 1, m2).await.unwrap();
        assert_eq!(wiped.ids, vec![m1]);
        assert!(latest_per_peer(&conn, 1).await.unwrap().is_empty());
        let envelopes: i64 =
            value(conn.query("SELECT COUNT(*) FROM message_envelope", ()).await.unwrap()).await.unwrap().unwrap();
        assert_eq!(envelopes, 0);
    }

    #[tokio::test]
    async fn client_msg_ids_devices_and_typing() {
        let (_dir, db) = db().await;
        let conn = db.conn().await.unwrap();
        assert!(!typing_allowed(&conn, 1, 2).await.unwrap(), "no conversation yet");
        let m = send(&conn, 1, 2, "text", Some("cid")).await.id;
        assert!(typing_allowed(&conn, 1, 2).await.unwrap());
        assert!(!typing_allowed(&conn, 99, 2).await.unwrap(), "unknown sender");
        assert_eq!(by_client_msg_id(&conn, 1, "cid").await.unwrap().map(|m| m.id), Some(m));
        assert!(by_client_msg_id(&conn, 2, "cid").await.unwrap().is_none(), "per sender");
        clear_client_msg_id(&conn, m).await.unwrap();
        assert!(by_client_msg_id(&conn, 1, "cid").await.unwrap().is_none());
        let mut devices = crate::db::devices::envelope_devices(&conn, 1, 2).await.unwrap();
        devices.sort_by_key(|d| d.user_id);
        assert_eq!(
            devices,
            vec![
                crate::db::devices::EnvelopeDevice { user_id: 1, id: "d1".into() },
                crate::db::devices::EnvelopeDevice { user_id: 2, id: "d2".into() }
            ]
        );
    }

    /// Every `chat_summary` row of `user_id` as (peer, message id, time), against the grouped oracle.
    async fn assert_summary_matches(conn: &Conn, user_id: i64, context: &str) {
        #[derive(Deserialize)]
        struct Row {
            peer_id: i64,
            last_message_id: i64,
            last_time: i64,
        }
        let rows = conn
            .query("SELECT peer_id, last_message_id, last_time FROM chat_summary WHERE user_id = ?1", [user_id])
            .await
            .unwrap();
        let mut stored: Vec<(i64, i64, i64)> =
            all::<Row>(rows).await.unwrap().into_iter().map(|r| (r.peer_id, r.last_message_id, r.last_time)).collect();
        stored.sort_unstable();
        let mut expected: Vec<(i64, i64, i64)> = latest_per_peer(conn, user_id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.peer_of(user_id), m.id, m.created_at))
            .collect();
        expected.sort_unstable();
        assert_eq!(stored, expected, "summary of user {user_id} after {context}");
    }

    #[tokio::test]
    async fn the_summary_follows_every_change_to_messages() {
        let (_dir, db) = db().await;
        let conn = db.conn().await.unwrap();
        for id in [4, 5] {
            conn.execute("INSERT INTO user (id, first_name, created_at) VALUES (?1, 'U', 0)", [id]).await.unwrap();
        }
        // A fixed xorshift sequence: the same operations on every run, many interleavings.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            i64::try_from(seed % n).unwrap()
        };
        let mut sent: Vec<i64> = Vec::new();
        // Five live accounts; a deleted one is replaced by a new account, so the conversations go on.
        let mut live: Vec<i64> = vec![1, 2, 3, 4, 5];
        let mut gone: Vec<i64> = Vec::new();
        for step in 0..600 {
            let (slot, a, b) = {
                let (i, j) = (usize::try_from(next(5)).unwrap(), usize::try_from(next(5)).unwrap());
                (i, live[i], live[j])
            };
            let op = next(100);
            let context = match op {
                _ if a == b || sent.is_empty() || op < 55 => {
                    if a != b {
                        // Equal times are common on a busy server; the order must not depend on them.
                        let new = NewMessage { created_at: 1000 + next(4), ..message(a, b) };
                        sent.push(insert(&conn, new).await.unwrap().id);
                    }
                    "a send"
                }
                55..70 => {
                    let id = sent[usize::try_from(next(sent.len() as u64)).unwrap()];
                    if next(2) == 0 { hide_for_sender(&conn, id).await } else { hide_for_receiver(&conn, id).await }
                        .unwrap();
                    "hiding one message"
                }
                70..82 => {
                    let id = sent[usize::try_from(next(sent.len() as u64)).unwrap()];
                    delete_for_everyone(&conn, id).await.unwrap();
                    "deleting one message for everyone"
                }
                82..90 => {
                    let up_to = last_visible_id(&conn, a, b).await.unwrap();
                    hide_conversation(&conn, a, b, up_to).await.unwrap();
                    "clearing a chat for one side"
                }
                90..95 => {
                    let up_to = last_live_id(&conn, a, b).await.unwrap();
                    delete_chat_for_everyone(&conn, a, b, up_to).await.unwrap();
                    "clearing a chat for everyone"
                }
                95..98 => {
                    let id = sent[usize::try_from(next(sent.len() as u64)).unwrap()];
                    conn.execute("DELETE FROM message WHERE id = ?1", [id]).await.unwrap();
                    "deleting a row"
                }
                _ => {
                    delete_of_user(&conn, a).await.unwrap();
                    let fresh = 100 + i64::try_from(gone.len()).unwrap();
                    conn.execute("INSERT INTO user (id, first_name, created_at) VALUES (?1, 'U', 0)", [fresh])
                        .await
                        .unwrap();
                    gone.push(a);
                    live[slot] = fresh;
                    "an account deletion"
                }
            };
            for user in &live {
                assert_summary_matches(&conn, *user, &format!("step {step}: {context}")).await;
            }
            for user in &gone {
                let sql = format!("SELECT COUNT(*) FROM chat_summary WHERE user_id = {user}");
                let rows: i64 = value(conn.query(&sql, ()).await.unwrap()).await.unwrap().unwrap();
                assert_eq!(rows, 0, "a deleted account lists nothing, step {step}: {context}");
            }
        }
        let rows: i64 =
            value(conn.query("SELECT COUNT(*) FROM chat_summary", ()).await.unwrap()).await.unwrap().unwrap();
        assert!(rows > 0, "the sequence ends with live conversations");
        assert!(!gone.is_empty(), "the sequence deletes accounts");
    }

    #[tokio::test]
    async fn the_migration_summarises_existing_conversations() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&format!("file:{}", dir.path().join("t.db").display()), None).await.unwrap();
        let conn = db.conn().await.unwrap();
        // A database as the previous release left it: migrations up to 0003 and a history.
        conn.execute(
            "CREATE TABLE schema_migration (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            (),
        )
        .await
        .unwrap();
        for (version, name, sql) in &crate::db::MIGRATIONS[..3] {
            conn.execute_batch(sql).await.unwrap();
            conn.execute("INSERT INTO schema_migration VALUES (?1, ?2, 0)", (*version, *name)).await.unwrap();
        }
        let insert_raw = async |from: i64, to: i64, flags: &str| -> i64 {
            let sql = format!(
                "INSERT INTO message (sender_id, receiver_id, encrypted_content, created_at, {flags}) \
                 VALUES (?1, ?2, 'c', 7, 1) RETURNING id"
            );
            value(conn.query(&sql, (from, to)).await.unwrap()).await.unwrap().unwrap()
        };
        let kept = insert_raw(1, 2, "is_read").await;
        insert_raw(2, 1, "hidden_for_receiver").await;
        let to_three = insert_raw(1, 3, "is_read").await;
        insert_raw(3, 1, "deleted_for_everyone").await;
        drop(conn);
        let applied = migrate(&db).await.unwrap();
        assert_eq!(applied.first(), Some(&"0004_chat_summary"), "{applied:?}");
        let conn = db.conn().await.unwrap();
        for user in 1..=3 {
            assert_summary_matches(&conn, user, "the migration").await;
        }
        let page = ids(&active_page(&conn, 1, (i64::MAX, i64::MAX), 10).await.unwrap());
        assert_eq!(page, vec![to_three, kept], "same time: the higher peer id first");
        assert_eq!(ids(&active_page(&conn, 2, (i64::MAX, i64::MAX), 10).await.unwrap()), vec![kept + 1]);
    }

    #[tokio::test]
    async fn active_pages_walk_by_time_then_peer() {
        let (_dir, db) = db().await;
        let conn = db.conn().await.unwrap();
        for id in 4..=9 {
            conn.execute("INSERT INTO user (id, first_name, created_at) VALUES (?1, 'U', 0)", [id]).await.unwrap();
        }
        let mut expected = Vec::new();
        // Peers 2..=9 write to user 1; peers 4 and 5 share a millisecond, and so do 6, 7 and 8.
        for (peer, at) in [(2, 10), (3, 20), (4, 30), (5, 30), (6, 40), (7, 40), (8, 40), (9, 50)] {
            let new = NewMessage { created_at: at, ..message(peer, 1) };
            expected.push((at, peer, insert(&conn, new).await.unwrap().id));
        }
        expected.reverse();
        let mut walked = Vec::new();
        let mut cursor = (i64::MAX, i64::MAX);
        loop {
            let page = active_page(&conn, 1, cursor, 3).await.unwrap();
            let Some(last) = page.last() else { break };
            assert!(page.len() <= 3);
            cursor = (last.created_at, last.peer_of(1));
            walked.extend(page.iter().map(|m| (m.created_at, m.peer_of(1), m.id)));
        }
        assert_eq!(walked, expected, "every peer once, newest first, ties by descending peer id");
        assert_eq!(ids(&active_page(&conn, 1, (40, i64::MIN), 10).await.unwrap()).len(), 4, "strictly before 40");
        assert!(active_page(&conn, 2, (i64::MAX, i64::MAX), 10).await.unwrap().len() == 1);
    }
}
