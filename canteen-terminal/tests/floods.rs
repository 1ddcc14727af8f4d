//! Floods of bad input (docs/terminal.md, "Floods"): a stuck wedge scanner or a script feeding
//! garbage gets a verdict for every line, but the log grows by a few rows, not one per line;
//! counts add up to the inputs, reach the server, and an event already sent never changes.

mod common;

use canteen_terminal::clock::{ManualClock, SystemClock};
use canteen_terminal::{Settings, Terminal};
use common::*;
use shared::verdict::Verdict;
use shared::wire::VoucherStatus;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_canteen-terminal");

fn server_with(n: u32) -> FakeServer {
    let world = World::new();
    let mut st = world.server_state((1..=n).map(|i| voucher(i, VoucherStatus::Active)).collect());
    let (year, windows) = always_open();
    st.calendar = year;
    st.meal_windows = windows;
    st.now = Arc::new(SystemClock);
    FakeServer::start(st)
}

fn enroll(dir: &Path, server: &FakeServer) {
    server.add_code("FLOOD-1");
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["enroll", "--server", &server.url(), "--code", "FLOOD-1"])
        .env_remove("TAMAQ_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Feeds `lines` to `scan --json` on stdin and returns the verdict lines it printed.
fn scan_stdin(dir: &Path, lines: Vec<String>, env: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["scan", "--json"])
        .env_remove("TAMAQ_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut all = String::new();
        for l in lines {
            // CR LF as wedge scanners send it.
            all.push_str(&l);
            all.push_str("\r\n");
        }
        stdin.write_all(all.as_bytes()).unwrap();
    });
    let out: Vec<serde_json::Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("one JSON verdict per line"))
        .collect();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    out
}

/// (seq, scanned_at, verdict, count, capped) of every event.
async fn log_rows(dir: &Path) -> Vec<(i64, i64, String, i64, bool)> {
    let pool = canteen_terminal::store::open(dir).await.unwrap();
    let rows =
        sqlx::query_as("SELECT seq, scanned_at, verdict, count, capped FROM events ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_identical_garbage_lines_are_a_few_rows_whose_counts_add_up() {
    let server = server_with(3);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("t");
    enroll(&data, &server);
    let n = 10_000;
    let out = scan_stdin(
        &data,
        vec!["GARBAGE-FROM-A-STUCK-SCANNER".to_owned(); n],
        &[],
    );
    assert_eq!(out.len(), n, "a verdict for every line");
    assert!(out.iter().all(|o| o["verdict"] == "bad_format"));
    let rows = log_rows(&data).await;
    // One row, unless the machine stalled for over a second between two lines.
    assert!(rows.len() <= 3, "{} rows: {rows:?}", rows.len());
    assert_eq!(rows.iter().map(|r| r.3).sum::<i64>(), n as i64);
    assert_eq!(out.last().unwrap()["count"], rows.last().unwrap().3);
    // The day's report counts every scan.
    let report = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["report", "--json"])
        .env_remove("TAMAQ_CONFIG")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["rejected_total"], n as i64, "{report}");
    assert_eq!(report["rejected_capped"], 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_garbage_past_the_per_minute_cap_is_counted_in_one_row_per_minute() {
    let server = server_with(3);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("t");
    enroll(&data, &server);
    let cap = 100;
    let n = 3_000;
    let out = scan_stdin(
        &data,
        (0..n).map(|i| format!("garbage-{i}")).collect(),
        &[("TAMAQ_TERMINAL_REJECTIONS_PER_MINUTE", "100")],
    );
    assert_eq!(out.len(), n, "a verdict for every line");
    assert!(out.iter().all(|o| o["verdict"] == "bad_format"));
    let rows = log_rows(&data).await;
    assert_eq!(rows.iter().map(|r| r.3).sum::<i64>(), n as i64);
    // Per minute of terminal time: at most `cap` rows of their own, one capped row.
    let mut minutes = std::collections::BTreeMap::<i64, (usize, usize)>::new();
    for (_, at, _, count, capped) in &rows {
        let m = minutes.entry(at.div_euclid(60)).or_default();
        if *capped {
            m.1 += 1;
        } else {
            m.0 += 1;
            assert_eq!(*count, 1, "distinct inputs are not folded");
        }
    }
    for (minute, (own, capped)) in &minutes {
        assert!(
            *own <= cap && *capped <= 1,
            "minute {minute}: {own} + {capped}"
        );
    }
    assert!(
        rows.len() <= (cap + 1) * minutes.len(),
        "{} rows in {} minute(s)",
        rows.len(),
        minutes.len()
    );
    let dropped: i64 = rows.iter().filter(|r| r.4).map(|r| r.3).sum();
    assert!(dropped >= (n - cap * minutes.len()) as i64, "{dropped}");
    // What was only counted is said so on stdout, and kept for the report.
    let said = out.iter().filter(|o| o["capped"] == true).count() as i64;
    assert_eq!(said, dropped);
    let report = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["report"])
        .env_remove("TAMAQ_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains(&format!("сверх лимита в минуту: {dropped}")),
        "{text}"
    );
}

fn id(n: u32) -> uuid::Uuid {
    voucher(n, VoucherStatus::Active).voucher_id
}

async fn counts(t: &Terminal) -> Vec<(i64, String, i64, bool)> {
    sqlx::query_as("SELECT seq, verdict, count, capped FROM events ORDER BY seq")
        .fetch_all(t.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_input_folds_only_within_a_second_and_only_as_the_last_event() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(vec![voucher(1, VoucherStatus::Active)]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "C1", "Асхана 1", &clock).await;
    for _ in 0..3 {
        let o = t.scan("junk", None).await.unwrap();
        assert_eq!(o.verdict, Verdict::BadFormat);
    }
    let o = t.scan("junk", None).await.unwrap();
    assert_eq!((o.seq, o.count), (1, 4), "{o:?}");
    // Other input, a pause of more than a second, a served meal between: new events.
    t.scan("other junk", None).await.unwrap();
    t.scan("junk", None).await.unwrap();
    clock.advance(2);
    t.scan("junk", None).await.unwrap();
    t.scan(&world.token(id(1), monday_noon()), None)
        .await
        .unwrap();
    t.scan("junk", None).await.unwrap();
    let rows = counts(&t).await;
    let expect: Vec<(i64, String, i64, bool)> = [
        (1, "bad_format", 4),
        (2, "bad_format", 1),
        (3, "bad_format", 1),
        (4, "bad_format", 1),
        (5, "ok", 1),
        (6, "bad_format", 1),
    ]
    .into_iter()
    .map(|(s, v, c)| (s, v.to_owned(), c, false))
    .collect();
    assert_eq!(rows, expect);
    // A served event is never counted up; nothing but a rejection's count may change.
    for stmt in [
        "UPDATE events SET count = 2 WHERE verdict = 'ok'",
        "UPDATE events SET verdict = 'expired' WHERE seq = 6",
        "UPDATE events SET count = 1 WHERE seq = 1",
    ] {
        let err = sqlx::query(stmt).execute(t.pool()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{stmt}: {err}");
    }
    let report = t.report(None).await.unwrap();
    assert_eq!(report.rejected_total, 8);
    assert_eq!(report.served_total, 1);
}

#[tokio::test]
async fn counts_reach_the_server_and_an_event_sent_never_changes() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(vec![voucher(1, VoucherStatus::Active)]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "C1", "Асхана 1", &clock).await;
    for _ in 0..5 {
        t.scan("junk", None).await.unwrap();
    }
    t.sync().await.unwrap();
    // The same input again at once: the event the server holds is sealed, so a new one starts.
    for _ in 0..3 {
        t.scan("junk", None).await.unwrap();
    }
    let err = sqlx::query("UPDATE events SET count = count + 1 WHERE seq = 1")
        .execute(t.pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    // An upload seals what it is about to read before reading it: a scan that comes after the
    // seal (while the upload is on its way) starts a new event instead of changing a sent one.
    canteen_terminal::store::seal_for_upload(t.pool())
        .await
        .unwrap();
    t.scan("junk", None).await.unwrap();
    assert_eq!(
        counts(&t).await,
        vec![
            (1, "bad_format".to_owned(), 5, false),
            (2, "bad_format".to_owned(), 3, false),
            (3, "bad_format".to_owned(), 1, false),
        ]
    );
    let r = t.sync().await.unwrap();
    assert_eq!((r.uploaded, r.server_last_seq), (2, 3));
    let terminal_id = t.status().await.unwrap().terminal_id;
    let remote: Vec<(i64, i64)> = server
        .state
        .lock()
        .unwrap()
        .events_of(terminal_id)
        .iter()
        .map(|e| (e.seq, e.count))
        .collect();
    assert_eq!(remote, vec![(1, 5), (2, 3), (3, 1)]);
}

#[tokio::test]
async fn the_cap_holds_across_a_restart_within_the_minute() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(vec![voucher(1, VoucherStatus::Active)]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let _enrolled = enrolled_terminal(dir.path(), &server, "C1", "Асхана 1", &clock).await;
    let settings = Settings {
        rejections_per_minute: 10,
        ..Settings::default()
    };
    let t = Terminal::open(dir.path(), settings.clone(), Arc::new(clock.clone()))
        .await
        .unwrap();
    for i in 0..50 {
        let o = t.scan(&format!("garbage-{i}"), None).await.unwrap();
        assert_eq!(o.verdict, Verdict::BadFormat);
        assert_eq!(o.capped, i >= 10, "{i}: {o:?}");
    }
    let rows = counts(&t).await;
    assert_eq!(rows.len(), 11);
    assert_eq!(rows[10], (11, "bad_format".to_owned(), 40, true));
    // Visible to the operator: only counted, and among the scans by verdict.
    let figures = canteen_terminal::ops::figures(&t).await.unwrap();
    assert_eq!(figures.capped_scans, 40);
    let text = canteen_terminal::ops::exposition(&figures);
    assert!(
        text.contains("tamaq_terminal_capped_scans_total 40"),
        "{text}"
    );
    assert!(
        text.contains("tamaq_terminal_scans_total{verdict=\"bad_format\"} 50"),
        "{text}"
    );
    drop(t);
    // A new process in the same minute goes on from the log, not from zero.
    let t = Terminal::open(dir.path(), settings.clone(), Arc::new(clock.clone()))
        .await
        .unwrap();
    let o = t.scan("garbage-again", None).await.unwrap();
    assert!(o.capped && o.seq == 11 && o.count == 41, "{o:?}");
    // The next minute records rows again.
    clock.advance(60);
    let o = t.scan("garbage-next", None).await.unwrap();
    assert!(!o.capped && o.seq == 12, "{o:?}");
}
