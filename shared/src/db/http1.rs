//! Where HTTP/1.1 messages end, read off the bytes of a connection: just enough framing for the remote
//! database's connector ([`super::connector`]) to tell whether a connection the HTTP client let go sits between
//! two exchanges, where it can carry the next request, or in the middle of one.
//!
//! Anything it does not follow (HTTP/1.0, `Connection: close`, upgrades, a body that ends when the connection
//! closes, bytes nobody asked for, a head that does not parse) makes the connection one not to reuse.

/// A message's head may be at most this long (hyper's client allows 400 KiB; sqld sends a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;
/// A chunk-size or trailer line may be at most this long.
const MAX_LINE: usize = 4 * 1024;
/// Headers read from one head.
const MAX_HEADERS: usize = 64;

/// One request and its response on a connection, followed byte by byte in both directions.
#[derive(Debug)]
pub(super) struct Exchange {
    request: Message,
    response: Message,
    /// False once anything happened after which the connection must not carry another request.
    reusable: bool,
}

impl Default for Exchange {
    fn default() -> Self {
        Self { request: Message::idle(Side::Request), response: Message::idle(Side::Response), reusable: true }
    }
}

impl Exchange {
    /// Bytes the client wrote.
    pub(super) fn on_write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || !self.reusable {
            return;
        }
        if self.request.is_idle() || self.request.is_done() {
            if !self.response.is_idle() && !self.response.is_done() {
                // A new request while a response is due: pipelining, which this does not follow.
                self.reusable = false;
                return;
            }
            if self.request.is_done() {
                self.request = Message::idle(Side::Request);
                self.response = Message::idle(Side::Response);
            }
            self.request.start();
            self.response.start();
        }
        if self.request.feed(bytes) < bytes.len() || !self.request.framed() {
            self.reusable = false;
        }
        if self.request.head_only {
            self.response.head_only = true;
        }
    }

    /// Bytes the server sent; an empty slice is the end of the connection.
    pub(super) fn on_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.response.is_idle() || self.response.is_done() {
            // Closed, or bytes no request asked for.
            self.reusable = false;
            return;
        }
        if self.response.feed(bytes) < bytes.len() || !self.response.framed() {
            self.reusable = false;
        }
    }

    /// Whether a response is still due (or being read) for a request that was sent, in whole or in part.
    pub(super) fn awaits_response(&self) -> bool {
        !self.request.is_idle() && !self.response.is_done()
    }

    /// Whether the connection sits between two exchanges and both sides said they keep it: it can carry a new
    /// request. True of a connection that never carried one.
    pub(super) fn at_boundary(&self) -> bool {
        self.reusable
            && (self.request.is_idle() || self.request.is_done() && self.response.is_done())
            && self.request.keep_alive
            && self.response.keep_alive
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

/// One message, parsed as far as its bytes have come.
#[derive(Debug)]
struct Message {
    side: Side,
    state: State,
    /// Bytes of the head so far, or of the current chunk-size or trailer line.
    line: Vec<u8>,
    /// The sender keeps the connection after this message (HTTP/1.1 without `Connection: close`).
    keep_alive: bool,
    /// A request for the head only (`HEAD`), or a response to one: no body whatever the headers say.
    head_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No message yet.
    Idle,
    Head,
    /// Body bytes still to come.
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The line end after a chunk's data.
    ChunkEnd,
    Trailer,
    Done,
    /// A framing this does not follow: the message ends when the connection does, if at all.
    Unframed,
}

impl Message {
    fn idle(side: Side) -> Self {
        Self { side, state: State::Idle, line: Vec::new(), keep_alive: true, head_only: false }
    }

    fn start(&mut self) {
        self.state = State::Head;
    }

    fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn framed(&self) -> bool {
        self.state != State::Unframed
    }

    /// Takes the bytes that belong to this message; returns how many (fewer than given once it is done).
    fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut used = 0;
        while used < bytes.len() {
            let rest = &bytes[used..];
            used += match self.state {
                State::Idle | State::Done | State::Unframed => return used,
                State::Head => self.feed_head(rest),
                State::Length(left) => {
                    let take = left.min(rest.len() as u64);
                    self.state = if take == left { State::Done } else { State::Length(left - take) };
                    take as usize
                }
                State::ChunkSize => {
                    let (taken, line) = self.take_line(rest);
                    if let Some(line) = line {
                        self.state = match chunk_size(&line) {
                            Some(0) => State::Trailer,
                            Some(size) => State::ChunkData(size),
                            None => State::Unframed,
                        };
                    }
                    taken
                }
                State::ChunkData(left) => {
                    let take = left.min(rest.len() as u64);
                    self.state = if take == left { State::ChunkEnd } else { State::ChunkData(left - take) };
                    take as usize
                }
                State::ChunkEnd => {
                    let (taken, line) = self.take_line(rest);
                    if let Some(line) = line {
                        self.state = if line.is_empty() { State::ChunkSize } else { State::Unframed };
                    }
                    taken
                }
                State::Trailer => {
                    let (taken, line) = self.take_line(rest);
                    if line.is_some_and(|line| line.is_empty()) {
                        self.state = State::Done;
                    }
                    taken
                }
            };
        }
        used
    }

    /// Takes bytes up to the end of the current line (`\n`); the line without its `\r\n` once it is whole.
    fn take_line(&mut self, bytes: &[u8]) -> (usize, Option<Vec<u8>>) {
        let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
            self.line.extend_from_slice(bytes);
            if self.line.len() > MAX_LINE {
                self.state = State::Unframed;
            }
            return (bytes.len(), None);
        };
        self.line.extend_from_slice(&bytes[..end]);
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        (end + 1, Some(line))
    }

    fn feed_head(&mut self, bytes: &[u8]) -> usize {
        // The head ends at the first empty line; it may have begun in earlier bytes.
        let before = self.line.len();
        self.line.extend_from_slice(bytes);
        let search_from = before.saturating_sub(3);
        let Some(end) = self.line[search_from..].windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.line.len() > MAX_HEAD {
                self.state = State::Unframed;
            }
            return bytes.len();
        };
        let head_len = search_from + end + 4;
        self.line.truncate(head_len);
        let head = std::mem::take(&mut self.line);
        self.state = self.body_after(&head);
        head_len - before
    }

    /// What follows a complete head.
    fn body_after(&mut self, head: &[u8]) -> State {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (version, status, fields) = match self.side {
            Side::Request => {
                let mut request = httparse::Request::new(&mut headers);
                let Ok(httparse::Status::Complete(_)) = request.parse(head) else { return State::Unframed };
                self.head_only = request.method == Some("HEAD");
                (request.version, None, request.headers)
            }
            Side::Response => {
                let mut response = httparse::Response::new(&mut headers);
                let Ok(httparse::Status::Complete(_)) = response.parse(head) else { return State::Unframed };
                (response.version, response.code, response.headers)
            }
        };
        if version != Some(1) {
            self.keep_alive = false;
        }
        let mut chunked = false;
        let mut other_coding = false;
        let mut length: Option<u64> = None;
        for field in fields.iter() {
            let value = String::from_utf8_lossy(field.value);
            if field.name.eq_ignore_ascii_case("connection") {
                if value.split(',').any(|token| token.trim().eq_ignore_ascii_case("close")) {
                    self.keep_alive = false;
                }
            } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
                let last = value.rsplit(',').next().unwrap_or("").trim();
                chunked = last.eq_ignore_ascii_case("chunked");
                other_coding |= !chunked;
            } else if field.name.eq_ignore_ascii_case("content-length") {
                match (value.trim().parse::<u64>(), length) {
                    (Ok(n), None) => length = Some(n),
                    (Ok(n), Some(seen)) if n == seen => {}
                    _ => return State::Unframed,
                }
            }
        }
        match status {
            // An upgrade (101) leaves HTTP; a 1xx is followed by the response proper.
            Some(101) => return State::Unframed,
            Some(100..=199) => {
                self.line.clear();
                return State::Head;
            }
            Some(204 | 304) => return State::Done,
            Some(_) if self.head_only => return State::Done,
            _ => {}
        }
        match (chunked && !other_coding, length) {
            (true, _) => State::ChunkSize,
            (false, _) if other_coding => State::Unframed,
            (false, Some(0)) => State::Done,
            (false, Some(n)) => State::Length(n),
            // A request without a length has no body; a response without one ends with the connection.
            (false, None) if self.side == Side::Request => State::Done,
            (false, None) => State::Unframed,
        }
    }
}

/// The size of a chunk from its line (hexadecimal, then perhaps `;extensions`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next()?;
    let digits = std::str::from_utf8(digits).ok()?.trim();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] = b"POST /v3/cursor HTTP/1.1\r\nhost: db\r\ncontent-length: 5\r\n\r\nhello";
    const CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nab\r\nc\r\n3\r\nxyz\r\n0\r\n\r\n";

    /// Feeds `bytes` in pieces of `size`.
    fn pieces(bytes: &[u8], size: usize, mut feed: impl FnMut(&[u8])) {
        bytes.chunks(size).for_each(&mut feed);
    }

    #[test]
    fn a_chunked_response_ends_at_its_last_chunk_in_pieces_of_any_size() {
        for size in 1..=CHUNKED.len() {
            let mut exchange = Exchange::default();
            pieces(REQUEST, size, |p| exchange.on_write(p));
            assert!(exchange.awaits_response());
            pieces(&CHUNKED[..CHUNKED.len() - 1], size, |p| exchange.on_read(p));
            assert!(exchange.awaits_response() && !exchange.at_boundary(), "one byte short, size {size}");
            exchange.on_read(&CHUNKED[CHUNKED.len() - 1..]);
            assert!(!exchange.awaits_response() && exchange.at_boundary(), "whole, size {size}");
        }
    }

    #[test]
    fn exchanges_follow_one_another_on_a_kept_connection() {
        let mut exchange = Exchange::default();
        assert!(exchange.at_boundary(), "a new connection");
        for _ in 0..3 {
            exchange.on_write(REQUEST);
            exchange.on_read(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}");
            assert!(exchange.awaits_response());
            exchange.on_read(b"\r\n");
            assert!(exchange.at_boundary());
        }
        exchange.on_write(REQUEST);
        exchange.on_read(CHUNKED);
        assert!(exchange.at_boundary());
        // A chunked request, then a body-less answer.
        exchange.on_write(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n");
        exchange.on_read(b"HTTP/1.1 204 No Content\r\n\r\n");
        assert!(exchange.at_boundary());
    }

    #[test]
    fn an_informational_response_is_followed_by_the_response_proper() {
        let mut exchange = Exchange::default();
        exchange.on_write(REQUEST);
        exchange.on_read(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert!(exchange.awaits_response());
        exchange.on_read(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert!(exchange.at_boundary());
    }

    #[test]
    fn what_it_does_not_follow_makes_the_connection_one_not_to_reuse() {
        let cases: [(&[u8], &[u8]); 8] = [
            (REQUEST, b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\ncontent-length: 0\r\n\r\n"),
            (REQUEST, b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"),
            (REQUEST, b"HTTP/1.1 200 OK\r\n\r\nuntil the end"),
            (REQUEST, b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            (REQUEST, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1"),
            (REQUEST, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}"),
            (REQUEST, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
            (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        ];
        for (request, response) in cases {
            let mut exchange = Exchange::default();
            exchange.on_write(request);
            exchange.on_read(response);
            assert!(!exchange.at_boundary(), "{}", String::from_utf8_lossy(response));
        }
        // Closed by the server, bytes before any request, a request while a response is due.
        let mut closed = Exchange::default();
        closed.on_write(REQUEST);
        closed.on_read(b"");
        assert!(!closed.at_boundary() && closed.awaits_response());
        let mut unasked = Exchange::default();
        unasked.on_read(b"HTTP/1.1 200 OK\r\n");
        assert!(!unasked.at_boundary());
        let mut pipelined = Exchange::default();
        pipelined.on_write(REQUEST);
        pipelined.on_write(REQUEST);
        assert!(!pipelined.at_boundary());
    }

    #[test]
    fn an_answer_before_the_whole_request_leaves_the_connection_mid_request() {
        let mut exchange = Exchange::default();
        exchange.on_write(&REQUEST[..REQUEST.len() - 2]);
        exchange.on_read(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n");
        assert!(!exchange.awaits_response() && !exchange.at_boundary());
    }

    #[test]
    fn a_response_to_head_has_no_body() {
        let mut exchange = Exchange::default();
        exchange.on_write(b"HEAD / HTTP/1.1\r\nhost: db\r\n\r\n");
        exchange.on_read(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n");
        assert!(exchange.at_boundary());
    }
}
