//! The WebSocket connections the gateway holds open, and API Gateway's limits on them: the state shared by
//! the gateway ([`crate::gateway`]) and the WebSocket API ([`crate::ws`]).

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

/// API Gateway's limits and timeouts for WebSocket connections.
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    /// Close after this long without a message from the client (API Gateway: 10 minutes).
    pub idle_timeout: Duration,
    /// Close any connection after this long (API Gateway: 2 hours).
    pub max_duration: Duration,
}

impl Default for WsLimits {
    fn default() -> Self {
        Self { idle_timeout: Duration::from_secs(600), max_duration: Duration::from_secs(7200) }
    }
}

/// What the gateway sends down a connection.
#[derive(Debug)]
pub enum Outgoing {
    /// A text frame (from `PostToConnection`).
    Text(String),
    /// Close with this code (from `DeleteConnection`, limits, timeouts).
    Close(u16, &'static str),
}

/// An open connection as the gateway tracks it.
#[derive(Debug)]
pub struct ConnEntry {
    pub(crate) tx: mpsc::UnboundedSender<Outgoing>,
    pub(crate) connected_at: i64,
    pub(crate) last_active: Arc<AtomicI64>,
    pub(crate) source_ip: String,
    pub(crate) user_agent: String,
}

/// Open connections by id.
pub type Registry = Arc<Mutex<HashMap<String, ConnEntry>>>;

pub(crate) fn lock(reg: &Registry) -> std::sync::MutexGuard<'_, HashMap<String, ConnEntry>> {
    reg.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
