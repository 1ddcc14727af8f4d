//! The wallet page in headless Chromium, as a parent uses it on a phone-sized screen: sign in
//! with the SMS code, activate, show the QR code, take a screenshot and decode it with zbar to
//! a token that verifies; send the link to the child and decode the share page; switch the
//! language; rate and complain.
//!
//! Chromium is driven over the DevTools protocol through `--remote-debugging-pipe` (JSON
//! messages separated by NUL bytes on file descriptors 3 and 4), so no websocket client is
//! needed. Needs `chromium` and `zbarimg` (Debian: `apt-get install chromium zbar-tools`).

mod wallet_support;

use serde_json::{json, Value};
use shared::token;
use shared::trust::KeyRing;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wallet_support::*;

struct Browser {
    child: Child,
    input: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

fn chromium() -> String {
    if let Ok(path) = std::env::var("TAMAQ_CHROMIUM") {
        return path;
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if found {
            return name.to_owned();
        }
    }
    panic!("chromium not found: apt-get install chromium zbar-tools (or set TAMAQ_CHROMIUM)");
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        // The shell hands our pipes to Chromium as fds 3 (commands in) and 4 (messages out).
        let script = format!(
            "exec {} --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
             --no-first-run --no-default-browser-check --remote-debugging-pipe \
             --user-data-dir={} about:blank 3<&0 4>&1 </dev/null >/dev/null",
            chromium(),
            profile.path().display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || loop {
            let mut buf = Vec::new();
            match output.read_until(0, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    buf.pop();
                    if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            input,
            messages,
            next_id: 1,
            session: None,
            _profile: profile,
        };
        let targets = b.send("Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target")["targetId"]
            .clone();
        let attached = b.send(
            "Target.attachToTarget",
            json!({"targetId": page, "flatten": true}),
        );
        b.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        b.send("Page.enable", json!({}));
        b.send("Runtime.enable", json!({}));
        // A phone: 390 × 844 CSS pixels at twice the density.
        b.send(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
        );
        b
    }

    fn send(&mut self, method: &str, params: Value) -> Value {
        self.try_send(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    fn try_send(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.input.write_all(&bytes).unwrap();
        self.input.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            if m["id"] == id {
                return match m.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(m["result"].clone()),
                };
            }
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let r = self.send(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// `None` while the page is between documents (navigation, reload) or the expression throws.
    fn try_eval(&mut self, expression: &str) -> Option<Value> {
        let r = self
            .try_send(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .ok()?;
        r.get("exceptionDetails")
            .is_none()
            .then(|| r["result"]["value"].clone())
    }

    fn wait_for(&mut self, what: &str, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.try_eval(expression) == Some(json!(true)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = self.try_eval(
            "document.getElementById('status') && document.getElementById('status').textContent",
        );
        panic!("timed out waiting for {what} ({expression}); status line: {status:?}");
    }

    fn goto(&mut self, url: &str) {
        self.send("Page.navigate", json!({"url": url}));
        let href = serde_json::to_string(url).unwrap();
        self.wait_for(
            &format!("{url} to load"),
            &format!("location.href === {href} && document.readyState === 'complete'"),
        );
    }

    /// A real click: scrolls the element into view and presses the mouse at its centre.
    fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        self.wait_for(
            &format!("{selector} to be clickable"),
            &format!(
                "(() => {{ const e = document.querySelector({sel}); \
                 return !!e && !e.disabled && e.getClientRects().length > 0; }})()"
            ),
        );
        let rect = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); e.scrollIntoView({{block: 'center'}}); \
             const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        let (x, y) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.send(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Focuses the field and types the text as a keyboard would insert it.
    fn type_into(&mut self, selector: &str, text: &str) {
        self.click(selector);
        let sel = serde_json::to_string(selector).unwrap();
        self.eval(&format!("document.querySelector({sel}).value = ''"));
        self.send("Input.insertText", json!({"text": text}));
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.send("Page.captureScreenshot", json!({"format": "png"}));
        let bytes = base64_decode(r["data"].as_str().unwrap());
        std::fs::write(path, bytes).unwrap();
    }

    fn text(&mut self, expression: &str) -> String {
        self.eval(expression)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// The QR codes zbar finds in an image.
fn zbar(path: &Path) -> Vec<String> {
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw", "-Sdisable", "-Sqrcode.enable"])
        .arg(path)
        .output()
        .expect("zbarimg not found: apt-get install zbar-tools");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
#[ignore = "needs chromium and zbarimg (apt-get install chromium zbar-tools); runs with --include-ignored"]
fn parent_uses_the_wallet_in_a_browser() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(World::new(false));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = w.app.clone();
    rt.spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    // Set TAMAQ_TEST_SHOTS to keep the screenshots for a look.
    let shots: PathBuf = std::env::var_os("TAMAQ_TEST_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| w.t.dir.path().join("shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let ring = {
        let active = w.state().keys.active();
        let payload = active
            .trust
            .verify(&w.state().keys.root().verifying_key(), None)
            .unwrap();
        KeyRing::from_payload(&payload).unwrap()
    };
    let voucher = w.own_a.id.clone();

    let mut b = Browser::launch();
    b.goto(&format!("{base}/wallet"));
    assert_eq!(b.text("document.documentElement.lang"), "ru");

    // Sign in with the code from the SMS.
    b.type_into("#phone", "8 701 000 00 01");
    b.click("#get-code");
    b.wait_for(
        "the code form",
        "!document.getElementById('code-form').hidden",
    );
    let code = rt.block_on(w.last_code(P1)).expect("login SMS queued");
    b.type_into("#code", &code);
    b.click("#sign-in");
    b.wait_for(
        "the vouchers",
        &format!("!!document.querySelector('article[data-voucher=\"{voucher}\"]')"),
    );
    assert!(b
        .text("document.body.innerText")
        .contains("Сапарова Айгерим"));

    // Activate.
    b.click(&format!(
        "button[data-action=activate][data-voucher=\"{voucher}\"]"
    ));
    b.wait_for(
        "the voucher to be active",
        &format!("document.querySelector('article[data-voucher=\"{voucher}\"]').dataset.status === 'active'"),
    );
    let stored = rt
        .block_on(w.state().store.voucher(w.own_a.uuid()))
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, "active");

    // Show the QR code, photograph the screen, decode it.
    b.click(&format!(
        "button[data-action=qr][data-voucher=\"{voucher}\"]"
    ));
    b.wait_for("the QR code", "!!document.querySelector('#qr svg')");
    b.wait_for(
        "the countdown",
        "/^\\d+:\\d\\d$/.test(document.getElementById('qr-left').textContent)",
    );
    let left = b.text("document.getElementById('qr-left').textContent");
    assert!(left == "10:00" || left.starts_with("9:5"), "{left}");
    b.eval("document.getElementById('qr').scrollIntoView({block: 'center'})");
    let shot = shots.join("wallet-qr.png");
    b.screenshot(&shot);
    let found = zbar(&shot);
    assert_eq!(found.len(), 1, "one QR code on the screen: {found:?}");
    let now = w.state().now();
    let claims = token::verify(&found[0], &ring, w.school_a.0 as u32, now, 0)
        .expect("the screenshot's token verifies");
    assert_eq!(claims.voucher_id, w.own_a.uuid());
    assert_eq!(i64::from(claims.expires_at), now + 600);

    // Send it to the child: a link to the share page, valid until the end of lunch.
    b.click("#panel-body button[data-action=share]");
    b.wait_for("the share link", "!!document.getElementById('share-link')");
    let link = b.text("document.getElementById('share-link').value");
    assert!(link.starts_with(&format!("{base}/q/")), "{link}");
    let shared_token = link.rsplit('/').next().unwrap().to_owned();
    b.goto(&link);
    b.wait_for("the shared code", "!!document.querySelector('#qr svg')");
    assert!(
        !b.text("document.body.innerText").contains("Айгерим"),
        "no name on the share page"
    );
    let shot = shots.join("share.png");
    b.screenshot(&shot);
    let found = zbar(&shot);
    assert_eq!(found, vec![shared_token.clone()]);
    let claims = token::verify(&shared_token, &ring, w.school_a.0 as u32, now, 0).unwrap();
    assert_eq!(
        i64::from(claims.expires_at),
        local("2026-11-23", "15:00"),
        "valid until the end of lunch"
    );

    // Back in the wallet (the session is remembered), switch to Kazakh.
    b.goto(&format!("{base}/wallet"));
    b.wait_for("the vouchers", "!!document.querySelector('article.card')");
    b.click("button.lang[data-lang=kk]");
    b.wait_for(
        "the Kazakh page",
        "document.documentElement.lang === 'kk' && document.readyState === 'complete'",
    );
    b.wait_for(
        "the vouchers again",
        "!!document.querySelector('article.card')",
    );
    let body = b.text("document.body.innerText");
    assert!(
        body.contains("QR-кодты көрсету") && body.contains("Белсенді"),
        "{body}"
    );

    b.screenshot(&shots.join("wallet-kk.png"));

    // Rate the canteen.
    b.click(&format!(
        "button[data-action=rate][data-voucher=\"{voucher}\"]"
    ));
    b.click("label[for=star-4]");
    b.type_into("#rating-comment", "Дәмді болды");
    b.click("#rating-form button[type=submit]");
    b.wait_for(
        "the rating to be saved",
        "document.getElementById('status').textContent.includes('сақталды')",
    );
    let ratings = rt.block_on(w.state().store.ratings_for(&voucher)).unwrap();
    assert_eq!(ratings.len(), 1);
    assert_eq!(
        (ratings[0].stars, ratings[0].comment.as_deref()),
        (4, Some("Дәмді болды"))
    );

    // Complain, and see the complaint's status.
    b.click(&format!(
        "button[data-action=complain][data-voucher=\"{voucher}\"]"
    ));
    b.type_into("#complaint-text", "Бүгін ас суық болды, балалар жемеді.");
    b.click("#complaint-form button[type=submit]");
    b.wait_for(
        "the complaint in the list",
        "document.querySelectorAll('#complaints li').length === 1",
    );
    b.screenshot(&shots.join("complaint.png"));
    let complaints = rt.block_on(w.state().store.complaints_of(P1)).unwrap();
    assert_eq!(complaints.len(), 1);
    assert!(complaints[0].text.contains("суық"));

    // Sign out: the API no longer accepts the session.
    b.click("#logout");
    b.wait_for("the login form", "!document.getElementById('login').hidden");
    assert_eq!(b.eval("localStorage.getItem('tamaq_session')"), Value::Null);
    drop(b);
    drop(rt);
}

/// Vouchers that no longer work, as a parent sees them: this year's revoked one with its reason
/// in plain words, last year's expired one under its own school year heading, each with its
/// history; in Russian, then in Kazakh.
#[test]
#[ignore = "needs chromium (apt-get install chromium); runs with --include-ignored"]
fn revoked_and_last_years_vouchers_in_a_browser() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(World::new(false));
    let store = w.state().store.clone();
    let last_year = shared::calendar::SchoolYear::default_for(
        chrono::NaiveDate::from_ymd_opt(2025, 11, 1).unwrap(),
    );
    let old = rt.block_on(wallet_server::testkit::issue_voucher(
        store.as_ref(),
        w.own_a.pupil_id,
        w.school_a.0,
        &last_year,
        1,
    ));
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    rt.block_on(wallet_server::lifecycle::expire_ended(
        store.as_ref(),
        today,
        2,
    ))
    .unwrap();
    let why = wallet_server::lifecycle::RevokeReason::Withdrawn;
    rt.block_on(wallet_server::testkit::revoke_voucher(
        store.as_ref(),
        &w.own_b,
        why,
        w.state().now(),
    ));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = w.app.clone();
    rt.spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let shots: PathBuf = std::env::var_os("TAMAQ_TEST_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| w.t.dir.path().join("shots"));
    std::fs::create_dir_all(&shots).unwrap();

    let mut b = Browser::launch();
    b.goto(&format!("{base}/wallet"));
    b.type_into("#phone", "8 701 000 00 01");
    b.click("#get-code");
    b.wait_for(
        "the code form",
        "!document.getElementById('code-form').hidden",
    );
    let code = rt.block_on(w.last_code(P1)).expect("login SMS queued");
    b.type_into("#code", &code);
    b.click("#sign-in");
    let card = |id: &str| format!("article[data-voucher=\"{id}\"]");
    b.wait_for(
        "the vouchers",
        &format!("!!document.querySelector('{}')", card(&old.id)),
    );
    let body = b.text("document.body.innerText");
    for needle in [
        "2026–2027 учебный год",
        "2025–2026 учебный год",
        "Вы отозвали согласие на бесплатное питание по SMS (3#2). Чтобы снова получать питание, обратитесь в школу.",
        "Учебный год закончился. История питания сохранена.",
        "Отозван",
        "Срок истёк",
    ] {
        assert!(body.contains(needle), "{needle} missing from:\n{body}");
    }
    // This year's cards come first (by surname: Сапаров, then Сапарова), last year's below
    // its own heading.
    let order = b.eval(
        "Array.from(document.querySelectorAll('#vouchers > *')).map(e => e.tagName === 'H3' ? e.textContent : e.dataset.status)",
    );
    assert_eq!(
        order,
        json!([
            "2026–2027 учебный год",
            "revoked",
            "issued",
            "2025–2026 учебный год",
            "expired"
        ])
    );
    let reason = b.text(&format!(
        "document.querySelector('{} .note').dataset.reason",
        card(&w.own_b.id)
    ));
    assert_eq!(reason, "withdrawn");
    // No QR code for either; each keeps its history.
    for id in [&w.own_b.id, &old.id] {
        let buttons = b.eval(&format!(
            "Array.from(document.querySelectorAll('{} button')).map(e => e.dataset.action)",
            card(id)
        ));
        assert!(
            !buttons.as_array().unwrap().contains(&json!("qr")),
            "{buttons}"
        );
        assert!(
            buttons.as_array().unwrap().contains(&json!("history")),
            "{buttons}"
        );
    }
    b.eval("document.querySelector('#vouchers h3').scrollIntoView({block: 'start'})");
    b.screenshot(&shots.join("wallet-revoked-ru.png"));
    b.click(&format!(
        "button[data-action=history][data-voucher=\"{}\"]",
        old.id
    ));
    b.wait_for(
        "last year's history",
        "!document.getElementById('panel').hidden && !!document.querySelector('#panel-body .empty')",
    );

    b.click("button.lang[data-lang=kk]");
    b.wait_for(
        "the Kazakh page",
        "document.documentElement.lang === 'kk' && document.readyState === 'complete'",
    );
    b.wait_for(
        "the vouchers again",
        &format!("!!document.querySelector('{}')", card(&old.id)),
    );
    let body = b.text("document.body.innerText");
    for needle in [
        "2026–2027 оқу жылы",
        "Сіз тегін тамақтануға берген келісіміңізді SMS арқылы (3#2) кері қайтарып алдыңыз.",
        "Оқу жылы аяқталды.",
    ] {
        assert!(body.contains(needle), "{needle} missing from:\n{body}");
    }
    b.eval("Array.from(document.querySelectorAll('#vouchers h3')).pop().scrollIntoView({block: 'start'})");
    b.screenshot(&shots.join("wallet-last-year-kk.png"));
    drop(b);
    drop(rt);
}
