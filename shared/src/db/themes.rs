//! The `theme` table (the theme rows themselves are still read by the themes function).

use super::Conn;
use crate::db::{all, first, value};
use serde::Deserialize;
use wire::themes::Brightness;

/// Deletes a user's theme; false if there was none.
pub async fn delete(conn: &Conn, id: i64, user_id: i64) -> Result<bool, libsql::Error> {
    Ok(conn.execute("DELETE FROM theme WHERE id = ?1 AND user_id = ?2", (id, user_id)).await? > 0)
}

/// Deletes every theme of a user (account deletion).
pub async fn delete_of_user(conn: &Conn, user_id: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM theme WHERE user_id = ?1", [user_id]).await?;
    Ok(())
}

/// The columns of a [`Theme`].
const COLUMNS: &str = "id, name, primary_color, background_color, bubble_color_me, bubble_color_other, text_color, \
                       secondary_text_color, brightness, wallpaper_key, wallpaper_blur, created_at";

/// A stored theme.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Theme {
    /// Id.
    pub id: i64,
    /// What its user set.
    #[serde(flatten)]
    pub values: ThemeValues,
    /// Epoch ms.
    pub created_at: i64,
}

/// The validated fields of a theme, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ThemeValues {
    /// Trimmed name.
    pub name: String,
    /// Decimal ARGB text.
    pub primary_color: String,
    /// Decimal ARGB text.
    pub background_color: String,
    /// Decimal ARGB text.
    pub bubble_color_me: String,
    /// Decimal ARGB text.
    pub bubble_color_other: String,
    /// Decimal ARGB text.
    pub text_color: String,
    /// Decimal ARGB text.
    pub secondary_text_color: String,
    /// `light` or `dark`.
    pub brightness: Brightness,
    /// Object key of the wallpaper, owned by the theme's user.
    pub wallpaper_key: Option<String>,
    /// Decimal text such as `"0.0"`.
    pub wallpaper_blur: String,
}

impl ThemeValues {
    /// The fields as `?1`–`?10`, in the order of [`Theme`]'s columns, then `then` as `?11` and `?12`.
    fn params(&self, then: [i64; 2]) -> libsql::params::Params {
        let text = |s: &str| libsql::Value::Text(s.to_owned());
        libsql::params::Params::Positional(vec![
            text(&self.name),
            text(&self.primary_color),
            text(&self.background_color),
            text(&self.bubble_color_me),
            text(&self.bubble_color_other),
            text(&self.text_color),
            text(&self.secondary_text_color),
            text(self.brightness.as_str()),
            self.wallpaper_key.as_deref().map_or(libsql::Value::Null, text),
            text(&self.wallpaper_blur),
            then[0].into(),
            then[1].into(),
        ])
    }
}

/// How many themes `user_id` has.
pub async fn count(conn: &Conn, user_id: i64) -> Result<i64, libsql::Error> {
    Ok(value(conn.query("SELECT COUNT(*) FROM theme WHERE user_id = ?1", [user_id]).await?).await?.unwrap_or(0))
}

/// Stores a new theme of `user_id` created at `now_ms` and returns it.
pub async fn insert(conn: &Conn, user_id: i64, theme: &ThemeValues, now_ms: i64) -> Result<Theme, libsql::Error> {
    let rows = conn
        .query(
            &format!(
                "INSERT INTO theme (name, primary_color, background_color, bubble_color_me, bubble_color_other, \
                 text_color, secondary_text_color, brightness, wallpaper_key, wallpaper_blur, user_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING {COLUMNS}"
            ),
            theme.params([user_id, now_ms]),
        )
        .await?;
    first(rows).await?.ok_or_else(|| libsql::Error::Misuse("insert returned no row".into()))
}

/// The themes of `user_id`, newest first.
pub async fn list(conn: &Conn, user_id: i64) -> Result<Vec<Theme>, libsql::Error> {
    all(conn
        .query(&format!("SELECT {COLUMNS} FROM theme WHERE user_id = ?1 ORDER BY created_at DESC, id DESC"), [user_id])
        .await?)
    .await
}

/// The wallpaper key of theme `id` of `user_id`: `None` when there is no such theme of the user.
pub async fn wallpaper(conn: &Conn, id: i64, user_id: i64) -> Result<Option<Option<String>>, libsql::Error> {
    value(conn.query("SELECT wallpaper_key FROM theme WHERE id = ?1 AND user_id = ?2", (id, user_id)).await?).await
}

/// Replaces every field of theme `id` of `user_id`; returns it, or `None` when there is no such theme.
pub async fn update(conn: &Conn, id: i64, user_id: i64, theme: &ThemeValues) -> Result<Option<Theme>, libsql::Error> {
    let rows = conn
        .query(
            &format!(
                "UPDATE theme SET name = ?1, primary_color = ?2, background_color = ?3, bubble_color_me = ?4, \
                 bubble_color_other = ?5, text_color = ?6, secondary_text_color = ?7, brightness = ?8, \
                 wallpaper_key = ?9, wallpaper_blur = ?10 WHERE id = ?11 AND user_id = ?12 RETURNING {COLUMNS}"
            ),
            theme.params([id, user_id]),
        )
        .await?;
    first(rows).await
}
