//! MLS groups (API.md §15.2–§15.3): `mls_group`, `mls_member` (the routing table), `mls_pending_removal`, and
//! the handshake kept for members: `mls_commit`, `mls_welcome` with `mls_welcome_device`; and the group
//! messages, `mls_message` (§15.4), ciphertext only.
//! Ciphertext and MLS secrets never reach these tables; the group id and name are what clients chose to show.

use super::Conn;
use crate::db::{all, column, exists, first, value};
use serde::Deserialize;

/// Role of a group's creator.
pub const ADMIN: &str = "admin";

/// A group's own row.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupRow {
    /// Server id.
    pub id: i64,
    /// MLS group id, base64.
    pub group_id: String,
    /// Name, if the members keep it on the server.
    pub name: Option<String>,
    /// Current epoch.
    pub epoch: i64,
    /// Creator.
    pub created_by: i64,
    /// Milliseconds.
    pub created_at: i64,
}

/// One member device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberRow {
    /// Owner.
    pub user_id: i64,
    /// Device.
    pub device_id: String,
    /// `admin` or `member`.
    pub role: String,
    /// The epoch it joined in.
    pub joined_epoch: i64,
}

/// Creates a group at epoch 0 with `device_id` of `user_id` as its admin; `None` when the MLS group id is
/// taken. Run it in a write transaction.
pub async fn create(
    conn: &Conn,
    group_id: &str,
    name: Option<&str>,
    user_id: i64,
    device_id: &str,
    now_ms: i64,
) -> Result<Option<i64>, libsql::Error> {
    let rows = conn
        .query(
            "INSERT INTO mls_group (group_id, name, epoch, created_by, created_at) VALUES (?1, ?2, 0, ?3, ?4) \
             ON CONFLICT (group_id) DO NOTHING RETURNING id",
            (group_id, name, user_id, now_ms),
        )
        .await?;
    let Some(id) = value::<i64>(rows).await? else { return Ok(None) };
    conn.execute(
        "INSERT INTO mls_member (group_id, device_id, user_id, role, joined_epoch) VALUES (?1, ?2, ?3, ?4, 0)",
        (id, device_id, user_id, ADMIN),
    )
    .await?;
    Ok(Some(id))
}

/// How many groups any device of `user_id` is a member of.
pub async fn count_of_user(conn: &Conn, user_id: i64) -> Result<i64, libsql::Error> {
    let rows = conn.query("SELECT COUNT(DISTINCT group_id) FROM mls_member WHERE user_id = ?1", [user_id]).await?;
    Ok(value(rows).await?.unwrap_or(0))
}

/// Group `id`, if any device of `user_id` is a member: to anyone else it does not exist.
pub async fn get_for(conn: &Conn, id: i64, user_id: i64) -> Result<Option<GroupRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, group_id, name, epoch, created_by, created_at FROM mls_group g WHERE id = ?1 \
             AND EXISTS (SELECT 1 FROM mls_member m WHERE m.group_id = g.id AND m.user_id = ?2)",
            (id, user_id),
        )
        .await?;
    first(rows).await
}

/// The member devices of group `id`, by user then device.
pub async fn members(conn: &Conn, id: i64) -> Result<Vec<MemberRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT user_id, device_id, role, joined_epoch FROM mls_member WHERE group_id = ?1 \
             ORDER BY user_id, device_id",
            [id],
        )
        .await?;
    all(rows).await
}

/// Whether a device of `user_id` is an admin of group `id`.
pub async fn is_admin(conn: &Conn, id: i64, user_id: i64) -> Result<bool, libsql::Error> {
    let rows = conn
        .query("SELECT 1 FROM mls_member WHERE group_id = ?1 AND user_id = ?2 AND role = ?3", (id, user_id, ADMIN))
        .await?;
    exists(rows).await
}

/// Sets (or, with `None`, removes) the name of group `id`.
pub async fn rename(conn: &Conn, id: i64, name: Option<&str>) -> Result<(), libsql::Error> {
    conn.execute("UPDATE mls_group SET name = ?2 WHERE id = ?1", (id, name)).await?;
    Ok(())
}

/// One row of a user's group list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SummaryRow {
    /// Server id.
    pub id: i64,
    /// MLS group id, base64.
    pub group_id: String,
    /// Name.
    pub name: Option<String>,
    /// Current epoch.
    pub epoch: i64,
    /// Member devices.
    pub member_count: i64,
    /// Milliseconds of the last message or commit.
    pub last_activity_at: Option<i64>,
}

/// The groups of `user_id`, most recent activity (else creation) first, ties by id descending; after the
/// group `before` in that order when given (a group of the caller's; any other id gives an empty page).
pub async fn list(
    conn: &Conn,
    user_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<SummaryRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT g.id, g.group_id, g.name, g.epoch, g.last_activity_at, \
               (SELECT COUNT(*) FROM mls_member c WHERE c.group_id = g.id) AS member_count \
             FROM mls_group g \
             WHERE g.id IN (SELECT group_id FROM mls_member WHERE user_id = ?1) \
               AND (?2 IS NULL OR (COALESCE(g.last_activity_at, g.created_at), g.id) < \
                 (SELECT COALESCE(b.last_activity_at, b.created_at), b.id FROM mls_group b WHERE b.id = ?2 \
                    AND b.id IN (SELECT group_id FROM mls_member WHERE user_id = ?1))) \
             ORDER BY COALESCE(g.last_activity_at, g.created_at) DESC, g.id DESC LIMIT ?3",
            (user_id, before, limit),
        )
        .await?;
    all(rows).await
}

/// Takes every device of `user_id` out of group `id`'s routing table and records each as a pending removal
/// for the group's next commit; a group left without members is deleted. Returns the devices taken out.
pub async fn leave(conn: &Conn, id: i64, user_id: i64) -> Result<Vec<String>, libsql::Error> {
    let devices: Vec<String> = column(
        conn.query("SELECT device_id FROM mls_member WHERE group_id = ?1 AND user_id = ?2", (id, user_id)).await?,
    )
    .await?;
    conn.execute(
        "INSERT INTO mls_pending_removal (group_id, device_id, user_id) \
         SELECT group_id, device_id, user_id FROM mls_member WHERE group_id = ?1 AND user_id = ?2 \
         ON CONFLICT DO NOTHING",
        (id, user_id),
    )
    .await?;
    conn.execute("DELETE FROM mls_member WHERE group_id = ?1 AND user_id = ?2", (id, user_id)).await?;
    delete_if_empty(conn, id).await?;
    Ok(devices)
}

/// Takes device `device_id` out of every group (the device or its account is being deleted), recording
/// pending removals; groups left without members are deleted.
pub async fn remove_device(conn: &Conn, device_id: &str) -> Result<(), libsql::Error> {
    let groups: Vec<i64> =
        column(conn.query("SELECT group_id FROM mls_member WHERE device_id = ?1", [device_id]).await?).await?;
    conn.execute(
        "INSERT INTO mls_pending_removal (group_id, device_id, user_id) \
         SELECT group_id, device_id, user_id FROM mls_member WHERE device_id = ?1 ON CONFLICT DO NOTHING",
        [device_id],
    )
    .await?;
    conn.execute("DELETE FROM mls_member WHERE device_id = ?1", [device_id]).await?;
    let welcomes: Vec<i64> =
        column(conn.query("SELECT welcome_id FROM mls_welcome_device WHERE device_id = ?1", [device_id]).await?)
            .await?;
    for welcome in welcomes {
        ack_welcome(conn, welcome, device_id).await?;
    }
    for id in groups {
        delete_if_empty(conn, id).await?;
    }
    Ok(())
}

/// Deletes group `id` with everything kept for it when it has no member left: nobody could see it again.
async fn delete_if_empty(conn: &Conn, id: i64) -> Result<(), libsql::Error> {
    if exists(conn.query("SELECT 1 FROM mls_member WHERE group_id = ?1", [id]).await?).await? {
        return Ok(());
    }
    conn.execute("DELETE FROM mls_pending_removal WHERE group_id = ?1", [id]).await?;
    conn.execute("DELETE FROM mls_commit WHERE group_id = ?1", [id]).await?;
    conn.execute("DELETE FROM mls_message WHERE group_id = ?1", [id]).await?;
    conn.execute(
        "DELETE FROM mls_welcome_device WHERE welcome_id IN (SELECT id FROM mls_welcome WHERE group_id = ?1)",
        [id],
    )
    .await?;
    conn.execute("DELETE FROM mls_welcome WHERE group_id = ?1", [id]).await?;
    conn.execute("DELETE FROM mls_group WHERE id = ?1", [id]).await?;
    Ok(())
}

/// The member row of `device_id` in group `id`.
pub async fn member(conn: &Conn, id: i64, device_id: &str) -> Result<Option<MemberRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT user_id, device_id, role, joined_epoch FROM mls_member WHERE group_id = ?1 AND device_id = ?2",
            (id, device_id),
        )
        .await?;
    first(rows).await
}

/// Moves group `id` from epoch `from` to the next, stamping its activity; false when it is no longer at
/// `from` (another commit won that epoch).
pub async fn advance_epoch(conn: &Conn, id: i64, from: i64, now_ms: i64) -> Result<bool, libsql::Error> {
    let updated = conn
        .execute(
            "UPDATE mls_group SET epoch = epoch + 1, last_activity_at = ?3 WHERE id = ?1 AND epoch = ?2",
            (id, from, now_ms),
        )
        .await?;
    Ok(updated > 0)
}

/// Adds a member device with role `member`, joined at `epoch`.
pub async fn add_member(conn: &Conn, id: i64, user_id: i64, device_id: &str, epoch: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO mls_member (group_id, device_id, user_id, role, joined_epoch) VALUES (?1, ?2, ?3, 'member', ?4)",
        (id, device_id, user_id, epoch),
    )
    .await?;
    Ok(())
}

/// Takes a device out of group `id`, as a member and as a pending removal.
pub async fn remove_member(conn: &Conn, id: i64, device_id: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM mls_member WHERE group_id = ?1 AND device_id = ?2", (id, device_id)).await?;
    conn.execute("DELETE FROM mls_pending_removal WHERE group_id = ?1 AND device_id = ?2", (id, device_id)).await?;
    Ok(())
}

/// Sets the role of every device of `user_id` in group `id`.
pub async fn set_role(conn: &Conn, id: i64, user_id: i64, role: &str) -> Result<(), libsql::Error> {
    conn.execute("UPDATE mls_member SET role = ?3 WHERE group_id = ?1 AND user_id = ?2", (id, user_id, role)).await?;
    Ok(())
}

/// Stores the commit that created `epoch` of group `id`.
pub async fn insert_commit(
    conn: &Conn,
    id: i64,
    epoch: i64,
    (sender_id, sender_device_id): (i64, &str),
    message: &str,
    now_ms: i64,
) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO mls_commit (group_id, epoch, sender_id, sender_device_id, message, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        (id, epoch, sender_id, sender_device_id, message, now_ms),
    )
    .await?;
    Ok(())
}

/// A stored commit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommitRow {
    /// The epoch it created.
    pub epoch: i64,
    /// The MLSMessage, base64.
    pub message: String,
    /// Committer.
    pub sender_id: i64,
    /// Committer's device.
    pub sender_device_id: String,
    /// Milliseconds.
    pub created_at: i64,
}

/// The commits of group `id` that created epochs after `after_epoch`, oldest first, at most `limit`.
pub async fn commits_after(
    conn: &Conn,
    id: i64,
    after_epoch: i64,
    limit: i64,
) -> Result<Vec<CommitRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT epoch, message, sender_id, sender_device_id, created_at FROM mls_commit \
             WHERE group_id = ?1 AND epoch > ?2 ORDER BY epoch LIMIT ?3",
            (id, after_epoch, limit),
        )
        .await?;
    all(rows).await
}

/// Stores a welcome of group `id` for `epoch`, once; [`add_welcome_device`] addresses it.
pub async fn insert_welcome(
    conn: &Conn,
    id: i64,
    epoch: i64,
    message: &str,
    now_ms: i64,
) -> Result<i64, libsql::Error> {
    let rows = conn
        .query(
            "INSERT INTO mls_welcome (group_id, epoch, message, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            (id, epoch, message, now_ms),
        )
        .await?;
    value(rows).await?.ok_or(libsql::Error::QueryReturnedNoRows)
}

/// Addresses welcome `welcome_id` to a device.
pub async fn add_welcome_device(
    conn: &Conn,
    welcome_id: i64,
    user_id: i64,
    device_id: &str,
) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO mls_welcome_device (device_id, welcome_id, user_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        (device_id, welcome_id, user_id),
    )
    .await?;
    Ok(())
}

/// A welcome waiting for a device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WelcomeRow {
    /// Welcome id.
    pub id: i64,
    /// The group's server id.
    pub group_id: i64,
    /// Its epoch.
    pub epoch: i64,
    /// The Welcome MLSMessage, base64.
    pub message: String,
    /// Milliseconds.
    pub created_at: i64,
}

/// The welcomes waiting for `device_id`, oldest first.
pub async fn welcomes_of_device(conn: &Conn, device_id: &str) -> Result<Vec<WelcomeRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT w.id, w.group_id, w.epoch, w.message, w.created_at FROM mls_welcome_device d \
             JOIN mls_welcome w ON w.id = d.welcome_id WHERE d.device_id = ?1 ORDER BY w.id",
            [device_id],
        )
        .await?;
    all(rows).await
}

/// Acknowledges welcome `welcome_id` for `device_id`; the welcome goes once no device waits for it. False
/// when the device had no such welcome.
pub async fn ack_welcome(conn: &Conn, welcome_id: i64, device_id: &str) -> Result<bool, libsql::Error> {
    let deleted = conn
        .execute("DELETE FROM mls_welcome_device WHERE device_id = ?1 AND welcome_id = ?2", (device_id, welcome_id))
        .await?;
    conn.execute(
        "DELETE FROM mls_welcome WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM mls_welcome_device WHERE welcome_id = ?1)",
        [welcome_id],
    )
    .await?;
    Ok(deleted > 0)
}

/// The pending removals of group `id`: (user id, device id).
pub async fn pending_removals(conn: &Conn, id: i64) -> Result<Vec<(i64, String)>, libsql::Error> {
    #[derive(Deserialize)]
    struct Row {
        user_id: i64,
        device_id: String,
    }
    let rows: Vec<Row> = all(conn
        .query(
            "SELECT user_id, device_id FROM mls_pending_removal WHERE group_id = ?1 ORDER BY user_id, device_id",
            [id],
        )
        .await?)
    .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.device_id)).collect())
}

/// A stored group message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MessageRow {
    /// Id.
    pub id: i64,
    /// The group's server id.
    pub group_id: i64,
    /// Sender.
    pub sender_id: i64,
    /// Sender's device.
    pub sender_device_id: String,
    /// The epoch it was encrypted in.
    pub epoch: i64,
    /// The PrivateMessage, base64.
    pub ciphertext: String,
    /// The sender's id for it.
    pub client_msg_id: Option<String>,
    /// Milliseconds.
    pub created_at: i64,
}

const MESSAGE_COLUMNS: &str = "id, group_id, sender_id, sender_device_id, epoch, ciphertext, client_msg_id, created_at";

/// A new group message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage<'a> {
    /// The group's server id.
    pub group_id: i64,
    /// Sender and its device.
    pub sender: (i64, &'a str),
    /// The epoch it was encrypted in.
    pub epoch: i64,
    /// The PrivateMessage, base64.
    pub ciphertext: &'a str,
    /// The sender's id for it.
    pub client_msg_id: Option<&'a str>,
    /// Milliseconds.
    pub created_at: i64,
}

/// Stores a group message and stamps the group's activity; run it in a write transaction.
pub async fn insert_message(conn: &Conn, m: &NewMessage<'_>) -> Result<MessageRow, libsql::Error> {
    let rows = conn
        .query(
            &format!(
                "INSERT INTO mls_message (group_id, sender_id, sender_device_id, epoch, ciphertext, client_msg_id, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING {MESSAGE_COLUMNS}"
            ),
            (m.group_id, m.sender.0, m.sender.1, m.epoch, m.ciphertext, m.client_msg_id, m.created_at),
        )
        .await?;
    let row = first(rows).await?.ok_or(libsql::Error::QueryReturnedNoRows)?;
    conn.execute("UPDATE mls_group SET last_activity_at = ?2 WHERE id = ?1", (m.group_id, m.created_at)).await?;
    Ok(row)
}

/// The group message `sender_id` sent with `client_msg_id`, if any.
pub async fn message_by_client_msg_id(
    conn: &Conn,
    sender_id: i64,
    client_msg_id: &str,
) -> Result<Option<MessageRow>, libsql::Error> {
    let rows = conn
        .query(
            &format!("SELECT {MESSAGE_COLUMNS} FROM mls_message WHERE sender_id = ?1 AND client_msg_id = ?2"),
            (sender_id, client_msg_id),
        )
        .await?;
    first(rows).await
}

/// Releases a `client_msg_id` past its idempotency window for reuse.
pub async fn clear_client_msg_id(conn: &Conn, id: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE mls_message SET client_msg_id = NULL WHERE id = ?1", [id]).await?;
    Ok(())
}

/// A page of group `id`'s messages from `min_epoch` on: with `after_id`, the oldest `limit` above it (and
/// below `before_id`), oldest first; else the newest `limit` below `before_id`, newest first.
pub async fn messages_page(
    conn: &Conn,
    id: i64,
    min_epoch: i64,
    (after_id, before_id): (Option<i64>, i64),
    limit: i64,
) -> Result<Vec<MessageRow>, libsql::Error> {
    let rows = match after_id {
        Some(after) => {
            conn.query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM mls_message WHERE group_id = ?1 AND epoch >= ?2 AND id > ?3 \
                     AND id < ?4 ORDER BY id ASC LIMIT ?5"
                ),
                (id, min_epoch, after, before_id, limit),
            )
            .await?
        }
        None => {
            conn.query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM mls_message WHERE group_id = ?1 AND epoch >= ?2 AND id < ?3 \
                     ORDER BY id DESC LIMIT ?4"
                ),
                (id, min_epoch, before_id, limit),
            )
            .await?
        }
    };
    all(rows).await
}

/// Deletes up to `limit` commits and up to `limit` welcomes (with their devices) stored before `cutoff_ms`;
/// returns how many rows of the two it deleted. Run it in a write transaction, again until it returns 0.
pub async fn expire_batch(conn: &Conn, cutoff_ms: i64, limit: i64) -> Result<u64, libsql::Error> {
    let commits = conn
        .execute(
            "DELETE FROM mls_commit WHERE id IN (SELECT id FROM mls_commit WHERE created_at < ?1 LIMIT ?2)",
            (cutoff_ms, limit),
        )
        .await?;
    let welcomes: Vec<i64> =
        column(conn.query("SELECT id FROM mls_welcome WHERE created_at < ?1 LIMIT ?2", (cutoff_ms, limit)).await?)
            .await?;
    for id in &welcomes {
        conn.execute("DELETE FROM mls_welcome_device WHERE welcome_id = ?1", [*id]).await?;
        conn.execute("DELETE FROM mls_welcome WHERE id = ?1", [*id]).await?;
    }
    Ok(commits + welcomes.len() as u64)
}

/// The groups in which `device_id` is a pending removal.
pub async fn pending_groups_of_device(conn: &Conn, device_id: &str) -> Result<Vec<i64>, libsql::Error> {
    column(conn.query("SELECT group_id FROM mls_pending_removal WHERE device_id = ?1", [device_id]).await?).await
}
