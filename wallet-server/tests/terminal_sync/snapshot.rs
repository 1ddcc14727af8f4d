//! Snapshots: full and incremental by cursor, only the terminal's school, today's meals at other
//! terminals, credentials, revocation and the clock-offset header.

use crate::fixtures::*;
use crate::state_test;
use axum::http::StatusCode;
use shared::verdict::Verdict;
use shared::wire::VoucherStatus;
use wallet_server::lifecycle::RevokeReason;
use wallet_server::testkit;
use wallet_server::AppState;

state_test!(full_then_incremental, |state: AppState| async move {
    let app = app(&state);
    let state = &state;
    let s = school(state, BIN_A, "Школа 1").await;
    let active = voucher(state, &s, "iin-1", "Айгерим", "Сапарова", true).await;
    let issued = voucher(state, &s, "iin-2", "Нурлан", "Жумабаев", false).await;
    let t = enroll(&app, state, BIN_A, "Столовая 1").await;

    let full = snapshot(&app, &t, 0).await;
    assert!(full.full);
    assert_eq!(full.school_code as i64, s.code);
    assert_eq!(full.server_time, MONDAY_9AM);
    assert_eq!(full.trust_list, state.keys.active().trust);
    let year = state.settings.year_at(MONDAY_9AM).unwrap();
    assert_eq!(full.calendar, year);
    assert_eq!(
        full.next_calendar.as_ref().map(|y| y.label()).as_deref(),
        Some("2027-2028"),
        "the default calendar goes on"
    );
    assert_eq!(full.meal_windows, state.settings.windows());
    assert_eq!(full.vouchers.len(), 2);
    let a = full
        .vouchers
        .iter()
        .find(|v| v.voucher_id == active.uuid())
        .unwrap();
    assert_eq!(a.status, VoucherStatus::Active);
    assert_eq!(a.display_name, "Айгерим С.");
    assert_eq!(a.grade, 3);
    assert_eq!(a.class_letter, "Б");
    assert_eq!(a.card_number.as_deref(), Some("card-1"));
    assert_eq!(a.valid_from, year.start);
    assert_eq!(a.valid_to, year.end);
    // Issued but not activated: sent, so the terminal can say voucher_inactive.
    let i = full
        .vouchers
        .iter()
        .find(|v| v.voucher_id == issued.uuid())
        .unwrap();
    assert_eq!(i.status, VoucherStatus::Issued);
    // What a terminal must never hold.
    let text = serde_json::to_string(&full).unwrap();
    for secret in ["iin-1", "Сапарова", "asp", "+7701"] {
        assert!(!text.contains(secret), "snapshot leaks {secret}");
    }
    // The cursor covers every change so far.
    assert!(full.cursor >= issued.change_seq && full.cursor >= active.change_seq);

    // Nothing changed: an empty incremental snapshot with the same cursor.
    let same = snapshot(&app, &t, full.cursor).await;
    assert!(!same.full);
    assert!(same.vouchers.is_empty());
    assert_eq!(same.cursor, full.cursor);

    // Activation shows up after the cursor, alone.
    testkit::activate_voucher(state.store.as_ref(), &issued, MONDAY_9AM).await;
    let next = snapshot(&app, &t, full.cursor).await;
    assert!(!next.full);
    assert_eq!(next.vouchers.len(), 1);
    assert_eq!(next.vouchers[0].voucher_id, issued.uuid());
    assert_eq!(next.vouchers[0].status, VoucherStatus::Active);
    assert!(next.cursor > full.cursor);
    // Revocation too.
    let why = RevokeReason::Removed;
    testkit::revoke_voucher(state.store.as_ref(), &active, why, MONDAY_9AM).await;
    let after = snapshot(&app, &t, next.cursor).await;
    assert_eq!(after.vouchers.len(), 1);
    assert_eq!(after.vouchers[0].status, VoucherStatus::Revoked);
    assert!(snapshot(&app, &t, after.cursor).await.vouchers.is_empty());

    // A cursor the server never gave out (its database restored from a backup): full again.
    let ahead = snapshot(&app, &t, after.cursor + 1000).await;
    assert!(ahead.full);
    assert_eq!(ahead.vouchers.len(), 2);
    assert_eq!(ahead.cursor, after.cursor);

    for bad in ["-1", "x", "1.5"] {
        let (status, body) = call(
            &app,
            "GET",
            &format!("/api/v1/terminal/snapshot?cursor={bad}"),
            Some(&t.auth),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_cursor");
    }
    // No cursor: full.
    let (status, body) = call(
        &app,
        "GET",
        "/api/v1/terminal/snapshot",
        Some(&t.auth),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["full"], true);
});

state_test!(
    a_terminal_sees_only_its_school,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let a = school(state, BIN_A, "Школа 1").await;
        let b = school(state, BIN_B, "Школа 2").await;
        let va = voucher(state, &a, "iin-a", "Али", "Ахметов", true).await;
        let vb = voucher(state, &b, "iin-b", "Бота", "Бекова", true).await;
        let ta = enroll(&app, state, BIN_A, "A").await;
        let tb = enroll(&app, state, BIN_B, "B").await;
        assert_eq!(
            ta.resp
                .snapshot
                .vouchers
                .iter()
                .map(|v| v.voucher_id)
                .collect::<Vec<_>>(),
            vec![va.uuid()]
        );
        assert_eq!(
            tb.resp
                .snapshot
                .vouchers
                .iter()
                .map(|v| v.voucher_id)
                .collect::<Vec<_>>(),
            vec![vb.uuid()]
        );

        // A change at school B is not in school A's incremental snapshot.
        let cursor = snapshot(&app, &ta, 0).await.cursor;
        let why = RevokeReason::Operator;
        testkit::revoke_voucher(state.store.as_ref(), &vb, why, MONDAY_9AM).await;
        let next = snapshot(&app, &ta, cursor).await;
        assert!(next.vouchers.is_empty());
        assert!(next.cursor > cursor);

        // A meal at school B is not in school A's served_today.
        let (status, body) = upload(
            &app,
            &tb,
            &[ev(1, MONDAY_NOON, Some(vb.uuid()), Verdict::Ok)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        state.clock.set(MONDAY_NOON + 60);
        assert!(snapshot(&app, &ta, 0).await.served_today.is_empty());
        assert_eq!(ta.resp.school_code as i64, a.code);
    }
);

state_test!(
    served_today_lists_other_terminals_meals,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let s = school(state, BIN_A, "Школа 1").await;
        let v1 = voucher(state, &s, "iin-1", "Али", "Ахметов", true).await;
        let v2 = voucher(state, &s, "iin-2", "Бота", "Бекова", true).await;
        let t1 = enroll(&app, state, BIN_A, "Столовая 1").await;
        let t2 = enroll(&app, state, BIN_A, "Столовая 2").await;
        let yesterday = MONDAY_NOON - 24 * 3600;
        let events = [
            ev(1, yesterday, Some(v2.uuid()), Verdict::Ok),
            ev(2, MONDAY_NOON, Some(v1.uuid()), Verdict::Ok),
            ev(3, MONDAY_NOON + 5, Some(v2.uuid()), Verdict::Expired),
        ];
        let (status, body) = upload(&app, &t1, &events).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        state.clock.set(MONDAY_NOON + 60);

        let for_t2 = snapshot(&app, &t2, 0).await;
        assert_eq!(for_t2.served_today.len(), 1, "{:?}", for_t2.served_today);
        let m = &for_t2.served_today[0];
        assert_eq!(m.voucher_id, v1.uuid());
        assert_eq!(m.terminal_id, t1.id());
        assert_eq!(m.terminal_label, "Столовая 1");
        assert_eq!(m.served_at, MONDAY_NOON);
        assert_eq!(m.service_day.to_string(), day(MONDAY_NOON));
        // Incremental snapshots carry it too (it is about today, not about the cursor).
        assert_eq!(
            snapshot(&app, &t2, for_t2.cursor).await.served_today.len(),
            1
        );
        // Its own meals are not sent back to the terminal that served them.
        assert!(snapshot(&app, &t1, 0).await.served_today.is_empty());
        // The next day the list is empty again.
        state.clock.set(MONDAY_NOON + 24 * 3600);
        assert!(snapshot(&app, &t2, 0).await.served_today.is_empty());
    }
);

state_test!(credentials_and_revocation, |state: AppState| async move {
    let app = app(&state);
    let state = &state;
    let s = school(state, BIN_A, "Школа 1").await;
    let t1 = enroll(&app, state, BIN_A, "1").await;
    let t2 = enroll(&app, state, BIN_A, "2").await;
    let uri = "/api/v1/terminal/snapshot?cursor=0";

    // The secret alone works too (the terminal id is then found by the secret's hash).
    let bare = format!("Bearer {}", t1.resp.secret);
    assert_eq!(
        call(&app, "GET", uri, Some(&bare), None).await.0,
        StatusCode::OK
    );

    let wrong_secret = format!("Bearer {}:{}x", t1.id(), t1.resp.secret);
    let someone_elses = format!("Bearer {}:{}", t2.id(), t1.resp.secret);
    let unknown = format!("Bearer {}:{}", uuid::Uuid::new_v4(), t1.resp.secret);
    for auth in [
        None,
        Some("Bearer"),
        Some("Basic abc"),
        Some(wrong_secret.as_str()),
        Some(someone_elses.as_str()),
        Some(unknown.as_str()),
        Some("Bearer nope"),
    ] {
        let (status, body) = call(&app, "GET", uri, auth, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
        assert_eq!(body["error"]["code"], "terminal_unauthorized");
        let (status, _) = call(
            &app,
            "POST",
            "/api/v1/terminal/events",
            auth,
            Some(serde_json::json!({"events": []})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }

    assert!(state
        .store
        .revoke_terminal(t1.id(), "staff:director", MONDAY_9AM)
        .await
        .unwrap());
    assert!(!state
        .store
        .revoke_terminal(t1.id(), "staff:director", MONDAY_9AM)
        .await
        .unwrap());
    assert!(matches!(
        state
            .store
            .revoke_terminal(uuid::Uuid::new_v4(), "x", 1)
            .await,
        Err(wallet_server::store::StoreError::NotFound)
    ));
    for auth in [&t1.auth, &bare] {
        let (status, body) = call(&app, "GET", uri, Some(auth), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "terminal_revoked");
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/terminal/events",
            Some(auth),
            Some(serde_json::json!({"events": []})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "terminal_revoked");
    }
    let (status, _) = upload(&app, &t1, &[ev(1, MONDAY_9AM, None, Verdict::BadFormat)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(state
        .store
        .terminal_events(t1.id())
        .await
        .unwrap()
        .is_empty());
    // The other terminal is unaffected.
    assert_eq!(
        call(&app, "GET", uri, Some(&t2.auth), None).await.0,
        StatusCode::OK
    );

    let list = state.store.terminals_of_school(s.code).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list.iter()
            .find(|t| t.id == t1.id().to_string())
            .unwrap()
            .revoked_at,
        Some(MONDAY_9AM)
    );
    let audit = state.store.audit_entries(20).await.unwrap();
    let revokes: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "terminal.revoke")
        .collect();
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].actor, "staff:director");
});

state_test!(
    sync_time_and_clock_offset_are_recorded,
    |state: AppState| async move {
        let app = app(&state);
        let state = &state;
        let s = school(state, BIN_A, "Школа 1").await;
        let t = enroll(&app, state, BIN_A, "1").await;
        let info = |list: Vec<wallet_server::store::terminals::TerminalInfo>| {
            list.into_iter().next().unwrap()
        };
        assert_eq!(
            info(state.store.terminals_of_school(s.code).await.unwrap()).last_sync_at,
            None
        );

        state.clock.advance(600);
        let ahead = (MONDAY_9AM + 600 + 150).to_string();
        let (status, body) = call_raw(
            &app,
            "GET",
            "/api/v1/terminal/snapshot?cursor=0",
            Some(&t.auth),
            &[("X-Terminal-Time", &ahead)],
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let i = info(state.store.terminals_of_school(s.code).await.unwrap());
        assert_eq!(i.last_sync_at, Some(MONDAY_9AM + 600));
        assert_eq!(i.clock_offset, Some(150));

        // Without the header the offset stays as last reported; uploads count as syncs too.
        state.clock.advance(60);
        let (status, _) = upload(&app, &t, &[]).await;
        assert_eq!(status, StatusCode::OK);
        let i = info(state.store.terminals_of_school(s.code).await.unwrap());
        assert_eq!(i.last_sync_at, Some(MONDAY_9AM + 660));
        assert_eq!(i.clock_offset, Some(150));

        let behind = (MONDAY_9AM + 660 - 30).to_string();
        let body = serde_json::json!({"events": []}).to_string().into_bytes();
        let (status, _) = call_raw(
            &app,
            "POST",
            "/api/v1/terminal/events",
            Some(&t.auth),
            &[("X-Terminal-Time", &behind)],
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            info(state.store.terminals_of_school(s.code).await.unwrap()).clock_offset,
            Some(-30)
        );

        for bad in ["soon", "-5", "1e9"] {
            let (status, body) = call_raw(
                &app,
                "GET",
                "/api/v1/terminal/snapshot",
                Some(&t.auth),
                &[("X-Terminal-Time", bad)],
                None,
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(body["error"]["code"], "bad_terminal_time");
        }
    }
);
