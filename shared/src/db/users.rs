//! The `user` table: profiles, privacy settings, credentials and session checks.

use libsql::Connection;
use serde::Deserialize;

use crate::db::{all, exists, first, id_list, int_bool, value};

/// Columns of [`UserRow`], for the function crates' remaining inline `SELECT`s; the statements here spell
/// them out.
pub const USER_COLUMNS: &str = "id, phone, username, first_name, last_name, public_key, avatar_key, \
    avatar_preset, avatar_frame, bio, birthdate, last_seen, avatar_visibility, avatar_visibility_exceptions, \
    show_read_receipts, show_last_seen, show_online_status, phone_visibility, is_deleted";

/// Who sees the avatar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvatarVisibility {
    /// Everyone.
    All,
    /// Contacts of the owner.
    Contacts,
    /// No one.
    Nobody,
    /// Everyone except the listed ids.
    Except,
}

impl AvatarVisibility {
    /// Parses the stored / wire value.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "all" => Self::All,
            "contacts" => Self::Contacts,
            "nobody" => Self::Nobody,
            "except" => Self::Except,
            _ => return None,
        })
    }
    /// The stored / wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Contacts => "contacts",
            Self::Nobody => "nobody",
            Self::Except => "except",
        }
    }
}

/// Who sees the phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneVisibility {
    /// Everyone.
    All,
    /// Contacts of the owner.
    Contacts,
    /// No one (default).
    Nobody,
}

impl PhoneVisibility {
    /// Parses the stored / wire value.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "all" => Self::All,
            "contacts" => Self::Contacts,
            "nobody" => Self::Nobody,
            _ => return None,
        })
    }
    /// The stored / wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Contacts => "contacts",
            Self::Nobody => "nobody",
        }
    }
}

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
    /// Frame id.
    pub avatar_frame: Option<String>,
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
            avatar_frame: c.avatar_frame,
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

/// The password check of a login.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    /// User id.
    pub id: i64,
    /// bcrypt hash (`None` for a deleted account).
    pub password_hash: Option<String>,
    /// Current token version.
    pub token_version: i64,
    /// Banned by an operator.
    #[serde(deserialize_with = "int_bool")]
    pub is_banned: bool,
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
pub async fn find(conn: &Connection, id: i64) -> Result<Option<UserRow>, libsql::Error> {
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
pub async fn by_ids(conn: &Connection, ids: &[i64]) -> Result<Vec<UserRow>, libsql::Error> {
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
pub async fn list_page(
    conn: &Connection,
    after_id: i64,
    viewer: i64,
    limit: i64,
) -> Result<Vec<UserRow>, libsql::Error> {
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
/// lower-cased; `instr` matches literally, so `%` and `_` are ordinary characters).
pub async fn search(conn: &Connection, viewer: i64, needle: &str) -> Result<Vec<UserRow>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, phone, username, first_name, last_name, public_key, avatar_key, avatar_preset, avatar_frame, \
             bio, birthdate, last_seen, avatar_visibility, avatar_visibility_exceptions, show_read_receipts, \
             show_last_seen, show_online_status, phone_visibility, is_deleted FROM user \
             WHERE is_deleted = 0 AND id != ?1 AND instr(search_text, ?2) > 0 ORDER BY id LIMIT 20",
            (viewer, needle),
        )
        .await?;
    all(rows).await
}

/// Whether a session is still valid: the user exists, is neither deleted nor banned, has token version
/// `version`, and still has device `device_id`.
pub async fn session_valid(
    conn: &Connection,
    user_id: i64,
    device_id: &str,
    version: i64,
) -> Result<bool, libsql::Error> {
    let rows = conn
        .query(
            "SELECT 1 FROM user u JOIN device d ON d.user_id = u.id \
             WHERE u.id = ?1 AND d.id = ?2 AND u.is_deleted = 0 AND u.is_banned = 0 AND u.token_version = ?3",
            (user_id, device_id, version),
        )
        .await?;
    exists(rows).await
}

/// Whether both users show read receipts (receipts are reciprocal, API.md §4.3).
pub async fn both_show_read_receipts(conn: &Connection, a: i64, b: i64) -> Result<bool, libsql::Error> {
    let rows = conn.query("SELECT COUNT(*) FROM user WHERE id IN (?1, ?2) AND show_read_receipts = 1", (a, b)).await?;
    Ok(value::<i64>(rows).await?.unwrap_or(0) == 2)
}

/// Records when the user's last connection went away.
pub async fn set_last_seen(conn: &Connection, user_id: i64, at_ms: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE user SET last_seen = ?2 WHERE id = ?1", (user_id, at_ms)).await?;
    Ok(())
}

/// Whether `id` is a live (not deleted) account.
pub async fn exists_live(conn: &Connection, id: i64) -> Result<bool, libsql::Error> {
    exists(conn.query("SELECT 1 FROM user WHERE id = ?1 AND is_deleted = 0", [id]).await?).await
}

/// Whether a phone number (digits only) is registered.
pub async fn phone_taken(conn: &Connection, phone: &str) -> Result<bool, libsql::Error> {
    exists(conn.query("SELECT 1 FROM user WHERE phone = ?1", [phone]).await?).await
}

/// Whether another user than `except_id` holds the lower-cased username `username_lower`.
pub async fn username_taken(conn: &Connection, username_lower: &str, except_id: i64) -> Result<bool, libsql::Error> {
    let rows =
        conn.query("SELECT 1 FROM user WHERE username_lower = ?1 AND id != ?2", (username_lower, except_id)).await?;
    exists(rows).await
}

/// The login check of a live account by phone (digits only).
pub async fn credentials_by_phone(conn: &Connection, phone: &str) -> Result<Option<Credentials>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, password_hash, token_version, is_banned FROM user WHERE phone = ?1 AND is_deleted = 0",
            [phone],
        )
        .await?;
    first(rows).await
}

/// The login check of a live account by lower-cased username.
pub async fn credentials_by_username(
    conn: &Connection,
    username_lower: &str,
) -> Result<Option<Credentials>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, password_hash, token_version, is_banned FROM user WHERE username_lower = ?1 AND is_deleted = 0",
            [username_lower],
        )
        .await?;
    first(rows).await
}

/// The stored password hash of a user (`None` if the user or the hash is missing).
pub async fn password_hash(conn: &Connection, id: i64) -> Result<Option<String>, libsql::Error> {
    Ok(value::<Option<String>>(conn.query("SELECT password_hash FROM user WHERE id = ?1", [id]).await?)
        .await?
        .flatten())
}

/// Stores a new password hash and bumps the token version (revoking every token); returns the new version,
/// `None` if the user is gone.
pub async fn set_password(conn: &Connection, id: i64, hash: &str) -> Result<Option<i64>, libsql::Error> {
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
pub async fn insert(conn: &Connection, new: NewUser<'_>) -> Result<i64, libsql::Error> {
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
pub async fn set_username(conn: &Connection, id: i64, username: &str, search_text: &str) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE user SET username = ?2, username_lower = ?3, search_text = ?4 WHERE id = ?1",
        (id, username, username.to_lowercase(), search_text),
    )
    .await?;
    Ok(())
}

/// The S3 key of the user's uploaded avatar, if any.
pub async fn avatar_key(conn: &Connection, id: i64) -> Result<Option<String>, libsql::Error> {
    Ok(value::<Option<String>>(conn.query("SELECT avatar_key FROM user WHERE id = ?1", [id]).await?).await?.flatten())
}

/// Sets the avatar: an uploaded object key or a preset id (the other one is usually `None`).
pub async fn set_avatar(
    conn: &Connection,
    id: i64,
    key: Option<&str>,
    preset: Option<&str>,
) -> Result<(), libsql::Error> {
    conn.execute("UPDATE user SET avatar_key = ?2, avatar_preset = ?3 WHERE id = ?1", (id, key, preset)).await?;
    Ok(())
}

/// The legacy public key of a live account (`Ok(None)` for an unknown or deleted user, `Some(None)` when
/// the user has none).
pub async fn public_key(conn: &Connection, id: i64) -> Result<Option<Option<String>>, libsql::Error> {
    value(conn.query("SELECT public_key FROM user WHERE id = ?1 AND is_deleted = 0", [id]).await?).await
}

/// Turns an account into the deleted stub: every personal field cleared, privacy reset, token version
/// bumped. Run inside the account-deletion transaction.
pub async fn anonymize(conn: &Connection, id: i64) -> Result<(), libsql::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(phone_taken(&conn, "79990000001").await.unwrap());
        let creds = credentials_by_phone(&conn, "79990000001").await.unwrap().unwrap();
        assert_eq!((creds.id, creds.password_hash.as_deref(), creds.is_banned), (id, Some("h"), false));
        assert_eq!(set_password(&conn, id, "h2").await.unwrap(), Some(1));
        anonymize(&conn, id).await.unwrap();
        assert!(find(&conn, id).await.unwrap().unwrap().is_deleted);
        assert!(!exists_live(&conn, id).await.unwrap());
    }
}
