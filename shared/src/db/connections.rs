//! The `connection` table: open WebSocket connections (API Gateway connection ids).

use libsql::Connection;
use serde::Deserialize;

use crate::db::row::first;

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
pub async fn insert(conn: &Connection, new: NewConnection<'_>) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO connection (id, user_id, device_id, token_version, token_exp, connected_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
        (new.id, new.user_id, new.device_id, new.token_version, new.token_exp, new.connected_at),
    )
    .await?;
    Ok(())
}

/// The session a connection was opened with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Session {
    /// The user.
    pub user_id: i64,
    /// The device its token is bound to.
    pub device_id: String,
    /// `ver` of the token.
    pub token_version: i64,
    /// `exp` of the token (seconds).
    pub token_exp: i64,
}

/// The session of connection `id` while it is still valid in the database: the user is neither deleted nor
/// banned, its token version is unchanged and the device still exists (the expiry is the caller's check).
pub async fn session(conn: &Connection, id: &str) -> Result<Option<Session>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT c.user_id, c.device_id, c.token_version, c.token_exp FROM connection c \
             JOIN user u ON u.id = c.user_id JOIN device d ON d.id = c.device_id AND d.user_id = c.user_id \
             WHERE c.id = ?1 AND u.is_deleted = 0 AND u.is_banned = 0 AND u.token_version = c.token_version",
            [id],
        )
        .await?;
    first(rows).await
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
        let expected = Session { user_id: 1, device_id: "d".into(), token_version: 0, token_exp: 99 };
        assert_eq!(session(&conn, "c").await.unwrap(), Some(expected));
        assert_eq!(session(&conn, "other").await.unwrap(), None);
        conn.execute("UPDATE user SET token_version = 1 WHERE id = 1", ()).await.unwrap();
        assert_eq!(session(&conn, "c").await.unwrap(), None, "a revoked token ends the session");
    }
}
