//! Child processes measured as the operator's shell would see them: wall time, CPU time and
//! peak resident memory, read from `/proc` while the child runs (the last reading is at most
//! one poll interval before it exits; `VmHWM` only grows).

use anyhow::{bail, Context};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub wall: f64,
    pub cpu: f64,
    pub max_rss_mb: f64,
    pub stdout: String,
}

/// Runs `program args`, echoing its stderr (progress lines) and capturing its stdout.
pub fn measure(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Usage> {
    eprintln!("$ {} {}", program.display(), args.join(" "));
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let mut out = child.stdout.take().context("child stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        out.read_to_string(&mut text).map(|_| text)
    });
    let pid = child.id();
    let (mut cpu, mut rss) = (0.0_f64, 0.0_f64);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        cpu = cpu_seconds(pid).unwrap_or(cpu).max(cpu);
        rss = peak_rss_mb(pid).unwrap_or(rss).max(rss);
        std::thread::sleep(POLL);
    };
    let wall = start.elapsed().as_secs_f64();
    let stdout = reader.join().expect("stdout reader")?;
    if !status.success() {
        bail!(
            "{} {} failed ({status}); its output:\n{stdout}",
            program.display(),
            args.join(" ")
        );
    }
    Ok(Usage {
        wall,
        cpu,
        max_rss_mb: rss,
        stdout,
    })
}

/// User + system CPU seconds a running process has used (Linux `/proc/<pid>/stat`).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Peak resident memory of a running process, MB (`VmHWM`).
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
