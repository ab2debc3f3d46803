//! The `message` and `message_envelope` tables.
//!
//! Conversation statements select the pair as `min(sender_id, receiver_id) = min(?1, ?2) AND
//! max(sender_id, receiver_id) = max(?1, ?2)`, which is what the `message_pair` index is built on.
//! "Visible to `?1`" is `deleted_for_everyone = 0 AND NOT (sender_id = ?1 AND hidden_for_sender = 1)
//! AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1)`.

use libsql::Connection;
use serde::Deserialize;

use crate::db::row::{collect, first, int_bool};
use crate::messages::MessageRow;
use crate::users::UserRow;

/// A message row, mapped by column name.
#[derive(Debug, Deserialize)]
struct Record {
    id: i64,
    sender_id: i64,
    receiver_id: i64,
    encrypted_content: String,
    message_type: String,
    media_key: Option<String>,
    reply_to_message_id: Option<i64>,
    client_msg_id: Option<String>,
    sender_device_id: Option<String>,
    #[serde(deserialize_with = "int_bool")]
    is_read: bool,
    created_at: i64,
}

impl From<Record> for MessageRow {
    fn from(r: Record) -> Self {
        Self {
            id: r.id,
            sender_id: r.sender_id,
            receiver_id: r.receiver_id,
            encrypted_content: r.encrypted_content,
            message_type: r.message_type,
            media_key: r.media_key,
            reply_to_message_id: r.reply_to_message_id,
            client_msg_id: r.client_msg_id,
            sender_device_id: r.sender_device_id,
            is_read: r.is_read,
            created_at: r.created_at,
        }
    }
}

async fn messages(rows: libsql::Rows) -> Result<Vec<MessageRow>, libsql::Error> {
    Ok(collect::<Record>(rows).await?.into_iter().map(MessageRow::from).collect())
}

async fn message(rows: libsql::Rows) -> Result<Option<MessageRow>, libsql::Error> {
    Ok(first::<Record>(rows).await?.map(MessageRow::from))
}

/// Ids as the JSON array `json_each(?)` reads.
fn id_list(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// The first column of the first row as an integer (`COALESCE(MAX(id), 0)` and the like), 0 without rows.
async fn scalar(mut rows: libsql::Rows) -> Result<i64, libsql::Error> {
    rows.next().await?.map(|r| r.get::<i64>(0)).transpose().map(Option::unwrap_or_default)
}

/// For `GET /chats/active`: the latest message visible to `viewer` of each of its conversations, newest
/// first.
pub async fn active_latest(conn: &Connection, viewer: i64) -> Result<Vec<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, sender_id, receiver_id, encrypted_content, message_type, media_key, reply_to_message_id, \
             client_msg_id, sender_device_id, is_read, created_at FROM message WHERE id IN (\
               SELECT MAX(id) FROM message WHERE deleted_for_everyone = 0 \
               AND NOT (sender_id = ?1 AND hidden_for_sender = 1) AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1) \
               AND (sender_id = ?1 OR receiver_id = ?1) \
               GROUP BY CASE WHEN sender_id = ?1 THEN receiver_id ELSE sender_id END) ORDER BY id DESC",
            [viewer],
        )
        .await?;
    messages(rows).await
}

/// The user rows of `ids` (deleted ones too), in no particular order: the peers of the active chats.
/// (A `user` statement; it sits here until `db::users` has a lookup by several ids.)
pub async fn peer_users(conn: &Connection, ids: &[i64]) -> Result<Vec<UserRow>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT id, phone, username, first_name, last_name, public_key, avatar_key, avatar_preset, avatar_frame, \
             bio, birthdate, last_seen, avatar_visibility, avatar_visibility_exceptions, show_read_receipts, \
             show_last_seen, show_online_status, phone_visibility, is_deleted \
             FROM user WHERE id IN (SELECT value FROM json_each(?1))",
            [id_list(ids)],
        )
        .await?;
    let mut users = Vec::new();
    while let Some(row) = rows.next().await? {
        // Positional, in the column order of `crate::users::USER_COLUMNS`, as the statement lists them.
        users.push(UserRow::from_row(&row)?);
    }
    Ok(users)
}

/// The newest `limit` messages between `viewer` and `peer` visible to `viewer` with an id below
/// `before_id`, newest first (index `message_pair`).
pub async fn page_newest(
    conn: &Connection,
    viewer: i64,
    peer: i64,
    before_id: i64,
    limit: i64,
) -> Result<Vec<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, sender_id, receiver_id, encrypted_content, message_type, media_key, reply_to_message_id, \
             client_msg_id, sender_device_id, is_read, created_at FROM message \
             WHERE min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2) \
             AND deleted_for_everyone = 0 AND NOT (sender_id = ?1 AND hidden_for_sender = 1) \
             AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1) AND id < ?3 \
             ORDER BY id DESC LIMIT ?4",
            (viewer, peer, before_id, limit),
        )
        .await?;
    messages(rows).await
}

/// The oldest `limit` messages between `viewer` and `peer` visible to `viewer` with an id above
/// `after_id` and below `before_id`, oldest first (index `message_pair`).
pub async fn page_after(
    conn: &Connection,
    viewer: i64,
    peer: i64,
    after_id: i64,
    before_id: i64,
    limit: i64,
) -> Result<Vec<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, sender_id, receiver_id, encrypted_content, message_type, media_key, reply_to_message_id, \
             client_msg_id, sender_device_id, is_read, created_at FROM message \
             WHERE min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2) \
             AND deleted_for_everyone = 0 AND NOT (sender_id = ?1 AND hidden_for_sender = 1) \
             AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1) AND id > ?3 AND id < ?4 \
             ORDER BY id ASC LIMIT ?5",
            (viewer, peer, after_id, before_id, limit),
        )
        .await?;
    messages(rows).await
}

/// The newest `limit` image messages between `viewer` and `peer` visible to `viewer` with an id below
/// `before_id`, newest first (index `message_pair`).
pub async fn media_page(
    conn: &Connection,
    viewer: i64,
    peer: i64,
    before_id: i64,
    limit: i64,
) -> Result<Vec<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, sender_id, receiver_id, encrypted_content, message_type, media_key, reply_to_message_id, \
             client_msg_id, sender_device_id, is_read, created_at FROM message \
             WHERE min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2) \
             AND deleted_for_everyone = 0 AND NOT (sender_id = ?1 AND hidden_for_sender = 1) \
             AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1) AND message_type = 'image' \
             AND id < ?3 ORDER BY id DESC LIMIT ?4",
            (viewer, peer, before_id, limit),
        )
        .await?;
    messages(rows).await
}

/// Message `id` if it is one of `viewer`'s and visible to it.
pub async fn visible_to(conn: &Connection, viewer: i64, id: i64) -> Result<Option<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, sender_id, receiver_id, encrypted_content, message_type, media_key, reply_to_message_id, \
             client_msg_id, sender_device_id, is_read, created_at FROM message \
             WHERE id = ?2 AND deleted_for_everyone = 0 AND NOT (sender_id = ?1 AND hidden_for_sender = 1) \
             AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1) AND (sender_id = ?1 OR receiver_id = ?1)",
            (viewer, id),
        )
        .await?;
    message(rows).await
}

/// Whether message `id` belongs to the conversation of `viewer` and `peer` and is visible to `viewer` (a
/// valid reply target).
pub async fn visible_in_conversation(
    conn: &Connection,
    viewer: i64,
    peer: i64,
    id: i64,
) -> Result<bool, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT 1 FROM message WHERE id = ?3 \
             AND min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2) \
             AND deleted_for_everyone = 0 AND NOT (sender_id = ?1 AND hidden_for_sender = 1) \
             AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1)",
            (viewer, peer, id),
        )
        .await?;
    Ok(rows.next().await?.is_some())
}

/// The highest id of the conversation of `viewer` and `peer` visible to `viewer`, 0 when there is none.
pub async fn last_visible_id(conn: &Connection, viewer: i64, peer: i64) -> Result<i64, libsql::Error> {
    let rows = conn
        .query(
            "SELECT COALESCE(MAX(id), 0) FROM message \
             WHERE min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2) \
             AND deleted_for_everyone = 0 AND NOT (sender_id = ?1 AND hidden_for_sender = 1) \
             AND NOT (receiver_id = ?1 AND hidden_for_receiver = 1)",
            (viewer, peer),
        )
        .await?;
    scalar(rows).await
}

/// The highest id of the conversation of `a` and `b` not deleted for everyone (also what either user hid
/// for itself), 0 when there is none.
pub async fn last_live_id(conn: &Connection, a: i64, b: i64) -> Result<i64, libsql::Error> {
    let rows = conn
        .query(
            "SELECT COALESCE(MAX(id), 0) FROM message \
             WHERE min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2) \
             AND deleted_for_everyone = 0",
            (a, b),
        )
        .await?;
    scalar(rows).await
}

/// Hides every message of the conversation of `viewer` and `peer` up to `up_to_id` for `viewer` (its sent
/// and its received ones); returns how many were newly hidden.
pub async fn hide_chat_for(conn: &Connection, viewer: i64, peer: i64, up_to_id: i64) -> Result<u64, libsql::Error> {
    let sent = conn
        .execute(
            "UPDATE message SET hidden_for_sender = 1 WHERE sender_id = ?1 AND receiver_id = ?2 \
             AND hidden_for_sender = 0 AND deleted_for_everyone = 0 AND id <= ?3",
            (viewer, peer, up_to_id),
        )
        .await?;
    let received = conn
        .execute(
            "UPDATE message SET hidden_for_receiver = 1 WHERE receiver_id = ?1 AND sender_id = ?2 \
             AND hidden_for_receiver = 0 AND deleted_for_everyone = 0 AND id <= ?3",
            (viewer, peer, up_to_id),
        )
        .await?;
    Ok(sent + received)
}

/// Which side of a message a user is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The user sent it.
    Sender,
    /// The user received it.
    Receiver,
}

/// Hides message `id` for its sender or its receiver.
pub async fn hide_for(conn: &Connection, id: i64, side: Side) -> Result<(), libsql::Error> {
    let sql = match side {
        Side::Sender => "UPDATE message SET hidden_for_sender = 1 WHERE id = ?1",
        Side::Receiver => "UPDATE message SET hidden_for_receiver = 1 WHERE id = ?1",
    };
    conn.execute(sql, [id]).await?;
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

#[derive(Deserialize)]
struct Live {
    id: i64,
    media_key: Option<String>,
}

/// Marks the `found` messages deleted for everyone: content wiped, media detached, envelopes removed.
async fn wipe(conn: &Connection, found: Vec<Live>) -> Result<Wiped, libsql::Error> {
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

/// Deletes every message of the conversation of `a` and `b` up to `up_to_id` for everyone (also those one
/// of them hid for itself). Run it inside the caller's write transaction.
pub async fn delete_chat_for_everyone(
    conn: &Connection,
    a: i64,
    b: i64,
    up_to_id: i64,
) -> Result<Wiped, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, media_key FROM message \
             WHERE min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2) \
             AND id <= ?3 AND deleted_for_everyone = 0",
            (a, b, up_to_id),
        )
        .await?;
    let found = collect::<Live>(rows).await?;
    wipe(conn, found).await
}

/// Deletes message `id` for everyone (nothing if it already is). Run it inside the caller's write
/// transaction.
pub async fn delete_for_everyone(conn: &Connection, id: i64) -> Result<Wiped, libsql::Error> {
    let rows = conn.query("SELECT id, media_key FROM message WHERE id = ?1 AND deleted_for_everyone = 0", [id]).await?;
    let found = collect::<Live>(rows).await?;
    wipe(conn, found).await
}

/// The message `sender` stored under `client_msg_id` after `since_ms` (a retry within the idempotency
/// window).
pub async fn recent_by_client_msg_id(
    conn: &Connection,
    sender: i64,
    client_msg_id: &str,
    since_ms: i64,
) -> Result<Option<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, sender_id, receiver_id, encrypted_content, message_type, media_key, reply_to_message_id, \
             client_msg_id, sender_device_id, is_read, created_at FROM message \
             WHERE sender_id = ?1 AND client_msg_id = ?2 AND created_at > ?3",
            (sender, client_msg_id, since_ms),
        )
        .await?;
    message(rows).await
}

/// The message `sender` stored under `client_msg_id`, however old (index `message_client_msg`).
pub async fn by_client_msg_id(
    conn: &Connection,
    sender: i64,
    client_msg_id: &str,
) -> Result<Option<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, sender_id, receiver_id, encrypted_content, message_type, media_key, reply_to_message_id, \
             client_msg_id, sender_device_id, is_read, created_at FROM message \
             WHERE sender_id = ?1 AND client_msg_id = ?2",
            (sender, client_msg_id),
        )
        .await?;
    message(rows).await
}

/// Frees the `client_msg_id` of message `id` (outside the idempotency window) for reuse.
pub async fn release_client_msg_id(conn: &Connection, id: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE message SET client_msg_id = NULL WHERE id = ?1", [id]).await?;
    Ok(())
}

/// A validated message to store.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// The sender.
    pub sender_id: i64,
    /// The receiver.
    pub receiver_id: i64,
    /// Opaque ciphertext.
    pub encrypted_content: &'a str,
    /// `text`, `image` or `file`.
    pub message_type: &'a str,
    /// An object key the sender owns.
    pub media_key: Option<&'a str>,
    /// The message replied to.
    pub reply_to_message_id: Option<i64>,
    /// The sender's idempotency key.
    pub client_msg_id: Option<&'a str>,
    /// The sending device.
    pub sender_device_id: &'a str,
    /// Storage time (ms).
    pub created_at: i64,
}

/// Stores a message; returns it as stored.
pub async fn insert(conn: &Connection, new: NewMessage<'_>) -> Result<MessageRow, libsql::Error> {
    let rows = conn
        .query(
            "INSERT INTO message (sender_id, receiver_id, encrypted_content, message_type, media_key, \
             reply_to_message_id, client_msg_id, sender_device_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id, sender_id, receiver_id, encrypted_content, \
             message_type, media_key, reply_to_message_id, client_msg_id, sender_device_id, is_read, created_at",
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
    message(rows).await?.ok_or_else(|| libsql::Error::Misuse("message insert returned no row".into()))
}

/// Stores the ciphertext of message `message_id` for device `device_id` of `user_id`.
pub async fn insert_envelope(
    conn: &Connection,
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

/// A device a message's envelopes may be addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvelopeDevice {
    /// Its owner.
    pub user_id: i64,
    /// The device.
    pub id: String,
}

/// Every device of `sender` and `receiver`: the devices envelopes of their messages may address (a `device`
/// statement, index `device_user`).
pub async fn envelope_devices(
    conn: &Connection,
    sender: i64,
    receiver: i64,
) -> Result<Vec<EnvelopeDevice>, libsql::Error> {
    collect(conn.query("SELECT user_id, id FROM device WHERE user_id IN (?1, ?2)", (sender, receiver)).await?).await
}

/// Whether `sender`'s typing may be relayed to `receiver`: `sender` shows its online status and the two
/// share a conversation with a message not deleted for everyone (false for an unknown sender).
pub async fn typing_allowed(conn: &Connection, sender: i64, receiver: i64) -> Result<bool, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT u.show_online_status AND EXISTS (SELECT 1 FROM message \
               WHERE min(sender_id, receiver_id) = min(?1, ?2) AND max(sender_id, receiver_id) = max(?1, ?2) \
               AND deleted_for_everyone = 0) \
             FROM user u WHERE u.id = ?1",
            (sender, receiver),
        )
        .await?;
    Ok(rows.next().await?.map(|r| r.get::<bool>(0)).transpose()?.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, migrate};

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

    async fn send(conn: &Connection, from: i64, to: i64, message_type: &str, cid: Option<&str>) -> MessageRow {
        let new = NewMessage {
            sender_id: from,
            receiver_id: to,
            encrypted_content: "c",
            message_type,
            media_key: None,
            reply_to_message_id: None,
            client_msg_id: cid,
            sender_device_id: "d",
            created_at: 1000,
        };
        insert(conn, new).await.unwrap()
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
        assert_eq!(ids(&page_newest(&conn, 1, 2, i64::MAX, 2).await.unwrap()), vec![m3, m2]);
        assert_eq!(ids(&page_after(&conn, 2, 1, m1.id, i64::MAX, 10).await.unwrap()), vec![m2, m3]);
        assert_eq!(ids(&page_after(&conn, 2, 1, 0, m3, 10).await.unwrap()), vec![m1.id, m2]);
        assert_eq!(ids(&media_page(&conn, 1, 2, i64::MAX, 10).await.unwrap()), vec![m2]);
        assert_eq!(ids(&active_latest(&conn, 1).await.unwrap()), vec![other, m3]);
        assert!(visible_in_conversation(&conn, 1, 2, m2).await.unwrap());
        assert!(!visible_in_conversation(&conn, 3, 2, m2).await.unwrap(), "another conversation");
        assert_eq!(last_visible_id(&conn, 1, 2).await.unwrap(), m3);

        hide_for(&conn, m3, Side::Sender).await.unwrap();
        assert!(visible_to(&conn, 1, m3).await.unwrap().is_none(), "hidden for the sender");
        assert_eq!(visible_to(&conn, 2, m3).await.unwrap().map(|m| m.id), Some(m3), "not for the receiver");
        assert!(visible_to(&conn, 3, m3).await.unwrap().is_none(), "not a message of user 3");
        assert_eq!(last_visible_id(&conn, 1, 2).await.unwrap(), m2);
        assert_eq!(last_live_id(&conn, 1, 2).await.unwrap(), m3, "what the caller hid still counts");
        assert_eq!(hide_chat_for(&conn, 2, 1, m2).await.unwrap(), 2);
        assert_eq!(ids(&page_newest(&conn, 2, 1, i64::MAX, 10).await.unwrap()), vec![m3]);
        assert_eq!(last_visible_id(&conn, 3, 2).await.unwrap(), 0);
        let mut peers: Vec<i64> = peer_users(&conn, &[2, 3, 99]).await.unwrap().iter().map(|u| u.id).collect();
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
        assert!(active_latest(&conn, 1).await.unwrap().is_empty());
        let envelopes = scalar(conn.query("SELECT COUNT(*) FROM message_envelope", ()).await.unwrap()).await.unwrap();
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
        assert_eq!(recent_by_client_msg_id(&conn, 1, "cid", 999).await.unwrap().map(|m| m.id), Some(m));
        assert!(recent_by_client_msg_id(&conn, 1, "cid", 1000).await.unwrap().is_none(), "outside the window");
        release_client_msg_id(&conn, m).await.unwrap();
        assert!(by_client_msg_id(&conn, 1, "cid").await.unwrap().is_none());
        let mut devices = envelope_devices(&conn, 1, 2).await.unwrap();
        devices.sort_by_key(|d| d.user_id);
        assert_eq!(
            devices,
            vec![EnvelopeDevice { user_id: 1, id: "d1".into() }, EnvelopeDevice { user_id: 2, id: "d2".into() }]
        );
    }
}
