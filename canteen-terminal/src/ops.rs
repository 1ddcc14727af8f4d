//! What an operator of a counter PC watches and keeps: the terminal's metrics in Prometheus
//! text (for node-exporter's textfile collector) and an online copy of its meal log.
//!
//! The numbers are read from the database each time rather than counted in memory, so the
//! one-shot CLI, the kiosk and a restarted process all report the same thing.

use crate::terminal::Terminal;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::path::Path;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(&'static str, String)>;

/// The figures behind the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TerminalFigures {
    /// Scans in the log by verdict (each event with its count), since enrollment.
    pub scans: Vec<(String, i64)>,
    /// Of those, rejections over the per-minute cap, kept only as counts.
    pub capped_scans: i64,
    pub unsynced_events: i64,
    /// Seconds since the last successful sync, or since enrollment when there was none.
    pub last_sync_age_seconds: i64,
    pub free_disk_bytes: u64,
    pub vouchers: i64,
}

pub async fn figures(terminal: &Terminal) -> anyhow::Result<TerminalFigures> {
    let scans: Vec<(String, i64)> =
        sqlx::query_as("SELECT verdict, SUM(count) FROM events GROUP BY verdict ORDER BY verdict")
            .fetch_all(terminal.pool())
            .await?;
    let capped_scans: i64 =
        sqlx::query_scalar("SELECT COALESCE(SUM(count), 0) FROM events WHERE capped = 1")
            .fetch_one(terminal.pool())
            .await?;
    let status = terminal.status().await?;
    let since = match status.last_sync_at {
        Some(t) => t,
        None => sqlx::query_scalar("SELECT enrolled_at FROM identity")
            .fetch_optional(terminal.pool())
            .await?
            .unwrap_or(status.now),
    };
    Ok(TerminalFigures {
        scans,
        capped_scans,
        unsynced_events: status.unsynced_events,
        last_sync_age_seconds: (status.now - since).max(0),
        free_disk_bytes: free_disk(terminal.data_dir())?,
        vouchers: status.vouchers as i64,
    })
}

/// Bytes available to this (unprivileged) process on the file system holding `dir`.
pub fn free_disk(dir: &Path) -> anyhow::Result<u64> {
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| anyhow::anyhow!("cannot read free space of {}: {e}", dir.display()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The Prometheus text exposition of [`figures`].
pub fn exposition(f: &TerminalFigures) -> String {
    let mut r = Registry::with_prefix("tamaq_terminal");
    let scans: Family<Labels, Counter> = Family::default();
    for (verdict, n) in &f.scans {
        scans
            .get_or_create(&vec![("verdict", verdict.clone())])
            .inc_by(u64::try_from(*n).unwrap_or(0));
    }
    // Read back from the log, so it only grows; a restored backup shows as a counter reset,
    // which `rate()` already handles.
    r.register("scans", "Scans recorded in the meal log by verdict", scans);
    let capped: Counter = Counter::default();
    capped.inc_by(u64::try_from(f.capped_scans).unwrap_or(0));
    r.register(
        "capped_scans",
        "Rejected scans over the per-minute cap, kept only as counts (a stuck scanner, a script)",
        capped,
    );
    let gauge = |v: i64| {
        let g: Gauge = Gauge::default();
        g.set(v);
        g
    };
    r.register(
        "unsynced_events",
        "Recorded events the server has not confirmed",
        gauge(f.unsynced_events),
    );
    r.register(
        "last_sync_age_seconds",
        "Seconds since the last successful sync (since enrollment before the first)",
        gauge(f.last_sync_age_seconds),
    );
    let free: Gauge<u64, AtomicU64> = Gauge::default();
    free.set(f.free_disk_bytes);
    r.register(
        "free_disk_bytes",
        "Free space for the meal log's file system",
        free,
    );
    r.register(
        "vouchers",
        "Vouchers in the terminal's current list",
        gauge(f.vouchers),
    );
    let mut out = String::new();
    prometheus_text::encode(&mut out, &r).expect("writing to a String");
    out
}

/// Writes a consistent copy of the meal log to `to` while scans go on. The copy is created
/// private (0600) before anything is written to it, and never over an existing file.
pub async fn backup(terminal: &Terminal, to: &Path) -> anyhow::Result<()> {
    let text = to
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("the backup path must be valid UTF-8"))?
        .to_owned();
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(to).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!("{} exists; backups never overwrite a file", to.display())
            } else {
                anyhow::anyhow!("cannot create {}: {e}", to.display())
            }
        })?;
    }
    // One read transaction: every meal committed before it began is in the copy, none half.
    if let Err(e) = sqlx::query("VACUUM INTO $1")
        .bind(text)
        .execute(terminal.pool())
        .await
    {
        let _ = std::fs::remove_file(to);
        return Err(anyhow::anyhow!("backup to {} failed: {e}", to.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn exposition_parses_for_any_figures(
            verdicts in proptest::collection::vec(("[a-z_]{1,20}", 0i64..1_000_000), 0..6),
            unsynced in 0i64..1_000_000,
            age in 0i64..10_000_000,
            free in proptest::prelude::any::<u64>(),
        ) {
            let mut verdicts = verdicts;
            verdicts.sort();
            verdicts.dedup_by(|a, b| a.0 == b.0);
            let f = TerminalFigures {
                scans: verdicts.clone(),
                capped_scans: 0,
                unsynced_events: unsynced,
                last_sync_age_seconds: age,
                free_disk_bytes: free,
                vouchers: 3,
            };
            let text = exposition(&f);
            let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
                .unwrap();
            for (verdict, n) in &verdicts {
                let found = parsed.samples.iter().find(|s| {
                    s.metric == "tamaq_terminal_scans_total" && s.labels.get("verdict") == Some(verdict.as_str())
                });
                match found.map(|s| &s.value) {
                    Some(prometheus_parse::Value::Counter(v)) => proptest::prop_assert_eq!(*v, *n as f64),
                    other => proptest::prop_assert!(false, "{verdict}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn free_disk_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_disk(dir.path()).unwrap() > 0);
        assert!(free_disk(&dir.path().join("missing")).is_err());
    }
}
