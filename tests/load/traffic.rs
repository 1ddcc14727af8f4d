//! The HTTP traffic of the pilot against a running `wallet-server serve`: parents' SMS replies
//! through the gateway endpoint, wallets asking for QR codes, terminals enrolling and uploading
//! the meal log they kept while offline.

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt};
use shared::calendar::MealKind;
use shared::verdict::Verdict;
use shared::wire::{
    EnrollRequest, EnrollResponse, EventAck, EventUpload, ScanSource, TerminalEvent, VoucherStatus,
};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Events per upload request (DESIGN §8: batches of 500).
pub const BATCH: usize = 500;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client")
}

/// `3#1` from each phone through `POST /api/v1/sms/inbound`, `parallel` at a time; returns
/// the seconds taken and the replies the server failed to take (a gateway would retry them).
pub async fn replies(
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    phones: Vec<String>,
    parallel: usize,
) -> anyhow::Result<(f64, usize)> {
    let start = Instant::now();
    let url = format!("{base}/api/v1/sms/inbound");
    let results: Vec<Result<reqwest::StatusCode, reqwest::Error>> = stream::iter(phones)
        .map(|phone| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let r = http
                    .post(&url)
                    .header("X-Gateway-Secret", secret)
                    .json(&serde_json::json!({ "from": phone, "text": "3#1" }))
                    .send()
                    .await?;
                Ok(r.status())
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let seconds = start.elapsed().as_secs_f64();
    let mut failed = 0;
    for r in results {
        let status = r?;
        if status.is_client_error() {
            bail!("the server refused an SMS reply: {status}");
        }
        if !status.is_success() {
            failed += 1;
        }
    }
    Ok((seconds, failed))
}

#[derive(Debug, Default)]
pub struct Issued {
    pub ok: u64,
    pub failed: u64,
    pub latencies_us: Vec<u32>,
}

/// One wallet page per session renewing its QR as fast as the server answers, for `seconds`
/// after a 2 s warm-up; `png` asks for the image instead of the JSON token.
pub async fn issue_tokens(
    http: &reqwest::Client,
    base: &str,
    wallets: &[(String, String)],
    png: bool,
    seconds: u64,
) -> Issued {
    let warm_until = Instant::now() + Duration::from_secs(2);
    let end = warm_until + Duration::from_secs(seconds);
    let tasks: Vec<_> = wallets
        .iter()
        .map(|(voucher, session)| {
            let http = http.clone();
            let url = if png {
                format!("{base}/api/v1/wallet/vouchers/{voucher}/qr.png")
            } else {
                format!("{base}/api/v1/wallet/vouchers/{voucher}/qr")
            };
            let auth = format!("Bearer {session}");
            tokio::spawn(async move {
                let mut out = Issued::default();
                while Instant::now() < end {
                    let started = Instant::now();
                    let request = if png {
                        http.get(&url)
                    } else {
                        http.post(&url)
                            .json(&serde_json::json!({ "validity": "short" }))
                    };
                    let ok = match request.header("authorization", &auth).send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    if started < warm_until {
                        continue;
                    }
                    if ok {
                        out.ok += 1;
                    } else {
                        out.failed += 1;
                    }
                    out.latencies_us.push(started.elapsed().as_micros() as u32);
                }
                out
            })
        })
        .collect();
    let mut total = Issued::default();
    for t in tasks {
        let o = t.await.expect("issuing task");
        total.ok += o.ok;
        total.failed += o.failed;
        total.latencies_us.extend(o.latencies_us);
    }
    total.latencies_us.sort_unstable();
    total
}

/// An enrolled terminal and the meal log it kept while offline.
pub struct Terminal {
    pub auth: String,
    pub school_code: u32,
    pub active_vouchers: Vec<Uuid>,
}

pub async fn enroll(
    http: &reqwest::Client,
    base: &str,
    codes: Vec<String>,
) -> anyhow::Result<Vec<Terminal>> {
    let url = format!("{base}/api/v1/terminal/enroll");
    stream::iter(codes)
        .map(|code| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let resp: EnrollResponse = http
                    .post(&url)
                    .json(&EnrollRequest {
                        code,
                        label: Some("load".into()),
                        terminal_key: None,
                    })
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                let active_vouchers = resp
                    .snapshot
                    .vouchers
                    .iter()
                    .filter(|v| v.status == VoucherStatus::Active)
                    .map(|v| v.voucher_id)
                    .collect();
                Ok(Terminal {
                    auth: format!("Bearer {}:{}", resp.terminal_id, resp.secret),
                    school_code: resp.school_code,
                    active_vouchers,
                })
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<anyhow::Result<Terminal>>>()
        .await
        .into_iter()
        .collect()
}

/// The log of a terminal offline on `days`: every active voucher served lunch once a day on a
/// token signed by `signer` (the server's signing key, as the parent's wallet got it), and one
/// child in fifty scanned twice (`already_served`).
pub fn offline_log(
    t: &Terminal,
    days: &[(chrono::NaiveDate, i64)],
    signer: &shared::keys::KeyPair,
) -> Vec<TerminalEvent> {
    let mut events = Vec::new();
    for &(day, noon) in days {
        for (i, &voucher) in t.active_vouchers.iter().enumerate() {
            let repeats = if i % 50 == 49 { 2 } else { 1 };
            let scanned_at = noon + (i as i64 % 3600);
            let proof = shared::token::sign(
                &shared::token::TokenRequest {
                    voucher_id: voucher,
                    school_code: t.school_code,
                    issued_at: (scanned_at - 120) as u32,
                    expires_at: (scanned_at + 480) as u32,
                },
                signer,
            );
            for r in 0..repeats {
                events.push(TerminalEvent {
                    // Time-ordered, as the terminal makes them.
                    event_id: shared::wire::time_ordered_event_id(noon + (i as i64 % 3600)),
                    seq: events.len() as i64 + 1,
                    scanned_at: noon + (i as i64 % 3600),
                    service_day: day,
                    verdict: if r == 0 {
                        Verdict::Ok
                    } else {
                        Verdict::AlreadyServed
                    },
                    source: ScanSource::Qr,
                    meal_kind: MealKind::Lunch,
                    voucher_id: Some(voucher),
                    key_id: None,
                    proof: (r == 0).then(|| proof.clone()),
                    repeat: false,
                    count: 1,
                    capped: false,
                });
            }
        }
    }
    events
}

/// Uploads every terminal's log in batches of [`BATCH`], `parallel` terminals at a time;
/// returns (events stored, seconds, per-request latencies).
pub async fn upload(
    http: &reqwest::Client,
    base: &str,
    logs: Vec<(String, Vec<Vec<u8>>)>,
    parallel: usize,
) -> anyhow::Result<(u64, f64, Vec<f64>)> {
    let url = format!("{base}/api/v1/terminal/events");
    let start = Instant::now();
    let results: Vec<anyhow::Result<(u64, Vec<f64>)>> = stream::iter(logs)
        .map(|(auth, batches)| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let mut stored = 0;
                let mut latencies = Vec::new();
                for body in batches {
                    let sent = Instant::now();
                    let ack: EventAck = http
                        .post(&url)
                        .header("authorization", &auth)
                        .header("content-type", "application/json")
                        .header(
                            shared::wire::TERMINAL_VERSION_HEADER,
                            env!("CARGO_PKG_VERSION"),
                        )
                        .body(body)
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await
                        .context("event ack")?;
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    if ack.refused > 0 {
                        bail!(
                            "the server refused {} served events of an honest log",
                            ack.refused
                        );
                    }
                    stored += ack.stored;
                }
                Ok((stored, latencies))
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let seconds = start.elapsed().as_secs_f64();
    let mut stored = 0;
    let mut latencies = Vec::new();
    for r in results {
        let (s, l) = r?;
        stored += s;
        latencies.extend(l);
    }
    latencies.sort_by(f64::total_cmp);
    if stored == 0 {
        bail!("the server stored no events");
    }
    Ok((stored, seconds, latencies))
}

pub fn batches(events: &[TerminalEvent]) -> Vec<Vec<u8>> {
    events
        .chunks(BATCH)
        .map(|c| serde_json::to_vec(&EventUpload { events: c.to_vec() }).expect("JSON"))
        .collect()
}
