//! Real-time events: `{"event", "data"}` frames pushed to WebSocket connections through
//! [`crate::push::PushToConnection`] (the API Gateway Management API), with the process state.
//!
//! - **Rounds**: concurrent posts; a connection the gateway reports gone (410) is purged, and when that was
//!   its user's last, the user's peers get `presence` (offline) in a following round.
//! - **Presence**: the frames a user's peers get, with the user's privacy settings applied.
//! - **Connections**: forgetting, listing and closing them (a forgotten connection leaves the session cache,
//!   [`crate::sessions`], too).

use futures_util::future::join_all;
use wire::ws::{Presence, ServerEvent};

use crate::db::connections::{self, Socket};
use crate::db::{Db, messages, users};
use crate::push::{PushError, PushToConnection};
use crate::state::AppState;

/// One push: (connection id, serialized frame).
pub type Target = (String, String);

/// Removes a connection row in one write transaction; when it was the user's last, records `last_seen`.
/// Returns the user id if the user went offline.
async fn forget_row(db: &Db, connection_id: &str) -> Result<Option<i64>, libsql::Error> {
    let conn = db.conn().await?;
    let tx = conn.write_tx().await?;
    let mut offline = None;
    if let Some(user_id) = connections::remove(&tx, connection_id).await?
        && !connections::user_has_any(&tx, user_id).await?
    {
        users::set_last_seen(&tx, user_id, crate::time::now_ms()).await?;
        offline = Some(user_id);
    }
    tx.commit().await?;
    Ok(offline)
}

/// One round of posts, concurrently. A gone connection's row (and only that row) is deleted; other failures
/// are logged. Returns the users whose last connection was purged.
async fn send_round(push: Option<&dyn PushToConnection>, db: &Db, targets: Vec<Target>) -> Vec<i64> {
    let Some(push) = push else {
        tracing::debug!(count = targets.len(), "no WS_ENDPOINT configured, events dropped");
        return Vec::new();
    };
    let sends = targets.into_iter().map(|(id, payload)| async move {
        match push.post(&id, payload).await {
            Ok(()) => None,
            Err(PushError::Gone) => Some(id),
            Err(PushError::Other(e)) => {
                tracing::warn!(error = ?e, "post to connection failed");
                None
            }
        }
    });
    let gone: Vec<String> = join_all(sends).await.into_iter().flatten().collect();
    let mut offline = Vec::new();
    for id in gone {
        match forget_row(db, &id).await {
            Ok(Some(user)) => offline.push(user),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = ?e, "stale connection not purged"),
        }
    }
    offline
}

/// Closes connections at the gateway (`DeleteConnection`), concurrently; a connection already gone is fine.
async fn close_at_gateway(push: Option<&dyn PushToConnection>, connection_ids: &[String]) {
    let Some(push) = push else { return };
    let closes = connection_ids.iter().map(|id| push.delete(id));
    for (id, result) in connection_ids.iter().zip(join_all(closes).await) {
        if let Err(PushError::Other(e)) = result {
            tracing::warn!(error = ?e, connection = %id, "delete connection failed");
        }
    }
}

/// Sends each `(connection id, payload)` concurrently; gone connections are purged and, when a purge takes
/// a user's last connection, their peers get `presence` (offline) in a following round. Each round can only
/// purge connections, so this ends; the bound of three rounds keeps a pathological case short.
pub async fn push(state: &AppState, targets: Vec<Target>) {
    let mut targets = targets;
    for _ in 0..3 {
        if targets.is_empty() {
            return;
        }
        let offline = send_round(state.push.as_deref(), &state.db, targets).await;
        targets = Vec::new();
        for user in offline {
            targets.extend(presence_targets(state, user).await);
        }
    }
}

/// Sends `presence` for `user_id` to its peers, privacy applied; nothing when the online status is hidden.
pub async fn broadcast_presence(state: &AppState, user_id: i64) {
    let targets = presence_targets(state, user_id).await;
    push(state, targets).await;
}

/// The `presence` frames for `user_id`, one per connection of its peers. None when the user is deleted or
/// hides the online status (§4.2: the timing of presence events would reveal it); `last_seen` only when
/// the user shows it.
async fn presence_targets(state: &AppState, user_id: i64) -> Vec<Target> {
    let result = async {
        let conn = state.db.conn().await?;
        let Some(user) = users::find(&conn, user_id).await? else { return Ok(Vec::new()) };
        let online = connections::of_users(&conn, &[user_id]).await?.iter().any(|c| c.live);
        let (show_online, show_seen) = (user.privacy.show_online_status, user.privacy.show_last_seen);
        if user.is_deleted || !show_online {
            return Ok(Vec::new());
        }
        let peers = messages::peers_of(&conn, user_id).await?;
        let payload = ServerEvent::Presence(Presence {
            user_id,
            is_online: show_online.then_some(online),
            last_seen: if show_seen { user.last_seen.map(crate::time::format_ms) } else { None },
        })
        .to_frame();
        let conns = connections::of_users(&conn, &peers).await?;
        // Connections whose session ended get nothing (closing them is the pushes' job, not presence's).
        Ok::<_, libsql::Error>(conns.into_iter().filter(|c| c.live).map(|c| (c.id, payload.clone())).collect())
    }
    .await;
    result.unwrap_or_else(|e| {
        tracing::warn!(error = ?e, "presence not computed");
        Vec::new()
    })
}

/// Removes a connection row; when it was the user's last, records `last_seen`. Returns the user id if
/// the user went offline.
pub async fn forget(state: &AppState, connection_id: &str) -> Result<Option<i64>, libsql::Error> {
    state.sessions.forget(connection_id);
    forget_row(&state.db, connection_id).await
}

/// Closes connections at the gateway (`DeleteConnection`) and forgets them; users left without a
/// connection are announced offline.
pub async fn close(state: &AppState, connection_ids: &[String]) {
    close_at_gateway(state.push.as_deref(), connection_ids).await;
    let mut announcements = Vec::new();
    for id in connection_ids {
        match forget(state, id).await {
            Ok(Some(user)) => announcements.extend(presence_targets(state, user).await),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = ?e, "connection row not removed"),
        }
    }
    push(state, announcements).await;
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
            push(state, targets).await;
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
