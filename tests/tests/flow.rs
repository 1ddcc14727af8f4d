//! The whole flow of DESIGN §1 across both binaries, as real processes: roster → consent by SMS
//! → voucher → activation → QR → scan at the counter → sync → history → rating and complaint →
//! NOBD report. Once on SQLite and once on PostgreSQL. Every answer the test gets from the
//! server's HTTP API is checked against docs/openapi.yaml.

#[path = "../../wallet-server/tests/spec_check/mod.rs"]
mod spec_check;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Value};
use shared::calendar::ServiceDay;
use std::path::Path;
use std::time::{Duration, Instant};
use tamaq_e2e::fixtures::{phone, roster_csv, school_bin};
use tamaq_e2e::{run, stdout, ServerProcess};

const SECRET: &str = "e2e-gateway-secret";

/// A school year around today in which every day is a school day and lunch is all day, so the
/// flow passes whenever it runs.
fn config(dir: &Path) -> std::path::PathBuf {
    let today = ServiceDay::from_unix(chrono::Utc::now().timestamp()).date();
    let start = today - chrono::Duration::days(30);
    let end = today + chrono::Duration::days(300);
    let text = format!(
        r#"[server]
job_interval_seconds = 1
[school_year]
start = "{start}"
end = "{end}"
school_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
[meals]
lunch = "00:00-23:59"
[sms]
inbound_secret = "{SECRET}"
"#
    );
    let path = dir.join("tamaq.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn sms_outbox(data: &Path) -> Vec<Value> {
    std::fs::read_to_string(data.join("outbox/sms.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each outbox line is JSON"))
        .collect()
}

/// Waits for an SMS of `kind` to `to` to reach the outbox file and returns its text.
fn wait_for_sms(data: &Path, to: &str, kind: &str, skip: usize) -> String {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let found: Vec<Value> = sms_outbox(data)
            .into_iter()
            .filter(|s| s["to"] == to && s["kind"] == kind)
            .collect();
        if let Some(s) = found.get(skip) {
            return s["text"].as_str().unwrap().to_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {kind} SMS to {to} within 20 s");
}

fn wait_for_file(dir: &Path) -> Vec<std::path::PathBuf> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if !files.is_empty() {
            return files;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing arrived in {} within 20 s", dir.display());
}

/// An answer of the server, already checked against the spec.
struct Answer {
    status: u16,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends a request and checks the answer against docs/openapi.yaml (status, content type, JSON
/// body), as a client written from the spec would read it.
fn call(http: &Client, req: RequestBuilder) -> Answer {
    let req = req.build().unwrap();
    let method = req.method().to_string();
    let url = req.url();
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let resp = http.execute(req).unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp.bytes().unwrap().to_vec();
    spec_check::assert_answer(&method, &target, status, content_type.as_deref(), &bytes);
    Answer {
        status,
        content_type,
        bytes,
    }
}

/// The server's `/metrics`, parsed: `(name, labels) → value` for counters and gauges.
fn metrics(http: &Client, server: &ServerProcess) -> Vec<prometheus_parse::Sample> {
    let answer = call(http, http.get(server.url("/metrics")));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let text = answer.text();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses")
        .samples
}

fn metric(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn flow(database_url: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("server");
    let terminal = tmp.path().join("terminal");
    let cfg = config(tmp.path());
    let roster = tmp.path().join("roster.csv");
    std::fs::write(&roster, roster_csv(1, 4)).unwrap();
    let mut common = vec![
        "--data-dir".to_owned(),
        data.display().to_string(),
        "--config".to_owned(),
        cfg.display().to_string(),
    ];
    if let Some(url) = database_url {
        common.extend(["--database-url".to_owned(), url.to_owned()]);
    }
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|s| s.to_string())
            .chain(common.clone())
            .collect()
    };
    let ws = |args: &[&str], ok: bool| {
        let a = with(args);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        run("wallet-server", &refs, None, ok)
    };

    // 1. Roster in; the consent tick asks the mother of pupil 0 by SMS.
    let out = ws(&["import-roster", roster.to_str().unwrap()], true);
    assert!(stdout(&out).contains('4'), "summary: {}", stdout(&out));
    ws(&["consent", "tick"], true);
    let parent = phone(0);
    let request = wait_for_sms(&data, &parent, "consent_request", 0);
    assert!(request.contains("3#1"), "{request}");

    // 2. The server, and the parent's answer through the SMS gateway.
    let extra: Vec<String> = common[2..].to_vec();
    let extra_refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&data, &extra_refs);
    let http = Client::new();
    let before = metrics(&http, &server);
    // The health check a load balancer or systemd watchdog polls.
    let health = call(&http, http.get(server.url("/healthz")));
    assert_eq!(health.status, 200, "{}", health.text());
    let refused = call(
        &http,
        http.post(server.url("/api/v1/sms/inbound"))
            .json(&json!({"from": parent, "text": "3#1"})),
    );
    assert_eq!(refused.status, 403, "no gateway secret, no answer");
    let ok = call(
        &http,
        http.post(server.url("/api/v1/sms/inbound"))
            .header("X-Gateway-Secret", SECRET)
            .json(&json!({"from": parent, "text": " 3 # 1 "})),
    );
    assert!(ok.ok(), "{}", ok.text());
    let confirmed = wait_for_sms(&data, &parent, "consent_confirmed", 0);
    assert!(
        confirmed.contains(&format!("{}/wallet", "http://127.0.0.1:8080"))
            || confirmed.contains("/wallet")
    );

    // 3. The parent logs in with the code sent by SMS and activates the voucher.
    let r = call(
        &http,
        http.post(server.url("/api/v1/wallet/login"))
            .json(&json!({"phone": parent})),
    );
    assert!(r.ok(), "{}", r.text());
    let text = wait_for_sms(&data, &parent, "login_code", 0);
    let code: String = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a six-digit code in the SMS")
        .to_owned();
    // A wrong code first: refused with the error body the spec describes.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = call(
        &http,
        http.post(server.url("/api/v1/wallet/login/verify"))
            .json(&json!({"phone": parent, "code": wrong})),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "wrong_code");
    let session = call(
        &http,
        http.post(server.url("/api/v1/wallet/login/verify"))
            .json(&json!({"phone": parent, "code": code})),
    )
    .json();
    let token = session["session_token"]
        .as_str()
        .expect("session token")
        .to_owned();
    let no_session = call(&http, http.get(server.url("/api/v1/wallet/vouchers")));
    assert_eq!(no_session.status, 401, "{}", no_session.text());
    let vouchers = call(
        &http,
        http.get(server.url("/api/v1/wallet/vouchers"))
            .bearer_auth(&token),
    )
    .json();
    let vouchers = vouchers.as_array().expect("a list");
    assert_eq!(vouchers.len(), 1, "{vouchers:?}");
    let v = &vouchers[0];
    assert_eq!(v["status"], "issued");
    assert_eq!(v["school_bin"], school_bin(0));
    let id = v["voucher_id"].as_str().unwrap().to_owned();
    let r = call(
        &http,
        http.post(server.url(&format!("/api/v1/wallet/vouchers/{id}/activate")))
            .bearer_auth(&token),
    );
    assert!(r.ok(), "{}", r.text());
    assert_eq!(r.json()["status"], "active");

    // 4. A terminal of the school enrolls with a one-time code from the CLI.
    let out = ws(
        &["terminal", "enroll-code", "--school", &school_bin(0)],
        true,
    );
    let enroll_code = stdout(&out).trim().to_owned();
    assert!(!enroll_code.is_empty() && !enroll_code.contains('\n'));
    let term = |args: &[&str], ok: bool| {
        let mut a: Vec<&str> = args.to_vec();
        let dir = terminal.to_str().unwrap();
        a.extend(["--data-dir", dir]);
        run("canteen-terminal", &a, None, ok)
    };
    term(
        &[
            "enroll",
            "--server",
            &server.base_url,
            "--code",
            &enroll_code,
        ],
        true,
    );

    // 5. The parent's QR image, scanned at the counter offline: served once, then refused.
    let png = call(
        &http,
        http.get(server.url(&format!("/api/v1/wallet/vouchers/{id}/qr.png")))
            .bearer_auth(&token),
    );
    assert_eq!(png.content_type.as_deref(), Some("image/png"));
    let qr = tmp.path().join("qr.png");
    std::fs::write(&qr, &png.bytes).unwrap();
    // The same token as JSON with its SVG, as the wallet page fetches it.
    let svg = call(
        &http,
        http.post(server.url(&format!("/api/v1/wallet/vouchers/{id}/qr")))
            .bearer_auth(&token)
            .json(&json!({"validity": "short"})),
    );
    assert_eq!(svg.status, 200, "{}", svg.text());
    let scan = |expect: &str| {
        let out = term(&["scan", "--json", "--image", qr.to_str().unwrap()], false);
        let line: Value = serde_json::from_str(stdout(&out).lines().next().expect("one verdict"))
            .expect("JSON verdict");
        assert_eq!(line["verdict"], expect, "{line}");
        assert_eq!(line["voucher_id"], id.as_str());
        line
    };
    let served = scan("ok");
    assert!(
        served["display_name"].as_str().unwrap().ends_with('.'),
        "first name and initial"
    );
    // The same QR image again at once: the counter's camera reading it twice, a repeat that is
    // shown neutrally and never listed as a second attempt.
    let again = scan("already_served");
    assert_eq!(again["repeat"], true, "{again}");
    // A stuck wedge scanner types the same garbage 500 times: a verdict for every line, a few
    // events counted up in the log, and every scan in the server's figures.
    let stuck = "NOT-A-TOKEN\n".repeat(500);
    let dir = terminal.to_str().unwrap();
    let out = run(
        "canteen-terminal",
        &["scan", "--data-dir", dir],
        Some(&stuck),
        true,
    );
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("bad_format |"))
            .count(),
        500
    );
    let synced: Value = serde_json::from_str(&stdout(&term(&["sync", "--json"], true))).unwrap();
    let uploaded = synced["uploaded"].as_u64().unwrap();
    assert!(
        (3..=10).contains(&uploaded),
        "the meal, the repeat and a few garbage events: {synced}"
    );

    // 6. The meal is in the wallet's history; the parent rates and complains.
    let history = call(
        &http,
        http.get(server.url(&format!("/api/v1/wallet/vouchers/{id}/history")))
            .bearer_auth(&token),
    )
    .json();
    let history = history.as_array().unwrap();
    assert_eq!(
        history.len(),
        1,
        "one meal, the refused scan is not a meal: {history:?}"
    );
    assert_eq!(history[0]["meal_kind"], "lunch");
    assert_eq!(history[0]["school_bin"], school_bin(0));
    let r = call(
        &http,
        http.post(server.url("/api/v1/wallet/ratings"))
            .bearer_auth(&token)
            .json(&json!({"voucher_id": id, "stars": 4, "comment": "Тамақ дәмді"})),
    );
    assert!(r.ok(), "{}", r.text());
    let ratings = call(
        &http,
        http.get(server.url(&format!("/api/v1/wallet/ratings?voucher_id={id}")))
            .bearer_auth(&token),
    );
    assert_eq!(ratings.json()[0]["stars"], 4, "{}", ratings.text());
    let r = call(
        &http,
        http.post(server.url("/api/v1/wallet/complaints"))
            .bearer_auth(&token)
            .json(&json!({"voucher_id": id, "text": "Суп был холодным"})),
    );
    assert!(r.ok(), "{}", r.text());
    let complaints = wait_for_file(&data.join("outbox/eotinish"));
    let complaint = std::fs::read_to_string(&complaints[0]).unwrap();
    assert!(complaint.contains("Суп был холодным"));
    let listed = call(
        &http,
        http.get(server.url("/api/v1/wallet/complaints"))
            .bearer_auth(&token),
    );
    assert_eq!(
        listed.json().as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.text()
    );

    // 7. The day's NOBD report counts the one meal and the one refused scan.
    let today = ServiceDay::from_unix(chrono::Utc::now().timestamp()).to_string();
    ws(
        &[
            "report",
            "nobd",
            "--date",
            &today,
            "--school",
            &school_bin(0),
        ],
        true,
    );
    // The server's daily job may have sent earlier days too; this is today's first revision.
    let name = format!("{}-{today}-r1.json", school_bin(0));
    let reports = wait_for_file(&data.join("outbox/nobd"));
    let path = reports
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == name.as_str()))
        .unwrap_or_else(|| panic!("{name} not among {reports:?}"));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(report["report_id"], format!("{}-{today}-r1", school_bin(0)));
    assert_eq!(report["meals"]["served_total"], 1, "{report}");
    assert_eq!(report["meals"]["by_category"]["asp"], 1, "{report}");
    // The repeat is not a rejection NOBD counts; the meal is proven by its token.
    assert_eq!(
        report["rejected_scans"]["by_verdict"]["already_served"], 0,
        "{report}"
    );
    assert_eq!(
        report["rejected_scans"]["by_verdict"]["bad_format"], 500,
        "{report}"
    );
    assert_eq!(report["meals"]["by_proof"]["proven"], 1, "{report}");
    assert_eq!(report["refused_events"]["total"], 0, "{report}");
    assert_eq!(report["vouchers"]["activated_total"], 1, "{report}");

    // 8. The school's director signs in and finds the day in the school API.
    let password = "Tamaq-Canteen-7391";
    let add = with(&[
        "staff",
        "add",
        "--username",
        "director",
        "--role",
        "school_admin",
        "--school",
        &school_bin(0),
    ]);
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    run("wallet-server", &add, Some(&format!("{password}\n")), true);
    let login = call(
        &http,
        http.post(server.url("/api/v1/school/login"))
            .json(&json!({"username": "director", "password": password})),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    let staff = login.json()["session_token"].as_str().unwrap().to_owned();
    let school = |path: &str| {
        let url = format!("/api/v1/school/schools/{}/{path}", school_bin(0));
        let answer = call(&http, http.get(server.url(&url)).bearer_auth(&staff));
        assert_eq!(answer.status, 200, "{url}: {}", answer.text());
        answer.json()
    };
    let meals = school(&format!("meals?from={today}&to={today}"));
    assert_eq!(meals["rows"][0]["meals"], 1, "{meals}");
    let scans = school(&format!("scans?from={today}&to={today}"));
    assert!(
        scans["rejected"].as_array().is_some_and(|r| !r.is_empty()),
        "{scans}"
    );
    for path in [
        "anomalies",
        "terminals",
        "reports",
        "ratings",
        "complaints",
        "consent",
    ] {
        school(path);
    }
    let me = call(
        &http,
        http.get(server.url("/api/v1/school/me"))
            .bearer_auth(&staff),
    );
    assert_eq!(me.json()["username"], "director", "{}", me.text());

    // 9. The operator's view moved with the flow.
    let after = metrics(&http, &server);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    assert!(
        moved("tamaq_tokens_issued_total", &[]) >= 1.0,
        "the QR code"
    );
    assert_eq!(
        moved("tamaq_events_stored_total", &[("class", "proven")]),
        1.0,
        "the meal, proven by its token"
    );
    assert_eq!(
        moved("tamaq_events_stored_total", &[("class", "rejection")]),
        (uploaded - 1) as f64,
        "the repeat and the garbage events: rows, not scans"
    );
    assert!(moved("tamaq_event_uploads_total", &[("outcome", "stored")]) >= 1.0);
    assert!(
        moved(
            "tamaq_http_requests_total",
            &[("route", "/api/v1/wallet/login/verify"), ("status", "200")]
        ) >= 1.0
    );
    assert!(moved("tamaq_job_runs_total", &[("job", "sms")]) >= 1.0);
    assert!(metric(&after, "tamaq_consents", &[("state", "consented")]) >= 1.0);
    assert!(after
        .iter()
        .any(|s| s.metric == "tamaq_outbox_depth" && s.labels.get("outbox") == Some("nobd")));
    drop(server);
}

#[test]
fn whole_flow_on_sqlite() {
    flow(None);
}

#[test]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
fn whole_flow_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, guard) = rt.block_on(wallet_server::store::testing::postgres_url());
    flow(Some(&url));
    drop(guard);
}
