//! Floods at the terminal arrive as few events with a `count` (docs/terminal.md, "Floods"):
//! stored as sent, summed wherever rejected scans are counted (scan figures, repeated
//! `already_served`, anomalies, NOBD), never in a meal count; `ok` always stands for one scan.

use crate::fixtures::*;
use crate::state_test;
use axum::http::StatusCode;
use shared::calendar::ServiceDay;
use shared::verdict::Verdict;
use shared::wire::EventAck;
use std::collections::BTreeMap;
use wallet_server::store::school_view::MealFilter;
use wallet_server::AppState;

state_test!(
    counts_are_stored_and_summed_where_rejections_are_counted,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let a = school(state, BIN_A, "Школа 1").await;
        let pupil = voucher(state, &a, "iin-1", "Айгерим", "Ахметова", true)
            .await
            .uuid();
        let t = enroll(&app, state, BIN_A, "Асхана 1").await;

        let served = ev(1, MONDAY_NOON, Some(pupil), Verdict::Ok);
        // A stuck scanner: one event for 10,000 identical lines.
        let mut stuck = ev(2, MONDAY_NOON + 1, None, Verdict::BadFormat);
        stuck.key_id = None;
        stuck.count = 10_000;
        // The token of the meal shown again and again by another child: 3 attempts in one.
        let mut again = ev(3, MONDAY_NOON + 400, Some(pupil), Verdict::AlreadyServed);
        again.count = 3;
        // A script past the per-minute cap: counted only.
        let mut capped = ev(4, MONDAY_NOON + 500, None, Verdict::Expired);
        capped.key_id = None;
        capped.count = 250;
        capped.capped = true;
        let plain = {
            let mut e = ev(5, MONDAY_NOON + 600, None, Verdict::BadFormat);
            e.key_id = None;
            e
        };
        let events = vec![served, stuck, again, capped, plain];
        let (status, body) = upload(&app, &t, &events).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ack: EventAck = serde_json::from_value(body).unwrap();
        assert_eq!((ack.stored, ack.last_seq), (5, 5));

        let stored = state.store.terminal_events(t.id()).await.unwrap();
        let got: Vec<(i64, i64, bool)> =
            stored.iter().map(|e| (e.seq, e.count, e.capped)).collect();
        assert_eq!(
            got,
            vec![
                (1, 1, false),
                (2, 10_000, false),
                (3, 3, false),
                (4, 250, true),
                (5, 1, false)
            ]
        );

        let monday = day(MONDAY_NOON);
        let filter = MealFilter {
            school_code: a.code,
            from: monday.clone(),
            to: monday.clone(),
            class: None,
            voucher: None,
        };
        // Meals: one, whatever the counts.
        let by_day = state.store.meals_by_day(&filter).await.unwrap();
        assert_eq!(by_day.iter().map(|d| d.meals).sum::<i64>(), 1);
        let verdicts: BTreeMap<String, i64> = state
            .store
            .verdict_counts(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.verdict, v.scans))
            .collect();
        assert_eq!(
            verdicts,
            BTreeMap::from([
                ("already_served".to_owned(), 3),
                ("bad_format".to_owned(), 10_001),
                ("expired".to_owned(), 250),
                ("ok".to_owned(), 1),
            ])
        );
        let rejected = state.store.rejected_scans(&filter, 100).await.unwrap();
        assert_eq!(rejected.len(), 4, "one row per event");
        assert_eq!(rejected.iter().map(|r| r.count).sum::<i64>(), 10_254);
        assert!(rejected.iter().any(|r| r.capped && r.count == 250));
        let second = rejected
            .iter()
            .find(|r| r.verdict == "already_served")
            .unwrap();
        assert_eq!(second.already_served_count, 3);
        let repeated = state
            .store
            .repeated_already_served(&filter, 2)
            .await
            .unwrap();
        assert_eq!(repeated.len(), 1);
        assert_eq!(repeated[0].scans, 3);

        let an = state
            .store
            .anomalies(a.code, &monday, &monday, 100)
            .await
            .unwrap();
        assert_eq!(an.capped_rejections, 250);
        assert_eq!(
            (an.second_scans.repeats, an.second_scans.second_attempts),
            (0, 3)
        );
        assert_eq!(an.card_share.len(), 0);

        let day = ServiceDay::from_unix(MONDAY_NOON).0;
        let r = &nobd_content(state, &a, day).await;
        assert_eq!(r.meals.served_total, 1);
        assert_eq!(r.rejected_scans.by_verdict["bad_format"], 10_001);
        assert_eq!(r.rejected_scans.by_verdict["already_served"], 3);
        assert_eq!(r.rejected_scans.by_verdict["expired"], 250);
        assert_eq!(r.rejected_scans.total, 10_254);

        // Sent again (a lost answer): nothing changes, counts included.
        let (status, body) = upload(&app, &t, &events).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let again: Vec<i64> = state
            .store
            .terminal_events(t.id())
            .await
            .unwrap()
            .iter()
            .map(|e| e.count)
            .collect();
        assert_eq!(again, vec![1, 10_000, 3, 250, 1]);
    }
);

state_test!(
    a_served_event_counts_one_scan_and_counts_are_bounded,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let a = school(state, BIN_A, "Школа 1").await;
        let pupil = voucher(state, &a, "iin-1", "Айгерим", "Ахметова", true)
            .await
            .uuid();
        let t = enroll(&app, state, BIN_A, "Асхана 1").await;
        let mut twice = ev(1, MONDAY_NOON, Some(pupil), Verdict::Ok);
        twice.count = 2;
        let mut capped_meal = ev(1, MONDAY_NOON, Some(pupil), Verdict::Ok);
        capped_meal.capped = true;
        let mut none = ev(1, MONDAY_NOON, None, Verdict::BadFormat);
        none.count = 0;
        for e in [twice, capped_meal, none] {
            let (status, body) = upload(&app, &t, &[e]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"]["code"], "invalid_event", "{body}");
        }
        assert!(state
            .store
            .terminal_events(t.id())
            .await
            .unwrap()
            .is_empty());
        // An old terminal sends no count at all: one scan per event.
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/terminal/events",
            Some(&t.auth),
            Some(serde_json::json!({"events": [{
                "event_id": uuid::Uuid::new_v4(),
                "seq": 1,
                "scanned_at": MONDAY_NOON,
                "service_day": day(MONDAY_NOON),
                "verdict": "bad_format",
                "source": "qr",
                "meal_kind": "lunch",
                "voucher_id": null,
                "key_id": null
            }]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let stored = state.store.terminal_events(t.id()).await.unwrap();
        assert_eq!((stored[0].count, stored[0].capped), (1, false));
    }
);
