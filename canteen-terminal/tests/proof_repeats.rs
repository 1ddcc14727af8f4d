//! Repeats of the token just served, the proof each served QR event carries up to the server,
//! the version every request names, and a server that asks for an upgrade.

mod common;

use canteen_terminal::clock::ManualClock;
use canteen_terminal::commands::EXIT_UPGRADE_REQUIRED;
use common::*;
use shared::verdict::Verdict;
use shared::wire::{ScanSource, VoucherStatus};
use std::process::Command;

fn id(n: u32) -> uuid::Uuid {
    voucher(n, VoucherStatus::Active).voucher_id
}

#[tokio::test]
async fn the_same_token_within_two_minutes_is_a_neutral_repeat_anything_else_stays_red() {
    let world = World::new();
    let server = FakeServer::start(
        world.server_state((1..=3).map(|i| voucher(i, VoucherStatus::Active)).collect()),
    );
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "R1", "Асхана 1", &clock).await;
    let token = world.token(id(1), monday_noon() - 30);

    let ok = t.scan(&token, None).await.unwrap();
    assert_eq!((ok.verdict, ok.repeat), (Verdict::Ok, false));

    // Held up again 30 s later: a repeat, not an alarm.
    clock.advance(30);
    let again = t.scan(&format!("  {token}\r"), None).await.unwrap();
    assert_eq!(again.verdict, Verdict::AlreadyServed);
    assert!(again.repeat);
    assert!(!again.serve);
    assert_eq!(again.served_at, Some(monday_noon()));
    assert!(
        again.message_ru.contains("Только что отсканирован"),
        "{}",
        again.message_ru
    );
    assert!(again.message_ru.contains("12:00"), "{}", again.message_ru);
    assert!(
        again.message_kk.contains("Жаңа ғана"),
        "{}",
        again.message_kk
    );
    assert_eq!(again.display_name.as_deref(), Some("Айгерим1 С."));
    let json: serde_json::Value = serde_json::from_str(&again.json_line()).unwrap();
    assert_eq!(json["repeat"], true);
    assert_eq!(json["verdict"], "already_served");

    // A new token for the same voucher the same day: a second attempt, red.
    let other = world.token(id(1), monday_noon() + 20);
    let second = t.scan(&other, None).await.unwrap();
    assert_eq!(
        (second.verdict, second.repeat),
        (Verdict::AlreadyServed, false)
    );
    assert!(second.message_ru.contains("Сегодня уже питался"));

    // The first token, past the two minutes: red as well.
    clock.set(monday_noon() + 121);
    let late = t.scan(&token, None).await.unwrap();
    assert_eq!((late.verdict, late.repeat), (Verdict::AlreadyServed, false));

    // At exactly two minutes it is still a repeat (another voucher, to start afresh).
    let token2 = world.token(id(2), monday_noon());
    clock.set(monday_noon() + 200);
    assert_eq!(t.scan(&token2, None).await.unwrap().verdict, Verdict::Ok);
    clock.set(monday_noon() + 320);
    assert!(t.scan(&token2, None).await.unwrap().repeat);

    // A card served twice is never a repeat: there is no token to tell the same showing.
    assert_eq!(
        t.redeem_card("000000003", None).await.unwrap().verdict,
        Verdict::Ok
    );
    let card_again = t.redeem_card("000000003", None).await.unwrap();
    assert_eq!(
        (card_again.verdict, card_again.repeat),
        (Verdict::AlreadyServed, false)
    );

    // Repeats are recorded, never as meals; the day's count is two QR meals and one card meal.
    let report = t.report(None).await.unwrap();
    assert_eq!(report.served_total, 3);

    // Up to the server: the token text on each served QR event only, the repeat marks.
    t.sync().await.unwrap();
    let tid = t.status().await.unwrap().terminal_id;
    let events = server.state.lock().unwrap().events_of(tid);
    let summary: Vec<(Verdict, ScanSource, bool, bool)> = events
        .iter()
        .map(|e| (e.verdict, e.source, e.proof.is_some(), e.repeat))
        .collect();
    use ScanSource::*;
    use Verdict::*;
    assert_eq!(
        summary,
        vec![
            (Ok, Qr, true, false),
            (AlreadyServed, Qr, false, true),
            (AlreadyServed, Qr, false, false),
            (AlreadyServed, Qr, false, false),
            (Ok, Qr, true, false),
            (AlreadyServed, Qr, false, true),
            (Ok, Card, false, false),
            (AlreadyServed, Card, false, false),
        ]
    );
    assert_eq!(events[0].proof.as_deref(), Some(token.as_str()));
    assert_eq!(events[4].proof.as_deref(), Some(token2.as_str()));
}

#[tokio::test]
async fn a_repeat_is_recognised_after_a_restart_from_the_log() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(vec![voucher(1, VoucherStatus::Active)]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let token = world.token(id(1), monday_noon());
    {
        let t = enrolled_terminal(dir.path(), &server, "R2", "Асхана", &clock).await;
        assert_eq!(t.scan(&token, None).await.unwrap().verdict, Verdict::Ok);
        t.pool().close().await;
    }
    clock.advance(10);
    let t = canteen_terminal::Terminal::open(
        dir.path(),
        canteen_terminal::Settings::default(),
        std::sync::Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let again = t.scan(&token, None).await.unwrap();
    assert!(again.repeat, "{again:?}");
    let stored: Vec<(String, Option<String>, bool)> =
        sqlx::query_as("SELECT verdict, proof, repeat FROM events ORDER BY seq")
            .fetch_all(t.pool())
            .await
            .unwrap();
    assert_eq!(
        stored,
        vec![
            ("ok".to_owned(), Some(token.clone()), false),
            ("already_served".to_owned(), None, true),
        ]
    );
}

#[tokio::test]
async fn every_request_names_the_version_and_an_upgrade_answer_keeps_the_events() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(vec![voucher(1, VoucherStatus::Active)]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "V1", "Асхана", &clock).await;
    t.scan(&world.token(id(1), monday_noon()), None)
        .await
        .unwrap();
    t.sync().await.unwrap();
    {
        let st = server.state.lock().unwrap();
        assert!(st.versions_seen.len() >= 3, "enroll, upload, snapshot");
        for v in &st.versions_seen {
            assert_eq!(v.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        }
    }

    t.scan("rubbish", None).await.unwrap();
    let message = "Терминал жаңартылуы керек / Терминал нужно обновить до версии 0.3.0";
    server.state.lock().unwrap().upgrade_required = Some(message.to_owned());
    let err = t.sync().await.unwrap_err();
    assert!(err.is_upgrade_required(), "{err}");
    assert!(err.to_string().contains(message), "{err}");
    assert_eq!(t.status().await.unwrap().unsynced_events, 1, "kept here");

    // The binary prints the server's message and exits non-zero.
    let out = Command::new(env!("CARGO_BIN_EXE_canteen-terminal"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("sync")
        .env_remove("TAMAQ_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_UPGRADE_REQUIRED), "{stderr}");
    assert!(stderr.contains(message), "{stderr}");
    assert!(stderr.contains("stays on this terminal"), "{stderr}");

    // After the upgrade (the server accepts again) the events upload; nothing was lost.
    server.state.lock().unwrap().upgrade_required = None;
    let r = t.sync().await.unwrap();
    assert_eq!(r.uploaded, 1);
    assert_eq!(t.status().await.unwrap().unsynced_events, 0);
}

#[tokio::test]
async fn an_unknown_card_says_it_is_not_registered_not_to_sync() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(vec![voucher(1, VoucherStatus::Active)]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "C1", "Асхана", &clock).await;
    let o = t.redeem_card("999999999", None).await.unwrap();
    assert_eq!(o.verdict, Verdict::UnknownVoucher);
    assert!(
        o.message_ru.contains("Карта не зарегистрирована"),
        "{}",
        o.message_ru
    );
    assert!(
        o.message_kk.contains("Карта тіркелмеген"),
        "{}",
        o.message_kk
    );
    assert!(!o.message_ru.contains("Синхронизируйте"));
    // A QR token of a voucher issued after the last sync: syncing is the right advice there.
    let q = t
        .scan(&world.token(id(7), monday_noon()), None)
        .await
        .unwrap();
    assert_eq!(q.verdict, Verdict::UnknownVoucher);
    assert!(q.message_ru.contains("Синхронизируйте"));
}
