//! Running the server for real: a reverse proxy in front (trusted and untrusted peers on
//! loopback), staff account care, `/metrics`, logs and backups. SQLite and PostgreSQL.

mod common;

use common::{Fx, PASSWORD};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use wallet_server::config::Settings;

/// The proxy sits at 127.0.0.1; 127.0.0.2 is another local peer that is not a proxy (Linux
/// routes all of 127/8 to the loopback interface, so both are real TCP peers).
const PROXY: &str = "127.0.0.1";
const STRANGER_PEER: &str = "127.0.0.2";

struct Served {
    fx: Fx,
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(pg: bool) -> Served {
    let mut settings = Settings::default();
    settings.server.trusted_proxies = vec![format!("{PROXY}/32")];
    let fx = Fx::with_settings(pg, settings).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = wallet_server::app(fx.state().clone());
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Served { fx, base, task }
}

/// An HTTP client whose connections come from `peer`.
fn client_from(peer: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(peer.parse::<IpAddr>().unwrap()))
        .build()
        .unwrap()
}

async fn login(
    http: &reqwest::Client,
    base: &str,
    forwarded_for: Option<&str>,
    user: &str,
    pw: &str,
) -> reqwest::Response {
    let mut r = http
        .post(format!("{base}/api/v1/school/login"))
        .json(&serde_json::json!({"username": user, "password": pw}));
    if let Some(f) = forwarded_for {
        r = r.header("X-Forwarded-For", f);
    }
    r.send().await.unwrap()
}

both_backends!(
    proxy_limits_and_headers_follow_the_real_client,
    |pg| async move {
        let s = serve(pg).await;
        let school = s.fx.school(1).await;
        s.fx.staff("director", "school_admin", &[&school]).await;
        let proxy = client_from(PROXY);
        let stranger = client_from(STRANGER_PEER);
        let attacker = "203.0.113.5";
        let director = "198.51.100.7";

        // A wrong-password storm through the proxy from one client...
        for _ in 0..5 {
            let r = login(
                &proxy,
                &s.base,
                Some(attacker),
                "director",
                "Wrong-password-1",
            )
            .await;
            assert_eq!(r.status(), 401);
        }
        let r = login(&proxy, &s.base, Some(attacker), "director", PASSWORD).await;
        assert_eq!(r.status(), 429, "the storming client is stopped");
        // ...does not lock the director out from her own address.
        let r = login(&proxy, &s.base, Some(director), "director", PASSWORD).await;
        assert_eq!(r.status(), 200, "the director still signs in");
        assert_eq!(
            r.headers()["cache-control"],
            "no-store",
            "a session answer is never cached"
        );

        // A peer that is not a proxy cannot borrow the director's address: its header is ignored
        // and its failures count against itself.
        for _ in 0..5 {
            let r = login(
                &stranger,
                &s.base,
                Some(director),
                "director",
                "Wrong-password-1",
            )
            .await;
            assert_eq!(r.status(), 401);
        }
        let r = login(&stranger, &s.base, Some(director), "director", PASSWORD).await;
        assert_eq!(
            r.status(),
            429,
            "the stranger is locked under its own address"
        );
        let r = login(&proxy, &s.base, Some(director), "director", PASSWORD).await;
        assert_eq!(r.status(), 200, "the director is not");

        // The attempts were recorded under the real clients.
        let by_address = |a: &'static str| {
            let raw = &s.fx.raw;
            async move {
                raw.count(&format!(
                    "SELECT COUNT(*) FROM staff_login_attempts WHERE address = '{a}'"
                ))
                .await
            }
        };
        assert_eq!(by_address(attacker).await, 5);
        assert_eq!(by_address(STRANGER_PEER).await, 5);
        assert_eq!(by_address(director).await, 2);
        assert_eq!(by_address(PROXY).await, 0, "never the proxy's own address");

        // HSTS only when a trusted proxy says the client came over TLS.
        let via_tls = |http: &reqwest::Client| {
            http.get(format!("{}/healthz", s.base))
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-For", director)
                .send()
        };
        let r = via_tls(&proxy).await.unwrap();
        assert!(
            r.headers()["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "{:?}",
            r.headers()
        );
        let r = via_tls(&stranger).await.unwrap();
        assert!(r.headers().get("strict-transport-security").is_none());
        let r = proxy
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("strict-transport-security").is_none());
        assert!(r.headers().contains_key("x-request-id"));

        // `/metrics` answers loopback clients, not a remote client behind the proxy.
        let r = proxy
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = proxy
            .get(format!("{}/metrics", s.base))
            .header("X-Forwarded-For", attacker)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
);

both_backends!(
    staff_accounts_are_listed_disabled_and_reset,
    |pg| async move {
        use wallet_server::staff::accounts;
        let s = serve(pg).await;
        let school = s.fx.school(1).await;
        s.fx.staff("director", "school_admin", &[&school]).await;
        s.fx.staff("operator", "operator", &[]).await;
        let store = s.fx.state().store.clone();
        let now = s.fx.now();
        let http = client_from(PROXY);

        let list = accounts::list(store.as_ref()).await.unwrap();
        let names: Vec<&str> = list.iter().map(|a| a.username.as_str()).collect();
        assert_eq!(names, ["director", "operator"]);
        assert_eq!(list[0].schools, std::slice::from_ref(&school.bin));
        assert!(list[1].schools.is_empty() && list[1].disabled_at.is_none());

        // A signed-in director is cut off at once by disabling.
        let r = login(&http, &s.base, None, "director", PASSWORD).await;
        let token = r.json::<serde_json::Value>().await.unwrap()["session_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let me = |t: String| {
            let http = http.clone();
            let url = format!("{}/api/v1/school/me", s.base);
            async move { http.get(url).bearer_auth(t).send().await.unwrap().status() }
        };
        assert_eq!(me(token.clone()).await, 200);
        let done = accounts::disable(store.as_ref(), "Director", "cli", now)
            .await
            .unwrap();
        assert_eq!(done.sessions_ended, 1);
        assert_eq!(me(token).await, 401);
        assert_eq!(
            login(&http, &s.base, None, "director", PASSWORD)
                .await
                .status(),
            401
        );
        assert!(
            accounts::disable(store.as_ref(), "director", "cli", now)
                .await
                .unwrap()
                .unchanged
        );
        accounts::enable(store.as_ref(), "director", "cli", now)
            .await
            .unwrap();
        assert_eq!(
            login(&http, &s.base, None, "director", PASSWORD)
                .await
                .status(),
            200
        );

        // A weak or unknown reset writes nothing; a good one ends the old sessions.
        let weak = accounts::reset_password(store.as_ref(), "director", "short", "cli", now)
            .await
            .unwrap_err();
        assert!(weak.to_string().contains("weak password"), "{weak}");
        let unknown =
            accounts::reset_password(store.as_ref(), "nobody", "Another-Pa55word", "cli", now)
                .await
                .unwrap_err();
        assert!(
            unknown.to_string().contains("no staff account"),
            "{unknown}"
        );
        assert_eq!(
            login(&http, &s.base, None, "director", PASSWORD)
                .await
                .status(),
            200
        );
        let done =
            accounts::reset_password(store.as_ref(), "director", "Another-Pa55word", "cli", now)
                .await
                .unwrap();
        assert_eq!(done.sessions_ended, 2);
        assert_eq!(
            login(&http, &s.base, None, "director", PASSWORD)
                .await
                .status(),
            401
        );
        assert_eq!(
            login(&http, &s.base, None, "director", "Another-Pa55word")
                .await
                .status(),
            200
        );

        // Every change is in the audit log; no password is.
        let actions: HashMap<String, i64> = {
            let mut m = HashMap::new();
            for a in ["staff.disable", "staff.enable", "staff.reset_password"] {
                let n =
                    s.fx.raw
                        .count(&format!(
                    "SELECT COUNT(*) FROM audit_log WHERE action = '{a}' AND subject = 'director'"
                ))
                        .await;
                m.insert(a.to_owned(), n);
            }
            m
        };
        assert_eq!(actions["staff.disable"], 1);
        assert_eq!(actions["staff.enable"], 1);
        assert_eq!(actions["staff.reset_password"], 1);
        assert_eq!(
            s.fx.raw
                .count("SELECT COUNT(*) FROM audit_log WHERE detail LIKE '%Another-Pa55word%'")
                .await,
            0
        );
    }
);

/// Samples of a scrape by family name and labels.
fn scrape(text: &str) -> Vec<prometheus_parse::Sample> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines)
        .expect("the exposition parses")
        .samples
}

fn value(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

both_backends!(metrics_parse_and_move, |pg| async move {
    let s = serve(pg).await;
    let school = s.fx.school(1).await;
    s.fx.staff("director", "school_admin", &[&school]).await;
    let http = client_from(PROXY);
    let get = || async {
        let r = http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        scrape(&r.text().await.unwrap())
    };
    let before = get().await;
    let login_route = [("route", "/api/v1/school/login"), ("status", "401")];
    let n0 = value(&before, "tamaq_http_requests_total", &login_route);
    for _ in 0..3 {
        login(&http, &s.base, None, "director", "Wrong-password-1").await;
    }
    // A consent waiting for its SMS and a queued message show up as database gauges.
    s.fx.raw
        .exec(&format!(
            "INSERT INTO sms_outbox (id, to_phone, text, kind, created_at, next_attempt_at)
             VALUES ('m1', '+77010000000', 't', 'login', {0}, {0})",
            s.fx.now() - 90
        ))
        .await;
    let after = get().await;
    // The registry is the process's: tests running beside this one add to it as well.
    assert!(
        value(&after, "tamaq_http_requests_total", &login_route) - n0 >= 3.0,
        "at least three more 401 answers on the login route"
    );
    assert!(
        value(
            &after,
            "tamaq_http_request_duration_seconds_count",
            &[("route", "/api/v1/school/login")]
        ) >= 3.0
    );
    assert_eq!(
        value(&after, "tamaq_outbox_depth", &[("outbox", "sms")]),
        1.0
    );
    let age = value(
        &after,
        "tamaq_outbox_oldest_age_seconds",
        &[("outbox", "sms")],
    );
    assert!((90.0..3600.0).contains(&age), "{age}");
    assert!(value(&after, "tamaq_db_pool_max_connections", &[]) >= 1.0);
    for state in ["consented", "refused", "requested"] {
        assert!(
            after
                .iter()
                .any(|x| x.metric == "tamaq_consents" && x.labels.get("state") == Some(state)),
            "{state}"
        );
    }
    // Paths with ids never become label values.
    assert!(after.iter().all(|x| x
        .labels
        .get("route")
        .is_none_or(|r| !r.contains("director"))));
});

/// Runs `wallet-server serve` as an operator would (stderr to a file, not a terminal), sends a
/// few requests that carry secrets, stops it and returns what it logged.
async fn serve_and_log(envs: &[(&str, &str)]) -> String {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env_remove("RUST_LOG")
        .env_remove("TAMAQ_CONFIG")
        .env_remove("TAMAQ_DATABASE_URL")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let start = std::time::Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(start.elapsed().as_secs() < 60, "server did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = http
        .post(format!("{base}/api/v1/school/login"))
        .json(&serde_json::json!({"username": "director", "password": "Secret-Pa55word-xyz"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    http.post(format!("{base}/api/v1/wallet/login"))
        .json(&serde_json::json!({"phone": "+77011234567"}))
        .send()
        .await
        .unwrap();
    http.post(format!("{base}/api/v1/wallet/login/verify"))
        .json(&serde_json::json!({"phone": "+77011234567", "code": "918273"}))
        .send()
        .await
        .unwrap();
    http.get(format!("{base}/api/v1/wallet/vouchers"))
        .bearer_auth("SessionTokenThatMustNotBeLogged")
        .send()
        .await
        .unwrap();
    http.get(format!(
        "{base}/no/such/page?token=QueryTokenThatMustNotBeLogged"
    ))
    .send()
    .await
    .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    std::fs::read_to_string(&log_path).unwrap()
}

fn assert_no_secrets(log: &str) {
    for secret in [
        "Secret-Pa55word-xyz",
        "7011234567",
        "918273",
        "SessionTokenThatMustNotBeLogged",
        "QueryTokenThatMustNotBeLogged",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[tokio::test]
async fn access_log_is_plain_text_without_colours_and_without_secrets() {
    let log = serve_and_log(&[]).await;
    assert!(!log.contains('\u{1b}'), "no ANSI codes in a file:\n{log}");
    let access: Vec<&str> = log.lines().filter(|l| l.contains(" access: ")).collect();
    // healthz polls (at least one), then the five requests.
    assert!(access.len() >= 6, "{log}");
    let login = access
        .iter()
        .find(|l| l.contains("route=/api/v1/school/login"))
        .unwrap_or_else(|| panic!("{log}"));
    for field in [
        "method=POST",
        "status=401",
        "latency_ms=",
        "request_id=",
        "client=127.0.0.1",
    ] {
        assert!(login.contains(field), "{field} in {login}");
    }
    assert!(access
        .iter()
        .any(|l| l.contains("route=unmatched") && l.contains("status=404")));
    assert_no_secrets(&log);
}

#[tokio::test]
async fn json_logs_by_configuration() {
    let log = serve_and_log(&[("TAMAQ_LOG_FORMAT", "json")]).await;
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let access: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["target"] == "access").collect();
    let login = access
        .iter()
        .find(|l| l["route"] == "/api/v1/wallet/login/verify")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(login["method"], "POST");
    assert!(login["status"].as_u64().is_some(), "{login}");
    assert_eq!(login["request_id"].as_str().unwrap().len(), 32);
    assert!(login["latency_ms"].is_string() || login["latency_ms"].is_number());
    assert_no_secrets(&log);
}

/// A server on `serve_until` (the `serve` command's loop) with `[metrics]` settings: its base
/// URL, the metrics address, and the sender that stops it.
async fn serve_with_metrics(
    pg: bool,
    token: Option<&str>,
) -> (
    Fx,
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = Settings::default();
    settings.server.trusted_proxies = vec![format!("{PROXY}/32")];
    settings.metrics.listen = Some(format!("127.0.0.1:{metrics_port}"));
    settings.metrics.token = token.map(wallet_server::config::Secret::new);
    let fx = Fx::with_settings(pg, settings).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = fx.state().clone();
    let task = tokio::spawn(async move {
        wallet_server::app::serve_until(state, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let metrics = format!("http://127.0.0.1:{metrics_port}");
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_err() {
        assert!(
            start.elapsed().as_secs() < 30,
            "the metrics address never opened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (fx, base, metrics, stop, task)
}

/// `GET /metrics` for a client behind the proxy (not loopback), with an optional bearer token.
async fn remote_scrape(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut r = client_from(PROXY)
        .get(format!("{base}{path}"))
        .header("X-Forwarded-For", "198.51.100.20");
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

both_backends!(
    remote_scrapers_need_the_token_or_the_metrics_address,
    |pg| async move {
        const TOKEN: &str = "scrape-token-0123456789";
        let (_fx, base, metrics, stop, task) = serve_with_metrics(pg, Some(TOKEN)).await;
        // On the service's own address: the token or nothing.
        assert_eq!(remote_scrape(&base, "/metrics", None).await.0, 404);
        assert_eq!(
            remote_scrape(&base, "/metrics", Some("scrape-token-wrong-0000"))
                .await
                .0,
            404
        );
        let (status, text) = remote_scrape(&base, "/metrics", Some(TOKEN)).await;
        assert_eq!(status, 200);
        assert!(!scrape(&text).is_empty(), "{text}");
        // With a token set, the metrics address asks for it too.
        assert_eq!(remote_scrape(&metrics, "/metrics", None).await.0, 404);
        let (status, text) = remote_scrape(&metrics, "/metrics", Some(TOKEN)).await;
        assert_eq!(status, 200);
        assert!(text.contains("tamaq_http_requests_total"), "{text}");
        // It serves `/metrics` and nothing else.
        assert_eq!(
            remote_scrape(&metrics, "/healthz", Some(TOKEN)).await.0,
            404
        );
        assert_eq!(
            remote_scrape(&metrics, "/api/v1/keys", Some(TOKEN)).await.0,
            404
        );
        stop.send(()).unwrap();
        task.await.unwrap();

        // Without a token, the metrics address answers whoever reaches it; the service's own
        // address still answers loopback clients only.
        let (_fx, base, metrics, stop, task) = serve_with_metrics(pg, None).await;
        assert_eq!(remote_scrape(&metrics, "/metrics", None).await.0, 200);
        assert_eq!(remote_scrape(&base, "/metrics", None).await.0, 404);
        assert_eq!(
            remote_scrape(&base, "/metrics", Some(TOKEN)).await.0,
            404,
            "no token configured, none accepted"
        );
        stop.send(()).unwrap();
        task.await.unwrap();
    }
);
