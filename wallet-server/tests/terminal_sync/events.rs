//! Event upload: exactly once through retries, overlaps, gaps and a server restart; duplicates
//! across terminals; clear refusals that write nothing.

use crate::fixtures::*;
use crate::state_test;
use axum::http::StatusCode;
use shared::verdict::Verdict;
use shared::wire::{EventAck, TerminalEvent};
use wallet_server::store::terminals::StoredEvent;
use wallet_server::AppState;

fn ack(status: StatusCode, body: serde_json::Value) -> EventAck {
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

fn log(n: i64, voucher: uuid::Uuid) -> Vec<TerminalEvent> {
    (1..=n)
        .map(|seq| {
            let verdict = if seq == 1 {
                Verdict::Ok
            } else {
                Verdict::AlreadyServed
            };
            ev(seq, MONDAY_NOON + seq, Some(voucher), verdict)
        })
        .collect()
}

state_test!(uploads_are_idempotent, |state: AppState| async move {
    let app = app(&state);
    let state = &state;
    let s = school(state, BIN_A, "Школа 1").await;
    let v = voucher(state, &s, "iin-1", "Али", "Ахметов", true).await;
    let t = enroll(&app, state, BIN_A, "1").await;
    let events = log(12, v.uuid());

    let (st, body) = upload(&app, &t, &events[..5]).await;
    assert_eq!(
        ack(st, body),
        EventAck {
            last_seq: 5,
            stored: 5,
            already_had: 0,
            refused: 0,
        }
    );
    // A retry of the same batch (the answer was lost): nothing new.
    let (st, body) = upload(&app, &t, &events[..5]).await;
    assert_eq!(
        ack(st, body),
        EventAck {
            last_seq: 5,
            stored: 0,
            already_had: 5,
            refused: 0,
        }
    );
    // Overlap: 4..8.
    let (st, body) = upload(&app, &t, &events[3..8]).await;
    assert_eq!(
        ack(st, body),
        EventAck {
            last_seq: 8,
            stored: 3,
            already_had: 2,
            refused: 0,
        }
    );
    // A gap: 10..12 stored, but last_seq stays at the contiguous 8 ...
    let (st, body) = upload(&app, &t, &events[9..12]).await;
    assert_eq!(
        ack(st, body),
        EventAck {
            last_seq: 8,
            stored: 3,
            already_had: 0,
            refused: 0,
        }
    );
    // ... until 9 arrives.
    let (st, body) = upload(&app, &t, &events[8..9]).await;
    assert_eq!(
        ack(st, body),
        EventAck {
            last_seq: 12,
            stored: 1,
            already_had: 0,
            refused: 0,
        }
    );
    // An empty batch tells the terminal where the server is.
    let (st, body) = upload(&app, &t, &[]).await;
    assert_eq!(
        ack(st, body),
        EventAck {
            last_seq: 12,
            stored: 0,
            already_had: 0,
            refused: 0,
        }
    );

    let stored = state.store.terminal_events(t.id()).await.unwrap();
    assert_eq!(stored.len(), 12);
    for (e, got) in events.iter().zip(&stored) {
        assert_eq!(got.seq, e.seq);
        assert_eq!(got.event_id, e.event_id.to_string());
        assert_eq!(got.verdict, e.verdict.code());
        assert_eq!(got.scanned_at, e.scanned_at);
        assert_eq!(got.service_day, e.service_day.to_string());
        assert_eq!(got.meal_kind, "lunch");
        assert_eq!(got.source, "qr");
        assert_eq!(got.key_id.as_deref(), Some("0a1b2c3d"));
        assert_eq!(got.school_code, s.code);
        // The upload came after the scans it reports.
        assert!(got.received_at >= got.scanned_at);
        assert!(!got.duplicate && !got.foreign_voucher);
        assert_eq!(got.refusal, None);
        let class = (e.verdict == Verdict::Ok).then_some("proven");
        assert_eq!(got.proof_class.as_deref(), class);
    }
    let info = state.store.terminals_of_school(s.code).await.unwrap();
    assert_eq!(info[0].last_seq, 12);
});

state_test!(
    a_reused_seq_is_refused_and_nothing_written,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let s = school(state, BIN_A, "Школа 1").await;
        let v = voucher(state, &s, "iin-1", "Али", "Ахметов", true).await;
        let t = enroll(&app, state, BIN_A, "1").await;
        let t2 = enroll(&app, state, BIN_A, "2").await;
        let events = log(3, v.uuid());
        ack_ok(upload(&app, &t, &events).await);

        // A terminal whose log was reset sends seq 3 again with a new event: refused whole.
        let replay = log(4, v.uuid());
        let (status, body) = upload(&app, &t, &replay[2..4]).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "seq_conflict");
        assert!(body["error"]["message"].as_str().unwrap().contains("seq 3"));
        assert_eq!(state.store.terminal_events(t.id()).await.unwrap().len(), 3);

        // Another terminal sending one of these event ids: refused whole.
        let mut stolen = ev(1, MONDAY_NOON, None, Verdict::BadFormat);
        stolen.event_id = events[0].event_id;
        let fresh = ev(2, MONDAY_NOON, None, Verdict::BadFormat);
        let (status, body) = upload(&app, &t2, &[fresh, stolen]).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "event_id_conflict");
        assert!(state
            .store
            .terminal_events(t2.id())
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            state
                .store
                .terminal(t2.id())
                .await
                .unwrap()
                .unwrap()
                .last_seq,
            0
        );
        assert_eq!(
            state
                .store
                .terminal(t.id())
                .await
                .unwrap()
                .unwrap()
                .last_seq,
            3
        );
    }
);

fn ack_ok((status, body): (StatusCode, serde_json::Value)) -> EventAck {
    ack(status, body)
}

state_test!(
    invalid_batches_write_nothing,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let s = school(state, BIN_A, "Школа 1").await;
        let v = voucher(state, &s, "iin-1", "Али", "Ахметов", true).await;
        let t = enroll(&app, state, BIN_A, "1").await;
        let good = ev(1, MONDAY_NOON, Some(v.uuid()), Verdict::Ok);
        let mut no_voucher = ev(2, MONDAY_NOON, None, Verdict::Ok);
        no_voucher.voucher_id = None;
        let (status, body) = upload(&app, &t, &[good.clone(), no_voucher]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "invalid_event");
        assert!(body["error"]["message"].as_str().unwrap().contains("seq 2"));

        let big: Vec<_> = (1..=1001)
            .map(|seq| ev(seq, MONDAY_NOON, None, Verdict::BadFormat))
            .collect();
        let (status, body) = upload(&app, &t, &big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["error"]["code"], "batch_too_large");

        let mut wrong_verdict = serde_json::to_value(&good).unwrap();
        wrong_verdict["verdict"] = "free_lunch".into();
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/terminal/events",
            Some(&t.auth),
            Some(serde_json::json!({"events": [wrong_verdict]})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(state.store.terminal_event_count().await.unwrap(), 0);
        // The good event alone goes in.
        assert_eq!(ack_ok(upload(&app, &t, &[good]).await).stored, 1);
    }
);

state_test!(
    restart_then_reupload_stores_exactly_once,
    |state: AppState| async move {
        let app1 = app(&state);
        let s = school(&state, BIN_A, "Школа 1").await;
        let v = voucher(&state, &s, "iin-1", "Али", "Ахметов", true).await;
        let t = enroll(&app1, &state, BIN_A, "1").await;
        let events = log(700, v.uuid());
        // The server commits the first batch, then dies before the terminal hears back.
        ack_ok(upload(&app1, &t, &events[..500]).await);
        let paths = state.paths.clone();
        drop(app1);
        drop(state);

        // A new process: the store and keys opened again from the same database and data dir.
        let store = wallet_server::store::connect(&paths.database_url)
            .await
            .unwrap();
        let restarted = AppState::assemble(
            store,
            wallet_server::config::Settings::default(),
            (*paths).clone(),
            wallet_server::clock::Clock::manual(MONDAY_NOON + 1000),
            false,
        )
        .await
        .unwrap();
        let app2 = wallet_server::app(restarted.clone());
        // The terminal still thinks nothing was acknowledged and sends everything again.
        let first = ack_ok(upload(&app2, &t, &events[..500]).await);
        assert_eq!(
            first,
            EventAck {
                last_seq: 500,
                stored: 0,
                already_had: 500,
                refused: 0,
            }
        );
        let second = ack_ok(upload(&app2, &t, &events[500..]).await);
        assert_eq!(
            second,
            EventAck {
                last_seq: 700,
                stored: 200,
                already_had: 0,
                refused: 0,
            }
        );
        let stored = restarted.store.terminal_events(t.id()).await.unwrap();
        assert_eq!(stored.len(), 700);
        assert_eq!(
            stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=700).collect::<Vec<_>>()
        );
        for (e, got) in events.iter().zip(&stored) {
            assert_eq!(got.event_id, e.event_id.to_string());
        }
    }
);

fn counted(events: &[StoredEvent]) -> Vec<&StoredEvent> {
    events
        .iter()
        .filter(|e| e.verdict == "ok" && !e.duplicate)
        .collect()
}

state_test!(
    two_terminals_one_meal_one_duplicate,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let s = school(state, BIN_A, "Школа 1").await;
        let v = voucher(state, &s, "iin-1", "Али", "Ахметов", true).await;
        let other = voucher(state, &s, "iin-2", "Бота", "Бекова", true).await;
        let t1 = enroll(&app, state, BIN_A, "1").await;
        let t2 = enroll(&app, state, BIN_A, "2").await;
        let today = day(MONDAY_NOON);

        // Both offline; terminal 1 served at 12:10 and syncs first, terminal 2 served at 12:00.
        let late = ev(1, MONDAY_NOON + 600, Some(v.uuid()), Verdict::Ok);
        ack_ok(upload(&app, &t1, std::slice::from_ref(&late)).await);
        let day_events = state
            .store
            .school_events_on_day(s.code, &today)
            .await
            .unwrap();
        assert_eq!(counted(&day_events).len(), 1);
        ack_ok(
            upload(
                &app,
                &t2,
                &[
                    ev(1, MONDAY_NOON, Some(v.uuid()), Verdict::Ok),
                    ev(2, MONDAY_NOON + 30, Some(other.uuid()), Verdict::Ok),
                ],
            )
            .await,
        );

        let day_events = state
            .store
            .school_events_on_day(s.code, &today)
            .await
            .unwrap();
        assert_eq!(day_events.len(), 3, "both kept");
        let for_v: Vec<_> = day_events
            .iter()
            .filter(|e| e.voucher_id.as_deref() == Some(&v.id[..]))
            .collect();
        assert_eq!(for_v.len(), 2);
        let counted_v: Vec<_> = for_v.iter().filter(|e| !e.duplicate).collect();
        assert_eq!(counted_v.len(), 1, "one meal counted");
        assert_eq!(
            counted_v[0].terminal_id,
            t2.id().to_string(),
            "the earlier scan counts"
        );
        let dup: Vec<_> = for_v.iter().filter(|e| e.duplicate).collect();
        assert_eq!(
            dup[0].terminal_id,
            t1.id().to_string(),
            "the later one is the duplicate"
        );
        // The other voucher's meal is untouched.
        assert_eq!(counted(&day_events).len(), 2);

        // Re-uploads change nothing; a third later scan is a duplicate too.
        let again = ack_ok(upload(&app, &t1, &[late]).await);
        assert_eq!((again.stored, again.already_had), (0, 1));
        let t3 = enroll(&app, state, BIN_A, "3").await;
        ack_ok(
            upload(
                &app,
                &t3,
                &[ev(1, MONDAY_NOON + 900, Some(v.uuid()), Verdict::Ok)],
            )
            .await,
        );
        let day_events = state
            .store
            .school_events_on_day(s.code, &today)
            .await
            .unwrap();
        assert_eq!(day_events.len(), 4);
        assert_eq!(counted(&day_events).len(), 2);
        // The next day is a new meal.
        let tomorrow = MONDAY_NOON + 24 * 3600;
        ack_ok(upload(&app, &t1, &[ev(2, tomorrow, Some(v.uuid()), Verdict::Ok)]).await);
        let next = state
            .store
            .school_events_on_day(s.code, &day(tomorrow))
            .await
            .unwrap();
        assert_eq!(counted(&next).len(), 1);
    }
);

state_test!(
    events_naming_other_schools_vouchers_are_kept_and_flagged,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        school(state, BIN_A, "Школа 1").await;
        let b = school(state, BIN_B, "Школа 2").await;
        let theirs = voucher(state, &b, "iin-b", "Бота", "Бекова", true).await;
        let t = enroll(&app, state, BIN_A, "1").await;
        let unknown = uuid::Uuid::new_v4();
        ack_ok(
            upload(
                &app,
                &t,
                &[
                    ev(1, MONDAY_NOON, Some(theirs.uuid()), Verdict::WrongSchool),
                    ev(2, MONDAY_NOON, Some(unknown), Verdict::UnknownVoucher),
                    ev(3, MONDAY_NOON, None, Verdict::BadFormat),
                ],
            )
            .await,
        );
        let stored = state.store.terminal_events(t.id()).await.unwrap();
        assert_eq!(
            stored.iter().map(|e| e.foreign_voucher).collect::<Vec<_>>(),
            vec![true, true, false]
        );
    }
);
