//! `tamaq-load`: the pilot at scale. Generates a roster of 7,000 schools and 1.7 million pupils
//! (or a share of it), then runs what a school year's first weeks do to the server, with the
//! release binaries as real processes on SQLite or PostgreSQL, and measures each step:
//!
//! 1. roster import (`wallet-server import-roster`);
//! 2. the first consent mailing (`consent tick`: every eligible pupil, SMS into the outbox);
//! 3. parents answering `3#1` through the SMS gateway endpoint (a timed sample; the rest are
//!    written straight to the database, see `db.rs`), then the tick that issues the vouchers;
//! 4. QR token issuance over HTTP, JSON and PNG, from a `serve` process holding all of it;
//! 5. every school's terminal enrolling and uploading the meals of the days it was offline;
//! 6. the NOBD reports of the last of those days (`report nobd`);
//! 7. the turn of the school year (`consent tick --now` on the next year's first day: last
//!    year's vouchers expire, standing consents get the new year's voucher and SMS, everyone
//!    else is asked again), then the same tick again, which must find nothing left to do.
//!
//! Build and run (docs/benchmarks.md, "Pilot scale"):
//!
//! ```sh
//! cargo build --release -p wallet-server -p tamaq-e2e --bin wallet-server --bin tamaq-load
//! target/release/tamaq-load --scale 0.1
//! target/release/tamaq-load --scale 0.1 --postgres postgres://postgres@127.0.0.1:5432/test
//! ```

mod db;
mod proc;
mod report;
mod traffic;

use anyhow::{ensure, Context};
use chrono::{Duration, NaiveDate};
use clap::Parser;
use report::{percentile, Row, Run};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tamaq_e2e::{binary, ServerProcess};
use wallet_server::clock::Clock;
use wallet_server::config::Settings;

const PILOT_SCHOOLS: f64 = 7_000.0;
const PILOT_PUPILS: f64 = 1_700_000.0;
const GATEWAY_SECRET: &str = "load-tool-gateway-secret";

#[derive(Parser)]
#[command(about = "Pilot-scale load and scale measurements of wallet-server")]
struct Args {
    /// Share of the pilot to generate: 1.0 = 7,000 schools and 1.7 million pupils.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// A PostgreSQL server URL (…/DATABASE) where the tool may create and drop a database of its
    /// own; without it the run uses the embedded default, a SQLite file.
    #[arg(long)]
    postgres: Option<String>,
    /// Folder for the roster, the data dir and the results; default a fresh temporary folder,
    /// removed at the end unless --keep.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work dir (and the PostgreSQL database) for inspection.
    #[arg(long)]
    keep: bool,
    /// Seconds of each token issuance run (after a 2 s warm-up).
    #[arg(long, default_value_t = 10)]
    issuance_seconds: u64,
    /// Wallet pages asking for tokens at once.
    #[arg(long, default_value_t = 64)]
    wallets: usize,
    /// Parents' SMS replies sent through the gateway endpoint (the rest consent in SQL).
    #[arg(long, default_value_t = 2_000)]
    replies: usize,
    /// SMS replies the gateway hands over at the same time.
    #[arg(long, default_value_t = 4)]
    reply_concurrency: usize,
    /// School days each terminal was offline: the log it uploads.
    #[arg(long, default_value_t = 2)]
    offline_days: usize,
    /// Terminals uploading at the same time.
    #[arg(long, default_value_t = 4)]
    uploaders: usize,
    /// Append the run as one JSON line to this file.
    #[arg(long)]
    results: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.scale > 0.0 && args.scale <= 10.0,
        "--scale must be above 0 and at most 10 (1.0 is the pilot)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (work, _temp) = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            (dir.clone(), None)
        }
        None => {
            let t = tempfile::Builder::new().prefix("tamaq-load-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let db_name = format!("tamaq_load_{}", std::process::id());
    let database_url = match &args.postgres {
        Some(server) => Some(rt.block_on(db::create_database(server, &db_name))?),
        None => None,
    };
    let result = rt.block_on(run(&args, &work, database_url.as_deref()));
    if let (Some(server), false) = (&args.postgres, args.keep) {
        rt.block_on(db::drop_database(server, &db_name))?;
    }
    if args.keep {
        if let Some(t) = _temp {
            let kept = t.keep();
            eprintln!("kept {}", kept.display());
        }
    }
    let run = result?;
    println!("{}", run.markdown());
    if let Some(path) = &args.results {
        run.append_json(path)
            .with_context(|| format!("cannot append to {}", path.display()))?;
    }
    Ok(())
}

async fn run(args: &Args, work: &Path, database_url: Option<&str>) -> anyhow::Result<Run> {
    let schools = ((PILOT_SCHOOLS * args.scale).round() as usize).max(1);
    let pupils = ((PILOT_PUPILS * args.scale).round() as usize).max(1);
    let data_dir = work.join("data");
    let data = data_dir.to_str().context("UTF-8 work dir")?.to_owned();
    let mut global = vec!["--data-dir", &data];
    if let Some(url) = database_url {
        global.extend(["--database-url", url]);
    }
    let server_bin = binary("wallet-server");
    let mut run = Run {
        backend: if database_url.is_some() {
            "PostgreSQL".into()
        } else {
            "SQLite".into()
        },
        scale: args.scale,
        schools,
        pupils,
        started: chrono::Utc::now().to_rfc3339(),
        load_average: report::load_average(),
        database_mb: 0.0,
        rows: Vec::new(),
    };

    eprintln!("== generating the roster: {pupils} pupils in {schools} schools");
    let roster = work.join("roster.csv");
    std::fs::write(&roster, wallet_server::roster::sample::csv(pupils, schools))?;
    let roster_path = roster.to_str().context("UTF-8 path")?;

    eprintln!("== roster import");
    let u = proc::measure(
        &server_bin,
        &[&global[..], &["import-roster", roster_path]].concat(),
        &[],
    )?;
    run.rows
        .push(cli_row("roster import", pupils as u64, "pupils", &u, ""));

    eprintln!("== first consent mailing");
    let u = proc::measure(
        &server_bin,
        &[&global[..], &["consent", "tick"]].concat(),
        &[],
    )?;
    let sms = number_after(&u.stdout, "SMS: sent ").context("consent tick output")?;
    run.rows.push(cli_row(
        "consent tick, first mailing",
        sms,
        "SMS",
        &u,
        "queued and written to the SMS outbox file",
    ));

    let settings = Settings::default();
    let global_opts = wallet_server::cli::Global {
        data_dir: data_dir.clone(),
        database_url: database_url.map(str::to_owned),
        config: None,
    };
    let state = wallet_server::cli::open_state(&global_opts, Clock::System, false).await?;
    let db = db::Db::connect(&state.paths.database_url).await?;

    let job_interval = (24 * 3600).to_string();
    let server_env = [
        ("TAMAQ_SMS_INBOUND_SECRET", GATEWAY_SECRET),
        ("TAMAQ_TOKENS_DAILY_LIMIT_PER_VOUCHER", "4000000000"),
        // The jobs run their first round at start and then stay out of the measured steps.
        ("TAMAQ_SERVER_JOB_INTERVAL_SECONDS", job_interval.as_str()),
        // The NOBD step below is the operator's command, not the scheduled build.
        ("TAMAQ_NOBD_DAILY_AT", "23:59"),
    ];
    let extra: Vec<&str> = global[2..].to_vec();
    // Starting waits for the server's health check with a blocking HTTP client: off the
    // runtime's async context.
    let server = tokio::task::block_in_place(|| {
        ServerProcess::start_with_env(&data_dir, &extra, &server_env)
    });
    let pid = server.child.id();
    let http = traffic::client();

    eprintln!("== parents' replies through the SMS gateway endpoint");
    let phones: Vec<String> = db
        .strings(&format!(
            "SELECT phone, status FROM consents WHERE status = 'requested' ORDER BY id LIMIT {}",
            args.replies
        ))
        .await?
        .into_iter()
        .map(|(phone, _)| phone)
        .collect();
    let cpu0 = proc::cpu_seconds(pid);
    let (seconds, failed) = traffic::replies(
        &http,
        &server.base_url,
        GATEWAY_SECRET,
        phones.clone(),
        args.reply_concurrency,
    )
    .await?;
    run.rows.push(Row {
        step: "SMS replies 3#1 (consent + voucher)",
        items: (phones.len() - failed) as u64,
        unit: "replies",
        seconds,
        cpu: cpu_since(pid, cpu0),
        max_rss_mb: None,
        note: format!(
            "POST /api/v1/sms/inbound, {} at a time; {failed} answered 5xx",
            args.reply_concurrency
        ),
    });
    let consented = db.consent_all_awaiting(state.now()).await?;
    eprintln!("   {consented} other parents consent (written in SQL)");

    eprintln!("== voucher issuing tick");
    let u = proc::measure(
        &server_bin,
        &[&global[..], &["consent", "tick"]].concat(),
        &[],
    )?;
    let vouchers = number_after(&u.stdout, "vouchers issued ").context("consent tick output")?;
    run.rows.push(cli_row(
        "consent tick, issuing vouchers",
        vouchers,
        "vouchers",
        &u,
        "",
    ));
    // Activated before the offline days whose meals the terminals upload below (the server
    // counts a meal only while its voucher was active); `offline_days` reaches 60 days back.
    let active = db.activate_all(state.now() - 60 * 86_400).await?;
    eprintln!("   {active} vouchers activated (written in SQL)");

    eprintln!("== QR token issuance over HTTP");
    let wallets = sessions(&state, &db, args.wallets).await?;
    for png in [false, true] {
        let cpu0 = proc::cpu_seconds(pid);
        let issued = traffic::issue_tokens(
            &http,
            &server.base_url,
            &wallets,
            png,
            args.issuance_seconds,
        )
        .await;
        ensure!(
            issued.failed == 0,
            "{} token requests failed",
            issued.failed
        );
        let lat: Vec<f64> = issued
            .latencies_us
            .iter()
            .map(|&u| f64::from(u) / 1000.0)
            .collect();
        run.rows.push(Row {
            step: if png {
                "QR issuance, PNG"
            } else {
                "QR issuance, JSON"
            },
            items: issued.ok,
            unit: "tokens",
            seconds: args.issuance_seconds as f64,
            cpu: cpu_since(pid, cpu0),
            max_rss_mb: None,
            note: format!(
                "{} wallets; p50 {:.1} ms, p99 {:.1} ms",
                wallets.len(),
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            ),
        });
    }

    eprintln!("== terminal enrollment, one per school");
    let mut codes = Vec::with_capacity(schools);
    for school in state.store.schools().await? {
        codes.push(
            wallet_server::terminal_sync::enroll::create_code(&state, &school.bin, "load")
                .await
                .map_err(|e| anyhow::anyhow!("enroll code for {}: {e:?}", school.bin))?
                .code,
        );
    }
    let cpu0 = proc::cpu_seconds(pid);
    let started = Instant::now();
    let terminals = traffic::enroll(&http, &server.base_url, codes).await?;
    run.rows.push(Row {
        step: "terminal enrollment (with snapshot)",
        items: terminals.len() as u64,
        unit: "terminals",
        seconds: started.elapsed().as_secs_f64(),
        cpu: cpu_since(pid, cpu0),
        max_rss_mb: None,
        note: "8 at a time".into(),
    });

    let days = offline_days(&settings, args.offline_days);
    let report_day = days
        .last()
        .map(|d| d.0)
        .context("no school day before today")?;
    eprintln!("== event upload: each terminal's log of {days:?}");
    // Served events carry the token they were served on, signed with the server's own key
    // (the wallet hands parents the same tokens; signing a million through HTTP is not what
    // this step measures).
    let signer = signing_key(&data_dir.join("keys"))?;
    let logs: Vec<(String, Vec<Vec<u8>>)> = terminals
        .iter()
        .map(|t| {
            (
                t.auth.clone(),
                traffic::batches(&traffic::offline_log(t, &days, &signer)),
            )
        })
        .collect();
    let requests: usize = logs.iter().map(|l| l.1.len()).sum();
    let cpu0 = proc::cpu_seconds(pid);
    let (stored, seconds, latencies) =
        traffic::upload(&http, &server.base_url, logs, args.uploaders).await?;
    run.rows.push(Row {
        step: "event upload",
        items: stored,
        unit: "events",
        seconds,
        cpu: cpu_since(pid, cpu0),
        max_rss_mb: None,
        note: format!(
            "{requests} requests of ≤ {} events, {} terminals at a time; p50 {:.0} ms, p99 {:.0} ms",
            traffic::BATCH,
            args.uploaders,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        ),
    });
    let server_peak = proc::peak_rss_mb(pid);
    drop(server);
    if let Some(last) = run.rows.last_mut() {
        last.max_rss_mb = server_peak;
        last.note
            .push_str("; max RSS: the server over all HTTP steps");
    }

    eprintln!("== NOBD reports of {report_day}");
    let date = report_day.to_string();
    let u = proc::measure(
        &server_bin,
        &[&global[..], &["report", "nobd", "--date", &date]].concat(),
        &[],
    )?;
    let files = reports_of_day(&data_dir.join("outbox/nobd"), &date)?;
    let meals = db
        .count(&format!(
            "SELECT COUNT(*) FROM terminal_events WHERE service_day = '{date}' AND verdict = 'ok'"
        ))
        .await?;
    run.rows.push(cli_row(
        "NOBD reports of one day",
        files,
        "schools",
        &u,
        &format!("{meals} meals; built and written to the outbox"),
    ));

    turn_of_year(&mut run, &server_bin, &global, &settings, report_day)?;

    run.database_mb = db.size_mb().await?;
    Ok(run)
}

/// Step 7: the first tick of the next school year, then a second one that must send nothing.
fn turn_of_year(
    run: &mut Run,
    server_bin: &Path,
    global: &[&str],
    settings: &Settings,
    after: NaiveDate,
) -> anyhow::Result<()> {
    let next = settings
        .school_years
        .next_after(after)
        .context("no school year after the measured days")?;
    let now = format!("{}T09:00:00+05:00", next.start);
    eprintln!("== the turn of the school year: consent tick --now {now}");
    let mut previous_sms = None;
    for step in [
        "turn of the year (consent tick)",
        "turn of the year, second tick",
    ] {
        let u = proc::measure(
            server_bin,
            &[global, &["consent", "tick", "--now", &now]].concat(),
            &[],
        )?;
        let carried = number_after(&u.stdout, "consents carried over ").context("tick output")?;
        let expired = number_after(&u.stdout, "vouchers expired ").context("tick output")?;
        let requested = number_after(&u.stdout, "requested ").context("tick output")?;
        let no_phone = number_after(&u.stdout, "no_phone ").context("tick output")?;
        let sms = number_after(&u.stdout, "SMS: sent ").context("tick output")?;
        if let Some(first) = previous_sms {
            ensure!(
                sms == 0 && carried == 0 && expired == 0,
                "the second tick of the new year did work again: {sms} SMS, {carried} consents \
                 carried, {expired} vouchers expired (first tick: {first} SMS)"
            );
        }
        previous_sms = Some(sms);
        run.rows.push(cli_row(
            step,
            carried + expired + requested + no_phone,
            "pupils",
            &u,
            &format!(
                "{carried} new vouchers for standing consents, {expired} expired, \
                 {requested} asked again, {no_phone} without a phone; {sms} SMS"
            ),
        ));
    }
    Ok(())
}

fn cli_row(step: &'static str, items: u64, unit: &'static str, u: &proc::Usage, note: &str) -> Row {
    Row {
        step,
        items,
        unit,
        seconds: u.wall,
        cpu: Some(u.cpu),
        max_rss_mb: Some(u.max_rss_mb),
        note: note.to_owned(),
    }
}

/// Schools with a report of `date` in the NOBD outbox (`{BIN}-{date}-r{N}.json`).
fn reports_of_day(dir: &Path, date: &str) -> anyhow::Result<u64> {
    let mut bins = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some((bin, _)) = name.split_once(&format!("-{date}-r")) {
            bins.insert(bin.to_owned());
        }
    }
    Ok(bins.len() as u64)
}

fn cpu_since(pid: u32, before: Option<f64>) -> Option<f64> {
    Some(proc::cpu_seconds(pid)? - before?)
}

/// The number printed right after `label` in a command's output.
fn number_after(text: &str, label: &str) -> Option<u64> {
    let rest = &text[text.find(label)? + label.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The server's one signing key (a fresh data dir has exactly one).
fn signing_key(dir: &Path) -> anyhow::Result<shared::keys::KeyPair> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("signing-") && name.ends_with(".key") {
            found.push(path);
        }
    }
    match found.as_slice() {
        [one] => {
            shared::keys::KeyPair::load(one).with_context(|| format!("loading {}", one.display()))
        }
        _ => anyhow::bail!(
            "expected one signing key in {}, found {}",
            dir.display(),
            found.len()
        ),
    }
}

/// The last `n` school days before today, each with its lunchtime (12:00 local, UTC+5).
fn offline_days(settings: &Settings, n: usize) -> Vec<(NaiveDate, i64)> {
    let today = shared::ServiceDay::from_unix(chrono::Utc::now().timestamp()).date();
    let mut days: Vec<(NaiveDate, i64)> = (1..60)
        .map(|back| today - Duration::days(back))
        .filter(|d| settings.school_years.is_school_day(*d))
        .take(n)
        .map(|d| {
            (
                d,
                d.and_hms_opt(7, 0, 0)
                    .expect("valid time")
                    .and_utc()
                    .timestamp(),
            )
        })
        .collect();
    days.reverse();
    days
}

/// Sessions for `n` parents with an active voucher, stored as `login/verify` stores them.
async fn sessions(
    state: &wallet_server::AppState,
    db: &db::Db,
    n: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    use wallet_server::wallet::session;
    let pairs = db
        .strings(&format!(
            "SELECT v.id, c.phone FROM vouchers v JOIN consents c ON c.pupil_id = v.pupil_id \
             WHERE v.status = 'active' AND c.phone IS NOT NULL ORDER BY v.id LIMIT {n}"
        ))
        .await?;
    ensure!(!pairs.is_empty(), "no active voucher to issue tokens for");
    let now = state.now();
    let mut out = Vec::with_capacity(pairs.len());
    for (voucher, phone) in pairs {
        let token = session::new_token();
        state
            .store
            .insert_session(
                &hex::encode(session::hash_token(&token)),
                &phone,
                now,
                now + session::SESSION_SECONDS,
            )
            .await?;
        out.push((voucher, token));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counts_from_command_output() {
        let out = "consent tick at X: requested 12, no_phone 3, repeated 0, expired 0, vouchers issued 7\nSMS: sent 12, failed 0 (file)";
        assert_eq!(number_after(out, "SMS: sent "), Some(12));
        assert_eq!(number_after(out, "vouchers issued "), Some(7));
        assert_eq!(number_after(out, "missing "), None);
    }

    #[test]
    fn offline_days_are_school_days_before_today() {
        let settings = Settings::default();
        let days = offline_days(&settings, 3);
        let today = shared::ServiceDay::from_unix(chrono::Utc::now().timestamp()).date();
        assert!(days.len() <= 3);
        assert!(days.windows(2).all(|w| w[0].0 < w[1].0));
        for (d, noon) in days {
            assert!(d < today && settings.school_years.is_school_day(d));
            assert_eq!(shared::ServiceDay::from_unix(noon).date(), d);
        }
    }
}
