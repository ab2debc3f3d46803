//! When the database is overloaded: which errors mean so, and the retry policy for them. Below both the
//! connection pool ([`super::pool`]) and the group commit ([`super::group`]), which share it.

use std::time::{Duration, Instant};

/// First back-off delay; it doubles up to [`MAX_DELAY`], each sleep a random part of it.
const FIRST_DELAY: Duration = Duration::from_millis(10);
const MAX_DELAY: Duration = Duration::from_millis(200);

/// How long a request may queue in the process for a connection or the writer slot: API Gateway's
/// integration timeout. On AWS an instance serves one request at a time, so only the local stack queues.
pub(super) const QUEUE_TIMEOUT: Duration = Duration::from_secs(29);

/// The database was too busy (or unreachable) for the retry budget; nothing was done. Answered with 503.
#[derive(Debug, thiserror::Error)]
#[error("database overloaded: {0}")]
pub struct Overloaded(&'static str);

/// Whether `err` means the database is overloaded or unreachable for now (rather than a bug or bad data).
pub fn is_overloaded(err: &libsql::Error) -> bool {
    match err {
        // SQLITE_BUSY = 5, SQLITE_LOCKED = 6, extended codes keep the primary code in the low byte.
        libsql::Error::SqliteFailure(code, _) => matches!(code & 0xff, 5 | 6),
        libsql::Error::RemoteSqliteFailure(code, _, _) => matches!(code & 0xff, 5 | 6 | 9),
        libsql::Error::Hrana(inner) if inner.downcast_ref::<Overloaded>().is_some() => true,
        other => {
            let text = other.to_string();
            [
                "status=429",
                "status=503",
                "Too Many Requests",
                "SQLITE_BUSY",
                "SQLITE_LOCKED",
                "database is locked",
                "error trying to connect",
                "Connection refused",
                // sqld (and Turso) roll back a transaction that held the write lock past its timeout (5 s)
                // while another writer waited: its running statement is interrupted, its next one told so.
                "SQLite error: interrupted",
                "SQLITE_INTERRUPT",
                "TRANSACTION_TIMEOUT",
                "no transaction is active",
            ]
            .iter()
            .any(|needle| text.contains(needle))
        }
    }
}

/// Whether anything in the chain of `err` is an overloaded database.
pub fn chain_is_overloaded(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<libsql::Error>().is_some_and(is_overloaded) || cause.downcast_ref::<Overloaded>().is_some()
    })
}

pub(super) fn overloaded(what: &'static str) -> libsql::Error {
    libsql::Error::Hrana(Box::new(Overloaded(what)))
}

/// Runs `op` until it succeeds, fails for another reason than overload, or `budget` is spent.
pub(super) async fn retry<T, F, Fut>(budget: Duration, mut op: F) -> Result<T, libsql::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, libsql::Error>>,
{
    let start = Instant::now();
    let mut delay = FIRST_DELAY;
    loop {
        match op().await {
            Err(e) if is_overloaded(&e) => {
                let pause = jitter(delay);
                if start.elapsed() + pause >= budget {
                    tracing::warn!(error = %e, "database overloaded; giving up");
                    return Err(e);
                }
                tracing::debug!(error = %e, "database overloaded; retrying");
                tokio::time::sleep(pause).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
            other => return other,
        }
    }
}

/// A random duration in `[delay / 2, delay]`, so that retries of many clients spread out.
fn jitter(delay: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() { u16::from_le_bytes(b) } else { u16::MAX / 2 };
    delay / 2 + delay.mul_f64(f64::from(r) / f64::from(u16::MAX) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_is_told_apart_from_other_failures() {
        assert!(is_overloaded(&libsql::Error::SqliteFailure(5, "database is locked".into())));
        assert!(is_overloaded(&libsql::Error::SqliteFailure(517, "busy snapshot".into())));
        assert!(is_overloaded(&libsql::Error::SqliteFailure(6, "locked".into())));
        assert!(!is_overloaded(&libsql::Error::SqliteFailure(2067, "UNIQUE constraint failed".into())));
        assert!(is_overloaded(&overloaded("test")));
        assert!(!is_overloaded(&libsql::Error::Misuse("no such column".into())));
        assert!(jitter(Duration::from_millis(100)) >= Duration::from_millis(50));
        assert!(jitter(Duration::from_millis(100)) <= Duration::from_millis(100));
    }
}
