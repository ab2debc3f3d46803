//! The push boundary: [`PushToConnection`], posting frames to and closing WebSocket connections, and its
//! implementation with the API Gateway Management API client (`@connections`). Knows nothing of the
//! application: the rounds, purges and presence that use it are [`crate::realtime`].

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
