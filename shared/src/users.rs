//! User rows and the queries every function shares.

use libsql::{Connection, Row};

use crate::privacy::{AvatarVisibility, PhoneVisibility, Privacy};

/// Avatar frames of API.md §10.1: id, original name, colour hint.
pub const AVATAR_FRAMES: [(&str, &str, &str); 4] = [
    ("none", "Без рамки", "#000000"),
    ("fire", "Огненная", "#FF4500"),
    ("rainbow", "Радужная", "#FF0000"),
    ("purple", "Фиолетовая", "#800080"),
];

/// Preset avatar ids of API.md §10.2.
pub const PRESET_AVATAR_IDS: [&str; 12] = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"];

/// Columns of [`UserRow`], in order, for `SELECT`s.
pub const USER_COLUMNS: &str = "id, phone, username, first_name, last_name, public_key, avatar_key, \
    avatar_preset, avatar_frame, bio, birthdate, last_seen, avatar_visibility, avatar_visibility_exceptions, \
    show_read_receipts, show_last_seen, show_online_status, phone_visibility, is_deleted";

/// A user as stored (without secrets).
#[derive(Debug, Clone)]
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

impl UserRow {
    /// Maps a row selected with [`USER_COLUMNS`].
    pub fn from_row(row: &Row) -> Result<Self, libsql::Error> {
        let exceptions: String = row.get(13)?;
        Ok(Self {
            id: row.get(0)?,
            phone: row.get(1)?,
            username: row.get(2)?,
            first_name: row.get(3)?,
            last_name: row.get(4)?,
            public_key: row.get(5)?,
            avatar_key: row.get(6)?,
            avatar_preset: row.get(7)?,
            avatar_frame: row.get(8)?,
            bio: row.get(9)?,
            birthdate: row.get(10)?,
            last_seen: row.get(11)?,
            privacy: Privacy {
                avatar_visibility: AvatarVisibility::parse(&row.get::<String>(12)?).unwrap_or(AvatarVisibility::All),
                avatar_visibility_exceptions: serde_json::from_str(&exceptions).unwrap_or_default(),
                show_read_receipts: row.get(14)?,
                show_last_seen: row.get(15)?,
                show_online_status: row.get(16)?,
                phone_visibility: PhoneVisibility::parse(&row.get::<String>(17)?).unwrap_or(PhoneVisibility::Nobody),
            },
            is_deleted: row.get(18)?,
        })
    }
}

/// Collects every row of a `SELECT USER_COLUMNS ...` query.
pub async fn query_users(
    conn: &Connection,
    sql: &str,
    params: impl libsql::params::IntoParams,
) -> Result<Vec<UserRow>, libsql::Error> {
    let mut rows = conn.query(sql, params).await?;
    let mut users = Vec::new();
    while let Some(row) = rows.next().await? {
        users.push(UserRow::from_row(&row)?);
    }
    Ok(users)
}

/// Finds a user by id, deleted or not.
pub async fn find(conn: &Connection, id: i64) -> Result<Option<UserRow>, libsql::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM user WHERE id = ?1");
    Ok(query_users(conn, &sql, [id]).await?.pop())
}

/// The lower-cased text `GET /users/search` matches: username, first name, last name and "first last".
pub fn search_text(username: Option<&str>, first_name: Option<&str>, last_name: Option<&str>) -> String {
    let (first, last) = (first_name.unwrap_or_default(), last_name.unwrap_or_default());
    format!("{}\n{first}\n{last}\n{first} {last}", username.unwrap_or_default()).to_lowercase()
}

/// Username rules of API.md §4.1: 5–32 of `[A-Za-z0-9_]`, starting with a letter.
pub fn valid_username(name: &str) -> bool {
    let mut chars = name.chars();
    (5..=32).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Keeps only the digits of a phone number; `None` unless 7–15 digits remain.
pub fn normalize_phone(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    (7..=15).contains(&digits.len()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        assert!(valid_username("alice"));
        assert!(valid_username("Bob_2024"));
        assert!(!valid_username("abcd"), "too short");
        assert!(!valid_username(&"a".repeat(33)), "too long");
        assert!(!valid_username("12345"), "must start with a letter");
        assert!(!valid_username("_alice"));
        assert!(!valid_username("ali ce"));
        assert!(!valid_username("алиса"));
    }

    #[test]
    fn phones_keep_their_digits() {
        assert_eq!(normalize_phone("+7 (999) 123-45-67").as_deref(), Some("79991234567"));
        assert_eq!(normalize_phone("123456"), None);
        assert_eq!(normalize_phone("1234567890123456"), None);
        assert_eq!(normalize_phone(""), None);
    }
}
