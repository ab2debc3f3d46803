//! The push boundary: [`PushToConnection`], posting frames to and closing WebSocket connections, and its
//! implementation with the API Gateway Management API client (`@connections`). Knows nothing of the
//! application: the rounds, purges and presence that use it are [`crate::realtime`].

use std::time::Duration;

use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures_util::future::BoxFuture;

use crate::secret::StaticCredentials;

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

/// How long one post or delete may take, retries included. The SDK sets no such limit by default, and its
/// stalled-stream protection watches the streaming of bodies, which a push does not do (a small request, an
/// empty answer): a gateway that never answered held the handler until Lambda's own timeout. The protection
/// is off, which also takes its wrapper off every request; the limit is one tokio timer around the call
/// (the SDK's own operation timeout boxes a sleep per call; the push path is a third of the relay's CPU).
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// The management API client, built once per process (on first use) with `WS_ENDPOINT` as its endpoint.
#[derive(Debug, Clone)]
pub struct ApiGatewayPush {
    client: crate::aws::OnFirstCall<aws_sdk_apigatewaymanagement::Config, aws_sdk_apigatewaymanagement::Client>,
}

impl ApiGatewayPush {
    /// A client for `endpoint` (`https://{api}.execute-api.{region}.amazonaws.com/{stage}` on AWS).
    pub async fn new(endpoint: &str, credentials: Option<StaticCredentials>) -> Self {
        use aws_sdk_apigatewaymanagement::config::{
            BehaviorVersion, Builder, Credentials, Region, StalledStreamProtectionConfig,
        };
        let builder = match credentials {
            Some(c) => Builder::new()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .http_client(crate::aws::http_client())
                .credentials_provider(Credentials::new(c.access_key, c.secret_key, None, None, "static")),
            None => Builder::from(&crate::aws::load_defaults().await),
        }
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
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

/// `call`, or [`PushError::Other`] once it has taken [`PUSH_TIMEOUT`] (dropping it ends the request).
async fn within_timeout<T>(call: impl Future<Output = T>) -> Result<T, PushError> {
    tokio::time::timeout(PUSH_TIMEOUT, call)
        .await
        .map_err(|_| PushError::Other(anyhow::anyhow!("no answer from the gateway within {PUSH_TIMEOUT:?}")))
}

impl PushToConnection for ApiGatewayPush {
    fn post<'a>(&'a self, connection_id: &'a str, payload: String) -> BoxFuture<'a, Result<(), PushError>> {
        let post = self.client.get().post_to_connection().connection_id(connection_id).data(Blob::new(payload)).send();
        Box::pin(async move {
            within_timeout(post).await?.map_err(classify)?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PushError>> {
        let delete = self.client.get().delete_connection().connection_id(connection_id).send();
        Box::pin(async move {
            within_timeout(delete).await?.map_err(classify)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_post_that_the_gateway_never_answers_fails_after_the_push_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        // Accepts every connection and never answers.
        let silent = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let credentials = StaticCredentials { access_key: "key".into(), secret_key: "secret".into() };
        let push = ApiGatewayPush::new(&endpoint, Some(credentials)).await;
        let outcome = tokio::time::timeout(PUSH_TIMEOUT * 3, push.post("connection", "{}".to_owned())).await;
        assert!(matches!(outcome, Ok(Err(PushError::Other(_)))), "the post ends, as a failure: {outcome:?}");
        let outcome = tokio::time::timeout(PUSH_TIMEOUT * 3, push.delete("connection")).await;
        assert!(matches!(outcome, Ok(Err(PushError::Other(_)))), "the delete ends too: {outcome:?}");
        silent.abort();
    }
}
