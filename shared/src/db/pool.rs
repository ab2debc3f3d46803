//! The process's database handle: connections, write transactions that cannot outlive their request, and
//! the retry policy for an overloaded database.
//!
//! - **Streams.** Against a remote libSQL server every connection is a Hrana stream that holds one of the
//!   server's connections until it is closed. A statement outside a transaction, and each write transaction,
//!   therefore runs on a connection of its own, checked out of the process's kept ones, and at most
//!   [`DbOptions::max_concurrency`] such statements run at once per process. A task never holds one slot
//!   while waiting for another, so nested use (a rate-limit check while a connection is checked out) cannot
//!   deadlock. A kept connection keeps its stream (for 5 s) and its prepared queries, so a query is one
//!   request, where libSQL alone sends a request to describe it first and opens a new stream for it.
//! - **Writers.** SQLite has one writer, so a process runs one write transaction at a time ([`WriteTx`]);
//!   the others queue in the process (up to API Gateway's 29 s) instead of holding server connections while
//!   they wait for the lock. On a local file, the transactions that queue are committed together (see
//!   [`super::group`]).
//!   A [`WriteTx`] that is dropped without `commit` rolls back before the next writer may begin, on every
//!   path: an error, an early return, a panic.
//! - **Overload.** A busy or locked database, a server that refuses connections (Hrana 429) or cannot be
//!   reached is retried with jittered back-off within [`DbOptions::retry_budget`] when nothing was executed
//!   (a statement outside a transaction, a `BEGIN`), then reported as [`super::Overloaded`]: 503
//!   `service_unavailable` with `Retry-After`, never 500 ([`super::overload`]).

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use libsql::params::IntoParams;
use libsql::{Connection, Database, Row, Transaction, TransactionBehavior};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::group::{Member, Writer};
use super::overload::{QUEUE_TIMEOUT, overloaded};
use super::statements::{Lease, Statements};
use crate::secret::Secret;

/// Connections kept open for reuse; more are opened on demand and closed when returned.
const MAX_IDLE: usize = 32;

/// How the database layer shares the database with the rest of the world.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// libSQL server namespace (sent as `x-namespace`), for a self-hosted `sqld` with namespaces.
    pub namespace: Option<String>,
    /// Remote connections checked out at once by this process.
    pub max_concurrency: usize,
    /// How long an overloaded database is retried before the request gives up with 503.
    pub retry_budget: Duration,
    /// How long a kept remote connection keeps its stream for its next request. sqld expires a stream after
    /// 10 s without one; a connection idle for longer starts a new stream (its prepared queries stay valid).
    pub stream_idle: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            max_concurrency: 16,
            retry_budget: Duration::from_secs(2),
            stream_idle: Duration::from_secs(5),
        }
    }
}

/// Whether `err` is a server's answer that it does not know the stream a request was sent on: it expired
/// (sqld: after 10 s without a request) or the server restarted. Nothing was executed.
fn is_lost_stream(err: &libsql::Error) -> bool {
    let text = err.to_string();
    ["STREAM_EXPIRED", "stream has expired", "invalid baton", "Stream for this baton was closed"]
        .iter()
        .any(|needle| text.contains(needle))
}

/// The per-process limits every connection shares.
pub(super) struct Limits {
    /// Remote only: the server's connections, and how many statements may run at once outside a transaction.
    remote: Option<Remote>,
    /// One write transaction at a time (on a local file, one group of them).
    writer: Arc<Writer>,
    retry_budget: Duration,
}

impl Limits {
    async fn acquire(
        &self,
        semaphore: &Arc<Semaphore>,
        what: &'static str,
    ) -> Result<OwnedSemaphorePermit, libsql::Error> {
        match tokio::time::timeout(QUEUE_TIMEOUT, semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(overloaded(what)),
        }
    }

    /// Keeps a remote connection for reuse ([`Remote::checkin`]).
    fn keep(&self, kept: RemoteConn) {
        if let Some(remote) = &self.remote {
            remote.checkin(kept);
        }
    }

    /// Runs `op` until it succeeds, fails for another reason than overload, or the budget is spent.
    pub(super) async fn retry<T, F, Fut>(&self, op: F) -> Result<T, libsql::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, libsql::Error>>,
    {
        super::overload::retry(self.retry_budget, op).await
    }
}

/// The connections of a remote libSQL server, kept with their streams and prepared statements.
///
/// libSQL's remote client describes every statement it prepares in a request of its own, and prepares every
/// query; a fresh connection also opens a fresh stream, which is a fresh connection on the server. A query on a
/// kept connection whose statement is cached is one request on a stream the server already has.
struct Remote {
    database: Arc<Database>,
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<RemoteConn>>,
    stream_idle: Duration,
}

/// A remote connection with the queries prepared on it, checked out by one statement or transaction at a time.
pub(super) struct RemoteConn {
    conn: Connection,
    /// Queries only: an `execute` of libSQL's own computes whether it ends the stream from the transaction
    /// state at the time, where a prepared statement fixed it when prepared.
    stmts: Arc<Statements>,
    used: Instant,
}

impl Remote {
    /// The most recently used idle connection, else a new one (which opens its stream on its first request).
    async fn checkout(&self) -> Result<RemoteConn, libsql::Error> {
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        match idle {
            Some(kept) => {
                if kept.used.elapsed() >= self.stream_idle {
                    // Forget a stream the server may have expired; the next request opens a new one.
                    kept.conn.reset().await;
                }
                Ok(kept)
            }
            None => Ok(RemoteConn { conn: self.database.connect()?, stmts: Arc::default(), used: Instant::now() }),
        }
    }

    /// Runs `run` on a kept connection; if the server no longer knows its stream (it expired, or the server
    /// restarted), which it says before executing anything, once more on a new stream.
    async fn run<T, Fut>(
        &self,
        run: impl Fn(Connection, Option<Arc<Statements>>) -> Fut,
    ) -> Result<(T, RemoteConn), libsql::Error>
    where
        Fut: Future<Output = Result<T, libsql::Error>>,
    {
        let kept = self.checkout().await?;
        match run(kept.conn.clone(), Some(kept.stmts.clone())).await {
            Ok(out) => Ok((out, kept)),
            Err(e) if is_lost_stream(&e) => {
                tracing::debug!(error = %e, "database stream lost; starting a new one");
                kept.conn.reset().await;
                let out = run(kept.conn.clone(), Some(kept.stmts.clone())).await?;
                Ok((out, kept))
            }
            // The connection is dropped, and with it a stream in an unknown state.
            Err(e) => Err(e),
        }
    }

    /// Keeps `kept` for reuse: only a connection that is known to be outside a transaction, with no statement
    /// mid-way, comes back (any failure drops it, which closes its stream).
    fn checkin(&self, mut kept: RemoteConn) {
        if !kept.conn.is_autocommit() {
            return;
        }
        kept.used = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(kept);
        }
    }
}

/// The writer of a database, shared by every [`Db`] of this process on that database (the local stack runs
/// each function with a database handle of its own): SQLite has one writer per database, and writers that met
/// at its lock instead of this queue would sleep in its busy handler (or the server's) instead of queueing.
/// `key` names the database: a file's canonical path, or a server's URL and namespace.
fn shared_writer(key: String) -> Arc<Writer> {
    use std::collections::HashMap;
    use std::sync::{OnceLock, Weak};
    static WRITERS: OnceLock<Mutex<HashMap<String, Weak<Writer>>>> = OnceLock::new();
    let mut writers = WRITERS.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    writers.retain(|_, w| w.strong_count() > 0);
    if let Some(writer) = writers.get(&key).and_then(Weak::upgrade) {
        return writer;
    }
    let writer = Arc::new(Writer::new());
    writers.insert(key, Arc::downgrade(&writer));
    writer
}

/// Whether `sql` changes the database (by its first keyword): outside a transaction such a statement is its
/// own write transaction, so on a local file it takes the writer slot like [`WriteTx`] does.
fn is_write(sql: &str) -> bool {
    let sql = sql.trim_start().as_bytes();
    [&b"INSERT"[..], b"UPDATE", b"DELETE", b"REPLACE"]
        .iter()
        .any(|k| sql.get(..k.len()).is_some_and(|w| w.eq_ignore_ascii_case(k)))
}

/// The database of the process: embedded file or remote libSQL server.
pub struct Db {
    database: Arc<Database>,
    local: bool,
    /// Idle local connections, each with its prepared statements.
    idle: Mutex<Vec<(Connection, Arc<Statements>)>>,
    limits: Arc<Limits>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("local", &self.local).finish_non_exhaustive()
    }
}

impl Db {
    /// Opens `url` with the default [`DbOptions`]: `file:<path>` or a bare path for an embedded file,
    /// `libsql://`, `https://` or `http://` for a remote libSQL server (with `auth_token`).
    pub async fn open(url: &str, auth_token: Option<&Secret>) -> anyhow::Result<Self> {
        Self::open_with(url, auth_token, DbOptions::default()).await
    }

    /// Opens `url` (see [`Db::open`]) with `options`.
    pub async fn open_with(url: &str, auth_token: Option<&Secret>, options: DbOptions) -> anyhow::Result<Self> {
        let remote = ["libsql://", "https://", "http://", "wss://", "ws://"].iter().any(|p| url.starts_with(p));
        let (database, writer, needs_wal) = if remote {
            let token = auth_token.map(|t| t.expose().to_owned()).unwrap_or_default();
            let mut builder =
                libsql::Builder::new_remote(url.to_owned(), token).connector(super::connector::remote_connector());
            if let Some(namespace) = &options.namespace {
                builder = builder.namespace(namespace.clone());
            }
            let key = format!("{url}#{}", options.namespace.as_deref().unwrap_or_default());
            (builder.build().await.context("open remote database")?, shared_writer(key), false)
        } else {
            open_file(url).await?
        };
        let database = Arc::new(database);
        let remote = remote.then(|| Remote {
            database: database.clone(),
            slots: Arc::new(Semaphore::new(options.max_concurrency.max(1))),
            idle: Mutex::new(Vec::new()),
            stream_idle: options.stream_idle,
        });
        let local = remote.is_none();
        let limits = Arc::new(Limits { remote, writer, retry_budget: options.retry_budget });
        let db = Self { database, local, idle: Mutex::new(Vec::new()), limits };
        if needs_wal {
            let conn = db.conn().await?;
            // journal_mode returns a row, so it is a query, not an execute.
            let mut rows = conn.query("PRAGMA journal_mode=WAL", ()).await.context("enable WAL")?;
            while rows.next().await?.is_some() {}
        }
        Ok(db)
    }

    /// Whether this is a database file, written by this process's one group-committing writer connection,
    /// rather than a libSQL server.
    pub fn is_file(&self) -> bool {
        self.local
    }

    /// A connection for this task; a local one goes back to the pool when dropped.
    pub async fn conn(&self) -> Result<PooledConn<'_>, libsql::Error> {
        let reused =
            if self.local { self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop() } else { None };
        let (inner, stmts) = match reused {
            Some((c, stmts)) => (c, Some(stmts)),
            None => (self.connect().await?, self.local.then(Arc::default)),
        };
        Ok(PooledConn { conn: Some(Conn { inner, stmts, in_tx: false, limits: self.limits.clone() }), db: self })
    }

    /// A new connection, set up for this process's use.
    async fn connect(&self) -> Result<Connection, libsql::Error> {
        let c = self.database.connect()?;
        if self.local {
            // SQLite's own wait for the lock; the retry loop adds a second chance within the budget.
            c.busy_timeout(self.limits.retry_budget / 2)?;
            c.execute("PRAGMA foreign_keys=ON", ()).await?;
            c.execute("PRAGMA synchronous=NORMAL", ()).await?;
        }
        Ok(c)
    }
}

/// Opens the database file `url` names (`file:<path>` or a bare path) and its process-wide writer; and whether
/// the file still needs switching to WAL mode.
#[cfg(feature = "embedded")]
async fn open_file(url: &str) -> anyhow::Result<(Database, Arc<Writer>, bool)> {
    use std::path::Path;
    let path = url.strip_prefix("file://").or_else(|| url.strip_prefix("file:")).unwrap_or(url);
    if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).context("create database directory")?;
    }
    owner_only_file(Path::new(path))?;
    let needs_wal = !in_wal_mode(Path::new(path));
    let database = libsql::Builder::new_local(path).build().await.context("open database file")?;
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
    Ok((database, shared_writer(key.to_string_lossy().into_owned()), needs_wal))
}

/// Whether the database file at `path` is in WAL mode already (its header's write and read versions are 2),
/// which is then no statement's business: `PRAGMA journal_mode`, like `synchronous` and any other statement
/// that needs the schema, makes SQLite parse all of it, a fifth of a function's cold start, which the cold
/// start leaves to its schema check running in the background (`shared::lambda`).
#[cfg(feature = "embedded")]
fn in_wal_mode(path: &std::path::Path) -> bool {
    use std::io::Read as _;
    let mut header = [0u8; 20];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)).is_ok()
        && header.starts_with(b"SQLite format 3\0")
        && header[18..20] == [2, 2]
}

/// A build for AWS opens only a libSQL server: the embedded SQLite (the `embedded` feature, which the local
/// stack, the tests and `cargo lambda watch` turn on) would add about 0.8 MiB to every zipped function.
#[cfg(not(feature = "embedded"))]
async fn open_file(_url: &str) -> anyhow::Result<(Database, Arc<Writer>, bool)> {
    anyhow::bail!(
        "DATABASE_URL must name a libSQL server (libsql://, https:// or http://): this build has no embedded \
         database (the `embedded` feature of `shared`)"
    )
}

/// Creates (or restricts) the database file with mode 0600 before SQLite opens it: it holds phone numbers and
/// password hashes, and SQLite gives its `-wal` and `-shm` files the database file's mode.
#[cfg(feature = "embedded")]
fn owner_only_file(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("open database file {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restrict database file {}", path.display()))?;
    for suffix in ["-wal", "-shm"] {
        let side = path.with_file_name(format!("{}{suffix}", path.file_name().unwrap_or_default().to_string_lossy()));
        if side.exists() {
            std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restrict {}", side.display()))?;
        }
    }
    Ok(())
}

/// A connection, or the connection of an open write transaction: what every query function takes.
///
/// Outside a transaction a statement that found the database overloaded is retried (it was not executed);
/// inside one it fails at once and the transaction rolls back.
pub struct Conn {
    inner: Connection,
    /// A local connection's prepared statements ([`super::statements`]); `None` for a remote one.
    pub(super) stmts: Option<Arc<Statements>>,
    in_tx: bool,
    limits: Arc<Limits>,
}

impl Conn {
    /// Runs a query and returns its rows.
    pub async fn query(&self, sql: &str, params: impl IntoParams) -> Result<Rows, libsql::Error> {
        let params = params.into_params()?;
        if self.in_tx {
            let (inner, lease) = query_on(&self.inner, self.stmts.as_ref(), sql, params).await?;
            return Ok(Rows { inner, lease, _slot: None, home: None, done: false });
        }
        // The rows keep a remote statement's connection (and its slot) until they are dropped; it is kept for
        // reuse if they were read to the end.
        let ((inner, lease), slot, home) = self
            .autocommit(sql, |c, stmts| {
                let params = params.clone();
                async move { query_on(&c, stmts.as_ref(), sql, params).await }
            })
            .await?;
        let home = home.map(|kept| (kept, self.limits.clone()));
        Ok(Rows { inner, lease, _slot: slot, home, done: false })
    }

    /// Runs a statement and returns the number of rows it changed.
    pub async fn execute(&self, sql: &str, params: impl IntoParams) -> Result<u64, libsql::Error> {
        let params = params.into_params()?;
        if self.in_tx {
            let changed = execute_on(&self.inner, self.prepared_writes(), sql, params).await?;
            if self.inner.is_autocommit() {
                // The server ended the transaction under us (sqld rolls back one that held the lock past
                // its timeout while others waited): stop here instead of going on outside a transaction.
                return Err(overloaded("the server ended the transaction"));
            }
            return Ok(changed);
        }
        // Outside a transaction the request that executes a remote statement also closes its stream.
        let local = self.limits.remote.is_none();
        let (changed, _slot, home) = self
            .autocommit(sql, |c, stmts| {
                let params = params.clone();
                async move { execute_on(&c, stmts.as_ref().filter(|_| local), sql, params).await }
            })
            .await?;
        if let Some(kept) = home {
            self.limits.keep(kept);
        }
        Ok(changed)
    }

    /// The prepared statements `execute` uses: a local connection's. libSQL's remote client sends a statement
    /// to be executed in one request, but one it prepares costs a request more (it describes it first), and a
    /// prepared one would keep the choice, made when it was prepared, of whether it ends the stream.
    fn prepared_writes(&self) -> Option<&Arc<Statements>> {
        self.stmts.as_ref().filter(|_| self.limits.remote.is_none())
    }

    /// Runs `run` (statement `sql`) outside a transaction, retried while the database is overloaded: locally
    /// on this connection (with its prepared statements), a write under the writer slot; remotely on a kept
    /// connection (with its prepared queries) under one of the process's slots. The slot and the remote
    /// connection are returned with the result (rows keep them until they are dropped).
    async fn autocommit<T, Fut>(
        &self,
        sql: &str,
        run: impl Fn(Connection, Option<Arc<Statements>>) -> Fut,
    ) -> Result<(T, Option<OwnedSemaphorePermit>, Option<RemoteConn>), libsql::Error>
    where
        Fut: Future<Output = Result<T, libsql::Error>>,
    {
        let write = is_write(sql);
        self.limits
            .retry(|| async {
                match &self.limits.remote {
                    None if write => {
                        let turn = self.limits.writer.turn(QUEUE_TIMEOUT).await?;
                        let writer = turn.flush().await;
                        Ok((run(self.inner.clone(), self.stmts.clone()).await?, Some(writer), None))
                    }
                    None => Ok((run(self.inner.clone(), self.stmts.clone()).await?, None, None)),
                    Some(remote) => {
                        let slot = self.limits.acquire(&remote.slots, "no free connection").await?;
                        let (out, kept) = remote.run(&run).await?;
                        Ok((out, Some(slot), Some(kept)))
                    }
                }
            })
            .await
    }

    /// Runs several `;`-separated statements without parameters (migrations).
    pub async fn execute_batch(&self, sql: &str) -> Result<(), libsql::Error> {
        self.inner.execute_batch(sql).await.map(drop)
    }

    /// The libSQL connection itself, without retries or the writer queue: for tools and tests that arrange
    /// what another process would do.
    pub fn raw(&self) -> &Connection {
        &self.inner
    }

    /// Whether no transaction is open on this connection.
    pub fn is_autocommit(&self) -> bool {
        self.inner.is_autocommit()
    }
}

/// The rows of a query. Against a remote server they hold the statement's connection (and its slot) until
/// dropped, so read them out and let them go.
pub struct Rows {
    inner: libsql::Rows,
    /// A statement's lease: back to its cache once the rows are dropped.
    lease: Option<Lease>,
    _slot: Option<OwnedSemaphorePermit>,
    /// A remote connection outside a transaction, kept for reuse when the rows were read to their end (a
    /// cursor left mid-way may still run on the server).
    home: Option<(RemoteConn, Arc<Limits>)>,
    done: bool,
}

impl Drop for Rows {
    fn drop(&mut self) {
        let Some((kept, limits)) = self.home.take() else { return };
        // A remote statement goes back first (it holds no cursor: the rows do), so that whoever takes the
        // connection next finds it cached.
        drop(self.lease.take());
        if self.done {
            limits.keep(kept);
        }
    }
}

/// Runs the query `sql` on `conn`, through its prepared statements when it has them.
async fn query_on(
    conn: &Connection,
    stmts: Option<&Arc<Statements>>,
    sql: &str,
    params: libsql::params::Params,
) -> Result<(libsql::Rows, Option<Lease>), libsql::Error> {
    match stmts {
        Some(stmts) => stmts.query(conn, sql, params).await.map(|(rows, lease)| (rows, Some(lease))),
        None => Ok((conn.query(sql, params).await?, None)),
    }
}

/// Runs the statement `sql` on `conn`, through its prepared statements when it has them.
async fn execute_on(
    conn: &Connection,
    stmts: Option<&Arc<Statements>>,
    sql: &str,
    params: libsql::params::Params,
) -> Result<u64, libsql::Error> {
    match stmts {
        Some(stmts) => stmts.execute(conn, sql, params).await,
        None => conn.execute(sql, params).await,
    }
}

impl Rows {
    /// The next row, `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Row>, libsql::Error> {
        let row = self.inner.next().await?;
        self.done = row.is_none();
        Ok(row)
    }
}

/// A checked-out connection; derefs to [`Conn`].
pub struct PooledConn<'a> {
    conn: Option<Conn>,
    db: &'a Db,
}

impl PooledConn<'_> {
    /// Starts a write transaction (`BEGIN IMMEDIATE`: deferred read-then-write transactions fail with
    /// "database is locked" under concurrency), after the process's previous writer has finished. On a local
    /// file it joins the group of transactions committed together ([`super::group`]).
    pub async fn write_tx(&self) -> Result<WriteTx<'_>, libsql::Error> {
        self.write_tx_queued(usize::MAX).await
    }

    /// Starts a write transaction like [`PooledConn::write_tx`], unless `max_queued` writers of this process
    /// already wait for the database: then it fails at once as overloaded (back-pressure instead of a queue
    /// that grows with the load).
    pub async fn write_tx_queued(&self, max_queued: usize) -> Result<WriteTx<'_>, libsql::Error> {
        let limits = &self.db.limits;
        if limits.writer.queued() >= max_queued {
            return Err(overloaded("too many writers queued"));
        }
        let turn = limits.writer.turn(QUEUE_TIMEOUT).await?;
        if self.db.local {
            let member = turn.join(limits.retry_budget, || self.db.connect()).await?;
            let (inner, stmts) = member.connection();
            let conn = Conn { inner: inner.clone(), stmts: Some(stmts.clone()), in_tx: true, limits: limits.clone() };
            return Ok(WriteTx { end: Some(Ending::Group(member)), conn, _conn: std::marker::PhantomData });
        }
        self.own_tx(turn.into_permit()).await
    }

    /// A write transaction of its own, never a member of a group commit: for the bounded steps of bulk work
    /// ([`crate::bulk`]). A short writer queued behind such a step then commits as soon as the step has,
    /// instead of joining a group with the steps after it (a group commits only when its last member is
    /// done). On a local file it first commits the open group, like a writer outside a transaction.
    pub async fn write_tx_alone(&self) -> Result<WriteTx<'_>, libsql::Error> {
        let limits = &self.db.limits;
        let turn = limits.writer.turn(QUEUE_TIMEOUT).await?;
        let writer = if self.db.local { turn.flush().await } else { turn.into_permit() };
        self.own_tx(writer).await
    }

    /// `BEGIN IMMEDIATE` on this connection (remotely: on a kept one), holding the process's `writer` turn
    /// until it ends.
    async fn own_tx(&self, writer: OwnedSemaphorePermit) -> Result<WriteTx<'_>, libsql::Error> {
        let limits = &self.db.limits;
        if let Some(remote) = &limits.remote {
            // On a kept stream, with its prepared queries: libSQL's own transactions open a stream (a server
            // connection) each and describe every query in a request of its own.
            let begin = |c: Connection, _| async move { c.execute("BEGIN IMMEDIATE", ()).await };
            let (_, kept) = limits.retry(|| remote.run(begin)).await?;
            let conn =
                Conn { inner: kept.conn.clone(), stmts: Some(kept.stmts.clone()), in_tx: true, limits: limits.clone() };
            return Ok(WriteTx { end: Some(Ending::Remote(kept, writer)), conn, _conn: std::marker::PhantomData });
        }
        let tx = limits.retry(|| self.inner.transaction_with_behavior(TransactionBehavior::Immediate)).await?;
        let conn = Conn { inner: (*tx).clone(), stmts: self.stmts.clone(), in_tx: true, limits: limits.clone() };
        Ok(WriteTx { end: Some(Ending::Own(tx, writer)), conn, _conn: std::marker::PhantomData })
    }
}

impl Deref for PooledConn<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // A local connection left inside a transaction is not reused.
        if self.db.local && conn.inner.is_autocommit() {
            let mut idle = self.db.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < MAX_IDLE
                && let Some(stmts) = conn.stmts
            {
                idle.push((conn.inner, stmts));
            }
        }
    }
}

/// An open write transaction; derefs to [`Conn`]. It ends with [`WriteTx::commit`] or
/// [`WriteTx::rollback`]; dropped on any other path, it rolls back, and the process's next writer begins
/// only after that rollback.
pub struct WriteTx<'c> {
    end: Option<Ending>,
    conn: Conn,
    _conn: std::marker::PhantomData<&'c ()>,
}

/// How a write transaction ends.
enum Ending {
    /// A transaction of its own on a local file (bulk work), with the process's writer slot.
    Own(Transaction, OwnedSemaphorePermit),
    /// A transaction on a kept remote connection, with the process's writer slot.
    Remote(RemoteConn, OwnedSemaphorePermit),
    /// A member of the file's group commit.
    Group(Member),
}

impl WriteTx<'_> {
    /// Commits the transaction (on a local file: returns once its group is committed).
    pub async fn commit(mut self) -> Result<(), libsql::Error> {
        match self.end.take().expect("transaction present until it ends") {
            Ending::Group(member) => member.end(true).await,
            Ending::Own(tx, _writer) => {
                let result = tx.commit().await;
                if result.is_err() && !self.conn.inner.is_autocommit() {
                    // A failed COMMIT leaves the transaction open on a connection: end it here.
                    let _ = self.conn.inner.execute("ROLLBACK", ()).await;
                }
                result
            }
            Ending::Remote(kept, _writer) => {
                // `COMMIT` also ends the stream, failed or not (the server then rolls back what is open).
                kept.conn.execute("COMMIT", ()).await?;
                self.conn.limits.keep(kept);
                Ok(())
            }
        }
    }

    /// Rolls the transaction back (on a local file: returns once what it read from its group is committed).
    pub async fn rollback(mut self) -> Result<(), libsql::Error> {
        match self.end.take().expect("transaction present until it ends") {
            Ending::Group(member) => member.end(false).await,
            Ending::Own(tx, _writer) => tx.rollback().await,
            Ending::Remote(kept, _writer) => {
                kept.conn.execute("ROLLBACK", ()).await?;
                self.conn.limits.keep(kept);
                Ok(())
            }
        }
    }
}

impl Deref for WriteTx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        match self.end.take() {
            None => {}
            // The member rolls its part back before the next writer joins.
            Some(Ending::Group(member)) => drop(member),
            Some(Ending::Own(tx, writer)) => match tokio::runtime::Handle::try_current() {
                // Roll back, then let the next writer in (the permit moves into the task).
                Ok(rt) => {
                    rt.spawn(async move {
                        if let Err(e) = tx.rollback().await {
                            tracing::warn!(error = %e, "rollback of an abandoned transaction failed");
                        }
                        drop(writer);
                    });
                }
                // No runtime (process shutdown): libSQL's own drop rolls back as well as it can.
                Err(_) => drop(tx),
            },
            Some(Ending::Remote(kept, writer)) => match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let limits = self.conn.limits.clone();
                    rt.spawn(async move {
                        match kept.conn.execute("ROLLBACK", ()).await {
                            Ok(_) => limits.keep(kept),
                            Err(e) => tracing::warn!(error = %e, "rollback of an abandoned transaction failed"),
                        }
                        drop(writer);
                    });
                }
                // No runtime: the server rolls back when the stream expires.
                Err(_) => drop((kept, writer)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::is_overloaded;

    #[tokio::test]
    async fn a_database_file_is_switched_to_wal_once_and_then_recognised_as_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        assert!(!in_wal_mode(&path), "no file");
        std::fs::write(&path, b"not a database, but twenty bytes long at least").unwrap();
        assert!(!in_wal_mode(&path), "not SQLite");
        std::fs::remove_file(&path).unwrap();
        let url = format!("file:{}", path.display());
        let db = Db::open(&url, None).await.unwrap();
        assert!(in_wal_mode(&path), "the first open switched it");
        drop(db);
        // Opened again, it is in WAL mode without the pragma: a write still goes to the WAL.
        let db = Db::open(&url, None).await.unwrap();
        let conn = db.conn().await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)", ()).await.unwrap();
        let mode = crate::db::value::<String>(conn.query("PRAGMA journal_mode", ()).await.unwrap()).await.unwrap();
        assert_eq!(mode.as_deref(), Some("wal"));
        assert!(path.with_file_name("w.db-wal").exists());
    }

    async fn file_db(dir: &tempfile::TempDir, budget: Duration) -> Db {
        let url = format!("file:{}", dir.path().join("p.db").display());
        let db = Db::open_with(&url, None, DbOptions { retry_budget: budget, ..DbOptions::default() }).await.unwrap();
        db.conn().await.unwrap().execute("CREATE TABLE t (x INTEGER)", ()).await.unwrap();
        db
    }

    async fn count(db: &Db) -> i64 {
        let conn = db.conn().await.unwrap();
        super::super::value::<i64>(conn.query("SELECT COUNT(*) FROM t", ()).await.unwrap()).await.unwrap().unwrap()
    }

    #[test]
    fn writes_are_told_from_reads_by_their_first_keyword() {
        for w in ["INSERT INTO t VALUES (1)", "  update t SET x = 1", "DELETE FROM t", "replace into t values (1)"] {
            assert!(is_write(w), "{w}");
        }
        for r in ["SELECT 1", "PRAGMA journal_mode=WAL", "", "INSER"] {
            assert!(!is_write(r), "{r}");
        }
    }

    #[tokio::test]
    async fn a_write_outside_a_transaction_queues_behind_a_writer_of_another_handle_instead_of_failing() {
        // Two handles on one file, as the local stack's functions have; a retry budget far shorter than the
        // transaction, so a statement that met SQLite's lock would give up as overloaded.
        let dir = tempfile::tempdir().unwrap();
        let a = file_db(&dir, Duration::from_millis(40)).await;
        let b = file_db_again(&dir, Duration::from_millis(40)).await;
        let conn = a.conn().await.unwrap();
        let tx = conn.write_tx().await.unwrap();
        tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let insert = tokio::spawn(async move {
            let conn = b.conn().await.unwrap();
            conn.execute("INSERT INTO t VALUES (2)", ()).await.map(|_| ())
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!insert.is_finished(), "it waits for the writer");
        tx.commit().await.unwrap();
        insert.await.unwrap().expect("it ran once the writer was done");
        drop(conn);
        assert_eq!(count(&a).await, 2);
    }

    async fn file_db_again(dir: &tempfile::TempDir, budget: Duration) -> Db {
        let url = format!("file:{}", dir.path().join("p.db").display());
        Db::open_with(&url, None, DbOptions { retry_budget: budget, ..DbOptions::default() }).await.unwrap()
    }

    #[tokio::test]
    async fn a_dropped_transaction_rolls_back_before_the_next_writer_begins() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir, Duration::from_secs(2)).await;
        for _ in 0..20 {
            let conn = db.conn().await.unwrap();
            let tx = conn.write_tx().await.unwrap();
            tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
            drop(tx); // an early return or `?` between the write and the commit
        }
        let conn = db.conn().await.unwrap();
        let tx = conn.write_tx().await.unwrap();
        tx.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        tx.commit().await.unwrap();
        drop(conn);
        assert_eq!(count(&db).await, 1, "only the committed row is there");
    }

    #[tokio::test]
    async fn a_panic_inside_a_transaction_rolls_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(file_db(&dir, Duration::from_secs(2)).await);
        let task = tokio::spawn({
            let db = db.clone();
            async move {
                let conn = db.conn().await.unwrap();
                let tx = conn.write_tx().await.unwrap();
                tx.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
                panic!("handler bug");
            }
        });
        assert!(task.await.unwrap_err().is_panic());
        let conn = db.conn().await.unwrap();
        let tx = conn.write_tx().await.expect("the lock was released");
        tx.commit().await.unwrap();
        drop(conn);
        assert_eq!(count(&db).await, 0);
    }

    #[tokio::test]
    async fn a_lock_held_past_the_budget_is_reported_as_overload_and_then_clears() {
        let dir = tempfile::tempdir().unwrap();
        let db = file_db(&dir, Duration::from_millis(300)).await;
        // Another process holds the write lock.
        let other = libsql::Builder::new_local(dir.path().join("p.db")).build().await.unwrap();
        let holder = other.connect().unwrap();
        holder.execute("BEGIN IMMEDIATE", ()).await.unwrap();

        let conn = db.conn().await.unwrap();
        let err = conn.execute("INSERT INTO t VALUES (1)", ()).await.unwrap_err();
        assert!(is_overloaded(&err), "{err}");
        let Err(err) = conn.write_tx().await else { panic!("BEGIN IMMEDIATE must fail while the lock is held") };
        assert!(is_overloaded(&err), "{err}");
        assert!(crate::db::chain_is_overloaded(&anyhow::Error::new(err).context("send message")));

        holder.execute("COMMIT", ()).await.unwrap();
        conn.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        drop(conn);
        assert_eq!(count(&db).await, 1);
    }

    #[tokio::test]
    async fn writers_of_one_process_queue_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(file_db(&dir, Duration::from_secs(5)).await);
        let mut tasks = Vec::new();
        for i in 0..50 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let conn = db.conn().await.unwrap();
                let tx = conn.write_tx().await.unwrap();
                let n = super::super::value::<i64>(tx.query("SELECT COUNT(*) FROM t", ()).await.unwrap()).await;
                tokio::task::yield_now().await;
                tx.execute("INSERT INTO t VALUES (?1)", [n.unwrap().unwrap() + i]).await.unwrap();
                tx.commit().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(count(&db).await, 50);
    }

    /// The integers of a query on a connection outside the pool.
    async fn raw_ints(conn: &libsql::Connection, sql: &str) -> Vec<i64> {
        let mut rows = conn.query(sql, ()).await.unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            out.push(row.get::<i64>(0).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_writer_queued_behind_another_joins_its_group_and_only_its_own_part_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(file_db(&dir, Duration::from_secs(2)).await);
        // Another connection to the file sees only what is committed.
        let observer = libsql::Builder::new_local(dir.path().join("p.db")).build().await.unwrap().connect().unwrap();
        let conn = db.conn().await.unwrap();
        let first = conn.write_tx().await.unwrap();
        first.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        let second = tokio::spawn({
            let db = db.clone();
            let observer = observer.clone();
            async move {
                let conn = db.conn().await.unwrap();
                let tx = conn.write_tx().await.unwrap();
                let inside = super::super::value::<i64>(tx.query("SELECT COUNT(*) FROM t", ()).await.unwrap()).await;
                let outside = raw_ints(&observer, "SELECT COUNT(*) FROM t").await;
                tx.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
                // Dropped without commit: an error path of a handler.
                (inside.unwrap(), outside.first().copied())
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        first.commit().await.expect("the group committed the first writer's row");
        let (inside, outside) = second.await.unwrap();
        assert_eq!((inside, outside), (Some(1), Some(0)), "one transaction: the first row was not yet committed");
        drop(conn);
        let rows = raw_ints(&observer, "SELECT x FROM t").await;
        assert_eq!(rows, [1], "the dropped member's row is gone, the committed one is there");
    }

    #[tokio::test]
    async fn a_commit_returns_only_once_its_row_is_committed_for_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(file_db(&dir, Duration::from_secs(5)).await);
        let observer = libsql::Builder::new_local(dir.path().join("p.db")).build().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..64 {
            let db = db.clone();
            let observer = observer.connect().unwrap();
            tasks.push(tokio::spawn(async move {
                let conn = db.conn().await.unwrap();
                let tx = conn.write_tx().await.unwrap();
                tx.execute("INSERT INTO t VALUES (?1)", [i]).await.unwrap();
                // Let the other writers queue behind this one, so that groups form.
                tokio::task::yield_now().await;
                if i % 5 == 0 {
                    tx.rollback().await.unwrap();
                    return;
                }
                tx.commit().await.unwrap();
                let rows = raw_ints(&observer, &format!("SELECT COUNT(*) FROM t WHERE x = {i}")).await;
                assert_eq!(rows, [1], "row {i} committed");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(count(&db).await, 64 - 13);
    }
}
