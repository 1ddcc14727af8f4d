//! A terminal data dir as after months of use: enrolled, 5,000 vouchers, 100,000 past events.
#![allow(dead_code)]

pub mod frames;

use canteen_terminal::store::{self, Identity, SnapshotApply};
use chrono::{Duration, NaiveDate, NaiveTime};
use shared::calendar::{MealKind, MealWindow, SchoolYear, ServiceDay};
use shared::keys::KeyPair;
use shared::trust::{SignedTrustList, TrustPayload, TrustedKey};
use shared::wire::{Snapshot, SnapshotVoucher, VoucherStatus};
use std::path::Path;
use uuid::Uuid;

pub const SCHOOL_CODE: u32 = 7001;

/// Monday 2026-11-23, 12:00 local.
pub fn bench_now() -> i64 {
    ServiceDay(day0()).unix_at(NaiveTime::from_hms_opt(12, 0, 0).unwrap())
}

fn day0() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
}

pub fn root() -> KeyPair {
    KeyPair::from_seed([1u8; 32])
}

pub fn signer() -> KeyPair {
    KeyPair::from_seed([2u8; 32])
}

pub fn voucher_id(i: usize) -> Uuid {
    Uuid::from_u128(0x2000_0000_0000_0000_0000_0000_0000_0000 + i as u128)
}

/// Seeds `dir` (which must be empty) and returns the voucher ids.
pub async fn seed(dir: &Path, vouchers: usize, past_events: usize) -> Vec<Uuid> {
    let pool = store::open(dir).await.unwrap();
    let now = bench_now();
    let terminal_id = Uuid::from_u128(42);
    store::insert_identity(
        &pool,
        &Identity {
            terminal_id,
            label: Some("Bench".into()),
            school_code: SCHOOL_CODE,
            school_bin: "123456789012".into(),
            school_name: "Bench school".into(),
            server_url: "http://127.0.0.1:9".into(),
            root_public_key: root().public_b64(),
            enrolled_at: now - 90 * 86_400,
        },
        now - 90 * 86_400,
    )
    .await
    .unwrap();
    let s = signer();
    let trust = SignedTrustList::sign(
        &TrustPayload {
            version: 1,
            keys: vec![TrustedKey {
                key_id: s.key_id(),
                public_key: s.public_b64(),
                not_before: 0,
                not_after: i64::MAX / 2,
                verify_until: i64::MAX / 2,
            }],
        },
        &root(),
    );
    let ids: Vec<Uuid> = (0..vouchers).map(voucher_id).collect();
    let snapshot = Snapshot {
        cursor: 1,
        full: true,
        server_time: now,
        trust_list: trust,
        school_code: SCHOOL_CODE,
        calendar: SchoolYear::default_for(day0()),
        next_calendar: None,
        meal_windows: vec![MealWindow::parse(MealKind::Lunch, "11:00-15:00").unwrap()],
        vouchers: ids
            .iter()
            .enumerate()
            .map(|(i, id)| SnapshotVoucher {
                voucher_id: *id,
                status: VoucherStatus::Active,
                valid_from: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
                valid_to: NaiveDate::from_ymd_opt(2027, 5, 25).unwrap(),
                display_name: format!("Оқушы{i} А."),
                grade: (i % 11 + 1) as u8,
                class_letter: "А".into(),
                card_number: Some(format!("{:09}", i)),
                moved_away: false,
            })
            .collect(),
        served_today: vec![],
    };
    store::apply_snapshot(
        &pool,
        &SnapshotApply {
            snapshot: &snapshot,
            trust_version: 1,
            own_terminal_id: terminal_id,
            local_now: now - 3600,
            server_offset: 0,
            last_seen_time: now - 3600,
        },
    )
    .await
    .unwrap();
    // Past lunches: every voucher once per earlier day, newest day first.
    let mut tx = pool.begin().await.unwrap();
    for n in 0..past_events {
        let day = day0() - Duration::days(1 + (n / vouchers.max(1)) as i64);
        let at = ServiceDay(day).unix_at(NaiveTime::from_hms_opt(12, 0, 0).unwrap());
        let v = ids[n % vouchers].to_string();
        // The meal row comes with the `ok` event (trigger).
        sqlx::query(
            "INSERT INTO events (event_id, scanned_at, service_day, verdict, source, meal_kind, \
             voucher_id, key_id) VALUES (?, ?, ?, 'ok', 'qr', 'lunch', ?, ?)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(at)
        .bind(day.to_string())
        .bind(&v)
        .bind(s.key_id().hex())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
    ids
}

pub fn token(voucher: Uuid, issued_at: i64) -> String {
    shared::token::sign(
        &shared::token::TokenRequest {
            voucher_id: voucher,
            school_code: SCHOOL_CODE,
            issued_at: issued_at as u32,
            expires_at: (issued_at + 600) as u32,
        },
        &signer(),
    )
}

pub struct Stats {
    pub n: usize,
    pub median_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub max_us: f64,
}

pub fn stats(mut samples: Vec<std::time::Duration>) -> Stats {
    samples.sort();
    let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    let n = samples.len();
    Stats {
        n,
        median_us: us(samples[n / 2]),
        p99_us: us(samples[(n * 99 / 100).min(n - 1)]),
        mean_us: samples.iter().map(|d| us(*d)).sum::<f64>() / n as f64,
        max_us: us(samples[n - 1]),
    }
}

pub fn print(name: &str, s: &Stats) {
    println!(
        "{name:<58} n={:<6} median {:>8.1} µs  p99 {:>8.1} µs  mean {:>8.1} µs  max {:>8.1} µs",
        s.n, s.median_us, s.p99_us, s.mean_us, s.max_us
    );
}
