//! The message relay under load: pairs of users chatting over WebSockets, closed loop (each sender waits for
//! its `message_sent`) or open loop (sends at scheduled times, whatever the server does).
//!
//! Latency is always measured from the time a send was *scheduled* (in the closed loop, when it was sent), so
//! a server that falls behind shows its queueing in the figures instead of slowing the driver down
//! (no coordinated omission). Each frame carries its schedule: `client_msg_id` is `<run>-<sender>-<ns>` and the
//! first 8 bytes of the ciphertext are the same nanoseconds, so acknowledgements and deliveries need no
//! shared state between tasks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{CpuMeter, CpuUse, Latencies, Summary};
use crate::users::{self, User};

/// A send not acknowledged within this is late (and lost when never acknowledged).
pub const LATE_AFTER: Duration = Duration::from_secs(5);
/// Ciphertext size of every bench message (bytes before base64), like a short text message under Olm.
const CONTENT_BYTES: usize = 96;

/// The process-wide origin of every scheduled time.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

fn at(nanos: u64) -> Instant {
    epoch() + Duration::from_nanos(nanos)
}

/// The ciphertext of a message scheduled at `nanos`: those 8 bytes, then filler.
fn content(nanos: u64) -> String {
    let mut bytes = [0x5au8; CONTENT_BYTES];
    bytes[..8].copy_from_slice(&nanos.to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The scheduled time a ciphertext carries.
fn content_nanos(content: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(content).ok()?;
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// The scheduled time a `client_msg_id` of this run carries.
fn msg_id_nanos(id: &str, tag: &str) -> Option<u64> {
    let rest = id.strip_prefix(tag)?.strip_prefix('-')?;
    rest.rsplit('-').next()?.parse().ok()
}

/// How senders pace themselves.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Each sender sends its next message when the previous one is acknowledged.
    Closed,
    /// All senders together send `rate` messages per second, evenly spaced.
    Open { rate: f64 },
}

/// The phase of a run that acknowledgements are attributed to (the login burst marks its window).
pub type Phase = Arc<AtomicU8>;

/// Phases a run's latencies are split by.
pub const PHASES: usize = 3;

/// A phase value a caller may set before [`run`]: `run` replaces it with 0 once its sockets are open and
/// the clock starts.
pub const NOT_STARTED: u8 = u8::MAX;

/// What one relay run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RelayReport {
    pub pace: String,
    pub senders: usize,
    pub seconds: f64,
    pub sent: u64,
    pub acknowledged: u64,
    /// Acknowledged, but later than 5 s after the scheduled time.
    pub late: u64,
    /// Never acknowledged (within the grace period after the run).
    pub lost: u64,
    /// `error` events by code.
    pub errors: BTreeMap<String, u64>,
    /// Acknowledged messages per second.
    pub throughput: f64,
    /// Scheduled send → `message_sent`.
    pub ack: Summary,
    /// Scheduled send → `new_message` at the receiver.
    pub delivery: Summary,
    pub cpu: CpuUse,
    #[serde(skip)]
    pub ack_by_phase: [Summary; PHASES],
}

/// What one sender's connection counted.
#[derive(Default)]
struct Counts {
    sent: u64,
    acknowledged: u64,
    late: u64,
    errors: BTreeMap<String, u64>,
    ack: [Latencies; PHASES],
    delivery: Latencies,
}

/// Runs the relay: users `2i` and `2i + 1` are partners and both send to each other.
pub async fn run(
    base: &str,
    users: &[User],
    pace: Pace,
    duration: Duration,
    phase: Option<Phase>,
    server_pid: Option<u32>,
) -> anyhow::Result<RelayReport> {
    anyhow::ensure!(users.len() >= 2 && users.len().is_multiple_of(2), "the relay needs pairs of users");
    let tag = users::run_tag();
    let phase = phase.unwrap_or_default();
    let mut sockets = Vec::with_capacity(users.len());
    for u in users {
        sockets.push(users::connect(base, u).await?);
    }
    let _ = epoch();
    let senders = users.len();
    let acked_total = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(50);
    // The sockets are open: the run starts now (a caller waiting for `NOT_STARTED` to change sees it).
    phase.store(0, Ordering::Relaxed);
    let end = start + duration;
    let cpu = CpuMeter::start(server_pid);
    let bar = crate::progress(duration, "relay");
    let mut tasks = Vec::with_capacity(senders);
    let progress: Vec<Arc<Progress>> = (0..senders).map(|_| Arc::default()).collect();
    for (i, socket) in sockets.into_iter().enumerate() {
        let peer = users[i ^ 1].id;
        let tag = tag.clone();
        let phase = phase.clone();
        let acked_total = acked_total.clone();
        let pair = (progress[i].clone(), progress[i ^ 1].clone());
        tasks.push(tokio::spawn(async move {
            let plan = SenderPlan { index: i, senders, peer, tag, pace, start, end };
            sender(socket, plan, phase, acked_total, pair).await
        }));
    }
    let ticker = crate::tick(&bar, start, &acked_total, "acknowledged");
    let mut total = Counts::default();
    for t in tasks {
        let c = t.await??;
        total.sent += c.sent;
        total.acknowledged += c.acknowledged;
        total.late += c.late;
        for (code, n) in c.errors {
            *total.errors.entry(code).or_default() += n;
        }
        for (mine, theirs) in total.ack.iter_mut().zip(&c.ack) {
            mine.merge(theirs);
        }
        total.delivery.merge(&c.delivery);
    }
    ticker.abort();
    bar.finish_and_clear();
    let cpu = cpu.stop();
    let seconds = duration.as_secs_f64();
    let mut ack_all = Latencies::default();
    for h in &total.ack {
        ack_all.merge(h);
    }
    let failed: u64 = total.errors.values().sum();
    Ok(RelayReport {
        pace: match pace {
            Pace::Closed => "closed".into(),
            Pace::Open { rate } => format!("open {rate} msg/s"),
        },
        senders,
        seconds,
        sent: total.sent,
        acknowledged: total.acknowledged,
        late: total.late,
        lost: total.sent.saturating_sub(total.acknowledged + failed),
        errors: total.errors,
        throughput: total.acknowledged as f64 / seconds,
        ack: ack_all.summary(),
        delivery: total.delivery.summary(),
        cpu,
        ack_by_phase: [total.ack[0].summary(), total.ack[1].summary(), total.ack[2].summary()],
    })
}

struct SenderPlan {
    index: usize,
    senders: usize,
    peer: i64,
    tag: String,
    pace: Pace,
    start: Instant,
    end: Instant,
}

/// How far one connection's sends have got, shared with its peer's reader (which receives them).
#[derive(Default)]
struct Progress {
    /// Sends so far.
    sent: AtomicU64,
    /// Sends acknowledged so far.
    acked: AtomicU64,
    /// Whether the writer is done: `sent` is final.
    done: AtomicBool,
    /// Whether every send was answered: `acked` is final.
    settled: AtomicBool,
    /// Wakes the reader of this connection when its writer or its peer's is done.
    wake: tokio::sync::Notify,
}

/// One connection: a writer that sends on schedule and a reader that times what comes back. The reader stops
/// once its own sends are answered and its peer's acknowledged ones delivered (or the grace period ends).
async fn sender(
    socket: users::Socket,
    plan: SenderPlan,
    phase: Phase,
    acked_total: Arc<AtomicU64>,
    (own, peer): (Arc<Progress>, Arc<Progress>),
) -> anyhow::Result<Counts> {
    let (mut sink, mut stream) = socket.split();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<()>();
    let tag = plan.tag.clone();
    let reader = {
        let (own, peer) = (own.clone(), peer.clone());
        tokio::spawn(async move {
            let mut c = Counts::default();
            // Until every send is answered, or the grace period after the run ends.
            let deadline = tokio::time::Instant::from_std(plan.end + LATE_AFTER);
            loop {
                let answered = c.acknowledged + c.errors.values().sum::<u64>();
                let mine_done = own.done.load(Ordering::Acquire) && answered >= own.sent.load(Ordering::Acquire);
                if mine_done && !own.settled.swap(true, Ordering::AcqRel) {
                    peer.wake.notify_one();
                }
                let theirs_done =
                    peer.settled.load(Ordering::Acquire) && c.delivery.count() >= peer.acked.load(Ordering::Acquire);
                if mine_done && theirs_done {
                    break;
                }
                let next = tokio::select! {
                    next = tokio::time::timeout_at(deadline, stream.next()) => next,
                    () = own.wake.notified() => continue,
                };
                let Ok(Some(Ok(msg))) = next else { break };
                let Message::Text(text) = msg else { continue };
                let Ok(f) = users::frame(text.as_str()) else { continue };
                let now = Instant::now();
                match f.event.as_ref() {
                    "message_sent" => {
                        let Some(nanos) = f.data.client_msg_id.as_deref().and_then(|id| msg_id_nanos(id, &tag)) else {
                            continue;
                        };
                        let latency = now.saturating_duration_since(at(nanos));
                        let p = usize::from(phase.load(Ordering::Relaxed)).min(PHASES - 1);
                        c.ack[p].record(latency);
                        c.acknowledged += 1;
                        own.acked.fetch_add(1, Ordering::Release);
                        if latency > LATE_AFTER {
                            c.late += 1;
                        }
                        acked_total.fetch_add(1, Ordering::Relaxed);
                        let _ = ack_tx.send(());
                    }
                    "error" => {
                        *c.errors.entry(f.data.code.as_deref().unwrap_or("?").to_owned()).or_default() += 1;
                        let _ = ack_tx.send(());
                    }
                    "new_message" => {
                        if let Some(nanos) = f.data.encrypted_content.as_deref().and_then(content_nanos) {
                            c.delivery.record(now.saturating_duration_since(at(nanos)));
                        }
                    }
                    _ => {}
                }
            }
            c
        })
    };
    let mut k: u64 = 0;
    let mut sent = 0u64;
    tokio::time::sleep_until(tokio::time::Instant::from_std(plan.start)).await;
    loop {
        let scheduled = match plan.pace {
            Pace::Closed => Instant::now(),
            Pace::Open { rate } => {
                let slot = k as f64 * plan.senders as f64 + plan.index as f64;
                plan.start + Duration::from_secs_f64(slot / rate)
            }
        };
        if scheduled >= plan.end {
            break;
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(scheduled)).await;
        let nanos = nanos_since_epoch(scheduled);
        let frame = format!(
            r#"{{"action":"send_message","receiver_id":{},"encrypted_content":"{}","client_msg_id":"{}-{}-{}"}}"#,
            plan.peer,
            content(nanos),
            plan.tag,
            plan.index,
            nanos
        );
        if sink.send(Message::text(frame)).await.is_err() {
            break;
        }
        sent += 1;
        k += 1;
        own.sent.store(sent, Ordering::Release);
        if let Pace::Closed = plan.pace {
            let left = plan.end.saturating_duration_since(Instant::now()) + LATE_AFTER;
            if !matches!(tokio::time::timeout(left, ack_rx.recv()).await, Ok(Some(()))) {
                break;
            }
        }
    }
    own.done.store(true, Ordering::Release);
    own.wake.notify_one();
    let mut c = reader.await?;
    c.sent = sent;
    let _ = sink.close().await;
    Ok(c)
}

/// Fills the conversation of `a` and `b` with `n` messages (pipelined, at most `window` unacknowledged), as
/// fast as the server takes them; answers when every one is acknowledged.
pub async fn fill(base: &str, a: &User, b: &User, n: u64, window: u64) -> anyhow::Result<()> {
    let socket = users::connect(base, a).await?;
    let (mut sink, mut stream) = socket.split();
    let tag = users::run_tag();
    let bar = crate::counter(n, "filling the chat");
    let (mut sent, mut done) = (0u64, 0u64);
    while done < n {
        while sent < n && sent - done < window {
            let frame = format!(
                r#"{{"action":"send_message","receiver_id":{},"encrypted_content":"{}","client_msg_id":"{tag}-f-{sent}"}}"#,
                b.id,
                content(sent)
            );
            sink.send(Message::text(frame)).await?;
            sent += 1;
        }
        let msg = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .map_err(|_| anyhow::anyhow!("no acknowledgement for 30 s while filling the chat"))?;
        let Some(Ok(Message::Text(text))) = msg else { anyhow::bail!("the WebSocket closed while filling the chat") };
        let f = users::frame(text.as_str())?;
        match f.event.as_ref() {
            "message_sent" => done += 1,
            "error" => anyhow::bail!("send refused while filling the chat: {}", f.data.code.as_deref().unwrap_or("?")),
            _ => {}
        }
        bar.set_position(done);
    }
    bar.finish_and_clear();
    let _ = sink.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_carries_its_schedule_in_the_id_and_the_ciphertext() {
        let nanos = 1_234_567_890_123;
        assert_eq!(content_nanos(&content(nanos)), Some(nanos));
        assert_eq!(msg_id_nanos(&format!("abcd1234-7-{nanos}"), "abcd1234"), Some(nanos));
        assert_eq!(msg_id_nanos(&format!("ffff0000-7-{nanos}"), "abcd1234"), None, "another run's id");
        assert_eq!(content_nanos("not base64!"), None);
    }

    #[test]
    fn scheduled_times_round_trip_through_the_epoch() {
        let t = Instant::now() + Duration::from_millis(5);
        let back = at(nanos_since_epoch(t));
        assert!(back.max(t) - back.min(t) < Duration::from_micros(1));
    }
}
