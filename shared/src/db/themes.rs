//! The `theme` table (the theme rows themselves are still read by the themes function).

use libsql::Connection;

use crate::db::value;

/// How many themes a user has.
pub async fn count_of_user(conn: &Connection, user_id: i64) -> Result<i64, libsql::Error> {
    Ok(value(conn.query("SELECT COUNT(*) FROM theme WHERE user_id = ?1", [user_id]).await?).await?.unwrap_or(0))
}

/// The wallpaper key of a user's theme: `None` if there is no such theme, `Some(None)` without wallpaper.
pub async fn wallpaper_key(conn: &Connection, id: i64, user_id: i64) -> Result<Option<Option<String>>, libsql::Error> {
    value(conn.query("SELECT wallpaper_key FROM theme WHERE id = ?1 AND user_id = ?2", (id, user_id)).await?).await
}

/// Deletes a user's theme; false if there was none.
pub async fn delete(conn: &Connection, id: i64, user_id: i64) -> Result<bool, libsql::Error> {
    Ok(conn.execute("DELETE FROM theme WHERE id = ?1 AND user_id = ?2", (id, user_id)).await? > 0)
}

/// Deletes every theme of a user (account deletion).
pub async fn delete_of_user(conn: &Connection, user_id: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM theme WHERE user_id = ?1", [user_id]).await?;
    Ok(())
}
