//! The real kiosk process under attack on loopback: slow clients, connection floods, image
//! bombs at `/scan/frame` and `scan --image`. The counter keeps being served and the process
//! stays within its memory budget (200 MB at peak).

mod common;

use canteen_terminal::clock::SystemClock;
use common::*;
use front_door::probe::{self, Ended, Slow};
use shared::calendar::local_time;
use shared::wire::VoucherStatus;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_canteen-terminal");
const HEADER_TIMEOUT: u64 = 2;
const PER_CLIENT: usize = 50;
const TOTAL: usize = 80;
const PEAK_BUDGET_KIB: u64 = 200 * 1024;

fn now() -> i64 {
    use canteen_terminal::Clock;
    SystemClock.now()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn server_with(n: u32) -> (FakeServer, World) {
    let world = World::new();
    let mut st = world.server_state((1..=n).map(|i| voucher(i, VoucherStatus::Active)).collect());
    let (year, windows) = always_open();
    st.calendar = year;
    st.meal_windows = windows;
    st.now = Arc::new(SystemClock);
    (FakeServer::start(st), world)
}

fn enroll(dir: &Path, server: &FakeServer) {
    server.add_code("DOOR-1");
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["enroll", "--server", &server.url(), "--code", "DOOR-1"])
        .env_remove("TAMAQ_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Kiosk {
    child: Child,
    addr: SocketAddr,
    // Held open: the kiosk must not meet a closed stdout.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Kiosk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kiosk {
    fn start(dir: &Path) -> Kiosk {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["kiosk", "--listen", "127.0.0.1:0"])
            .env_remove("TAMAQ_CONFIG")
            .env(
                "TAMAQ_TERMINAL_HEADER_TIMEOUT_SECONDS",
                HEADER_TIMEOUT.to_string(),
            )
            .env("TAMAQ_TERMINAL_MAX_CONNECTIONS", TOTAL.to_string())
            .env(
                "TAMAQ_TERMINAL_MAX_CONNECTIONS_PER_CLIENT",
                PER_CLIENT.to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .parse()
            .unwrap();
        Kiosk {
            child,
            addr,
            _stdout: stdout,
        }
    }

    fn memory(&self) -> (u64, u64) {
        probe::memory_kib(self.child.id()).expect("kiosk is running")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn wait_out_the_last_minute() {
    while local_time(now()).format("%H:%M").to_string() == "23:59" {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_and_connection_floods() {
    let (server, _world) = server_with(1);
    let dir = tempfile::tempdir().unwrap();
    enroll(dir.path(), &server);
    let kiosk = Kiosk::start(dir.path());
    let addr = kiosk.addr;
    let (_, peak_before) = kiosk.memory();

    let started = Instant::now();
    let mut held = Vec::new();
    // One address over its cap: PER_CLIENT held, the rest refused at once.
    for i in 0..PER_CLIENT + 30 {
        let kind = [Slow::Silent, Slow::Trickle, Slow::IdleKeepAlive][i % 3];
        match probe::slow_client(ip("127.0.0.2"), addr, kind, "/status").await {
            Ok(s) => held.push((kind, s)),
            Err(e) => assert!(
                i >= PER_CLIENT,
                "connection {i} ({kind:?}) within the cap failed: {e}"
            ),
        }
    }
    // Those over the cap are answered 503 and closed at once; the others stay open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut buf = [0u8; 256];
    let early = held
        .iter()
        .filter(|(_, s)| !matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock))
        .count();
    assert_eq!(early, 30, "refused at the per-client cap");

    let mut latencies = Vec::new();
    while started.elapsed() < Duration::from_millis(HEADER_TIMEOUT * 1000 - 400) {
        let (status, took) = probe::get(ip("127.0.0.1"), addr, "/status").await.unwrap();
        assert_eq!(status, 200);
        latencies.push(took);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latencies.sort();
    assert!(latencies.len() >= 5, "{latencies:?}");
    let median = latencies[latencies.len() / 2];
    assert!(median < Duration::from_millis(100), "median {median:?}");
    assert!(
        *latencies.last().unwrap() < Duration::from_secs(1),
        "{latencies:?}"
    );

    // The rest end at the header timeout: silent, trickling and idle alike.
    let deadline = Duration::from_secs(HEADER_TIMEOUT + 2);
    for (kind, mut stream) in held {
        if let Ended::Open = probe::wait_closed(&mut stream, started, deadline).await {
            panic!("{kind:?} still open after {deadline:?}");
        }
    }

    // Two more addresses, each within its cap, together over the total: the excess is refused.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = Vec::new();
    for source in ["127.0.0.3", "127.0.0.4"] {
        for _ in 0..PER_CLIENT {
            second.push(
                probe::slow_client(ip(source), addr, Slow::Silent, "/")
                    .await
                    .unwrap(),
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut buf = [0u8; 256];
    let refused = second
        .iter()
        .filter(|s| matches!(s.try_read(&mut buf), Ok(n) if n > 0))
        .count();
    assert_eq!(refused, 2 * PER_CLIENT - TOTAL, "refused at the total cap");
    drop(second);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status: serde_json::Value = reqwest::get(kiosk.url("/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        status["front_door"]["connections_refused"]
            .as_u64()
            .unwrap()
            >= 50,
        "{status}"
    );
    let (rss, peak) = kiosk.memory();
    eprintln!("kiosk memory after the attack: RSS {rss} KiB, peak {peak} KiB");
    assert!(rss < 50 * 1024, "kiosk RSS after the attack {rss} KiB");
    assert!(
        peak < PEAK_BUDGET_KIB,
        "peak {peak} KiB (before {peak_before} KiB)"
    );
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A valid PNG head declaring `side`×`side` grey pixels, followed by half a megabyte of zero
/// rows in stored deflate blocks: a small file that asks the decoder for `side²` bytes.
fn png_bomb(side: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut zlib = vec![0x78, 0x01];
    for _ in 0..8 {
        zlib.push(0);
        zlib.extend_from_slice(&0xFFFFu16.to_le_bytes());
        zlib.extend_from_slice(&0x0000u16.to_le_bytes());
        zlib.extend_from_slice(&[0u8; 0xFFFF]);
    }
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A real JPEG whose frame header is rewritten to declare `side`×`side`.
fn jpeg_bomb(side: u16) -> Vec<u8> {
    let small = image::GrayImage::from_fn(64, 64, |x, y| image::Luma([((x * y) % 256) as u8]));
    let mut bytes = frames::jpeg(&small, 80);
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline JPEG");
    // FFC0, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 7].copy_from_slice(&side.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&side.to_be_bytes());
    bytes
}

/// A camera-sized frame of pure noise: the costliest thing to search for finder patterns.
fn noise_jpeg(w: u32, h: u32) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let img = image::GrayImage::from_fn(w, h, |_, _| image::Luma([rng.gen::<u8>()]));
    frames::jpeg(&img, 90)
}

struct Bomb {
    name: &'static str,
    bytes: Vec<u8>,
    content_type: &'static str,
}

fn bombs() -> Vec<Bomb> {
    vec![
        Bomb {
            name: "png-22000",
            bytes: png_bomb(22_000),
            content_type: "image/png",
        },
        Bomb {
            name: "jpeg-6000",
            bytes: jpeg_bomb(6000),
            content_type: "image/jpeg",
        },
        Bomb {
            name: "noise-1920x1080",
            bytes: noise_jpeg(1920, 1080),
            content_type: "image/jpeg",
        },
    ]
}

/// The frame budget (2 s) for the frame, and as much again for one being decoded before it.
const ANSWER_WITHIN: Duration = Duration::from_millis(4_500 + 1_000);

async fn post_frame(
    http: &reqwest::Client,
    url: &str,
    b: &Bomb,
) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let resp = http
        .post(url)
        .header("content-type", b.content_type)
        .body(b.bytes.clone())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    (status, body, started.elapsed())
}

fn assert_refused_clearly(name: &str, status: u16, body: &serde_json::Value) {
    match status {
        // The size is refused from the header, in both languages.
        413 => {
            assert_eq!(body["error"]["code"], "image_too_large", "{name}: {body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(
                msg.contains("Изображение слишком большое") && msg.contains("Сурет тым үлкен"),
                "{msg}"
            );
        }
        // Out of time (or a newer frame took its place): answered, nothing recorded.
        503 => assert_eq!(body["error"]["code"], "too_slow", "{name}: {body}"),
        200 => assert_eq!(body["found"], false, "{name}: {body}"),
        other => panic!("{name}: status {other}: {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_bombs_at_the_kiosk_single_and_eight_at_once() {
    wait_out_the_last_minute();
    let (server, world) = server_with(2);
    let dir = tempfile::tempdir().unwrap();
    enroll(dir.path(), &server);
    let kiosk = Kiosk::start(dir.path());
    let url = kiosk.url("/scan/frame");
    let http = reqwest::Client::new();
    let bombs = Arc::new(bombs());

    for b in bombs.iter() {
        let (status, body, took) = post_frame(&http, &url, b).await;
        eprintln!("{}: {status} in {took:?}", b.name);
        assert_refused_clearly(b.name, status, &body);
        assert!(took < ANSWER_WITHIN, "{}: {took:?}", b.name);
        if b.name != "noise-1920x1080" {
            assert_eq!(status, 413, "{}", b.name);
        }
    }

    let mut tasks = Vec::new();
    for i in 0..8 {
        let (http, url, bombs) = (http.clone(), url.clone(), bombs.clone());
        tasks.push(tokio::spawn(async move {
            let b = &bombs[i % bombs.len()];
            let (status, body, took) = post_frame(&http, &url, b).await;
            (b.name, status, body, took)
        }));
    }
    for t in tasks {
        let (name, status, body, took) = t.await.unwrap();
        eprintln!("concurrent {name}: {status} in {took:?}");
        assert_refused_clearly(name, status, &body);
        assert!(took < ANSWER_WITHIN * 2, "{name}: {took:?}");
    }
    let (_, peak) = kiosk.memory();
    eprintln!("kiosk peak RSS after the bombs: {peak} KiB");
    assert!(peak < PEAK_BUDGET_KIB, "peak RSS {peak} KiB");

    // The counter goes on: a real code right after is served.
    let token = world.token(voucher(1, VoucherStatus::Active).voucher_id, now() - 5);
    let frame = frames::camera_frame(&token);
    let mut ok = None;
    for _ in 0..5 {
        let real = Bomb {
            name: "real",
            bytes: frame.clone(),
            content_type: "image/jpeg",
        };
        let (status, body, _) = post_frame(&http, &url, &real).await;
        if status == 200 && body.get("verdict").is_some() {
            ok = Some(body);
            break;
        }
        // The decoder may still be finishing a noise frame from the burst.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ok = ok.expect("a real frame is decoded after the bombs");
    assert_eq!(ok["verdict"], "ok", "{ok}");
}

#[test]
fn image_bombs_given_to_scan_image() {
    wait_out_the_last_minute();
    let (server, world) = server_with(2);
    let dir = tempfile::tempdir().unwrap();
    enroll(dir.path(), &server);
    for b in bombs() {
        let file = dir.path().join(format!("{}.img", b.name));
        std::fs::write(&file, &b.bytes).unwrap();
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["scan", "--json", "--image"])
            .arg(&file)
            .env_remove("TAMAQ_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut peak = 0;
        while child.try_wait().unwrap().is_none() {
            if let Some((_, hwm)) = probe::memory_kib(child.id()) {
                peak = peak.max(hwm);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = child.wait_with_output().unwrap();
        let took = started.elapsed();
        eprintln!("scan --image {}: {took:?}, peak {peak} KiB", b.name);
        assert_eq!(out.status.code(), Some(4), "{}", b.name);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["verdict"], "no_code", "{}: {v}", b.name);
        if b.name != "noise-1920x1080" {
            let err = v["error"].as_str().unwrap();
            assert!(err.contains("Изображение слишком большое"), "{err}");
        }
        assert!(took < Duration::from_secs(10), "{}: {took:?}", b.name);
        assert!(peak < PEAK_BUDGET_KIB, "{}: peak {peak} KiB", b.name);
    }
    // A real photo after them is still read.
    let token = world.token(voucher(2, VoucherStatus::Active).voucher_id, now() - 5);
    let photo = dir.path().join("photo.jpg");
    std::fs::write(&photo, frames::camera_frame(&token)).unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["scan", "--json", "--image"])
        .arg(&photo)
        .env_remove("TAMAQ_CONFIG")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "ok", "{v}");
}
