//! The HTTP application: `app(state)` builds the router, so tests can call it with `oneshot`.

use crate::api;
use crate::state::AppState;
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

/// Bodies larger than this are refused before they are read (roster imports use the CLI).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

pub fn app(state: AppState) -> Router {
    Router::new()
        .nest("/api/v1", api::router())
        .merge(api::health::router())
        .merge(crate::web::router())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until SIGTERM or Ctrl-C, then lets requests in flight finish. Connections and their
/// timeouts are bounded by `[server]` settings (docs/operations.md, "Front door").
pub async fn serve(state: AppState, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let limits = state.settings.server.front_door();
    let counters = state.front_door.clone();
    front_door::serve(listener, app(state), limits, counters, shutdown_signal()).await
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
