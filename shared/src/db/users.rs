//! The `user` table: profiles, privacy settings, credentials and session checks.

use super::Conn;
use crate::db::{
    admin, all, bulk, connections, contacts, devices, exists, first, id_list, int_bool, messages, objects, themes,
    value,
};
use serde::Deserialize;
use wire::AvatarFrameId;
pub use wire::{AvatarVisibility, PhoneVisibility};

/// A user's privacy settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privacy {
    /// Avatar visibility.
    pub avatar_visibility: AvatarVisibility,
    /// Ids excluded with `except`.
    pub avatar_visibility_exceptions: Vec<i64>,
    /// Reciprocal read receipts.
    pub show_read_receipts: bool,
    /// `last_seen` visible to others.
    pub show_last_seen: bool,
    /// `is_online` visible to others.
    pub show_online_status: bool,
    /// Phone visibility.
    pub phone_visibility: PhoneVisibility,
}

/// A user as stored (without secrets).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "UserColumns")]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Digits only.
    pub phone: Option<String>,
    /// As typed.
    pub username: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Legacy public key.
    pub public_key: Option<String>,
    /// S3 key of an uploaded avatar.
    pub avatar_key: Option<String>,
    /// Preset avatar id.
    pub avatar_preset: Option<String>,
    /// Frame id (never `none`: no frame is null).
    pub avatar_frame: Option<AvatarFrameId>,
    /// Bio.
    pub bio: Option<String>,
    /// `YYYY-MM-DD`.
    pub birthdate: Option<String>,
    /// Epoch ms of the last disconnect.
    pub last_seen: Option<i64>,
    /// Privacy settings.
    pub privacy: Privacy,
    /// Deleted account (a stub).
    pub is_deleted: bool,
}

/// The columns of [`UserRow`] as stored, by name.
#[derive(Deserialize)]
struct UserColumns {
    id: i64,
    phone: Option<String>,
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    public_key: Option<String>,
    avatar_key: Option<String>,
    avatar_preset: Option<String>,
    avatar_frame: Option<String>,
    bio: Option<String>,
    birthdate: Option<String>,
    last_seen: Option<i64>,
    avatar_visibility: String,
    /// JSON array of user ids.
    avatar_visibility_exceptions: String,
    #[serde(deserialize_with = "int_bool")]
    show_read_receipts: bool,
    #[serde(deserialize_with = "int_bool")]
    show_last_seen: bool,
    #[serde(deserialize_with = "int_bool")]
    show_online_status: bool,
    phone_visibility: String,
    #[serde(deserialize_with = "int_bool")]
    is_deleted: bool,
}

impl From<UserColumns> for UserRow {
    fn from(c: UserColumns) -> Self {
        Self {
            id: c.id,
            phone: c.phone,
            username: c.username,
            first_name: c.first_name,
            last_name: c.last_name,
            public_key: c.public_key,
            avatar_key: c.avatar_key,
            avatar_preset: c.avatar_preset,
            avatar_frame: c.avatar_frame.as_deref().and_then(AvatarFrameId::parse),
            bio: c.bio,
            birthdate: c.birthdate,
            last_seen: c.last_seen,
            privacy: Privacy {
                avatar_visibility: AvatarVisibility::parse(&c.avatar_visibility).unwrap_or(AvatarVisibility::All),
                avatar_visibility_exceptions: serde_json::from_str(&c.avatar_visibility_exceptions).unwrap_or_default(),
                show_read_receipts: c.show_read_receipts,
                show_last_seen: c.show_last_seen,
                show_online_status: c.show_online_status,
                phone_visibility: PhoneVisibility::parse(&c.phone_visibility).unwrap_or(PhoneVisibility::Nobody),
            },
            is_deleted: c.is_deleted,
        }
    }
}

/// A new account (`POST /auth/register`).
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    /// Digits only.
    pub phone: &'a str,
    /// First name.
    pub first_name: &'a str,
    /// Last name.
    pub last_name: &'a str,
    /// See [`crate::users::search_text`].
    pub search_text: &'a str,
    /// bcrypt hash.
    pub password_hash: &'a str,
    /// Legacy public key.
    pub public_key: Option<&'a str>,
    /// Epoch ms.
    pub created_at: i64,
}

/// Finds a user by id, deleted or not.
pub async fn find(conn: &Conn, id: i64) -> Result<Option<UserRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, phone, username, first_name, last_name, public_key, avatar_key, avatar_preset, avatar_frame, \
             bio, birthdate, last_seen, avatar_visibility, avatar_visibility_exceptions, show_read_receipts, \
             show_last_seen, show_online_status, phone_visibility, is_deleted FROM user WHERE id = ?1",
            [id],
        )
        .await?;
    first(rows).await
}

/// The users among `ids` (deleted or not), in id order.
pub async fn by_ids(conn: &Conn, ids: &[i64]) -> Result<Vec<UserRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, phone, username, first_name, last_name, public_key, avatar_key, avatar_preset, avatar_frame, \
             bio, birthdate, last_seen, avatar_visibility, avatar_visibility_exceptions, show_read_receipts, \
             show_last_seen, show_online_status, phone_visibility, is_deleted FROM user \
             WHERE id IN (SELECT value FROM json_each(?1))",
            [id_list(ids)],
        )
        .await?;
    all(rows).await
}

/// `GET /users`: live users with an id above `after_id`, except `viewer`, ascending, at most `limit`
/// (pages through `user_live_id`).
pub async fn list_page(conn: &Conn, after_id: i64, viewer: i64, limit: i64) -> Result<Vec<UserRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, phone, username, first_name, last_name, public_key, avatar_key, avatar_preset, avatar_frame, \
             bio, birthdate, last_seen, avatar_visibility, avatar_visibility_exceptions, show_read_receipts, \
             show_last_seen, show_online_status, phone_visibility, is_deleted FROM user \
             WHERE is_deleted = 0 AND id > ?1 AND id != ?2 ORDER BY id LIMIT ?3",
            (after_id, viewer, limit),
        )
        .await?;
    all(rows).await
}

/// `GET /users/search`: up to 20 live users except `viewer` whose search text contains `needle` (already
/// lower-cased; `instr` matches literally, so `%` and `_` are ordinary characters). A needle of three or more
/// characters is looked up in the trigram index `user_search` (a phrase of the needle, quoted, matches every
/// text holding it as a substring) and each candidate checked with `instr`; one of two characters, which has
/// no trigram, in `user_bigram`. Both read their index in id order and stop at the 20th match.
pub async fn search(conn: &Conn, viewer: i64, needle: &str) -> Result<Vec<UserRow>, libsql::Error> {
    // No field of the search text holds a control character (names refuse them, usernames are `[a-z0-9_]`; the
    // fields are joined by `\n`, which is no character to search for), and FTS5 reads its query only up to a
    // NUL, which leaves the phrase unterminated: a syntax error, not "no match".
    if needle.chars().any(char::is_control) {
        return Ok(Vec::new());
    }
    let rows = match needle.chars().count() {
        3.. => {
            let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
            conn.query(SEARCH_INDEXED, (viewer, needle, phrase)).await?
        }
        2 => conn.query(SEARCH_BIGRAM, (viewer, needle)).await?,
        _ => conn.query(SEARCH_SCAN, (viewer, needle)).await?,
    };
    all(rows).await
}

/// [`search`] of three characters or more: `?1` the viewer, `?2` the needle, `?3` the needle as an FTS5 phrase.
/// The index is read in rowid order (FTS5 returns its matches so), so the query stops at the 20th match
/// however common the needle is, without sorting every match.
const SEARCH_INDEXED: &str = "SELECT u.id, u.phone, u.username, u.first_name, u.last_name, u.public_key, u.avatar_key, \
     u.avatar_preset, u.avatar_frame, u.bio, u.birthdate, u.last_seen, u.avatar_visibility, \
     u.avatar_visibility_exceptions, u.show_read_receipts, u.show_last_seen, u.show_online_status, \
     u.phone_visibility, u.is_deleted FROM user_search s JOIN user u ON u.id = s.rowid \
     WHERE s.user_search MATCH ?3 AND u.is_deleted = 0 AND u.id != ?1 AND instr(u.search_text, ?2) > 0 \
     ORDER BY s.rowid LIMIT 20";

/// [`search`] of two characters (the API answers shorter ones with no result, without asking): the accounts
/// with that bigram, in id order.
const SEARCH_BIGRAM: &str = "SELECT u.id, u.phone, u.username, u.first_name, u.last_name, u.public_key, u.avatar_key, \
     u.avatar_preset, u.avatar_frame, u.bio, u.birthdate, u.last_seen, u.avatar_visibility, \
     u.avatar_visibility_exceptions, u.show_read_receipts, u.show_last_seen, u.show_online_status, \
     u.phone_visibility, u.is_deleted FROM user_bigram b JOIN user u ON u.id = b.user_id \
     WHERE b.bigram = ?2 AND u.is_deleted = 0 AND u.id != ?1 AND instr(u.search_text, ?2) > 0 \
     ORDER BY b.user_id LIMIT 20";

/// [`search`] of one character, which the API never asks: a scan, kept so the function answers any needle.
const SEARCH_SCAN: &str = "SELECT id, phone, username, first_name, last_name, public_key, avatar_key, avatar_preset, \
     avatar_frame, bio, birthdate, last_seen, avatar_visibility, avatar_visibility_exceptions, show_read_receipts, \
     show_last_seen, show_online_status, phone_visibility, is_deleted FROM user \
     WHERE is_deleted = 0 AND id != ?1 AND instr(search_text, ?2) > 0 ORDER BY id LIMIT 20";

/// Whether a session is still valid: the user exists, is neither deleted nor banned, has token version
/// `version`, and still has device `device_id`.
pub async fn session_valid(conn: &Conn, user_id: i64, device_id: &str, version: i64) -> Result<bool, libsql::Error> {
    let rows = conn
        .query(
            "SELECT 1 FROM user u JOIN device d ON d.user_id = u.id \
             WHERE u.id = ?1 AND d.id = ?2 AND u.is_deleted = 0 AND u.is_banned = 0 AND u.token_version = ?3",
            (user_id, device_id, version),
        )
        .await?;
    exists(rows).await
}

/// The receiver of a message from `sender`: `None` when `receiver` is no account or a deleted one, else
/// whether both show read receipts (API.md §4.3). One statement for the two questions a send asks.
pub async fn receiver_of(conn: &Conn, sender: i64, receiver: i64) -> Result<Option<bool>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT r.show_read_receipts = 1 AND EXISTS (SELECT 1 FROM user s WHERE s.id = ?1 AND s.show_read_receipts = 1) \
             FROM user r WHERE r.id = ?2 AND r.is_deleted = 0",
            (sender, receiver),
        )
        .await?;
    Ok(value::<i64>(rows).await?.map(|both| both != 0))
}

/// Whether both users show read receipts (receipts are reciprocal, API.md §4.3).
pub async fn both_show_read_receipts(conn: &Conn, a: i64, b: i64) -> Result<bool, libsql::Error> {
    let rows = conn.query("SELECT COUNT(*) FROM user WHERE id IN (?1, ?2) AND show_read_receipts = 1", (a, b)).await?;
    Ok(value::<i64>(rows).await?.unwrap_or(0) == 2)
}

/// Records when the user's last connection went away.
pub async fn set_last_seen(conn: &Conn, user_id: i64, at_ms: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE user SET last_seen = ?2 WHERE id = ?1", (user_id, at_ms)).await?;
    Ok(())
}

/// Whether another user than `except_id` holds the lower-cased username `username_lower`.
pub async fn username_taken(conn: &Conn, username_lower: &str, except_id: i64) -> Result<bool, libsql::Error> {
    let rows =
        conn.query("SELECT 1 FROM user WHERE username_lower = ?1 AND id != ?2", (username_lower, except_id)).await?;
    exists(rows).await
}

/// The stored password hash of a user (`None` if the user or the hash is missing).
pub async fn password_hash(conn: &Conn, id: i64) -> Result<Option<String>, libsql::Error> {
    Ok(value::<Option<String>>(conn.query("SELECT password_hash FROM user WHERE id = ?1", [id]).await?)
        .await?
        .flatten())
}

/// Stores a new password hash and bumps the token version (revoking every token); returns the new version,
/// `None` if the user is gone.
pub async fn set_password(conn: &Conn, id: i64, hash: &str) -> Result<Option<i64>, libsql::Error> {
    let rows = conn
        .query(
            "UPDATE user SET password_hash = ?2, token_version = token_version + 1 WHERE id = ?1 RETURNING token_version",
            (id, hash),
        )
        .await?;
    value(rows).await
}

/// Inserts an account and returns its id. A taken phone fails with a unique-constraint error, which
/// embedded libSQL reports when the statement steps, i.e. from this call.
pub async fn insert(conn: &Conn, new: NewUser<'_>) -> Result<i64, libsql::Error> {
    let rows = conn
        .query(
            "INSERT INTO user (phone, first_name, last_name, search_text, password_hash, public_key, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            (
                new.phone,
                new.first_name,
                new.last_name,
                new.search_text,
                new.password_hash,
                new.public_key,
                new.created_at,
            ),
        )
        .await?;
    value(rows).await?.ok_or(libsql::Error::QueryReturnedNoRows)
}

/// Sets the username (as typed and lower-cased) and the search text; a taken name fails with a
/// unique-constraint error.
pub async fn set_username(conn: &Conn, id: i64, username: &str, search_text: &str) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE user SET username = ?2, username_lower = ?3, search_text = ?4 WHERE id = ?1",
        (id, username, username.to_lowercase(), search_text),
    )
    .await?;
    Ok(())
}

/// The S3 key of the user's uploaded avatar, if any.
pub async fn avatar_key(conn: &Conn, id: i64) -> Result<Option<String>, libsql::Error> {
    Ok(value::<Option<String>>(conn.query("SELECT avatar_key FROM user WHERE id = ?1", [id]).await?).await?.flatten())
}

/// Sets the avatar: an uploaded object key or a preset id (the other one is usually `None`).
pub async fn set_avatar(conn: &Conn, id: i64, key: Option<&str>, preset: Option<&str>) -> Result<(), libsql::Error> {
    conn.execute("UPDATE user SET avatar_key = ?2, avatar_preset = ?3 WHERE id = ?1", (id, key, preset)).await?;
    Ok(())
}

/// The legacy public key of a live account (`Ok(None)` for an unknown or deleted user, `Some(None)` when
/// the user has none).
pub async fn public_key(conn: &Conn, id: i64) -> Result<Option<Option<String>>, libsql::Error> {
    value(conn.query("SELECT public_key FROM user WHERE id = ?1 AND is_deleted = 0", [id]).await?).await
}

/// Turns an account into the deleted stub: every personal field cleared, privacy reset, token version
/// bumped. Run inside the account-deletion transaction.
pub async fn anonymize(conn: &Conn, id: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE user SET phone = NULL, username = NULL, username_lower = NULL, first_name = NULL, last_name = NULL, \
         search_text = NULL, password_hash = NULL, public_key = NULL, avatar_key = NULL, avatar_preset = NULL, \
         avatar_frame = NULL, bio = NULL, birthdate = NULL, last_seen = NULL, avatar_visibility = 'all', \
         avatar_visibility_exceptions = '[]', show_read_receipts = 1, show_last_seen = 1, show_online_status = 1, \
         phone_visibility = 'nobody', is_admin = 0, is_deleted = 1, token_version = token_version + 1 WHERE id = ?1",
        [id],
    )
    .await?;
    Ok(())
}

/// Whether `id` is an account that is not deleted.
pub async fn is_live(conn: &Conn, id: i64) -> Result<bool, libsql::Error> {
    exists(conn.query("SELECT 1 FROM user WHERE id = ?1 AND is_deleted = 0", [id]).await?).await
}

/// Whether any account (deleted ones too, whose phone is null) has the phone `digits`.
pub async fn phone_exists(conn: &Conn, digits: &str) -> Result<bool, libsql::Error> {
    exists(conn.query("SELECT 1 FROM user WHERE phone = ?1", [digits]).await?).await
}

/// What login needs of a live account.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginRecord {
    /// Id.
    pub id: i64,
    /// bcrypt hash (null only for deleted accounts).
    pub password_hash: Option<String>,
    /// Current token version.
    pub token_version: i64,
    /// Banned accounts cannot log in.
    #[serde(deserialize_with = "int_bool")]
    pub is_banned: bool,
}

/// The live account with phone `digits`.
pub async fn find_login_by_phone(conn: &Conn, digits: &str) -> Result<Option<LoginRecord>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, password_hash, token_version, is_banned FROM user WHERE phone = ?1 AND is_deleted = 0",
            [digits],
        )
        .await?;
    first(rows).await
}

/// The live account whose lower-cased username is `username_lower`.
pub async fn find_login_by_username(conn: &Conn, username_lower: &str) -> Result<Option<LoginRecord>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, password_hash, token_version, is_banned FROM user WHERE username_lower = ?1 AND is_deleted = 0",
            [username_lower],
        )
        .await?;
    first(rows).await
}

/// Sets (or with `None` clears) the bio.
pub async fn set_bio(conn: &Conn, id: i64, bio: Option<&str>) -> Result<(), libsql::Error> {
    conn.execute("UPDATE user SET bio = ?2 WHERE id = ?1", (id, bio)).await?;
    Ok(())
}

/// Sets (or with `None` clears) the birthdate (`YYYY-MM-DD`).
pub async fn set_birthdate(conn: &Conn, id: i64, birthdate: Option<&str>) -> Result<(), libsql::Error> {
    conn.execute("UPDATE user SET birthdate = ?2 WHERE id = ?1", (id, birthdate)).await?;
    Ok(())
}

/// Sets (or with `None` clears) the avatar frame id.
pub async fn set_avatar_frame(conn: &Conn, id: i64, frame: Option<AvatarFrameId>) -> Result<(), libsql::Error> {
    conn.execute("UPDATE user SET avatar_frame = ?2 WHERE id = ?1", (id, frame.map(AvatarFrameId::as_str))).await?;
    Ok(())
}

/// The privacy settings to change; `None` keeps a setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivacyUpdate {
    /// Who sees the avatar.
    pub avatar_visibility: Option<AvatarVisibility>,
    /// Who sees the phone number.
    pub phone_visibility: Option<PhoneVisibility>,
    /// The avatar exceptions (sorted, deduplicated ids; empty clears), stored as a JSON array.
    pub avatar_visibility_exceptions: Option<Vec<i64>>,
    /// Reciprocal read receipts.
    pub show_read_receipts: Option<bool>,
    /// `last_seen` visible to others.
    pub show_last_seen: Option<bool>,
    /// `is_online` visible to others.
    pub show_online_status: Option<bool>,
}

impl PrivacyUpdate {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Applies the given privacy settings of `id`, one statement per setting; run it in one write transaction.
pub async fn update_privacy(conn: &Conn, id: i64, update: &PrivacyUpdate) -> Result<(), libsql::Error> {
    if let Some(v) = update.avatar_visibility {
        conn.execute("UPDATE user SET avatar_visibility = ?2 WHERE id = ?1", (id, v.as_str())).await?;
    }
    if let Some(v) = update.phone_visibility {
        conn.execute("UPDATE user SET phone_visibility = ?2 WHERE id = ?1", (id, v.as_str())).await?;
    }
    if let Some(ids) = &update.avatar_visibility_exceptions {
        let json = serde_json::to_string(ids).unwrap_or_default();
        conn.execute("UPDATE user SET avatar_visibility_exceptions = ?2 WHERE id = ?1", (id, json)).await?;
    }
    if let Some(v) = update.show_read_receipts {
        conn.execute("UPDATE user SET show_read_receipts = ?2 WHERE id = ?1", (id, v)).await?;
    }
    if let Some(v) = update.show_last_seen {
        conn.execute("UPDATE user SET show_last_seen = ?2 WHERE id = ?1", (id, v)).await?;
    }
    if let Some(v) = update.show_online_status {
        conn.execute("UPDATE user SET show_online_status = ?2 WHERE id = ?1", (id, v)).await?;
    }
    Ok(())
}

/// What a deleted account leaves for the caller to clean up after the commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Keys of every object the user uploaded (now marked `deleted`, rows kept until S3 confirms).
    pub object_keys: Vec<String>,
    /// Ids of the user's open WebSocket connections (rows deleted; the gateway connections still open).
    pub connections: Vec<String>,
    /// Ids of the user's devices (deleted with their keys).
    pub devices: Vec<String>,
}

/// Deletes account `id` (API.md §5.9): devices and their keys, connections, themes, contact rows in both
/// directions, the chat list, every profile field and secret; the row stays as the `is_deleted` stub with a
/// bumped token version. Run it inside one write transaction. What can be many rows (the messages only this
/// user could still see, the media of the messages it sent, the envelopes of its devices) is queued as
/// bulk jobs in the same transaction, one per conversation and device, for [`crate::bulk`] to finish.
pub async fn delete_account(conn: &Conn, id: i64) -> Result<Deleted, libsql::Error> {
    let object_keys = objects::keys_of_owner(conn, id).await?;
    let connections = connections::ids_of_user(conn, id).await?;
    let devices = devices::ids_of_user(conn, id).await?;
    let now = crate::time::now_ms();
    for device in &devices {
        devices::delete_with_keys(conn, id, device, now).await?;
    }
    // Pending deletion: the rows stay (without an owner that exists) until S3 confirms.
    objects::mark_deleted_of_owner(conn, id).await?;
    connections::delete_of_user(conn, id).await?;
    devices::delete_of_user(conn, id).await?;
    themes::delete_of_user(conn, id).await?;
    contacts::delete_of_user(conn, id).await?;
    messages::delete_summaries_of_user(conn, id).await?;
    for peer in messages::correspondents(conn, id).await? {
        bulk::upsert_chat(conn, bulk::Kind::PurgeChat, id, peer, i64::MAX, now).await?;
    }
    admin::delete_sessions_of_user(conn, id).await?;
    anonymize(conn, id).await?;
    Ok(Deleted { object_keys, connections, devices })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, migrate};

    async fn conn() -> (tempfile::TempDir, crate::db::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&format!("file:{}", dir.path().join("u.db").display()), None).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn user_rows_map_by_column_name_with_privacy_settings() {
        let (_dir, db) = conn().await;
        let conn = db.conn().await.unwrap();
        let new = NewUser {
            phone: "79990000001",
            first_name: "Ann",
            last_name: "Lee",
            search_text: "ann lee",
            password_hash: "h",
            public_key: None,
            created_at: 1,
        };
        let id = insert(&conn, new).await.unwrap();
        conn.execute(
            "UPDATE user SET avatar_visibility = 'except', avatar_visibility_exceptions = '[7, 9]', \
             show_last_seen = 0, phone_visibility = 'contacts' WHERE id = ?1",
            [id],
        )
        .await
        .unwrap();
        let row = find(&conn, id).await.unwrap().unwrap();
        assert_eq!((row.id, row.phone.as_deref(), row.first_name.as_deref()), (id, Some("79990000001"), Some("Ann")));
        assert_eq!(row.privacy.avatar_visibility, AvatarVisibility::Except);
        assert_eq!(row.privacy.avatar_visibility_exceptions, vec![7, 9]);
        assert!(row.privacy.show_read_receipts && !row.privacy.show_last_seen);
        assert_eq!(row.privacy.phone_visibility, PhoneVisibility::Contacts);
        assert!(!row.is_deleted);
        assert!(find(&conn, id + 1).await.unwrap().is_none());
        assert_eq!(by_ids(&conn, &[id, id + 1]).await.unwrap().len(), 1);
        assert!(phone_exists(&conn, "79990000001").await.unwrap());
        let creds = find_login_by_phone(&conn, "79990000001").await.unwrap().unwrap();
        assert_eq!((creds.id, creds.password_hash.as_deref(), creds.is_banned), (id, Some("h"), false));
        assert_eq!(set_password(&conn, id, "h2").await.unwrap(), Some(1));
        anonymize(&conn, id).await.unwrap();
        assert!(find(&conn, id).await.unwrap().unwrap().is_deleted);
        assert!(!is_live(&conn, id).await.unwrap());
    }

    async fn database() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&format!("file:{}", dir.path().join("t.db").display()), None).await.unwrap();
        migrate(&db).await.unwrap();
        (dir, db)
    }

    fn new_user<'a>(phone: &'a str, first_name: &'a str) -> NewUser<'a> {
        NewUser {
            phone,
            first_name,
            last_name: "Lovelace",
            search_text: "\nada\nlovelace\nada lovelace",
            password_hash: "hash",
            public_key: Some("key"),
            created_at: 1,
        }
    }

    #[tokio::test]
    async fn a_receiver_is_a_live_account_and_receipts_need_both() {
        let (_dir, db) = database().await;
        let conn = db.conn().await.unwrap();
        let me = insert(&conn, new_user("15550000001", "Me")).await.unwrap();
        let ada = insert(&conn, new_user("15550000002", "Ada")).await.unwrap();
        assert_eq!(receiver_of(&conn, me, ada).await.unwrap(), Some(true));
        assert_eq!(receiver_of(&conn, me, ada + 1).await.unwrap(), None, "no such account");
        let hidden = PrivacyUpdate { show_read_receipts: Some(false), ..PrivacyUpdate::default() };
        update_privacy(&conn, me, &hidden).await.unwrap();
        assert_eq!(receiver_of(&conn, me, ada).await.unwrap(), Some(false), "the sender hides them");
        assert_eq!(receiver_of(&conn, ada, me).await.unwrap(), Some(false), "the receiver hides them");
        assert_eq!(
            receiver_of(&conn, me, ada).await.unwrap(),
            Some(both_show_read_receipts(&conn, me, ada).await.unwrap())
        );
        anonymize(&conn, ada).await.unwrap();
        assert_eq!(receiver_of(&conn, me, ada).await.unwrap(), None, "deleted");
    }

    #[tokio::test]
    async fn rows_mapped_by_name_equal_the_shared_user_rows() {
        let (_dir, db) = database().await;
        let conn = db.conn().await.unwrap();
        let me = insert(&conn, new_user("15550000001", "Me")).await.unwrap();
        let ada = insert(&conn, new_user("15550000002", "Ada")).await.unwrap();
        let update = PrivacyUpdate {
            avatar_visibility: Some(AvatarVisibility::Except),
            avatar_visibility_exceptions: Some(vec![3, 17]),
            show_last_seen: Some(false),
            ..PrivacyUpdate::default()
        };
        update_privacy(&conn, ada, &update).await.unwrap();
        set_bio(&conn, ada, Some("bio")).await.unwrap();
        let shared_row = crate::db::users::find(&conn, ada).await.unwrap().unwrap();
        let listed = list_page(&conn, 0, me, 100).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(format!("{:?}", listed[0]), format!("{shared_row:?}"));
        assert_eq!(shared_row.privacy.avatar_visibility_exceptions, [3, 17]);
        assert!(!shared_row.privacy.show_last_seen && shared_row.privacy.show_online_status);
        let found = search(&conn, me, "lovelace").await.unwrap();
        assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), [ada]);
        assert!(search(&conn, me, "%").await.unwrap().is_empty(), "literal matching");
    }

    /// The ids `search` finds.
    async fn found(conn: &Conn, viewer: i64, needle: &str) -> Vec<i64> {
        search(conn, viewer, needle).await.unwrap().iter().map(|u| u.id).collect()
    }

    #[tokio::test]
    async fn search_follows_every_write_of_the_search_text_through_its_index() {
        let (_dir, db) = database().await;
        let conn = db.conn().await.unwrap();
        let me = insert(&conn, new_user("15550000001", "Me")).await.unwrap();
        let ada = insert(&conn, new_user("15550000002", "Ada")).await.unwrap();
        assert_eq!(found(&conn, me, "lovelace").await, [ada], "indexed on insert");
        assert_eq!(found(&conn, me, "lo").await, [ada], "two characters, through the bigrams");
        assert!(found(&conn, me, "lx").await.is_empty());
        assert!(found(&conn, me, "e\n").await.is_empty(), "the field separator is no searchable character");
        assert!(found(&conn, me, "ce\nada").await.is_empty(), "so nothing matches across fields");
        assert!(found(&conn, me, "lovelacex").await.is_empty());

        set_username(&conn, ada, "Count\"ess", "count\"ess\nada\nlovelace\nada lovelace").await.unwrap();
        assert_eq!(found(&conn, me, "nt\"es").await, [ada], "a quote in the needle is a literal character");
        assert_eq!(found(&conn, me, "count").await, [ada], "indexed again on rename");
        assert_eq!(found(&conn, me, "t\"").await, [ada], "bigrams of the new text");
        set_username(&conn, ada, "Byron", "byron\nada\nlovelace\nada lovelace").await.unwrap();
        assert!(found(&conn, me, "count").await.is_empty(), "the old text left the index");
        assert!(found(&conn, me, "t\"").await.is_empty(), "the old text's bigrams too");
        assert_eq!(found(&conn, me, "yr").await, [ada]);
        assert_eq!(found(&conn, me, "byron").await, [ada]);

        anonymize(&conn, ada).await.unwrap();
        assert!(found(&conn, me, "byron").await.is_empty(), "a deleted account is found by nothing");
        assert!(found(&conn, me, "yr").await.is_empty());
        assert_eq!(found(&conn, ada, "lovelace").await, [me]);
        conn.execute("DELETE FROM user WHERE id = ?1", [me]).await.unwrap();
        assert!(found(&conn, ada, "lovelace").await.is_empty(), "a removed row left the index");
        let rows = conn.query("SELECT count(*) FROM user_search WHERE user_search MATCH '\"lovelace\"'", ()).await;
        assert_eq!(
            value::<i64>(rows.unwrap()).await.unwrap(),
            Some(0),
            "the index holds no text of a deleted or removed account"
        );
        let rows = conn.query("SELECT count(*) FROM user_bigram WHERE user_id IN (?1, ?2)", (me, ada)).await;
        assert_eq!(value::<i64>(rows.unwrap()).await.unwrap(), Some(0), "nor any bigram of it");
    }

    /// The steps of `EXPLAIN QUERY PLAN` of `sql`.
    async fn plan(conn: &Conn, sql: &str, params: impl libsql::params::IntoParams) -> Vec<String> {
        #[derive(Deserialize)]
        struct Step {
            detail: String,
        }
        let rows = conn.query(&format!("EXPLAIN QUERY PLAN {sql}"), params).await.unwrap();
        all::<Step>(rows).await.unwrap().into_iter().map(|s| s.detail).collect()
    }

    #[tokio::test]
    async fn a_needle_with_a_control_character_matches_nothing_and_is_no_error() {
        let (_dir, db) = database().await;
        let conn = db.conn().await.unwrap();
        for needle in ["\u{11}\u{b9}\u{f5}`\0\u{f8}", "ab\0", "a\nb"] {
            assert!(search(&conn, 1, needle).await.unwrap().is_empty(), "{needle:?}");
        }
    }

    #[tokio::test]
    async fn a_search_of_two_characters_reads_one_bigram_in_id_order() {
        let (_dir, db) = database().await;
        let conn = db.conn().await.unwrap();
        let steps = plan(&conn, SEARCH_BIGRAM, (1, "lo")).await;
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(steps[0].starts_with("SEARCH b USING PRIMARY KEY (bigram=?)"), "{steps:?}");
        assert!(steps[1].starts_with("SEARCH u USING INTEGER PRIMARY KEY"), "{steps:?}");
    }

    #[tokio::test]
    async fn a_search_of_three_characters_or_more_reads_the_index_not_the_user_table() {
        let (_dir, db) = database().await;
        let conn = db.conn().await.unwrap();
        let steps = plan(&conn, SEARCH_INDEXED, (1, "lovelace", "\"lovelace\"")).await;
        // The index drives the query (`s`, user_search) and each match reads its account by id (`u`): no scan of
        // the user table and no sort.
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(steps[0].starts_with("SCAN s VIRTUAL TABLE INDEX"), "{steps:?}");
        assert!(steps[1].starts_with("SEARCH u USING INTEGER PRIMARY KEY"), "{steps:?}");
    }

    #[tokio::test]
    async fn phones_are_unique_and_logins_find_live_accounts_only() {
        let (_dir, db) = database().await;
        let conn = db.conn().await.unwrap();
        let id = insert(&conn, new_user("15550000003", "Ada")).await.unwrap();
        assert!(phone_exists(&conn, "15550000003").await.unwrap());
        let dup = insert(&conn, new_user("15550000003", "Bob")).await.unwrap_err();
        assert!(crate::error::is_unique_violation(&dup), "{dup}");
        set_username(&conn, id, "Ada_L", "ada_l").await.unwrap();
        assert!(username_taken(&conn, "ada_l", id + 1).await.unwrap());
        assert!(!username_taken(&conn, "ada_l", id).await.unwrap(), "the caller's own name");
        let login = find_login_by_username(&conn, "ada_l").await.unwrap().unwrap();
        assert_eq!((login.id, login.token_version, login.is_banned), (id, 0, false));
        assert_eq!(login.password_hash.as_deref(), Some("hash"));
        assert!(find_login_by_phone(&conn, "ada_l").await.unwrap().is_none(), "a username is not a phone");
        assert_eq!(set_password(&conn, id, "new").await.unwrap(), Some(1));
        assert_eq!(password_hash(&conn, id).await.unwrap().as_deref(), Some("new"));

        devices::insert(&conn, "d1", id, Some("Pixel"), 5).await.unwrap();
        assert!(devices::touch(&conn, "d1", id, None, 6).await.unwrap());
        assert!(!devices::touch(&conn, "d1", id + 1, None, 6).await.unwrap(), "another user's device");
        let deleted = delete_account(&conn, id).await.unwrap();
        assert_eq!(deleted.devices, ["d1"]);
        assert!(devices::ids_of_user(&conn, id).await.unwrap().is_empty());
        assert!(find_login_by_phone(&conn, "15550000003").await.unwrap().is_none());
        assert!(!phone_exists(&conn, "15550000003").await.unwrap(), "the phone is free again");
        let stub = crate::db::users::find(&conn, id).await.unwrap().unwrap();
        assert!(stub.is_deleted && stub.first_name.is_none());
    }
}
