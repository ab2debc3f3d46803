//! Work on many rows in bounded steps (issue 24 item 3): clearing a chat, for one side or for everyone, and
//! purging what a deleted account or device leaves behind. SQLite has one writer; one transaction over
//! hundreds of thousands of rows would hold it for seconds (every send in the deployment waiting, or 503)
//! and, past the function timeout, roll back to be retried forever.
//!
//! So the transaction that decides the work only records a job (`bulk_job`, migration 0007). Each step then
//! changes at most [`BATCH`] messages (a window of the conversation by id, or that many envelopes) and
//! moves the job's cursor in the same transaction, releasing the writer in between. The step that finds
//! nothing more deletes the job and, after its commit, tells the clients (`chat_cleared`). A request works
//! on its own job for at most [`REQUEST_BUDGET`]; what is left, or what a killed process left, is finished by
//! the next clean-up run ([`resume`]). Two processes on one job take turns: each step re-reads the job under
//! the writer.

use std::time::{Duration, Instant};

use wire::ws::{ChatCleared, ServerEvent};

use crate::db::bulk::{Job, Kind};
use crate::error::ApiError;
use crate::state::AppState;
use crate::{db, realtime};

/// Most messages (or envelopes) one step changes.
pub const BATCH: i64 = 1000;

/// How long a request works on its own job before it answers and leaves the rest to the clean-up (the
/// functions' timeout is 15 s).
pub const REQUEST_BUDGET: Duration = Duration::from_secs(8);

/// Where a job stands after [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done: this many rows were changed in all.
    Finished(i64),
    /// The budget ran out after this many rows; the job stays for [`resume`].
    Pending(i64),
    /// Another process finished it (or it never existed).
    Gone,
}

/// What one step did.
struct Step {
    cursor: i64,
    count: i64,
    last: bool,
    media_keys: Vec<String>,
}

/// One bounded step of `job`, inside the caller's write transaction.
async fn step(tx: &db::Conn, job: &Job) -> Result<Step, libsql::Error> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (user, peer, after) = (job.user_id, job.peer_id, job.cursor);
    if job.kind == Kind::PurgeDevice {
        let n = count(db::messages::purge_envelopes_of_device(tx, &job.device_id, BATCH).await?);
        return Ok(Step { cursor: 0, count: n, last: n < BATCH, media_keys: Vec::new() });
    }
    // The chat kinds: the next window of the conversation by id.
    let (end, last) = match db::messages::window_end(tx, user, peer, after, job.up_to_id, BATCH).await? {
        Some(end) => (end, end >= job.up_to_id),
        None => (job.up_to_id, true),
    };
    let (n, media_keys) = if job.kind == Kind::WipeChat {
        let wiped = db::messages::wipe_window(tx, user, peer, after, end).await?;
        (wiped.ids.len() as u64, wiped.media_keys)
    } else if job.kind == Kind::HideChat {
        (db::messages::hide_window(tx, user, peer, after, end).await?, Vec::new())
    } else {
        (db::messages::purge_window(tx, user, peer, after, end).await?, Vec::new())
    };
    Ok(Step { cursor: end, count: count(n), last, media_keys })
}

/// Works on job `id` in bounded steps until it is done or `deadline` has passed.
pub async fn run(state: &AppState, id: i64, deadline: Instant) -> Result<Outcome, ApiError> {
    loop {
        let conn = state.db.conn().await?;
        // Alone, not in a group commit: a send queued behind this step commits right after it.
        let tx = conn.write_tx_alone().await?;
        let Some(job) = db::bulk::find(&tx, id).await? else {
            return Ok(Outcome::Gone);
        };
        let step = step(&tx, &job).await?;
        let finished = if step.last {
            db::bulk::finish(&tx, id, step.count).await?
        } else {
            db::bulk::advance(&tx, id, step.cursor, step.count).await?;
            None
        };
        tx.commit().await?;
        drop(conn);
        // Detached media may now be orphaned; if this process dies first, the clean-up finds them.
        crate::files::delete_if_orphaned(state, &step.media_keys).await;
        if let Some(total) = finished {
            announce(state, &job, total).await;
            return Ok(Outcome::Finished(total));
        }
        if step.last {
            return Ok(Outcome::Gone);
        }
        if Instant::now() >= deadline {
            return Ok(Outcome::Pending(job.done_count + step.count));
        }
        // Local libSQL calls do not yield to the runtime: give the other tasks of the process a turn.
        tokio::task::yield_now().await;
    }
}

/// Tells the clients about a finished job: `chat_cleared` to the side that cleared (and, for everyone, to
/// the other side) when anything changed.
async fn announce(state: &AppState, job: &Job, total: i64) {
    let for_everyone = match job.kind {
        Kind::HideChat => false,
        Kind::WipeChat => true,
        Kind::PurgeChat | Kind::PurgeDevice => return,
    };
    if total == 0 {
        return;
    }
    let up_to_id = job.up_to_id;
    let mine = ServerEvent::ChatCleared(ChatCleared { peer_id: job.peer_id, for_everyone, up_to_id });
    realtime::push_to_users(state, &[job.user_id], None, &mine.to_frame()).await;
    if for_everyone {
        let theirs = ServerEvent::ChatCleared(ChatCleared { peer_id: job.user_id, for_everyone, up_to_id });
        realtime::push_to_users(state, &[job.peer_id], None, &theirs.to_frame()).await;
    }
}

/// Finishes pending jobs, oldest first (only those of `user_id` when given), until none is left or
/// `deadline` has passed; returns how many it finished. The clean-up runs it for every job; a request that
/// queued jobs (account or device deletion) runs it for its own.
pub async fn resume(state: &AppState, user_id: Option<i64>, deadline: Instant) -> Result<usize, ApiError> {
    let mut finished = 0;
    let mut seen = std::collections::HashSet::new();
    loop {
        let ids = {
            let conn = state.db.conn().await?;
            db::bulk::pending(&conn, user_id, 100).await?
        };
        let fresh: Vec<i64> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
        if fresh.is_empty() {
            return Ok(finished);
        }
        for id in fresh {
            match run(state, id, deadline).await? {
                Outcome::Finished(_) => finished += 1,
                Outcome::Pending(_) => return Ok(finished),
                Outcome::Gone => {}
            }
        }
    }
}

/// Finishes the jobs a request just queued for `user_id` (account or device deletion) within
/// [`REQUEST_BUDGET`]. The request's own change has committed already, so a failure here is only logged:
/// the clean-up finishes the jobs.
pub async fn finish_queued(state: &AppState, user_id: i64) {
    let deadline = Instant::now() + REQUEST_BUDGET;
    if let Err(e) = resume(state, Some(user_id), deadline).await {
        tracing::warn!(error = ?e, user_id, "bulk jobs left for the clean-up");
    }
}
