//! Every file the `wallet-server` binary creates — its SQLite database with the WAL and shared
//! memory files, the keys, the SMS outbox with login codes, the NOBD outbox — is readable by its
//! owner only (0600, folders 0700) when the operator's umask is the usual 022.
#![cfg(unix)]

#[path = "core_support/mod.rs"]
mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn under_umask_022(data: &Path, db_url: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 022; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_wallet-server"))
        .arg("--data-dir")
        .arg(data);
    if let Some(url) = db_url {
        c.arg("--database-url").arg(url);
    }
    c.args(args)
        .env_remove("TAMAQ_CONFIG")
        .env_remove("TAMAQ_DATABASE_URL")
        .env("TAMAQ_SCHOOL_YEAR_START", "2026-09-01")
        .env("TAMAQ_SCHOOL_YEAR_END", "2027-05-25");
    c
}

fn run(data: &Path, db_url: Option<&str>, args: &[&str]) -> String {
    let out = under_umask_022(data, db_url, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every entry below `dir` (itself included): (path, mode, is_dir).
fn walk(dir: &Path, out: &mut Vec<(PathBuf, u32, bool)>) {
    let meta = std::fs::metadata(dir).unwrap();
    out.push((dir.to_owned(), meta.permissions().mode() & 0o777, true));
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            out.push((p, mode, false));
        }
    }
}

fn assert_private(root: &Path, data: &Path) -> Vec<String> {
    let mut all = Vec::new();
    walk(data, &mut all);
    let mut files = Vec::new();
    for (p, mode, is_dir) in &all {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:o}", p.display());
        if !is_dir {
            files.push(p.strip_prefix(data).unwrap().display().to_string());
        }
    }
    // The folder the data dir was created in, too.
    let parent = data.parent().unwrap();
    if parent != root {
        let mode = std::fs::metadata(parent).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", parent.display());
    }
    files.sort();
    files
}

async fn every_file_is_private(pg: bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("srv/data");
    let (url, _guard) = if pg {
        let (url, guard) = wallet_server::store::testing::postgres_url().await;
        (Some(url), Some(guard))
    } else {
        (None, None)
    };
    let url = url.as_deref();
    let roster = dir.path().join("roster.csv");
    std::fs::write(&roster, csv(&[row(1, 0, "+77010000001")])).unwrap();

    run(&data, url, &["import-roster", roster.to_str().unwrap()]);
    run(
        &data,
        url,
        &["consent", "tick", "--now", "2026-11-23T09:00:00+05:00"],
    );
    let code = run(
        &data,
        url,
        &["terminal", "enroll-code", "--school", &bin(0)],
    );
    assert!(!code.trim().is_empty());
    run(&data, url, &["keys", "rotate"]);
    run(&data, url, &["report", "nobd", "--date", "2026-11-23"]);

    // A running server, so that SQLite's -wal and -shm files exist while we look.
    let mut server = under_umask_022(&data, url, &["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // The lock and the shared memory file belong to a SQLite data dir only.
    let ready = |d: &Path| pg || (d.join("serve.lock").exists() && d.join("tamaq.db-shm").exists());
    while !ready(&data) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let files = assert_private(dir.path(), &data);
    server.kill().unwrap();
    server.wait().unwrap();

    let has = |name: &str| files.iter().any(|f| f == name);
    let starts = |prefix: &str| files.iter().filter(|f| f.starts_with(prefix)).count();
    assert!(has("keys/root.key"), "{files:?}");
    assert!(
        starts("keys/signing-") >= 2,
        "two signing keys after a rotation: {files:?}"
    );
    assert!(has("outbox/sms.jsonl"), "{files:?}");
    assert_eq!(has("serve.lock"), !pg, "{files:?}");
    assert!(starts("outbox/nobd/") >= 1, "{files:?}");
    if !pg {
        for f in ["tamaq.db", "tamaq.db-wal", "tamaq.db-shm"] {
            assert!(has(f), "{f}: {files:?}");
        }
    }
}

both_backends!(
    every_file_the_server_creates_is_private_under_umask_022,
    super::every_file_is_private
);
