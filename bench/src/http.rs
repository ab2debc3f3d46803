//! HTTP endpoints at a concurrency sweep: `GET /me`, and history pages of a large conversation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::{CpuMeter, CpuUse, Latencies, Summary};
use crate::users::User;

/// What one concurrency level measured.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub concurrency: usize,
    pub requests: u64,
    /// Answers that were not 200 (or did not come at all), by status (0 = transport error).
    pub failed: u64,
    pub throughput: f64,
    pub latency: Summary,
    pub cpu: CpuUse,
}

/// One request's target: a path chosen per request.
pub type PathFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// An HTTP client with a connection per concurrent worker, kept alive.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(1024).tcp_nodelay(true).build()?)
}

/// Runs `GET base + path(i)` from `concurrency` workers for `duration`, each with a token of `users` in
/// turn, as closed loops (each worker waits for its answer).
pub async fn sweep(
    base: &str,
    users: &[User],
    path: PathFn,
    levels: &[usize],
    duration: Duration,
    server_pid: Option<u32>,
    label: &str,
) -> anyhow::Result<Vec<Level>> {
    anyhow::ensure!(!users.is_empty(), "no users");
    let http = client()?;
    let mut out = Vec::with_capacity(levels.len());
    for &concurrency in levels {
        // Open the connections first, so the level measures requests, not handshakes.
        warm(&http, base, &users[0].token, concurrency).await;
        let done = Arc::new(AtomicU64::new(0));
        let bar = crate::progress(duration, &format!("{label} ×{concurrency}"));
        let cpu = CpuMeter::start(server_pid);
        let end = Instant::now() + duration;
        let workers: Vec<_> = (0..concurrency)
            .map(|w| {
                let (http, path, done) = (http.clone(), path.clone(), done.clone());
                let base = base.to_owned();
                let token = format!("Bearer {}", users[w % users.len()].token);
                tokio::spawn(async move {
                    let (mut lat, mut n, mut failed) = (Latencies::default(), 0u64, 0u64);
                    let mut i = w as u64;
                    while Instant::now() < end {
                        let t = Instant::now();
                        let ok =
                            match http.get(format!("{base}{}", path(i))).header("Authorization", &token).send().await {
                                Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                                Err(_) => false,
                            };
                        lat.record(t.elapsed());
                        n += 1;
                        failed += u64::from(!ok);
                        i = i.wrapping_add(concurrency as u64);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    (lat, n, failed)
                })
            })
            .collect();
        let ticker = crate::tick(&bar, Instant::now(), &done, "requests");
        let (mut lat, mut requests, mut failed) = (Latencies::default(), 0u64, 0u64);
        for w in workers {
            let (l, n, f) = w.await?;
            lat.merge(&l);
            requests += n;
            failed += f;
        }
        ticker.abort();
        bar.finish_and_clear();
        out.push(Level {
            concurrency,
            requests,
            failed,
            throughput: (requests - failed) as f64 / duration.as_secs_f64(),
            latency: lat.summary(),
            cpu: cpu.stop(),
        });
    }
    Ok(out)
}

/// Opens `n` keep-alive connections by sending `n` concurrent `GET /health`.
async fn warm(http: &reqwest::Client, base: &str, token: &str, n: usize) {
    let calls = (0..n).map(|_| async {
        if let Ok(r) = http.get(format!("{base}/health")).bearer_auth(token).send().await {
            let _ = r.bytes().await;
        }
    });
    futures_util::future::join_all(calls).await;
}

/// A small deterministic generator for page positions (xorshift64*).
pub fn spread(i: u64, below: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D) % below.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_positions_cover_the_range() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            let p = spread(i, 100);
            assert!(p < 100);
            seen.insert(p);
        }
        assert_eq!(seen.len(), 100, "every position is reached");
        assert_eq!(spread(5, 0), 0, "an empty range does not divide by zero");
    }
}
