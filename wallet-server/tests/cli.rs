//! The `wallet-server` binary: `import-roster` and `consent tick` as an operator runs them.

#[path = "core_support/mod.rs"]
mod common;

use common::*;
use std::process::Command;
use wallet_server::roster::Column;

fn run(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("TAMAQ_CONFIG")
        .env_remove("TAMAQ_DATABASE_URL")
        .env("TAMAQ_SCHOOL_YEAR_START", "2026-09-01")
        .env("TAMAQ_SCHOOL_YEAR_END", "2027-05-25")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn import_then_tick() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("roster.csv");
    let rows = [
        row(1, 0, "+77010000001"),
        with(row(2, 0, ""), Column::Grade, "12"),
    ];
    std::fs::write(&file, csv(&rows)).unwrap();
    let file = file.to_str().unwrap();

    let (ok, out, err) = run(&data, &["import-roster", file]);
    assert!(!ok, "rejected rows: non-zero exit");
    assert!(
        out.contains("line 3, column grade: \"12\" is not a grade from 0 to 11"),
        "{out}"
    );
    assert!(out.contains("rejected 1"), "{out}");
    assert!(err.contains("nothing imported"), "{err}");

    let (ok, out, err) = run(&data, &["import-roster", file, "--skip-invalid"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("added 1, updated 0, unchanged 0, removed 0, rejected 1"),
        "{out}"
    );
    assert!(
        err.contains("importing: 1/1 pupils"),
        "progress on stderr: {err}"
    );

    let (ok, out, err) = run(
        &data,
        &["consent", "tick", "--now", "2026-11-23T09:00:00+05:00"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("requested 1, no_phone 0"), "{out}");
    assert!(out.contains("SMS: sent 1, failed 0"), "{out}");
    let sent = wallet_server::sms::file::read_outbox(&data.join("outbox/sms.jsonl")).unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "+77010000001");
    assert_eq!(sent[0].created_at, "2026-11-23T04:00:00Z");

    let (ok, _, err) = run(&data, &["consent", "tick", "--now", "yesterday"]);
    assert!(!ok);
    assert!(err.contains("RFC 3339"), "{err}");
    let (ok, _, err) = run(&data, &["import-roster", "/nonexistent/roster.csv"]);
    assert!(!ok);
    assert!(err.contains("cannot read /nonexistent/roster.csv"), "{err}");
}
