//! The counter page in headless Chromium, as staff use it: a wedge scanner types a token and
//! Enter into the focused field, the panel turns green with name and class; the same code again
//! at once is a neutral repeat, another code of the same voucher turns it red; focus returns to
//! the token field; the status line and camera note render. And the camera: a code held in view
//! for 20 s (Chromium's fake camera playing a picture of it) is served once, never re-scanned
//! into a red "already served".
//!
//! Chromium is driven over the DevTools protocol on `--remote-debugging-pipe` (NUL-separated
//! JSON on file descriptors 3 and 4). Needs `chromium` (Debian: `apt-get install chromium`;
//! `.ci/run` installs it) or `TAMAQ_CHROMIUM`. `TAMAQ_SCREENSHOT_DIR` keeps the screenshots.

mod common;

use canteen_terminal::clock::ManualClock;
use canteen_terminal::kiosk::Kiosk;
use common::*;
use serde_json::{json, Value};
use shared::wire::VoucherStatus;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

struct Chromium {
    child: Child,
    commands: ChildStdin,
    replies: mpsc::Receiver<Value>,
    id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

fn chromium_path() -> String {
    if let Ok(p) = std::env::var("TAMAQ_CHROMIUM") {
        return p;
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new("sh")
                .args(["-c", &format!("command -v {name} >/dev/null")])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
        .expect("chromium not found: apt-get install chromium (or set TAMAQ_CHROMIUM)")
        .to_owned()
}

impl Chromium {
    fn start() -> Chromium {
        Chromium::start_with("")
    }

    fn start_with(extra_args: &str) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let cmd = format!(
            "exec {} --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
             --remote-debugging-pipe --user-data-dir={} {extra_args} about:blank 3<&0 4>&1 \
             </dev/null >/dev/null",
            chromium_path(),
            profile.path().display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &cmd])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let commands = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut frame = Vec::new();
            while matches!(out.read_until(0, &mut frame), Ok(n) if n > 0) {
                frame.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&frame) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                frame.clear();
            }
        });
        let mut c = Chromium {
            child,
            commands,
            replies,
            id: 0,
            session: String::new(),
            _profile: profile,
        };
        let targets = c.call("Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .unwrap()["targetId"]
            .clone();
        let attached = c.call(
            "Target.attachToTarget",
            json!({"targetId": page, "flatten": true}),
        );
        c.session = attached["sessionId"].as_str().unwrap().to_owned();
        c.call("Page.enable", json!({}));
        c.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
        );
        c
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let mut msg = json!({"id": self.id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).unwrap();
        self.commands.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .replies
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            if reply["id"] == json!(self.id) {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        r["result"]["value"].clone()
    }

    fn wait_for(&mut self, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.eval(expression) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let page = self.eval("document.body.innerText");
        panic!("timed out waiting for {expression}; page text: {page}");
    }

    /// What a keyboard-wedge scanner does: types the code, then Enter.
    fn wedge(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text}));
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({"type": kind, "key": "Enter", "code": "Enter",
                       "windowsVirtualKeyCode": 13, "text": "\r"}),
            );
        }
    }

    fn screenshot(&mut self, name: &str) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        if let Ok(dir) = std::env::var("TAMAQ_SCREENSHOT_DIR") {
            std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn counter_page_in_headless_chromium() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let world = World::new();
    let server = FakeServer::start(world.server_state(vec![
        voucher(1, VoucherStatus::Active),
        voucher(2, VoucherStatus::Active),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let base = rt.block_on(async {
        let t = enrolled_terminal(dir.path(), &server, "B", "Асхана 1", &clock).await;
        let kiosk = Kiosk::new(Arc::new(t));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, kiosk.router(addr)).await.unwrap() });
        format!("http://{addr}/")
    });

    let mut browser = Chromium::start();
    browser.call("Page.navigate", json!({"url": base}));
    browser.wait_for("document.readyState === 'complete'");
    browser.wait_for("document.activeElement && document.activeElement.id === 'token'");
    browser.wait_for("document.getElementById('school').textContent.includes('Асхана 1')");
    browser.wait_for(
        "document.getElementById('sync-line').textContent.includes('Последняя синхронизация')",
    );
    browser.screenshot("kiosk-idle.png");

    let token = world.token(voucher(1, VoucherStatus::Active).voucher_id, monday_noon());
    browser.wedge(&token);
    browser.wait_for("document.getElementById('verdict').className === 'serve'");
    assert_eq!(
        browser.eval("document.getElementById('v-name').textContent"),
        json!("Айгерим1 С. 2Б")
    );
    assert_eq!(
        browser.eval("document.getElementById('v-code').textContent"),
        json!("ok")
    );
    let msg = browser.eval("document.getElementById('v-msg').textContent");
    assert!(msg.as_str().unwrap().contains("Выдать питание."), "{msg}");
    assert_eq!(
        browser.eval("document.getElementById('token').value"),
        json!(""),
        "field cleared for the next code"
    );
    browser.screenshot("kiosk-ok.png");

    // The same code again at once (scanned twice): a neutral repeat, still named, says when.
    browser.wedge(&token);
    browser.wait_for("document.getElementById('v-code').textContent === 'already_served'");
    assert_eq!(
        browser.eval("document.getElementById('verdict').className"),
        json!("repeat")
    );
    let msg = browser.eval("document.getElementById('v-msg').textContent");
    assert!(msg.as_str().unwrap().contains("12:00"), "{msg}");
    assert!(msg.as_str().unwrap().contains("Только что"), "{msg}");
    browser.screenshot("kiosk-repeat.png");

    // Another code of the same voucher (a second attempt): red, still named, says when.
    browser.eval("document.getElementById('verdict').className = ''; true");
    let other = world.token(
        voucher(1, VoucherStatus::Active).voucher_id,
        monday_noon() - 1,
    );
    browser.wedge(&other);
    browser.wait_for("document.getElementById('verdict').className === 'refuse'");
    assert_eq!(
        browser.eval("document.getElementById('v-code').textContent"),
        json!("already_served")
    );
    let msg = browser.eval("document.getElementById('v-msg').textContent");
    assert!(msg.as_str().unwrap().contains("12:00"), "{msg}");
    assert!(
        msg.as_str().unwrap().contains("Сегодня уже питался"),
        "{msg}"
    );
    browser.screenshot("kiosk-already-served.png");

    // Garbage: red, no name.
    browser.wedge("not a token");
    browser.wait_for("document.getElementById('v-code').textContent === 'bad_format'");
    assert_eq!(
        browser.eval("document.getElementById('v-name').textContent"),
        json!("✕")
    );

    // Focus wanders off (a click elsewhere): it comes back to the token field.
    browser.eval("document.getElementById('token').blur(); document.body.focus(); true");
    browser.wait_for("document.activeElement && document.activeElement.id === 'token'");

    // The card field keeps focus while staff type, and redeems.
    browser.eval("document.getElementById('card').focus(); true");
    browser.call("Input.insertText", json!({"text": "000000002"}));
    for kind in ["keyDown", "keyUp"] {
        browser.call(
            "Input.dispatchKeyEvent",
            json!({"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"}),
        );
    }
    browser.wait_for("document.getElementById('v-name').textContent === 'Айгерим2 С. 3Б'");
    assert_eq!(
        browser.eval("document.getElementById('verdict').className"),
        json!("serve")
    );

    // Headless Chromium on Linux has no BarcodeDetector: the page says frames go to the terminal.
    let note = browser.eval("document.getElementById('camnote').textContent");
    let has_detector = browser.eval("'BarcodeDetector' in window");
    if has_detector == json!(false) {
        assert!(note.as_str().unwrap().contains("BarcodeDetector"), "{note}");
    }

    // Everything the browser did is in the log.
    let status: Value = rt.block_on(async {
        reqwest::get(format!("{base}status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(status["unsynced_events"], 5);
}

/// The picture Chromium's fake camera plays in a loop: a 640×480 frame with the code on it, as
/// YUV4MPEG2 (grey: U and V at 128).
fn y4m_of(jpeg: &[u8]) -> Vec<u8> {
    let gray = image::load_from_memory(jpeg).unwrap().into_luma8();
    let (w, h) = gray.dimensions();
    assert_eq!((w, h), (640, 480));
    let mut out = format!("YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n").into_bytes();
    for _ in 0..10 {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(gray.as_raw());
        out.extend(std::iter::repeat_n(128u8, (w * h / 2) as usize));
    }
    out
}

#[test]
fn a_code_held_in_front_of_the_camera_for_20_s_is_served_once_and_never_turns_red() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let world = World::new();
    let server = FakeServer::start(world.server_state(vec![voucher(1, VoucherStatus::Active)]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let token = world.token(voucher(1, VoucherStatus::Active).voucher_id, monday_noon());
    let video = dir.path().join("camera.y4m");
    std::fs::write(&video, y4m_of(&frames::camera_frame(&token))).unwrap();
    let (base, pool) = rt.block_on(async {
        let t = enrolled_terminal(&dir.path().join("t"), &server, "CAM", "Асхана 1", &clock).await;
        let pool = t.pool().clone();
        let kiosk = Kiosk::new(Arc::new(t));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, kiosk.router(addr)).await.unwrap() });
        (format!("http://{addr}/"), pool)
    });

    let mut browser = Chromium::start_with(&format!(
        "--use-fake-ui-for-media-stream --use-fake-device-for-media-stream \
         --use-file-for-fake-video-capture={}",
        video.display()
    ));
    browser.call("Page.navigate", json!({"url": base}));
    browser.wait_for("document.readyState === 'complete'");
    // Count the frames the page sends, to know the camera loop really ran all along.
    browser.eval(
        "window.__frames = 0; const f = window.fetch; \
         window.fetch = (u, o) => { if (String(u).includes('/scan/frame')) window.__frames++; \
         return f(u, o); }; true",
    );
    let has_detector = browser.eval("'BarcodeDetector' in window") == json!(true);
    browser.eval("document.getElementById('cam-btn').click(); true");
    browser.wait_for("document.getElementById('verdict').className === 'serve'");

    // Terminal time runs ten times faster than real time: 20 s held in view are 200 s, past
    // the two minutes within which a re-scan would still be a neutral repeat. A camera loop that
    // re-submitted the code would show (and record) a red already_served.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(500));
        clock.advance(5);
        let class = browser.eval("document.getElementById('verdict').className");
        assert_ne!(
            class,
            json!("refuse"),
            "turned red while the code was held up"
        );
    }
    if !has_detector {
        let sent = browser.eval("window.__frames").as_i64().unwrap();
        // One every 400 ms plus decoding; a debug build on a loaded machine manages far fewer.
        assert!(sent >= 5, "the camera loop kept sending frames: {sent}");
    }
    let events: Vec<(String, bool)> = rt.block_on(async {
        sqlx::query_as("SELECT verdict, repeat FROM events ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    assert_eq!(events[0], ("ok".to_owned(), false));
    for e in &events[1..] {
        assert_eq!(
            e,
            &("already_served".to_owned(), true),
            "only repeats: {events:?}"
        );
    }
    browser.screenshot("kiosk-camera-held.png");
}
