//! Group commit on a database file: the write transactions of this process that queue for the file's one
//! writer share one SQLite transaction, each inside a savepoint of its own, and one `COMMIT` ends them all.
//!
//! SQLite has one writer per file, and most of a small write transaction's cost is its commit (the WAL frames
//! of every page it touched, the WAL index). Writers take turns ([`Writer::turn`]). The first of a group
//! begins a transaction on the file's writer connection; each member runs its statements inside
//! `SAVEPOINT member` and keeps them (`RELEASE`) or undoes them (`ROLLBACK TO`). A member that finds no
//! writer queued behind it, or the group full, commits for everyone; the others hand the commit on and wait
//! for it. No member's `commit` (or `rollback`) returns before the group's `COMMIT` did, so nothing is
//! acknowledged before it is durable, nor anything read from an earlier member of the group; a failed
//! `COMMIT` fails every member. A writer outside a transaction (an autocommit `INSERT`) commits the open group
//! before its own statement ([`Turn::flush`]).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use libsql::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::overload::{QUEUE_TIMEOUT, overloaded, retry};
use super::statements::Statements;

/// Members of one group at most: the first member of a group waits for the statements of all the others.
const MAX_MEMBERS: usize = 32;

/// How long a member that handed the commit on waits before it commits the group itself (the writer it
/// handed it to gave up waiting for its turn).
const HANDOVER_TIMEOUT: Duration = Duration::from_millis(100);

/// The outcome of one group's `COMMIT`, `None` while the group is open.
type Outcome = Option<Result<(), ()>>;

struct Group {
    /// Whether the writer connection is inside the group's transaction.
    open: bool,
    /// Members that joined the open group.
    members: usize,
    /// Tells the open group's members how its `COMMIT` went.
    done: watch::Sender<Outcome>,
    /// The file's writer connection, opened by the first writer, and its prepared statements.
    conn: Option<(Connection, Arc<Statements>)>,
}

/// The writer of one database, shared by every database handle of this process on it (a group commits only
/// on a local file).
pub(super) struct Writer {
    turn: Arc<Semaphore>,
    /// Writers queued for the turn.
    waiting: AtomicUsize,
    group: Mutex<Group>,
}

impl Writer {
    pub(super) fn new() -> Self {
        let (done, _) = watch::channel(None);
        Self {
            turn: Arc::new(Semaphore::new(1)),
            waiting: AtomicUsize::new(0),
            group: Mutex::new(Group { open: false, members: 0, done, conn: None }),
        }
    }

    fn group(&self) -> MutexGuard<'_, Group> {
        self.group.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writers queued for the turn now.
    pub(super) fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Queues for the turn to write, at most `timeout` (then the database counts as overloaded).
    pub(super) async fn turn(self: &Arc<Self>, timeout: Duration) -> Result<Turn, libsql::Error> {
        /// Counts a writer as queued until it has the turn or gave up.
        struct Queued<'a>(&'a AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _queued = Queued(&self.waiting);
        match tokio::time::timeout(timeout, self.turn.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Turn { writer: self.clone(), permit }),
            Ok(Err(_)) | Err(_) => Err(overloaded("another write transaction is running")),
        }
    }
}

/// The turn of one writer: while it lasts, nobody else in this process writes to the file.
pub(super) struct Turn {
    writer: Arc<Writer>,
    permit: OwnedSemaphorePermit,
}

impl Turn {
    /// Commits the open group, if any: a writer outside it writes after it.
    pub(super) async fn flush(self) -> OwnedSemaphorePermit {
        // A failure was reported to the group's members; this writer's own statement is not theirs.
        let _ = self.commit_group().await;
        self.permit
    }

    /// The turn itself, for a writer that has no group to commit (a remote database).
    pub(super) fn into_permit(self) -> OwnedSemaphorePermit {
        self.permit
    }

    /// Whether no writer is queued behind this one to join the group and commit it, or the group is full.
    fn last_in_line(&self) -> bool {
        self.writer.queued() == 0 || self.writer.group().members >= MAX_MEMBERS
    }

    /// Commits the open group and tells its members how it went; nothing when no group is open.
    async fn commit_group(&self) -> Result<(), libsql::Error> {
        let Some((conn, done)) = self.close_group() else { return Ok(()) };
        let result = conn.execute("COMMIT", ()).await.map(drop);
        if let Err(e) = &result {
            tracing::warn!(error = %e, "group commit failed");
            if !conn.is_autocommit() {
                let _ = conn.execute("ROLLBACK", ()).await;
            }
        }
        done.send_replace(Some(result.as_ref().map(drop).map_err(drop)));
        result
    }

    /// Rolls back the open group whose transaction is in an unknown state, failing every member.
    async fn fail_group(&self) {
        let Some((conn, done)) = self.close_group() else { return };
        if !conn.is_autocommit() {
            let _ = conn.execute("ROLLBACK", ()).await;
        }
        done.send_replace(Some(Err(())));
    }

    /// Marks the open group closed: its connection and the sender of its outcome, `None` if none was open.
    fn close_group(&self) -> Option<(Connection, watch::Sender<Outcome>)> {
        let mut group = self.writer.group();
        if !group.open {
            return None;
        }
        group.open = false;
        group.members = 0;
        let (conn, _) = group.conn.clone()?;
        let (fresh, _) = watch::channel(None);
        Some((conn, std::mem::replace(&mut group.done, fresh)))
    }

    /// Joins the open group, or begins one (retried within `retry_budget` while another process holds the
    /// lock): the member writes inside a savepoint of its own on the file's writer connection, which `connect`
    /// opens the first time.
    pub(super) async fn join<F, Fut>(self, retry_budget: Duration, connect: F) -> Result<Member, libsql::Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Connection, libsql::Error>>,
    {
        let (conn, open) = {
            let group = self.writer.group();
            (group.conn.clone(), group.open)
        };
        let (conn, stmts) = match conn {
            Some(conn) => conn,
            None => {
                let conn = (connect().await?, Arc::<Statements>::default());
                self.writer.group().conn = Some(conn.clone());
                conn
            }
        };
        if !open {
            retry(retry_budget, || conn.execute("BEGIN IMMEDIATE", ())).await?;
            self.writer.group().open = true;
        }
        if let Err(e) = conn.execute("SAVEPOINT member", ()).await {
            self.fail_group().await;
            return Err(e);
        }
        let outcome = {
            let mut group = self.writer.group();
            group.members += 1;
            group.done.subscribe()
        };
        Ok(Member { turn: Some(self), conn, stmts, outcome })
    }
}

/// Closes the savepoint of a member: kept or undone. A statement that ended the whole transaction (a full
/// disk, an I/O error) leaves the connection outside it: then the group is lost.
async fn close_savepoint(conn: &Connection, keep: bool) -> Result<(), libsql::Error> {
    if !keep {
        conn.execute("ROLLBACK TO member", ()).await?;
    }
    conn.execute("RELEASE member", ()).await?;
    if conn.is_autocommit() {
        return Err(overloaded("the group's transaction ended"));
    }
    Ok(())
}

/// One write transaction inside a group.
pub(super) struct Member {
    turn: Option<Turn>,
    conn: Connection,
    stmts: Arc<Statements>,
    outcome: watch::Receiver<Outcome>,
}

impl Member {
    /// The file's writer connection, inside this member's savepoint, and its prepared statements.
    pub(super) fn connection(&self) -> (&Connection, &Arc<Statements>) {
        (&self.conn, &self.stmts)
    }

    /// Ends this member's part, kept or undone, and returns once the group is committed.
    pub(super) async fn end(mut self, keep: bool) -> Result<(), libsql::Error> {
        let turn = self.turn.take().expect("a member has its turn until it ends");
        if let Err(e) = close_savepoint(&self.conn, keep).await {
            turn.fail_group().await;
            return Err(e);
        }
        if turn.last_in_line() {
            return turn.commit_group().await;
        }
        let writer = turn.writer.clone();
        // The writer queued behind joins this group, and commits it or hands it on in turn.
        drop(turn);
        let mut outcome = self.outcome.clone();
        loop {
            let committed = match tokio::time::timeout(HANDOVER_TIMEOUT, outcome.wait_for(Option::is_some)).await {
                Ok(Ok(done)) => Some(matches!(*done, Some(Ok(())))),
                Ok(Err(_)) => return Err(overloaded("the group commit was lost")),
                Err(_) => None,
            };
            match committed {
                Some(true) => return Ok(()),
                Some(false) => return Err(overloaded("the group commit failed")),
                None => {
                    // Nobody committed in time: while the outcome is unknown, the group is the open one.
                    let turn = writer.turn(QUEUE_TIMEOUT).await?;
                    if outcome.borrow().is_none() {
                        turn.commit_group().await?;
                    }
                }
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let Some(turn) = self.turn.take() else { return };
        let conn = self.conn.clone();
        // No runtime (process shutdown): SQLite rolls the open transaction back when the connection closes.
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        // Undo this member's part, then let the next writer in (the turn moves into the task); commit the
        // others' work when nobody is queued to do it.
        rt.spawn(async move {
            match close_savepoint(&conn, false).await {
                Ok(()) if turn.last_in_line() => {
                    let _ = turn.commit_group().await;
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "rollback of an abandoned transaction failed");
                    turn.fail_group().await;
                }
            }
        });
    }
}
