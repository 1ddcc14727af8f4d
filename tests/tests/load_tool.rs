//! The pilot-scale load tool at a tiny scale: every step runs and what it reports adds up
//! (the figures in docs/benchmarks.md come from the same code at full scale).

use serde_json::Value;
use std::process::Command;
use tamaq_e2e::binary;

fn run_tool(postgres: Option<&str>) -> Value {
    let work = tempfile::tempdir().unwrap();
    let results = work.path().join("results.jsonl");
    let mut cmd = Command::new(binary("tamaq-load"));
    cmd.args([
        "--scale",
        "0.001",
        "--issuance-seconds",
        "1",
        "--wallets",
        "4",
    ])
    .args(["--replies", "20", "--offline-days", "2"])
    .arg("--work-dir")
    .arg(work.path().join("run"))
    .arg("--results")
    .arg(&results)
    .env("RUST_LOG", "warn");
    if let Some(url) = postgres {
        cmd.args(["--postgres", url]);
    }
    let out = cmd.output().expect("run tamaq-load");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tamaq-load failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| roster import | 1700 pupils |"),
        "{stdout}"
    );
    let line = std::fs::read_to_string(&results).expect("results file");
    serde_json::from_str(line.trim()).expect("one JSON line")
}

fn items(run: &Value, step: &str) -> u64 {
    run["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == step)
        .unwrap_or_else(|| panic!("no step {step:?} in {run}"))["items"]
        .as_u64()
        .unwrap()
}

fn check(run: &Value) {
    assert_eq!(run["schools"], 7);
    assert_eq!(items(run, "roster import"), 1_700);
    let sms = items(run, "consent tick, first mailing");
    // About half the sample roster is eligible; one in twenty has no phone.
    assert!((600..1_100).contains(&sms), "SMS {sms}");
    assert_eq!(items(run, "SMS replies 3#1 (consent + voucher)"), 20);
    // Everyone asked consents: the 20 got their voucher with the reply, the tick issues the rest.
    assert_eq!(items(run, "consent tick, issuing vouchers"), sms - 20);
    assert!(items(run, "QR issuance, JSON") > 0);
    assert!(items(run, "QR issuance, PNG") > 0);
    assert_eq!(items(run, "terminal enrollment (with snapshot)"), 7);
    // Two days of lunch for every active voucher, and one in fifty scanned twice.
    let per_day = sms + sms / 50;
    let events = items(run, "event upload");
    assert!(
        events.abs_diff(2 * per_day) <= 14,
        "events {events}, expected about {}",
        2 * per_day
    );
    assert_eq!(items(run, "NOBD reports of one day"), 7);
}

#[test]
fn load_tool_on_sqlite() {
    check(&run_tool(None));
}

#[test]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
fn load_tool_on_postgres() {
    let url = std::env::var("TAMAQ_TEST_PG_URL").expect("TAMAQ_TEST_PG_URL");
    check(&run_tool(Some(&url)));
}
