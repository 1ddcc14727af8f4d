//! `wallet-server demo`: a realistic school year to try everything with, then the server.
//!
//! Seeds (once per data dir) two schools and 40 pupils from the sample roster, walks the consent
//! process through a week of SMS — some parents agree, some refuse, some never answer (their
//! requests expire), some families have no phone — activates most vouchers, and creates staff
//! accounts. Every run prints a fresh terminal enrollment code and what to open. What it made is
//! remembered in `<data-dir>/demo.json` (mode 0600: it holds the demo passwords).

use crate::clock::Clock;
use crate::config::Settings;
use crate::consent;
use crate::roster::{self, Format, ImportOptions, ImportRequest};
use crate::state::AppState;
use crate::terminal_sync::enroll;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use shared::phone::Phone;
use std::path::Path;

const DAY: i64 = 86_400;
const PUPILS: usize = 40;
const SCHOOLS: usize = 2;

/// What the demo seeded, for the instructions it prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoInfo {
    pub school_bins: Vec<String>,
    /// A parent whose child's voucher is issued and waits for activation.
    pub parent_to_activate: String,
    /// Parents whose children's vouchers are active.
    pub parents_active: Vec<String>,
    pub staff: Vec<(String, String, String)>,
    pub consent_outcomes: Vec<(String, i64)>,
}

/// Seeds the demo unless the data dir already has it; returns what is there.
pub async fn seed(state: &AppState) -> anyhow::Result<DemoInfo> {
    let file = state.paths.data_dir.join("demo.json");
    if file.exists() {
        let text = std::fs::read_to_string(&file)?;
        return serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; remove the data dir to start over",
                file.display()
            )
        });
    }
    if !state.store.schools().await?.is_empty() {
        anyhow::bail!(
            "the data dir {} holds data that is not a demo; use another --data-dir",
            state.paths.data_dir.display()
        );
    }
    let info = build(state).await?;
    shared::keys::write_secret_file(&file, serde_json::to_string_pretty(&info)?.as_bytes())?;
    Ok(info)
}

async fn build(state: &AppState) -> anyhow::Result<DemoInfo> {
    let store = state.store.as_ref();
    let settings: &Settings = &state.settings;
    let now = state.now();
    let csv = roster::sample::csv(PUPILS, SCHOOLS);
    let report = roster::import(
        store,
        settings,
        &ImportRequest {
            name: "demo roster",
            actor: "demo",
            bytes: csv.as_bytes(),
            format: Format::Csv,
            options: ImportOptions::default(),
        },
        now,
        &|_, _| {},
    )
    .await?;
    anyhow::ensure!(
        report.applied,
        "the sample roster was refused: {:?}",
        report.errors
    );

    // A week of consent: requests a week ago, answers within the hour, repeats after three
    // days, expiry of the unanswered today.
    let start = now - 7 * DAY;
    consent::tick(store, settings, start).await?;
    let mut phones: Vec<String> = store
        .sms_outbox(10_000)
        .await?
        .into_iter()
        .filter(|s| s.kind == "consent_request")
        .map(|s| s.to_phone)
        .collect();
    phones.sort();
    phones.dedup();
    let mut agreed = Vec::new();
    for (k, raw) in phones.iter().enumerate() {
        let phone = Phone::parse(raw)?;
        let answer = match k % 5 {
            0..=2 => "3#1",
            3 => "3#2",
            _ => continue,
        };
        consent::handle_reply(store, settings, &phone, answer, start + 3_600).await?;
        if answer == "3#1" {
            agreed.push(raw.clone());
        }
    }
    consent::tick(store, settings, start + 3 * DAY + 60).await?;
    consent::tick(store, settings, now).await?;

    // Every agreeing family activates its vouchers but one, left for the walk-through: the
    // first with a child at the first school, whose terminal gets the printed enrollment code.
    let schools = store.schools().await?;
    let first_school = schools
        .first()
        .context("the sample roster has schools")?
        .code;
    let mut walk_through = None;
    // A pupil is the wallet's to the priority phone only (`contact_phone`).
    let own = |phone: &str, pupils: Vec<crate::store::roster::Pupil>| {
        pupils
            .into_iter()
            .filter(|p| p.contact_phone.as_deref() == Some(phone))
            .collect::<Vec<_>>()
    };
    for phone in &agreed {
        let pupils = own(phone, store.pupils_by_phone(phone).await?);
        if pupils.iter().any(|p| p.school_code == first_school) {
            walk_through = Some(phone.clone());
            break;
        }
    }
    let others: Vec<&String> = agreed
        .iter()
        .filter(|p| Some(*p) != walk_through.as_ref())
        .collect();
    let year = settings
        .year_at(now)
        .map(|y| y.label())
        .context("no school year holds today: configure one ([[school_years]])")?;
    for &phone in &others {
        let actor = format!("parent:{phone}");
        for pupil in own(phone, store.pupils_by_phone(phone).await?) {
            if let Some(v) = store.voucher_for_pupil(pupil.id, &year).await? {
                crate::lifecycle::activate(store, &v.id, &actor, now).await?;
            }
        }
    }

    let bins: Vec<String> = schools.into_iter().map(|s| s.bin).collect();
    let mut staff = Vec::new();
    for (user, role, schools) in [
        ("director", "school_admin", vec![bins[0].clone()]),
        ("akimat", "authority", bins.clone()),
        ("operator", "operator", vec![]),
    ] {
        let password = demo_password();
        crate::staff::add_staff(store, user, role, &schools, &password, "demo", now).await?;
        staff.push((user.to_owned(), role.to_owned(), password));
    }
    let consent_outcomes = store.consent_counts(&year).await?;
    Ok(DemoInfo {
        school_bins: bins,
        parent_to_activate: walk_through.unwrap_or_default(),
        parents_active: others.into_iter().take(3).cloned().collect(),
        staff,
        consent_outcomes,
    })
}

/// Readable, strong enough for the strength check, different for every demo.
fn demo_password() -> String {
    use rand::Rng;
    const WORDS: [&str; 8] = [
        "alma", "tau", "dala", "ozen", "kun", "bulak", "terek", "aspan",
    ];
    let mut rng = rand::thread_rng();
    format!(
        "{}-{}-{}",
        WORDS[rng.gen_range(0..WORDS.len())],
        WORDS[rng.gen_range(0..WORDS.len())],
        rng.gen_range(1000..10_000)
    )
}

/// The walk-through, with this demo's phones, accounts and a fresh enrollment code.
pub fn instructions(base: &str, data_dir: &Path, info: &DemoInfo, code: &str) -> String {
    let dir = data_dir.display();
    let mut out = String::new();
    out.push_str(&format!("\nTamaq demo is running at {base}\n\n"));
    out.push_str(&format!(
        "Parents' wallet:   {base}/wallet\n  log in with {} (voucher waiting for activation)\n",
        info.parent_to_activate
    ));
    for p in &info.parents_active {
        out.push_str(&format!("  or with {p} (active voucher)\n"));
    }
    out.push_str("  the login code is printed here (and written to the SMS outbox)\n\n");
    out.push_str(&format!("School pages:      {base}/school\n"));
    for (user, role, password) in &info.staff {
        out.push_str(&format!("  {user:<9} {password:<20} ({role})\n"));
    }
    out.push_str(&format!(
        "\nCanteen terminal for school {bin} (code valid 24 h, single use):\n  \
         canteen-terminal enroll --server {base} --code {code}\n  \
         canteen-terminal scan --image qr.png      (the QR saved from the wallet)\n  \
         canteen-terminal sync\n  \
         canteen-terminal kiosk                    (counter screen at http://127.0.0.1:8090)\n\n\
         NOBD report of today:\n  \
         wallet-server report nobd --data-dir {dir} --date $(TZ=Asia/Almaty date +%F)\n\n\
         SMS sent so far:   {dir}/outbox/sms.jsonl\n\
         Consent outcomes:  {outcomes}\n\n\
         Stop with Ctrl-C.\n",
        bin = info.school_bins.first().map(String::as_str).unwrap_or("-"),
        outcomes = info
            .consent_outcomes
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    out
}

/// A fresh one-time code for the demo's first school.
pub async fn enroll_code(state: &AppState, info: &DemoInfo) -> anyhow::Result<String> {
    let bin = info.school_bins.first().context("demo has no school")?;
    Ok(enroll::create_code(state, bin, "demo").await?.code)
}

/// The demo runs in a school year: when none holds `today` (the summer of the default calendar,
/// or configured years that do not cover today), it uses one from 30 days ago to 60 days on,
/// Monday to Friday, so that every step of the walk-through works whenever it is run.
pub fn ensure_school_year(settings: &mut Settings, today: chrono::NaiveDate) {
    if settings.school_years.year_for(today).is_some() {
        return;
    }
    let year = shared::SchoolYear {
        start: today - chrono::Days::new(30),
        end: today + chrono::Days::new(60),
        breaks: Vec::new(),
        school_days: shared::SchoolYear::kazakh(2026).school_days,
    };
    tracing::info!(start = %year.start, end = %year.end, "no school year holds today: the demo runs in one around it");
    settings.school_years = shared::SchoolYears::new(vec![year]).expect("a valid year");
}

/// The demo's clock is the real one: what it seeds is dated relative to now.
pub fn clock() -> Clock {
    Clock::System
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_always_has_a_school_year() {
        let d = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
        let mut s = Settings::default();
        ensure_school_year(&mut s, d("2026-11-23"));
        assert!(
            s.school_years.configured().is_empty(),
            "the default calendar holds it"
        );
        ensure_school_year(&mut s, d("2027-07-01"));
        let year = s
            .school_years
            .year_for(d("2027-07-01"))
            .expect("a year in summer");
        assert_eq!((year.start, year.end), (d("2027-06-01"), d("2027-08-30")));
    }
}
