//! Slow clients against the real server on loopback: silent connections, trickled request heads
//! and idle keep-alives from three addresses, more than the per-client cap from one of them.
//! `/healthz` from another address keeps answering fast, the slow connections are closed within
//! the header timeout, refusals are counted in `/metrics`, and memory stays bounded.

mod common;

use front_door::probe::{self, Ended, Slow};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const HEADER_TIMEOUT: u64 = 2;
const PER_CLIENT: usize = 60;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn start(pg: bool) -> (SocketAddr, wallet_server::testkit::TestState) {
    start_behind(pg, &[]).await
}

async fn start_behind(
    pg: bool,
    trusted_proxies: &[&str],
) -> (SocketAddr, wallet_server::testkit::TestState) {
    let mut settings = wallet_server::config::Settings::default();
    settings.server.trusted_proxies = trusted_proxies.iter().map(|s| s.to_string()).collect();
    settings.server.header_timeout_seconds = HEADER_TIMEOUT;
    settings.server.max_connections = 400;
    settings.server.max_connections_per_client = PER_CLIENT;
    let t = wallet_server::testkit::state_with(pg, settings).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = t.state.clone();
    tokio::spawn(async move { wallet_server::app::serve(state, listener).await.unwrap() });
    (addr, t)
}

both_backends!(slowloris, |pg| async move {
    let (addr, _t) = start(pg).await;
    let honest = ip("127.0.0.1");
    let (rss_before, _) = probe::memory_kib(std::process::id()).unwrap();

    let started = Instant::now();
    let mut held = Vec::new();
    for (source, kind, n) in [
        ("127.0.0.2", Slow::Silent, PER_CLIENT + 40),
        ("127.0.0.3", Slow::Trickle, PER_CLIENT),
        ("127.0.0.4", Slow::IdleKeepAlive, PER_CLIENT),
    ] {
        for _ in 0..n {
            match probe::slow_client(ip(source), addr, kind, "/healthz").await {
                Ok(s) => held.push((source, kind, s)),
                // The idle kind reads an answer first: a refused one gets the 503 and a close.
                Err(e) => panic!("{source} {kind:?}: {e}"),
            }
        }
    }

    // Those over the cap are answered 503 and closed at once; the others stay open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut buf = [0u8; 256];
    let early = held
        .iter()
        .filter(|(_, _, s)| !matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock))
        .count();
    assert_eq!(early, 40, "refused at the per-client cap");

    // While they are held, an honest client is served at once, again and again.
    let mut latencies = Vec::new();
    while started.elapsed() < Duration::from_millis(HEADER_TIMEOUT * 1000 - 300) {
        let (status, took) = probe::get(honest, addr, "/healthz").await.unwrap();
        assert_eq!(status, 200);
        latencies.push(took);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let worst = *latencies.last().unwrap();
    assert!(latencies.len() >= 5, "{latencies:?}");
    assert!(median < Duration::from_millis(100), "median {median:?}");
    assert!(worst < Duration::from_secs(1), "worst {worst:?}");

    // Every slow connection ends: the ones over the cap at once, the rest at the header timeout.
    let deadline = Duration::from_secs(HEADER_TIMEOUT + 2);
    for (source, kind, mut stream) in held {
        if let Ended::Open = probe::wait_closed(&mut stream, started, deadline).await {
            panic!("{source} {kind:?} still open after {deadline:?}");
        }
    }

    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tamaq_http_connections_refused_total{cap=\"per_client\"} 40"),
        "{metrics}"
    );
    let (rss_after, peak) = probe::memory_kib(std::process::id()).unwrap();
    eprintln!("test process memory: RSS {rss_before} → {rss_after} KiB, peak {peak} KiB");
    assert!(
        rss_after < rss_before + 50 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
});

/// Connections closed by the server (answered 503 at a cap) among those held.
fn refused(held: &[tokio::net::TcpStream]) -> usize {
    let mut buf = [0u8; 256];
    held.iter()
        .filter(|s| !matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock))
        .count()
}

// Behind a reverse proxy every client arrives from the proxy's address: a trusted proxy is not
// held to the per-client cap (the total still applies), every other address still is.
both_backends!(
    a_trusted_proxy_is_exempt_from_the_per_client_cap,
    |pg| async move {
        let (addr, _t) = start_behind(pg, &["127.0.0.5"]).await;
        let proxy = ip("127.0.0.5");
        let mut through_proxy = Vec::new();
        for _ in 0..PER_CLIENT + 40 {
            through_proxy.push(
                probe::slow_client(proxy, addr, Slow::Silent, "/healthz")
                    .await
                    .unwrap(),
            );
        }
        let mut direct = Vec::new();
        for _ in 0..PER_CLIENT + 5 {
            direct.push(
                probe::slow_client(ip("127.0.0.6"), addr, Slow::Silent, "/healthz")
                    .await
                    .unwrap(),
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(refused(&through_proxy), 0, "the proxy is exempt");
        assert_eq!(refused(&direct), 5, "others are capped per address");
        // The proxy's next request is served too, while it holds more than the cap.
        let (status, _) = probe::get(proxy, addr, "/healthz").await.unwrap();
        assert_eq!(status, 200);
        let metrics = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("tamaq_http_connections_refused_total{cap=\"per_client\"} 5"),
            "{metrics}"
        );
    }
);

#[test]
fn limits_are_settings_with_checked_ranges() {
    use wallet_server::config::Settings;
    let s = Settings::load(
        None,
        [
            (
                "TAMAQ_SERVER_HEADER_TIMEOUT_SECONDS".to_owned(),
                "3".to_owned(),
            ),
            (
                "TAMAQ_SERVER_MAX_CONNECTIONS_PER_CLIENT".to_owned(),
                "7".to_owned(),
            ),
        ],
    )
    .unwrap();
    let limits = s.server.front_door();
    assert_eq!(limits.header_read_timeout, Duration::from_secs(3));
    assert_eq!(limits.max_connections_per_client, 7);
    assert_eq!(
        limits.max_connections,
        front_door::Limits::SERVER.max_connections
    );
    for bad in [
        "[server]\nheader_timeout_seconds = 0\n",
        "[server]\nmax_connections = 10\nmax_connections_per_client = 11\n",
    ] {
        let err = Settings::from_toml(bad).unwrap_err().to_string();
        assert!(err.contains("[server]"), "{err}");
    }
}
