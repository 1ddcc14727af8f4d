//! The consent process through 3 + 3 days with a manual clock, on SQLite and PostgreSQL:
//! exactly the SMS of §7.2 in the outbox file, the statuses, the transitions and the vouchers.

#[path = "core_support/mod.rs"]
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wallet_server::backend_test;
use wallet_server::config::{Lang, Settings};
use wallet_server::consent::{self, texts, ConsentStatus, ReplyOutcome, TickReport};
use wallet_server::lifecycle::{self, IssueReason};
use wallet_server::roster::{Column, ImportOptions};
use wallet_server::sms::file::{read_outbox, FileGateway};
use wallet_server::sms::{self, OutgoingSms};
use wallet_server::store::vouchers::NewVoucher;
use wallet_server::store::Store;

const M1: &str = "+77010000001"; // mother of pupils 1 and 2 (siblings)
const F3: &str = "+77010000003"; // father of pupil 3 (no mother's phone)
const M6: &str = "+77010000006"; // refuses
const M7: &str = "+77010000007"; // agrees early
const P5: &str = "+77010000005"; // parent of a pupil who is not eligible

struct World {
    store: Arc<dyn Store>,
    settings: Settings,
    gateway: FileGateway,
    outbox: PathBuf,
    seen: usize,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(store: Arc<dyn Store>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox").join("sms.jsonl");
        World {
            store,
            settings: settings(),
            gateway: FileGateway::new(outbox.clone()),
            outbox,
            seen: 0,
            _dir: dir,
        }
    }

    async fn tick(&self, at: i64) -> TickReport {
        let report = consent::tick(self.store.as_ref(), &self.settings, at)
            .await
            .unwrap();
        sms::deliver_due(self.store.as_ref(), &self.gateway, at)
            .await
            .unwrap();
        report
    }

    async fn reply(&self, from: &str, text: &str, at: i64) -> ReplyOutcome {
        let phone = shared::phone::Phone::parse(from).unwrap();
        let out = consent::handle_reply(self.store.as_ref(), &self.settings, &phone, text, at)
            .await
            .unwrap();
        sms::deliver_due(self.store.as_ref(), &self.gateway, at)
            .await
            .unwrap();
        out
    }

    /// The SMS appended to the outbox file since the last call, sorted by (to, kind).
    fn new_sms(&mut self) -> Vec<OutgoingSms> {
        let all = read_outbox(&self.outbox).unwrap();
        let mut fresh = all[self.seen..].to_vec();
        self.seen = all.len();
        fresh.sort_by(|a, b| (&a.to, &a.kind, &a.text).cmp(&(&b.to, &b.kind, &b.text)));
        fresh
    }

    async fn status(&self, n: usize) -> Option<ConsentStatus> {
        let pupil = self.store.pupil_by_iin(&iin(n)).await.unwrap().unwrap();
        self.store
            .consent_for_pupil(pupil.id, "2026-2027")
            .await
            .unwrap()
            .map(|c| c.status)
    }

    async fn transitions(&self, n: usize) -> Vec<(String, i64)> {
        let pupil = self.store.pupil_by_iin(&iin(n)).await.unwrap().unwrap();
        let c = self
            .store
            .consent_for_pupil(pupil.id, "2026-2027")
            .await
            .unwrap()
            .unwrap();
        self.store
            .consent_transitions(c.id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.status, t.at))
            .collect()
    }

    async fn has_voucher(&self, n: usize) -> bool {
        let pupil = self.store.pupil_by_iin(&iin(n)).await.unwrap().unwrap();
        self.store
            .voucher_for_pupil(pupil.id, "2026-2027")
            .await
            .unwrap()
            .is_some()
    }
}

fn sms_of(list: &[OutgoingSms]) -> Vec<(&str, &str)> {
    list.iter()
        .map(|s| (s.to.as_str(), s.kind.as_str()))
        .collect()
}

fn roster() -> String {
    let sibling = with(
        with(row(2, 0, M1), Column::ReceivesAsp, "нет"),
        Column::PerCapitaIncomeKzt,
        "30 000",
    );
    let father_only = with(
        with(
            with(
                with(row(3, 1, ""), Column::FatherPhone, "8 701 000 00 03"),
                Column::Lang,
                "kk",
            ),
            Column::ReceivesAsp,
            "жоқ",
        ),
        Column::Orphan,
        "иә",
    );
    let not_eligible = with(
        with(row(5, 0, P5), Column::ReceivesAsp, "0"),
        Column::PerCapitaIncomeKzt,
        "90000",
    );
    csv(&[
        row(1, 0, M1),
        sibling,
        father_only,
        row(4, 1, ""),
        not_eligible,
        with(row(6, 0, M6), Column::Lang, "kk"),
        row(7, 1, M7),
    ])
}

backend_test!(three_plus_three_days, |store: Arc<dyn Store>| async move {
    let mut w = World::new(store.clone()).await;
    let r = import(&store, &roster(), ImportOptions::default()).await;
    assert_eq!((r.counts.added, r.rejected_rows), (7, 0));
    let t0 = MONDAY_9AM;

    // Day 0: a request to every eligible family with a phone; no_phone recorded and ended.
    let report = w.tick(t0).await;
    assert_eq!(
        report,
        TickReport {
            requested: 5,
            no_phone: 1,
            repeated: 0,
            expired: 0,
            vouchers_issued: 0,
            ..TickReport::default()
        }
    );
    let sent = w.new_sms();
    assert_eq!(
        sms_of(&sent),
        vec![
            (M1, "consent_request"),
            (M1, "consent_request"),
            (F3, "consent_request"),
            (M6, "consent_request"),
            (M7, "consent_request"),
        ],
        "nothing to {P5}: not eligible"
    );
    let to_m1: Vec<&str> = sent
        .iter()
        .filter(|s| s.to == M1)
        .map(|s| s.text.as_str())
        .collect();
    let expect_ru =
        |child: &str| texts::request(Lang::Ru, Some("Сапарова Динара Ерлановна"), child);
    assert!(to_m1.contains(&expect_ru("Сапаров Алихан1 Русланович").as_str()));
    assert!(to_m1.contains(&expect_ru("Сапаров Алихан2 Русланович").as_str()));
    let to_f3 = sent.iter().find(|s| s.to == F3).unwrap();
    assert_eq!(
        to_f3.text,
        texts::request(
            Lang::Kk,
            Some("Сапаров Руслан Маратович"),
            "Сапаров Алихан3 Русланович"
        ),
        "father asked, in Kazakh"
    );
    assert!(to_f3.text.starts_with("Құрметті Сапаров Руслан Маратович!"));
    assert_eq!(to_f3.created_at, "2026-11-23T04:00:00Z");
    assert_eq!(w.status(4).await, Some(ConsentStatus::NoPhone));
    assert_eq!(w.transitions(4).await, vec![("no_phone".into(), t0)]);
    assert_eq!(w.status(5).await, None, "not eligible: never asked");
    assert_eq!(w.status(1).await, Some(ConsentStatus::Requested));

    // A second tick the same day changes nothing.
    assert_eq!(w.tick(t0 + 60).await, TickReport::default());
    assert!(w.new_sms().is_empty());

    // Day 1: agreement, refusal, and a text that is not an answer.
    let t1 = t0 + DAY;
    assert_eq!(
        w.reply(M7, " 3 #1 ", t1).await,
        ReplyOutcome::Consented {
            consents: 1,
            vouchers: 1
        }
    );
    assert_eq!(
        w.reply(M6, "3# 2", t1).await,
        ReplyOutcome::Refused { consents: 1 }
    );
    assert_eq!(
        w.reply(M1, "да, согласна", t1).await,
        ReplyOutcome::Help { answered: true }
    );
    let sent = w.new_sms();
    assert_eq!(
        sms_of(&sent),
        vec![
            (M1, "help"),
            (M6, "consent_refused"),
            (M7, "consent_confirmed")
        ]
    );
    assert_eq!(sent[0].text, texts::help(Some(Lang::Ru)));
    // The pilot's texts 2 and 3, each followed by the child it applied to (DESIGN §11).
    assert_eq!(
        sent[1].text,
        "Сіз қызметті алудан бас тарттыңыз. Бала: Сапаров Алихан6 Русланович."
    );
    assert_eq!(
        sent[2].text,
        format!("Ваше согласие на получение бесплатного питания обработано положительно. Для получения цифрового ваучера Вам необходимо зарегистрироваться в приложении \"Социальный кошелек\" перейдя по ссылке {PUBLIC_URL}/wallet. Ребенок: Сапаров Алихан7 Русланович.")
    );
    assert_eq!(w.status(7).await, Some(ConsentStatus::Consented));
    assert!(w.has_voucher(7).await);
    assert_eq!(w.status(6).await, Some(ConsentStatus::Refused));
    assert!(!w.has_voucher(6).await);
    assert_eq!(
        w.status(1).await,
        Some(ConsentStatus::Requested),
        "help changes nothing"
    );

    // Day 2, and one second before day 3: nothing is due.
    assert_eq!(w.tick(t0 + 2 * DAY).await, TickReport::default());
    assert_eq!(w.tick(t0 + 3 * DAY - 1).await, TickReport::default());
    assert!(w.new_sms().is_empty());

    // Day 3: the repeat, to those still silent.
    let t3 = t0 + 3 * DAY;
    let report = w.tick(t3).await;
    assert_eq!(report.repeated, 3);
    let sent = w.new_sms();
    assert_eq!(
        sms_of(&sent),
        vec![
            (M1, "consent_repeat"),
            (M1, "consent_repeat"),
            (F3, "consent_repeat")
        ]
    );
    assert_eq!(sent[2].text, to_f3.text, "the repeat is text 1 again");
    assert_eq!(w.status(3).await, Some(ConsentStatus::Repeated));

    // Day 4: one answer from the mother covers both children.
    let t4 = t0 + 4 * DAY;
    assert_eq!(
        w.reply("8 701 000 00 01", "3#1", t4).await,
        ReplyOutcome::Consented {
            consents: 2,
            vouchers: 2
        }
    );
    assert_eq!(sms_of(&w.new_sms()), vec![(M1, "consent_confirmed")]);
    assert!(w.has_voucher(1).await && w.has_voucher(2).await);

    // Day 6 minus a second: not yet; day 6: the silent one expires, without an SMS.
    assert_eq!(w.tick(t3 + 3 * DAY - 1).await, TickReport::default());
    let report = w.tick(t3 + 3 * DAY).await;
    assert_eq!(
        report,
        TickReport {
            expired: 1,
            ..TickReport::default()
        }
    );
    assert!(w.new_sms().is_empty());
    assert_eq!(w.status(3).await, Some(ConsentStatus::Expired));

    // Day 7: a late answer from the asked number is a consent (DESIGN §11), confirmed as
    // usual; a second one finds nothing awaiting an answer.
    assert_eq!(
        w.reply(F3, "3#1", t0 + 7 * DAY).await,
        ReplyOutcome::Consented {
            consents: 1,
            vouchers: 1
        }
    );
    assert_eq!(sms_of(&w.new_sms()), vec![(F3, "consent_confirmed")]);
    assert_eq!(w.status(3).await, Some(ConsentStatus::Consented));
    assert!(w.has_voucher(3).await);
    assert_eq!(
        w.reply(F3, "3#1", t0 + 7 * DAY + 60).await,
        ReplyOutcome::NothingPending { answered: true }
    );
    let sent = w.new_sms();
    assert_eq!(sms_of(&sent), vec![(F3, "help")]);
    assert_eq!(sent[0].text, texts::nothing_pending(Some(Lang::Kk)));

    // Every transition with its time.
    assert_eq!(
        w.transitions(3).await,
        vec![
            ("requested".into(), t0),
            ("repeated".into(), t3),
            ("expired".into(), t3 + 3 * DAY),
            ("consented".into(), t0 + 7 * DAY)
        ]
    );
    assert_eq!(
        w.transitions(1).await,
        vec![
            ("requested".into(), t0),
            ("repeated".into(), t3),
            ("consented".into(), t4)
        ]
    );
    assert_eq!(
        w.transitions(7).await,
        vec![("requested".into(), t0), ("consented".into(), t1)]
    );
    assert_eq!(
        w.transitions(6).await,
        vec![("requested".into(), t0), ("refused".into(), t1)]
    );

    // Exactly one voucher per consented pupil, valid for the school year.
    for n in [1, 2, 3, 7] {
        let p = store.pupil_by_iin(&iin(n)).await.unwrap().unwrap();
        let v = store
            .voucher_for_pupil(p.id, "2026-2027")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (v.valid_from.as_str(), v.valid_to.as_str()),
            ("2026-09-01", "2027-05-25")
        );
        assert_eq!(v.status, "issued");
        assert_eq!(v.school_code, p.school_code);
    }
    // The whole outbox: 5 requests, 3 repeats, 3 confirmations (one late), 1 refusal, 2 help
    // texts.
    let all = read_outbox(&w.outbox).unwrap();
    let count = |k: &str| all.iter().filter(|s| s.kind == k).count();
    assert_eq!(
        [
            count("consent_request"),
            count("consent_repeat"),
            count("consent_confirmed"),
            count("consent_refused"),
            count("help")
        ],
        [5, 3, 3, 1, 2]
    );
    assert_eq!(all.len(), 14);
    assert_eq!(store.unsent_sms_count().await.unwrap(), 0);
    let ids: std::collections::HashSet<_> = all.iter().map(|s| &s.id).collect();
    assert_eq!(ids.len(), 14);
});

backend_test!(voucher_catch_up_and_removed_pupils, |store: Arc<
    dyn Store,
>| async move {
    let w = World::new(store.clone()).await;
    import(
        &store,
        &csv(&[row(1, 0, M1), row(2, 0, M6)]),
        ImportOptions::default(),
    )
    .await;
    w.tick(MONDAY_9AM).await;
    // Pupil 2 leaves the roster: its request is neither repeated nor answerable.
    import(
        &store,
        &csv(&[row(1, 0, M1)]),
        ImportOptions {
            mode: wallet_server::roster::Mode::Snapshot,
            skip_invalid: false,
        },
    )
    .await;
    assert_eq!(
        w.reply(M6, "3#1", MONDAY_9AM + 10).await,
        ReplyOutcome::NothingPending { answered: true }
    );
    let report = w.tick(MONDAY_9AM + 3 * DAY).await;
    assert_eq!(report.repeated, 1);
    // A consent without its voucher (a crash between the two) is healed by the next tick.
    let p1 = store.pupil_by_iin(&iin(1)).await.unwrap().unwrap();
    store
        .answer_consents(
            "2026-2027",
            M1,
            ConsentStatus::Consented,
            MONDAY_9AM + 4 * DAY,
            "test",
            &|_| None,
        )
        .await
        .unwrap();
    assert!(store
        .voucher_for_pupil(p1.id, "2026-2027")
        .await
        .unwrap()
        .is_none());
    let report = w.tick(MONDAY_9AM + 4 * DAY + 60).await;
    assert_eq!(report.vouchers_issued, 1);
    assert!(store
        .voucher_for_pupil(p1.id, "2026-2027")
        .await
        .unwrap()
        .is_some());
    assert_eq!(w.tick(MONDAY_9AM + 4 * DAY + 120).await.vouchers_issued, 0);
});

backend_test!(
    help_answers_are_limited,
    |store: Arc<dyn Store>| async move {
        let mut w = World::new(store.clone()).await;
        for i in 0..5 {
            let out = w.reply("+77077777777", "hello", MONDAY_9AM + i).await;
            assert_eq!(out, ReplyOutcome::Help { answered: i < 3 });
        }
        let sent = w.new_sms();
        assert_eq!(sent.len(), 3);
        assert_eq!(
            sent[0].text,
            texts::help(None),
            "unknown number: both languages"
        );
        // A day later the number may be answered again.
        assert_eq!(
            w.reply("+77077777777", "?", MONDAY_9AM + DAY + 5).await,
            ReplyOutcome::Help { answered: true }
        );
    }
);

backend_test!(no_new_requests_after_the_school_year, |store: Arc<
    dyn Store,
>| async move {
    let w = World::new(store.clone()).await;
    import(&store, &csv(&[row(1, 0, M1)]), ImportOptions::default()).await;
    // 2027-05-26 09:00 local: the day after the year ends.
    let after = chrono::DateTime::parse_from_rfc3339("2027-05-26T09:00:00+05:00")
        .unwrap()
        .timestamp();
    assert_eq!(
        shared::ServiceDay::from_unix(after).to_string(),
        "2027-05-26"
    );
    assert_eq!(w.tick(after).await, TickReport::default());
    assert!(read_outbox(Path::new(&w.outbox)).unwrap().is_empty());
});

backend_test!(
    vouchers_issued_in_bulk_once_each_with_their_own_change_number,
    |store: Arc<dyn Store>| async move {
        let w = World::new(store.clone()).await;
        let rows: Vec<[String; 19]> = (1..=40)
            .map(|n| row(n, n % 2, &format!("+770100{:05}", 100 + n)))
            .collect();
        import(&store, &csv(&rows), ImportOptions::default()).await;
        w.tick(MONDAY_9AM).await;
        let year = w.settings.year_at(MONDAY_9AM).unwrap();
        let mut due = Vec::new();
        for n in 1..=40 {
            let p = store.pupil_by_iin(&iin(n)).await.unwrap().unwrap();
            due.push((p.id, p.school_code));
        }
        // Pupil 1 already got its voucher (say, from its parent's reply).
        let first = wallet_server::testkit::issue_voucher(
            store.as_ref(),
            due[0].0,
            due[0].1,
            &year,
            MONDAY_9AM,
        )
        .await;
        let rows: Vec<NewVoucher> = due
            .iter()
            .map(|&(pupil_id, school_code)| NewVoucher {
                pupil_id,
                school_code,
                sms: None,
            })
            .collect();
        let issue = |at| {
            lifecycle::issue(
                store.as_ref(),
                &year,
                &rows,
                IssueReason::Consented,
                "t",
                at,
            )
        };
        assert_eq!(issue(MONDAY_9AM + 1).await.unwrap().len(), 39);
        assert_eq!(issue(MONDAY_9AM + 2).await.unwrap().len(), 0);
        let mut seqs = Vec::new();
        for &(pupil, school) in &due {
            let v = store
                .voucher_for_pupil(pupil, &year.label())
                .await
                .unwrap()
                .expect("every pupil has a voucher");
            assert_eq!(v.school_code, school);
            assert_eq!(v.status, "issued");
            seqs.push(v.change_seq);
        }
        assert_eq!(seqs[0], first.change_seq);
        let mut distinct = seqs.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 40, "change numbers {seqs:?}");
        assert!(seqs[1..].iter().all(|&s| s > first.change_seq));
    }
);

backend_test!(
    a_mailing_reaches_every_eligible_pupil_across_id_windows,
    |store: Arc<dyn Store>| async move {
        use wallet_server::eligibility::Category;
        // More pupils than one id window of the tick (1,000), so the walk crosses windows.
        let text = wallet_server::roster::sample::csv(2_300, 3);
        import(&store, &text, ImportOptions::default()).await;
        // The last 150 leave the roster before the mailing: in the last window, never asked.
        let kept: String = text
            .lines()
            .take(1 + 2_150)
            .map(|l| format!("{l}\n"))
            .collect();
        import(
            &store,
            &kept,
            ImportOptions {
                mode: wallet_server::roster::Mode::Snapshot,
                skip_invalid: false,
            },
        )
        .await;
        let w = World::new(store.clone()).await;
        let report = w.tick(MONDAY_9AM).await;
        let year = w.settings.year_at(MONDAY_9AM).unwrap().label();

        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let iin_at = Column::StudentIin.index();
        let (mut eligible, mut asked, mut phones, mut removed) = (0, 0, Vec::new(), 0);
        for row in rows.records() {
            let row = row.unwrap();
            let pupil = store.pupil_by_iin(&row[iin_at]).await.unwrap().unwrap();
            let consent = store.consent_for_pupil(pupil.id, &year).await.unwrap();
            if pupil.removed_at.is_some() {
                assert!(consent.is_none(), "pupil {} left the roster", pupil.id);
                removed += 1;
                continue;
            }
            if pupil.category == Category::NotEligible {
                assert!(consent.is_none(), "pupil {} is not eligible", pupil.id);
                continue;
            }
            eligible += 1;
            let consent = consent.unwrap_or_else(|| panic!("pupil {} was never asked", pupil.id));
            match consent.status {
                ConsentStatus::Requested => {
                    asked += 1;
                    phones.push(consent.phone.clone().unwrap());
                }
                ConsentStatus::NoPhone => assert!(pupil.contact_phone.is_none()),
                other => panic!("pupil {}: {other:?}", pupil.id),
            }
        }
        assert!(eligible > 1_000, "{eligible} eligible");
        assert_eq!(removed, 150);
        assert_eq!(report.requested, asked);
        assert_eq!(report.no_phone, eligible - asked);
        assert_eq!(read_outbox(&w.outbox).unwrap().len(), asked);
        assert_eq!(w.tick(MONDAY_9AM + 60).await, TickReport::default());

        // Every parent agrees, but no voucher is made with the answer (a crash in between): the
        // voucher step of the tick issues all of them, once.
        let at = MONDAY_9AM + 3600;
        for phone in &phones {
            store
                .answer_consents(&year, phone, ConsentStatus::Consented, at, "test", &|_| {
                    None
                })
                .await
                .unwrap();
        }
        let issued = consent::issue_vouchers(store.as_ref(), &w.settings, at)
            .await
            .unwrap();
        assert_eq!(issued, asked);
        assert_eq!(
            consent::issue_vouchers(store.as_ref(), &w.settings, at)
                .await
                .unwrap(),
            0
        );
    }
);

backend_test!(a_phone_added_later_starts_the_process, |store: Arc<
    dyn Store,
>| async move {
    use chrono::NaiveDate;
    use wallet_server::nobd::build::day_window;
    let mut w = World::new(store.clone()).await;
    import(&store, &roster(), ImportOptions::default()).await;
    let t0 = MONDAY_9AM;
    assert_eq!(w.tick(t0).await.no_phone, 1);
    assert_eq!(w.status(4).await, Some(ConsentStatus::NoPhone));
    w.new_sms();

    // Two days later NOBD's roster gives pupil 4's family a phone.
    const M4: &str = "+77010000004";
    let t2 = t0 + 2 * DAY;
    let r = import_with(
        &store,
        &w.settings,
        csv(&[row(4, 1, M4)]).as_bytes(),
        wallet_server::roster::Format::Csv,
        ImportOptions::default(),
        t2 - 3600,
    )
    .await;
    assert_eq!(r.counts.updated, 1);
    // Nothing is sent by the import itself: the next tick asks.
    assert!(w.new_sms().is_empty());
    let report = w.tick(t2).await;
    assert_eq!(
        report,
        TickReport {
            phones_added: 1,
            ..TickReport::default()
        }
    );
    let sent = w.new_sms();
    assert_eq!(sms_of(&sent), vec![(M4, "consent_request")]);
    assert_eq!(
        sent[0].text,
        texts::request(
            Lang::Ru,
            Some("Сапарова Динара Ерлановна"),
            "Сапаров Алихан4 Русланович"
        )
    );
    assert_eq!(w.status(4).await, Some(ConsentStatus::Requested));
    assert_eq!(
        w.transitions(4).await,
        vec![("no_phone".to_owned(), t0), ("requested".to_owned(), t2)]
    );
    let audit = store.audit_entries(50).await.unwrap();
    let restarts: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "consent.phone_added")
        .collect();
    assert_eq!(restarts.len(), 1, "{audit:?}");
    assert_eq!(restarts[0].at, t2);

    // Once: the next tick has nothing to restart; the 3 days count from the new request.
    assert_eq!(w.tick(t2 + 60).await, TickReport::default());
    assert!(w.new_sms().is_empty());
    // (The other families, asked on day 0, are repeated meanwhile.)
    w.tick(t2 + 3 * DAY - 60).await;
    assert_eq!(w.status(4).await, Some(ConsentStatus::Requested));
    assert!(!sms_of(&w.new_sms()).iter().any(|(to, _)| *to == M4));
    let report = w.tick(t2 + 3 * DAY).await;
    assert_eq!(report.repeated, 1, "{report:?}");
    assert_eq!(sms_of(&w.new_sms()), vec![(M4, "consent_repeat")]);

    // The family agrees: the voucher, and the outcome reaches NOBD on that day.
    let t_yes = t2 + 3 * DAY + 3600;
    assert!(matches!(
        w.reply(M4, "3#1", t_yes).await,
        ReplyOutcome::Consented { .. }
    ));
    assert!(w.has_voucher(4).await);
    let day = |t: i64| {
        let d: NaiveDate = shared::ServiceDay::from_unix(t).date();
        day_window(d)
    };
    let outcomes = |rows: Vec<wallet_server::store::nobd::ConsentOutcomeRow>| {
        rows.into_iter()
            .filter(|c| c.pupil_iin == iin(4))
            .map(|c| c.status)
            .collect::<Vec<_>>()
    };
    let first = store.nobd_day_data(&day(t0), None).await.unwrap();
    assert_eq!(outcomes(first.consents), vec!["no_phone"]);
    let restart_day = store.nobd_day_data(&day(t2), None).await.unwrap();
    assert!(outcomes(restart_day.consents).is_empty());
    let last = store.nobd_day_data(&day(t_yes), None).await.unwrap();
    assert_eq!(outcomes(last.consents), vec!["consented"]);
});

backend_test!(
    a_phone_for_a_pupil_not_eligible_asks_nobody,
    |store: Arc<dyn Store>| async move {
        let mut w = World::new(store.clone()).await;
        let not_eligible = |phone| {
            with(
                with(row(4, 1, phone), Column::ReceivesAsp, "0"),
                Column::PerCapitaIncomeKzt,
                "90000",
            )
        };
        // Eligible without a phone: no_phone; then listed as not eligible, with a phone.
        import(&store, &csv(&[row(4, 1, "")]), ImportOptions::default()).await;
        assert_eq!(w.tick(MONDAY_9AM).await.no_phone, 1);
        import(
            &store,
            &csv(&[not_eligible("+77010000004")]),
            ImportOptions::default(),
        )
        .await;
        assert_eq!(w.tick(MONDAY_9AM + DAY).await, TickReport::default());
        assert!(w.new_sms().is_empty());
        assert_eq!(w.status(4).await, Some(ConsentStatus::NoPhone));
    }
);
