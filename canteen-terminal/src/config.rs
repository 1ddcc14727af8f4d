//! Settings: defaults, then an optional TOML file (`[terminal]` table), then `TAMAQ_TERMINAL_*`
//! environment variables. The terminal runs with none of them.

use serde::Deserialize;
use std::path::Path;

/// Clock offset to the server beyond which staff are warned (DESIGN §5).
pub const OFFSET_WARNING_SECONDS: i64 = 120;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Warn when the last successful sync is older than this.
    pub stale_after_seconds: i64,
    /// Kiosk: seconds between background sync rounds.
    pub sync_interval_seconds: u64,
    /// Tolerated clock skew for token validity, seconds.
    pub skew_seconds: u32,
    /// Kiosk listen address.
    pub listen: String,
    /// Whole-request timeout for calls to the server, seconds.
    pub http_timeout_seconds: u64,
    /// The PC's clock may differ from trusted time by this much before the counter shows the
    /// clock alarm, seconds.
    pub clock_tolerance_seconds: i64,
    /// After a reboot, the PC's clock is trusted only this long after the last sync, seconds.
    pub offline_budget_seconds: i64,
    /// Kiosk page: timeouts and connection caps (docs/operations.md, "Front door").
    pub front_door: front_door::Limits,
    /// Warn staff when the data dir's file system has less free space than this, MB.
    pub low_space_warning_mb: u64,
    /// How long a scan waits for another process writing the log before it is `not_recorded`.
    pub db_busy_timeout_ms: u64,
    /// New rejection events per minute; past it rejections are only counted (see
    /// [`crate::flood`]).
    pub rejections_per_minute: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            // Three days covers a weekend without internet; longer and revocations lag too far.
            stale_after_seconds: 72 * 3600,
            sync_interval_seconds: 60,
            skew_seconds: shared::token::DEFAULT_SKEW,
            listen: "127.0.0.1:8090".to_owned(),
            http_timeout_seconds: 20,
            clock_tolerance_seconds: OFFSET_WARNING_SECONDS,
            // The stale-sync warning's three days: a long weekend without internet.
            offline_budget_seconds: 72 * 3600,
            front_door: front_door::Limits::KIOSK,
            // A day of a busy counter writes well under 1 MB; 50 MB leaves weeks to react.
            low_space_warning_mb: 50,
            db_busy_timeout_ms: crate::store::DEFAULT_BUSY_TIMEOUT.as_millis() as u64,
            // Ten a second: far above any counter, which rejects a few a minute.
            rejections_per_minute: crate::flood::DEFAULT_REJECTIONS_PER_MINUTE,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    stale_after_hours: Option<i64>,
    sync_interval_seconds: Option<u64>,
    skew_seconds: Option<u32>,
    listen: Option<String>,
    http_timeout_seconds: Option<u64>,
    clock_tolerance_seconds: Option<i64>,
    offline_budget_hours: Option<i64>,
    header_timeout_seconds: Option<u64>,
    body_timeout_seconds: Option<u64>,
    request_timeout_seconds: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    low_space_warning_mb: Option<u64>,
    db_busy_timeout_ms: Option<u64>,
    rejections_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    terminal: FileSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {name}={value:?} is not valid: {expected}")]
    Env {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("kiosk setting out of range: {0}")]
    FrontDoor(String),
    #[error("setting {name} is out of range: {expected}")]
    Range {
        name: &'static str,
        expected: &'static str,
    },
}

impl Settings {
    /// Reads the file (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::load_with(file, |name| std::env::var(name).ok())
    }

    pub fn load_with(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut s = Settings::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let parsed: ConfigFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.display().to_string(),
                message: e.message().to_owned(),
            })?;
            s.apply(parsed.terminal);
        }
        let from_env = FileSettings {
            stale_after_hours: env_parse(&env, "TAMAQ_TERMINAL_STALE_AFTER_HOURS")?,
            sync_interval_seconds: env_parse(&env, "TAMAQ_TERMINAL_SYNC_INTERVAL_SECONDS")?,
            skew_seconds: env_parse(&env, "TAMAQ_TERMINAL_SKEW_SECONDS")?,
            http_timeout_seconds: env_parse(&env, "TAMAQ_TERMINAL_HTTP_TIMEOUT_SECONDS")?,
            listen: env("TAMAQ_TERMINAL_LISTEN"),
            clock_tolerance_seconds: env_parse(&env, "TAMAQ_TERMINAL_CLOCK_TOLERANCE_SECONDS")?,
            offline_budget_hours: env_parse(&env, "TAMAQ_TERMINAL_OFFLINE_BUDGET_HOURS")?,
            header_timeout_seconds: env_parse(&env, "TAMAQ_TERMINAL_HEADER_TIMEOUT_SECONDS")?,
            body_timeout_seconds: env_parse(&env, "TAMAQ_TERMINAL_BODY_TIMEOUT_SECONDS")?,
            request_timeout_seconds: env_parse(&env, "TAMAQ_TERMINAL_REQUEST_TIMEOUT_SECONDS")?,
            max_connections: env_parse(&env, "TAMAQ_TERMINAL_MAX_CONNECTIONS")?,
            max_connections_per_client: env_parse(
                &env,
                "TAMAQ_TERMINAL_MAX_CONNECTIONS_PER_CLIENT",
            )?,
            low_space_warning_mb: env_parse(&env, "TAMAQ_TERMINAL_LOW_SPACE_WARNING_MB")?,
            db_busy_timeout_ms: env_parse(&env, "TAMAQ_TERMINAL_DB_BUSY_TIMEOUT_MS")?,
            rejections_per_minute: env_parse(&env, "TAMAQ_TERMINAL_REJECTIONS_PER_MINUTE")?,
        };
        s.apply(from_env);
        s.validate()?;
        Ok(s)
    }

    fn apply(&mut self, f: FileSettings) {
        if let Some(h) = f.stale_after_hours {
            self.stale_after_seconds = h.saturating_mul(3600);
        }
        if let Some(v) = f.sync_interval_seconds {
            self.sync_interval_seconds = v;
        }
        if let Some(v) = f.skew_seconds {
            self.skew_seconds = v;
        }
        if let Some(v) = f.listen {
            self.listen = v;
        }
        if let Some(v) = f.http_timeout_seconds {
            self.http_timeout_seconds = v;
        }
        if let Some(v) = f.clock_tolerance_seconds {
            self.clock_tolerance_seconds = v;
        }
        if let Some(h) = f.offline_budget_hours {
            self.offline_budget_seconds = h.saturating_mul(3600);
        }
        let door = &mut self.front_door;
        if let Some(v) = f.header_timeout_seconds {
            door.header_read_timeout = std::time::Duration::from_secs(v);
        }
        if let Some(v) = f.body_timeout_seconds {
            door.body_timeout = std::time::Duration::from_secs(v);
        }
        if let Some(v) = f.request_timeout_seconds {
            door.request_timeout = std::time::Duration::from_secs(v);
        }
        if let Some(v) = f.max_connections {
            door.max_connections = v;
        }
        if let Some(v) = f.max_connections_per_client {
            door.max_connections_per_client = v;
        }
        if let Some(v) = f.low_space_warning_mb {
            self.low_space_warning_mb = v;
        }
        if let Some(v) = f.db_busy_timeout_ms {
            self.db_busy_timeout_ms = v;
        }
        if let Some(v) = f.rejections_per_minute {
            self.rejections_per_minute = v;
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.stale_after_seconds < 3600 {
            return Err(ConfigError::Range {
                name: "stale_after_hours",
                expected: "at least 1",
            });
        }
        if self.sync_interval_seconds < 5 {
            return Err(ConfigError::Range {
                name: "sync_interval_seconds",
                expected: "at least 5",
            });
        }
        if self.skew_seconds > 900 {
            return Err(ConfigError::Range {
                name: "skew_seconds",
                expected: "at most 900",
            });
        }
        if !(5..=86_400).contains(&self.clock_tolerance_seconds) {
            return Err(ConfigError::Range {
                name: "clock_tolerance_seconds",
                expected: "from 5 to 86400",
            });
        }
        if !(3600..=30 * 86_400).contains(&self.offline_budget_seconds) {
            return Err(ConfigError::Range {
                name: "offline_budget_hours",
                expected: "from 1 to 720",
            });
        }
        if self.db_busy_timeout_ms > 600_000 {
            return Err(ConfigError::Range {
                name: "db_busy_timeout_ms",
                expected: "at most 600000 (a queue at the counter waits on it)",
            });
        }
        if !(10..=100_000).contains(&self.rejections_per_minute) {
            return Err(ConfigError::Range {
                name: "rejections_per_minute",
                expected: "from 10 to 100000",
            });
        }
        if self.http_timeout_seconds == 0 {
            return Err(ConfigError::Range {
                name: "http_timeout_seconds",
                expected: "at least 1",
            });
        }
        self.front_door.validate().map_err(ConfigError::FrontDoor)?;
        Ok(())
    }
}

fn env_parse<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>, ConfigError> {
    match env(name) {
        None => Ok(None),
        Some(value) => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::Env {
                name: name.to_owned(),
                value,
                expected: "a whole number",
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "[terminal]\nstale_after_hours = 24\nlisten = \"127.0.0.1:9000\"\n",
        )
        .unwrap();
        let s = Settings::load_with(Some(&path), |n| {
            (n == "TAMAQ_TERMINAL_SKEW_SECONDS").then(|| "60".to_owned())
        })
        .unwrap();
        assert_eq!(s.stale_after_seconds, 24 * 3600);
        assert_eq!(s.listen, "127.0.0.1:9000");
        assert_eq!(s.skew_seconds, 60);
        assert_eq!(s.sync_interval_seconds, 60);
    }

    #[test]
    fn bad_values_are_refused_with_the_name() {
        let err = Settings::load_with(None, |n| {
            (n == "TAMAQ_TERMINAL_STALE_AFTER_HOURS").then(|| "soon".to_owned())
        })
        .unwrap_err();
        assert!(err.to_string().contains("TAMAQ_TERMINAL_STALE_AFTER_HOURS"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[terminal]\nunknown_key = 1\n").unwrap();
        assert!(matches!(
            Settings::load_with(Some(&path), |_| None),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::write(&path, "[terminal]\nsync_interval_seconds = 1\n").unwrap();
        assert!(matches!(
            Settings::load_with(Some(&path), |_| None),
            Err(ConfigError::Range { .. })
        ));
    }
}
