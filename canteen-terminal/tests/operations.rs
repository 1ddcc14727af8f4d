//! The real binary as an operator runs it: `status --format prometheus` moving with scans and
//! syncs, and `backup` restored in place of the meal log, after which the terminal carries on
//! (its `seq` continues, no meal is lost, the server gets every event once).

mod common;

use canteen_terminal::clock::SystemClock;
use common::*;
use shared::calendar::local_time;
use shared::wire::VoucherStatus;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_canteen-terminal");

fn now() -> i64 {
    use canteen_terminal::Clock;
    SystemClock.now()
}

fn run(dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("TAMAQ_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn metrics(dir: &Path) -> Vec<prometheus_parse::Sample> {
    let text = ok(&run(dir, &["status", "--format", "prometheus"], ""));
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses")
        .samples
}

fn value(samples: &[prometheus_parse::Sample], name: &str, label: Option<(&str, &str)>) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .sum()
}

fn scan(dir: &Path, tokens: &[String]) -> Vec<serde_json::Value> {
    let out = ok(&run(dir, &["scan", "--json"], &(tokens.join("\n") + "\n")));
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_and_a_restored_backup_carries_on() {
    // The always-open window ends at 23:59 local; do not start inside that last minute.
    while local_time(now()).format("%H:%M").to_string() == "23:59" {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let world = World::new();
    let mut st = world.server_state(
        (1..=12)
            .map(|i| voucher(i, VoucherStatus::Active))
            .collect(),
    );
    let (year, windows) = always_open();
    st.calendar = year;
    st.meal_windows = windows;
    st.now = Arc::new(SystemClock);
    let server = FakeServer::start(st);
    server.add_code("OPS-1");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("terminal");
    ok(&run(
        &data,
        &["enroll", "--server", &server.url(), "--code", "OPS-1"],
        "",
    ));
    let token = |i: u32| world.token(voucher(i, VoucherStatus::Active).voucher_id, now() - 5);

    // Freshly enrolled and synced: nothing scanned, nothing waiting.
    let m = metrics(&data);
    assert_eq!(value(&m, "tamaq_terminal_unsynced_events", None), 0.0);
    assert!(value(&m, "tamaq_terminal_free_disk_bytes", None) > 0.0);
    assert_eq!(value(&m, "tamaq_terminal_vouchers", None), 12.0);

    // Five meals and a repeat.
    let verdicts = scan(
        &data,
        &(1..=5).map(token).chain([token(1)]).collect::<Vec<_>>(),
    );
    assert_eq!(verdicts.iter().filter(|v| v["verdict"] == "ok").count(), 5);
    let m = metrics(&data);
    let scans = |m: &[prometheus_parse::Sample], v: &str| {
        value(m, "tamaq_terminal_scans_total", Some(("verdict", v)))
    };
    assert_eq!(scans(&m, "ok"), 5.0);
    assert_eq!(scans(&m, "already_served"), 1.0);
    assert_eq!(value(&m, "tamaq_terminal_unsynced_events", None), 6.0);
    ok(&run(&data, &["sync"], ""));
    let m = metrics(&data);
    assert_eq!(value(&m, "tamaq_terminal_unsynced_events", None), 0.0);
    let age = value(&m, "tamaq_terminal_last_sync_age_seconds", None);
    assert!((0.0..60.0).contains(&age), "{age}");

    // One more meal, not yet synced, then the backup.
    scan(&data, &[token(6)]);
    let copy = tmp.path().join("terminal-backup.db");
    let out = ok(&run(&data, &["backup", "--to", copy.to_str().unwrap()], ""));
    assert!(out.contains("backup written"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(&data, &["backup", "--to", copy.to_str().unwrap()], "");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrite"));

    // The disk dies; the meal log is put back from the backup (the secret file survives with
    // the configuration, as docs/deploy.md says to keep it).
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("terminal.db{suffix}")));
    }
    std::fs::copy(&copy, data.join("terminal.db")).unwrap();

    // It carries on: the meal from before the backup still counts, numbering continues.
    let verdicts = scan(&data, &[token(6), token(7), token(8)]);
    let v: Vec<&str> = verdicts
        .iter()
        .map(|v| v["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(v, ["already_served", "ok", "ok"]);
    let seqs: Vec<i64> = verdicts
        .iter()
        .map(|v| v["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [8, 9, 10], "seq continues after the restored log's 7");
    ok(&run(&data, &["sync"], ""));
    let st = server.state.lock().unwrap();
    let tid = st.terminals.values().next().unwrap().0;
    let remote: Vec<i64> = st.events_of(tid).iter().map(|e| e.seq).collect();
    assert_eq!(remote, (1..=10).collect::<Vec<_>>(), "every event once");
    let served = st
        .events_of(tid)
        .iter()
        .filter(|e| e.verdict == shared::verdict::Verdict::Ok)
        .count();
    assert_eq!(served, 8, "meals 1-6 before, 7-8 after the restore");
}
