//! Delivering reports from the persisted outbox: to `<data-dir>/outbox/nobd/` by default, or by
//! HTTP POST with the report id as `Idempotency-Key`.
//!
//! A report leaves the outbox only when accepted (a file renamed into place after fsync; HTTP
//! 2xx, or 409 meaning the receiver already has it). Rows are leased before sending, with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two server instances never send one report at the
//! same time; a crash between acceptance and bookkeeping can repeat a send after the lease,
//! which the idempotency key makes harmless.

use crate::clock::Clock;
use crate::config::{Paths, Secret, Settings};
use crate::lease::{hold, Held, Worker};
use crate::store::lease;
use crate::store::Store;
use futures::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Back-off after the n-th failure: 30 s, 1 min, 2 min, ... at most an hour.
pub const MAX_BACKOFF_SECONDS: i64 = 3600;
const BATCH: i64 = 64;
const PARALLEL: usize = 8;

pub fn backoff_seconds(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 20) - 1;
    (30i64 << exp).min(MAX_BACKOFF_SECONDS)
}

#[derive(Clone)]
pub enum Sink {
    Dir(PathBuf),
    Http {
        client: reqwest::Client,
        url: String,
        token: Option<Secret>,
    },
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Dir(d) => write!(f, "Sink::Dir({})", d.display()),
            Sink::Http { url, .. } => write!(f, "Sink::Http({url})"),
        }
    }
}

impl Sink {
    pub fn from_settings(settings: &Settings, paths: &Paths) -> anyhow::Result<Sink> {
        match &settings.nobd.url {
            Some(url) => {
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| anyhow::anyhow!("[nobd] url {url:?} is not a URL: {e}"))?;
                anyhow::ensure!(
                    matches!(parsed.scheme(), "http" | "https"),
                    "[nobd] url must be http:// or https://"
                );
                Ok(Sink::Http {
                    client: reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?,
                    url: url.clone(),
                    token: settings.nobd.token.clone(),
                })
            }
            None => Ok(Sink::Dir(paths.outbox_dir().join("nobd"))),
        }
    }

    /// `Ok` once the report is accepted; `Err` says why not, for the outbox row.
    pub async fn send(&self, report_id: &str, body: &str) -> Result<(), String> {
        match self {
            Sink::Dir(dir) => {
                let (dir, id, body) = (dir.clone(), report_id.to_owned(), body.to_owned());
                tokio::task::spawn_blocking(move || write_file(&dir, &id, body.as_bytes()))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("cannot write report file: {e}"))
            }
            Sink::Http { client, url, token } => {
                let mut req = client
                    .post(url)
                    .header("Idempotency-Key", report_id)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_owned());
                if let Some(t) = token {
                    req = req.bearer_auth(t.expose());
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| format!("NOBD endpoint unreachable: {}", e.without_url()))?;
                let status = resp.status();
                if status.is_success() || status == reqwest::StatusCode::CONFLICT {
                    return Ok(());
                }
                let text = resp.text().await.unwrap_or_default();
                let snippet: String = text.chars().take(200).collect();
                Err(format!("NOBD endpoint answered {status}: {snippet}"))
            }
        }
    }
}

/// Writes `dir/{id}.json` so that it is either absent or complete: temp file, fsync, rename,
/// fsync of the folder.
fn write_file(dir: &Path, report_id: &str, body: &[u8]) -> std::io::Result<()> {
    if report_id.is_empty()
        || !report_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("report id {report_id:?} is not a file name"),
        ));
    }
    shared::private_fs::create_private_dir_all(dir)?;
    let target = dir.join(format!("{report_id}.json"));
    // Created 0600 by tempfile, and the rename keeps the mode.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    pub delivered: usize,
    pub failed: usize,
    pub last_error: Option<String>,
}

/// Sends every due report (in batches, a few at a time) until none is due; failures are
/// rescheduled with back-off. The clock decides what is due; leases run on the database's clock
/// and are renewed while a batch is out (see [`crate::lease`]). Asked to stop, the round sends
/// no further report and releases the rest of its batch.
pub async fn deliver_due(
    store: &dyn Store,
    sink: &Sink,
    worker: &Worker,
    clock: &Clock,
) -> anyhow::Result<DeliveryStats> {
    let mut stats = DeliveryStats::default();
    loop {
        if worker.stop.is_set() {
            return Ok(stats);
        }
        let now = clock.now();
        let claimed = store
            .nobd_claim_due(now, worker.lease_seconds, &worker.id, BATCH)
            .await?;
        if claimed.is_empty() {
            return Ok(stats);
        }
        let ids: Vec<String> = claimed.iter().map(|c| c.report_id.clone()).collect();
        let mut results: Vec<anyhow::Result<Option<Result<(), String>>>> = Vec::new();
        let sending = async {
            results = futures::stream::iter(claimed.into_iter().map(|item| async move {
                if worker.stop.is_set() {
                    return Ok(None);
                }
                let body = store
                    .nobd_report_body(&item.report_id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("report {} has no body", item.report_id))?;
                let sent = sink.send(&item.report_id, &body).await;
                let now = clock.now();
                match &sent {
                    Ok(()) => store.nobd_mark_delivered(&item.report_id, now).await?,
                    Err(e) => {
                        tracing::warn!(report = %item.report_id, attempt = item.attempts, error = %e, "NOBD report not delivered");
                        store
                            .nobd_mark_failed(
                                &item.report_id,
                                &worker.id,
                                now + backoff_seconds(item.attempts),
                                e,
                            )
                            .await?
                    }
                }
                Ok(Some(sent))
            }))
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        };
        let held = hold(store, lease::NOBD, worker, &ids, sending).await;
        for r in results {
            match r? {
                None => {}
                Some(Ok(())) => stats.delivered += 1,
                Some(Err(e)) => {
                    stats.failed += 1;
                    stats.last_error = Some(e);
                }
            }
        }
        if held == Held::Lost {
            anyhow::bail!("the NOBD outbox lease could not be renewed; delivery stopped");
        }
        if worker.stop.is_set() {
            store
                .release_leases(lease::NOBD, &worker.id, Some(&ids))
                .await?;
            return Ok(stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff_seconds(1), 30);
        assert_eq!(backoff_seconds(2), 60);
        assert_eq!(backoff_seconds(3), 120);
        assert_eq!(backoff_seconds(8), 3600);
        assert_eq!(backoff_seconds(1000), 3600);
        assert_eq!(backoff_seconds(0), 30);
    }

    #[test]
    fn file_sink_writes_whole_files_with_safe_names() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "000140000007-2026-11-23-r1", b"{}").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("000140000007-2026-11-23-r1.json")).unwrap(),
            b"{}"
        );
        assert!(write_file(dir.path(), "../x", b"{}").is_err());
        assert!(write_file(dir.path(), "", b"{}").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left behind");
    }
}
