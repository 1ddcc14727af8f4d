//! Exactly once under slow gateways, clocks passed by hand and shutdowns: two server instances
//! (one of them a real `wallet-server` process) deliver one outbox through a gateway that takes
//! 2 s per message, with rounds longer than the lease; `serve` stops within its grace period
//! against a gateway that never answers; one `serve` per SQLite data dir; the first signing key
//! is made once.

#[path = "core_support/mod.rs"]
mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wallet_server::lease::{Stop, Worker};
use wallet_server::sms::http::HttpGateway;
use wallet_server::sms::{self, SmsKind};
use wallet_server::store::{self, testing, Store};

const BIN: &str = env!("CARGO_BIN_EXE_wallet-server");
/// The shortest lease the settings allow: a batch of this test takes 4 s.
const LEASE: i64 = 3;

/// A gateway that takes `delay` per message and counts every idempotency key it is given.
#[derive(Clone, Default)]
struct SlowGateway {
    delay: Duration,
    posted: Arc<Mutex<HashMap<String, usize>>>,
}

async fn receive(State(g): State<SlowGateway>, headers: HeaderMap) -> StatusCode {
    tokio::time::sleep(g.delay).await;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    *g.posted.lock().unwrap().entry(key).or_default() += 1;
    StatusCode::OK
}

async fn slow_gateway(delay: Duration) -> (String, SlowGateway) {
    let g = SlowGateway {
        delay,
        ..SlowGateway::default()
    };
    let app = Router::new()
        .route("/send", post(receive))
        .with_state(g.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/send"), g)
}

fn real_now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn queue(store: &dyn Store, n: usize, at: i64) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let phone = shared::phone::Phone::parse(&format!("+7701{:07}", 1_000 + i)).unwrap();
        ids.push(
            sms::queue(store, &phone, "Код: 123456", SmsKind::LoginCode, at)
                .await
                .unwrap(),
        );
    }
    ids
}

/// A `serve` instance's delivery job: a round whenever the last one ended, until `until`.
async fn deliver_until(store: Arc<dyn Store>, url: String, now: i64, until: Instant) -> Duration {
    let gateway = HttpGateway::new(&url, None).unwrap();
    let worker = Worker::new("test", LEASE, Stop::never());
    let mut longest = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        sms::deliver_due_with_progress(store.as_ref(), &gateway, now, &worker, &mut |_| {})
            .await
            .unwrap();
        longest = longest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    longest
}

fn each_once(posted: &HashMap<String, usize>, ids: &[String]) {
    let twice: Vec<_> = posted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    for id in ids {
        assert_eq!(posted.get(id), Some(&1), "{id} not sent");
    }
}

async fn unsent(store: &dyn Store) -> i64 {
    store.unsent_sms_count().await.unwrap()
}

async fn two_instances_with_a_slow_gateway(pg: bool) {
    let (first, db) = testing::any(pg).await;
    let second = store::connect(&db.url).await.unwrap();
    let (url, gateway) = slow_gateway(Duration::from_secs(2)).await;
    let ids = queue(first.as_ref(), 12, real_now()).await;
    let until = Instant::now() + Duration::from_secs(10);
    let (a, b) = tokio::join!(
        deliver_until(first.clone(), url.clone(), real_now(), until),
        deliver_until(second, url, real_now(), until),
    );
    assert!(
        a.max(b) > Duration::from_secs(LEASE as u64),
        "a round outlasted the lease ({a:?}, {b:?})"
    );
    each_once(&gateway.posted.lock().unwrap(), &ids);
    assert_eq!(unsent(first.as_ref()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_gateway_two_instances_each_sms_once_sqlite() {
    two_instances_with_a_slow_gateway(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
async fn slow_gateway_two_instances_each_sms_once_postgres() {
    two_instances_with_a_slow_gateway(true).await;
}

fn server_command(data: &Path, database_url: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(data);
    if let Some(url) = database_url {
        cmd.arg("--database-url").arg(url);
    }
    cmd.env_remove("TAMAQ_CONFIG")
        .env_remove("TAMAQ_DATABASE_URL")
        .env("TAMAQ_SERVER_LEASE_SECONDS", LEASE.to_string())
        .env("TAMAQ_SCHOOL_YEAR_START", "2026-09-01")
        .env("TAMAQ_SCHOOL_YEAR_END", "2027-05-25");
    cmd
}

/// `consent tick --now` two hours back, run as its own process beside an instance delivering
/// on the real clock: the SMS the tick delivers are the ones due two hours ago, and its leases
/// still run on the real clock.
async fn consent_tick_in_the_past_beside_a_server(pg: bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (url, _guard) = if pg {
        let (url, guard) = testing::postgres_url().await;
        (url, Some(guard))
    } else {
        std::fs::create_dir_all(&data).unwrap();
        (
            format!("sqlite://{}", data.join("tamaq.db").display()),
            None,
        )
    };
    let store = store::connect(&url).await.unwrap();
    let past = real_now() - 2 * 3600;
    let ids = queue(store.as_ref(), 12, past).await;
    let (gateway_url, gateway) = slow_gateway(Duration::from_secs(2)).await;

    let mut tick = server_command(&data, pg.then_some(url.as_str()));
    tick.args(["consent", "tick", "--now"])
        .arg(
            chrono::DateTime::from_timestamp(past, 0)
                .unwrap()
                .to_rfc3339(),
        )
        .env("TAMAQ_SMS_GATEWAY_URL", &gateway_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let tick = tick.spawn().unwrap();
    // Let the process claim first, then deliver beside it on the real clock.
    let claimed_by_tick = Instant::now() + Duration::from_secs(20);
    while Instant::now() < claimed_by_tick && claimed(store.as_ref()).await == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let longest = deliver_until(
        store.clone(),
        gateway_url,
        real_now(),
        Instant::now() + Duration::from_secs(10),
    )
    .await;
    let out = tick.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    each_once(&gateway.posted.lock().unwrap(), &ids);
    assert_eq!(unsent(store.as_ref()).await, 0, "longest round {longest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consent_tick_with_now_in_the_past_sends_each_sms_once_sqlite() {
    consent_tick_in_the_past_beside_a_server(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
async fn consent_tick_with_now_in_the_past_sends_each_sms_once_postgres() {
    consent_tick_in_the_past_beside_a_server(true).await;
}

/// A TCP listener that accepts and never answers: a gateway that is down the slow way.
fn black_hole() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in listener.incoming().take(64) {
            open.push(conn);
        }
    });
    (format!("http://{addr}/send"), held)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

/// `serve` with SMS due and a gateway that never answers: SIGTERM ends it within the grace
/// period, and the SMS it had claimed are released for the next instance, none marked sent.
async fn sigterm_during_a_round(pg: bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (url, _guard) = if pg {
        let (url, guard) = testing::postgres_url().await;
        (url, Some(guard))
    } else {
        (
            format!("sqlite://{}", data.join("tamaq.db").display()),
            None,
        )
    };
    let store = store::connect(&url).await.unwrap();
    let ids = queue(store.as_ref(), 20, real_now()).await;
    let (gateway_url, _hole) = black_hole();
    let grace = 3;
    let mut child = server_command(&data, pg.then_some(url.as_str()))
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .env("TAMAQ_SMS_GATEWAY_URL", &gateway_url)
        .env("TAMAQ_SERVER_SHUTDOWN_GRACE_SECONDS", grace.to_string())
        .env("TAMAQ_SERVER_LEASE_SECONDS", "60")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while claimed(store.as_ref()).await == 0 {
        assert!(Instant::now() < deadline, "serve never claimed the SMS");
        assert!(child.try_wait().unwrap().is_none(), "serve exited early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let signalled = Instant::now();
    sigterm(&child);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(grace + 5) {
            let _ = child.kill();
            panic!(
                "serve still running {:?} after SIGTERM",
                signalled.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = signalled.elapsed();
    eprintln!("serve exited {took:?} after SIGTERM (grace {grace} s)");
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(grace + 2),
        "exit took {took:?}, grace {grace} s"
    );
    let rows = store.sms_outbox(1_000).await.unwrap();
    assert_eq!(rows.len(), ids.len(), "nothing lost");
    assert!(
        rows.iter().all(|r| r.sent_at.is_none()),
        "nothing marked sent"
    );
    assert_eq!(claimed(store.as_ref()).await, 0, "claims released");
}

/// SMS under a lease that has not run out.
async fn claimed(store: &dyn Store) -> i64 {
    store
        .leased(wallet_server::store::lease::SMS)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_round_exits_within_grace_sqlite() {
    sigterm_during_a_round(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
async fn sigterm_during_a_round_exits_within_grace_postgres() {
    sigterm_during_a_round(true).await;
}

/// A second `serve` on the data dir of a running one is refused, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_one_sqlite_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut first = server_command(&data, None)
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "first serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = server_command(&data, None)
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(
        err.contains("another `wallet-server serve` is already running on the data dir"),
        "{err}"
    );
    // kill -9 leaves the lock file behind, but not the lock: a restart works.
    first.kill().unwrap();
    first.wait().unwrap();
    let port = free_port();
    let mut again = server_command(&data, None)
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            again.try_wait().unwrap().is_none(),
            "restart after kill -9 refused"
        );
        assert!(Instant::now() < deadline + Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
    }
    sigterm(&again);
    assert!(again.wait().unwrap().success());
}

/// Two instances with their own data dirs start at once on a fresh database: one signing key,
/// and the instance without its files says which to copy; with them copied it starts.
async fn first_key_made_once(pg: bool) {
    let (_store, db) = testing::any(pg).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut opens = Vec::new();
    for d in &dirs {
        let (url, keys) = (db.url.clone(), d.path().join("keys"));
        opens.push(tokio::spawn(async move {
            let store = store::connect(&url).await.unwrap();
            wallet_server::signing::Keys::open(&keys, store.as_ref(), real_now())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
    }
    let mut results = Vec::new();
    for o in opens {
        results.push(o.await.unwrap());
    }
    let records = store::connect(&db.url)
        .await
        .unwrap()
        .key_records()
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "one first signing key: {results:?}");
    let winner = results.iter().position(|r| r.is_ok()).expect("one starts");
    let loser = 1 - winner;
    let err = results[loser].as_ref().unwrap_err();
    assert!(
        err.contains("copy root.key and every signing-*.key"),
        "{err}"
    );
    // What the message says to do.
    let (from, to) = (
        dirs[winner].path().join("keys"),
        dirs[loser].path().join("keys"),
    );
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let store = store::connect(&db.url).await.unwrap();
    let keys = wallet_server::signing::Keys::open(&to, store.as_ref(), real_now())
        .await
        .unwrap();
    assert_eq!(keys.active().signing.key_id().hex(), records[0].key_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_signing_key_is_made_once_sqlite() {
    first_key_made_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
async fn first_signing_key_is_made_once_postgres() {
    first_key_made_once(true).await;
}
