//! Proof of each meal: with only a terminal's credential, forged served events are stored
//! `refused` with their reason, absent from wallet history, school totals and NOBD, and listed
//! under anomalies; honest events around them count as before.

use crate::fixtures::*;
use crate::state_test;
use axum::http::StatusCode;
use shared::calendar::ServiceDay;
use shared::verdict::Verdict;
use shared::wire::{EventAck, ScanSource, TerminalEvent};
use std::collections::BTreeMap;
use uuid::Uuid;
use wallet_server::store::school_view::MealFilter;
use wallet_server::AppState;

const SUNDAY_NOON: i64 = MONDAY_NOON - 86_400;
/// 2021-11-22 12:00 local, a Monday five school years ago.
const MONDAY_2021: i64 = MONDAY_NOON - 5 * 364 * 86_400;

fn signed(t: &Enrolled, voucher: Uuid, school_code: u32, issued: i64, expires: i64) -> String {
    shared::token::sign(
        &shared::token::TokenRequest {
            voucher_id: voucher,
            school_code,
            issued_at: issued as u32,
            expires_at: expires as u32,
        },
        &t.signer,
    )
}

fn served(seq: i64, at: i64, voucher: Uuid, proof: Option<String>) -> TerminalEvent {
    let mut e = ev(seq, at, Some(voucher), Verdict::Ok);
    e.proof = proof;
    e
}

fn ack(r: (StatusCode, serde_json::Value)) -> EventAck {
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    serde_json::from_value(r.1).unwrap()
}

state_test!(
    forged_serves_are_refused_and_counted_nowhere,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let a = school(state, BIN_A, "Школа 1").await;
        let b = school(state, BIN_B, "Школа 2").await;
        let honest = voucher(state, &a, "iin-1", "Айгерим", "Ахметова", true)
            .await
            .uuid();
        let other = voucher(state, &a, "iin-2", "Бола", "Болатов", true)
            .await
            .uuid();
        let carded = voucher(state, &a, "iin-3", "Дана", "Ержанова", true)
            .await
            .uuid();
        let issued = voucher(state, &a, "iin-4", "Ерлан", "Ерланов", false)
            .await
            .uuid();
        let elsewhere = voucher(state, &b, "iin-5", "Жан", "Жанов", true)
            .await
            .uuid();
        let t = enroll(&app, state, BIN_A, "Асхана 1").await;
        let code = t.resp.school_code;
        let b_code = u32::try_from(b.code).unwrap();
        let token = |v, at: i64| signed(&t, v, code, at - 60, at + 540);
        let mut bad_signature = token(honest, MONDAY_NOON - 600).into_bytes();
        bad_signature[100] = if bad_signature[100] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let bad_signature = String::from_utf8(bad_signature).unwrap();

        // (event, the refusal it must get; None = counts)
        let mut card = ev(0, MONDAY_NOON + 5, Some(carded), Verdict::Ok);
        card.source = ScanSource::Card;
        card.key_id = None;
        let mut repeat = ev(0, MONDAY_NOON + 30, Some(honest), Verdict::AlreadyServed);
        repeat.repeat = true;
        let cases: Vec<(TerminalEvent, Option<&str>)> = vec![
            // Earlier than the honest meal of the same voucher: must not take its place.
            (
                served(0, MONDAY_NOON - 600, honest, Some(bad_signature)),
                Some("bad_proof"),
            ),
            (
                served(0, MONDAY_NOON, honest, Some(token(honest, MONDAY_NOON))),
                None,
            ),
            (card, None),
            (repeat, None),
            (
                served(0, MONDAY_NOON, Uuid::new_v4(), None),
                Some("no_proof"),
            ),
            {
                let unknown = Uuid::new_v4();
                (
                    served(0, MONDAY_NOON, unknown, Some(token(unknown, MONDAY_NOON))),
                    Some("unknown_voucher"),
                )
            },
            (
                served(
                    0,
                    MONDAY_NOON,
                    elsewhere,
                    Some(token(elsewhere, MONDAY_NOON)),
                ),
                Some("other_school_voucher"),
            ),
            (
                served(
                    0,
                    MONDAY_NOON,
                    elsewhere,
                    Some(signed(
                        &t,
                        elsewhere,
                        b_code,
                        MONDAY_NOON - 60,
                        MONDAY_NOON + 540,
                    )),
                ),
                Some("proof_other_school"),
            ),
            (
                served(0, MONDAY_NOON, other, Some(token(honest, MONDAY_NOON))),
                Some("proof_other_voucher"),
            ),
            (
                served(
                    0,
                    MONDAY_NOON,
                    other,
                    Some(signed(
                        &t,
                        other,
                        code,
                        MONDAY_NOON - 7200,
                        MONDAY_NOON - 6600,
                    )),
                ),
                Some("outside_token_validity"),
            ),
            (
                served(0, SUNDAY_NOON, other, Some(token(other, SUNDAY_NOON))),
                Some("not_a_school_day"),
            ),
            (
                served(0, MONDAY_2021, other, Some(token(other, MONDAY_2021))),
                Some("voucher_inactive"),
            ),
            (
                served(
                    0,
                    MONDAY_NOON + 86_400,
                    other,
                    Some(token(other, MONDAY_NOON + 86_400)),
                ),
                Some("in_future"),
            ),
            (
                served(0, MONDAY_NOON, issued, Some(token(issued, MONDAY_NOON))),
                Some("voucher_inactive"),
            ),
        ];
        let mut events: Vec<TerminalEvent> = Vec::new();
        for (i, (e, _)) in cases.iter().enumerate() {
            let mut e = e.clone();
            e.seq = i as i64 + 1;
            e.event_id = Uuid::new_v4();
            events.push(e);
        }
        // Seqs 15 and 16 never arrive: a gap the school must see.
        let mut late = ev(17, MONDAY_NOON + 60, None, Verdict::BadFormat);
        late.key_id = None;
        events.push(late);

        state.clock.set(MONDAY_NOON + 3600);
        let refused_expected = cases.iter().filter(|(_, r)| r.is_some()).count() as u64;
        let got = ack(upload_as(&app, &t, &events, Some(env!("CARGO_PKG_VERSION"))).await);
        assert_eq!(
            (got.stored, got.refused),
            (events.len() as u64, refused_expected)
        );
        assert_eq!(got.last_seq, cases.len() as i64, "a gap stops last_seq");

        let stored = state.store.terminal_events(t.id()).await.unwrap();
        for (e, (_, refusal)) in stored.iter().zip(&cases) {
            assert_eq!(e.refusal.as_deref(), *refusal, "seq {}: {e:?}", e.seq);
            let class = match (e.verdict.as_str(), refusal, e.source.as_str()) {
                ("ok", Some(_), _) => Some("refused"),
                ("ok", None, "card") => Some("card"),
                ("ok", None, _) => Some("proven"),
                _ => None,
            };
            assert_eq!(e.proof_class.as_deref(), class, "seq {}", e.seq);
        }

        // Wallet history: the honest and the card meal, nothing of the forgeries.
        let history =
            |v: Uuid| async move { state.store.meal_history(&v.to_string(), 100).await.unwrap() };
        assert_eq!(history(honest).await.len(), 1);
        assert_eq!(history(honest).await[0].scanned_at, MONDAY_NOON);
        assert_eq!(history(carded).await.len(), 1);
        for v in [other, issued, elsewhere] {
            assert!(history(v).await.is_empty(), "{v}");
        }

        // School totals: two meals on Monday, none on Sunday.
        let filter = MealFilter {
            school_code: a.code,
            from: ServiceDay::from_unix(SUNDAY_NOON).to_string(),
            to: ServiceDay::from_unix(MONDAY_NOON + 86_400).to_string(),
            class: None,
            voucher: None,
        };
        let by_day = state.store.meals_by_day(&filter).await.unwrap();
        let meals: BTreeMap<String, i64> = by_day
            .iter()
            .map(|d| (d.service_day.clone(), d.meals))
            .collect();
        assert_eq!(meals, BTreeMap::from([(day(MONDAY_NOON), 2)]));
        let rejected = state.store.rejected_scans(&filter, 100).await.unwrap();
        assert!(
            rejected.iter().all(|r| r.verdict != "already_served"),
            "a repeat is not a second attempt: {rejected:?}"
        );

        // NOBD: two meals by class of proof, the refusals apart.
        let monday = ServiceDay::from_unix(MONDAY_NOON).0;
        let r = &nobd_content(state, &a, monday).await;
        assert_eq!(r.meals.served_total, 2);
        assert_eq!((r.meals.by_proof.proven, r.meals.by_proof.card), (1, 1));
        let monday_refusals: BTreeMap<String, i64> = cases
            .iter()
            .filter(|(e, r)| r.is_some() && e.service_day == monday)
            .fold(BTreeMap::new(), |mut m, (_, r)| {
                *m.entry(r.unwrap().to_owned()).or_insert(0) += 1;
                m
            });
        assert_eq!(r.refused_events.by_reason, monday_refusals);
        assert_eq!(
            r.rejected_scans.by_verdict["already_served"], 0,
            "repeats are not rejections to report"
        );

        // Anomalies: every refusal, the gap, the card share, the repeat apart.
        let an = state
            .store
            .anomalies(a.code, "2000-01-01", "2100-01-01", 100)
            .await
            .unwrap();
        let total: i64 = an.refused_by_reason.iter().map(|r| r.events).sum();
        assert_eq!(total as u64, refused_expected);
        assert_eq!(an.refused.len() as u64, refused_expected);
        assert_eq!(
            an.seq_gaps
                .iter()
                .map(|g| (g.from_seq, g.to_seq))
                .collect::<Vec<_>>(),
            vec![(15, 16)]
        );
        assert_eq!(an.card_share.len(), 1);
        assert_eq!((an.card_share[0].served, an.card_share[0].card), (2, 1));
        assert_eq!(
            (an.second_scans.repeats, an.second_scans.second_attempts),
            (1, 0)
        );

        // The answer of `GET /api/v1/school/schools/{bin}/anomalies` is this value flattened;
        // who may call it is in school_review's access matrix.
        let json = serde_json::to_value(&an).unwrap();
        assert_eq!(
            json["refused"].as_array().unwrap().len() as u64,
            refused_expected
        );
        assert_eq!(json["seq_gaps"][0]["from_seq"], 15);
    }
);

state_test!(
    terminals_without_proofs_must_upgrade_and_lose_nothing,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let a = school(state, BIN_A, "Школа 1").await;
        let v = voucher(state, &a, "iin-1", "Айгерим", "Ахметова", true)
            .await
            .uuid();
        let t = enroll(&app, state, BIN_A, "Асхана 1").await;
        state.clock.set(MONDAY_NOON + 3600);
        let meal = served(1, MONDAY_NOON, v, None);
        for version in [None, Some("0.1.0"), Some("not-a-version")] {
            let (status, body) = upload_as(&app, &t, std::slice::from_ref(&meal), version).await;
            assert_eq!(status, StatusCode::UPGRADE_REQUIRED, "{version:?}: {body}");
            assert_eq!(body["error"]["code"], "terminal_upgrade_required");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(shared::wire::PROOF_REQUIRED_SINCE),
                "{message}"
            );
            assert!(state
                .store
                .terminal_events(t.id())
                .await
                .unwrap()
                .is_empty());
        }
        let flagged = state.store.terminal(t.id()).await.unwrap().unwrap();
        assert!(flagged.upgrade_required_at.is_some());
        assert_eq!(flagged.version.as_deref(), Some("not-a-version"));

        // Rejections alone carry no meal and upload from any version.
        let (status, body) = upload_as(
            &app,
            &t,
            &[ev(1, MONDAY_NOON, None, Verdict::BadFormat)],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // After the upgrade the same meal (with its proof) counts, and the flag clears.
        let (status, body) = upload(&app, &t, &[served(2, MONDAY_NOON, v, None)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            state
                .store
                .meal_history(&v.to_string(), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        let upgraded = state.store.terminal(t.id()).await.unwrap().unwrap();
        assert_eq!(upgraded.upgrade_required_at, None);
        assert_eq!(upgraded.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    }
);

// Events a wrong clock stamped: a card meal from a terminal that dates meals by its PC clock,
// uploaded with that clock a day behind, would land on the day before; an event whose service
// day is not the local day of its time was stamped by something else than the clock it names.
// Both are stored refused and counted nowhere; the same card meal from that terminal with a
// clock that agrees, and from a terminal on trusted time whatever its PC clock says, count.
state_test!(
    wrongly_stamped_events_are_flagged_not_counted,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let a = school(state, BIN_A, "Школа 1").await;
        let mut vouchers = Vec::new();
        for n in 1..=4 {
            let iin = format!("iin-{n}");
            vouchers.push(
                voucher(state, &a, &iin, "Бала", "Балаев", true)
                    .await
                    .uuid(),
            );
        }
        let t = enroll(&app, state, BIN_A, "Асхана 1").await;
        let tuesday_noon = MONDAY_NOON + 86_400;
        let now = tuesday_noon + 3600;
        state.clock.set(now);
        let card = |seq: i64, at: i64, v: Uuid| {
            let mut e = ev(seq, at, Some(v), Verdict::Ok);
            e.source = ScanSource::Card;
            e.key_id = None;
            e
        };
        let send = |events: Vec<TerminalEvent>, version: &'static str, clock: i64| {
            let app = app.clone();
            let auth = t.auth.clone();
            async move {
                let clock = clock.to_string();
                let headers = [
                    (shared::wire::TERMINAL_VERSION_HEADER, version),
                    ("X-Terminal-Time", clock.as_str()),
                ];
                let body = serde_json::json!({ "events": events }).to_string();
                let (status, body) = call_raw(
                    &app,
                    "POST",
                    "/api/v1/terminal/events",
                    Some(&auth),
                    &headers,
                    Some(body.into_bytes()),
                )
                .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                serde_json::from_value::<EventAck>(body).unwrap()
            }
        };

        // A terminal from before trusted time, its clock a day behind: Tuesday's card meal is
        // stamped Monday noon, a valid-looking meal on a school day.
        let old = "0.1.0";
        let ack = send(vec![card(1, MONDAY_NOON, vouchers[0])], old, now - 86_400).await;
        assert_eq!((ack.stored, ack.refused), (1, 1));
        // The same terminal with its clock a minute off: the card meal counts.
        let ack = send(vec![card(2, tuesday_noon, vouchers[1])], old, now + 60).await;
        assert_eq!((ack.stored, ack.refused), (1, 0));
        // A current terminal dates meals by trusted time: its PC clock does not matter.
        let current = env!("CARGO_PKG_VERSION");
        let mut mismatched = with_proof(
            &t,
            &ev(4, tuesday_noon + 120, Some(vouchers[3]), Verdict::Ok),
        );
        mismatched.service_day = ServiceDay::from_unix(MONDAY_NOON).date();
        let ack = send(
            vec![card(3, tuesday_noon + 60, vouchers[2]), mismatched],
            current,
            now - 86_400,
        )
        .await;
        assert_eq!((ack.stored, ack.refused), (2, 1));

        let stored = state.store.terminal_events(t.id()).await.unwrap();
        let refusals: Vec<(i64, Option<&str>)> = stored
            .iter()
            .map(|e| (e.seq, e.refusal.as_deref()))
            .collect();
        assert_eq!(
            refusals,
            [
                (1, Some("clock_offset")),
                (2, None),
                (3, None),
                (4, Some("day_mismatch"))
            ]
        );

        // Counted: Tuesday's two card meals; Monday has none.
        let filter = MealFilter {
            school_code: a.code,
            from: day(MONDAY_NOON),
            to: day(tuesday_noon),
            class: None,
            voucher: None,
        };
        let by_day: BTreeMap<String, i64> = state
            .store
            .meals_by_day(&filter)
            .await
            .unwrap()
            .iter()
            .map(|d| (d.service_day.clone(), d.meals))
            .collect();
        assert_eq!(by_day, BTreeMap::from([(day(tuesday_noon), 2)]));
        for v in [vouchers[0], vouchers[3]] {
            let history = state.store.meal_history(&v.to_string(), 100).await.unwrap();
            assert!(history.is_empty(), "{v}: {history:?}");
        }
        let monday = nobd_content(state, &a, ServiceDay::from_unix(MONDAY_NOON).0).await;
        assert_eq!(monday.meals.served_total, 0);
        assert_eq!(
            monday.refused_events.by_reason,
            BTreeMap::from([
                ("clock_offset".to_owned(), 1),
                ("day_mismatch".to_owned(), 1)
            ])
        );
        let tuesday = nobd_content(state, &a, ServiceDay::from_unix(tuesday_noon).0).await;
        assert_eq!(tuesday.meals.served_total, 2);
    }
);
