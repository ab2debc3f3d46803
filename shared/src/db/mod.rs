//! libSQL access: one database handle per process, a small pool of connections, the migration runner, and
//! one submodule of named query functions per table group.
//!
//! Query functions take a `&Conn` (a checked-out connection and a write transaction both deref to one), return
//! `Result<_, libsql::Error>` and map rows by column name.

pub mod admin;
pub mod bulk;
pub mod connections;
mod connector;
pub mod contacts;
pub mod devices;
mod group;
mod http1;
pub mod keys;
pub mod messages;
pub mod mls;
pub mod mls_groups;
pub mod objects;
mod overload;
#[cfg(test)]
mod plans;
mod pool;
pub mod rate_limits;
mod statements;
pub mod themes;
pub mod users;

pub use overload::{Overloaded, chain_is_overloaded, is_overloaded};
pub use pool::{Conn, Db, DbOptions, PooledConn, Rows, WriteTx};

use anyhow::Context as _;
use libsql::Row;
use serde::de::DeserializeOwned;

/// The migrations of `migrations/`, embedded at compile time, in order.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "0001_init", include_str!("../../../migrations/0001_init.sql")),
    (2, "0002_themes_files", include_str!("../../../migrations/0002_themes_files.sql")),
    (3, "0003_keys", include_str!("../../../migrations/0003_keys.sql")),
    (4, "0004_chat_summary", include_str!("../../../migrations/0004_chat_summary.sql")),
    (5, "0005_admin", include_str!("../../../migrations/0005_admin.sql")),
    (6, "0006_claimed_keys", include_str!("../../../migrations/0006_claimed_keys.sql")),
    (7, "0007_bulk_jobs", include_str!("../../../migrations/0007_bulk_jobs.sql")),
    (8, "0008_user_search", include_str!("../../../migrations/0008_user_search.sql")),
    (9, "0009_user_bigram", include_str!("../../../migrations/0009_user_bigram.sql")),
    (10, "0010_mls_key_packages", include_str!("../../../migrations/0010_mls_key_packages.sql")),
    (11, "0011_mls_groups", include_str!("../../../migrations/0011_mls_groups.sql")),
    (12, "0012_mls_commits", include_str!("../../../migrations/0012_mls_commits.sql")),
    (13, "0013_mls_messages", include_str!("../../../migrations/0013_mls_messages.sql")),
    (14, "0014_plan_indexes", include_str!("../../../migrations/0014_plan_indexes.sql")),
];

/// The schema version this build expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Maps a row to `T` by column name; extra columns are ignored. Unlike `libsql::de`, a row is a map to serde,
/// so a row type can `#[serde(flatten)]` the fields it shares with another (a stored theme is its id, the
/// fields a client sets and its creation time).
pub(crate) fn from_row<T: DeserializeOwned>(row: &Row) -> Result<T, libsql::Error> {
    T::deserialize(RowDeserializer(row)).map_err(|e| {
        let columns: Vec<&str> = (0..row.column_count()).map(|i| row.column_name(i).unwrap_or("?")).collect();
        libsql::Error::Misuse(format!(
            "row ({}) does not map to {}: {}",
            columns.join(", "),
            std::any::type_name::<T>(),
            redact(&e.to_string())
        ))
    })
}

/// A row as serde sees it: a map from column names to values.
struct RowDeserializer<'a>(&'a Row);

impl<'de> serde::Deserializer<'de> for RowDeserializer<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(Columns { row: self.0, next: 0, value: None })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// The columns of a row, in order: each name, then its value.
struct Columns<'a> {
    row: &'a Row,
    next: i32,
    value: Option<libsql::Value>,
}

impl<'de> serde::de::MapAccess<'de> for Columns<'_> {
    type Error = serde::de::value::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        use serde::de::{Error as _, IntoDeserializer as _};
        if self.next >= self.row.column_count() {
            return Ok(None);
        }
        let i = self.next;
        self.next += 1;
        self.value = Some(self.row.get_value(i).map_err(Self::Error::custom)?);
        let name = self.row.column_name(i).ok_or_else(|| Self::Error::custom("a column without a name"))?;
        seed.deserialize(name.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        use serde::de::{Error as _, IntoDeserializer as _};
        let value = self.value.take().ok_or_else(|| Self::Error::custom("a value without its column"))?;
        seed.deserialize(value.into_deserializer())
    }

    fn size_hint(&self) -> Option<usize> {
        usize::try_from(self.row.column_count() - self.next).ok()
    }
}

/// Blanks quoted values out of a serde error message: a mismatched column must not put stored data
/// (phone numbers, ciphertext) into logs.
fn redact(message: &str) -> String {
    let (mut out, mut quoted, mut escaped) = (String::with_capacity(message.len()), false, false);
    for c in message.chars() {
        if quoted {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => {
                    quoted = false;
                    out.push_str("…\"");
                }
                _ => escaped = false,
            }
        } else {
            out.push(c);
            quoted = c == '"';
        }
    }
    out
}

/// Every row of `rows`, mapped by column name.
pub(crate) async fn all<T: DeserializeOwned>(mut rows: Rows) -> Result<Vec<T>, libsql::Error> {
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(from_row(&row)?);
    }
    Ok(out)
}

/// The first row of `rows`, mapped by column name.
pub(crate) async fn first<T: DeserializeOwned>(mut rows: Rows) -> Result<Option<T>, libsql::Error> {
    let row = rows.next().await?.map(|r| from_row(&r)).transpose()?;
    drain(rows).await?;
    Ok(row)
}

/// Reads `rows` to their end. On a remote server the statement's cursor ends only when it has finished,
/// while its stream's next request may already be sent: a transaction's next statement must not start
/// before this one is done (an `INSERT … RETURNING` read for its first row only once raced the insert
/// that referenced it).
async fn drain(mut rows: Rows) -> Result<(), libsql::Error> {
    while rows.next().await?.is_some() {}
    Ok(())
}

/// Maps the only column of a one-column row (a one-column result has no order to get wrong).
fn only_column<T: DeserializeOwned>(row: &Row) -> Result<T, libsql::Error> {
    if row.column_count() != 1 {
        return Err(libsql::Error::Misuse(format!("expected one column, got {}", row.column_count())));
    }
    let value = row.get_value(0)?;
    T::deserialize(serde::de::IntoDeserializer::<serde::de::value::Error>::into_deserializer(value)).map_err(|e| {
        libsql::Error::Misuse(format!(
            "column does not map to {}: {}",
            std::any::type_name::<T>(),
            redact(&e.to_string())
        ))
    })
}

/// The single column of every row (`SELECT id ...`).
pub(crate) async fn column<T: DeserializeOwned>(mut rows: Rows) -> Result<Vec<T>, libsql::Error> {
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(only_column(&row)?);
    }
    Ok(out)
}

/// The single column of the first row (`SELECT COUNT(*) ...`, `... RETURNING id`).
pub(crate) async fn value<T: DeserializeOwned>(mut rows: Rows) -> Result<Option<T>, libsql::Error> {
    let value = rows.next().await?.map(|r| only_column(&r)).transpose()?;
    drain(rows).await?;
    Ok(value)
}

/// Whether `rows` has a row (`SELECT 1 ... LIMIT 1`).
pub(crate) async fn exists(mut rows: Rows) -> Result<bool, libsql::Error> {
    let found = rows.next().await?.is_some();
    drain(rows).await?;
    Ok(found)
}

/// A JSON array of ids, bound as one parameter and expanded with `json_each` (keeps statements fixed).
pub(crate) fn id_list(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// Deserializes an SQLite boolean (`INTEGER` 0 or 1, as `libsql`'s own `bool` conversion accepts).
pub(crate) fn int_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match <i64 as serde::Deserialize>::deserialize(d)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(serde::de::Error::custom(format_args!("boolean column holds {other}"))),
    }
}

/// Reads the applied schema version (0 for an empty database).
pub async fn schema_version(conn: &Conn) -> anyhow::Result<i64> {
    let mut rows =
        conn.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migration'", ()).await?;
    if rows.next().await?.is_none() {
        return Ok(0);
    }
    let rows = conn.query("SELECT COALESCE(MAX(version), 0) FROM schema_migration", ()).await?;
    Ok(value::<i64>(rows).await?.unwrap_or(0))
}

/// Applies every pending migration, each in its own `BEGIN IMMEDIATE` transaction; returns the names applied.
pub async fn migrate(db: &Db) -> anyhow::Result<Vec<&'static str>> {
    let conn = db.conn().await?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migration (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
         applied_at INTEGER NOT NULL)",
        (),
    )
    .await
    .context("create schema_migration")?;
    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS {
        // A transaction the server interrupted (it held the lock too long under load) was rolled back
        // whole, so the migration is simply tried again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match apply(&conn, version, name, sql).await {
                Ok(done) => {
                    if done {
                        applied.push(name);
                    }
                    break;
                }
                Err(e) if attempt < 5 && chain_is_overloaded(&e) => {
                    tracing::warn!(migration = name, error = %e, "migration interrupted; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(applied)
}

/// Applies one migration unless it is recorded; whether it was applied now.
async fn apply(conn: &PooledConn<'_>, version: i64, name: &str, sql: &str) -> anyhow::Result<bool> {
    let tx = conn.write_tx().await?;
    if exists(tx.query("SELECT 1 FROM schema_migration WHERE version = ?1", [version]).await?).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.execute_batch(sql).await.with_context(|| format!("apply migration {name}"))?;
    tx.execute(
        "INSERT INTO schema_migration (version, name, applied_at) VALUES (?1, ?2, ?3)",
        (version, name, crate::time::now_ms()),
    )
    .await?;
    tx.commit().await.with_context(|| format!("commit migration {name}"))?;
    Ok(true)
}

/// Whether the database is at schema version `version`, in one statement that fails unless it is.
///
/// It is `execute`d, not queried: libSQL's remote client sends a statement to be executed on its own, but
/// describes one to be queried in a request of its own first, so on AWS this is one round trip to the
/// database at every cold start where [`schema_version`] takes four. At the version it returns no row (an
/// executed statement may not return one); otherwise its row is `json('x')`, malformed JSON, an error, as
/// is a missing table.
pub async fn at_version(conn: &Conn, version: i64) -> bool {
    // (A subquery, not `HAVING` without `GROUP BY`: SQLite takes that, libSQL's server does not.)
    let sql = "SELECT json(CASE WHEN v IS ?1 THEN '1' ELSE 'x' END) \
               FROM (SELECT MAX(version) AS v FROM schema_migration) WHERE v IS NOT ?1";
    conn.execute(sql, [version]).await.is_ok()
}

/// Fails unless the database is at exactly the schema version of this build (checked once per cold start).
pub async fn check_schema(db: &Db) -> anyhow::Result<()> {
    let conn = db.conn().await?;
    if at_version(&conn, latest_version()).await {
        return Ok(());
    }
    let version = schema_version(&conn).await?;
    anyhow::ensure!(
        version == latest_version(),
        "database schema is at version {version}, this build needs {}: run the migrate function",
        latest_version()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS.iter().map(|m| format!("{}.sql", m.1)).collect();
        assert_eq!(files, embedded);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.0, i64::try_from(i).unwrap() + 1, "versions are 1, 2, 3, ...");
        }
    }

    #[test]
    fn row_mapping_errors_do_not_carry_stored_values() {
        assert_eq!(
            redact(r#"invalid type: string "79991234567", expected i64"#),
            r#"invalid type: string "…", expected i64"#
        );
        assert_eq!(redact(r#"a "q\"uoted" b"#), r#"a "…" b"#);
        assert_eq!(redact("missing field `id`"), "missing field `id`");
    }

    #[tokio::test]
    async fn migrations_apply_once_and_the_schema_check_passes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file:{}", dir.path().join("t.db").display());
        let db = Db::open(&url, None).await.unwrap();
        assert!(check_schema(&db).await.is_err(), "an empty database is not ready");
        assert_eq!(migrate(&db).await.unwrap().len(), MIGRATIONS.len());
        assert!(migrate(&db).await.unwrap().is_empty(), "a second run applies nothing");
        check_schema(&db).await.unwrap();
    }

    #[tokio::test]
    async fn the_one_statement_version_check_tells_the_versions_apart() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file:{}", dir.path().join("t.db").display());
        let db = Db::open(&url, None).await.unwrap();
        let conn = db.conn().await.unwrap();
        assert!(!at_version(&conn, latest_version()).await, "no schema_migration table");
        migrate(&db).await.unwrap();
        assert!(at_version(&conn, latest_version()).await);
        assert!(!at_version(&conn, latest_version() - 1).await, "an older build");
        assert!(!at_version(&conn, latest_version() + 1).await, "a newer build");
        conn.execute("DELETE FROM schema_migration WHERE version = ?1", [latest_version()]).await.unwrap();
        assert!(!at_version(&conn, latest_version()).await, "a migration missing");
        assert!(check_schema(&db).await.is_err(), "the slow path reports it");
        conn.execute("DELETE FROM schema_migration", ()).await.unwrap();
        assert!(!at_version(&conn, latest_version()).await, "an empty table");
    }
}
