//! `wallet-server backup`: a copy taken by the real binary while the server takes event uploads,
//! restored under a fresh server that carries on where the copy ends. SQLite only: PostgreSQL
//! is backed up with its own tools (docs/deploy.md).

#[allow(dead_code)]
#[path = "terminal_sync/fixtures.rs"]
mod fixtures;

use fixtures::*;
use shared::verdict::Verdict;
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use wallet_server::config::Paths;
use wallet_server::AppState;

const BATCHES: i64 = 40;
const PER_BATCH: i64 = 25;

async fn events_of(url: &str) -> Vec<i64> {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM terminal_events ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_uploading_then_restore_and_carry_on() {
    let ts = wallet_server::testkit::state(false).await;
    let state = ts.state.clone();
    let school = school(&state, BIN_A, "Мектеп").await;
    let v = voucher(&state, &school, "100101500011", "Айгерим", "Сейтова", true).await;
    let app = app(&state);
    let t = Arc::new(enroll(&app, &state, BIN_A, "Асхана 1").await);

    // One terminal uploads 1,000 events in batches; `acked` is the last seq the server confirmed.
    let acked = Arc::new(AtomicI64::new(0));
    let uploader = {
        let (app, t, acked) = (app.clone(), t.clone(), acked.clone());
        let voucher = v.uuid();
        tokio::spawn(async move {
            for b in 0..BATCHES {
                let events: Vec<_> = (1..=PER_BATCH)
                    .map(|i| {
                        let seq = b * PER_BATCH + i;
                        ev(
                            seq,
                            MONDAY_NOON + seq,
                            Some(voucher),
                            Verdict::AlreadyServed,
                        )
                    })
                    .collect();
                let (status, body) = upload(&app, &t, &events).await;
                assert_eq!(status, 200, "{body}");
                acked.store(body["last_seq"].as_i64().unwrap(), Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 5 * PER_BATCH {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let confirmed_before = acked.load(Ordering::SeqCst);
    let copy = ts.dir.path().join("backup.db");
    let out = {
        let (url, copy) = (ts.db.url.clone(), copy.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_wallet-server"))
                .args([
                    "backup",
                    "--to",
                    copy.to_str().unwrap(),
                    "--database-url",
                    &url,
                ])
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup written"));
    let uploaded_during = acked.load(Ordering::SeqCst);
    uploader.await.unwrap();
    let total = BATCHES * PER_BATCH;
    assert!(
        uploaded_during < total,
        "the copy was taken while uploads went on ({uploaded_during} of {total})"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the copy holds personal data");
    }
    // The copy is whole: everything confirmed before it began, as one unbroken run of seqs
    // (no batch half in), and it passes SQLite's own check.
    let copy_url = format!("sqlite://{}", copy.display());
    let seqs = events_of(&copy_url).await;
    let held = seqs.len() as i64;
    assert!(held >= confirmed_before, "{held} < {confirmed_before}");
    assert_eq!(seqs, (1..=held).collect::<Vec<_>>());
    assert_eq!(held % PER_BATCH, 0, "whole batches only");
    let pool = sqlx::SqlitePool::connect(&copy_url).await.unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    pool.close().await;

    // Restored: a server on the copy (same keys folder) takes the rest from the terminal, which
    // still holds every event, and then its next scans.
    let restored = wallet_server::store::connect(&copy_url).await.unwrap();
    let paths = Paths::new(ts.dir.path().to_path_buf(), Some(copy_url.clone()));
    let state2 = AppState::assemble(
        restored,
        wallet_server::config::Settings::default(),
        paths,
        state.clock.clone(),
        false,
    )
    .await
    .unwrap();
    let app2 = wallet_server::app(state2.clone());
    let rest: Vec<_> = (held + 1..=total + 3)
        .map(|seq| {
            ev(
                seq,
                MONDAY_NOON + seq,
                Some(v.uuid()),
                Verdict::AlreadyServed,
            )
        })
        .collect();
    for chunk in rest.chunks(200) {
        let (status, body) = upload(&app2, &t, chunk).await;
        assert_eq!(status, 200, "{body}");
    }
    let seqs = events_of(&copy_url).await;
    assert_eq!(seqs, (1..=total + 3).collect::<Vec<_>>(), "no event lost");

    // A second backup to the same file is refused and leaves the first intact.
    let again = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
        .args([
            "backup",
            "--to",
            copy.to_str().unwrap(),
            "--database-url",
            &ts.db.url,
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("never overwrite"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // And a missing database is not silently created and copied.
    let missing = ts.dir.path().join("nothing-here");
    let out = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
        .args(["--data-dir", missing.to_str().unwrap(), "backup", "--to"])
        .arg(ts.dir.path().join("b2.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
    assert!(!ts.dir.path().join("b2.db").exists());
}
