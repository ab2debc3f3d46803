//! Pushing with the process state: the transport's rounds, with `presence` follow-ups for users whose last
//! connection was purged on the way.

use crate::realtime::presence;
use crate::realtime::transport::{self, Target};
use crate::state::AppState;

/// Sends each `(connection id, payload)` concurrently; gone connections are purged and, when a purge takes
/// a user's last connection, their peers get `presence` (offline) in a following round.
pub async fn push(state: &AppState, targets: Vec<Target>) {
    transport::push_rounds(state.push.as_deref(), &state.db, targets, |user| Box::pin(presence::targets(state, user)))
        .await;
}

/// Sends `presence` for `user_id` to its peers, privacy applied; nothing when the online status is hidden.
pub async fn broadcast_presence(state: &AppState, user_id: i64) {
    let targets = presence::targets(state, user_id).await;
    push(state, targets).await;
}
