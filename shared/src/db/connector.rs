//! The connector of the remote database client: HTTP/1.1 over TLS (`libsql://`, `https://`) or plain TCP
//! (`http://`), with Nagle off, as libsql's own, and two changes.
//!
//! - **Trust anchors.** The compiled-in Mozilla roots: libsql's default connector reads the platform's
//!   certificate directory (about 150 files, parsed one by one) when the database is opened, which is at every
//!   cold start, and was most of one.
//! - **Lingering close.** libsql's client stops reading a query's response (a Hrana cursor) at the query's last
//!   entry, before the server has finished it, and the HTTP client then closes the connection. sqld (as of
//!   0.24) cancels the request it sees abandoned, and the cancellation lands on the server connection of the
//!   stream, whose next statement may already be running: that statement fails with `SQLITE_INTERRUPT` and its
//!   transaction is rolled back. A connection the client drops is therefore read to the end of what the
//!   server sends (the end of a chunked response, or a pause) before it is closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use libsql_hyper::Uri;
use libsql_hyper::client::HttpConnector;
use libsql_hyper::client::connect::{Connected, Connection};
use libsql_hyper_rustls::HttpsConnector;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// How long a dropped connection waits for the server's next bytes before it is closed.
const LINGER_IDLE: Duration = Duration::from_secs(1);
/// The longest a dropped connection is kept open.
const LINGER_MAX: Duration = Duration::from_secs(10);

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
    Lingering(https)
}

/// A connector whose connections linger when dropped (see the module's documentation).
#[derive(Clone)]
pub(super) struct Lingering<C>(C);

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
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(|io| LingeringIo(Some(io))) })
    }
}

/// A connection that is read to the end of what the server sends before it is closed.
pub(super) struct LingeringIo<S: AsyncRead + Unpin + Send + 'static>(Option<S>);

impl<S: AsyncRead + Unpin + Send + 'static> LingeringIo<S> {
    fn io(&mut self) -> Pin<&mut S> {
        Pin::new(self.0.as_mut().expect("present until dropped"))
    }
}

impl<S: AsyncRead + Unpin + Send + 'static> Drop for LingeringIo<S> {
    fn drop(&mut self) {
        let Some(io) = self.0.take() else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(io));
        }
    }
}

/// Reads and discards what the server still sends, until a chunked response ends, the server closes, it
/// pauses for [`LINGER_IDLE`], or [`LINGER_MAX`] has passed; then the connection closes.
async fn linger<S: AsyncRead + Unpin>(mut io: S) {
    let deadline = tokio::time::Instant::now() + LINGER_MAX;
    let mut buf = [0u8; 4096];
    loop {
        let wait = LINGER_IDLE.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 && !buf[..n].ends_with(b"0\r\n\r\n") => {}
            _ => return,
        }
    }
}

impl<S: AsyncRead + Unpin + Send + 'static> AsyncRead for LingeringIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.io().poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for LingeringIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    /// Not passed on: a half-closed connection would tell the server the request was abandoned. The
    /// connection closes when dropped, after lingering.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }
}

impl<S: AsyncRead + Connection + Unpin + Send + 'static> Connection for LingeringIo<S> {
    fn connected(&self) -> Connected {
        self.0.as_ref().map_or_else(Connected::new, Connection::connected)
    }
}
