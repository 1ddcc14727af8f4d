//! NOBD daily reports at pilot scale on PostgreSQL (DESIGN §8: 7,000 schools × 250 meals,
//! target ≤ 60 s). Seeds a fresh database with `generate_series`, then times the build of the
//! day's reports, their delivery to the outbox directory, and an unchanged rebuild.
//!
//! TAMAQ_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p wallet-server --bench nobd
//!
//! `TAMAQ_BENCH_SCHOOLS` / `TAMAQ_BENCH_MEALS` change the scale. Without a PostgreSQL URL the
//! bench says so and exits.

use chrono::NaiveDate;
use std::sync::Arc;
use std::time::Instant;
use wallet_server::clock::Clock;
use wallet_server::config::{Paths, Settings};
use wallet_server::lease::Worker;
use wallet_server::nobd::build::{build_day, day_window, Coverage};
use wallet_server::nobd::deliver::{deliver_due, Sink};
use wallet_server::store::testing;
use wallet_server::AppState;

fn env_num(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn exec(pool: &sqlx::PgPool, label: &str, sql: &str) {
    let t = Instant::now();
    sqlx::raw_sql(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    println!("  seed {label:<30} {:>7.1} s", t.elapsed().as_secs_f64());
}

#[tokio::main]
async fn main() {
    if std::env::var(testing::PG_ENV).is_err() {
        println!(
            "nobd bench skipped: set {} to a PostgreSQL server",
            testing::PG_ENV
        );
        return;
    }
    let schools = env_num("TAMAQ_BENCH_SCHOOLS", 7_000);
    let meals = env_num("TAMAQ_BENCH_MEALS", 250);
    let pupils = schools * meals;
    let date = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let day = day_window(date);
    let (start, d) = (day.start, day.day.clone());

    let (url, guard) = testing::postgres_url().await;
    // TAMAQ_BENCH_KEEP: the database stays, for EXPLAIN ANALYZE afterwards.
    let _guard = if std::env::var("TAMAQ_BENCH_KEEP").is_ok() {
        println!("keeping database {url}");
        std::mem::forget(guard);
        None
    } else {
        Some(guard)
    };
    let store = wallet_server::store::connect_postgres(&url).await.unwrap();
    let pool = store.pool.clone();
    println!("NOBD bench: {schools} schools x {meals} meals = {pupils} served meals on {d}");
    let seed = Instant::now();
    exec(&pool, "schools", &format!(
        "INSERT INTO schools (code, bin, name, created_at, updated_at)
         SELECT g, lpad(g::text, 12, '0'), 'Мектеп №' || g, 0, 0 FROM generate_series(1, {schools}) g"
    )).await;
    exec(
        &pool,
        "pupils",
        &format!(
            "INSERT INTO pupils (id, iin, school_code, last_name, first_name, grade, class_letter,
            receives_asp, orphan, lang, category, created_at, updated_at)
         SELECT g, lpad(g::text, 12, '0'), (g - 1) / {meals} + 1, 'Фамилия', 'Есім', g % 4 + 1, 'А',
            g % 3 = 0, g % 3 = 2, 'kk', (ARRAY['asp', 'low_income', 'orphan'])[g % 3 + 1], 0, 0
         FROM generate_series(1, {pupils}) g"
        ),
    )
    .await;
    // 1 % of vouchers activated on the day, the rest three weeks before.
    exec(
        &pool,
        "vouchers",
        &format!(
        "INSERT INTO vouchers (id, pupil_id, school_code, school_year, status, valid_from, valid_to,
            issued_at, activated_at, change_seq)
         SELECT md5(g::text)::uuid::text, g, (g - 1) / {meals} + 1, '2026-2027', 'active',
            '2026-09-01', '2027-05-25', {start} - 30 * 86400,
            CASE WHEN g % 100 = 0 THEN {start} + 36000 ELSE {start} - 21 * 86400 END, g
         FROM generate_series(1, {pupils}) g"
    ),
    )
    .await;
    exec(
        &pool,
        "terminals",
        &format!(
            "INSERT INTO terminals (id, school_code, label, secret_hash, enrolled_at)
         SELECT 't' || s || '-' || k, s, 'Асхана ' || k, 'x', 0
         FROM generate_series(1, {schools}) s, generate_series(0, 1) k"
        ),
    )
    .await;
    // Every pupil served once at one of the school's two terminals...
    exec(
        &pool,
        "events ok",
        &format!(
        "INSERT INTO terminal_events (terminal_id, seq, event_id, school_code, voucher_id, verdict,
            source, meal_kind, service_day, scanned_at, received_at, duplicate)
         SELECT 't' || ((g - 1) / {meals} + 1) || '-' || (g % 2), g, md5('ok' || g)::uuid::text,
            (g - 1) / {meals} + 1, md5(g::text)::uuid::text, 'ok', 'qr', 'lunch', '{d}',
            {start} + 43200 + g % 7200, {start} + 50000, FALSE
         FROM generate_series(1, {pupils}) g"
    ),
    )
    .await;
    // ...one child per school served again at the other terminal (a duplicate), and ten
    // refused scans per school.
    exec(&pool, "events duplicate+refused", &format!(
        "INSERT INTO terminal_events (terminal_id, seq, event_id, school_code, voucher_id, verdict,
            source, meal_kind, service_day, scanned_at, received_at, duplicate)
         SELECT 't' || s || '-' || ((s * {meals}) % 2 + 1) % 2, {pupils} + s, md5('dup' || s)::uuid::text,
            s, md5((s * {meals})::text)::uuid::text, 'ok', 'qr', 'lunch', '{d}', {start} + 50000,
            {start} + 50000, TRUE
         FROM generate_series(1, {schools}) s;
         INSERT INTO terminal_events (terminal_id, seq, event_id, school_code, voucher_id, verdict,
            source, meal_kind, service_day, scanned_at, received_at, duplicate)
         SELECT 't' || s || '-0', {pupils} + {schools} + s * 10 + k, md5('rej' || s || '-' || k)::uuid::text,
            s, md5(((s - 1) * {meals} + k + 1)::text)::uuid::text,
            (ARRAY['already_served', 'expired', 'outside_meal_window'])[k % 3 + 1], 'qr', 'lunch', '{d}',
            {start} + 45000 + k, {start} + 50000, FALSE
         FROM generate_series(1, {schools}) s, generate_series(0, 9) k"
    )).await;
    // Two consent outcomes per school during the day.
    exec(
        &pool,
        "consents",
        &format!(
            "INSERT INTO consents (id, pupil_id, school_year, status, ended_at, updated_at)
         SELECT g, g, '2026-2027', 'refused', {start} + 40000, {start} + 40000
         FROM generate_series(1, {pupils}) g WHERE g % ({meals} / 2) = 0;
         INSERT INTO consent_transitions (consent_id, status, at)
         SELECT id, status, ended_at FROM consents;
         ANALYZE"
        ),
    )
    .await;
    println!("  seed total {:>32.1} s", seed.elapsed().as_secs_f64());

    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path().to_path_buf(), Some(url.clone()));
    let clock = Clock::manual(start + 86_400 + 2 * 3600);
    let store: Arc<dyn wallet_server::store::Store> = Arc::new(store);
    let state = AppState::assemble(store, Settings::default(), paths, clock, false)
        .await
        .unwrap();

    let total = Instant::now();
    let t = Instant::now();
    let built = build_day(
        state.store.as_ref(),
        date,
        None,
        Coverage::AllSchools,
        state.now(),
    )
    .await
    .unwrap();
    let build_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let sink = Sink::from_settings(&state.settings, &state.paths).unwrap();
    let sent = deliver_due(
        state.store.as_ref(),
        &sink,
        &Worker::one_off("bench"),
        &state.clock,
    )
    .await
    .unwrap();
    let deliver_s = t.elapsed().as_secs_f64();
    let total_s = total.elapsed().as_secs_f64();
    assert_eq!(built.new_reports.len() as i64, schools);
    assert_eq!(sent.delivered as i64, schools);
    let t = Instant::now();
    let again = build_day(
        state.store.as_ref(),
        date,
        None,
        Coverage::AllSchools,
        state.now(),
    )
    .await
    .unwrap();
    let rebuild_s = t.elapsed().as_secs_f64();
    assert!(again.new_reports.is_empty());
    let t = Instant::now();
    let data = state.store.nobd_day_data(&day, None).await.unwrap();
    let queries_s = t.elapsed().as_secs_f64();
    assert_eq!(data.vouchers.len() as i64, schools);

    // Spot check: one report holds the seeded numbers.
    let sample = std::fs::read_to_string(
        dir.path()
            .join("outbox/nobd")
            .join(format!("{:012}-{d}-r1.json", 1)),
    )
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&sample).unwrap();
    assert_eq!(doc["meals"]["served_total"], meals);
    assert_eq!(doc["meals"]["duplicates"], 1);
    assert_eq!(doc["rejected_scans"]["total"], 10);

    let rows = |label: &str, secs: f64| println!("  {label:<35} {secs:>7.1} s");
    rows(&format!("build {schools} reports"), build_s);
    rows("  of which the day's queries", queries_s);
    rows("deliver to outbox/nobd (fsync each)", deliver_s);
    rows("build + deliver (target <= 60 s)", total_s);
    rows("unchanged rebuild (no revision)", rebuild_s);
}
