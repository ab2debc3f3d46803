//! The `connection` table: open WebSocket connections (API Gateway connection ids).

use super::Conn;
use crate::db::{all, column, exists, first, id_list, value};
use serde::Deserialize;
use std::collections::HashSet;

/// An open WebSocket connection of a user (a `connection` row; [`Conn`] is a database connection).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Socket {
    /// API Gateway connection id.
    pub id: String,
    /// Its user.
    pub user_id: i64,
    /// Its device.
    pub device_id: String,
    /// Whether its session still holds (the checks of [`session`], plus the token's expiry with 60 s of
    /// leeway): a connection that is not live must get no event, only closed.
    #[serde(deserialize_with = "crate::db::int_bool")]
    pub live: bool,
}

/// The session a connection was opened with, re-checked on every action.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConnSession {
    /// Its user.
    pub user_id: i64,
    /// Its device.
    pub device_id: String,
    /// `ver` of the token that opened it.
    pub token_version: i64,
    /// `exp` of that token (seconds).
    pub token_exp: i64,
}

/// Every open connection of `users`, oldest first (`connection_user`), each with whether its session still
/// holds at this moment.
pub async fn of_users(conn: &Conn, users: &[i64]) -> Result<Vec<Socket>, libsql::Error> {
    let now_s = crate::time::now_ms() / 1000;
    let rows = conn
        .query(
            "SELECT c.id, c.user_id, c.device_id, \
             (u.is_deleted = 0 AND u.is_banned = 0 AND u.token_version = c.token_version AND c.token_exp + 60 >= ?2 \
              AND EXISTS (SELECT 1 FROM device d WHERE d.id = c.device_id AND d.user_id = c.user_id)) AS live \
             FROM connection c JOIN user u ON u.id = c.user_id \
             WHERE c.user_id IN (SELECT value FROM json_each(?1)) ORDER BY c.connected_at",
            (id_list(users), now_s),
        )
        .await?;
    all(rows).await
}

/// Deletes a connection row; returns its user, `None` if it was already gone.
pub async fn remove(conn: &Conn, connection_id: &str) -> Result<Option<i64>, libsql::Error> {
    value(conn.query("DELETE FROM connection WHERE id = ?1 RETURNING user_id", [connection_id]).await?).await
}

/// Whether the user has any open connection.
pub async fn user_has_any(conn: &Conn, user_id: i64) -> Result<bool, libsql::Error> {
    exists(conn.query("SELECT 1 FROM connection WHERE user_id = ?1 LIMIT 1", [user_id]).await?).await
}

/// Which of `owners` have an open connection, as seen by `viewer` (nothing when `viewer` is NULL).
pub async fn online_among(conn: &Conn, viewer: i64, owners: &[i64]) -> Result<HashSet<i64>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT DISTINCT user_id FROM connection WHERE ?1 IS NOT NULL AND user_id IN (SELECT value FROM json_each(?2))",
            (viewer, id_list(owners)),
        )
        .await?;
    Ok(column::<i64>(rows).await?.into_iter().collect())
}

/// The session of a connection whose user is live and unbanned, whose token version is current and whose
/// device still exists; `None` otherwise (expiry is the caller's check).
pub async fn session(conn: &Conn, connection_id: &str) -> Result<Option<ConnSession>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT c.user_id, c.device_id, c.token_version, c.token_exp FROM connection c \
             JOIN user u ON u.id = c.user_id JOIN device d ON d.id = c.device_id AND d.user_id = c.user_id \
             WHERE c.id = ?1 AND u.is_deleted = 0 AND u.is_banned = 0 AND u.token_version = c.token_version",
            [connection_id],
        )
        .await?;
    first(rows).await
}

/// The connection ids of one device of a user.
pub async fn ids_of_device(conn: &Conn, user_id: i64, device_id: &str) -> Result<Vec<String>, libsql::Error> {
    let rows =
        conn.query("SELECT id FROM connection WHERE device_id = ?1 AND user_id = ?2", (device_id, user_id)).await?;
    column(rows).await
}

/// The connection ids of a user.
pub async fn ids_of_user(conn: &Conn, user_id: i64) -> Result<Vec<String>, libsql::Error> {
    column(conn.query("SELECT id FROM connection WHERE user_id = ?1", [user_id]).await?).await
}

/// Deletes every connection row of a user (account deletion).
pub async fn delete_of_user(conn: &Conn, user_id: i64) -> Result<(), libsql::Error> {
    conn.execute("DELETE FROM connection WHERE user_id = ?1", [user_id]).await?;
    Ok(())
}

/// A connection to record at `$connect`.
#[derive(Debug, Clone, Copy)]
pub struct NewConnection<'a> {
    /// API Gateway connection id.
    pub id: &'a str,
    /// Its user.
    pub user_id: i64,
    /// The device its token is bound to.
    pub device_id: &'a str,
    /// `ver` of the token that opened it.
    pub token_version: i64,
    /// `exp` of that token (seconds).
    pub token_exp: i64,
    /// When it opened (ms).
    pub connected_at: i64,
}

/// Records a connection; a connection id already recorded is kept as it is.
pub async fn insert(conn: &Conn, new: NewConnection<'_>) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO connection (id, user_id, device_id, token_version, token_exp, connected_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
        (new.id, new.user_id, new.device_id, new.token_version, new.token_exp, new.connected_at),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, migrate};

    #[tokio::test]
    async fn a_session_lasts_while_user_token_version_and_device_do() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&format!("file:{}", dir.path().join("t.db").display()), None).await.unwrap();
        migrate(&db).await.unwrap();
        let conn = db.conn().await.unwrap();
        conn.execute("INSERT INTO user (id, first_name, created_at) VALUES (1, 'U', 0)", ()).await.unwrap();
        conn.execute("INSERT INTO device (id, user_id, created_at, last_used_at) VALUES ('d', 1, 0, 0)", ())
            .await
            .unwrap();
        let new =
            NewConnection { id: "c", user_id: 1, device_id: "d", token_version: 0, token_exp: 99, connected_at: 5 };
        insert(&conn, new).await.unwrap();
        insert(&conn, NewConnection { connected_at: 6, ..new }).await.unwrap();
        let expected = ConnSession { user_id: 1, device_id: "d".into(), token_version: 0, token_exp: 99 };
        assert_eq!(session(&conn, "c").await.unwrap(), Some(expected));
        assert_eq!(session(&conn, "other").await.unwrap(), None);
        conn.execute("UPDATE user SET token_version = 1 WHERE id = 1", ()).await.unwrap();
        assert_eq!(session(&conn, "c").await.unwrap(), None, "a revoked token ends the session");
    }
}
