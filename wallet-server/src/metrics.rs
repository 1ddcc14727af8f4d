//! Prometheus metrics: counters fed by the request path and the jobs as things happen, and
//! gauges read from the database when `/metrics` is scraped (so several instances on one
//! PostgreSQL all report the same queue depths instead of each its own share).
//!
//! The registry is one per process: the request path, the jobs and the upload code record into
//! it through the `record_*` functions without carrying a handle around.

use crate::state::AppState;
use crate::store::ops::OpsSnapshot;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

struct Metrics {
    registry: Registry,
    http_requests: Family<Labels, Counter>,
    http_duration: HistogramFamily,
    tokens_issued: Counter,
    event_uploads: Family<Labels, Counter>,
    events_stored: Family<Labels, Counter>,
    job_runs: Family<Labels, Counter>,
    job_failures: Family<Labels, Counter>,
    outbox_depth: Family<Labels, Gauge>,
    outbox_oldest: Family<Labels, Gauge>,
    consents: Family<Labels, Gauge>,
    vouchers: Family<Labels, Gauge>,
    pupils_erased: Gauge,
    pool: Family<Labels, Gauge>,
    pool_max: Gauge,
    scrape_errors: Counter<u64, AtomicU64>,
}

fn latency_buckets() -> Histogram {
    // 1 ms to ~16 s: a QR answer takes milliseconds, a large event upload on SQLite seconds.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 15,
    ))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut r = Registry::with_prefix("tamaq");
    let m = Metrics {
        http_requests: Family::default(),
        http_duration: Family::new_with_constructor(latency_buckets),
        tokens_issued: Counter::default(),
        event_uploads: Family::default(),
        events_stored: Family::default(),
        job_runs: Family::default(),
        job_failures: Family::default(),
        outbox_depth: Family::default(),
        outbox_oldest: Family::default(),
        consents: Family::default(),
        vouchers: Family::default(),
        pupils_erased: Gauge::default(),
        pool: Family::default(),
        pool_max: Gauge::default(),
        scrape_errors: Counter::default(),
        registry: Registry::default(),
    };
    r.register(
        "http_requests",
        "HTTP requests by method, route pattern and status",
        m.http_requests.clone(),
    );
    r.register(
        "http_request_duration_seconds",
        "Time from the request's arrival to its response, by method and route pattern",
        m.http_duration.clone(),
    );
    r.register(
        "tokens_issued",
        "QR tokens signed for parents",
        m.tokens_issued.clone(),
    );
    r.register(
        "event_uploads",
        "Terminal event uploads by outcome (stored, refused)",
        m.event_uploads.clone(),
    );
    r.register(
        "events_stored",
        "Meal events newly stored from terminals, by class of proof",
        m.events_stored.clone(),
    );
    r.register(
        "job_runs",
        "Background job rounds by job",
        m.job_runs.clone(),
    );
    r.register(
        "job_failures",
        "Background job rounds that failed, by job",
        m.job_failures.clone(),
    );
    r.register(
        "outbox_depth",
        "Messages waiting in an outbox (sms, nobd)",
        m.outbox_depth.clone(),
    );
    r.register(
        "outbox_oldest_age_seconds",
        "Age of the oldest message waiting in an outbox (0 when empty)",
        m.outbox_oldest.clone(),
    );
    r.register(
        "consents",
        "Consents of the current records by state",
        m.consents.clone(),
    );
    r.register(
        "vouchers",
        "Vouchers by school year and lifecycle state (issued, active, revoked with its reason, expired)",
        m.vouchers.clone(),
    );
    r.register(
        "pupils_erased",
        "Pupils whose personal data retention erased",
        m.pupils_erased.clone(),
    );
    r.register(
        "db_pool_connections",
        "Database pool connections by state (idle, in_use)",
        m.pool.clone(),
    );
    r.register(
        "db_pool_max_connections",
        "Size limit of the database pool",
        m.pool_max.clone(),
    );
    r.register(
        "metrics_scrape_errors",
        "Scrapes whose database gauges could not be read (the counters were still served)",
        m.scrape_errors.clone(),
    );
    Metrics { registry: r, ..m }
});

/// One answered HTTP request. `route` is the router's pattern (`/api/v1/wallet/vouchers/{id}`),
/// never the path itself, so ids do not become label values.
pub fn record_http(method: &str, route: &str, status: u16, seconds: f64) {
    let m = &*METRICS;
    m.http_requests
        .get_or_create(&vec![
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ])
        .inc();
    m.http_duration
        .get_or_create(&vec![
            ("method", method.to_owned()),
            ("route", route.to_owned()),
        ])
        .observe(seconds);
}

pub fn record_token_issued() {
    METRICS.tokens_issued.inc();
}

/// One event upload from a terminal: `stored` or `refused` (the batch was turned away whole).
pub fn record_upload(outcome: &'static str) {
    METRICS
        .event_uploads
        .get_or_create(&vec![("outcome", outcome.to_owned())])
        .inc();
}

/// Events newly stored by an upload, by class: `proven` and `card` (meals that count),
/// `refused` (served events the server refused) and `rejection` (scans that served nothing).
pub fn record_events_stored(class: &str, n: u64) {
    if n > 0 {
        METRICS
            .events_stored
            .get_or_create(&vec![("class", class.to_owned())])
            .inc_by(n);
    }
}

/// One round of a background job.
pub fn record_job(job: &'static str, ok: bool) {
    let labels = vec![("job", job.to_owned())];
    METRICS.job_runs.get_or_create(&labels).inc();
    if !ok {
        METRICS.job_failures.get_or_create(&labels).inc();
    }
}

fn apply_snapshot(s: &OpsSnapshot) {
    let m = &*METRICS;
    for (outbox, depth, oldest) in [
        ("sms", s.sms_depth, s.sms_oldest_age),
        ("nobd", s.nobd_depth, s.nobd_oldest_age),
    ] {
        let labels = vec![("outbox", outbox.to_owned())];
        m.outbox_depth.get_or_create(&labels).set(depth);
        m.outbox_oldest.get_or_create(&labels).set(oldest);
    }
    // States that emptied since the last scrape must read 0, not their old count.
    m.consents.clear();
    for state in crate::store::ops::CONSENT_STATES {
        let n = s
            .consents
            .iter()
            .find(|(k, _)| k == state)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        m.consents
            .get_or_create(&vec![("state", (*state).to_owned())])
            .set(n);
    }
    m.vouchers.clear();
    for v in &s.vouchers {
        let mut labels = vec![
            ("school_year", v.school_year.clone()),
            ("state", v.status.clone()),
        ];
        if let Some(reason) = &v.reason {
            labels.push(("reason", reason.clone()));
        }
        m.vouchers.get_or_create(&labels).set(v.vouchers);
    }
    m.pupils_erased.set(s.pupils_erased);
    m.pool
        .get_or_create(&vec![("state", "idle".to_owned())])
        .set(s.pool_idle);
    m.pool
        .get_or_create(&vec![("state", "in_use".to_owned())])
        .set(s.pool_size - s.pool_idle);
    m.pool_max.set(s.pool_max);
}

/// The exposition text, after refreshing the gauges read from the database.
pub async fn render(state: &AppState) -> String {
    match state.store.ops_snapshot(state.now()).await {
        Ok(s) => apply_snapshot(&s),
        Err(e) => {
            METRICS.scrape_errors.inc();
            tracing::warn!(error = %e, "metrics: cannot read queue depths from the database");
        }
    }
    let mut out = String::new();
    prometheus_text::encode(&mut out, &METRICS.registry).expect("writing to a String");
    // The front door counts connections below the router; its lines follow in the same format.
    out.push_str(&state.front_door.snapshot().prometheus("tamaq_http"));
    out
}

/// Marks requests that came in on the separate `[metrics] listen` address.
#[derive(Debug, Clone, Copy)]
pub struct MetricsListener;

/// Who may scrape: on the separate metrics address anyone (unless a token is set), else a
/// loopback client (the real one, after proxies), or anyone with the
/// configured bearer token.
pub fn may_scrape(state: &AppState, req: &Request) -> bool {
    let loopback = crate::client_addr::client_ip(req.extensions())
        .map(|ip| ip.is_loopback())
        .unwrap_or(false);
    if loopback {
        return true;
    }
    let own_listener = req.extensions().get::<MetricsListener>().is_some();
    let Some(token) = &state.settings.metrics.token else {
        return own_listener;
    };
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::staff::session::bearer)
        .map(|given| constant_time_eq(given.as_bytes(), token.expose().as_bytes()))
        .unwrap_or(false)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    // Comparing digests keeps the time independent of where the strings differ and of length.
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>, req: Request) -> Response {
    if !may_scrape(&state, &req) {
        // 404 rather than 403: the endpoint is not there for the public.
        return crate::error::AppError::NotFound("no such page".to_owned()).into_response();
    }
    let body = render(&state).await;
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
    );
    r
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/metrics", axum::routing::get(handler))
}
