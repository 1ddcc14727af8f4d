//! What one run measured: a row per step, printed as a Markdown table (the shape of the
//! growth table in docs/benchmarks.md) and appended as JSON lines for later comparison.

use serde::Serialize;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub step: &'static str,
    pub items: u64,
    pub unit: &'static str,
    pub seconds: f64,
    /// CPU seconds of the measured process (the child for CLI steps, the server for HTTP).
    pub cpu: Option<f64>,
    pub max_rss_mb: Option<f64>,
    pub note: String,
}

impl Row {
    pub fn rate(&self) -> f64 {
        self.items as f64 / self.seconds.max(1e-9)
    }
}

#[derive(Debug, Serialize)]
pub struct Run {
    pub backend: String,
    pub scale: f64,
    pub schools: usize,
    pub pupils: usize,
    pub started: String,
    pub load_average: String,
    /// Size of the database after all steps.
    pub database_mb: f64,
    pub rows: Vec<Row>,
}

impl Run {
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "{} — scale {} ({} schools, {} pupils), started {}, load average at start {}, \
             database at the end {:.0} MB\n\n\
             | step | items | seconds | rate | CPU s | max RSS MB | note |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | --- |\n",
            self.backend,
            self.scale,
            self.schools,
            self.pupils,
            self.started,
            self.load_average,
            self.database_mb
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} {} | {:.1} | {:.0} {}/s | {} | {} | {} |\n",
                r.step,
                r.items,
                r.unit,
                r.seconds,
                r.rate(),
                r.unit,
                r.cpu.map(|c| format!("{c:.1}")).unwrap_or_default(),
                r.max_rss_mb.map(|m| format!("{m:.0}")).unwrap_or_default(),
                r.note
            ));
        }
        out
    }

    pub fn append_json(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{}", serde_json::to_string(self).expect("JSON"))
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
