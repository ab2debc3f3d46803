//! Connection bookkeeping with the process state: forgetting, listing and closing connections.

use crate::db::connections::{self, Socket};
use crate::realtime::transport;
use crate::realtime::{fanout, presence};
use crate::state::AppState;

/// Removes a connection row; when it was the user's last, records `last_seen`. Returns the user id if
/// the user went offline.
pub async fn forget(state: &AppState, connection_id: &str) -> Result<Option<i64>, libsql::Error> {
    state.sessions.forget(connection_id);
    transport::forget(&state.db, connection_id).await
}

/// Closes connections at the gateway (`DeleteConnection`) and forgets them; users left without a
/// connection are announced offline.
pub async fn close(state: &AppState, connection_ids: &[String]) {
    transport::close_at_gateway(state.push.as_deref(), connection_ids).await;
    let mut announcements = Vec::new();
    for id in connection_ids {
        match forget(state, id).await {
            Ok(Some(user)) => announcements.extend(presence::targets(state, user).await),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = ?e, "connection row not removed"),
        }
    }
    fanout::push(state, announcements).await;
}

/// Splits connections into those whose session still holds and the ids of those whose session ended (token
/// expired or revoked, account banned or deleted, device removed). The ended ones get no event: the caller
/// [`close`]s them after its push, so a revocation whose sockets were not closed (a crash between commit
/// and close) stops delivery at the next push.
pub fn split_live(conns: Vec<Socket>) -> (Vec<Socket>, Vec<String>) {
    let (live, ended): (Vec<Socket>, Vec<Socket>) = conns.into_iter().partition(|c| c.live);
    (live, ended.into_iter().map(|c| c.id).collect())
}

/// Sends one payload to every live connection of `users`, except `except` (the sending connection); the
/// connections whose session ended are closed instead ([`split_live`]).
pub async fn push_to_users(state: &AppState, users: &[i64], except: Option<&str>, payload: &str) {
    let conns = match state.db.conn().await {
        Ok(c) => connections::of_users(&c, users).await,
        Err(e) => Err(e),
    };
    match conns {
        Ok(conns) => {
            let (live, ended) = split_live(conns);
            let targets = live
                .into_iter()
                .filter(|c| Some(c.id.as_str()) != except)
                .map(|c| (c.id, payload.to_owned()))
                .collect();
            fanout::push(state, targets).await;
            close(state, &ended).await;
        }
        Err(e) => tracing::warn!(error = ?e, "connections not loaded, events dropped"),
    }
}

/// Closes every connection of `user_id` except those of `keep_device`.
pub async fn close_user_connections(state: &AppState, user_id: i64, keep_device: Option<&str>) {
    let conns = match state.db.conn().await {
        Ok(c) => connections::of_users(&c, &[user_id]).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let ids: Vec<String> =
        conns.into_iter().filter(|c| Some(c.device_id.as_str()) != keep_device).map(|c| c.id).collect();
    close(state, &ids).await;
}
