//! The storage layer behaves the same on SQLite and PostgreSQL.

use shared::calendar::SchoolYear;
use shared::wire::VoucherStatus;
use std::sync::Arc;
use wallet_server::backend_test;
use wallet_server::eligibility::Category;
use wallet_server::lifecycle::{self, IssueReason, RevokeReason};
use wallet_server::signing::Keys;
use wallet_server::store::roster::NewPupil;
use wallet_server::store::vouchers::NewVoucher;
use wallet_server::store::Store;
use wallet_server::testkit;

fn pupil(iin: &str, school_code: i64, phone: &str) -> NewPupil {
    NewPupil {
        iin: iin.into(),
        school_code,
        last_name: "Сапарова".into(),
        first_name: "Айгерим".into(),
        middle_name: Some("Ерлановна".into()),
        grade: 3,
        class_letter: "А".into(),
        receives_asp: true,
        per_capita_income_kzt: None,
        orphan: false,
        mother_name: Some("Сапарова Динара".into()),
        mother_phone: Some(phone.into()),
        father_name: None,
        father_phone: None,
        guardian_name: None,
        guardian_phone: None,
        card_number: Some("0001".into()),
        lang: "kk".into(),
        category: Category::Asp,
        contact_phone: Some(phone.into()),
        contact_name: Some("Сапарова Динара".into()),
    }
}

backend_test!(
    schools_pupils_vouchers,
    |store: Arc<dyn Store>| async move {
        let s = store
            .upsert_school("000140000007", "School 1", 100)
            .await
            .unwrap();
        let again = store
            .upsert_school("000140000007", "School One", 200)
            .await
            .unwrap();
        assert_eq!(s.code, again.code);
        assert_eq!(again.name, "School One");
        let other = store
            .upsert_school("000240000006", "School 2", 200)
            .await
            .unwrap();
        assert_ne!(other.code, s.code);

        let id = store
            .upsert_pupil(&pupil("000101500001", s.code, "+77010000001"), 300)
            .await
            .unwrap();
        let id2 = store
            .upsert_pupil(&pupil("000101500001", s.code, "+77010000002"), 400)
            .await
            .unwrap();
        assert_eq!(id, id2);
        let p = store.pupil(id).await.unwrap().unwrap();
        assert_eq!(p.mother_phone.as_deref(), Some("+77010000002"));
        assert_eq!(p.category, Category::Asp);
        assert_eq!(p.display_name(), "Айгерим С.");
        assert_eq!(p.full_name(), "Сапарова Айгерим Ерлановна");
        assert_eq!(
            store.pupils_by_phone("+77010000002").await.unwrap().len(),
            1
        );
        assert!(store
            .pupils_by_phone("+77010000001")
            .await
            .unwrap()
            .is_empty());

        let year: SchoolYear =
            SchoolYear::default_for(chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        let store = store.as_ref();
        let v = testkit::issue_voucher(store, id, s.code, &year, 500).await;
        assert_eq!(v.status(), VoucherStatus::Issued);
        assert_eq!(v.school_year, "2026-2027");
        assert_eq!(
            (v.valid_from.as_str(), v.valid_to.as_str()),
            ("2026-09-01", "2027-05-25")
        );
        // One voucher per pupil per school year: a second issue makes nothing.
        let row = NewVoucher {
            pupil_id: id,
            school_code: s.code,
            sms: None,
        };
        let twice = lifecycle::issue(store, &year, &[row], IssueReason::Consented, "t", 501)
            .await
            .unwrap();
        assert!(twice.is_empty());
        let active = testkit::activate_voucher(store, &v, 600).await;
        assert_eq!(active.activated_at, Some(600));
        assert!(active.change_seq > v.change_seq);
        assert!(
            lifecycle::activate(store, &v.id, "t", 650)
                .await
                .unwrap()
                .is_none(),
            "already active"
        );
        let revoked = testkit::revoke_voucher(store, &v, RevokeReason::NotEligible, 700).await;
        assert_eq!(revoked.revoked_at, Some(700));
        assert_eq!(revoked.revoke_reason.as_deref(), Some("not_eligible"));
        assert_eq!(revoked.activated_at, Some(600));
        assert!(revoked.change_seq > active.change_seq);

        // Restored in the same year: active again, as before the revocation.
        let day = |d: &str| d.parse::<chrono::NaiveDate>().unwrap();
        let ids = [v.id.clone()];
        let restored = lifecycle::restore(store, &ids, "t", day("2027-01-10"), 800)
            .await
            .unwrap();
        assert_eq!(restored.len(), 1);
        assert_eq!(restored[0].status(), VoucherStatus::Active);
        assert_eq!(
            (restored[0].revoked_at, restored[0].revoke_reason.as_deref()),
            (None, None)
        );

        // The year ends: a live voucher expires, once; a revoked one keeps its reason.
        let other_pupil = store
            .upsert_pupil(&pupil("000101500002", s.code, "+77010000003"), 300)
            .await
            .unwrap();
        let other = testkit::issue_voucher(store, other_pupil, s.code, &year, 500).await;
        testkit::revoke_voucher(store, &other, RevokeReason::Removed, 900).await;
        assert_eq!(
            lifecycle::expire_ended(store, day("2027-05-25"), 950)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            lifecycle::expire_ended(store, day("2027-05-26"), 1_000)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            lifecycle::expire_ended(store, day("2027-05-27"), 1_100)
                .await
                .unwrap(),
            0
        );
        let expired = store.voucher(v.uuid()).await.unwrap().unwrap();
        assert_eq!(expired.status(), VoucherStatus::Expired);
        let other = store.voucher(other.uuid()).await.unwrap().unwrap();
        assert_eq!(other.status(), VoucherStatus::Revoked);
        // Nor does an expired voucher come back.
        let ids = [v.id.clone(), other.id.clone()];
        assert!(
            lifecycle::restore(store, &ids, "t", day("2027-05-26"), 1_200)
                .await
                .unwrap()
                .is_empty()
        );

        // Every change is in the audit log with its reason.
        let audit: Vec<(String, String)> = store
            .audit_entries(20)
            .await
            .unwrap()
            .into_iter()
            .rev()
            .filter(|a| a.subject.as_deref() == Some(v.id.as_str()))
            .map(|a| (a.action, a.detail.unwrap_or_default()))
            .collect();
        let audit: Vec<(&str, &str)> = audit
            .iter()
            .map(|(a, d)| (a.as_str(), d.as_str()))
            .collect();
        assert_eq!(
            audit,
            [
                ("voucher.issue", "consented"),
                ("voucher.activate", "activated"),
                ("voucher.revoke", "not_eligible"),
                ("voucher.restore", "restored"),
                ("voucher.expire", "year_ended"),
            ]
        );
    }
);

backend_test!(
    keys_rotate_and_trust_list,
    |store: Arc<dyn Store>| async move {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(dir.path(), store.as_ref(), 1_000).await.unwrap();
        let first = keys.active();
        assert_eq!(first.trust_version, 1);
        assert_eq!(first.ring.len(), 1);
        let reopened = Keys::open(dir.path(), store.as_ref(), 1_100).await.unwrap();
        assert_eq!(reopened.active().trust_version, 1);
        assert_eq!(reopened.active().signing.key_id(), first.signing.key_id());

        let new = keys.rotate(store.as_ref(), 2_000).await.unwrap();
        let now = keys.active();
        assert_eq!(now.trust_version, 2);
        assert_eq!(now.signing.key_id().hex(), new.key_id);
        assert_eq!(now.ring.len(), 2, "the retired key stays trusted");
        let payload = now
            .trust
            .verify(&keys.root().verifying_key(), Some(1))
            .unwrap();
        let old = payload
            .keys
            .iter()
            .find(|k| k.key_id == first.signing.key_id())
            .unwrap();
        assert_eq!(old.not_after, 2_000);
        assert_eq!(
            old.verify_until,
            2_000 + wallet_server::signing::MAX_TOKEN_LIFETIME
        );
        // The other instance picks the rotation up.
        assert!(reopened.reload(store.as_ref(), 2_001).await.unwrap());
        assert_eq!(reopened.active().signing.key_id(), now.signing.key_id());
        // Once the old key's tokens have all expired, it leaves the list.
        let later = 2_000 + wallet_server::signing::MAX_TOKEN_LIFETIME + 1;
        assert!(keys.reload(store.as_ref(), later).await.unwrap());
        assert_eq!(keys.active().ring.len(), 1);
        assert_eq!(keys.active().trust_version, 3);
    }
);
