//! Sync against the in-memory server: uploads are idempotent, a failed or interrupted upload
//! loses nothing and stores nothing twice, snapshots are verified against the pinned root.

mod common;

use canteen_terminal::clock::ManualClock;
use canteen_terminal::sync::SyncError;
use canteen_terminal::Terminal;
use common::*;
use shared::keys::KeyPair;
use shared::trust::{SignedTrustList, TrustError, TrustPayload};
use shared::verdict::Verdict;
use shared::wire::VoucherStatus;
use std::collections::HashSet;

fn id(n: u32) -> uuid::Uuid {
    voucher(n, VoucherStatus::Active).voucher_id
}

fn many(n: u32) -> Vec<shared::wire::SnapshotVoucher> {
    (1..=n).map(|i| voucher(i, VoucherStatus::Active)).collect()
}

/// Server events of this terminal are exactly the local log, each once.
async fn assert_server_holds_log_exactly_once(server: &Shared, t: &Terminal) {
    let local: Vec<(i64, String)> = sqlx::query_as("SELECT seq, event_id FROM events ORDER BY seq")
        .fetch_all(t.pool())
        .await
        .unwrap();
    let terminal_id = t.status().await.unwrap().terminal_id;
    let st = server.lock().unwrap();
    let remote = st.events_of(terminal_id);
    assert_eq!(remote.len(), local.len(), "same number of events");
    for ((seq, event_id), e) in local.iter().zip(&remote) {
        assert_eq!((*seq, event_id.clone()), (e.seq, e.event_id.to_string()));
    }
    let ids: HashSet<_> = remote.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), remote.len(), "no event twice");
    assert_eq!(st.last_seq(terminal_id), local.len() as i64);
}

#[tokio::test]
async fn upload_is_idempotent_and_resends_after_a_lost_ack() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(many(10)));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "C1", "Асхана 1", &clock).await;
    for n in 1..=5 {
        t.scan(&world.token(id(n), monday_noon()), None)
            .await
            .unwrap();
    }
    t.scan("rubbish", None).await.unwrap();
    let r = t.sync().await.unwrap();
    assert_eq!((r.uploaded, r.already_had, r.server_last_seq), (6, 0, 6));
    assert_eq!(t.status().await.unwrap().unsynced_events, 0);
    let r = t.sync().await.unwrap();
    assert_eq!((r.uploaded, r.already_had), (0, 0), "nothing to send");
    // The terminal forgets the ack (as if the answer was lost): it sends again, the server
    // keeps one copy.
    sqlx::query("UPDATE sync_state SET uploaded_through = 0")
        .execute(t.pool())
        .await
        .unwrap();
    let r = t.sync().await.unwrap();
    assert_eq!((r.uploaded, r.already_had, r.server_last_seq), (0, 6, 6));
    assert_server_holds_log_exactly_once(&server.state, &t).await;
}

#[tokio::test]
async fn server_failing_mid_upload_then_down_then_back_loses_nothing_and_counts_nothing_twice() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(many(800)));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "C1", "Асхана 1", &clock).await;
    for n in 1..=700 {
        let o = t
            .scan(&world.token(id(n), monday_noon()), None)
            .await
            .unwrap();
        assert_eq!(o.verdict, Verdict::Ok);
    }
    // The server acknowledges the first batch (seq 1..500), stores half of the second
    // (501..600), then fails.
    server.state.lock().unwrap().fail_when_received = Some(600);
    let _ = t.sync().await.unwrap_err();
    {
        let st = server.state.lock().unwrap();
        let tid = st.terminals.values().next().unwrap().0;
        assert_eq!(
            st.last_seq(tid),
            600,
            "first batch and part of the second stored"
        );
    }
    // The local cursor records only what was acknowledged (the first batch).
    assert_eq!(t.status().await.unwrap().unsynced_events, 200);
    // Now the server goes away entirely; the terminal keeps serving.
    let (state, addr) = server.stop();
    let err = t.sync().await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert!(
        err.to_string()
            .contains("run `canteen-terminal sync` again"),
        "{err}"
    );
    for n in 701..=710 {
        let o = t
            .scan(&world.token(id(n), monday_noon()), None)
            .await
            .unwrap();
        assert_eq!(o.verdict, Verdict::Ok, "offline serving goes on");
    }
    let status = t.status().await.unwrap();
    assert!(status.last_sync_error.unwrap().contains("cannot reach"));
    // Back on the same address.
    let server = FakeServer::start_shared(state, Some(addr));
    let r = t.sync().await.unwrap();
    assert_eq!(r.uploaded, 110, "501..710 sent, 501..600 already there");
    assert_eq!(r.already_had, 100);
    assert_eq!(r.server_last_seq, 710);
    assert_server_holds_log_exactly_once(&server.state, &t).await;
}

#[tokio::test]
async fn a_gateway_error_counts_as_unreachable() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(many(1)));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "C1", "A", &clock).await;
    server.state.lock().unwrap().unavailable = true;
    assert!(t.sync().await.unwrap_err().is_unreachable());
}

#[tokio::test]
async fn meals_from_other_terminals_arrive_with_the_snapshot() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(many(3)));
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t1 = enrolled_terminal(d1.path(), &server, "C1", "Асхана 1", &clock).await;
    let t2 = enrolled_terminal(d2.path(), &server, "C2", "Асхана 2", &clock).await;
    // Both offline: both serve voucher 1 (the server marks the later one duplicate).
    assert_eq!(
        t1.scan(&world.token(id(1), monday_noon()), None)
            .await
            .unwrap()
            .verdict,
        Verdict::Ok
    );
    assert_eq!(
        t2.scan(&world.token(id(1), monday_noon()), None)
            .await
            .unwrap()
            .verdict,
        Verdict::Ok
    );
    // Terminal 1 serves voucher 2 and syncs; terminal 2 syncs and refuses voucher 2.
    clock.advance(120);
    t1.scan(&world.token(id(2), monday_noon()), None)
        .await
        .unwrap();
    t1.sync().await.unwrap();
    t2.sync().await.unwrap();
    let o = t2
        .scan(&world.token(id(2), monday_noon() + 120), None)
        .await
        .unwrap();
    assert_eq!(o.verdict, Verdict::AlreadyServed);
    assert_eq!(o.served_where.as_deref(), Some("Асхана 1"));
    assert_eq!(o.served_here, Some(false));
    assert_eq!(o.served_at, Some(monday_noon() + 120));
    assert!(o.message_kk.contains("Асхана 1"), "{}", o.message_kk);
    assert_eq!(o.display_name.as_deref(), Some("Айгерим2 С."));
    // The terminal's own meals echoed back are not "elsewhere".
    t2.sync().await.unwrap();
    let (own,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM served_elsewhere WHERE terminal_label = 'Асхана 2'")
            .fetch_one(t2.pool())
            .await
            .unwrap();
    assert_eq!(own, 0);
    // Both offline meals of voucher 1 are on the server.
    let st = server.state.lock().unwrap();
    let oks = st
        .events
        .values()
        .filter(|e| e.voucher_id == Some(id(1)) && e.verdict == Verdict::Ok)
        .count();
    assert_eq!(oks, 2);
}

#[tokio::test]
async fn revocations_and_new_vouchers_arrive_incrementally() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(many(3)));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "C1", "A", &clock).await;
    {
        let mut st = server.state.lock().unwrap();
        st.upsert_voucher(voucher(2, VoucherStatus::Revoked));
        st.upsert_voucher(voucher(9, VoucherStatus::Active));
    }
    let r = t.sync().await.unwrap();
    assert!(!r.full_snapshot);
    assert_eq!(r.vouchers_received, 2, "only what changed");
    let now = monday_noon();
    assert_eq!(
        t.scan(&world.token(id(2), now), None)
            .await
            .unwrap()
            .verdict,
        Verdict::VoucherInactive
    );
    assert_eq!(
        t.scan(&world.token(id(9), now), None)
            .await
            .unwrap()
            .verdict,
        Verdict::Ok
    );
    assert_eq!(
        t.scan(&world.token(id(3), now), None)
            .await
            .unwrap()
            .verdict,
        Verdict::Ok,
        "unchanged vouchers kept"
    );
}

#[tokio::test]
async fn key_rotation_retired_key_verifies_until_verify_until() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(many(5)));
    let dir = tempfile::tempdir().unwrap();
    let now = monday_noon();
    let clock = ManualClock::new(now);
    let t = enrolled_terminal(dir.path(), &server, "C1", "A", &clock).await;
    let new_key = KeyPair::from_seed([33u8; 32]);
    // Before the terminal syncs, a token of the new key is unknown.
    assert_eq!(
        t.scan(&token_with(&new_key, id(1), now, 600), None)
            .await
            .unwrap()
            .verdict,
        Verdict::UnknownKey
    );
    server.state.lock().unwrap().set_trust(&TrustPayload {
        version: 2,
        keys: vec![
            trusted(&world.signer, now, now + 3600),
            trusted(&new_key, now, i64::MAX / 2),
        ],
    });
    assert_eq!(t.sync().await.unwrap().trust_version, 2);
    assert_eq!(
        t.scan(&token_with(&new_key, id(1), now, 600), None)
            .await
            .unwrap()
            .verdict,
        Verdict::Ok
    );
    assert_eq!(
        t.scan(&world.token(id(2), now), None)
            .await
            .unwrap()
            .verdict,
        Verdict::Ok,
        "the retired key still verifies"
    );
    clock.set(now + 3601);
    assert_eq!(
        t.scan(&token_with(&world.signer, id(3), now + 3500, 600), None)
            .await
            .unwrap()
            .verdict,
        Verdict::UnknownKey,
        "past verify_until"
    );
    let (key_id,): (Option<String>,) =
        sqlx::query_as("SELECT key_id FROM events ORDER BY seq DESC LIMIT 1")
            .fetch_one(t.pool())
            .await
            .unwrap();
    assert_eq!(key_id, Some(world.signer.key_id().hex()));
}

#[tokio::test]
async fn downgraded_or_badly_signed_trust_lists_are_refused_and_old_keys_kept() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(many(5)));
    let dir = tempfile::tempdir().unwrap();
    let now = monday_noon();
    let clock = ManualClock::new(now);
    let t = enrolled_terminal(dir.path(), &server, "C1", "A", &clock).await;
    let k2 = KeyPair::from_seed([44u8; 32]);
    server.state.lock().unwrap().set_trust(&TrustPayload {
        version: 3,
        keys: vec![trusted(&k2, now, i64::MAX / 2)],
    });
    t.sync().await.unwrap();

    // Lower version, properly signed: refused, and nothing else of the snapshot applied.
    let evil = KeyPair::from_seed([66u8; 32]);
    {
        let mut st = server.state.lock().unwrap();
        st.set_trust(&TrustPayload {
            version: 2,
            keys: vec![trusted(&evil, now, i64::MAX / 2)],
        });
        st.upsert_voucher(voucher(1, VoucherStatus::Revoked));
    }
    match t.sync().await.unwrap_err() {
        SyncError::Trust(TrustError::Downgrade { got: 2, have: 3 }) => {}
        e => panic!("expected a downgrade refusal, got {e}"),
    }
    // Signed by another root claiming to be ours: bad signature.
    let other_root = KeyPair::from_seed([77u8; 32]);
    {
        let mut st = server.state.lock().unwrap();
        let mut forged = SignedTrustList::sign(
            &TrustPayload {
                version: 9,
                keys: vec![trusted(&evil, now, i64::MAX / 2)],
            },
            &other_root,
        );
        forged.root_key_id = world.root.key_id().hex();
        st.trust_list = forged;
    }
    match t.sync().await.unwrap_err() {
        SyncError::Trust(TrustError::BadSignature) => {}
        e => panic!("expected a bad signature refusal, got {e}"),
    }
    // Honestly signed by another root: refused too.
    server.state.lock().unwrap().trust_list = SignedTrustList::sign(
        &TrustPayload {
            version: 9,
            keys: vec![trusted(&evil, now, i64::MAX / 2)],
        },
        &other_root,
    );
    let err = t.sync().await.unwrap_err();
    assert!(
        matches!(err, SyncError::Trust(TrustError::WrongRoot { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("keeps the keys it had"));

    let status = t.status().await.unwrap();
    assert_eq!(status.trust_version, Some(3));
    assert!(status.last_sync_error.is_some());
    assert_eq!(
        t.scan(&token_with(&evil, id(1), now, 600), None)
            .await
            .unwrap()
            .verdict,
        Verdict::UnknownKey
    );
    let o = t
        .scan(&token_with(&k2, id(1), now, 600), None)
        .await
        .unwrap();
    assert_eq!(
        o.verdict,
        Verdict::Ok,
        "revocation in the refused snapshot not applied"
    );
}

#[tokio::test]
async fn clock_offset_and_stale_sync_warnings_and_watermark_reset() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(many(5)));
    let dir = tempfile::tempdir().unwrap();
    let now = monday_noon();
    let clock = ManualClock::new(now);
    let t = enrolled_terminal(dir.path(), &server, "C1", "A", &clock).await;
    assert!(t.status().await.unwrap().warnings.is_empty());

    world.server_clock.set(now + 300);
    let r = t.sync().await.unwrap();
    assert_eq!(r.server_offset, 300);
    assert_eq!(
        server.state.lock().unwrap().last_terminal_time,
        Some(now),
        "the terminal tells the server its clock"
    );
    let codes: Vec<_> = t
        .status()
        .await
        .unwrap()
        .warnings
        .iter()
        .map(|w| w.code)
        .collect();
    // Trusted time is now the server's; the PC's clock, 5 minutes off it, raises the alarm.
    assert_eq!(codes, vec!["clock_wrong"]);

    // The terminal's clock had run a day ahead and scanned: its watermark is now in the future.
    clock.set(now + 86_400);
    t.scan("x", None).await.unwrap();
    clock.set(now + 10);
    assert_eq!(
        t.scan(&world.token(id(1), now), None)
            .await
            .unwrap()
            .verdict,
        Verdict::ClockUntrusted
    );
    // A sync whose server time agrees with the local clock vouches for it.
    world.server_clock.set(now + 10);
    t.sync().await.unwrap();
    assert_eq!(
        t.scan(&world.token(id(1), now), None)
            .await
            .unwrap()
            .verdict,
        Verdict::Ok
    );

    // Four days without a sync: stale.
    clock.set(now + 4 * 86_400);
    let codes: Vec<_> = t
        .status()
        .await
        .unwrap()
        .warnings
        .iter()
        .map(|w| w.code)
        .collect();
    assert_eq!(codes, vec!["sync_stale"]);
}

#[tokio::test]
async fn enrollment_refuses_bad_codes_and_second_enrollment() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(many(2)));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let settings = canteen_terminal::Settings::default();
    let path = dir.path().join("t");
    let err = canteen_terminal::sync::enroll(
        &path,
        &server.url(),
        "WRONG",
        None,
        &settings,
        std::sync::Arc::new(clock.clone()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("bad_enroll_code"), "{err}");
    assert!(!path.exists(), "nothing written");
    let _t = enrolled_terminal(&path, &server, "C1", "A", &clock).await;
    server.add_code("C2");
    let err = canteen_terminal::sync::enroll(
        &path,
        &server.url(),
        "C2",
        None,
        &settings,
        std::sync::Arc::new(clock.clone()),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("already holds enrolled terminal"),
        "{err}"
    );
    assert!(
        server.state.lock().unwrap().codes.contains("C2"),
        "the code was not spent"
    );
}

/// A voucher that moved to another school with its pupil comes in a delta marked `moved_away`
/// (status `revoked`): the terminal drops it — refused as unknown by token and by card, also
/// after a restart — keeps the meal it served before, and takes it back if it returns.
#[tokio::test]
async fn a_voucher_that_moved_away_is_dropped_and_its_card_freed() {
    let world = World::new();
    let server = FakeServer::start(world.server_state(many(3)));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(monday_noon());
    let t = enrolled_terminal(dir.path(), &server, "C1", "Асхана 1", &clock).await;
    let ok = t
        .scan(&world.token(id(1), monday_noon()), None)
        .await
        .unwrap();
    assert_eq!(ok.verdict, Verdict::Ok);

    let mut gone = voucher(1, VoucherStatus::Revoked);
    gone.card_number = None;
    gone.moved_away = true;
    server.state.lock().unwrap().upsert_voucher(gone);
    let next_day = monday_noon() + 24 * 3600;
    clock.set(next_day);
    world.server_clock.set(next_day);
    let r = t.sync().await.unwrap();
    assert!(!r.full_snapshot);
    assert_eq!(r.vouchers_received, 1);
    let o = t.scan(&world.token(id(1), next_day), None).await.unwrap();
    assert_eq!(o.verdict, Verdict::UnknownVoucher);
    let card = voucher(1, VoucherStatus::Active).card_number.unwrap();
    let o = t.redeem_card(&card, None).await.unwrap();
    assert_eq!(
        o.verdict,
        Verdict::UnknownVoucher,
        "its card names nobody here"
    );
    assert_eq!(
        t.redeem_card(
            &voucher(2, VoucherStatus::Active).card_number.unwrap(),
            None
        )
        .await
        .unwrap()
        .verdict,
        Verdict::Ok,
        "the others are served"
    );
    let (listed, status, held_card): (i64, String, Option<String>) =
        sqlx::query_as("SELECT listed, status, card_number FROM vouchers WHERE voucher_id = ?")
            .bind(id(1).to_string())
            .fetch_one(t.pool())
            .await
            .unwrap();
    assert_eq!((listed, status.as_str(), held_card), (0, "revoked", None));
    let (meals,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM meals WHERE voucher_id = ?")
        .bind(id(1).to_string())
        .fetch_one(t.pool())
        .await
        .unwrap();
    assert_eq!(meals, 1, "the meal served before the move stays");
    drop(t);
    let t = Terminal::open(
        dir.path(),
        canteen_terminal::Settings::default(),
        std::sync::Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let o = t
        .scan(&world.token(id(1), next_day + 60), None)
        .await
        .unwrap();
    assert_eq!(o.verdict, Verdict::UnknownVoucher, "after a restart too");

    // The pupil comes back: listed again, served again.
    server
        .state
        .lock()
        .unwrap()
        .upsert_voucher(voucher(1, VoucherStatus::Active));
    t.sync().await.unwrap();
    let o = t
        .scan(&world.token(id(1), next_day + 120), None)
        .await
        .unwrap();
    assert_eq!(o.verdict, Verdict::Ok);
}

/// A snapshot voucher without `moved_away` (an older server) reads as not moved; the field is
/// left out of the JSON when false, so older terminals see what they always saw.
#[test]
fn moved_away_is_optional_on_the_wire() {
    let v = voucher(1, VoucherStatus::Active);
    let json = serde_json::to_value(&v).unwrap();
    assert!(json.get("moved_away").is_none(), "{json}");
    let back: shared::wire::SnapshotVoucher = serde_json::from_value(json).unwrap();
    assert!(!back.moved_away);
    let mut gone = voucher(1, VoucherStatus::Revoked);
    gone.moved_away = true;
    let json = serde_json::to_value(&gone).unwrap();
    assert_eq!(json["moved_away"], true);
    assert_eq!(
        json["status"], "revoked",
        "an older terminal refuses it as inactive"
    );
}
