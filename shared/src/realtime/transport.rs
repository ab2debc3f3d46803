//! The push boundary: [`PushToConnection`] (implemented by the API Gateway Management API client),
//! concurrent fan-out rounds and the purge of connections the gateway reports gone (HTTP 410).

use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures_util::future::{BoxFuture, join_all};

use crate::db::Db;
use crate::secret::StaticCredentials;

/// One push: (connection id, serialized frame).
pub type Target = (String, String);

/// Why a post or delete failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The connection is gone (`GoneException`, HTTP 410): its row must be deleted.
    #[error("connection gone")]
    Gone,
    /// Any other failure (logged; stored data is never lost, clients catch up through history).
    #[error(transparent)]
    Other(anyhow::Error),
}

/// Posting to and closing WebSocket connections, as the API Gateway Management API does.
pub trait PushToConnection: Send + Sync + std::fmt::Debug {
    /// Sends one frame to a connection (`PostToConnection`).
    fn post<'a>(&'a self, connection_id: &'a str, payload: String) -> BoxFuture<'a, Result<(), PushError>>;
    /// Closes a connection at the gateway (`DeleteConnection`).
    fn delete<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PushError>>;
}

/// The management API client, built once per process (on first use) with `WS_ENDPOINT` as its endpoint.
#[derive(Debug, Clone)]
pub struct ApiGatewayPush {
    client: crate::aws::OnFirstCall<aws_sdk_apigatewaymanagement::Config, aws_sdk_apigatewaymanagement::Client>,
}

impl ApiGatewayPush {
    /// A client for `endpoint` (`https://{api}.execute-api.{region}.amazonaws.com/{stage}` on AWS).
    pub async fn new(endpoint: &str, credentials: Option<StaticCredentials>) -> Self {
        use aws_sdk_apigatewaymanagement::config::{BehaviorVersion, Builder, Credentials, Region};
        let builder = match credentials {
            Some(c) => Builder::new()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .http_client(crate::aws::http_client())
                .credentials_provider(Credentials::new(c.access_key, c.secret_key, None, None, "static")),
            None => Builder::from(&crate::aws::load_defaults().await),
        };
        Self {
            client: crate::aws::OnFirstCall::new(
                builder.endpoint_url(endpoint).build(),
                aws_sdk_apigatewaymanagement::Client::from_conf,
            ),
        }
    }
}

/// Classifies an SDK error: a typed `GoneException` or a bare 410 is [`PushError::Gone`].
fn classify<E>(err: aws_sdk_apigatewaymanagement::error::SdkError<E>) -> PushError
where
    E: aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let gone = err.as_service_error().and_then(|e| e.code()).is_some_and(|c| c == "GoneException")
        || err.raw_response().is_some_and(|r| r.status().as_u16() == 410);
    if gone { PushError::Gone } else { PushError::Other(anyhow::Error::new(err)) }
}

impl PushToConnection for ApiGatewayPush {
    fn post<'a>(&'a self, connection_id: &'a str, payload: String) -> BoxFuture<'a, Result<(), PushError>> {
        Box::pin(async move {
            self.client
                .get()
                .post_to_connection()
                .connection_id(connection_id)
                .data(Blob::new(payload))
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PushError>> {
        Box::pin(async move {
            self.client.get().delete_connection().connection_id(connection_id).send().await.map_err(classify)?;
            Ok(())
        })
    }
}

/// Removes a connection row in one write transaction; when it was the user's last, records `last_seen`.
/// Returns the user id if the user went offline.
pub async fn forget(db: &Db, connection_id: &str) -> Result<Option<i64>, libsql::Error> {
    use crate::db::{connections, users};
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
pub async fn send_round(push: Option<&dyn PushToConnection>, db: &Db, targets: Vec<Target>) -> Vec<i64> {
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
        match forget(db, &id).await {
            Ok(Some(user)) => offline.push(user),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = ?e, "stale connection not purged"),
        }
    }
    offline
}

/// Sends `targets` in rounds: when a purge takes a user's last connection, `announce(user)` gives the
/// follow-up frames (their peers' `presence`), sent in the next round. Each round can only purge
/// connections, so this ends; the bound of three rounds keeps a pathological case short.
pub async fn push_rounds<'s, F>(push: Option<&dyn PushToConnection>, db: &Db, targets: Vec<Target>, announce: F)
where
    F: Fn(i64) -> BoxFuture<'s, Vec<Target>>,
{
    let mut targets = targets;
    for _ in 0..3 {
        if targets.is_empty() {
            return;
        }
        let offline = send_round(push, db, targets).await;
        targets = Vec::new();
        for user in offline {
            targets.extend(announce(user).await);
        }
    }
}

/// Closes connections at the gateway (`DeleteConnection`), concurrently; a connection already gone is fine.
pub async fn close_at_gateway(push: Option<&dyn PushToConnection>, connection_ids: &[String]) {
    let Some(push) = push else { return };
    let closes = connection_ids.iter().map(|id| push.delete(id));
    for (id, result) in connection_ids.iter().zip(join_all(closes).await) {
        if let Err(PushError::Other(e)) = result {
            tracing::warn!(error = ?e, connection = %id, "delete connection failed");
        }
    }
}
