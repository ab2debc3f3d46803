//! `group`: one MLS group message fanned out to every other member device, next to the one-to-one sends that
//! reach the same devices (API.md §15.4, issue 25 item 6). Each round is closed loop: the sender sends, then
//! waits until every receiving device has the message; the server's CPU is measured over each phase.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use futures_util::{SinkExt as _, StreamExt as _};
use messenger_client::Client;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{CpuMeter, CpuUse, Latencies, Summary};
use crate::users::{self, User};

/// The two phases side by side.
#[derive(Debug, Serialize)]
pub struct GroupReport {
    /// Member devices, the sender's included.
    pub devices: usize,
    /// Rounds per phase.
    pub rounds: usize,
    /// One group message per round, to `devices - 1` devices.
    pub group: Phase,
    /// `devices - 1` one-to-one messages per round, one to each of the same devices.
    pub one_to_one: Phase,
    /// Server CPU of a group round over a one-to-one round (below 1: the group message is cheaper).
    pub server_cpu_ratio: Option<f64>,
}

/// One phase.
#[derive(Debug, Serialize)]
pub struct Phase {
    /// Messages received by the receiving devices, all rounds together.
    pub deliveries: u64,
    /// From the send to the last receiving device having it.
    pub fan_out: Summary,
    pub cpu: CpuUse,
    /// Server CPU per round, in milliseconds (local stack only).
    pub server_cpu_ms_per_round: Option<f64>,
    pub wall_s: f64,
}

/// Deliveries per `client_msg_id`, and a wake-up for the waiting sender.
#[derive(Default)]
struct Deliveries {
    seen: Mutex<HashMap<String, usize>>,
    done: Notify,
}

impl Deliveries {
    fn record(&self, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen.entry(id.to_owned()).or_default() += 1;
        drop(seen);
        self.done.notify_waiters();
    }

    async fn wait(&self, id: &str, n: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.done.notified();
            if self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(id).copied().unwrap_or(0) >= n {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                return Err(anyhow!("{id}: not every device received it within 30 s"));
            }
        }
    }

    fn total(&self) -> u64 {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).values().map(|&n| n as u64).sum()
    }
}

/// Registers a reference-client device (keys and MLS key packages published).
async fn device(base: &str, i: usize) -> anyhow::Result<Client> {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    let phone = format!("+1555{:010}", u64::from_le_bytes(b) % 10_000_000_000);
    Client::register(base, None, ("Bench", &format!("Group{i}"), &phone), users::PASSWORD, "bench")
        .await
        .context("sign-up of a group member")
}

/// `group`: a group of `devices` member devices, `rounds` rounds of each phase.
pub async fn run(base: &str, devices: usize, rounds: usize, server_pid: Option<u32>) -> anyhow::Result<GroupReport> {
    let devices = devices.max(2);
    let mut sender = device(base, 0).await?;
    let mut receivers = Vec::new();
    for i in 1..devices {
        receivers.push(device(base, i).await?);
    }
    let group = sender.group_create(Some("bench")).await?.id;
    let ids: Vec<i64> = receivers.iter().map(|c| c.user_id).collect();
    sender.group_add(group, &ids).await?;

    // Every receiving device listens on a plain socket and counts what it gets.
    let deliveries = Arc::new(Deliveries::default());
    let mut readers = Vec::new();
    for r in &receivers {
        let user = User { id: r.user_id, phone: String::new(), token: r.api.token.clone().unwrap_or_default() };
        let mut socket = users::connect(base, &user).await?;
        let deliveries = deliveries.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = socket.next().await {
                if let Ok(f) = users::frame(&text)
                    && (f.event == "new_group_message" || f.event == "new_message")
                    && let Some(id) = f.data.client_msg_id
                {
                    deliveries.record(&id);
                }
            }
        }));
    }
    let n = receivers.len();
    let tag = users::run_tag();

    // Phase 1: one group message per round.
    let mut socket = sender.connect().await?;
    let mut latencies = Latencies::default();
    let cpu = CpuMeter::start(server_pid);
    let start = Instant::now();
    for round in 0..rounds {
        let t0 = Instant::now();
        sender.group_send_as(&mut socket, group, &format!("round {round}"), &format!("g-{tag}-{round}")).await?;
        deliveries.wait(&format!("g-{tag}-{round}"), n).await?;
        latencies.record(t0.elapsed());
    }
    let group_phase = phase(deliveries.total(), &latencies, cpu.stop(), start.elapsed(), rounds);

    // Phase 2: the same devices reached by one-to-one sends.
    let before = deliveries.total();
    let me = User { id: sender.user_id, phone: String::new(), token: sender.api.token.clone().unwrap_or_default() };
    let mut raw = users::connect(base, &me).await?;
    let mut latencies = Latencies::default();
    let cpu = CpuMeter::start(server_pid);
    let start = Instant::now();
    for round in 0..rounds {
        let t0 = Instant::now();
        for (i, to) in ids.iter().enumerate() {
            let frame = serde_json::json!({
                "action": "send_message", "receiver_id": to, "encrypted_content": "bench",
                "client_msg_id": format!("o-{tag}-{round}-{i}"),
            });
            raw.send(Message::Text(frame.to_string().into())).await?;
        }
        // Acknowledgements first (the sender's own budget), then every delivery.
        let mut acked = 0;
        while acked < n {
            let Some(Ok(Message::Text(text))) = raw.next().await else {
                return Err(anyhow!("the sender's socket closed"));
            };
            let f = users::frame(&text)?;
            match f.event.as_ref() {
                "message_sent" => acked += 1,
                "error" => {
                    return Err(anyhow!(
                        "a send was refused: {:?} (run the stack with the bench's limits)",
                        f.data.code
                    ));
                }
                _ => {}
            }
        }
        for i in 0..n {
            deliveries.wait(&format!("o-{tag}-{round}-{i}"), 1).await?;
        }
        latencies.record(t0.elapsed());
    }
    let one = phase(deliveries.total() - before, &latencies, cpu.stop(), start.elapsed(), rounds);
    for r in readers {
        r.abort();
    }
    let ratio = match (group_phase.server_cpu_ms_per_round, one.server_cpu_ms_per_round) {
        (Some(g), Some(o)) if o > 0.0 => Some(g / o),
        _ => None,
    };
    Ok(GroupReport { devices, rounds, group: group_phase, one_to_one: one, server_cpu_ratio: ratio })
}

fn phase(deliveries: u64, latencies: &Latencies, cpu: CpuUse, wall: Duration, rounds: usize) -> Phase {
    let wall_s = wall.as_secs_f64();
    Phase {
        deliveries,
        fan_out: latencies.summary(),
        cpu,
        server_cpu_ms_per_round: cpu.server_cores.map(|c| c * wall_s * 1000.0 / rounds.max(1) as f64),
        wall_s,
    }
}
