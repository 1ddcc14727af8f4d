//! One access-log line and one set of HTTP metrics per request, a request id the client sees,
//! and `Cache-Control: no-store` on every answer that does not choose its own caching.
//!
//! The line names the route pattern (`/api/v1/wallet/vouchers/{id}/qr`), never the path or the
//! query: share links and wallet pages carry tokens there, and login bodies carry codes and
//! phone numbers, so nothing from the request but its method and pattern is written.

use crate::client_addr;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

pub const REQUEST_ID: &str = "x-request-id";

/// The target access-log lines are written under, so a filter can route or silence them.
pub const TARGET: &str = "access";

pub async fn layer(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let client = client_addr::client_ip(req.extensions());
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    // Personal data, QR codes and session answers must not linger in a shared or browser cache;
    // the few answers that may be cached (static assets) say so themselves.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID, v);
    }
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    crate::metrics::record_http(&method, &route, status, elapsed.as_secs_f64());
    let client = client
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "-".to_owned());
    tracing::info!(
        target: TARGET,
        method = %method,
        route = %route,
        status,
        latency_ms = format_args!("{:.3}", elapsed.as_secs_f64() * 1000.0),
        request_id = %request_id,
        client = %client,
        "request"
    );
    response
}
