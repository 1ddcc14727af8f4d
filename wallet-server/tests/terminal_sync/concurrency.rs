//! Several terminals uploading the same meals at once: exactly one counted per (voucher, day,
//! meal kind), and always the earliest scan — on PostgreSQL with real concurrency.

use crate::fixtures::*;
use crate::state_test;
use rand::{Rng, SeedableRng};
use shared::verdict::Verdict;
use shared::wire::TerminalEvent;
use std::collections::HashMap;
use wallet_server::AppState;

const TERMINALS: usize = 4;
const VOUCHERS: usize = 40;

state_test!(
    concurrent_uploads_count_each_meal_once,
    |state: AppState| async move {
        race(&state, &[BIN_A; TERMINALS]).await;
    }
);

// Terminals of two schools naming the same vouchers (a phone shown at the wrong school): their
// uploads do not take turns. The other school's serves are refused (the voucher is not its
// school's) and never take the count from the real ones.
state_test!(
    concurrent_uploads_across_schools_count_each_meal_once,
    |state: AppState| async move {
        school(&state, BIN_B, "Школа 2").await;
        race(&state, &[BIN_A, BIN_B, BIN_A, BIN_B]).await;
    }
);

async fn race(state: &AppState, bins: &[&str]) {
    let app = app(state);
    let s = school(state, BIN_A, "Школа 1").await;
    let mut vouchers = Vec::new();
    for i in 0..VOUCHERS {
        vouchers.push(
            voucher(state, &s, &format!("iin-{i}"), "Имя", "Фамилия", true)
                .await
                .uuid(),
        );
    }
    let mut terminals = Vec::new();
    for (i, bin) in bins.iter().enumerate() {
        terminals.push(enroll(&app, state, bin, &format!("T{i}")).await);
    }
    // Uploads come after the lunch hour they report.
    state.clock.set(MONDAY_NOON + 3600);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Every terminal served every voucher once, at random minutes, in random order, uploaded
    // in two batches; all terminals upload at the same time.
    let mut logs: Vec<Vec<TerminalEvent>> = Vec::new();
    for _ in 0..TERMINALS {
        let mut order = vouchers.clone();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        logs.push(
            order
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    ev(
                        i as i64 + 1,
                        MONDAY_NOON + rng.gen_range(0..3600),
                        Some(*v),
                        Verdict::Ok,
                    )
                })
                .collect(),
        );
    }
    let mut tasks = Vec::new();
    for (t, log) in terminals.iter().zip(&logs) {
        for half in [&log[..VOUCHERS / 2], &log[VOUCHERS / 2..]] {
            let (app, auth) = (app.clone(), t.auth.clone());
            let events: Vec<TerminalEvent> = half.iter().map(|e| with_proof(t, e)).collect();
            let body = serde_json::json!({ "events": events })
                .to_string()
                .into_bytes();
            tasks.push(tokio::spawn(async move {
                call_raw(
                    &app,
                    "POST",
                    "/api/v1/terminal/events",
                    Some(&auth),
                    &[(
                        shared::wire::TERMINAL_VERSION_HEADER,
                        env!("CARGO_PKG_VERSION"),
                    )],
                    Some(body),
                )
                .await
            }));
        }
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, axum::http::StatusCode::OK, "{body}");
    }

    let mut stored = Vec::new();
    for school in state.store.schools().await.unwrap() {
        stored.extend(
            state
                .store
                .school_events_on_day(school.code, &day(MONDAY_NOON))
                .await
                .unwrap(),
        );
    }
    assert_eq!(stored.len(), TERMINALS * VOUCHERS);
    let mut by_voucher: HashMap<String, Vec<_>> = HashMap::new();
    for e in &stored {
        by_voucher
            .entry(e.voucher_id.clone().unwrap())
            .or_default()
            .push(e);
    }
    assert_eq!(by_voucher.len(), VOUCHERS);
    let own = |e: &&&wallet_server::store::terminals::StoredEvent| e.school_code == s.code;
    for e in stored.iter().filter(|e| e.school_code != s.code) {
        assert_eq!(e.refusal.as_deref(), Some("other_school_voucher"), "{e:?}");
    }
    for (v, events) in by_voucher {
        let events: Vec<_> = events.iter().filter(own).collect();
        assert!(events.iter().all(|e| e.refusal.is_none()), "{events:?}");
        let counted: Vec<_> = events.iter().filter(|e| !e.duplicate).collect();
        assert_eq!(counted.len(), 1, "voucher {v}: {events:?}");
        let earliest = events
            .iter()
            .min_by_key(|e| (e.scanned_at, e.terminal_id.clone(), e.seq))
            .unwrap();
        assert_eq!(
            counted[0].event_id, earliest.event_id,
            "voucher {v}: the earliest scan counts"
        );
    }
    for t in &terminals {
        let info = state.store.terminal(t.id()).await.unwrap().unwrap();
        assert_eq!(info.last_seq, VOUCHERS as i64);
    }
}
