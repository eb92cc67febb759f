//! The web view: axum router, pages, JSON API, exports. Errors map to responses in one place.

use axum::Router;
use axum::routing::get;

use crate::app::{App, Shutdown};

pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(|| async { crate::telemetry::metrics_handle().render() }))
        .with_state(app)
}

/// Serves until shutdown, finishing requests in flight.
pub async fn serve(app: App, listener: tokio::net::TcpListener, mut shutdown: Shutdown) -> anyhow::Result<()> {
    axum::serve(listener, router(app)).with_graceful_shutdown(async move { shutdown.wait().await }).await?;
    Ok(())
}
