//! Roster import (DESIGN §7.1) on SQLite and PostgreSQL.

#[path = "core_support/mod.rs"]
mod common;

use common::*;
use shared::wire::VoucherStatus;
use std::sync::Arc;
use wallet_server::backend_test;
use wallet_server::eligibility::Category;
use wallet_server::roster::{Column, Format, ImportOptions, Mode};
use wallet_server::store::Store;
use wallet_server::testkit;

const SKIP: ImportOptions = ImportOptions {
    mode: Mode::Incremental,
    skip_invalid: true,
};
const SNAPSHOT: ImportOptions = ImportOptions {
    mode: Mode::Snapshot,
    skip_invalid: false,
};

/// Three good rows, then five bad ones (lines 5–9 of the file).
fn mixed_rows() -> Vec<[String; 19]> {
    let bad_iin = {
        let good = iin(10);
        let last = (good.as_bytes()[11] - b'0' + 1) % 10;
        format!("{}{}", &good[..11], last)
    };
    vec![
        row(1, 0, "+77010000001"),
        row(2, 0, "8 (701) 000-00-02"),
        row(3, 1, ""),
        with(row(10, 0, "+77010000010"), Column::StudentIin, &bad_iin),
        with(row(11, 0, "+7 727 000 00 11"), Column::Grade, "12"),
        with(row(12, 0, ""), Column::ReceivesAsp, "возможно"),
        with(
            with(row(13, 0, ""), Column::Lang, "en"),
            Column::FirstName,
            "  ",
        ),
        with(row(14, 0, ""), Column::SchoolBin, "123"),
    ]
}

fn expected_errors(bad_iin: &str) -> Vec<String> {
    vec![
        format!("line 5, column student_iin: \"{bad_iin}\" is not a valid IIN: check digit does not match"),
        "line 6, column grade: \"12\" is not a grade from 0 to 11".into(),
        "line 6, column mother_phone: \"+7 727 000 00 11\": not a Kazakhstan mobile number: expected +7 7XX XXX XX XX or 8 7XX XXX XX XX".into(),
        "line 7, column receives_asp: \"возможно\" is not true/false, 1/0, да/нет or иә/жоқ".into(),
        "line 8, column first_name: required".into(),
        "line 8, column lang: \"en\" is not kk or ru".into(),
        "line 9, column school_bin: \"123\" is not a valid BIN: must be exactly 12 digits".into(),
    ]
}

backend_test!(
    bad_rows_stop_everything,
    |store: Arc<dyn Store>| async move {
        let rows = mixed_rows();
        let report = import(&store, &csv(&rows), ImportOptions::default()).await;
        assert!(!report.applied);
        assert_eq!(report.rows, 8);
        assert_eq!(report.rejected_rows, 5);
        let shown: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown, expected_errors(&rows[3][Column::StudentIin.index()]));
        assert!(store.schools().await.unwrap().is_empty(), "nothing written");
        assert!(store.pupil_by_iin(&iin(1)).await.unwrap().is_none());
        assert!(store.audit_entries(10).await.unwrap().is_empty());
        assert!(
            report.summary().ends_with("nothing imported"),
            "{}",
            report.summary()
        );
    }
);

backend_test!(skip_invalid_imports_the_good_rows, |store: Arc<
    dyn Store,
>| async move {
    let report = import(&store, &csv(&mixed_rows()), SKIP).await;
    assert!(report.applied);
    assert_eq!(report.rejected_rows, 5);
    assert_eq!(report.errors.len(), 7, "every problem is listed");
    assert_eq!(
        (
            report.counts.added,
            report.counts.updated,
            report.counts.unchanged
        ),
        (3, 0, 0)
    );
    assert_eq!(report.counts.schools_created, 2);
    let schools = store.schools().await.unwrap();
    assert_eq!(schools.len(), 2);
    assert_eq!(schools[0].bin, bin(0));
    assert_eq!(schools[0].name, "Школа №1");
    assert_ne!(schools[0].code, schools[1].code);
    let p2 = store.pupil_by_iin(&iin(2)).await.unwrap().unwrap();
    assert_eq!(
        p2.mother_phone.as_deref(),
        Some("+77010000002"),
        "normalised"
    );
    assert_eq!(p2.contact_phone.as_deref(), Some("+77010000002"));
    assert_eq!(
        p2.contact_name.as_deref(),
        Some("Сапарова Динара Ерлановна")
    );
    assert_eq!(p2.school_code, schools[0].code);
    let p3 = store.pupil_by_iin(&iin(3)).await.unwrap().unwrap();
    assert_eq!(p3.contact_phone, None);
    assert_eq!(p3.school_code, schools[1].code);
    let audit = store.audit_entries(10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "roster.import");
    assert_eq!(audit[0].actor, "test");
    let detail: serde_json::Value =
        serde_json::from_str(audit[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["rejected"], 5);
    assert_eq!(detail["counts"]["added"], 3);
});

backend_test!(
    excel_csv_bom_crlf_semicolons,
    |store: Arc<dyn Store>| async move {
        let rows = [
            with(
                row(1, 0, "+77010000001"),
                Column::SchoolName,
                "Школа \"Болашак\"; №1",
            ),
            with(row(2, 0, ""), Column::LastName, "Ким\r\nЛи"),
        ];
        let text = format!(
            "\u{feff}{}",
            csv(&rows).replace(',', ";").replace('\n', "\r\n")
        );
        // The school name holds a `;`, so it stays quoted; every separator became `;`.
        assert!(text.contains("\"Школа \"\"Болашак\"\"; №1\""), "{text}");
        let report = import(&store, &text, ImportOptions::default()).await;
        assert_eq!(report.errors, vec![]);
        assert_eq!(report.counts.added, 2);
        let school = store.school_by_bin(&bin(0)).await.unwrap().unwrap();
        assert_eq!(school.name, "Школа \"Болашак\"; №1");
        let p2 = store.pupil_by_iin(&iin(2)).await.unwrap().unwrap();
        assert_eq!(
            p2.last_name, "Ким Ли",
            "line breaks in a name become one space"
        );
        assert_eq!(
            p2.first_name, "Алихан2",
            "no CR left at the end of the line"
        );
    }
);

backend_test!(json_form, |store: Arc<dyn Store>| async move {
    let mut rows = vec![
        with(row(1, 0, "+77010000001"), Column::Lang, "kk"),
        with(row(2, 0, ""), Column::ReceivesAsp, "0"),
    ];
    rows[1][Column::Orphan.index()] = "иә".into();
    let text = json(&rows);
    let report = import_with(
        &store,
        &settings(),
        text.as_bytes(),
        Format::Json,
        ImportOptions::default(),
        100,
    )
    .await;
    assert_eq!(report.errors, vec![]);
    assert_eq!(report.counts.added, 2);
    let p1 = store.pupil_by_iin(&iin(1)).await.unwrap().unwrap();
    assert_eq!(p1.lang, "kk");
    assert_eq!(p1.category, Category::Asp);
    let p2 = store.pupil_by_iin(&iin(2)).await.unwrap().unwrap();
    assert_eq!(p2.category, Category::Orphan);

    // Native JSON values and problems, reported at the line where the object starts.
    let text = format!(
        "[\n  {{\"school_bin\": \"{}\", \"school_name\": \"S\", \"student_iin\": \"{}\",\n   \"last_name\": \"A\", \"first_name\": \"B\", \"grade\": 4, \"class_letter\": \"Ә\",\n   \"receives_asp\": false, \"per_capita_income_kzt\": 30000, \"orphan\": false}},\n  {{\"school_bin\": \"{}\", \"grade\": {{}}, \"nickname\": \"x\"}}\n]",
        bin(0), iin(5), bin(0)
    );
    let report = import_with(
        &store,
        &settings(),
        text.as_bytes(),
        Format::Json,
        SKIP,
        200,
    )
    .await;
    let shown: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        shown.contains(&"line 5, column nickname: unknown field".to_owned()),
        "{shown:?}"
    );
    assert!(
        shown.contains(
            &"line 5, column grade: must be text, a number, true/false or null".to_owned()
        ),
        "{shown:?}"
    );
    assert!(
        shown.contains(&"line 5, column student_iin: required: the 12-digit IIN".to_owned()),
        "{shown:?}"
    );
    assert_eq!(report.counts.added, 1);
    let p5 = store.pupil_by_iin(&iin(5)).await.unwrap().unwrap();
    assert_eq!((p5.grade, p5.class_letter.as_str()), (4, "Ә"));
    assert_eq!(p5.category, Category::LowIncome);
    assert_eq!(p5.lang, "ru", "default from the configuration");
});

backend_test!(duplicate_iin_is_an_error_for_the_later_row, |store: Arc<
    dyn Store,
>| async move {
    let rows = [
        row(1, 0, ""),
        row(2, 0, ""),
        with(row(1, 1, ""), Column::FirstName, "Другой"),
    ];
    let report = import(&store, &csv(&rows), ImportOptions::default()).await;
    assert!(!report.applied);
    assert_eq!(
        report
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>(),
        vec![format!(
            "line 4, column student_iin: IIN {} already given on line 2",
            iin(1)
        )]
    );
    let report = import(&store, &csv(&rows), SKIP).await;
    assert_eq!(report.counts.added, 2);
    let p1 = store.pupil_by_iin(&iin(1)).await.unwrap().unwrap();
    assert_eq!(p1.first_name, "Алихан1", "the first row wins");
});

backend_test!(reimport_is_idempotent, |store: Arc<dyn Store>| async move {
    let rows: Vec<_> = (1..=30)
        .map(|n| row(n, n % 3, &format!("+770100000{n:02}")))
        .collect();
    let first = import(&store, &csv(&rows), ImportOptions::default()).await;
    assert_eq!((first.counts.added, first.counts.schools_created), (30, 3));
    let before = store.pupil_by_iin(&iin(7)).await.unwrap().unwrap();

    let again = import(&store, &csv(&rows), ImportOptions::default()).await;
    assert_eq!(
        (
            again.counts.added,
            again.counts.updated,
            again.counts.unchanged,
            again.counts.removed
        ),
        (0, 0, 30, 0)
    );
    assert_eq!(again.counts.schools_created, 0);
    assert_eq!(store.pupil_by_iin(&iin(7)).await.unwrap().unwrap(), before);
    assert_eq!(store.schools().await.unwrap().len(), 3);

    let mut changed = rows.clone();
    changed[6][Column::MotherPhone.index()] = String::new();
    changed[6][Column::FatherPhone.index()] = "+77019999999".into();
    changed[8][Column::ReceivesAsp.index()] = "нет".into();
    let third = import(&store, &csv(&changed), ImportOptions::default()).await;
    assert_eq!(
        (
            third.counts.added,
            third.counts.updated,
            third.counts.unchanged
        ),
        (0, 2, 28)
    );
    let after = store.pupil_by_iin(&iin(7)).await.unwrap().unwrap();
    assert_eq!(after.id, before.id);
    assert_eq!(
        after.contact_phone.as_deref(),
        Some("+77019999999"),
        "father after mother"
    );
    assert_eq!(
        after.contact_name.as_deref(),
        Some("Сапаров Руслан Маратович")
    );
    let p9 = store.pupil_by_iin(&iin(9)).await.unwrap().unwrap();
    assert_eq!(p9.category, Category::NotEligible);
});

backend_test!(eligibility_uses_the_configured_minimum, |store: Arc<
    dyn Store,
>| async move {
    let not_asp = |n, income: &str| {
        with(
            with(row(n, 0, ""), Column::ReceivesAsp, "false"),
            Column::PerCapitaIncomeKzt,
            income,
        )
    };
    let rows = [
        not_asp(1, "50850"),
        not_asp(2, "50851"),
        with(not_asp(3, "60000"), Column::Orphan, "1"),
        not_asp(4, ""),
    ];
    let mut s = settings();
    import_with(
        &store,
        &s,
        csv(&rows).as_bytes(),
        Format::Csv,
        ImportOptions::default(),
        1,
    )
    .await;
    let cat = |n| {
        let store = store.clone();
        async move { store.pupil_by_iin(&iin(n)).await.unwrap().unwrap().category }
    };
    assert_eq!(cat(1).await, Category::LowIncome);
    assert_eq!(cat(2).await, Category::NotEligible);
    assert_eq!(cat(3).await, Category::Orphan);
    assert_eq!(cat(4).await, Category::NotEligible);
    s.eligibility.subsistence_minimum_kzt = Some(60_001);
    let r = import_with(
        &store,
        &s,
        csv(&rows).as_bytes(),
        Format::Csv,
        ImportOptions::default(),
        2,
    )
    .await;
    assert_eq!(
        r.counts.updated, 2,
        "categories recomputed with the new minimum"
    );
    assert_eq!(cat(2).await, Category::LowIncome);
    assert_eq!(cat(3).await, Category::LowIncome);
});

backend_test!(
    snapshot_removes_and_revokes,
    |store: Arc<dyn Store>| async move {
        let s = settings();
        let rows = [row(1, 0, ""), row(2, 0, ""), row(3, 0, ""), row(4, 1, "")];
        import(&store, &csv(&rows), ImportOptions::default()).await;
        let p1 = store.pupil_by_iin(&iin(1)).await.unwrap().unwrap();
        let v1 = testkit::issue_voucher(
            store.as_ref(),
            p1.id,
            p1.school_code,
            &s.year_at(MONDAY_9AM).unwrap(),
            10,
        )
        .await;
        let p2 = store.pupil_by_iin(&iin(2)).await.unwrap().unwrap();
        let v2 = testkit::issue_voucher(
            store.as_ref(),
            p2.id,
            p2.school_code,
            &s.year_at(MONDAY_9AM).unwrap(),
            10,
        )
        .await;

        // Incremental never removes.
        let r = import(&store, &csv(&rows[1..3]), ImportOptions::default()).await;
        assert_eq!(r.counts.removed, 0);

        // School 0 listed without pupil 1; school 1 not listed at all.
        let r = import(&store, &csv(&rows[1..3]), SNAPSHOT).await;
        assert_eq!(
            (
                r.counts.removed,
                r.counts.vouchers_revoked,
                r.counts.unchanged
            ),
            (1, 1, 2)
        );
        let p1 = store.pupil_by_iin(&iin(1)).await.unwrap().unwrap();
        assert_eq!(p1.removed_at, Some(MONDAY_9AM - DAY));
        assert!(store
            .pupil_by_iin(&iin(4))
            .await
            .unwrap()
            .unwrap()
            .removed_at
            .is_none());
        let v1 = store.voucher(v1.uuid()).await.unwrap().unwrap();
        assert_eq!(v1.status(), VoucherStatus::Revoked);
        assert_eq!(v1.revoke_reason.as_deref(), Some("removed"));
        assert!(
            v1.change_seq > v2.change_seq,
            "terminals see the revocation"
        );
        assert_eq!(
            store.voucher(v2.uuid()).await.unwrap().unwrap().status(),
            VoucherStatus::Issued
        );
        let audit = store.audit_entries(10).await.unwrap();
        let revoke = audit
            .iter()
            .find(|a| a.action == "voucher.revoke")
            .expect("revocation audited");
        assert_eq!(revoke.subject.as_deref(), Some(v1.id.as_str()));
        assert_eq!(revoke.actor, "test");
        assert_eq!(
            revoke.detail.as_deref(),
            Some("removed: no longer listed in roster.csv")
        );
        assert_eq!(
            audit.iter().filter(|a| a.action == "roster.import").count(),
            3
        );

        // Snapshot again: nothing more to remove; listing pupil 1 again brings it back.
        let r = import(&store, &csv(&rows[1..3]), SNAPSHOT).await;
        assert_eq!((r.counts.removed, r.counts.vouchers_revoked), (0, 0));
        let r = import(&store, &csv(&rows[..3]), SNAPSHOT).await;
        assert_eq!((r.counts.updated, r.counts.removed), (1, 0));
        assert!(store
            .pupil_by_iin(&iin(1))
            .await
            .unwrap()
            .unwrap()
            .removed_at
            .is_none());
    }
);

backend_test!(snapshot_keeps_pupils_of_rejected_rows, |store: Arc<
    dyn Store,
>| async move {
    let rows = [row(1, 0, ""), row(2, 0, "")];
    import(&store, &csv(&rows), ImportOptions::default()).await;
    let typo = [row(1, 0, ""), with(row(2, 0, ""), Column::Grade, "13")];
    let r = import(
        &store,
        &csv(&typo),
        ImportOptions {
            mode: Mode::Snapshot,
            skip_invalid: true,
        },
    )
    .await;
    assert_eq!((r.rejected_rows, r.counts.removed), (1, 0));
    assert!(store
        .pupil_by_iin(&iin(2))
        .await
        .unwrap()
        .unwrap()
        .removed_at
        .is_none());
});

backend_test!(
    file_errors_write_nothing,
    |store: Arc<dyn Store>| async move {
        for (bytes, format, needle) in [
            (&b""[..], Format::Csv, "empty"),
            (
                b"school_bin,student_iin\n1,2\n",
                Format::Csv,
                "missing columns",
            ),
            (b"[{\"school_bin\": ", Format::Json, "not valid JSON"),
            (b"{\"a\": 1}", Format::Json, "array of objects"),
        ] {
            let err = wallet_server::roster::import(
                store.as_ref(),
                &settings(),
                &wallet_server::roster::ImportRequest {
                    name: "x",
                    actor: "test",
                    bytes,
                    format,
                    options: SKIP,
                },
                1,
                &|_, _| {},
            )
            .await
            .unwrap_err()
            .to_string();
            assert!(err.contains(needle), "{err}");
        }
        assert!(store.audit_entries(10).await.unwrap().is_empty());
    }
);

backend_test!(large_import_in_chunks, |store: Arc<dyn Store>| async move {
    // More rows than one multi-row statement holds, across many schools.
    let text = wallet_server::roster::sample::csv(1_234, 7);
    let seen = std::sync::Mutex::new(Vec::new());
    let report = wallet_server::roster::import(
        store.as_ref(),
        &settings(),
        &wallet_server::roster::ImportRequest {
            name: "sample.csv",
            actor: "test",
            bytes: text.as_bytes(),
            format: Format::Csv,
            options: ImportOptions::default(),
        },
        1,
        &|done, total| seen.lock().unwrap().push((done, total)),
    )
    .await
    .unwrap();
    assert_eq!(report.errors, vec![]);
    assert_eq!(
        (report.counts.added, report.counts.schools_created),
        (1_234, 7)
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(500, 1_234), (1_000, 1_234), (1_234, 1_234)]
    );
    let again = import_with(
        &store,
        &settings(),
        text.as_bytes(),
        Format::Csv,
        ImportOptions::default(),
        2,
    )
    .await;
    assert_eq!(again.counts.unchanged, 1_234);
});

backend_test!(
    changes_terminals_show_bump_the_change_number,
    |store: Arc<dyn Store>| async move {
        let s = settings();
        let rows = [row(1, 0, ""), row(2, 0, "")];
        import(&store, &csv(&rows), ImportOptions::default()).await;
        let mut vouchers = Vec::new();
        for n in [1, 2] {
            let p = store.pupil_by_iin(&iin(n)).await.unwrap().unwrap();
            let v = testkit::issue_voucher(
                store.as_ref(),
                p.id,
                p.school_code,
                &s.year_at(MONDAY_9AM).unwrap(),
                10,
            )
            .await;
            vouchers.push(v);
        }
        let seq = |i: usize| {
            let store = store.clone();
            let id = vouchers[i].uuid();
            async move { store.voucher(id).await.unwrap().unwrap().change_seq }
        };
        let (before1, before2) = (seq(0).await, seq(1).await);

        // Pupil 1 renamed and moved to another class: its terminals must re-read the voucher.
        let mut changed = rows.clone();
        changed[0][Column::FirstName.index()] = "Айгерим".into();
        changed[0][Column::ClassLetter.index()] = "Б".into();
        let r = import(&store, &csv(&changed), ImportOptions::default()).await;
        assert_eq!((r.counts.updated, r.counts.unchanged), (1, 1));
        let after1 = seq(0).await;
        assert!(after1 > before1.max(before2), "terminals see the rename");
        assert_eq!(seq(1).await, before2, "unchanged pupil, unchanged voucher");

        // A new priority phone: the wallet's signing cache follows the change number, so it
        // moves although terminals show no phone.
        changed[1][Column::MotherPhone.index()] = "+77019999999".into();
        let r = import(&store, &csv(&changed), ImportOptions::default()).await;
        assert_eq!(r.counts.updated, 1);
        let after2 = seq(1).await;
        assert_eq!(seq(0).await, after1);
        assert!(after2 > before2, "the new priority phone is a change");

        // A father's phone beside the mother's, who stays first: nothing to fetch.
        changed[1][Column::FatherPhone.index()] = "+77018888888".into();
        let r = import(&store, &csv(&changed), ImportOptions::default()).await;
        assert_eq!(r.counts.updated, 1);
        assert_eq!((seq(0).await, seq(1).await), (after1, after2));
    }
);

backend_test!(a_card_names_one_pupil_of_its_school, |store: Arc<
    dyn Store,
>| async move {
    // Two rows of one file giving the same card at one school: the later row is refused.
    let rows = vec![
        with(row(1, 0, ""), Column::CardNumber, "CARD-7"),
        with(row(2, 0, ""), Column::CardNumber, "CARD-7"),
        // The same card at another school is another card.
        with(row(3, 1, ""), Column::CardNumber, "CARD-7"),
    ];
    let report = import(&store, &csv(&rows), ImportOptions::default()).await;
    assert!(!report.applied);
    let shown: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].starts_with("line 3, column card_number:") && shown[0].contains("line 2"),
        "{shown:?}"
    );
    assert!(
        store.pupil_by_iin(&iin(1)).await.unwrap().is_none(),
        "nothing written"
    );

    // Imported apart: the pupil who holds the card keeps it, the later one comes in without.
    let first = vec![rows[0].clone(), rows[2].clone()];
    let report = import(&store, &csv(&first), ImportOptions::default()).await;
    assert!(report.applied && report.counts.card_conflicts.is_empty());
    let report = import(&store, &csv(&[rows[1].clone()]), ImportOptions::default()).await;
    assert!(report.applied);
    assert_eq!(report.counts.added, 1);
    assert_eq!(report.counts.card_conflicts.len(), 1);
    assert_eq!(report.counts.card_conflicts[0].line, 2);
    assert!(
        report.summary().contains("without their card 1"),
        "{}",
        report.summary()
    );
    let holder = store.pupil_by_iin(&iin(1)).await.unwrap().unwrap();
    assert_eq!(holder.card_number.as_deref(), Some("CARD-7"));
    let later = store.pupil_by_iin(&iin(2)).await.unwrap().unwrap();
    assert_eq!(later.card_number, None);
    // Re-importing the holder's own row is no conflict.
    let report = import(&store, &csv(&[rows[0].clone()]), ImportOptions::default()).await;
    assert!(report.counts.card_conflicts.is_empty());
    assert_eq!(report.counts.unchanged, 1);
});

/// The rows with the optional columns `asp_entitled` and `in_family` after the §7.1 ones.
fn csv_with_optional(rows: &[([String; 19], &str, &str)]) -> String {
    let mut out = Column::ALL
        .iter()
        .chain(&Column::OPTIONAL)
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for (r, asp_entitled, in_family) in rows {
        let line = csv(std::slice::from_ref(r));
        let body = line.lines().nth(1).unwrap();
        out.push_str(&format!("{body},{asp_entitled},{in_family}\n"));
    }
    out
}

backend_test!(eligibility_as_written, |store: Arc<dyn Store>| async move {
    let plain = |n| {
        with(
            with(row(n, 0, "+77010000001"), Column::ReceivesAsp, "нет"),
            Column::PerCapitaIncomeKzt,
            "90000",
        )
    };
    let orphan = |n| {
        with(
            with(plain(n), Column::Orphan, "да"),
            Column::GuardianPhone,
            "+77010000003",
        )
    };
    let rows = [
        // Entitled to АСП without receiving it yet.
        (plain(1), "да", ""),
        (plain(2), "нет", ""),
        // An orphan living in a family (column empty: true), asked through the guardian.
        (orphan(3), "", ""),
        (orphan(4), "", "1"),
        // An orphan in a residential institution.
        (orphan(5), "", "жоқ"),
        // With АСП, `in_family` does not matter; the orphan's guardian is still the one asked.
        (with(orphan(6), Column::ReceivesAsp, "1"), "", "false"),
    ];
    let r = import(&store, &csv_with_optional(&rows), ImportOptions::default()).await;
    assert_eq!((r.counts.added, r.rejected_rows), (6, 0), "{:?}", r.errors);
    let pupil = |n| {
        let store = store.clone();
        async move { store.pupil_by_iin(&iin(n)).await.unwrap().unwrap() }
    };
    let want = [
        (1, Category::Asp, "+77010000001"),
        (2, Category::NotEligible, "+77010000001"),
        (3, Category::Orphan, "+77010000003"),
        (4, Category::Orphan, "+77010000003"),
        (5, Category::NotEligible, "+77010000003"),
        (6, Category::Asp, "+77010000003"),
    ];
    for (n, category, phone) in want {
        let p = pupil(n).await;
        assert_eq!(p.category, category, "pupil {n}");
        assert_eq!(p.contact_phone.as_deref(), Some(phone), "pupil {n}");
    }
    assert_eq!(
        pupil(3).await.contact_name,
        None,
        "the guardian's (empty) name"
    );

    // A file without the optional columns still imports: in a family, entitled as it receives.
    let r = import(&store, &csv(&[orphan(7)]), ImportOptions::default()).await;
    assert_eq!(r.counts.added, 1);
    assert_eq!(pupil(7).await.category, Category::Orphan);

    // The same through JSON, with booleans and the optional fields as JSON values.
    let item = |r: [String; 19], field: &str, value: bool| {
        let mut v: serde_json::Value = serde_json::from_str(&json(&[r])).unwrap();
        v[0][field] = serde_json::Value::Bool(value);
        v[0].clone()
    };
    let json = serde_json::Value::Array(vec![
        item(plain(8), "asp_entitled", true),
        item(orphan(9), "in_family", false),
    ])
    .to_string();
    let r = import_with(
        &store,
        &settings(),
        json.as_bytes(),
        Format::Json,
        ImportOptions::default(),
        MONDAY_9AM - DAY,
    )
    .await;
    assert_eq!((r.counts.added, r.rejected_rows), (2, 0), "{:?}", r.errors);
    assert_eq!(pupil(8).await.category, Category::Asp);
    assert_eq!(pupil(9).await.category, Category::NotEligible);

    // Unknown values are refused with the row's line, like other columns; nothing is written.
    let bad = [(plain(10), "возможно", ""), (orphan(11), "", "иногда")];
    let r = import(&store, &csv_with_optional(&bad), ImportOptions::default()).await;
    assert!(!r.applied);
    let errors: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        vec![
            "line 2, column asp_entitled: \"возможно\" is not true/false, 1/0, да/нет or иә/жоқ",
            "line 3, column in_family: \"иногда\" is not true/false, 1/0, да/нет or иә/жоқ",
        ]
    );
    assert!(store.pupil_by_iin(&iin(10)).await.unwrap().is_none());
});

backend_test!(the_minimum_in_force_on_the_import_date, |store: Arc<
    dyn Store,
>| async move {
    use chrono::NaiveDate;
    use wallet_server::config::SubsistenceMinimum;
    let mut s = settings();
    s.eligibility.subsistence_minimum_kzt = None;
    s.eligibility.subsistence_minimum = vec![
        SubsistenceMinimum {
            from: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
            kzt: 53_000,
        },
        SubsistenceMinimum {
            from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            kzt: 50_851,
        },
    ];
    let poor = |n, income: &str| {
        with(
            with(row(n, 0, ""), Column::ReceivesAsp, "false"),
            Column::PerCapitaIncomeKzt,
            income,
        )
    };
    // At each threshold and one tenge below it.
    let rows = [
        poor(1, "50850"),
        poor(2, "50851"),
        poor(3, "52999"),
        poor(4, "53000"),
    ];
    let noon = |y, m, d| {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(7, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp()
    };
    let cats = |store: Arc<dyn Store>| async move {
        let mut out = Vec::new();
        for n in 1..=4 {
            out.push(store.pupil_by_iin(&iin(n)).await.unwrap().unwrap().category);
        }
        out
    };
    use Category::{LowIncome as L, NotEligible as N};
    let bytes = csv(&rows);
    import_with(
        &store,
        &s,
        bytes.as_bytes(),
        Format::Csv,
        ImportOptions::default(),
        noon(2026, 12, 31),
    )
    .await;
    assert_eq!(
        cats(store.clone()).await,
        vec![L, N, N, N],
        "2026: 50,851 ₸"
    );
    let r = import_with(
        &store,
        &s,
        bytes.as_bytes(),
        Format::Csv,
        ImportOptions::default(),
        noon(2027, 1, 4),
    )
    .await;
    assert_eq!(r.counts.updated, 2);
    assert_eq!(
        cats(store.clone()).await,
        vec![L, L, L, N],
        "2027: 53,000 ₸"
    );
});
