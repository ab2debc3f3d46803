//! Pushes `{"event", "data"}` frames to WebSocket connections with the API Gateway Management API
//! (`PostToConnection`), concurrently; connections the gateway reports gone are purged.

use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures_util::future::join_all;
use libsql::Connection;
use serde::Serialize;
use serde_json::json;

use crate::state::AppState;
use crate::storage::StaticCredentials;

/// The management API client, built once per process with `WS_ENDPOINT` as its endpoint.
#[derive(Debug, Clone)]
pub struct Realtime {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl Realtime {
    /// A client for `endpoint` (`https://{api}.execute-api.{region}.amazonaws.com/{stage}` on AWS).
    pub async fn new(endpoint: &str, credentials: Option<StaticCredentials>) -> Self {
        use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Builder, Credentials, Region};
        let builder = match credentials {
            Some(c) => Builder::new()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new(c.access_key, c.secret_key, None, None, "static")),
            None => Builder::from(&aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await),
        };
        Self { client: aws_sdk_apigatewaymanagement::Client::from_conf(builder.endpoint_url(endpoint).build()) }
    }
}

/// An open connection of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// API Gateway connection id.
    pub id: String,
    /// Its user.
    pub user_id: i64,
    /// Its device.
    pub device_id: String,
}

/// A serialized server event.
pub fn frame(event: &str, data: impl Serialize) -> String {
    json!({ "event": event, "data": data }).to_string()
}

/// Every open connection of `users`.
pub async fn connections_of(conn: &Connection, users: &[i64]) -> Result<Vec<Conn>, libsql::Error> {
    let ids = serde_json::to_string(users).unwrap_or_else(|_| "[]".into());
    let mut rows = conn
        .query(
            "SELECT id, user_id, device_id FROM connection WHERE user_id IN (SELECT value FROM json_each(?1)) \
             ORDER BY connected_at",
            [ids],
        )
        .await?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().await? {
        out.push(Conn { id: r.get(0)?, user_id: r.get(1)?, device_id: r.get(2)? });
    }
    Ok(out)
}

/// Whether a post failed because the connection is gone.
fn is_gone<E>(err: &aws_sdk_apigatewaymanagement::error::SdkError<E>) -> bool
where
    E: aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata + std::fmt::Debug,
{
    err.as_service_error().and_then(|e| e.code()).is_some_and(|c| c == "GoneException")
        || err.raw_response().is_some_and(|r| r.status().as_u16() == 410)
}

/// Sends each `(connection id, payload)` concurrently. A gone connection's row (and only that row) is deleted;
/// other failures are logged: stored data is never lost, clients catch up through history. When a purge
/// takes a user's last connection, their peers get `presence` (offline) in a following round.
pub async fn push(state: &AppState, targets: Vec<(String, String)>) {
    let mut targets = targets;
    // Each round can only purge connections, so this ends; the bound keeps a pathological case short.
    for _ in 0..3 {
        if targets.is_empty() {
            return;
        }
        let offline = send_round(state, targets).await;
        targets = Vec::new();
        for user in offline {
            targets.extend(presence_targets(state, user).await);
        }
    }
}

/// One round of posts; returns the users whose last connection was purged.
async fn send_round(state: &AppState, targets: Vec<(String, String)>) -> Vec<i64> {
    let Some(rt) = &state.realtime else {
        tracing::debug!(count = targets.len(), "no WS_ENDPOINT configured, events dropped");
        return Vec::new();
    };
    let sends = targets.into_iter().map(|(id, payload)| async move {
        let result = rt.client.post_to_connection().connection_id(&id).data(Blob::new(payload)).send().await;
        match result {
            Ok(_) => None,
            Err(e) if is_gone(&e) => Some(id),
            Err(e) => {
                tracing::warn!(error = ?e, "post to connection failed");
                None
            }
        }
    });
    let gone: Vec<String> = join_all(sends).await.into_iter().flatten().collect();
    let mut offline = Vec::new();
    for id in gone {
        match forget(state, &id).await {
            Ok(Some(user)) => offline.push(user),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = ?e, "stale connection not purged"),
        }
    }
    offline
}

/// Sends one payload to every connection of `users`, except `except` (the sending connection).
pub async fn push_to_users(state: &AppState, users: &[i64], except: Option<&str>, payload: &str) {
    let conns = match state.db.conn().await {
        Ok(c) => connections_of(&c, users).await,
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

/// Removes a connection row; when it was the user's last, records `last_seen`. Returns the user id if
/// the user went offline.
pub async fn forget(state: &AppState, connection_id: &str) -> Result<Option<i64>, libsql::Error> {
    let conn = state.db.conn().await?;
    let tx = conn.write_tx().await?;
    let mut rows = tx.query("DELETE FROM connection WHERE id = ?1 RETURNING user_id", [connection_id]).await?;
    let user: Option<i64> = rows.next().await?.map(|r| r.get(0)).transpose()?;
    drop(rows);
    let mut offline = None;
    if let Some(user_id) = user {
        let mut rows = tx.query("SELECT 1 FROM connection WHERE user_id = ?1 LIMIT 1", [user_id]).await?;
        if rows.next().await?.is_none() {
            drop(rows);
            tx.execute("UPDATE user SET last_seen = ?2 WHERE id = ?1", (user_id, crate::time::now_ms())).await?;
            offline = Some(user_id);
        }
    }
    tx.commit().await?;
    Ok(offline)
}

/// Closes connections at the gateway (`DeleteConnection`) and forgets them; users left without a
/// connection are announced offline.
pub async fn close(state: &AppState, connection_ids: &[String]) {
    if let Some(rt) = &state.realtime {
        let closes = connection_ids.iter().map(|id| rt.client.delete_connection().connection_id(id).send());
        for (id, result) in connection_ids.iter().zip(join_all(closes).await) {
            if let Err(e) = result
                && !is_gone(&e)
            {
                tracing::warn!(error = ?e, connection = %id, "delete connection failed");
            }
        }
    }
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

/// Closes every connection of `user_id` except those of `keep_device`.
pub async fn close_user_connections(state: &AppState, user_id: i64, keep_device: Option<&str>) {
    let conns = match state.db.conn().await {
        Ok(c) => connections_of(&c, &[user_id]).await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let ids: Vec<String> =
        conns.into_iter().filter(|c| Some(c.device_id.as_str()) != keep_device).map(|c| c.id).collect();
    close(state, &ids).await;
}

/// Peers sharing a conversation with `user_id` that is still visible to the peer.
pub async fn peers_of(conn: &Connection, user_id: i64) -> Result<Vec<i64>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT receiver_id FROM message WHERE sender_id = ?1 AND deleted_for_everyone = 0 AND hidden_for_receiver = 0 \
             UNION SELECT sender_id FROM message WHERE receiver_id = ?1 AND deleted_for_everyone = 0 AND hidden_for_sender = 0",
            [user_id],
        )
        .await?;
    let mut peers = Vec::new();
    while let Some(r) = rows.next().await? {
        peers.push(r.get::<i64>(0)?);
    }
    Ok(peers)
}

/// Sends `presence` for `user_id` to its peers, privacy applied; nothing when the online status is hidden.
pub async fn broadcast_presence(state: &AppState, user_id: i64) {
    let targets = presence_targets(state, user_id).await;
    push(state, targets).await;
}

/// The `presence` frames for `user_id`, one per connection of its peers (none if online status is hidden).
async fn presence_targets(state: &AppState, user_id: i64) -> Vec<(String, String)> {
    let result = async {
        let conn = state.db.conn().await?;
        let Some(user) = crate::users::find(&conn, user_id).await? else { return Ok(Vec::new()) };
        let online = !connections_of(&conn, &[user_id]).await?.is_empty();
        let (show_online, show_seen) = (user.privacy.show_online_status, user.privacy.show_last_seen);
        // Hiding the online status means no presence events at all (§4.2): their timing would reveal it.
        if user.is_deleted || !show_online {
            return Ok(Vec::new());
        }
        let peers = peers_of(&conn, user_id).await?;
        let data = json!({
            "user_id": user_id,
            "is_online": show_online.then_some(online),
            "last_seen": if show_seen { user.last_seen.map(crate::time::format_ms) } else { None },
        });
        let payload = frame("presence", data);
        let conns = connections_of(&conn, &peers).await?;
        Ok::<_, libsql::Error>(conns.into_iter().map(|c| (c.id, payload.clone())).collect())
    }
    .await;
    result.unwrap_or_else(|e| {
        tracing::warn!(error = ?e, "presence not computed");
        Vec::new()
    })
}
