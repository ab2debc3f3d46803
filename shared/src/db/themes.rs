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

/// A stored theme.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Theme {
    /// Id.
    pub id: i64,
    /// Name.
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
    /// Object key of the wallpaper.
    pub wallpaper_key: Option<String>,
    /// Decimal text such as `"0.0"`.
    pub wallpaper_blur: String,
    /// Epoch ms.
    pub created_at: i64,
}

/// The validated fields of a theme, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// How many themes `user_id` has.
pub async fn count(conn: &Conn, user_id: i64) -> Result<i64, libsql::Error> {
    Ok(value(conn.query("SELECT COUNT(*) FROM theme WHERE user_id = ?1", [user_id]).await?).await?.unwrap_or(0))
}

/// Stores a new theme of `user_id` created at `now_ms` and returns it.
pub async fn insert(conn: &Conn, user_id: i64, theme: &ThemeValues, now_ms: i64) -> Result<Theme, libsql::Error> {
    let rows = conn
        .query(
            "INSERT INTO theme (user_id, name, primary_color, background_color, bubble_color_me, bubble_color_other, \
             text_color, secondary_text_color, brightness, wallpaper_key, wallpaper_blur, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id, name, primary_color, \
             background_color, bubble_color_me, bubble_color_other, text_color, secondary_text_color, brightness, \
             wallpaper_key, wallpaper_blur, created_at",
            libsql::params![
                user_id,
                theme.name.as_str(),
                theme.primary_color.as_str(),
                theme.background_color.as_str(),
                theme.bubble_color_me.as_str(),
                theme.bubble_color_other.as_str(),
                theme.text_color.as_str(),
                theme.secondary_text_color.as_str(),
                theme.brightness.as_str(),
                theme.wallpaper_key.as_deref(),
                theme.wallpaper_blur.as_str(),
                now_ms,
            ],
        )
        .await?;
    first(rows).await?.ok_or_else(|| libsql::Error::Misuse("insert returned no row".into()))
}

/// The themes of `user_id`, newest first.
pub async fn list(conn: &Conn, user_id: i64) -> Result<Vec<Theme>, libsql::Error> {
    all(conn
        .query(
            "SELECT id, name, primary_color, background_color, bubble_color_me, bubble_color_other, text_color, \
             secondary_text_color, brightness, wallpaper_key, wallpaper_blur, created_at FROM theme \
             WHERE user_id = ?1 ORDER BY created_at DESC, id DESC",
            [user_id],
        )
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
            "UPDATE theme SET name = ?3, primary_color = ?4, background_color = ?5, bubble_color_me = ?6, \
             bubble_color_other = ?7, text_color = ?8, secondary_text_color = ?9, brightness = ?10, \
             wallpaper_key = ?11, wallpaper_blur = ?12 WHERE id = ?1 AND user_id = ?2 RETURNING id, name, \
             primary_color, background_color, bubble_color_me, bubble_color_other, text_color, \
             secondary_text_color, brightness, wallpaper_key, wallpaper_blur, created_at",
            libsql::params![
                id,
                user_id,
                theme.name.as_str(),
                theme.primary_color.as_str(),
                theme.background_color.as_str(),
                theme.bubble_color_me.as_str(),
                theme.bubble_color_other.as_str(),
                theme.text_color.as_str(),
                theme.secondary_text_color.as_str(),
                theme.brightness.as_str(),
                theme.wallpaper_key.as_deref(),
                theme.wallpaper_blur.as_str(),
            ],
        )
        .await?;
    first(rows).await
}
