//! The HTTP server under the router (SPEC §7, web): hyper's HTTP/1 connection with a header read
//! timeout, and a bound on open connections. `axum::serve` offers neither, so connections are
//! accepted here and handed to hyper-util's builder, which does the HTTP work.
//!
//! - A client that has not sent a whole request header within [`HEADER_READ_TIMEOUT`] — a
//!   slowloris, or a connection opened and left idle — is closed by hyper.
//! - At most `web.max_connections` connections are served at once; further clients wait in the
//!   kernel's accept backlog until one closes, so hundreds of half-open connections cost memory
//!   for a few seconds, never the pages' answers.
//! - On shutdown, requests in flight finish (up to [`DRAIN`]); idle connections close.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::app::Shutdown;

/// Longest wait for a whole request header (SPEC §7: at most 10 s).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for requests in flight at shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until shutdown.
pub async fn serve(router: Router, listener: TcpListener, max_connections: usize, mut shutdown: Shutdown) {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = shutdown.wait() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(request.map(Body::new)).await.unwrap_or_else(|e| match e {})) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN:?}: closing them");
    }
}
