//! The terminal's sense of time, injected so tests and benchmarks can move it.
//!
//! Meals are dated by *trusted time*: the server's time at the last sync, carried forward by a
//! clock that only counts elapsed time (the kernel's boot-time clock, which nobody sets). The
//! PC's own clock is only compared with it: when the two disagree beyond a tolerance the
//! counter shows an alarm and keeps serving on trusted time.
//!
//! A reboot ends the boot-time clock's count, so the anchor no longer says what time it is.
//! The PC's clock is then taken as trusted only if it is not earlier than the last trusted time
//! the terminal saw and not further from the last sync than the offline budget; otherwise the
//! terminal refuses to serve until a sync gives it the server's time again.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Unix seconds, UTC.
pub trait Clock: Send + Sync {
    /// The PC's clock (what anyone with the admin password can set).
    fn now(&self) -> i64;
    /// Elapsed time since an origin fixed for one boot of the machine, in milliseconds, and
    /// that boot's id; `None` where the platform has no such clock.
    fn elapsed(&self) -> Option<Elapsed> {
        None
    }
}

/// A reading of the elapsed-time clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elapsed {
    pub boot: String,
    pub millis: i64,
}

/// The machine's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            // A clock before 1970 is certainly wrong; 0 makes the watermark check refuse it.
            .unwrap_or(0)
    }

    #[cfg(target_os = "linux")]
    fn elapsed(&self) -> Option<Elapsed> {
        // CLOCK_BOOTTIME keeps counting through suspend, which CLOCK_MONOTONIC does not; the
        // boot id tells a new count from the old one.
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        Some(Elapsed {
            boot: boot.trim().to_owned(),
            millis: t.tv_sec.saturating_mul(1000) + t.tv_nsec as i64 / 1_000_000,
        })
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// `set` and `advance` move time itself (the PC's clock and elapsed time together);
/// `set_system_offset` puts the PC's clock wrong by that much; `reboot` starts a new boot.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<ManualInner>);

#[derive(Debug)]
struct ManualInner {
    now: AtomicI64,
    system_offset: AtomicI64,
    boot: AtomicI64,
}

impl ManualClock {
    pub fn new(now: i64) -> ManualClock {
        ManualClock(Arc::new(ManualInner {
            now: AtomicI64::new(now),
            system_offset: AtomicI64::new(0),
            boot: AtomicI64::new(1),
        }))
    }

    pub fn set(&self, now: i64) {
        self.0.now.store(now, Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: i64) {
        self.0.now.fetch_add(seconds, Ordering::SeqCst);
    }

    /// The PC's clock reads true time plus `seconds`.
    pub fn set_system_offset(&self, seconds: i64) {
        self.0.system_offset.store(seconds, Ordering::SeqCst);
    }

    /// A new boot: the elapsed-time clock starts a new count.
    pub fn reboot(&self) {
        self.0.boot.fetch_add(1, Ordering::SeqCst);
    }

    /// True time, whatever the PC's clock says.
    pub fn true_now(&self) -> i64 {
        self.0.now.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.true_now() + self.0.system_offset.load(Ordering::SeqCst)
    }

    fn elapsed(&self) -> Option<Elapsed> {
        let boot = self.0.boot.load(Ordering::SeqCst);
        // Each boot counts from its own origin, as a real machine's does.
        Some(Elapsed {
            boot: format!("manual-{boot}"),
            millis: (self.true_now() - boot * 1_000_000) * 1000,
        })
    }
}

/// Where trusted time was last fixed: `at` (Unix seconds) was true when the elapsed-time clock
/// of boot `boot` read `millis`. Kept in `<data-dir>/clock.json` so one-off commands and a
/// restarted kiosk carry it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub boot: String,
    pub millis: i64,
    pub at: i64,
    /// The server's time at the last sync: the start of the offline budget.
    pub synced_at: i64,
}

pub const ANCHOR_FILE: &str = "clock.json";

/// What the terminal may go by now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Serve, dating by `now`; `system_offset` is the PC's clock minus trusted time.
    Trusted { now: i64, system_offset: i64 },
    /// Refuse to serve until a sync: the PC's clock cannot be trusted after a reboot.
    Refused { system_now: i64, why: Refusal },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The PC's clock is earlier than a time the terminal already saw.
    BeforeLastTrusted { last: i64 },
    /// The PC's clock is further from the last sync than the offline budget.
    BeyondOfflineBudget { synced_at: i64 },
}

impl Reading {
    /// The time to record a scan at: trusted time, or the PC's clock for a refused scan.
    pub fn time(&self) -> i64 {
        match *self {
            Reading::Trusted { now, .. } => now,
            Reading::Refused { system_now, .. } => system_now,
        }
    }
}

/// Decides the time from the clocks, the anchor, the last trusted time seen (the event log's
/// watermark) and the offline budget. `last_sync` (the server's time at the last sync, from the
/// sync state) starts the budget when there is no anchor yet: a data dir from before anchors.
/// Returns a new anchor to keep when the PC's clock was accepted after a reboot.
pub fn read(
    clock: &dyn Clock,
    anchor: Option<&Anchor>,
    last_trusted: i64,
    offline_budget: i64,
    last_sync: Option<i64>,
) -> (Reading, Option<Anchor>) {
    let system_now = clock.now();
    let elapsed = clock.elapsed();
    if let (Some(a), Some(e)) = (anchor, elapsed.as_ref()) {
        if a.boot == e.boot && e.millis >= a.millis {
            let now = a.at + (e.millis - a.millis) / 1000;
            return (
                Reading::Trusted {
                    now,
                    system_offset: system_now - now,
                },
                None,
            );
        }
    }
    let last = anchor.map_or(last_trusted, |a| a.at.max(last_trusted));
    if system_now < last {
        return (
            Reading::Refused {
                system_now,
                why: Refusal::BeforeLastTrusted { last },
            },
            None,
        );
    }
    let synced_at = anchor.map(|a| a.synced_at).or(last_sync);
    match synced_at {
        Some(synced_at) if system_now - synced_at <= offline_budget => {
            let fresh = elapsed.map(|e| Anchor {
                boot: e.boot,
                millis: e.millis,
                at: system_now,
                synced_at,
            });
            (
                Reading::Trusted {
                    now: system_now,
                    system_offset: 0,
                },
                fresh,
            )
        }
        Some(synced_at) => (
            Reading::Refused {
                system_now,
                why: Refusal::BeyondOfflineBudget { synced_at },
            },
            None,
        ),
        // Never synced: nothing to measure the PC's clock against but the log, which it has
        // passed.
        None => (
            Reading::Trusted {
                now: system_now,
                system_offset: 0,
            },
            None,
        ),
    }
}

/// The trusted time of one data dir: the anchor in memory and on disk.
#[derive(Debug)]
pub struct TrustedTime {
    path: PathBuf,
    anchor: Mutex<Option<Anchor>>,
}

impl TrustedTime {
    /// Loads `<dir>/clock.json`; a missing or unreadable one means no anchor (the next sync
    /// makes one).
    pub fn load(dir: &Path) -> TrustedTime {
        let path = dir.join(ANCHOR_FILE);
        let anchor = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        TrustedTime {
            path,
            anchor: Mutex::new(anchor),
        }
    }

    /// Trusted time if the anchor holds for this boot, without judging the PC's clock.
    pub fn peek(&self, clock: &dyn Clock) -> Option<i64> {
        let anchor = self.anchor.lock().expect("anchor lock");
        let (a, e) = (anchor.as_ref()?, clock.elapsed()?);
        (a.boot == e.boot && e.millis >= a.millis).then(|| a.at + (e.millis - a.millis) / 1000)
    }

    pub fn anchor(&self) -> Option<Anchor> {
        self.anchor.lock().expect("anchor lock").clone()
    }

    /// The reading now; a PC clock accepted after a reboot becomes the new anchor.
    pub fn read(
        &self,
        clock: &dyn Clock,
        last_trusted: i64,
        offline_budget: i64,
        last_sync: Option<i64>,
    ) -> Reading {
        let mut anchor = self.anchor.lock().expect("anchor lock");
        let (reading, fresh) = read(
            clock,
            anchor.as_ref(),
            last_trusted,
            offline_budget,
            last_sync,
        );
        if let Some(fresh) = fresh {
            if let Err(e) = save(&self.path, &fresh) {
                tracing::warn!(error = %e, "cannot keep the clock anchor; it is used in memory");
            }
            *anchor = Some(fresh);
        }
        reading
    }

    /// Fixes trusted time to the server's: `server_time` was true at elapsed reading `at`.
    pub fn anchor_to_server(&self, server_time: i64, at: Option<Elapsed>) -> std::io::Result<()> {
        let mut anchor = self.anchor.lock().expect("anchor lock");
        let fresh = anchor_for(server_time, at);
        save(&self.path, &fresh)?;
        *anchor = Some(fresh);
        Ok(())
    }
}

/// The anchor of a sync (or enrollment) that saw `server_time` at elapsed reading `at`.
pub fn anchor_for(server_time: i64, at: Option<Elapsed>) -> Anchor {
    let (boot, millis) = match at {
        Some(e) => (e.boot, e.millis),
        // No elapsed clock: an anchor no reading matches, so the PC's clock is checked
        // against the log and the budget at every scan.
        None => (String::new(), i64::MAX),
    };
    Anchor {
        boot,
        millis,
        at: server_time,
        synced_at: server_time,
    }
}

/// Writes the anchor whole: temp file, fsync, rename.
pub fn save(path: &Path, anchor: &Anchor) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{ANCHOR_FILE}.tmp"));
    let json = serde_json::to_vec(anchor).expect("serialisable");
    shared::keys::write_secret_file(&tmp, &json)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_000_000;
    const DAY: i64 = 86_400;
    const BUDGET: i64 = 3 * DAY;

    fn synced(clock: &ManualClock) -> Anchor {
        anchor_for(clock.true_now(), clock.elapsed())
    }

    #[test]
    fn trusted_time_follows_elapsed_time_whatever_the_pc_clock_says() {
        let clock = ManualClock::new(T);
        let a = synced(&clock);
        clock.advance(3_600);
        for offset in [-DAY, 2 * DAY, 400 * DAY, 0] {
            clock.set_system_offset(offset);
            let (r, fresh) = read(&clock, Some(&a), T, BUDGET, None);
            assert_eq!(
                r,
                Reading::Trusted {
                    now: T + 3_600,
                    system_offset: offset
                }
            );
            assert!(fresh.is_none());
        }
    }

    #[test]
    fn after_a_reboot_the_pc_clock_counts_only_between_the_log_and_the_budget() {
        let clock = ManualClock::new(T);
        let a = synced(&clock);
        clock.advance(DAY);
        clock.reboot();
        let last_scan = T + 6 * 3_600;

        clock.set_system_offset(-DAY);
        let (r, _) = read(&clock, Some(&a), last_scan, BUDGET, None);
        assert_eq!(
            r,
            Reading::Refused {
                system_now: T,
                why: Refusal::BeforeLastTrusted { last: last_scan }
            }
        );

        clock.set_system_offset(400 * DAY);
        let (r, _) = read(&clock, Some(&a), last_scan, BUDGET, None);
        assert!(matches!(
            r,
            Reading::Refused {
                why: Refusal::BeyondOfflineBudget { synced_at: T },
                ..
            }
        ));

        clock.set_system_offset(0);
        let (r, fresh) = read(&clock, Some(&a), last_scan, BUDGET, None);
        assert_eq!(
            r,
            Reading::Trusted {
                now: T + DAY,
                system_offset: 0
            }
        );
        let fresh = fresh.expect("the accepted clock becomes the anchor");
        assert_eq!((fresh.at, fresh.synced_at), (T + DAY, T));
        // From then on the new anchor carries time, and a clock set wrong later is only alarmed.
        clock.advance(60);
        clock.set_system_offset(2 * DAY);
        let (r, _) = read(&clock, Some(&fresh), last_scan, BUDGET, None);
        assert_eq!(
            r,
            Reading::Trusted {
                now: T + DAY + 60,
                system_offset: 2 * DAY
            }
        );
    }

    #[test]
    fn without_an_anchor_the_budget_starts_at_the_last_sync() {
        let clock = ManualClock::new(T);
        clock.set_system_offset(400 * DAY);
        let (r, _) = read(&clock, None, T - 60, BUDGET, Some(T - DAY));
        assert!(matches!(r, Reading::Refused { .. }), "{r:?}");
        clock.set_system_offset(0);
        let (r, _) = read(&clock, None, T - 60, BUDGET, Some(T - DAY));
        assert_eq!(
            r,
            Reading::Trusted {
                now: T,
                system_offset: 0
            }
        );
    }

    #[test]
    fn the_anchor_survives_in_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T);
        let t = TrustedTime::load(dir.path());
        assert!(t.anchor().is_none());
        t.anchor_to_server(T, clock.elapsed()).unwrap();
        clock.advance(90);
        clock.set_system_offset(DAY);
        let again = TrustedTime::load(dir.path());
        assert_eq!(again.read(&clock, 0, BUDGET, None).time(), T + 90);
        std::fs::write(dir.path().join(ANCHOR_FILE), b"{not json").unwrap();
        assert!(TrustedTime::load(dir.path()).anchor().is_none());
    }
}
