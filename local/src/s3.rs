//! The embedded S3 endpoint: s3s over the local file system, with SigV4 (and presigned URLs) verified.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{S3_ACCESS_KEY, S3_SECRET_KEY};

/// Serves S3 on `listener` until shutdown.
pub async fn serve(listener: TcpListener, root: PathBuf, mut shutdown: watch::Receiver<bool>) {
    let fs = match s3s_fs::FileSystem::new(&root) {
        Ok(fs) => fs,
        Err(e) => {
            tracing::error!(error = ?e, "S3 file system unavailable");
            return;
        }
    };
    let service = {
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(S3_ACCESS_KEY, S3_SECRET_KEY));
        b.build()
    };
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let service = service.clone();
                let mut stop = shutdown.clone();
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
                    }
                });
            }
        }
    }
}
