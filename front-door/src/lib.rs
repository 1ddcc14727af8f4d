//! The front door both Tamaq HTTP servers stand behind: what one client may hold open, and for
//! how long, before it is refused or cut off so that everybody else keeps being served.
//!
//! Timeouts are hyper's and tower-http's own: hyper's header-read timer runs from the moment a
//! connection waits for a request head (its first, or the next one on a kept-alive connection),
//! so a silent connection, a trickled request line and an idle keep-alive all end when it fires.
//! Body inactivity and whole-request time are `tower_http::timeout` layers. Only the connection
//! caps are counted here, because nothing in hyper or tower counts connections per address.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

pub mod probe;

/// What a client may hold. Every field has a setting in both binaries (docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a complete request head, counted from when the connection starts waiting
    /// for one; it is therefore also the idle keep-alive timeout.
    pub header_read_timeout: Duration,
    /// Longest pause between two pieces of a request body.
    pub body_timeout: Duration,
    /// Longest a whole request may take, body and handler together (answered 408).
    pub request_timeout: Duration,
    /// Open connections in total; beyond it new ones get a 503 and are closed.
    pub max_connections: usize,
    /// Open connections from one client address; beyond it the same.
    pub max_connections_per_client: usize,
}

impl Limits {
    /// The server's defaults: headroom under the common 1024 open-file limit for the database
    /// pool and files, and far more per address than a household or a school NAT needs at once.
    pub const SERVER: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(60),
        max_connections: 768,
        max_connections_per_client: 64,
    };

    /// The kiosk's defaults: one browser on the same machine, which opens a handful of
    /// connections; a page that tries to open hundreds is what the caps are for.
    pub const KIOSK: Limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(60),
        max_connections: 128,
        max_connections_per_client: 64,
    };

    /// Zero durations or caps would refuse everyone; say which one instead.
    pub fn validate(&self) -> Result<(), String> {
        for (name, d) in [
            ("header_timeout_seconds", self.header_read_timeout),
            ("body_timeout_seconds", self.body_timeout),
            ("request_timeout_seconds", self.request_timeout),
        ] {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(format!("{name} must be between 1 and 3600"));
            }
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return Err("max_connections must be between 1 and 1000000".into());
        }
        if self.max_connections_per_client == 0
            || self.max_connections_per_client > self.max_connections
        {
            return Err("max_connections_per_client must be between 1 and max_connections".into());
        }
        Ok(())
    }
}

/// The address the per-client cap counts by. It is the TCP peer: a forwarded address cannot be
/// known before the request head is read, and a connection must be counted when accepted.
/// IPv4 clients seen through an IPv6 socket count as their IPv4 address.
///
/// Behind a reverse proxy every client arrives from the proxy's address; such addresses can be
/// exempted from the per-client cap ([`ClientCapExempt`]), the total cap still counts them.
pub fn client_address(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Client addresses (as [`client_address`] gives them) that the per-client cap does not apply
/// to: a reverse proxy carries many clients over its connections. The total cap still does.
pub type ClientCapExempt = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Running totals for `/metrics` and the kiosk status.
#[derive(Debug, Default)]
pub struct Counters {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    pub refused_total_cap: AtomicU64,
    pub refused_client_cap: AtomicU64,
    pub accept_errors: AtomicU64,
}

/// One reading of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub open: u64,
    pub accepted: u64,
    pub refused_total_cap: u64,
    pub refused_client_cap: u64,
    pub accept_errors: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            open: self.open.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            refused_total_cap: self.refused_total_cap.load(Ordering::Relaxed),
            refused_client_cap: self.refused_client_cap.load(Ordering::Relaxed),
            accept_errors: self.accept_errors.load(Ordering::Relaxed),
        }
    }
}

impl CountersSnapshot {
    /// Prometheus text lines, names starting with `prefix`.
    pub fn prometheus(&self, prefix: &str) -> String {
        format!(
            "# HELP {prefix}_connections_open Connections open now.\n\
             # TYPE {prefix}_connections_open gauge\n\
             {prefix}_connections_open {}\n\
             # HELP {prefix}_connections_accepted_total Connections accepted and served.\n\
             # TYPE {prefix}_connections_accepted_total counter\n\
             {prefix}_connections_accepted_total {}\n\
             # HELP {prefix}_connections_refused_total Connections refused at a cap.\n\
             # TYPE {prefix}_connections_refused_total counter\n\
             {prefix}_connections_refused_total{{cap=\"total\"}} {}\n\
             {prefix}_connections_refused_total{{cap=\"per_client\"}} {}\n\
             # HELP {prefix}_accept_errors_total Failed accepts (e.g. out of file descriptors).\n\
             # TYPE {prefix}_accept_errors_total counter\n\
             {prefix}_accept_errors_total {}\n",
            self.open,
            self.accepted,
            self.refused_total_cap,
            self.refused_client_cap,
            self.accept_errors
        )
    }
}

/// Adds the body-inactivity and whole-request timeouts to a router.
pub fn with_timeouts(router: Router, limits: &Limits) -> Router {
    router
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
}

/// Refusals are logged at most once per this, with the count since the last line: a flood must
/// not become a flood of log lines.
const LOG_EVERY: Duration = Duration::from_secs(10);

struct Throttle {
    last: Mutex<Option<Instant>>,
    since: AtomicU64,
}

impl Throttle {
    fn new() -> Throttle {
        Throttle {
            last: Mutex::new(None),
            since: AtomicU64::new(0),
        }
    }

    fn note(&self, what: impl FnOnce(u64)) {
        self.since.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_none_or(|at| now.duration_since(at) >= LOG_EVERY) {
            *last = Some(now);
            what(self.since.swap(0, Ordering::Relaxed));
        }
    }
}

/// Open connections per client address; an entry goes when its last connection closes.
struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

struct Slot {
    door: Arc<Door>,
    /// The address counted per client; `None` for an exempt one.
    client: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(client) = self.client {
            let mut open = self
                .door
                .per_client
                .open
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = open.get_mut(&client) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&client);
                }
            }
        }
        self.door.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Refusal {
    Total,
    Client,
}

struct Door {
    limits: Limits,
    exempt: Option<ClientCapExempt>,
    counters: Arc<Counters>,
    per_client: PerClient,
    refusals: Throttle,
    accept_errors: Throttle,
}

impl Door {
    fn admit(self: &Arc<Door>, client: IpAddr) -> Result<Slot, Refusal> {
        let mut open = self
            .per_client
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let total: usize = self.counters.open.load(Ordering::Relaxed) as usize;
        if total >= self.limits.max_connections {
            return Err(Refusal::Total);
        }
        let exempt = self.exempt.as_ref().is_some_and(|e| e(client));
        if !exempt {
            let mine = open.entry(client).or_insert(0);
            if *mine >= self.limits.max_connections_per_client {
                return Err(Refusal::Client);
            }
            *mine += 1;
        }
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            door: self.clone(),
            client: (!exempt).then_some(client),
        })
    }
}

/// Written to a refused connection without waiting: if the client does not read it, nothing
/// is lost, the socket is closed either way.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n\r\ntoo many connections";

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets the
/// requests in flight finish. Handlers can extract `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    counters: Arc<Counters>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_exempting(listener, router, limits, None, counters, shutdown).await
}

/// [`serve`], with the addresses `exempt` says yes to left out of the per-client cap (the
/// reverse proxies a server stands behind). They still count towards the total.
pub async fn serve_exempting(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    exempt: Option<ClientCapExempt>,
    counters: Arc<Counters>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let door = Arc::new(Door {
        limits,
        exempt,
        counters,
        per_client: PerClient {
            open: Mutex::new(HashMap::new()),
        },
        refusals: Throttle::new(),
        accept_errors: Throttle::new(),
    });
    let router = with_timeouts(router, &limits);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    door.counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    door.accept_errors.note(|n| tracing::warn!("accept error ({n} since the last report): {e}"));
                    // Out of descriptors: give connections in flight a moment to close rather
                    // than spinning on a listener that cannot accept.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let client = client_address(peer);
        let slot = match door.admit(client) {
            Ok(slot) => slot,
            Err(why) => {
                let (counter, cap) = match why {
                    Refusal::Total => (&door.counters.refused_total_cap, "total"),
                    Refusal::Client => (&door.counters.refused_client_cap, "per-client"),
                };
                counter.fetch_add(1, Ordering::Relaxed);
                door.refusals.note(|n| {
                    tracing::warn!("refused {n} connection(s) at the {cap} connection cap (latest from {client})")
                });
                let _ = stream.try_write(REFUSED);
                drop(stream);
                continue;
            }
        };
        door.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Timeouts and clients that hang up end here as errors; nothing to report.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    // Requests in flight get the request timeout to finish; idle connections close at once.
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(limits.request_timeout) => {},
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(exempt: Option<ClientCapExempt>) -> Arc<Door> {
        Arc::new(Door {
            limits: Limits {
                max_connections: 6,
                max_connections_per_client: 2,
                ..Limits::SERVER
            },
            exempt,
            counters: Arc::default(),
            per_client: PerClient {
                open: Mutex::new(HashMap::new()),
            },
            refusals: Throttle::new(),
            accept_errors: Throttle::new(),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_exempt_address_skips_the_per_client_cap_but_not_the_total() {
        let proxy = ip("10.0.0.1");
        let door = door(Some(Arc::new(move |a| a == proxy)));
        let mut held = Vec::new();
        // Far more than the per-client cap from the proxy.
        for _ in 0..4 {
            held.push(door.admit(proxy).ok().expect("the proxy is exempt"));
        }
        // Others are capped per address as before.
        let other = ip("10.0.0.2");
        held.push(door.admit(other).ok().unwrap());
        held.push(door.admit(other).ok().unwrap());
        assert!(matches!(door.admit(ip("10.0.0.3")), Err(Refusal::Total)));
        assert!(matches!(door.admit(proxy), Err(Refusal::Total)));
        // Freed slots are given back; the exempt address left nothing in the per-client map.
        held.truncate(2);
        assert_eq!(door.counters.snapshot().open, 2);
        assert!(door.per_client.open.lock().unwrap().is_empty());
        assert!(door.admit(other).is_ok());
    }

    #[test]
    fn without_an_exemption_every_address_is_capped() {
        let door = door(None);
        let a = ip("10.0.0.1");
        let _one = door.admit(a).ok().unwrap();
        let _two = door.admit(a).ok().unwrap();
        assert!(matches!(door.admit(a), Err(Refusal::Client)));
    }
}
