//! Prepared statements kept per local connection, so a statement is parsed and planned once per connection
//! instead of on every call (libSQL prepares on every `query`/`execute`; parsing was a fifth of the relay's CPU,
//! much of it inside the writer's turn).
//!
//! A statement is checked out while it runs and while its rows are read, and goes back reset when they are
//! dropped, so two uses of the same SQL on one connection never share a cursor. SQLite re-prepares a cached
//! statement itself when the schema changed under it.
//!
//! A kept remote connection caches its queries the same way: libSQL's remote client sends a request to
//! describe every statement it prepares, and prepares every query, so a cached one saves a round trip to the
//! server each time (the server parses and plans it either way).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libsql::params::Params;
use libsql::{Connection, Statement};

/// Distinct SQL texts cached per connection at most; past it a statement is prepared for one use as before.
const MAX_CACHED: usize = 256;

/// The cached statements of one local connection, by SQL text (several when one is checked out twice).
#[derive(Default)]
pub(super) struct Statements {
    idle: Mutex<HashMap<String, Vec<Statement>>>,
}

/// A statement checked out of its connection's cache; dropped, it is reset and goes back.
pub(super) struct Lease {
    statement: Option<Statement>,
    sql: String,
    home: Arc<Statements>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(statement) = self.statement.take() else { return };
        // Reset ends the statement's read of the database (a SELECT left mid-way holds its snapshot).
        statement.reset();
        let mut idle = self.home.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_CACHED || idle.contains_key(&self.sql) {
            idle.entry(std::mem::take(&mut self.sql)).or_default().push(statement);
        }
    }
}

impl Statements {
    /// A prepared statement for `sql` on `conn`, from the cache when one is idle.
    async fn lease(self: &Arc<Self>, conn: &Connection, sql: &str) -> Result<Lease, libsql::Error> {
        let cached = {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            idle.get_mut(sql).and_then(Vec::pop)
        };
        let statement = match cached {
            Some(statement) => statement,
            None => conn.prepare(sql).await?,
        };
        Ok(Lease { statement: Some(statement), sql: sql.to_owned(), home: self.clone() })
    }

    /// Runs the query `sql` on `conn`; the rows keep the statement until they are dropped.
    pub(super) async fn query(
        self: &Arc<Self>,
        conn: &Connection,
        sql: &str,
        params: Params,
    ) -> Result<(libsql::Rows, Lease), libsql::Error> {
        let lease = self.lease(conn, sql).await?;
        let statement = lease.statement.as_ref().expect("a lease holds its statement until dropped");
        let rows = statement.query(params).await?;
        Ok((rows, lease))
    }

    /// Runs the statement `sql` on `conn` and returns the number of rows it changed.
    pub(super) async fn execute(
        self: &Arc<Self>,
        conn: &Connection,
        sql: &str,
        params: Params,
    ) -> Result<u64, libsql::Error> {
        let lease = self.lease(conn, sql).await?;
        let statement = lease.statement.as_ref().expect("a lease holds its statement until dropped");
        let changed = statement.execute(params).await?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use crate::db::{Db, all, column, first, value};
    use serde::Deserialize;

    async fn file_db(dir: &tempfile::TempDir) -> Db {
        let db = Db::open(&format!("file:{}", dir.path().join("s.db").display()), None).await.unwrap();
        {
            let conn = db.conn().await.unwrap();
            conn.execute("CREATE TABLE t (x INTEGER)", ()).await.unwrap();
            for x in 1..=3 {
                conn.execute("INSERT INTO t VALUES (?1)", [x]).await.unwrap();
            }
        }
        db
    }

    const ALL_X: &str = "SELECT x FROM t ORDER BY x";

    #[tokio::test]
    async fn a_statement_is_prepared_once_per_connection_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir).await;
        let conn = db.conn().await.unwrap();
        let stmts = conn.stmts.clone().expect("a local connection caches its statements");
        for _ in 0..3 {
            assert_eq!(column::<i64>(conn.query(ALL_X, ()).await.unwrap()).await.unwrap(), [1, 2, 3]);
        }
        let idle = stmts.idle.lock().unwrap();
        assert_eq!(idle.get(ALL_X).map(Vec::len), Some(1), "one statement, back in the cache after each use");
        assert_eq!(idle.get("INSERT INTO t VALUES (?1)").map(Vec::len), Some(1));
    }

    #[tokio::test]
    async fn the_same_sql_twice_at_once_gets_two_cursors() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir).await;
        let conn = db.conn().await.unwrap();
        let mut first = conn.query(ALL_X, ()).await.unwrap();
        assert_eq!(first.next().await.unwrap().unwrap().get::<i64>(0).unwrap(), 1);
        // While the first cursor is mid-way, the same SQL runs to the end on a statement of its own.
        assert_eq!(column::<i64>(conn.query(ALL_X, ()).await.unwrap()).await.unwrap(), [1, 2, 3]);
        assert_eq!(first.next().await.unwrap().unwrap().get::<i64>(0).unwrap(), 2);
        assert_eq!(first.next().await.unwrap().unwrap().get::<i64>(0).unwrap(), 3);
        assert!(first.next().await.unwrap().is_none());
        drop(first);
        assert_eq!(conn.stmts.as_ref().unwrap().idle.lock().unwrap().get(ALL_X).map(Vec::len), Some(2));
    }

    #[tokio::test]
    async fn rows_dropped_mid_way_release_their_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir).await;
        let reader = db.conn().await.unwrap();
        let mut rows = reader.query(ALL_X, ()).await.unwrap();
        rows.next().await.unwrap();
        drop(rows);
        // A statement left mid-way would keep its read transaction open: the reader would not see this write,
        // and a checkpoint could not reset the WAL (its second column, busy, would be 1).
        let writer = db.conn().await.unwrap();
        writer.execute("INSERT INTO t VALUES (4)", ()).await.unwrap();
        assert_eq!(value::<i64>(reader.query("SELECT COUNT(*) FROM t", ()).await.unwrap()).await.unwrap(), Some(4));
        #[derive(Deserialize)]
        struct Checkpoint {
            busy: i64,
        }
        let done = first::<Checkpoint>(writer.query("PRAGMA wal_checkpoint(TRUNCATE)", ()).await.unwrap()).await;
        assert_eq!(done.unwrap().unwrap().busy, 0);
    }

    #[tokio::test]
    async fn a_cached_statement_follows_a_schema_change() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir).await;
        let conn = db.conn().await.unwrap();
        let star = "SELECT * FROM t ORDER BY x LIMIT 1";
        assert_eq!(column::<i64>(conn.query(star, ()).await.unwrap()).await.unwrap(), [1]);
        conn.execute("ALTER TABLE t ADD COLUMN y TEXT DEFAULT 'new'", ()).await.unwrap();
        #[derive(Debug, PartialEq, Deserialize)]
        struct Row {
            x: i64,
            y: String,
        }
        let rows = all::<Row>(conn.query(star, ()).await.unwrap()).await.unwrap();
        assert_eq!(rows, [Row { x: 1, y: "new".to_owned() }]);
    }

    #[tokio::test]
    async fn a_failed_statement_leaves_its_statement_usable() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir).await;
        let conn = db.conn().await.unwrap();
        conn.execute("CREATE TABLE u (x INTEGER PRIMARY KEY)", ()).await.unwrap();
        let insert = "INSERT INTO u VALUES (?1)";
        conn.execute(insert, [1]).await.unwrap();
        assert!(conn.execute(insert, [1]).await.is_err(), "a duplicate key");
        conn.execute(insert, [2]).await.unwrap();
        assert_eq!(value::<i64>(conn.query("SELECT COUNT(*) FROM u", ()).await.unwrap()).await.unwrap(), Some(2));
    }
}
