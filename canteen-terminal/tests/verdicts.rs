//! DESIGN §4 at the terminal: every verdict reachable, in order; the one-meal guard; what staff
//! see; every scan in the log.

mod common;

use canteen_terminal::clock::ManualClock;
use canteen_terminal::{ScanOutcome, Settings, Terminal};
use chrono::{NaiveDate, NaiveTime};
use common::*;
use shared::calendar::{MealKind, ServiceDay};
use shared::keys::KeyPair;
use shared::token::{self, TokenRequest};
use shared::verdict::Verdict;
use shared::wire::{ScanSource, VoucherStatus};
use std::collections::HashSet;
use std::sync::Arc;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
    ServiceDay(NaiveDate::from_ymd_opt(y, m, d).unwrap())
        .unix_at(NaiveTime::from_hms_opt(h, min, 0).unwrap())
}

struct Setup {
    _dir: tempfile::TempDir,
    _server: FakeServer,
    world: World,
    clock: ManualClock,
    terminal: Terminal,
}

async fn setup() -> Setup {
    let world = World::new();
    let mut expired_validity = voucher(4, VoucherStatus::Active);
    expired_validity.valid_to = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let server = FakeServer::start(world.server_state(vec![
        voucher(1, VoucherStatus::Active),
        voucher(2, VoucherStatus::Issued),
        voucher(3, VoucherStatus::Revoked),
        expired_validity,
        voucher(5, VoucherStatus::Active),
        voucher(6, VoucherStatus::Active),
    ]));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let terminal = enrolled_terminal(dir.path(), &server, "CODE-1", "Асхана 1", &clock).await;
    Setup {
        _dir: dir,
        _server: server,
        world,
        clock,
        terminal,
    }
}

fn id(n: u32) -> uuid::Uuid {
    voucher(n, VoucherStatus::Active).voucher_id
}

async fn event_count(t: &Terminal) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events")
        .fetch_one(t.pool())
        .await
        .unwrap();
    n
}

/// A terminal that synced before the turn of the year serves on the new year's school days
/// when the server sent that year's calendar; one that only knows this year refuses them.
#[tokio::test]
async fn the_next_years_calendar_from_the_snapshot() {
    let next = shared::SchoolYear::kazakh(2027);
    for (sent, expected) in [(true, Verdict::Ok), (false, Verdict::NotASchoolDay)] {
        let world = World::new();
        let mut new_year = voucher(1, VoucherStatus::Active);
        (new_year.valid_from, new_year.valid_to) = (next.start, next.end);
        let mut state = world.server_state(vec![new_year.clone()]);
        state.next_calendar = sent.then(|| next.clone());
        let server = FakeServer::start(state);
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(monday_noon());
        let t = enrolled_terminal(dir.path(), &server, "CODE-1", "Асхана 1", &clock).await;
        // Offline from then on; the first school day of the next year, at noon.
        let first_day = at(2027, 9, 1, 12, 0);
        clock.set(first_day);
        let o = t
            .scan(&world.token(new_year.voucher_id, first_day), None)
            .await
            .unwrap();
        assert_eq!(o.verdict, expected, "next year's calendar sent: {sent}");
        // The same holds after a restart: the calendar is stored.
        drop(t);
        let t = Terminal::open(dir.path(), Settings::default(), Arc::new(clock.clone()))
            .await
            .unwrap();
        let o = t
            .scan(&world.token(new_year.voucher_id, first_day + 60), None)
            .await
            .unwrap();
        let again = if sent {
            Verdict::AlreadyServed
        } else {
            Verdict::NotASchoolDay
        };
        assert_eq!(o.verdict, again, "after a restart, sent: {sent}");
    }
}

#[tokio::test]
async fn every_verdict_is_reachable_in_the_order_of_the_design() {
    let s = setup().await;
    let t = &s.terminal;
    let w = &s.world;
    let now = monday_noon();
    let mut outcomes: Vec<ScanOutcome> = Vec::new();
    let mut expect = |o: ScanOutcome, v: Verdict| {
        assert_eq!(o.verdict, v, "{o:?}");
        outcomes.push(o);
    };

    expect(
        t.scan(&w.token(id(1), now - 30), None).await.unwrap(),
        Verdict::Ok,
    );
    expect(t.scan("hello", None).await.unwrap(), Verdict::BadFormat);
    let stranger = KeyPair::from_seed([99u8; 32]);
    expect(
        t.scan(&token_with(&stranger, id(1), now, 600), None)
            .await
            .unwrap(),
        Verdict::UnknownKey,
    );
    let good = w.token(id(5), now);
    let mut bytes = good.clone().into_bytes();
    bytes[100] = if bytes[100] == b'A' { b'B' } else { b'A' };
    expect(
        t.scan(&String::from_utf8(bytes).unwrap(), None)
            .await
            .unwrap(),
        Verdict::BadSignature,
    );
    let other_school = token::sign(
        &TokenRequest {
            voucher_id: id(5),
            school_code: SCHOOL_CODE + 1,
            issued_at: (now - 7200) as u32, // also expired: wrong_school comes first
            expires_at: (now - 6600) as u32,
        },
        &w.signer,
    );
    expect(
        t.scan(&other_school, None).await.unwrap(),
        Verdict::WrongSchool,
    );
    expect(
        t.scan(&w.token(id(5), now + 1000), None).await.unwrap(),
        Verdict::NotYetValid,
    );
    // Expired beats unknown voucher.
    expect(
        t.scan(&w.token(id(777), now - 2000), None).await.unwrap(),
        Verdict::Expired,
    );
    expect(
        t.scan(&w.token(id(777), now), None).await.unwrap(),
        Verdict::UnknownVoucher,
    );
    for n in [2, 3, 4] {
        expect(
            t.scan(&w.token(id(n), now), None).await.unwrap(),
            Verdict::VoucherInactive,
        );
    }
    expect(
        t.scan(&w.token(id(1), now), None).await.unwrap(),
        Verdict::AlreadyServed,
    );
    // Breakfast window is 08:00-10:00: at noon a breakfast is outside its window.
    expect(
        t.scan(&w.token(id(5), now), Some(MealKind::Breakfast))
            .await
            .unwrap(),
        Verdict::OutsideMealWindow,
    );

    // 16:00: outside every window; outside_meal_window comes before already_served.
    let late = at(2026, 11, 23, 16, 0);
    s.clock.set(late);
    expect(
        t.scan(&w.token(id(1), late), None).await.unwrap(),
        Verdict::OutsideMealWindow,
    );
    // Sunday: not a school day, before the meal window check; an inactive voucher before both.
    let sunday = at(2026, 11, 29, 16, 0);
    s.clock.set(sunday);
    expect(
        t.scan(&w.token(id(5), sunday), None).await.unwrap(),
        Verdict::NotASchoolDay,
    );
    expect(
        t.scan(&w.token(id(3), sunday), None).await.unwrap(),
        Verdict::VoucherInactive,
    );
    // The clock goes back past what it saw: nothing else is checked, not even the format.
    s.clock.set(sunday - 3600);
    expect(
        t.scan("garbage", None).await.unwrap(),
        Verdict::ClockUntrusted,
    );
    expect(
        t.scan(&w.token(id(6), sunday - 3600), None).await.unwrap(),
        Verdict::ClockUntrusted,
    );

    let seen: HashSet<Verdict> = outcomes.iter().map(|o| o.verdict).collect();
    assert_eq!(seen.len(), Verdict::ALL.len(), "every verdict reached");
    for o in &outcomes {
        assert_eq!(o.serve, o.verdict == Verdict::Ok);
        let shows = o.verdict == Verdict::Ok || o.verdict == Verdict::AlreadyServed;
        assert_eq!(o.display_name.is_some(), shows, "{o:?}");
        assert_eq!(o.class.is_some(), shows, "{o:?}");
        assert!(!o.message_kk.is_empty());
        assert!(!o.message_ru.is_empty());
        let json = o.json_line();
        for field in [
            "verdict",
            "voucher_id",
            "display_name",
            "served_at",
            "message_kk",
            "message_ru",
        ] {
            assert!(json.contains(&format!("\"{field}\":")), "{json}");
        }
    }
    // Every scan, rejected or not, is one event; seqs are contiguous from 1.
    assert_eq!(event_count(t).await, outcomes.len() as i64);
    let seqs: Vec<i64> = outcomes.iter().map(|o| o.seq).collect();
    assert_eq!(seqs, (1..=outcomes.len() as i64).collect::<Vec<_>>());
    let logged: Vec<(String,)> = sqlx::query_as("SELECT verdict FROM events ORDER BY seq")
        .fetch_all(t.pool())
        .await
        .unwrap();
    let logged: Vec<String> = logged.into_iter().map(|r| r.0).collect();
    let shown: Vec<String> = outcomes
        .iter()
        .map(|o| o.verdict.code().to_owned())
        .collect();
    assert_eq!(logged, shown);
}

#[tokio::test]
async fn one_meal_per_voucher_day_and_kind_even_with_a_screenshot() {
    let s = setup().await;
    let t = &s.terminal;
    let now = monday_noon();
    let token = s.world.token(id(1), now);
    let first = t.scan(&token, None).await.unwrap();
    assert_eq!(first.verdict, Verdict::Ok);
    assert_eq!(first.display_name.as_deref(), Some("Айгерим1 С."));
    assert_eq!(first.class.as_deref(), Some("2Б"));
    assert_eq!(first.served_at, Some(now));
    // The same picture shown again (a screenshot passed on): one meal only.
    s.clock.advance(60);
    let again = t.scan(&token, None).await.unwrap();
    assert_eq!(again.verdict, Verdict::AlreadyServed);
    assert_eq!(again.served_at, Some(now), "says when");
    assert_eq!(again.served_here, Some(true), "says where");
    assert!(again.message_ru.contains("12:00"), "{}", again.message_ru);
    // A fresh token for the same voucher: still one meal.
    let fresh = t.scan(&s.world.token(id(1), now + 60), None).await.unwrap();
    assert_eq!(fresh.verdict, Verdict::AlreadyServed);
    // A card for the same voucher: still one meal.
    let card = t.redeem_card("0 0000 0001", None).await.unwrap();
    assert_eq!(card.verdict, Verdict::AlreadyServed);
    assert_eq!(card.source, ScanSource::Card);
    // Another meal kind the same day is a different meal.
    let breakfast_next_day = at(2026, 11, 24, 9, 0);
    s.clock.set(breakfast_next_day);
    let b = t
        .scan(&s.world.token(id(1), breakfast_next_day), None)
        .await
        .unwrap();
    assert_eq!(
        b.meal_kind,
        MealKind::Breakfast,
        "meal kind from the window"
    );
    assert_eq!(b.verdict, Verdict::Ok);
    let lunch = at(2026, 11, 24, 12, 0);
    s.clock.set(lunch);
    let l = t.scan(&s.world.token(id(1), lunch), None).await.unwrap();
    assert_eq!((l.meal_kind, l.verdict), (MealKind::Lunch, Verdict::Ok));

    // The guard is the database's too: a restarted terminal (fresh memory) still refuses.
    let reopened = Terminal::open(t.data_dir(), Settings::default(), Arc::new(s.clock.clone()))
        .await
        .unwrap();
    let r = reopened
        .scan(&s.world.token(id(1), lunch), None)
        .await
        .unwrap();
    assert_eq!(r.verdict, Verdict::AlreadyServed);
    assert_eq!(r.served_at, Some(lunch));
    // Two handles on one data dir (kiosk + CLI): the second learns from the unique key.
    let other = t.scan(&s.world.token(id(5), lunch), None).await.unwrap();
    assert_eq!(other.verdict, Verdict::Ok);
    let raced = reopened
        .scan(&s.world.token(id(5), lunch), None)
        .await
        .unwrap();
    assert_eq!(raced.verdict, Verdict::AlreadyServed);

    let (meals,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM meals")
        .fetch_one(t.pool())
        .await
        .unwrap();
    assert_eq!(
        meals, 4,
        "monday lunch, tuesday breakfast + lunch, voucher 5"
    );
}

#[tokio::test]
async fn card_fallback_runs_the_checks_from_unknown_voucher_on() {
    let s = setup().await;
    let t = &s.terminal;
    let ok = t.redeem_card("00000-0005", None).await.unwrap();
    assert_eq!(ok.verdict, Verdict::Ok);
    assert_eq!(ok.source, ScanSource::Card);
    assert_eq!(ok.voucher_id, Some(id(5)));
    assert_eq!(ok.display_name.as_deref(), Some("Айгерим5 С."));
    assert_eq!(
        t.redeem_card("123", None).await.unwrap().verdict,
        Verdict::UnknownVoucher
    );
    assert_eq!(
        t.redeem_card("000000003", None).await.unwrap().verdict,
        Verdict::VoucherInactive
    );
    let (source, key): (String, Option<String>) =
        sqlx::query_as("SELECT source, key_id FROM events WHERE seq = 1")
            .fetch_one(t.pool())
            .await
            .unwrap();
    assert_eq!((source.as_str(), key), ("card", None));
}

#[tokio::test]
async fn the_terminal_stores_no_iin_and_no_category_and_never_deletes() {
    let s = setup().await;
    let t = &s.terminal;
    t.scan(&s.world.token(id(1), monday_noon()), None)
        .await
        .unwrap();
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table'",
    )
    .fetch_all(t.pool())
    .await
    .unwrap();
    assert!(columns.len() > 30, "schema read: {columns:?}");
    for (table, column) in &columns {
        let c = column.to_lowercase();
        for banned in ["iin", "category", "asp", "income", "orphan", "phone"] {
            assert!(!c.contains(banned), "{table}.{column} must not exist");
        }
    }
    let vouchers: Vec<String> = columns
        .iter()
        .filter(|(t, _)| t == "vouchers")
        .map(|(_, c)| c.clone())
        .collect();
    assert!(vouchers.contains(&"display_name".to_owned()));
    for stmt in [
        "UPDATE events SET verdict = 'ok'",
        "DELETE FROM events",
        "UPDATE meals SET served_at = 0",
        "DELETE FROM meals",
    ] {
        let err = sqlx::query(stmt).execute(t.pool()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{stmt}: {err}");
    }
    let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(t.pool())
        .await
        .unwrap();
    let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
        .fetch_one(t.pool())
        .await
        .unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(t.pool())
        .await
        .unwrap();
    assert_eq!((fk, sync, mode.as_str()), (1, 2, "wal"), "FULL = 2");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secret = t.data_dir().join("terminal.secret");
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn clock_watermark_survives_a_restart() {
    let s = setup().await;
    let now = monday_noon();
    s.terminal
        .scan(&s.world.token(id(1), now), None)
        .await
        .unwrap();
    let path = s.terminal.data_dir().to_owned();
    let back = ManualClock::new(now - 600);
    let reopened = Terminal::open(&path, Settings::default(), Arc::new(back.clone()))
        .await
        .unwrap();
    let o = reopened
        .scan(&s.world.token(id(5), now - 600), None)
        .await
        .unwrap();
    assert_eq!(o.verdict, Verdict::ClockUntrusted);
    assert!(o.display_name.is_none());
    let warn = reopened.status().await.unwrap().warnings;
    assert!(warn.iter().any(|w| w.code == "clock_untrusted"), "{warn:?}");
    // Back to (past) the watermark: trusted again.
    back.set(now + 1);
    let o = reopened
        .scan(&s.world.token(id(5), now), None)
        .await
        .unwrap();
    assert_eq!(o.verdict, Verdict::Ok);
}

#[tokio::test]
async fn unenrolled_dir_is_refused_without_creating_files() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("nothing-here");
    let err = Terminal::open(
        &target,
        Settings::default(),
        Arc::new(ManualClock::new(monday_noon())),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("enroll"), "{err}");
    assert!(!target.exists());
}
