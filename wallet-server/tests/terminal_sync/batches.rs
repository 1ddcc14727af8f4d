//! Full-size batches (500 events, time-ordered ids as terminals make them): stored once through
//! re-uploads, meals served twice found within a batch, across batches and across terminals, and
//! a voucher's meal history read without a voucher-led index.

use crate::fixtures::*;
use crate::state_test;
use shared::verdict::Verdict;
use shared::wire::{EventAck, TerminalEvent};
use uuid::Uuid;
use wallet_server::AppState;

const BATCH: i64 = 500;
const PUPILS: usize = 20;

/// `BATCH` `ok` scans from `first_seq` on, a second apart from `start`, going round `vouchers`:
/// each voucher is scanned many times the same day.
fn batch(first_seq: i64, start: i64, vouchers: &[Uuid]) -> Vec<TerminalEvent> {
    (0..BATCH)
        .map(|i| {
            let at = start + i;
            let mut e = ev(
                first_seq + i,
                at,
                Some(vouchers[i as usize % vouchers.len()]),
                Verdict::Ok,
            );
            e.event_id =
                uuid::Builder::from_unix_timestamp_millis(at as u64 * 1000, &rand::random())
                    .into_uuid();
            e
        })
        .collect()
}

fn acked(r: (axum::http::StatusCode, serde_json::Value)) -> EventAck {
    assert_eq!(r.0, axum::http::StatusCode::OK, "{}", r.1);
    serde_json::from_value(r.1).unwrap()
}

state_test!(
    full_batches_count_each_meal_once,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let s = school(state, BIN_A, "Школа 1").await;
        let mut vouchers = Vec::new();
        for i in 0..PUPILS {
            let v = voucher(state, &s, &format!("iin-{i}"), "Али", "Ахметов", true).await;
            vouchers.push(v.uuid());
        }
        let t1 = enroll(&app, state, BIN_A, "1").await;
        let t2 = enroll(&app, state, BIN_A, "2").await;
        let today = day(MONDAY_NOON);
        let counted_today = || async {
            let events = state
                .store
                .school_events_on_day(s.code, &today)
                .await
                .unwrap();
            let mut counted: Vec<(String, String)> = events
                .iter()
                .inspect(|e| assert_eq!(e.refusal, None, "{e:?}"))
                .filter(|e| e.verdict == "ok" && !e.duplicate)
                .map(|e| (e.voucher_id.clone().unwrap(), e.terminal_id.clone()))
                .collect();
            counted.sort();
            (events.len(), counted)
        };

        // Terminal 1 scanned every pupil 25 times from 12:00: one meal each counts.
        let first = batch(1, MONDAY_NOON, &vouchers);
        let a = acked(upload(&app, &t1, &first).await);
        assert_eq!(
            (a.last_seq, a.stored, a.already_had),
            (BATCH, BATCH as u64, 0)
        );
        let (n, counted) = counted_today().await;
        assert_eq!((n, counted.len()), (BATCH as usize, PUPILS));
        assert!(counted.iter().all(|(_, t)| *t == t1.id().to_string()));

        // Terminal 2 was offline and served them all earlier: its first scans take the count.
        let earlier = batch(1, MONDAY_NOON - 3600, &vouchers);
        let a = acked(upload(&app, &t2, &earlier).await);
        assert_eq!((a.stored, a.already_had), (BATCH as u64, 0));
        let (n, counted) = counted_today().await;
        assert_eq!((n, counted.len()), (2 * BATCH as usize, PUPILS));
        assert!(counted.iter().all(|(_, t)| *t == t2.id().to_string()));

        // Re-uploads (lost answers) store nothing and change no flag.
        for (t, b) in [(&t1, &first), (&t2, &earlier)] {
            let a = acked(upload(&app, t, b).await);
            assert_eq!(
                (a.last_seq, a.stored, a.already_had),
                (BATCH, 0, BATCH as u64)
            );
        }
        assert_eq!(counted_today().await.1, counted);

        // A later batch of terminal 1 the same afternoon: all duplicates; the next day: new meals.
        let later = batch(BATCH + 1, MONDAY_NOON + 3600, &vouchers);
        acked(upload(&app, &t1, &later).await);
        assert_eq!(counted_today().await.1, counted);
        let tomorrow = MONDAY_NOON + 24 * 3600;
        let next = batch(2 * BATCH + 1, tomorrow, &vouchers);
        let a = acked(upload(&app, &t1, &next).await);
        assert_eq!(a.last_seq, 3 * BATCH);
        let next_day = state
            .store
            .school_events_on_day(s.code, &day(tomorrow))
            .await
            .unwrap();
        let counted_next = next_day
            .iter()
            .filter(|e| e.verdict == "ok" && !e.duplicate)
            .count();
        assert_eq!(counted_next, PUPILS);
        assert_eq!(state.store.terminal_event_count().await.unwrap(), 4 * BATCH);

        // A pupil's history lists the two counted meals, newest first, and no duplicate.
        let history = state
            .store
            .meal_history(&vouchers[0].to_string(), 400)
            .await
            .unwrap();
        let days: Vec<&str> = history.iter().map(|m| m.service_day.as_str()).collect();
        assert_eq!(days, vec![day(tomorrow), today.clone()]);
        assert_eq!(history[1].scanned_at, MONDAY_NOON - 3600);
    }
);
