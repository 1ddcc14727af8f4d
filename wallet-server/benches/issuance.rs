//! QR token issuance over HTTP on SQLite (DESIGN §8: ≥ 10,000 tokens/s as JSON, ≥ 1,000/s as
//! PNG, on two cores).
//!
//! Seeds a fresh data dir (one school, `CONNECTIONS` parents with one active voucher and one
//! session each), starts the `wallet-server serve` binary of this build as its own process on
//! loopback, and drives it with keep-alive HTTP/1.1 connections for a fixed time, checking every
//! answer's status. Runs: `json` (each connection repeats one parent's request, as a page renewing
//! its code does), `json-cold` (every request from a session the server has not seen: the session
//! and the voucher are read from SQLite each time), `png`. Reports the server's CPU time per token
//! too, which a busy machine distorts much less than the rate. Also times the per-token work
//! in-process for reference.
//!
//! ```sh
//! cargo bench -p wallet-server --bench issuance
//! TAMAQ_BENCH_SECONDS=20 TAMAQ_BENCH_CONNECTIONS=128 TAMAQ_BENCH_KINDS=json,json-cold \
//!     cargo bench -p wallet-server --bench issuance
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wallet_server::cli::{open_state, Global};
use wallet_server::clock::Clock;
use wallet_server::eligibility::Category;
use wallet_server::store::roster::NewPupil;
use wallet_server::wallet::qr::{Matrix, PNG_MODULE_PX};
use wallet_server::wallet::session;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Client {
    phone: String,
    session: String,
    voucher: String,
    /// Sessions of the same parent used once each (the cold run).
    cold: Vec<String>,
}

async fn seed(dir: &std::path::Path, n: usize) -> Vec<Client> {
    let state = open_state(
        &Global {
            data_dir: dir.to_path_buf(),
            database_url: None,
            config: None,
        },
        Clock::System,
        false,
    )
    .await
    .expect("open the bench data dir");
    let store = &state.store;
    let now = state.now();
    let school = store
        .upsert_school("000140000007", "Bench school", now)
        .await
        .unwrap();
    let year = state
        .settings
        .year_at(now)
        .expect("the bench runs in a school year");
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let phone = format!("+7701{:07}", i);
        let pupil = NewPupil {
            iin: format!("{:012}", 100_000_000 + i),
            school_code: school.code,
            last_name: "Bench".into(),
            first_name: format!("Pupil{i}"),
            middle_name: None,
            grade: 2,
            class_letter: "A".into(),
            receives_asp: true,
            per_capita_income_kzt: None,
            orphan: false,
            mother_name: Some("Mother".into()),
            mother_phone: Some(phone.clone()),
            father_name: None,
            father_phone: None,
            guardian_name: None,
            guardian_phone: None,
            card_number: None,
            lang: "ru".into(),
            category: Category::Asp,
            contact_phone: Some(phone.clone()),
            contact_name: None,
        };
        let id = store.upsert_pupil(&pupil, now).await.unwrap();
        let v = wallet_server::testkit::issue_voucher(store.as_ref(), id, school.code, &year, now)
            .await;
        wallet_server::testkit::activate_voucher(store.as_ref(), &v, now).await;
        // A session as `login/verify` would store it (the login flow itself is tested
        // elsewhere and is rate-limited per address, which a benchmark on loopback would hit).
        let token = session::new_token();
        store
            .insert_session(
                &hex::encode(session::hash_token(&token)),
                &phone,
                now,
                now + session::SESSION_SECONDS,
            )
            .await
            .unwrap();
        clients.push(Client {
            phone,
            session: token,
            voucher: v.id,
            cold: Vec::new(),
        });
    }
    clients
}

/// Sessions a parent would get by signing in on many devices, written in one transaction
/// (through the store that would be one fsync per session).
async fn seed_cold_sessions(dir: &std::path::Path, clients: &mut [Client], total: usize) {
    let url = format!("sqlite://{}", dir.join("tamaq.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let now = chrono::Utc::now().timestamp();
    let per = total.div_ceil(clients.len());
    for c in clients.iter_mut() {
        for _ in 0..per {
            let token = session::new_token();
            sqlx::query(
                "INSERT INTO wallet_sessions (token_hash, phone, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(hex::encode(session::hash_token(&token)))
            .bind(&c.phone)
            .bind(now)
            .bind(now + session::SESSION_SECONDS)
            .execute(&mut *tx)
            .await
            .unwrap();
            c.cold.push(token);
        }
    }
    tx.commit().await.unwrap();
    pool.close().await;
}

#[derive(Default)]
struct Outcome {
    ok: u64,
    failed: u64,
    bytes: u64,
    latencies_us: Vec<u32>,
}

/// One keep-alive connection sending the requests in turn until `end`; reads each answer whole.
async fn drive(addr: String, requests: Vec<Vec<u8>>, warm_until: Instant, end: Instant) -> Outcome {
    let mut out = Outcome::default();
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut next = requests.iter().cycle();
    while Instant::now() < end {
        let started = Instant::now();
        let request = next.next().expect("at least one request");
        stream.write_all(request).await.expect("send");
        buf.clear();
        let (status, body_len, head_len) = loop {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..pos]).expect("ASCII head");
                let status: u16 = head[9..12].parse().expect("status");
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .expect("content-length");
                break (status, len, pos + 4);
            }
        };
        while buf.len() < head_len + body_len {
            let n = stream.read(&mut chunk).await.expect("read body");
            assert!(n > 0, "server closed the connection mid-body");
            buf.extend_from_slice(&chunk[..n]);
        }
        if started < warm_until {
            continue;
        }
        if status == 200 {
            out.ok += 1;
            out.bytes += body_len as u64;
        } else {
            out.failed += 1;
            if out.failed == 1 {
                eprintln!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&buf[head_len..])
                );
            }
        }
        out.latencies_us
            .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    out
}

/// The requests one connection sends: `json` and `png` repeat one parent's session (a page
/// renewing its code); `json-cold` uses a session the server has not seen for every request.
fn requests(kind: &str, c: &Client) -> Vec<Vec<u8>> {
    match kind {
        "json-cold" => c.cold.iter().map(|s| json_request(&c.voucher, s)).collect(),
        "png" => vec![png_request(&c.voucher, &c.session)],
        _ => vec![json_request(&c.voucher, &c.session)],
    }
}

fn json_request(voucher: &str, session: &str) -> Vec<u8> {
    let body = r#"{"validity":"short"}"#;
    format!(
        "POST /api/v1/wallet/vouchers/{voucher}/qr HTTP/1.1\r\nHost: bench\r\n\
         Authorization: Bearer {session}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn png_request(voucher: &str, session: &str) -> Vec<u8> {
    format!(
        "GET /api/v1/wallet/vouchers/{voucher}/qr.png HTTP/1.1\r\nHost: bench\r\n\
         Authorization: Bearer {session}\r\n\r\n"
    )
    .into_bytes()
}

/// User + system CPU seconds a process has used so far (Linux `/proc`).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

async fn run(kind: &str, addr: &str, clients: &[Client], seconds: u64, server_pid: u32) {
    let warm = Duration::from_secs(2);
    let start = Instant::now();
    let warm_until = start + warm;
    let end = warm_until + Duration::from_secs(seconds);
    let tasks: Vec<_> = clients
        .iter()
        .map(|c| tokio::spawn(drive(addr.to_owned(), requests(kind, c), warm_until, end)))
        .collect();
    let server = server_pid.to_string();
    tokio::time::sleep_until(warm_until.into()).await;
    let (server_cpu0, client_cpu0) = (cpu_seconds(&server), cpu_seconds("self"));
    tokio::time::sleep_until(end.into()).await;
    let (server_cpu1, client_cpu1) = (cpu_seconds(&server), cpu_seconds("self"));
    let mut total = Outcome::default();
    for t in tasks {
        let o = t.await.unwrap();
        total.ok += o.ok;
        total.failed += o.failed;
        total.bytes += o.bytes;
        total.latencies_us.extend(o.latencies_us);
    }
    total.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let l = &total.latencies_us;
        if l.is_empty() {
            0.0
        } else {
            f64::from(l[((l.len() - 1) as f64 * p) as usize]) / 1000.0
        }
    };
    let rate = total.ok as f64 / seconds as f64;
    println!(
        "{kind:<5} {:>9.0} tokens/s  ok {:>8}  failed {:>4}  avg body {:>6} B  latency p50 {:>6.2} ms  p99 {:>6.2} ms",
        rate,
        total.ok,
        total.failed,
        total.bytes.checked_div(total.ok).unwrap_or(0),
        pct(0.5),
        pct(0.99),
    );
    // CPU per token does not depend on what else the machine runs as much as the rate does:
    // 2 cores / (server + client CPU per token) is what two dedicated cores would do.
    if let (Some(s0), Some(s1), Some(c0), Some(c1)) =
        (server_cpu0, server_cpu1, client_cpu0, client_cpu1)
    {
        let per = |cpu: f64| cpu * 1e6 / total.ok.max(1) as f64;
        let (server_us, client_us) = (per(s1 - s0), per(c1 - c0));
        println!(
            "      server CPU {server_us:>6.1} µs/token, load client {client_us:>5.1} µs/token \
             -> two dedicated cores: {:>6.0} tokens/s (server alone on both: {:>6.0})",
            2e6 / (server_us + client_us),
            2e6 / server_us,
        );
    }
}

/// In-process cost of the two reads a request may need (session, then voucher ownership),
/// through the store as the server does them.
async fn time_reads(dir: &std::path::Path, c: &Client) {
    let store =
        wallet_server::store::connect(&format!("sqlite://{}", dir.join("tamaq.db").display()))
            .await
            .unwrap();
    let hash = hex::encode(session::hash_token(&c.session));
    let n = 20_000u32;
    for (name, which) in [("session read", 0), ("ownership read", 1)] {
        let cpu0 = cpu_seconds("self").unwrap_or(0.0);
        let t = Instant::now();
        for _ in 0..n {
            if which == 0 {
                std::hint::black_box(store.session(&hash).await.unwrap().unwrap());
            } else {
                std::hint::black_box(
                    store
                        .signing_voucher(&c.voucher, &c.phone)
                        .await
                        .unwrap()
                        .unwrap(),
                );
            }
        }
        let wall = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let cpu = (cpu_seconds("self").unwrap_or(0.0) - cpu0) * 1e6 / f64::from(n);
        println!(
            "  {:<30} {wall:>8.1} µs wall {cpu:>8.1} µs CPU",
            format!("SQLite {name} (sqlx)")
        );
    }
}

/// In-process cost of the per-token work, for reference next to the HTTP figures.
fn components() {
    let key = shared::KeyPair::generate();
    let req = shared::token::TokenRequest {
        voucher_id: uuid::Uuid::new_v4(),
        school_code: 1,
        issued_at: 1_795_406_400,
        expires_at: 1_795_407_000,
    };
    // Wall time and this process's CPU time: on a busy machine the first grows, the second
    // tells what the work costs when it has a core.
    let time = |name: &str, n: u32, f: &mut dyn FnMut()| {
        for _ in 0..n / 10 {
            f();
        }
        let cpu0 = cpu_seconds("self").unwrap_or(0.0);
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let wall = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let cpu = (cpu_seconds("self").unwrap_or(0.0) - cpu0) * 1e6 / f64::from(n);
        println!("  {name:<30} {wall:>8.1} µs wall {cpu:>8.1} µs CPU");
    };
    let token = shared::token::sign(&req, &key);
    println!("per token, in process:");
    time("sign", 40_000, &mut || {
        std::hint::black_box(shared::token::sign(&req, &key));
    });
    time("QR matrix (v8-M, mask chosen)", 30_000, &mut || {
        std::hint::black_box(Matrix::encode(token.as_bytes()).unwrap());
    });
    let m = Matrix::encode(token.as_bytes()).unwrap();
    time("SVG from matrix", 60_000, &mut || {
        std::hint::black_box(m.svg());
    });
    time("PNG from matrix (8 px/module)", 5_000, &mut || {
        std::hint::black_box(m.png(PNG_MODULE_PX));
    });
    time("qrcode crate, own mask choice", 500, &mut || {
        std::hint::black_box(
            qrcode::QrCode::with_error_correction_level(token.as_bytes(), qrcode::EcLevel::M)
                .unwrap(),
        );
    });
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must not run
    // the (long) load.
    if !std::env::args().any(|a| a == "--bench") {
        println!("issuance: run with `cargo bench -p wallet-server --bench issuance`");
        return;
    }
    let seconds = env_num("TAMAQ_BENCH_SECONDS", 10);
    let connections = env_num("TAMAQ_BENCH_CONNECTIONS", 64) as usize;
    let threads = env_num("TAMAQ_BENCH_CLIENT_THREADS", 1) as usize;
    components();

    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .unwrap();
    let kinds = std::env::var("TAMAQ_BENCH_KINDS").unwrap_or_else(|_| "json,json-cold,png".into());
    let mut clients = rt.block_on(seed(dir.path(), connections));
    rt.block_on(time_reads(dir.path(), &clients[0]));
    if kinds.contains("json-cold") {
        // Enough that no session repeats at up to 12,000 requests/s.
        let total = (seconds as usize + 2) * 12_000;
        rt.block_on(seed_cold_sessions(dir.path(), &mut clients, total));
    }
    let mut server = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TAMAQ_TOKENS_DAILY_LIMIT_PER_VOUCHER", "4000000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start wallet-server");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .expect("listening address")
        .to_owned();
    println!(
        "\nwallet-server at {addr}; {connections} connections, {seconds} s per run after 2 s warm-up, \
         client on {threads} thread(s), {} cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    rt.block_on(async {
        for kind in kinds.split(',') {
            run(kind.trim(), &addr, &clients, seconds, server.id()).await;
        }
    });
    if std::env::var_os("TAMAQ_BENCH_WRK").is_some() {
        run_wrk(&addr, &clients[0], dir.path(), seconds, connections);
    }
    // DESIGN §8: the server stays under 200 MB resident under load.
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", server.id())) {
        for line in status
            .lines()
            .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        {
            println!(
                "server {}",
                line.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// The same hot JSON and PNG runs driven by `wrk` (if installed), as a check on the built-in
/// client: one parent's session on every connection.
fn run_wrk(addr: &str, c: &Client, dir: &std::path::Path, seconds: u64, connections: usize) {
    let script = dir.join("qr.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{{\"validity\":\"short\"}}'\n\
             wrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"Authorization\"] = \"Bearer {}\"\n",
            c.session
        ),
    )
    .unwrap();
    let png = dir.join("png.lua");
    std::fs::write(
        &png,
        format!(
            "wrk.headers[\"Authorization\"] = \"Bearer {}\"\n",
            c.session
        ),
    )
    .unwrap();
    for (name, lua, path) in [
        (
            "json",
            &script,
            format!("/api/v1/wallet/vouchers/{}/qr", c.voucher),
        ),
        (
            "png",
            &png,
            format!("/api/v1/wallet/vouchers/{}/qr.png", c.voucher),
        ),
    ] {
        let out = Command::new("wrk")
            .args([
                "-t1",
                &format!("-c{connections}"),
                &format!("-d{seconds}s"),
                "-s",
            ])
            .arg(lua)
            .arg(format!("http://{addr}{path}"))
            .output();
        match out {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                let line = |k: &str| {
                    text.lines()
                        .find(|l| l.trim_start().starts_with(k))
                        .unwrap_or("")
                        .trim()
                        .to_owned()
                };
                println!(
                    "wrk {name:<5} {}  |  {}  |  {}",
                    line("Requests/sec"),
                    line("Latency"),
                    line("Non-2xx")
                );
            }
            Err(e) => {
                println!("wrk not run: {e}");
                return;
            }
        }
    }
}
