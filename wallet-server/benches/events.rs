//! Event upload throughput (DESIGN §8: ≥ 20,000 events/s in batches of 500), end to end: JSON
//! over HTTP on loopback into the server running in-process, stored durably (SQLite file with
//! `synchronous=FULL`; PostgreSQL too when `TAMAQ_TEST_PG_URL` is set).
//!
//! cargo bench -p wallet-server --bench events
//! TAMAQ_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p wallet-server --bench events
//!
//! Event ids are time-ordered, as the terminal makes them; `TAMAQ_BENCH_RANDOM_IDS=1` sends
//! random (v4) ids instead, as terminals built before that change do.
//!
//! Served events carry their token (`proof`) and the server verifies each signature as it
//! stores the batch. `TAMAQ_BENCH_CARD=1` sends the same events as card serves instead: every
//! check of the proof rules but the token's signature, to measure what the signature costs.

use shared::calendar::{MealKind, ServiceDay};
use shared::verdict::Verdict;
use shared::wire::{
    EnrollRequest, EnrollResponse, EventAck, EventUpload, ScanSource, TerminalEvent,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use wallet_server::clock::Clock;
use wallet_server::config::{Paths, Settings};
use wallet_server::eligibility::Category;
use wallet_server::store::roster::NewPupil;
use wallet_server::AppState;

const BATCH: usize = 500;
const BATCHES_PER_TERMINAL: usize = 60;
const VOUCHERS_PER_SCHOOL: usize = 1000;
const TERMINALS: usize = 4;
const BINS: [&str; TERMINALS] = [
    "000140000002",
    "000240000006",
    "000340000002",
    "000440000003",
];
const MONDAY_NOON: i64 = wallet_server::testkit::MONDAY_9AM + 3 * 3600;

struct Terminal {
    auth: String,
    batches: Vec<Vec<u8>>,
}

async fn open(pg_url: Option<&str>, dir: &std::path::Path) -> AppState {
    let url = match pg_url {
        Some(u) => u.to_owned(),
        None => format!("sqlite://{}", dir.join("tamaq.db").display()),
    };
    let paths = Paths::new(dir.to_path_buf(), Some(url));
    let store = wallet_server::store::connect(&paths.database_url)
        .await
        .expect("open store");
    // After the last day of the terminals' logs: the uploads come after the scans.
    let clock = Clock::manual(MONDAY_NOON + 40 * 86_400);
    AppState::assemble(store, Settings::default(), paths, clock, false)
        .await
        .expect("assemble state")
}

fn pupil(iin: String, school_code: i64) -> NewPupil {
    NewPupil {
        iin,
        school_code,
        last_name: "Фамилия".into(),
        first_name: "Имя".into(),
        middle_name: None,
        grade: 2,
        class_letter: "А".into(),
        receives_asp: true,
        per_capita_income_kzt: None,
        orphan: false,
        mother_name: None,
        mother_phone: Some("+77010000001".into()),
        father_name: None,
        father_phone: None,
        guardian_name: None,
        guardian_phone: None,
        card_number: None,
        lang: "kk".into(),
        category: Category::Asp,
        contact_phone: Some("+77010000001".into()),
        contact_name: None,
    }
}

/// The terminal's event id for a scan at `scanned_at` (or a v4 id, see the header).
fn event_id(scanned_at: i64) -> Uuid {
    if std::env::var_os("TAMAQ_BENCH_RANDOM_IDS").is_some() {
        return Uuid::new_v4();
    }
    uuid::Builder::from_unix_timestamp_millis(scanned_at as u64 * 1000, &rand::random()).into_uuid()
}

/// One school per terminal, its vouchers, and the terminal's log: each voucher served once a
/// day (about 1 in 10 scans refused), spread over consecutive days.
async fn seed(state: &AppState, http: &reqwest::Client, base: &str) -> Vec<Terminal> {
    let mut terminals = Vec::new();
    for (n, bin) in BINS.iter().enumerate() {
        let school = state
            .store
            .upsert_school(bin, &format!("School {n}"), 1)
            .await
            .unwrap();
        let mut vouchers = Vec::new();
        for i in 0..VOUCHERS_PER_SCHOOL {
            let id = state
                .store
                .upsert_pupil(&pupil(format!("{n}-{i}"), school.code), 1)
                .await
                .unwrap();
            let store = state.store.as_ref();
            let year = state.settings.year_at(state.now()).expect("a school year");
            let v = wallet_server::testkit::issue_voucher(store, id, school.code, &year, 1).await;
            wallet_server::testkit::activate_voucher(store, &v, 2).await;
            vouchers.push(v.uuid());
        }
        let code = wallet_server::terminal_sync::enroll::create_code(state, bin, "bench")
            .await
            .unwrap()
            .code;
        let resp: EnrollResponse = http
            .post(format!("{base}/api/v1/terminal/enroll"))
            .json(&EnrollRequest {
                code,
                label: Some(format!("T{n}")),
                terminal_key: None,
            })
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let total = BATCH * BATCHES_PER_TERMINAL;
        let card = std::env::var_os("TAMAQ_BENCH_CARD").is_some();
        let signer = state.keys.active().signing.clone();
        let events: Vec<TerminalEvent> = (0..total)
            .map(|i| {
                let day = (i / VOUCHERS_PER_SCHOOL) as i64;
                let scanned_at = MONDAY_NOON + day * 86_400 + (i % VOUCHERS_PER_SCHOOL) as i64;
                let verdict = if i % 10 == 9 {
                    Verdict::Expired
                } else {
                    Verdict::Ok
                };
                let voucher_id = vouchers[i % VOUCHERS_PER_SCHOOL];
                let proof = (verdict == Verdict::Ok && !card).then(|| {
                    shared::token::sign(
                        &shared::token::TokenRequest {
                            voucher_id,
                            school_code: resp.school_code,
                            issued_at: (scanned_at - 60) as u32,
                            expires_at: (scanned_at + 540) as u32,
                        },
                        &signer,
                    )
                });
                TerminalEvent {
                    event_id: event_id(scanned_at),
                    seq: i as i64 + 1,
                    scanned_at,
                    service_day: ServiceDay::from_unix(scanned_at).date(),
                    verdict,
                    source: if card {
                        ScanSource::Card
                    } else {
                        ScanSource::Qr
                    },
                    meal_kind: MealKind::Lunch,
                    voucher_id: Some(voucher_id),
                    key_id: (!card).then(|| signer.key_id().hex()),
                    proof,
                    repeat: false,
                    count: 1,
                    capped: false,
                }
            })
            .collect();
        let batches = events
            .chunks(BATCH)
            .map(|c| serde_json::to_vec(&EventUpload { events: c.to_vec() }).unwrap())
            .collect();
        terminals.push(Terminal {
            auth: format!("Bearer {}:{}", resp.terminal_id, resp.secret),
            batches,
        });
    }
    terminals
}

/// Uploads every batch of the terminal in order; returns per-batch latencies.
async fn upload_all(
    http: reqwest::Client,
    url: String,
    t: Arc<Terminal>,
    expect_new: bool,
) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(t.batches.len());
    for (i, body) in t.batches.iter().enumerate() {
        let start = Instant::now();
        let ack: EventAck = http
            .post(&url)
            .header("authorization", &t.auth)
            .header("content-type", "application/json")
            .header(
                shared::wire::TERMINAL_VERSION_HEADER,
                env!("CARGO_PKG_VERSION"),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        lat.push(start.elapsed());
        let total = (t.batches.len() * BATCH) as i64;
        assert_eq!(
            ack.last_seq,
            if expect_new {
                ((i + 1) * BATCH) as i64
            } else {
                total
            }
        );
        assert_eq!(ack.stored, if expect_new { BATCH as u64 } else { 0 });
    }
    lat
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn scenario(
    name: &str,
    http: &reqwest::Client,
    url: &str,
    terminals: &[Arc<Terminal>],
    expect_new: bool,
) {
    let start = Instant::now();
    let tasks: Vec<_> = terminals
        .iter()
        .map(|t| {
            tokio::spawn(upload_all(
                http.clone(),
                url.to_owned(),
                t.clone(),
                expect_new,
            ))
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let events = lat.len() * BATCH;
    println!(
        "  {name:<44} {events:>7} events {secs:>6.2} s  {:>8.0} events/s  batch median {:>6.1} ms  p99 {:>6.1} ms",
        events as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
}

async fn run(backend: &str, pg_url: Option<&str>) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let state = open(pg_url, dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = wallet_server::app(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()
        .unwrap();
    let terminals: Vec<Arc<Terminal>> = seed(&state, &http, &base)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    let url = format!("{base}/api/v1/terminal/events");
    let proofs = if std::env::var_os("TAMAQ_BENCH_CARD").is_some() {
        "card serves (no signature to verify)"
    } else {
        "QR serves, each token's signature verified"
    };
    println!(
        "{backend}: batches of {BATCH}, 90% ok (each a new meal; {proofs}), 10% refused scans"
    );
    scenario("1 terminal, sequential", &http, &url, &terminals[..1], true).await;
    scenario(
        &format!("{} terminals (schools) in parallel", TERMINALS - 1),
        &http,
        &url,
        &terminals[1..],
        true,
    )
    .await;
    scenario(
        &format!("re-upload of all, {TERMINALS} terminals in parallel"),
        &http,
        &url,
        &terminals,
        false,
    )
    .await;
    let stored = state.store.terminal_event_count().await.unwrap();
    assert_eq!(stored as usize, TERMINALS * BATCHES_PER_TERMINAL * BATCH);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run("SQLite (file, WAL, synchronous=FULL)", None).await;
        match std::env::var(wallet_server::store::testing::PG_ENV) {
            Ok(_) => {
                let (url, _guard) = wallet_server::store::testing::postgres_url().await;
                run("PostgreSQL (local)", Some(&url)).await;
            }
            Err(_) => println!("PostgreSQL: skipped (set TAMAQ_TEST_PG_URL)"),
        }
    });
}
