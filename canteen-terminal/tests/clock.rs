//! Meals are dated by trusted time — the server's time at the last sync carried forward by the
//! elapsed-time clock — whatever the PC's clock says; after a reboot a PC clock that cannot be
//! vouched for stops serving until a sync.

mod common;

use canteen_terminal::clock::ManualClock;
use canteen_terminal::{Settings, Terminal};
use chrono::NaiveDate;
use common::*;
use shared::verdict::Verdict;
use shared::wire::VoucherStatus;
use std::sync::Arc;

const DAY: i64 = 86_400;

fn id(n: u32) -> uuid::Uuid {
    voucher(n, VoucherStatus::Active).voucher_id
}

fn monday() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
}

struct Counter {
    world: World,
    server: FakeServer,
    clock: ManualClock,
    t: Terminal,
    _dir: tempfile::TempDir,
}

async fn counter(settings: Settings) -> Counter {
    let world = World::new();
    let server = FakeServer::start(
        world.server_state((1..=4).map(|i| voucher(i, VoucherStatus::Active)).collect()),
    );
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    enrolled_terminal(dir.path(), &server, "C1", "A", &clock).await;
    let t = Terminal::open(dir.path(), settings, Arc::new(clock.clone()))
        .await
        .unwrap();
    Counter {
        world,
        server,
        clock,
        t,
        _dir: dir,
    }
}

impl Counter {
    async fn scan(&self, n: u32) -> canteen_terminal::outcome::ScanOutcome {
        let token = self.world.token(id(n), self.clock.true_now());
        self.t.scan(&token, None).await.unwrap()
    }

    async fn warning_codes(&self) -> Vec<&'static str> {
        let status = self.t.status().await.unwrap();
        status.warnings.iter().map(|w| w.code).collect()
    }

    /// The meals the server received from this terminal: (service day, scanned_at).
    async fn uploaded_meals(&self) -> Vec<(NaiveDate, i64)> {
        self.t.sync().await.unwrap();
        let terminal = self.t.status().await.unwrap().terminal_id;
        self.server
            .state
            .lock()
            .unwrap()
            .events_of(terminal)
            .iter()
            .filter(|e| e.verdict == Verdict::Ok)
            .map(|e| (e.service_day, e.scanned_at))
            .collect()
    }
}

#[tokio::test]
async fn a_wrong_pc_clock_only_raises_the_alarm_while_trusted_time_dates_the_meal() {
    for offset in [-DAY, 2 * DAY, 400 * DAY] {
        let c = counter(Settings::default()).await;
        c.clock.advance(600);
        c.clock.set_system_offset(offset);
        let o = c.scan(1).await;
        assert_eq!(o.verdict, Verdict::Ok, "offset {offset}");
        assert_eq!(o.service_day, monday(), "offset {offset}");
        assert_eq!(o.scanned_at, monday_noon() + 600, "offset {offset}");

        let status = c.t.status().await.unwrap();
        let alarm = status
            .warnings
            .iter()
            .find(|w| w.code == "clock_wrong")
            .unwrap_or_else(|| panic!("offset {offset}: {:?}", status.warnings));
        assert!(
            alarm.message_ru.contains("Часы компьютера неверны"),
            "{alarm:?}"
        );
        assert!(
            alarm.message_kk.contains("Компьютер сағаты қате"),
            "{alarm:?}"
        );
        assert_eq!(status.service_day, monday());

        // The same child at the same counter: already served today, by trusted time.
        assert_eq!(c.scan(1).await.verdict, Verdict::AlreadyServed);
        assert_eq!(
            c.uploaded_meals().await,
            vec![(monday(), monday_noon() + 600)],
            "offset {offset}: the server gets the meal on the day it happened"
        );
    }
}

#[tokio::test]
async fn a_clock_ahead_does_not_refuse_the_child_on_the_next_real_day() {
    let c = counter(Settings::default()).await;
    // Two days ahead on Monday: the meal is Monday's, not Wednesday's.
    c.clock.set_system_offset(2 * DAY);
    assert_eq!(c.scan(2).await.service_day, monday());
    // Wednesday, the clock fixed: the child eats again.
    c.clock.advance(2 * DAY);
    c.clock.set_system_offset(0);
    let o = c.scan(2).await;
    assert_eq!(o.verdict, Verdict::Ok);
    assert_eq!(o.service_day, monday() + chrono::Days::new(2));
    assert!(c.warning_codes().await.is_empty());
}

#[tokio::test]
async fn after_a_reboot_an_untrustworthy_pc_clock_stops_serving_until_a_sync() {
    let settings = Settings {
        offline_budget_seconds: DAY,
        ..Settings::default()
    };
    let c = counter(settings.clone()).await;
    assert_eq!(c.scan(1).await.verdict, Verdict::Ok);
    // The next morning the PC is switched on with its clock a day behind: that is earlier than
    // the meal it already logged.
    c.clock.advance(DAY - 3 * 3600);
    c.clock.reboot();
    c.clock.set_system_offset(-DAY);
    let o = c.scan(2).await;
    assert_eq!(o.verdict, Verdict::ClockUntrusted);
    assert!(!o.serve);
    assert!(c.warning_codes().await.contains(&"clock_refused"));

    // A year ahead: beyond the offline budget.
    c.clock.set_system_offset(400 * DAY);
    assert_eq!(c.scan(2).await.verdict, Verdict::ClockUntrusted);
    // Two days ahead is also beyond this terminal's one-day budget.
    c.clock.set_system_offset(2 * DAY);
    assert_eq!(c.scan(2).await.verdict, Verdict::ClockUntrusted);

    // A sync gives it the server's time again: serving resumes on the right day even though
    // the PC's clock is still wrong.
    c.world.server_clock.set(c.clock.true_now());
    let t = &c.t;
    t.sync().await.unwrap();
    let o = c.scan(2).await;
    assert_eq!(o.verdict, Verdict::Ok);
    assert_eq!(o.service_day, monday() + chrono::Days::new(1));
    assert!(c.warning_codes().await.contains(&"clock_wrong"));

    let meals = c.uploaded_meals().await;
    assert_eq!(
        meals.iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![monday(), monday() + chrono::Days::new(1)],
        "no meal on a day the clock made up: {meals:?}"
    );
}

#[tokio::test]
async fn after_a_reboot_a_plausible_pc_clock_is_taken_and_carried_forward() {
    let c = counter(Settings::default()).await;
    assert_eq!(c.scan(1).await.verdict, Verdict::Ok);
    c.clock.advance(DAY);
    c.clock.reboot();
    let o = c.scan(1).await;
    assert_eq!(o.verdict, Verdict::Ok);
    assert_eq!(o.service_day, monday() + chrono::Days::new(1));
    // Set wrong after it was taken: only the alarm.
    c.clock.advance(60);
    c.clock.set_system_offset(-DAY);
    let o = c.scan(2).await;
    assert_eq!(o.verdict, Verdict::Ok);
    assert_eq!(o.service_day, monday() + chrono::Days::new(1));
    // A process started afterwards (a one-off `scan`) reads the same anchor from the data dir.
    let again = Terminal::open(
        c.t.data_dir(),
        Settings::default(),
        Arc::new(c.clock.clone()),
    )
    .await
    .unwrap();
    assert_eq!(again.now(), monday_noon() + DAY + 60);
}
