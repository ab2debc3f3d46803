//! Real-time events: `{"event", "data"}` frames pushed to WebSocket connections with the API Gateway
//! Management API (`PostToConnection`).
//!
//! - [`transport`]: the push client, concurrent fan-out rounds and the purge of connections gone (410);
//!   knows nothing of the application state.
//! - [`connections`]: connection bookkeeping (forget, list, close).
//! - [`presence`]: presence payloads with the owner's privacy applied, and conversation peers.
//! - [`fanout`]: pushing with the process state (presence follow-ups for users who went offline).
//! - [`sessions`]: the sessions of connections, cached per process for at most 60 s.
//!
//! The items re-exported here are the ones the functions call.

pub mod connections;
pub mod fanout;
pub mod presence;
pub mod sessions;
pub mod transport;

pub use crate::realtime::connections::{close, close_user_connections, forget, push_to_users, split_live};
pub use crate::realtime::fanout::{broadcast_presence, push};
