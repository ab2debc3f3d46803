//! Pushing with the process state: the transport's rounds, with `presence` follow-ups for users whose last
//! connection was purged on the way.

use crate::db::connections;
use crate::realtime::presence;
use crate::realtime::transport::{self, Target};
use crate::state::AppState;

/// Sends each `(connection id, payload)` concurrently; gone connections are purged and, when a purge takes
/// a user's last connection, their peers get `presence` (offline) in a following round.
pub async fn push(state: &AppState, targets: Vec<Target>) {
    transport::push_rounds(state.push.as_deref(), &state.db, targets, |user| Box::pin(presence::targets(state, user)))
        .await;
}

/// Sends one payload to every connection of `users`, except `except` (the sending connection).
pub async fn push_to_users(state: &AppState, users: &[i64], except: Option<&str>, payload: &str) {
    let conns = match state.db.conn().await {
        Ok(c) => connections::of_users(&c, users).await,
        Err(e) => Err(e),
    };
    match conns {
        Ok(conns) => {
            let targets = conns
                .into_iter()
                .filter(|c| Some(c.id.as_str()) != except)
                .map(|c| (c.id, payload.to_owned()))
                .collect();
            push(state, targets).await;
        }
        Err(e) => tracing::warn!(error = ?e, "connections not loaded, events dropped"),
    }
}

/// Sends `presence` for `user_id` to its peers, privacy applied; nothing when the online status is hidden.
pub async fn broadcast_presence(state: &AppState, user_id: i64) {
    let targets = presence::targets(state, user_id).await;
    push(state, targets).await;
}
