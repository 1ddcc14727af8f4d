//! The counting rule as a property: for random interleavings of scans, repeats, card serves,
//! forged serves, uploads and retries over several terminals, the counted meals are exactly the
//! distinct (voucher, day, meal kind) with a proven or card event, and no refused event counts.

use crate::fixtures::*;
use proptest::prelude::*;
use shared::calendar::ServiceDay;
use shared::verdict::Verdict;
use shared::wire::{ScanSource, TerminalEvent};
use std::collections::BTreeSet;
use uuid::Uuid;

const TERMINALS: usize = 3;
const VOUCHERS: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Served on a valid token.
    Proven,
    /// Served on a card.
    Card,
    /// Served with a token of another voucher (a forgery).
    Forged,
    /// The same token shown again: `already_served`, repeat.
    Repeat,
}

#[derive(Debug, Clone)]
struct Scan {
    terminal: usize,
    voucher: usize,
    /// Monday, Tuesday or Wednesday of the test week.
    day: i64,
    /// Minutes after 11:00.
    minute: i64,
    kind: Kind,
}

fn scan() -> impl Strategy<Value = Scan> {
    (
        0..TERMINALS,
        0..VOUCHERS,
        0i64..3,
        0i64..240,
        prop_oneof![
            4 => Just(Kind::Proven),
            2 => Just(Kind::Card),
            2 => Just(Kind::Forged),
            1 => Just(Kind::Repeat)
        ],
    )
        .prop_map(|(terminal, voucher, day, minute, kind)| Scan {
            terminal,
            voucher,
            day,
            minute,
            kind,
        })
}

/// Scans, then upload rounds: each round a terminal sends up to `n` of its pending events,
/// sometimes twice (a retry after a lost answer).
fn plan() -> impl Strategy<Value = (Vec<Scan>, Vec<(usize, usize, bool)>)> {
    (
        prop::collection::vec(scan(), 1..30),
        prop::collection::vec((0..TERMINALS, 1usize..8, any::<bool>()), 1..20),
    )
}

fn run(pg: bool, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    runner
        .run(&plan(), |(scans, rounds)| {
            rt.block_on(check(pg, scans, rounds));
            Ok(())
        })
        .unwrap();
}

async fn check(pg: bool, scans: Vec<Scan>, rounds: Vec<(usize, usize, bool)>) {
    let ts = wallet_server::testkit::state(pg).await;
    let state = &ts.state;
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
    for i in 0..TERMINALS {
        terminals.push(enroll(&app, state, BIN_A, &format!("T{i}")).await);
    }

    // Each terminal's log, in scan order of the plan; what must count.
    let mut logs: Vec<Vec<TerminalEvent>> = vec![Vec::new(); TERMINALS];
    let mut must_count: BTreeSet<(Uuid, String)> = BTreeSet::new();
    for sc in &scans {
        let t = &terminals[sc.terminal];
        let v = vouchers[sc.voucher];
        let at = MONDAY_NOON - 3600 + sc.day * 86_400 + sc.minute * 60;
        let seq = logs[sc.terminal].len() as i64 + 1;
        let mut e = ev(seq, at, Some(v), Verdict::Ok);
        match sc.kind {
            Kind::Proven => e.proof = Some(token_at(t, v, at)),
            Kind::Card => {
                e.source = ScanSource::Card;
                e.key_id = None;
            }
            Kind::Forged => {
                let other = vouchers[(sc.voucher + 1) % VOUCHERS];
                e.proof = Some(token_at(t, other, at));
            }
            Kind::Repeat => {
                e.verdict = Verdict::AlreadyServed;
                e.repeat = true;
            }
        }
        if matches!(sc.kind, Kind::Proven | Kind::Card) {
            must_count.insert((v, ServiceDay::from_unix(at).to_string()));
        }
        logs[sc.terminal].push(e);
    }

    // Uploads after the last scan day, in the planned rounds, then whatever is left.
    state.clock.set(MONDAY_NOON + 3 * 86_400);
    let mut sent = [0usize; TERMINALS];
    let mut send = |t: usize, n: usize| {
        let from = sent[t];
        let to = (from + n).min(logs[t].len());
        sent[t] = to;
        (from, to)
    };
    let mut batches: Vec<(usize, usize, usize, bool)> = Vec::new();
    for &(t, n, retry) in &rounds {
        let (from, to) = send(t, n);
        batches.push((t, from, to, retry));
    }
    for t in 0..TERMINALS {
        let (from, to) = send(t, usize::MAX / 2);
        batches.push((t, from, to, false));
    }
    for (t, from, to, retry) in batches {
        if from == to {
            continue;
        }
        for _ in 0..(1 + usize::from(retry)) {
            let (status, body) = upload_as(
                &app,
                &terminals[t],
                &logs[t][from..to],
                Some(env!("CARGO_PKG_VERSION")),
            )
            .await;
            assert_eq!(status, axum::http::StatusCode::OK, "{body}");
        }
    }

    let mut counted: BTreeSet<(Uuid, String)> = BTreeSet::new();
    let mut all = 0;
    for t in &terminals {
        for e in state.store.terminal_events(t.id()).await.unwrap() {
            all += 1;
            if e.verdict == "ok" && !e.duplicate && e.refusal.is_none() {
                let key = (
                    e.voucher_id.as_deref().unwrap().parse().unwrap(),
                    e.service_day.clone(),
                );
                assert!(counted.insert(key), "counted twice: {e:?}");
                assert!(
                    matches!(e.proof_class.as_deref(), Some("proven" | "card")),
                    "{e:?}"
                );
            }
            if e.refusal.is_some() {
                assert_eq!(e.proof_class.as_deref(), Some("refused"));
            }
        }
    }
    assert_eq!(all, scans.len(), "every scan stored once through retries");
    assert_eq!(counted, must_count);
    // The wallet sees the same meals.
    for v in &vouchers {
        let history = state.store.meal_history(&v.to_string(), 100).await.unwrap();
        let want = must_count.iter().filter(|(w, _)| w == v).count();
        assert_eq!(history.len(), want, "voucher {v}");
    }
    drop(ts);
}

#[test]
fn counted_meals_are_the_proven_and_card_ones_sqlite() {
    run(false, 24);
}

#[test]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
fn counted_meals_are_the_proven_and_card_ones_postgres() {
    run(true, 12);
}
