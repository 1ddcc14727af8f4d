//! The whole flow of DESIGN §1 across both binaries, as real processes: roster → consent by SMS
//! → voucher → activation → QR → scan at the counter → sync → history → rating and complaint →
//! NOBD report. Once on SQLite and once on PostgreSQL.

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

/// The server's `/metrics`, parsed: `(name, labels) → value` for counters and gauges.
fn metrics(
    http: &reqwest::blocking::Client,
    server: &ServerProcess,
) -> Vec<prometheus_parse::Sample> {
    let text = http
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
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
    let http = reqwest::blocking::Client::new();
    let before = metrics(&http, &server);
    let refused = http
        .post(server.url("/api/v1/sms/inbound"))
        .json(&json!({"from": parent, "text": "3#1"}))
        .send()
        .unwrap();
    assert_eq!(refused.status(), 403, "no gateway secret, no answer");
    let ok = http
        .post(server.url("/api/v1/sms/inbound"))
        .header("X-Gateway-Secret", SECRET)
        .json(&json!({"from": parent, "text": " 3 # 1 "}))
        .send()
        .unwrap();
    assert!(ok.status().is_success(), "{:?}", ok.text());
    let confirmed = wait_for_sms(&data, &parent, "consent_confirmed", 0);
    assert!(
        confirmed.contains(&format!("{}/wallet", "http://127.0.0.1:8080"))
            || confirmed.contains("/wallet")
    );

    // 3. The parent logs in with the code sent by SMS and activates the voucher.
    let r = http
        .post(server.url("/api/v1/wallet/login"))
        .json(&json!({"phone": parent}))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let text = wait_for_sms(&data, &parent, "login_code", 0);
    let code: String = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a six-digit code in the SMS")
        .to_owned();
    let session: Value = http
        .post(server.url("/api/v1/wallet/login/verify"))
        .json(&json!({"phone": parent, "code": code}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = session["session_token"]
        .as_str()
        .expect("session token")
        .to_owned();
    let vouchers: Value = http
        .get(server.url("/api/v1/wallet/vouchers"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let vouchers = vouchers.as_array().expect("a list");
    assert_eq!(vouchers.len(), 1, "{vouchers:?}");
    let v = &vouchers[0];
    assert_eq!(v["status"], "issued");
    assert_eq!(v["school_bin"], school_bin(0));
    let id = v["voucher_id"].as_str().unwrap().to_owned();
    let r = http
        .post(server.url(&format!("/api/v1/wallet/vouchers/{id}/activate")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());

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
    let png = http
        .get(server.url(&format!("/api/v1/wallet/vouchers/{id}/qr.png")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    let qr = tmp.path().join("qr.png");
    std::fs::write(&qr, png.bytes().unwrap()).unwrap();
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
    let history: Value = http
        .get(server.url(&format!("/api/v1/wallet/vouchers/{id}/history")))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let history = history.as_array().unwrap();
    assert_eq!(
        history.len(),
        1,
        "one meal, the refused scan is not a meal: {history:?}"
    );
    assert_eq!(history[0]["meal_kind"], "lunch");
    assert_eq!(history[0]["school_bin"], school_bin(0));
    let r = http
        .post(server.url("/api/v1/wallet/ratings"))
        .bearer_auth(&token)
        .json(&json!({"voucher_id": id, "stars": 4, "comment": "Тамақ дәмді"}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let r = http
        .post(server.url("/api/v1/wallet/complaints"))
        .bearer_auth(&token)
        .json(&json!({"voucher_id": id, "text": "Суп был холодным"}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let complaints = wait_for_file(&data.join("outbox/eotinish"));
    let complaint = std::fs::read_to_string(&complaints[0]).unwrap();
    assert!(complaint.contains("Суп был холодным"));

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

    // 8. The operator's view moved with the flow.
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
