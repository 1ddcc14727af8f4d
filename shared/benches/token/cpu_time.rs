//! A criterion measurement that reads the thread's CPU clock instead of the wall clock.
//!
//! The benchmark machines are shared (2 cores, other builds running): wall time there includes
//! the time the benchmark waits for a core, which changes from one benchmark to the next and
//! ruins the ratios this benchmark exists for. Everything measured here is single-threaded
//! computation, so on an idle machine CPU time and wall time are the same.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// Seconds of CPU time this thread has used.
#[cfg(unix)]
pub fn now() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Without a thread CPU clock, wall time since the first call.
#[cfg(not(unix))]
pub fn now() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

pub struct ThreadCpuTime;

/// Values are nanoseconds, as criterion's own duration formatter expects.
static WALL: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = f64;
    type Value = f64;

    fn start(&self) -> f64 {
        now()
    }

    fn end(&self, start: f64) -> f64 {
        (now() - start) * 1e9
    }

    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }

    fn zero(&self) -> f64 {
        0.0
    }

    fn to_f64(&self, value: &f64) -> f64 {
        *value
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}
