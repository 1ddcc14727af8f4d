//! The storage layer behaves the same on SQLite and PostgreSQL.

use shared::calendar::SchoolYear;
use shared::wire::VoucherStatus;
use std::sync::Arc;
use wallet_server::backend_test;
use wallet_server::eligibility::Category;
use wallet_server::signing::Keys;
use wallet_server::store::roster::NewPupil;
use wallet_server::store::{Store, StoreError};

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
        let v = store.create_voucher(id, s.code, &year, 500).await.unwrap();
        assert_eq!(v.status(), VoucherStatus::Issued);
        assert_eq!(v.school_year, "2026-2027");
        assert!(matches!(
            store.create_voucher(id, s.code, &year, 501).await,
            Err(StoreError::Conflict(_))
        ));
        let active = store
            .set_voucher_status(v.uuid(), VoucherStatus::Active, 600, None)
            .await
            .unwrap();
        assert_eq!(active.activated_at, Some(600));
        assert!(active.change_seq > v.change_seq);
        let revoked = store
            .set_voucher_status(v.uuid(), VoucherStatus::Revoked, 700, Some("left school"))
            .await
            .unwrap();
        assert_eq!(revoked.revoked_at, Some(700));
        assert_eq!(revoked.revoke_reason.as_deref(), Some("left school"));
        assert_eq!(revoked.activated_at, Some(600));
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
