//! Property test of the voucher lifecycle across two school years: whatever sequence of roster
//! imports, parents' replies (a `3#2` after consenting withdraws), consent ticks (one instance
//! or two at once) and days passing, no pupil ever holds two vouchers for one school year, a
//! revoked voucher never gets a QR code signed, and no message of the consent process is
//! queued twice.
//! imports (pupils moving between two schools, losing and regaining eligibility, removed and
//! listed again), parents' replies, consent ticks (one instance or two at once) and days
//! passing, no pupil ever holds two vouchers for one school year, a voucher of a year not over
//! is at its pupil's school, and no message is queued twice.

#[path = "core_support/mod.rs"]
mod common;

use common::{csv, iin, row, with, PUBLIC_URL};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use wallet_server::config::Settings;
use wallet_server::consent;
use wallet_server::roster::{self, Column, Format, ImportOptions, ImportRequest, Mode};
use wallet_server::store::{self, testing, Store};
use wallet_server::wallet::issuance;

const PUPILS: usize = 4;

fn settings() -> Settings {
    Settings::from_toml(&format!(
        r#"
[server]
public_url = "{PUBLIC_URL}"
[[school_years]]
start = "2026-09-01"
end = "2027-05-25"
[[school_years]]
start = "2027-09-01"
end = "2028-05-25"
"#
    ))
    .unwrap()
}

fn phone(n: usize) -> String {
    format!("+7701000000{n}")
}

#[derive(Debug, Clone)]
enum Op {
    /// A roster with the pupils of `listed` (bit n-1: pupil n); those of `phones` with their
    /// mother's phone, those of `eligible` receiving АСП (the others in no category), those of
    /// `second` at the second school (the others at the first).
    Import {
        listed: u8,
        phones: u8,
        eligible: u8,
        second: u8,
        snapshot: bool,
    },
    Reply {
        pupil: usize,
        agree: bool,
    },
    Tick,
    /// Two server instances tick at the same moment.
    TickTwice,
    Advance {
        hours: i64,
    },
    /// On to the second year's first day (if not there yet), and a tick.
    NextYear,
}

fn op() -> impl Strategy<Value = Op> {
    let mask = 1u8..(1 << PUPILS);
    prop_oneof![
        2 => (
            mask,
            0u8..(1 << PUPILS),
            0u8..(1 << PUPILS),
            prop_oneof![Just(0u8), 0u8..(1 << PUPILS)],
            any::<bool>()
        )
            .prop_map(|(listed, phones, eligible, second, snapshot)| Op::Import {
                listed,
                phones,
                eligible: eligible | listed & phones, // mostly eligible
                second,
                snapshot,
            }),
        3 => (1..=PUPILS, prop::bool::weighted(0.7))
            .prop_map(|(pupil, agree)| Op::Reply { pupil, agree }),
        3 => Just(Op::Tick),
        1 => Just(Op::TickTwice),
        3 => prop_oneof![1i64..100, (20i64..100).prop_map(|d| d * 24)]
            .prop_map(|hours| Op::Advance { hours }),
    ]
}

/// Raw access to the test database, for what no store call shows: duplicates.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Raw {
    async fn scalar(&self, sql: &str) -> Result<i64, sqlx::Error> {
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Raw::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
    }

    /// `(voucher id, the pupil's priority phone)` of the revoked vouchers.
    async fn revoked(&self) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
        let sql = "SELECT v.id, p.contact_phone FROM vouchers v JOIN pupils p ON p.id = v.pupil_id
                   WHERE v.status = 'revoked'";
        match self {
            Raw::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await,
            Raw::Pg(p) => sqlx::query_as(sql).fetch_all(p).await,
        }
    }

    async fn close(&self) {
        match self {
            Raw::Sqlite(p) => p.close().await,
            Raw::Pg(p) => p.close().await,
        }
    }

    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Raw::Pg(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
    }
}

/// The ops of a case: every pupil listed and asked first, then random ops in the first year,
/// the turn of the year, random ops in the second, and a last tick.
fn case() -> impl Strategy<Value = Vec<Op>> {
    let all = (1u8 << PUPILS) - 1;
    (
        prop::collection::vec(op(), 0..20),
        prop::collection::vec(op(), 0..15),
    )
        .prop_map(move |(first, second)| {
            let mut ops = vec![
                Op::Import {
                    listed: all,
                    phones: all,
                    eligible: all,
                    second: 0,
                    snapshot: false,
                },
                Op::Tick,
            ];
            ops.extend(first);
            ops.push(Op::NextYear);
            ops.extend(second);
            ops.push(Op::Tick);
            ops
        })
}

/// One case on a fresh database, with a second instance's connection pool; both pools are
/// closed before the next case (cases come quickly, PostgreSQL's connections are few).
async fn run(pg: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (first, second, raw, _db) = if pg {
        let (s, db) = testing::postgres().await;
        let other = store::connect_postgres(&db.url).await.unwrap();
        let raw = [Raw::Pg(s.pool.clone()), Raw::Pg(other.pool.clone())];
        (
            Arc::new(s) as Arc<dyn Store>,
            Arc::new(other) as Arc<dyn Store>,
            raw,
            db,
        )
    } else {
        let (s, db) = testing::sqlite().await;
        let other = store::connect_sqlite(&db.url).await.unwrap();
        let raw = [Raw::Sqlite(s.pool.clone()), Raw::Sqlite(other.pool.clone())];
        (
            Arc::new(s) as Arc<dyn Store>,
            Arc::new(other) as Arc<dyn Store>,
            raw,
            db,
        )
    };
    let result = steps(&first, &second, &raw[0], ops).await;
    for r in &raw {
        r.close().await;
    }
    result
}

async fn steps(
    first: &Arc<dyn Store>,
    second: &Arc<dyn Store>,
    raw: &Raw,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let settings = settings();
    let mut now = common::MONDAY_9AM;
    // 2027-09-01 09:00, the second year's first day.
    let turn = common::MONDAY_9AM + 282 * common::DAY;
    assert_eq!(settings.year_at(turn).unwrap().label(), "2027-2028");
    assert!(settings.year_at(turn - common::DAY).is_none());
    for op in &ops {
        match *op {
            Op::Import {
                listed,
                phones,
                eligible,
                second,
                snapshot,
            } => {
                let rows: Vec<[String; 19]> = (1..=PUPILS)
                    .filter(|n| listed & (1 << (n - 1)) != 0)
                    .map(|n| {
                        let has_phone = phones & (1 << (n - 1)) != 0;
                        let mother = if has_phone { phone(n) } else { String::new() };
                        let school = usize::from(second & (1 << (n - 1)) != 0);
                        let r = row(n, school, &mother);
                        let asp = if eligible & (1 << (n - 1)) != 0 {
                            "да"
                        } else {
                            "нет"
                        };
                        with(r, Column::ReceivesAsp, asp)
                    })
                    .collect();
                let text = csv(&rows);
                let mode = if snapshot {
                    Mode::Snapshot
                } else {
                    Mode::Incremental
                };
                let request = ImportRequest {
                    name: "roster.csv",
                    actor: "test",
                    bytes: text.as_bytes(),
                    format: Format::Csv,
                    options: ImportOptions {
                        mode,
                        skip_invalid: false,
                    },
                };
                let report = roster::import(first.as_ref(), &settings, &request, now, &|_, _| {})
                    .await
                    .unwrap();
                prop_assert!(report.applied, "{:?}", report.errors);
            }
            Op::Reply { pupil, agree } => {
                let from = shared::phone::Phone::parse(&phone(pupil)).unwrap();
                let text = if agree { "3#1" } else { "3#2" };
                consent::handle_reply(first.as_ref(), &settings, &from, text, now)
                    .await
                    .unwrap();
            }
            Op::Tick => {
                consent::tick(first.as_ref(), &settings, now).await.unwrap();
            }
            Op::TickTwice => {
                let ticks = [first.clone(), second.clone()].map(|s| {
                    let settings = settings.clone();
                    tokio::spawn(async move { consent::tick(s.as_ref(), &settings, now).await })
                });
                for t in ticks {
                    t.await.unwrap().unwrap();
                }
            }
            Op::Advance { hours } => now += hours * 3600,
            Op::NextYear => {
                now = now.max(turn);
                consent::tick(first.as_ref(), &settings, now).await.unwrap();
            }
        }
        now += 1;

        // No pupil holds two vouchers for one school year ...
        let doubled = raw
            .scalar(
                "SELECT COUNT(*) FROM (SELECT pupil_id, school_year FROM vouchers
                 GROUP BY pupil_id, school_year HAVING COUNT(*) > 1) d",
            )
            .await
            .unwrap();
        prop_assert_eq!(doubled, 0, "after {:?}", op);
        // ... nor a voucher without that year's consent ...
        let unconsented = raw
            .scalar(
                "SELECT COUNT(*) FROM vouchers v WHERE NOT EXISTS (
                    SELECT 1 FROM consents c WHERE c.pupil_id = v.pupil_id
                      AND c.school_year = v.school_year
                      AND c.status IN ('consented', 'withdrawn'))",
            )
            .await
            .unwrap();
        prop_assert_eq!(unconsented, 0, "after {:?}", op);
        // ... nor a working voucher once its consent was withdrawn ...
        let withdrawn_live = raw
            .scalar(
                "SELECT COUNT(*) FROM vouchers v JOIN consents c ON c.pupil_id = v.pupil_id
                   AND c.school_year = v.school_year
                 WHERE c.status = 'withdrawn' AND v.status IN ('issued', 'active')",
            )
            .await
            .unwrap();
        prop_assert_eq!(withdrawn_live, 0, "after {:?}", op);
        // ... and no revoked voucher gets a QR code signed for whoever sees it in the wallet.
        let today = shared::ServiceDay::from_unix(now).date();
        for (id, phone) in raw.revoked().await.unwrap() {
            let Some(phone) = phone else { continue };
            if let Some(v) = first.signing_voucher(&id, &phone).await.unwrap() {
                prop_assert!(
                    issuance::check_usable(&v, &settings, today).is_err(),
                    "revoked voucher {} signable after {:?}",
                    id,
                    op
                );
            }
        }
        // ... and a voucher whose year is not over is at its pupil's school.
        let today = shared::ServiceDay::from_unix(now).to_string();
        let astray = raw
            .scalar(&format!(
                "SELECT COUNT(*) FROM vouchers v JOIN pupils p ON p.id = v.pupil_id
                 WHERE v.status <> 'expired' AND v.valid_to >= '{today}'
                   AND v.school_code <> p.school_code"
            ))
            .await
            .unwrap();
        prop_assert_eq!(astray, 0, "after {:?}", op);
    }

    // No message of the process twice: per phone (one pupil each) and school year, at most one
    // request, one repeat, one confirmation, one refusal, one withdrawal and one new-year
    // voucher (a late `3#1` after a refusal confirms once: DESIGN §11).
    let outbox = first.sms_outbox(10_000).await.unwrap();
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    for sms in &outbox {
        let kind = match sms.kind.as_str() {
            "consent_confirmed" | "consent_refused" | "consent_request" | "consent_repeat"
            | "voucher_issued" | "consent_withdrawn" => sms.kind.as_str(),
            _ => continue,
        };
        let year = settings
            .year_at(sms.created_at)
            .map(|y| y.label())
            .expect("the process writes only within a school year");
        *seen
            .entry((sms.to_phone.clone(), kind.to_owned(), year))
            .or_default() += 1;
    }
    for (key, n) in &seen {
        prop_assert_eq!(*n, 1, "{:?} queued {} times; ops {:?}", key, n, ops);
    }
    // A parent hears of a revocation for eligibility at most once per revocation.
    for n in 1..=PUPILS {
        let told = outbox
            .iter()
            .filter(|s| s.kind == "voucher_revoked" && s.to_phone == phone(n))
            .count() as i64;
        let revocations = raw
            .scalar(&format!(
                "SELECT COUNT(*) FROM audit_log a JOIN vouchers v ON v.id = a.subject
                 JOIN pupils p ON p.id = v.pupil_id
                 WHERE a.action = 'voucher.revoke' AND a.detail LIKE 'not_eligible%'
                   AND p.iin = '{}'",
                iin(n)
            ))
            .await
            .unwrap();
        prop_assert!(
            told <= revocations,
            "pupil {}: {} SMS for {} revocations; ops {:?}",
            n,
            told,
            revocations,
            ops
        );
    }
    // Every new-year voucher SMS names a voucher of a standing consent.
    for ((to, kind, year), _) in seen.iter().filter(|((_, k, _), _)| k == "voucher_issued") {
        let n: usize = to[to.len() - 1..].parse().unwrap();
        let pupil = first.pupil_by_iin(&iin(n)).await.unwrap().unwrap();
        let consent = first
            .consent_for_pupil(pupil.id, year)
            .await
            .unwrap()
            .unwrap();
        prop_assert!(consent.carried_from.is_some(), "{} {} {}", to, kind, year);
        prop_assert!(first
            .voucher_for_pupil(pupil.id, year)
            .await
            .unwrap()
            .is_some());
    }
    // And the database itself refuses a second voucher for a pupil and year.
    let existing = raw.scalar("SELECT COUNT(*) FROM vouchers").await.unwrap();
    if existing > 0 {
        let again = raw
            .exec(
                "INSERT INTO vouchers (id, pupil_id, school_code, school_year, status, valid_from,
                    valid_to, issued_at)
                 SELECT 'dup-' || id, pupil_id, school_code, school_year, 'issued', valid_from,
                    valid_to, issued_at FROM vouchers",
            )
            .await;
        prop_assert!(
            again.is_err(),
            "a second voucher for a pupil and year was stored"
        );
    }
    Ok(())
}

fn check(pg: bool, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        // Each case is a fresh database; shrinking replays many of them.
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    });
    runner
        .run(&case(), |ops| rt.block_on(run(pg, ops)))
        .unwrap();
}

#[test]
fn two_years_of_random_events_sqlite() {
    check(false, 32);
}

#[test]
#[ignore = "needs PostgreSQL: set TAMAQ_TEST_PG_URL and run with --include-ignored"]
fn two_years_of_random_events_postgres() {
    check(true, 8);
}
