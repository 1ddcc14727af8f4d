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

/// `run` with a line on standard input (the CLI reads passwords there).
fn run_with_input(data: &std::path::Path, args: &[&str], input: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("TAMAQ_CONFIG")
        .env_remove("TAMAQ_DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `wallet-server staff add | list | disable | enable | reset-password` as an operator runs them:
/// each says what it did, refuses bad input with one clear message, and is audited.
#[test]
fn staff_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listed = |data: &std::path::Path| -> Vec<serde_json::Value> {
        let (ok, out, err) = run(data, &["staff", "list", "--json"]);
        assert!(ok, "{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };

    let (ok, out, err) = run_with_input(
        &data,
        &["staff", "add", "--username", "ops", "--role", "operator"],
        "Kitchen-Ledger-4821\n",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("staff account ops created (role operator)"),
        "{out}"
    );
    let accounts = listed(&data);
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["username"], "ops");
    assert!(accounts[0]["disabled_at"].is_null(), "{}", accounts[0]);

    let (ok, out, err) = run(&data, &["staff", "disable", "ops"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("ops disabled; 0 open session(s) ended"),
        "{out}"
    );
    assert!(listed(&data)[0]["disabled_at"].is_i64());
    let (ok, out, _) = run(&data, &["staff", "disable", "ops"]);
    assert!(ok && out.contains("already disabled"), "{out}");
    let (ok, _, err) = run(&data, &["staff", "enable", "ops"]);
    assert!(ok, "{err}");
    assert!(listed(&data)[0]["disabled_at"].is_null());
    let (ok, out, err) = run(&data, &["staff", "list"]);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("ops ") && l.contains("active") && l.contains("(all)")),
        "{out}"
    );

    // A weak new password: one clear reason, said once, nothing changed.
    let (ok, _, err) = run_with_input(
        &data,
        &["staff", "reset-password", "ops"],
        "Ops-Kitchen-Ledger-4821\n",
    );
    assert!(!ok);
    assert_eq!(
        err.matches("must not contain the username").count(),
        1,
        "{err}"
    );
    let (ok, out, err) = run_with_input(
        &data,
        &["staff", "reset-password", "ops"],
        "Another-Ledger-9137\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("ops"), "{out}");
    let (ok, _, err) = run(&data, &["staff", "disable", "nobody"]);
    assert!(!ok);
    assert!(err.contains("no staff account \"nobody\""), "{err}");

    // Each change is in the audit log, by the CLI.
    let db = data.join("tamaq.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let actions: Vec<(String, String)> = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let rows = sqlx::query_as(
            "SELECT action, actor FROM audit_log WHERE action LIKE 'staff.%' ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    });
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    for action in ["staff.disable", "staff.enable", "staff.reset_password"] {
        assert_eq!(
            names.iter().filter(|n| **n == action).count(),
            1,
            "{action} in {names:?}"
        );
    }
    assert!(
        actions.iter().all(|(_, actor)| actor == "cli"),
        "{actions:?}"
    );
}
