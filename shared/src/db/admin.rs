//! The operator panel's tables (sessions, audit log) and its read-only views of the others. Nothing here
//! reads a password hash or message contents: the panel cannot show what it never selects.

use serde::Deserialize;

use super::{Conn, all, exists, first, int_bool, value};

/// The operator behind a live panel session.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionOperator {
    /// The operator's user id.
    pub user_id: i64,
    /// Their username, if they chose one.
    pub username: Option<String>,
    /// When the session was last used (ms).
    pub last_seen_at: i64,
}

/// Starts a session (`id_hash` is the SHA-256 of the cookie's id, hex).
pub async fn insert_session(conn: &Conn, id_hash: &str, user_id: i64, now: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO admin_session (id_hash, user_id, created_at, last_seen_at) VALUES (?1, ?2, ?3, ?3)",
        (id_hash, user_id, now),
    )
    .await?;
    Ok(())
}

/// The session `id_hash` if it was used after `idle_since` and its account is still a live, unbanned operator.
pub async fn session_operator(
    conn: &Conn,
    id_hash: &str,
    idle_since: i64,
) -> Result<Option<SessionOperator>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT s.user_id, u.username, s.last_seen_at FROM admin_session s JOIN user u ON u.id = s.user_id \
             WHERE s.id_hash = ?1 AND s.last_seen_at > ?2 AND u.is_admin = 1 AND u.is_banned = 0 AND u.is_deleted = 0",
            (id_hash, idle_since),
        )
        .await?;
    first(rows).await
}

/// Records that the session was used at `now`.
pub async fn touch_session(conn: &Conn, id_hash: &str, now: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE admin_session SET last_seen_at = ?2 WHERE id_hash = ?1", (id_hash, now)).await?;
    Ok(())
}

/// Ends one session (logout).
pub async fn delete_session(conn: &Conn, id_hash: &str) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM admin_session WHERE id_hash = ?1", [id_hash]).await?;
    Ok(())
}

/// Ends every session of a user (operator rights revoked, account deleted).
pub async fn delete_sessions_of_user(conn: &Conn, user_id: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM admin_session WHERE user_id = ?1", [user_id]).await?;
    Ok(())
}

/// Forgets sessions idle since before `before` (run at each panel login, so the table stays small).
pub async fn delete_idle_sessions(conn: &Conn, before: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM admin_session WHERE last_seen_at <= ?1", [before]).await?;
    Ok(())
}

/// Grants (`true`) or revokes operator rights of a live account; returns whether the flag changed.
pub async fn set_admin(conn: &Conn, user_id: i64, admin: bool) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE user SET is_admin = ?2 WHERE id = ?1 AND is_deleted = 0 AND is_admin != ?2",
            (user_id, i64::from(admin)),
        )
        .await?;
    Ok(changed > 0)
}

/// What an operator did, to what, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditEntry<'a> {
    /// The operator (`None`: the command-line operator step).
    pub admin_id: Option<i64>,
    /// `ban`, `unban`, `revoke_sessions`, `delete_user`, `delete_message`, `grant_admin`, `revoke_admin`.
    pub action: &'a str,
    /// `user` or `message`.
    pub target_kind: &'a str,
    /// The target's id.
    pub target_id: i64,
}

/// Appends to the audit log.
pub async fn audit(conn: &Conn, entry: AuditEntry<'_>, now: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO admin_audit (admin_id, action_name, target_kind, target_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        (entry.admin_id, entry.action, entry.target_kind, entry.target_id, now),
    )
    .await?;
    Ok(())
}

/// A row of the audit log.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditRow {
    /// Row id (newest is highest).
    pub id: i64,
    /// The operator (`None`: the command line).
    pub admin_id: Option<i64>,
    /// The operator's username.
    pub admin_username: Option<String>,
    /// What was done (see [`AuditEntry::action`]).
    pub action_name: String,
    /// `user` or `message`.
    pub target_kind: String,
    /// Target id.
    pub target_id: i64,
    /// When (ms).
    pub created_at: i64,
}

/// A page of the audit log, newest first, below `before_id` when given.
pub async fn audit_page(conn: &Conn, before_id: Option<i64>, limit: i64) -> Result<Vec<AuditRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT a.id, a.admin_id, u.username AS admin_username, a.action_name, a.target_kind, a.target_id, \
             a.created_at \
             FROM admin_audit a LEFT JOIN user u ON u.id = a.admin_id \
             WHERE a.id < coalesce(?1, 9223372036854775807) ORDER BY a.id DESC LIMIT ?2",
            (before_id, limit),
        )
        .await?;
    all(rows).await
}

/// The dashboard's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Counts {
    /// Live accounts.
    pub users: i64,
    /// Messages stored since `day_start`.
    pub messages_today: i64,
    /// Open WebSocket connections.
    pub connections: i64,
    /// Bytes of stored objects (avatars, uploads, wallpapers).
    pub storage_bytes: i64,
}

/// Counts for the dashboard; "today" starts at `day_start` (ms).
pub async fn counts(conn: &Conn, day_start: i64) -> Result<Counts, libsql::Error> {
    let rows = conn
        .query(
            "SELECT (SELECT COUNT(*) FROM user WHERE is_deleted = 0) AS users, \
             (SELECT COUNT(*) FROM message WHERE created_at >= ?1) AS messages_today, \
             (SELECT COUNT(*) FROM connection) AS connections, \
             (SELECT coalesce(SUM(size), 0) FROM object) AS storage_bytes",
            [day_start],
        )
        .await?;
    Ok(first(rows).await?.unwrap_or_default())
}

/// Messages stored per day for `days` days from `from` (ms, a day start): index 0 is the first day.
pub async fn messages_per_day(conn: &Conn, from: i64, days: usize) -> Result<Vec<i64>, libsql::Error> {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    #[derive(Deserialize)]
    struct Day {
        day: i64,
        n: i64,
    }
    let rows = conn
        .query(
            "SELECT (created_at - ?1) / ?2 AS day, COUNT(*) AS n FROM message WHERE created_at >= ?1 GROUP BY day",
            (from, DAY_MS),
        )
        .await?;
    let mut out = vec![0; days];
    for d in all::<Day>(rows).await? {
        if let Some(slot) = usize::try_from(d.day).ok().and_then(|i| out.get_mut(i)) {
            *slot = d.n;
        }
    }
    Ok(out)
}

/// How the users list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserSort {
    /// By id.
    #[default]
    Id,
    /// By username (accounts without one last).
    Username,
    /// By last seen.
    LastSeen,
}

impl UserSort {
    /// The sort's name in the panel's query string.
    pub fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Username => "username",
            Self::LastSeen => "last_seen",
        }
    }

    /// Parses a query-string name; anything else is `None`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Id, Self::Username, Self::LastSeen].into_iter().find(|s| s.name() == name)
    }

    fn order_by(self, desc: bool) -> &'static str {
        match (self, desc) {
            (Self::Id, false) => "id ASC",
            (Self::Id, true) => "id DESC",
            (Self::Username, false) => "username_lower IS NULL, username_lower ASC, id ASC",
            (Self::Username, true) => "username_lower IS NULL, username_lower DESC, id DESC",
            (Self::LastSeen, false) => "last_seen IS NULL, last_seen ASC, id ASC",
            (Self::LastSeen, true) => "last_seen IS NULL, last_seen DESC, id DESC",
        }
    }
}

/// A row of the users list.
#[derive(Debug, Clone, Deserialize)]
pub struct UserListRow {
    /// Id.
    pub id: i64,
    /// Username.
    pub username: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Registered at (ms).
    pub created_at: i64,
    /// Last seen (ms).
    pub last_seen: Option<i64>,
    /// Operator.
    #[serde(deserialize_with = "int_bool")]
    pub is_admin: bool,
    /// Banned.
    #[serde(deserialize_with = "int_bool")]
    pub is_banned: bool,
}

/// A page of live accounts whose username or name contains `query` (lower-cased; literal, no wildcards).
pub async fn users_page(
    conn: &Conn,
    query: Option<&str>,
    sort: UserSort,
    desc: bool,
    offset: i64,
    limit: i64,
) -> Result<Vec<UserListRow>, libsql::Error> {
    let sql = format!(
        "SELECT id, username, first_name, last_name, created_at, last_seen, is_admin, is_banned FROM user \
         WHERE is_deleted = 0 AND (?1 IS NULL OR instr(search_text, ?1) > 0) ORDER BY {} LIMIT ?2 OFFSET ?3",
        sort.order_by(desc)
    );
    all(conn.query(&sql, (query, limit, offset)).await?).await
}

/// How many live accounts match `query` (as [`users_page`]).
pub async fn users_count(conn: &Conn, query: Option<&str>) -> Result<i64, libsql::Error> {
    let rows = conn
        .query("SELECT COUNT(*) FROM user WHERE is_deleted = 0 AND (?1 IS NULL OR instr(search_text, ?1) > 0)", [query])
        .await?;
    Ok(value(rows).await?.unwrap_or(0))
}

/// What the panel shows of one account: never the password hash, keys or message contents.
#[derive(Debug, Clone, Deserialize)]
pub struct UserDetail {
    /// What the users list shows of it.
    #[serde(flatten)]
    pub account: UserListRow,
    /// Phone digits (shown to the operator only).
    pub phone: Option<String>,
    /// Bio.
    pub bio: Option<String>,
    /// Birthdate.
    pub birthdate: Option<String>,
    /// Deleted (a stub).
    #[serde(deserialize_with = "int_bool")]
    pub is_deleted: bool,
    /// Devices.
    pub devices: i64,
    /// Open connections.
    pub connections: i64,
    /// Messages sent.
    pub sent: i64,
    /// Messages received.
    pub received: i64,
    /// Bytes of the account's stored objects.
    pub storage_bytes: i64,
}

/// One account for the detail page.
pub async fn user_detail(conn: &Conn, id: i64) -> Result<Option<UserDetail>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, phone, username, first_name, last_name, bio, birthdate, created_at, last_seen, is_admin, \
             is_banned, is_deleted, \
             (SELECT COUNT(*) FROM device WHERE user_id = ?1) AS devices, \
             (SELECT COUNT(*) FROM connection WHERE user_id = ?1) AS connections, \
             (SELECT COUNT(*) FROM message WHERE sender_id = ?1) AS sent, \
             (SELECT COUNT(*) FROM message WHERE receiver_id = ?1) AS received, \
             (SELECT coalesce(SUM(size), 0) FROM object WHERE owner_id = ?1) AS storage_bytes \
             FROM user WHERE id = ?1",
            [id],
        )
        .await?;
    first(rows).await
}

/// A message as the panel shows it: metadata only.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageMeta {
    /// Id.
    pub id: i64,
    /// Sender.
    pub sender_id: i64,
    /// Receiver.
    pub receiver_id: i64,
    /// `text`, `image` or `file`.
    pub message_type: String,
    /// Stored at (ms).
    pub created_at: i64,
    /// Bytes of ciphertext.
    pub size: i64,
    /// Has an attachment.
    #[serde(deserialize_with = "int_bool")]
    pub has_media: bool,
    /// Read by the receiver.
    #[serde(deserialize_with = "int_bool")]
    pub is_read: bool,
    /// Deleted for everyone.
    #[serde(deserialize_with = "int_bool")]
    pub deleted_for_everyone: bool,
}

const MESSAGE_META: &str = "SELECT id, sender_id, receiver_id, message_type, created_at, \
     length(CAST(encrypted_content AS BLOB)) AS size, media_key IS NOT NULL AS has_media, is_read, \
     deleted_for_everyone FROM message";

/// A page of messages, newest first, below `before_id`; only those sent or received by `user_id` when given.
pub async fn messages_page(
    conn: &Conn,
    user_id: Option<i64>,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<MessageMeta>, libsql::Error> {
    let before = before_id.unwrap_or(i64::MAX);
    let rows = match user_id {
        // Each side through its own index, then merged.
        Some(user) => {
            let sql = format!(
                "SELECT * FROM ({MESSAGE_META} WHERE sender_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3) \
                 UNION SELECT * FROM ({MESSAGE_META} WHERE receiver_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3) \
                 ORDER BY id DESC LIMIT ?3"
            );
            conn.query(&sql, (user, before, limit)).await?
        }
        None => conn.query(&format!("{MESSAGE_META} WHERE id < ?1 ORDER BY id DESC LIMIT ?2"), (before, limit)).await?,
    };
    all(rows).await
}

/// An open WebSocket connection as the panel lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionRow {
    /// API Gateway connection id.
    pub id: String,
    /// Its user.
    pub user_id: i64,
    /// The user's username.
    pub username: Option<String>,
    /// The device it belongs to.
    pub device_id: String,
    /// Connected at (ms).
    pub connected_at: i64,
}

/// Open connections grouped by user (ascending), oldest first within a user, at most `limit`.
pub async fn connections(conn: &Conn, limit: i64) -> Result<Vec<ConnectionRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT c.id, c.user_id, u.username, c.device_id, c.connected_at FROM connection c \
             JOIN user u ON u.id = c.user_id ORDER BY c.user_id, c.connected_at LIMIT ?1",
            [limit],
        )
        .await?;
    all(rows).await
}

/// An MLS group as the panel lists it: counts and epochs, never names of members' messages or ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupRow {
    /// Server id.
    pub id: i64,
    /// The name members keep on the server, if any.
    pub name: Option<String>,
    /// Current epoch.
    pub epoch: i64,
    /// Member devices.
    pub member_count: i64,
    /// Stored group messages.
    pub message_count: i64,
    /// Creator.
    pub created_by: i64,
    /// Created at (ms).
    pub created_at: i64,
    /// Last message or commit (ms).
    pub last_activity_at: Option<i64>,
}

/// MLS groups, newest first, below id `before` when given, at most `limit`.
pub async fn groups_page(conn: &Conn, before: Option<i64>, limit: i64) -> Result<Vec<GroupRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT g.id, g.name, g.epoch, g.created_by, g.created_at, g.last_activity_at, \
               (SELECT COUNT(*) FROM mls_member m WHERE m.group_id = g.id) AS member_count, \
               (SELECT COUNT(*) FROM mls_message x WHERE x.group_id = g.id) AS message_count \
             FROM mls_group g WHERE g.id < ?1 ORDER BY g.id DESC LIMIT ?2",
            (before.unwrap_or(i64::MAX), limit),
        )
        .await?;
    all(rows).await
}

/// Bans (`true`, also revoking every token, so an unban revives none) or unbans a live account; returns
/// whether the account exists.
pub async fn set_banned(conn: &Conn, user_id: i64, banned: bool) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE user SET is_banned = ?2, token_version = token_version + ?2 WHERE id = ?1 AND is_deleted = 0",
            (user_id, i64::from(banned)),
        )
        .await?;
    Ok(changed > 0)
}

/// Revokes every token of a live account (bumps the token version); returns whether the account exists.
pub async fn revoke_tokens(conn: &Conn, user_id: i64) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute("UPDATE user SET token_version = token_version + 1 WHERE id = ?1 AND is_deleted = 0", [user_id])
        .await?;
    Ok(changed > 0)
}

/// Whether `user_id` is a live operator.
pub async fn is_operator(conn: &Conn, user_id: i64) -> Result<bool, libsql::Error> {
    exists(conn.query("SELECT 1 FROM user WHERE id = ?1 AND is_admin = 1 AND is_deleted = 0", [user_id]).await?).await
}
