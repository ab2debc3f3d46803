//! `bulk_job`: work on many rows, done in bounded batches (migration 0007). The SQL of each batch is in the
//! module of the table it changes; this one keeps the jobs.

use super::Conn;
use crate::db::first;
use serde::Deserialize;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Hide a conversation for `user_id` (`DELETE /chats/{peer}/messages`).
    HideChat,
    /// Delete a conversation for everyone (`?for_everyone=true`).
    WipeChat,
    /// Remove what deleted account `user_id` leaves in its conversation with `peer_id`.
    PurgeChat,
    /// Remove the envelopes addressed to removed device `device_id`.
    PurgeDevice,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HideChat => "hide_chat",
            Self::WipeChat => "wipe_chat",
            Self::PurgeChat => "purge_chat",
            Self::PurgeDevice => "purge_device",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::HideChat, Self::WipeChat, Self::PurgeChat, Self::PurgeDevice].into_iter().find(|k| k.as_str() == name)
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Row id.
    pub id: i64,
    /// What it does.
    pub kind: Kind,
    /// Who asked, or whose leftovers these are.
    pub user_id: i64,
    /// The conversation's other side (chat kinds).
    pub peer_id: i64,
    /// The removed device (`PurgeDevice`).
    pub device_id: String,
    /// The newest message id covered.
    pub up_to_id: i64,
    /// Every message id up to this one is done.
    pub cursor: i64,
    /// Rows changed so far.
    pub done_count: i64,
}

#[derive(Deserialize)]
struct JobRow {
    id: i64,
    kind: String,
    user_id: i64,
    peer_id: Option<i64>,
    device_id: Option<String>,
    up_to_id: i64,
    cursor: i64,
    done_count: i64,
}

impl JobRow {
    /// A row of a kind this build does not know (written by a newer one) is left alone.
    fn job(self) -> Option<Job> {
        Some(Job {
            id: self.id,
            kind: Kind::parse(&self.kind)?,
            user_id: self.user_id,
            peer_id: self.peer_id.unwrap_or(0),
            device_id: self.device_id.unwrap_or_default(),
            up_to_id: self.up_to_id,
            cursor: self.cursor,
            done_count: self.done_count,
        })
    }
}

const COLUMNS: &str = "id, kind, user_id, peer_id, device_id, up_to_id, cursor, done_count";

/// Records a chat job of `user_id` with `peer_id` up to message `up_to_id`. A pending job of the same kind
/// for the same conversation is extended instead (its progress kept), so a retried request never doubles
/// the work. Returns the job's id.
pub async fn upsert_chat(
    conn: &Conn,
    kind: Kind,
    user_id: i64,
    peer_id: i64,
    up_to_id: i64,
    now_ms: i64,
) -> Result<i64, libsql::Error> {
    let existing: Option<i64> = crate::db::value(
        conn.query(
            "SELECT id FROM bulk_job WHERE user_id = ?1 AND kind = ?2 AND peer_id = ?3 ORDER BY id LIMIT 1",
            (user_id, kind.as_str(), peer_id),
        )
        .await?,
    )
    .await?;
    if let Some(id) = existing {
        conn.execute("UPDATE bulk_job SET up_to_id = max(up_to_id, ?2) WHERE id = ?1", (id, up_to_id)).await?;
        return Ok(id);
    }
    let rows = conn
        .query(
            "INSERT INTO bulk_job (kind, user_id, peer_id, up_to_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             RETURNING id",
            (kind.as_str(), user_id, peer_id, up_to_id, now_ms),
        )
        .await?;
    crate::db::value(rows).await?.ok_or(libsql::Error::QueryReturnedNoRows)
}

/// Records the purge of removed device `device_id` of `user_id`.
pub async fn insert_device(conn: &Conn, user_id: i64, device_id: &str, now_ms: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO bulk_job (kind, user_id, device_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        (Kind::PurgeDevice.as_str(), user_id, device_id, now_ms),
    )
    .await?;
    Ok(())
}

/// Job `id`, if it is still pending.
pub async fn find(conn: &Conn, id: i64) -> Result<Option<Job>, libsql::Error> {
    let row: Option<JobRow> =
        first(conn.query(&format!("SELECT {COLUMNS} FROM bulk_job WHERE id = ?1"), [id]).await?).await?;
    Ok(row.and_then(JobRow::job))
}

/// The ids of the pending jobs, oldest first, at most `limit`; only those of `user_id` when given.
pub async fn pending(conn: &Conn, user_id: Option<i64>, limit: i64) -> Result<Vec<i64>, libsql::Error> {
    let rows = conn
        .query("SELECT id FROM bulk_job WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id LIMIT ?2", (user_id, limit))
        .await?;
    crate::db::column(rows).await
}

/// Records one batch: `cursor` moves on and `count` rows are added to the job's total.
pub async fn advance(conn: &Conn, id: i64, cursor: i64, count: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE bulk_job SET cursor = ?2, done_count = done_count + ?3 WHERE id = ?1", (id, cursor, count))
        .await?;
    Ok(())
}

/// Removes a finished job; returns its total, or `None` when another process removed it first.
pub async fn finish(conn: &Conn, id: i64, count: i64) -> Result<Option<i64>, libsql::Error> {
    let rows = conn.query("DELETE FROM bulk_job WHERE id = ?1 RETURNING done_count + ?2", (id, count)).await?;
    crate::db::value(rows).await
}
