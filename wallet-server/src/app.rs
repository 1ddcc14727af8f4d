//! The HTTP application: `app(state)` builds the router, so tests can call it with `oneshot`.

use crate::api;
use crate::state::AppState;
use axum::Router;
use std::sync::Arc;
use tower_http::limit::RequestBodyLimitLayer;

/// Bodies larger than this are refused before they are read (roster imports use the CLI).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

pub fn app(state: AppState) -> Router {
    let trusted = Arc::new(state.settings.trusted_proxies());
    Router::new()
        .nest("/api/v1", api::router())
        .merge(api::health::router())
        .merge(crate::metrics::router())
        .merge(crate::web::router())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(crate::access_log::layer))
        // Outermost, so that the access log, the limits and the handlers all see the real client.
        .layer(axum::middleware::from_fn_with_state(
            trusted,
            crate::client_addr::layer,
        ))
        .with_state(state)
}

/// The separate `[metrics] listen` address: `/metrics` only, to any peer that reaches it (the
/// operator binds it where only the scraper can), or with the bearer token when one is set.
pub fn metrics_app(state: AppState) -> Router {
    let trusted = Arc::new(state.settings.trusted_proxies());
    Router::new()
        .merge(crate::metrics::router())
        .layer(axum::Extension(crate::metrics::MetricsListener))
        .layer(axum::middleware::from_fn_with_state(
            trusted,
            crate::client_addr::layer,
        ))
        .with_state(state)
}

/// Serves until SIGTERM or Ctrl-C, then lets requests in flight finish. With `[metrics] listen`
/// set, that address serves `/metrics` alongside.
pub async fn serve(state: AppState, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_until(state, listener, shutdown_signal()).await
}

/// Serves until `shutdown` resolves, then stops accepting and lets requests in flight finish.
pub async fn serve_until(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = match &state.settings.metrics.listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on [metrics] listen {addr}: {e}"),
                )
            })?;
            tracing::info!(address = %l.local_addr()?, "metrics listening");
            let app = metrics_app(state.clone());
            Some(tokio::spawn(async move {
                axum::serve(
                    l,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .await
            }))
        }
        None => None,
    };
    // Connections and their timeouts are bounded by `[server]` settings (docs/operations.md,
    // "Front door"). A trusted proxy carries many clients: the per-address cap does not apply
    // to it (the total does; its clients are told apart by the rate limits).
    let limits = state.settings.server.front_door();
    let counters = state.front_door.clone();
    let exempt = state.settings.trusted_proxies().cap_exempt();
    let served =
        front_door::serve_exempting(listener, app(state), limits, exempt, counters, shutdown).await;
    // The scrape address lives exactly as long as the service it describes.
    if let Some(m) = metrics {
        m.abort();
    }
    served
}

/// `serve` and `demo`: the HTTP server and the background jobs until SIGTERM or Ctrl-C. Then
/// new connections are refused, deliveries stop after the message in flight, and everything
/// gets `[server] shutdown_grace_seconds` to finish before it is cut off; outbox rows claimed
/// but not sent are released, so another instance sends them at once.
pub async fn run_until_signal(
    state: AppState,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let jobs = crate::jobs::start(state.clone())?;
    let mut stopping = jobs.stopping();
    let server = tokio::spawn(serve_until(state.clone(), listener, async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    }));
    tokio::pin!(server);
    let grace = std::time::Duration::from_secs(state.settings.server.shutdown_grace_seconds);
    let served = tokio::select! {
        _ = shutdown_signal() => None,
        r = &mut server => Some(r),
    };
    let deadline = tokio::time::Instant::now() + grace;
    let stopped = jobs.stop(deadline);
    let Some(served) = served else {
        let (_, finished) = tokio::join!(stopped, tokio::time::timeout_at(deadline, &mut server));
        match finished {
            Ok(r) => r??,
            Err(_) => {
                server.abort();
                tracing::warn!(
                    grace_seconds = grace.as_secs(),
                    "requests still running at the end of the grace period were cut off"
                );
            }
        }
        tracing::info!("stopped");
        return Ok(());
    };
    stopped.await;
    served??;
    Ok(())
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
