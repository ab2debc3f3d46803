//! The remote database path request by request: what the process asks a libSQL server (sqld, Turso), counted
//! by a TCP proxy in front of a real one. On AWS every request is a round trip, so these counts are latency.
//!
//! These run against the server `TEST_DATABASE_URL` names, in a namespace of their own
//! (`tests/scripts/sqld-suite.sh`, a stage of `.ci/run`); with a database file there is no request to count,
//! and they say so and pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use messenger_tests::create_namespace_with;
use shared::db::{Db, DbOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A server to count requests to, or `None` (with a note) when the suite runs on files.
fn server() -> Option<(String, String)> {
    match (std::env::var("TEST_DATABASE_URL"), std::env::var("TEST_SQLD_ADMIN_URL")) {
        (Ok(url), Ok(admin)) => Some((url, admin)),
        _ => {
            eprintln!("no libSQL server (TEST_DATABASE_URL and TEST_SQLD_ADMIN_URL): nothing to count");
            None
        }
    }
}

/// A proxy in front of `upstream` (`http://host:port`) that counts the HTTP requests passing through it.
struct Counter {
    url: String,
    seen: Arc<Seen>,
}

/// What the proxy saw, shared by its connections.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    /// Hold the last bytes of every chunked response (`0\r\n\r\n`) back for [`HOLD`] before passing them on.
    hold_ends: AtomicBool,
    /// Connections the client closed while the end of a response was held back: it abandoned the response.
    abandoned: AtomicUsize,
    /// Connections the client opened.
    connections: AtomicUsize,
    /// Close a connection idle this many milliseconds, as a server does (0: never).
    close_idle_ms: AtomicU64,
}

/// How long the end of a response is held back (see [`Seen::hold_ends`]).
const HOLD: Duration = Duration::from_millis(300);

impl Counter {
    async fn start(upstream: &str) -> Self {
        let target = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Seen::default());
        let shared = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&target).await else { continue };
                tokio::spawn(relay(client, server, shared.clone()));
            }
        });
        Self { url, seen }
    }

    /// Requests since the last call.
    fn take(&self) -> usize {
        self.seen.requests.swap(0, Ordering::SeqCst)
    }
}

/// Copies both ways until either side closes, or the connection has been idle for
/// [`Seen::close_idle_ms`].
async fn relay(client: TcpStream, server: TcpStream, seen: Arc<Seen>) {
    let start = Instant::now();
    let active = Arc::new(AtomicU64::new(0));
    let copying = copy_both_ways(client, server, seen.clone(), start, active.clone());
    let idle_close = async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let limit = seen.close_idle_ms.load(Ordering::SeqCst);
            let idle = (start.elapsed().as_millis() as u64).saturating_sub(active.load(Ordering::SeqCst));
            if limit > 0 && idle >= limit {
                return;
            }
        }
    };
    // Dropping the copies closes both sockets.
    tokio::select! {
        () = copying => {}
        () = idle_close => {}
    }
}

/// Copies both ways; counts request lines (`POST /…`) from the client. Hrana bodies are JSON, in which the
/// statements of these tests never spell a request line.
async fn copy_both_ways(client: TcpStream, server: TcpStream, seen: Arc<Seen>, start: Instant, active: Arc<AtomicU64>) {
    let touch = move || active.store(start.elapsed().as_millis() as u64, Ordering::SeqCst);
    let up_touch = touch.clone();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let holding = Arc::new(AtomicBool::new(false));
    let (up_seen, up_holding) = (seen.clone(), holding.clone());
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut tail = Vec::new();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            up_touch();
            // A request line split over two reads is seen in the last bytes of one and the first of the next.
            tail.extend_from_slice(&buf[..n]);
            let lines = tail.windows(6).filter(|w| *w == b"POST /").count();
            up_seen.requests.fetch_add(lines, Ordering::SeqCst);
            let keep = tail.len().min(5);
            tail.drain(..tail.len() - keep);
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        if up_holding.load(Ordering::SeqCst) {
            up_seen.abandoned.fetch_add(1, Ordering::SeqCst);
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            touch();
            let end = b"0\r\n\r\n";
            let mut rest = &buf[..n];
            if seen.hold_ends.load(Ordering::SeqCst) && rest.ends_with(end) {
                holding.store(true, Ordering::SeqCst);
                if client_write.write_all(&rest[..n - end.len()]).await.is_err() {
                    break;
                }
                tokio::time::sleep(HOLD).await;
                rest = end;
            }
            let sent = client_write.write_all(rest).await;
            touch();
            holding.store(false, Ordering::SeqCst);
            if sent.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// A database handle through a counting proxy, on a fresh namespace with a table `t` of three rows.
async fn counted_db(options: DbOptions) -> Option<(Db, Counter)> {
    counted_db_with(options, 30).await
}

/// [`counted_db`] on a namespace whose server takes the write lock from a transaction after `txn_timeout_s`.
async fn counted_db_with(options: DbOptions, txn_timeout_s: u64) -> Option<(Db, Counter)> {
    let (url, admin) = server()?;
    let counter = Counter::start(&url).await;
    for attempt in 1..=3 {
        let namespace = create_namespace_with(&admin, txn_timeout_s).await;
        let options = DbOptions { namespace: Some(namespace), ..options.clone() };
        let db = Db::open_with(&counter.url, None, options).await.unwrap();
        let conn = db.conn().await.unwrap();
        match conn.execute("CREATE TABLE t (x INTEGER)", ()).await {
            Ok(_) => {}
            // sqld now and then forgets a namespace it has just created (as `TestApp` knows): a new one.
            Err(e) if attempt < 3 && e.to_string().contains("doesn't exist") => continue,
            Err(e) => panic!("create table: {e}"),
        }
        for x in 1..=3 {
            conn.execute("INSERT INTO t VALUES (?1)", [x]).await.unwrap();
        }
        drop(conn);
        return Some((db, counter));
    }
    unreachable!("the last attempt returns or panics")
}

/// The integers of a query, read to the end.
async fn ints(conn: &shared::db::Conn, sql: &str) -> Vec<i64> {
    let mut rows = conn.query(sql, ()).await.unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        out.push(row.get::<i64>(0).unwrap());
    }
    out
}

const ALL_X: &str = "SELECT x FROM t ORDER BY x";

/// Runs [`ALL_X`] once to prepare it, then `times` times more; the requests those took.
async fn requests_of_repeated_query(conn: &shared::db::Conn, counter: &Counter, times: usize) -> usize {
    assert_eq!(ints(conn, ALL_X).await, [1, 2, 3]);
    counter.take();
    for _ in 0..times {
        assert_eq!(ints(conn, ALL_X).await, [1, 2, 3]);
    }
    counter.take()
}

#[tokio::test]
async fn a_repeated_query_is_one_request_on_a_kept_stream() {
    let Some((db, counter)) = counted_db(DbOptions::default()).await else { return };
    let conn = db.conn().await.unwrap();
    // libSQL alone: a request to describe the query, one for its cursor, one to close its stream, each time.
    assert_eq!(requests_of_repeated_query(&conn, &counter, 10).await, 10, "one request per query");
    let changed = conn.execute("INSERT INTO t VALUES (?1)", [4]).await.unwrap();
    assert_eq!((changed, counter.take()), (1, 1), "one request per executed statement");
    assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3, 4], "and the next query sees its row");
}

#[tokio::test]
async fn a_query_dropped_mid_way_does_not_leave_its_stream_to_the_next() {
    let Some((db, counter)) = counted_db(DbOptions::default()).await else { return };
    let conn = db.conn().await.unwrap();
    assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3]);
    for _ in 0..3 {
        let mut rows = conn.query(ALL_X, ()).await.unwrap();
        assert_eq!(rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap(), 1);
        drop(rows);
        // The connection that ran it is not kept (its cursor may still run on the server): a new one answers.
        assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3]);
    }
    // The dropped connections close their streams in requests of their own, sent in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;
    counter.take();
    assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3]);
    assert_eq!(counter.take(), 1, "the connection that read to the end was kept");
}

#[tokio::test]
async fn a_write_transaction_is_its_statements_between_begin_and_commit() {
    let Some((db, counter)) = counted_db(DbOptions::default()).await else { return };
    let conn = db.conn().await.unwrap();
    let count = "SELECT COUNT(*) FROM t";
    for x in [10, 11] {
        counter.take();
        let tx = conn.write_tx().await.unwrap();
        let before = ints(&tx, count).await;
        tx.execute("INSERT INTO t VALUES (?1)", [x]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(before, [x - 7]);
    }
    // BEGIN, the query (prepared on this connection the first time), the insert, COMMIT.
    assert_eq!(counter.take(), 4);
    assert_eq!(ints(&conn, count).await, [5]);

    let tx = conn.write_tx().await.unwrap();
    tx.execute("INSERT INTO t VALUES (99)", ()).await.unwrap();
    tx.rollback().await.unwrap();
    let tx = conn.write_tx().await.unwrap();
    tx.execute("INSERT INTO t VALUES (98)", ()).await.unwrap();
    drop(tx); // an error path between the write and the commit
    let tx = conn.write_tx().await.expect("the next writer begins once the dropped one has rolled back");
    assert_eq!(ints(&tx, count).await, [5], "neither row is there");
    tx.commit().await.unwrap();
    // Whatever a kept connection ran before, a transaction of another one sees only what was committed.
    let other = db.conn().await.unwrap();
    assert_eq!(ints(&other, "SELECT x FROM t WHERE x > 90").await, Vec::<i64>::new());
}

#[tokio::test]
async fn a_connection_idle_past_its_stream_starts_a_new_one_and_keeps_its_statements() {
    // Every checkout finds its stream too old: each statement goes out on a new stream.
    let options = DbOptions { stream_idle: Duration::ZERO, ..DbOptions::default() };
    let Some((db, counter)) = counted_db(options).await else { return };
    let conn = db.conn().await.unwrap();
    let requests = requests_of_repeated_query(&conn, &counter, 5).await;
    assert_eq!(requests, 5, "a new stream, but no new description of the query");
}

#[tokio::test]
async fn a_stream_the_server_expired_is_replaced_without_an_error() {
    // Kept longer than the server keeps a stream (sqld: 10 s without a request).
    let options = DbOptions { stream_idle: Duration::from_secs(3600), ..DbOptions::default() };
    let Some((db, _counter)) = counted_db(options).await else { return };
    let conn = db.conn().await.unwrap();
    assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3]);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3], "a query");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let tx = conn.write_tx().await.expect("a transaction");
    tx.execute("INSERT INTO t VALUES (4)", ()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3, 4]);
}

/// A server rolls back a transaction that held the write lock past its timeout once another writer waits
/// (sqld and Turso: 5 s). What the transaction hears next is an overloaded database (503, retried by the
/// client), not a failure of ours (500), and the other writer goes ahead.
#[tokio::test]
async fn a_transaction_the_server_timed_out_is_an_overload() {
    let Some((db, _counter)) = counted_db_with(DbOptions::default(), 5).await else { return };
    let conn = db.conn().await.unwrap();
    let tx = conn.write_tx().await.unwrap();
    tx.execute("INSERT INTO t VALUES (10)", ()).await.unwrap();
    // Another process's writer (this process's would queue behind the transaction) waits for the lock.
    let other = db.conn().await.unwrap().raw().clone();
    let waiting = tokio::spawn(async move { other.execute("INSERT INTO t VALUES (20)", ()).await });
    tokio::time::sleep(Duration::from_secs(7)).await;
    let err = tx.commit().await.expect_err("the server ended the transaction");
    assert!(shared::db::is_overloaded(&err), "not an overload: {err}");
    waiting.await.unwrap().expect("the waiting writer took the lock");
    assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3, 20]);
}

/// libsql stops reading a query's response at its last row, before the server has ended it; sqld cancels a
/// response its client abandons, and the cancellation interrupts the stream's next statement if that one has
/// begun (its transaction is rolled back). So a connection the client lets go is read to the end of the
/// response before it closes: here the proxy holds every response's end back, and no response is abandoned.
#[tokio::test]
async fn a_query_read_to_its_end_lets_the_server_end_its_response() {
    let Some((db, counter)) = counted_db(DbOptions::default()).await else { return };
    counter.seen.hold_ends.store(true, Ordering::SeqCst);
    let conn = db.conn().await.unwrap();
    for _ in 0..3 {
        assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3]);
    }
    let tx = conn.write_tx().await.unwrap();
    assert_eq!(ints(&tx, "SELECT COUNT(*) FROM t").await, [3]);
    tx.execute("INSERT INTO t VALUES (4)", ()).await.unwrap();
    tx.commit().await.unwrap();
    // Connections dropped last linger until the held-back ends arrive.
    tokio::time::sleep(HOLD * 2).await;
    assert_eq!(counter.seen.abandoned.load(Ordering::SeqCst), 0, "responses abandoned before their end");
    assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3, 4]);
}

/// libsql lets go of the connection of every query it reads (see above); read to the end of the response, it
/// is kept and carries the next request. On AWS a new connection to the database is a TCP and a TLS handshake.
#[tokio::test]
async fn queries_one_after_another_share_their_connections() {
    let Some((db, counter)) = counted_db(DbOptions::default()).await else { return };
    let conn = db.conn().await.unwrap();
    assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    counter.seen.connections.store(0, Ordering::SeqCst);
    counter.take();
    for x in 10..20 {
        assert_eq!(ints(&conn, ALL_X).await.len(), x - 7);
        let tx = conn.write_tx().await.unwrap();
        tx.execute("INSERT INTO t VALUES (?1)", [x as i64]).await.unwrap();
        tx.commit().await.unwrap();
    }
    let requests = counter.take();
    let connections = counter.seen.connections.load(Ordering::SeqCst);
    assert!(requests >= 40, "{requests} requests");
    // A query's connection is kept once its response has ended, which may be a moment after the next request
    // wanted one: a few connections, not one per query.
    assert!(connections <= 4, "{connections} connections for {requests} requests");
}

/// A kept connection the server has closed since (idle too long) is not handed out: the next request goes
/// out on a new one, without an error.
#[tokio::test]
async fn a_kept_connection_the_server_closed_is_not_used() {
    let Some((db, counter)) = counted_db(DbOptions::default()).await else { return };
    counter.seen.close_idle_ms.store(150, Ordering::SeqCst);
    let conn = db.conn().await.unwrap();
    assert_eq!(ints(&conn, ALL_X).await, [1, 2, 3]);
    counter.seen.connections.store(0, Ordering::SeqCst);
    for x in 4..9 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let tx = conn.write_tx().await.expect("a transaction after the server closed the last connection");
        tx.execute("INSERT INTO t VALUES (?1)", [x]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(ints(&conn, ALL_X).await, (1..=x).collect::<Vec<_>>());
    }
    let connections = counter.seen.connections.load(Ordering::SeqCst);
    assert!(connections >= 5, "the server closed each round's connections: {connections}");
}
