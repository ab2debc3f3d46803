//! The connector of the remote database client: HTTP/1.1 over TLS (`libsql://`, `https://`) or plain TCP
//! (`http://`), with Nagle off, as libsql's own, and three changes.
//!
//! - **Trust anchors.** The compiled-in Mozilla roots: libsql's default connector reads the platform's
//!   certificate directory (about 150 files, parsed one by one) when the database is opened, which is at every
//!   cold start, and was most of one.
//! - **Lingering close.** libsql's client stops reading a query's response (a Hrana cursor) at the query's last
//!   entry, before the server has finished it, and the HTTP client then closes the connection. sqld (as of
//!   0.24) cancels the request it sees abandoned, and the cancellation lands on the server connection of the
//!   stream, whose next statement may already be running: that statement fails with `SQLITE_INTERRUPT` and its
//!   transaction is rolled back. A connection the client drops is therefore read to the end of the response
//!   before it is closed.
//! - **Reuse.** Such a connection, read to the end of its response, sits between two exchanges like any
//!   other, but the HTTP client has let it go: every query would open a new one (on AWS a TCP and a TLS
//!   handshake to the database, two more round trips). The connector keeps those it can tell are between
//!   exchanges ([`super::http1`] follows the framing of both directions) and hands them out again, the most
//!   recent first, for at most [`POOL_IDLE`], and only while the server has not closed them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use libsql_hyper::Uri;
use libsql_hyper::client::HttpConnector;
use libsql_hyper::client::connect::{Connected, Connection};
use libsql_hyper_rustls::HttpsConnector;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

use super::http1::Exchange;

/// How long a dropped connection waits for the server's next bytes before it is closed.
const LINGER_IDLE: Duration = Duration::from_secs(1);
/// The longest a dropped connection is kept open waiting for the end of its response.
const LINGER_MAX: Duration = Duration::from_secs(10);
/// How long a connection between exchanges is kept for the next request. Well under the idle timeouts of
/// servers and of the network between (on AWS, NAT gateways drop a connection silently after 350 s), so a
/// kept connection is one the server still has.
const POOL_IDLE: Duration = Duration::from_secs(5);
/// Connections kept between exchanges, at most (the process runs at most as many requests at once as its
/// database permits, `max_concurrency`).
const POOL_SIZE: usize = 32;

/// The connector handed to libsql's remote client.
pub(super) fn remote_connector() -> Lingering<HttpsConnector<HttpConnector>> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = libsql_hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Lingering { inner: https, pool: Arc::new(Pool { idle: Mutex::new(Vec::new()) }) }
}

/// A connector whose connections linger when dropped, and are kept for reuse when they can be (see the
/// module's documentation).
pub(super) struct Lingering<C: tower_service::Service<Uri>> {
    inner: C,
    pool: Arc<Pool<C::Response>>,
}

impl<C: tower_service::Service<Uri> + Clone> Clone for Lingering<C> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), pool: self.pool.clone() }
    }
}

impl<C> tower_service::Service<Uri> for Lingering<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
    C::Response: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Response = LingeringIo<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let key: Arc<str> =
            format!("{}://{}", uri.scheme_str().unwrap_or(""), uri.authority().map_or("", |a| a.as_str())).into();
        let pool = self.pool.clone();
        if let Some(io) = pool.checkout(&key) {
            return Box::pin(async move { Ok(LingeringIo::new(io, key, pool)) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move { connecting.await.map(|io| LingeringIo::new(io, key, pool)) })
    }
}

/// Connections between exchanges, by the scheme and authority they were opened to.
pub(super) struct Pool<S> {
    idle: Mutex<Vec<Idle<S>>>,
}

struct Idle<S> {
    key: Arc<str>,
    io: S,
    since: Instant,
}

impl<S: AsyncRead + Unpin> Pool<S> {
    /// The most recently kept connection to `key` that is young enough and still open, if any.
    fn checkout(&self, key: &str) -> Option<S> {
        loop {
            let mut candidate = {
                let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                idle.retain(|kept| kept.since.elapsed() < POOL_IDLE);
                let at = idle.iter().rposition(|kept| &*kept.key == key)?;
                idle.remove(at).io
            };
            if still_open(&mut candidate) {
                return Some(candidate);
            }
        }
    }

    /// Keeps a connection between exchanges, idle since `since`.
    fn checkin(&self, key: Arc<str>, io: S, since: Instant) {
        if since.elapsed() >= POOL_IDLE {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() >= POOL_SIZE {
            idle.remove(0);
        }
        idle.push(Idle { key, io, since });
    }
}

/// Whether a connection between exchanges is still open: nothing to read yet. A server that closed it (or
/// sent what nobody asked for) has it readable.
fn still_open<S: AsyncRead + Unpin>(io: &mut S) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    Pin::new(io).poll_read(&mut cx, &mut buf).is_pending()
}

/// A connection that is read to the end of its response before it is closed or kept.
pub(super) struct LingeringIo<S: AsyncRead + Unpin + Send + 'static> {
    io: Option<S>,
    exchange: Exchange,
    key: Arc<str>,
    pool: Arc<Pool<S>>,
    /// When bytes last went either way.
    active: Instant,
}

impl<S: AsyncRead + Unpin + Send + 'static> LingeringIo<S> {
    fn new(io: S, key: Arc<str>, pool: Arc<Pool<S>>) -> Self {
        Self { io: Some(io), exchange: Exchange::default(), key, pool, active: Instant::now() }
    }

    fn io(&mut self) -> Pin<&mut S> {
        Pin::new(self.io.as_mut().expect("present until dropped"))
    }
}

impl<S: AsyncRead + Unpin + Send + 'static> Drop for LingeringIo<S> {
    fn drop(&mut self) {
        let Some(io) = self.io.take() else { return };
        let exchange = std::mem::take(&mut self.exchange);
        if exchange.at_boundary() {
            // One the HTTP client kept idle itself, then let go, is as old as its last exchange.
            self.pool.checkin(self.key.clone(), io, self.active);
        } else if exchange.awaits_response()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(linger(io, exchange, self.key.clone(), self.pool.clone()));
        }
    }
}

/// Reads what the server still sends of its response until it ends, the server closes, it pauses for
/// [`LINGER_IDLE`], or [`LINGER_MAX`] has passed; then keeps the connection if it sits between exchanges,
/// and closes it otherwise.
async fn linger<S: AsyncRead + Unpin>(mut io: S, mut exchange: Exchange, key: Arc<str>, pool: Arc<Pool<S>>) {
    let deadline = tokio::time::Instant::now() + LINGER_MAX;
    let mut buf = [0u8; 4096];
    while exchange.awaits_response() {
        let wait = LINGER_IDLE.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => exchange.on_read(&buf[..n]),
            // Closed, failed or silent: the connection closes.
            _ => return,
        }
    }
    if exchange.at_boundary() {
        pool.checkin(key, io, Instant::now());
    }
}

impl<S: AsyncRead + Unpin + Send + 'static> AsyncRead for LingeringIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let room = buf.remaining();
        let polled = self.io().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && room > 0
        {
            self.active = Instant::now();
            self.exchange.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for LingeringIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = self.io().poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.active = Instant::now();
            self.exchange.on_write(&buf[..n]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    /// Not passed on: a half-closed connection would tell the server the request was abandoned. The
    /// connection closes (or is kept) when dropped, after lingering.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = self.io().poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = polled {
            self.active = Instant::now();
            for slice in bufs {
                let take = n.min(slice.len());
                self.exchange.on_write(&slice[..take]);
                n -= take;
                if n == 0 {
                    break;
                }
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }
}

impl<S: AsyncRead + Connection + Unpin + Send + 'static> Connection for LingeringIo<S> {
    fn connected(&self) -> Connected {
        self.io.as_ref().map_or_else(Connected::new, Connection::connected)
    }
}
