//! Settings (DESIGN §6.4): defaults that need nothing, a TOML file (`--config` or
//! `TAMAQ_CONFIG`), then `TAMAQ_<SECTION>_<KEY>` environment variables for single keys.

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use shared::calendar::{MealKind, MealWindow, SchoolYear, SchoolYears};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Kk,
    #[default]
    Ru,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Kk => "kk",
            Lang::Ru => "ru",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "kk" | "kz" => Some(Lang::Kk),
            "ru" => Some(Lang::Ru),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    /// `[[school_years]]`, or `[school_year]` as the only year; none: the Kazakh calendar of
    /// every year. Read apart from the other keys (see [`Settings::build`]).
    #[serde(skip)]
    pub school_years: SchoolYears,
    /// Meal kind → `"HH:MM-HH:MM"` local time.
    #[serde(default = "default_meals")]
    pub meals: BTreeMap<MealKind, String>,
    #[serde(default)]
    pub eligibility: EligibilitySettings,
    #[serde(default)]
    pub tokens: TokenSettings,
    #[serde(default)]
    pub sms: SmsSettings,
    #[serde(default)]
    pub nobd: DeliverySettings,
    #[serde(default)]
    pub eotinish: DeliverySettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub retention: RetentionSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event, colours only when writing to a terminal.
    #[default]
    Text,
    /// One JSON object per line, for a log shipper.
    Json,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
}

/// Who may read `GET /metrics`. Loopback clients always may, without credentials.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// A second address that serves only `/metrics`, for a scraper on another host.
    #[serde(default)]
    pub listen: Option<String>,
    /// When set, any client presenting `Authorization: Bearer <token>` may scrape.
    #[serde(default)]
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The address parents reach this server at; the consent SMS links to `{public_url}/wallet`.
    #[serde(default = "default_public_url")]
    pub public_url: String,
    /// Language of texts for families whose roster row has no `lang`.
    #[serde(default)]
    pub default_lang: Lang,
    /// How often the background jobs (consent tick, outboxes) run.
    #[serde(default = "default_job_interval")]
    pub job_interval_seconds: u64,
    /// How long a claim on an outbox row keeps other instances off it; renewed every third of
    /// it while the row is being sent.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// After SIGTERM or Ctrl-C, how long requests and deliveries in progress get to finish.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_seconds: u64,
    /// Reverse proxies (CIDRs or addresses) whose `X-Forwarded-For` / `X-Forwarded-Proto` are
    /// believed; from any other peer those headers are ignored. Empty: no proxy.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Seconds to send a request head (also the idle keep-alive timeout).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: u64,
    /// Longest pause between two pieces of a request body, seconds.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_seconds: u64,
    /// Longest a whole request may take, seconds.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// Open connections in total.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one client address.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
}

impl ServerSettings {
    pub fn front_door(&self) -> front_door::Limits {
        use std::time::Duration;
        front_door::Limits {
            header_read_timeout: Duration::from_secs(self.header_timeout_seconds),
            body_timeout: Duration::from_secs(self.body_timeout_seconds),
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
        }
    }
}

/// How long the personal data of a pupil who left the roster is kept (DESIGN §10, docs/operations.md
/// "Retention").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Days after the later of the end of the pupil's last voucher's school year and the day
    /// they left the roster. Signed, so that a negative value gets the same clear refusal.
    #[serde(default = "default_retention_days")]
    pub days: i64,
}

impl RetentionSettings {
    /// Shorter than this, a snapshot import's mistake could be erased before anyone saw it.
    pub const MIN_DAYS: i64 = 30;
    /// Ten years: longer is a typo, not a policy.
    pub const MAX_DAYS: i64 = 3650;
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            days: default_retention_days(),
        }
    }
}

fn default_retention_days() -> i64 {
    365
}

/// The monthly subsistence minimum (tenge per person) in force from a date on; it changes
/// every 1 January, in the middle of a school year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsistenceMinimum {
    #[serde(deserialize_with = "toml_date")]
    pub from: NaiveDate,
    pub kzt: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilitySettings {
    /// The old single setting: one minimum for every date. Kept working; the dated list is
    /// preferred, and giving both is refused.
    #[serde(default)]
    pub subsistence_minimum_kzt: Option<i64>,
    /// `[[eligibility.subsistence_minimum]]`; neither this nor the single setting: the 2026
    /// minimum.
    #[serde(default)]
    pub subsistence_minimum: Vec<SubsistenceMinimum>,
}

impl EligibilitySettings {
    /// The dated minimums, sorted by date (the single setting as one entry in force always).
    pub fn minimums(&self) -> Vec<SubsistenceMinimum> {
        let mut list = match (
            self.subsistence_minimum_kzt,
            self.subsistence_minimum.is_empty(),
        ) {
            (Some(kzt), true) => vec![SubsistenceMinimum {
                from: NaiveDate::MIN,
                kzt,
            }],
            (_, false) => self.subsistence_minimum.clone(),
            (None, true) => vec![default_subsistence_minimum()],
        };
        list.sort_by_key(|m| m.from);
        list
    }

    /// The minimum in force on `date`: the latest entry from that date or before; a date before
    /// every entry takes the earliest (an import is never refused for want of a minimum).
    pub fn minimum_on(&self, date: NaiveDate) -> i64 {
        let list = self.minimums();
        list.iter()
            .rev()
            .find(|m| m.from <= date)
            .or(list.first())
            .map_or(default_subsistence_minimum().kzt, |m| m.kzt)
    }

    fn validate(&self) -> Result<(), String> {
        if self.subsistence_minimum_kzt.is_some() && !self.subsistence_minimum.is_empty() {
            return Err(
                "[eligibility] give either subsistence_minimum_kzt (one value for every \
                 date) or [[eligibility.subsistence_minimum]] entries, not both"
                    .into(),
            );
        }
        if self.subsistence_minimum_kzt.is_some_and(|k| k <= 0) {
            return Err("[eligibility] subsistence_minimum_kzt must be positive".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, m) in self.subsistence_minimum.iter().enumerate() {
            if m.kzt <= 0 {
                return Err(format!(
                    "[[eligibility.subsistence_minimum]] number {} (from {}): kzt must be \
                     positive, got {}",
                    i + 1,
                    m.from,
                    m.kzt
                ));
            }
            if !seen.insert(m.from) {
                return Err(format!(
                    "[[eligibility.subsistence_minimum]] number {}: from {} is given twice",
                    i + 1,
                    m.from
                ));
            }
        }
        Ok(())
    }
}

/// A date written as a TOML date (`2026-01-01`) or a string (`"2026-01-01"`).
fn toml_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(s) => s,
        toml::Value::Datetime(dt) => dt.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a date YYYY-MM-DD, got {other}"
            )))
        }
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a date YYYY-MM-DD")))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    #[serde(default = "default_short_ttl")]
    pub short_ttl_minutes: u32,
    /// QR tokens a voucher may have signed per day (rate limit against scripted abuse).
    #[serde(default = "default_daily_limit")]
    pub daily_limit_per_voucher: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    /// Login codes sent per hour in total, all phones together.
    #[serde(default = "default_login_codes_per_hour")]
    pub login_codes_per_hour: u32,
    /// Login codes one phone number may ask for per hour.
    #[serde(default = "default_login_codes_per_phone_per_hour")]
    pub login_codes_per_phone_per_hour: u32,
    /// `POST /sms/inbound` must carry it in `X-Gateway-Secret`; unset: refused (except `demo`).
    #[serde(default)]
    pub inbound_secret: Option<Secret>,
    /// An HTTP SMS provider; unset: the outbox file `<data-dir>/outbox/sms.jsonl`.
    #[serde(default)]
    pub gateway_url: Option<String>,
    #[serde(default)]
    pub gateway_token: Option<Secret>,
}

/// Where NOBD reports and e-Otinish complaints go: an outbox directory by default, or a URL.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub token: Option<Secret>,
    /// Local time the daily reports are built for the day before (NOBD only), `"HH:MM"`.
    #[serde(default)]
    pub daily_at: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_public_url() -> String {
    "http://127.0.0.1:8080".into()
}
fn default_lease_seconds() -> u64 {
    crate::lease::DEFAULT_LEASE_SECONDS as u64
}

fn default_shutdown_grace() -> u64 {
    10
}

fn default_job_interval() -> u64 {
    60
}
fn default_login_codes_per_hour() -> u32 {
    1000
}
fn default_login_codes_per_phone_per_hour() -> u32 {
    5
}
impl Default for SmsSettings {
    fn default() -> Self {
        SmsSettings {
            login_codes_per_hour: default_login_codes_per_hour(),
            login_codes_per_phone_per_hour: default_login_codes_per_phone_per_hour(),
            inbound_secret: None,
            gateway_url: None,
            gateway_token: None,
        }
    }
}
fn default_header_timeout() -> u64 {
    front_door::Limits::SERVER.header_read_timeout.as_secs()
}
fn default_body_timeout() -> u64 {
    front_door::Limits::SERVER.body_timeout.as_secs()
}
fn default_request_timeout() -> u64 {
    front_door::Limits::SERVER.request_timeout.as_secs()
}
fn default_max_connections() -> usize {
    front_door::Limits::SERVER.max_connections
}
fn default_max_connections_per_client() -> usize {
    front_door::Limits::SERVER.max_connections_per_client
}
/// 2026: 50,851 ₸ a month.
fn default_subsistence_minimum() -> SubsistenceMinimum {
    SubsistenceMinimum {
        from: NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date"),
        kzt: 50_851,
    }
}
fn default_short_ttl() -> u32 {
    10
}
fn default_daily_limit() -> u32 {
    200
}
fn today_local() -> NaiveDate {
    shared::ServiceDay::from_unix(Utc::now().timestamp()).0
}
fn default_school_year() -> SchoolYear {
    SchoolYear::default_for(today_local())
}
fn default_meals() -> BTreeMap<MealKind, String> {
    BTreeMap::from([(MealKind::Lunch, "11:00-15:00".to_owned())])
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: default_listen(),
            public_url: default_public_url(),
            default_lang: Lang::default(),
            job_interval_seconds: default_job_interval(),
            lease_seconds: default_lease_seconds(),
            shutdown_grace_seconds: default_shutdown_grace(),
            trusted_proxies: Vec::new(),
            header_timeout_seconds: default_header_timeout(),
            body_timeout_seconds: default_body_timeout(),
            request_timeout_seconds: default_request_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
        }
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            short_ttl_minutes: default_short_ttl(),
            daily_limit_per_voucher: default_daily_limit(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_toml("").expect("empty configuration is valid")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration {origin} is not valid: {message}")]
    Invalid { origin: String, message: String },
}

/// Keys that may be set from the environment as `TAMAQ_<SECTION>_<KEY>`, with their TOML type.
const ENV_KEYS: &[(&str, &str, EnvKind)] = &[
    ("server", "listen", EnvKind::Str),
    ("server", "public_url", EnvKind::Str),
    ("server", "default_lang", EnvKind::Str),
    ("server", "job_interval_seconds", EnvKind::Int),
    ("server", "lease_seconds", EnvKind::Int),
    ("server", "shutdown_grace_seconds", EnvKind::Int),
    ("server", "trusted_proxies", EnvKind::List),
    ("server", "header_timeout_seconds", EnvKind::Int),
    ("server", "body_timeout_seconds", EnvKind::Int),
    ("server", "request_timeout_seconds", EnvKind::Int),
    ("server", "max_connections", EnvKind::Int),
    ("server", "max_connections_per_client", EnvKind::Int),
    ("eligibility", "subsistence_minimum_kzt", EnvKind::Int),
    ("tokens", "short_ttl_minutes", EnvKind::Int),
    ("tokens", "daily_limit_per_voucher", EnvKind::Int),
    ("sms", "inbound_secret", EnvKind::Str),
    ("sms", "login_codes_per_hour", EnvKind::Int),
    ("sms", "login_codes_per_phone_per_hour", EnvKind::Int),
    ("sms", "gateway_url", EnvKind::Str),
    ("sms", "gateway_token", EnvKind::Str),
    ("nobd", "url", EnvKind::Str),
    ("nobd", "token", EnvKind::Str),
    ("nobd", "daily_at", EnvKind::Str),
    ("eotinish", "url", EnvKind::Str),
    ("eotinish", "token", EnvKind::Str),
    ("log", "format", EnvKind::Str),
    ("metrics", "listen", EnvKind::Str),
    ("metrics", "token", EnvKind::Str),
    ("retention", "days", EnvKind::Int),
    ("school_year", "start", EnvKind::Str),
    ("school_year", "end", EnvKind::Str),
    ("meals", "lunch", EnvKind::Str),
    ("meals", "breakfast", EnvKind::Str),
    ("meals", "snack", EnvKind::Str),
];

#[derive(Clone, Copy)]
enum EnvKind {
    Str,
    Int,
    /// Comma-separated: `TAMAQ_SERVER_TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1`.
    List,
}

impl Settings {
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        Settings::build(text, "file", std::iter::empty())
    }

    /// Reads the file (if any), then applies `TAMAQ_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let (text, origin) = match file {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?,
                path.display().to_string(),
            ),
            None => (String::new(), "defaults".to_owned()),
        };
        Settings::build(&text, &origin, env)
    }

    fn build(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let invalid = |origin: &str, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        let mut root: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(origin, e.message().to_owned()))?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("TAMAQ_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            let Some((section, key, kind)) =
                ENV_KEYS.iter().find(|(s, k, _)| rest == format!("{s}_{k}"))
            else {
                continue;
            };
            let parsed = match kind {
                EnvKind::Str => toml::Value::String(value.clone()),
                EnvKind::List => toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| toml::Value::String(v.to_owned()))
                        .collect(),
                ),
                EnvKind::Int => toml::Value::Integer(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| invalid(&name, format!("{value:?} is not a whole number")))?,
                ),
            };
            let table = root
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match table {
                toml::Value::Table(t) => {
                    t.insert(key.to_string(), parsed);
                }
                _ => return Err(invalid(&name, format!("[{section}] is not a table"))),
            }
        }
        let years = school_years(root.remove("school_year"), root.remove("school_years"))
            .map_err(|m| invalid(origin, m))?;
        let mut settings: Settings = toml::Value::Table(root)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(origin, e.message().to_owned()))?;
        settings.school_years = years;
        settings.validate().map_err(|m| invalid(origin, m))?;
        Ok(settings)
    }

    /// The school year holding the service day of `now`; `None` between years.
    pub fn year_at(&self, now: i64) -> Option<SchoolYear> {
        self.school_years
            .year_for(shared::ServiceDay::from_unix(now).date())
            .map(std::borrow::Cow::into_owned)
    }

    fn validate(&self) -> Result<(), String> {
        self.meal_windows()?;
        self.server
            .front_door()
            .validate()
            .map_err(|e| format!("[server] {e}"))?;
        if self.tokens.short_ttl_minutes == 0 || self.tokens.short_ttl_minutes > 24 * 60 {
            return Err("[tokens] short_ttl_minutes must be between 1 and 1440".into());
        }
        self.eligibility.validate()?;
        if !(3..=3600).contains(&self.server.lease_seconds) {
            return Err("[server] lease_seconds must be between 3 and 3600".into());
        }
        if self.server.shutdown_grace_seconds > 600 {
            return Err("[server] shutdown_grace_seconds must be at most 600".into());
        }
        crate::client_addr::TrustedProxies::parse(&self.server.trusted_proxies)
            .map_err(|e| format!("[server] {e}"))?;
        if let Some(token) = &self.metrics.token {
            // A short bearer token is guessable by a scraper-shaped brute force.
            if token.expose().len() < 16 {
                return Err("[metrics] token must be at least 16 characters".into());
            }
        }
        if let Some(listen) = &self.metrics.listen {
            listen.parse::<std::net::SocketAddr>().map_err(|_| {
                format!("[metrics] listen {listen:?} is not an address like 0.0.0.0:9100")
            })?;
        }
        let days = self.retention.days;
        if !(RetentionSettings::MIN_DAYS..=RetentionSettings::MAX_DAYS).contains(&days) {
            return Err(format!(
                "[retention] days must be between {} and {} (ten years), got {days}",
                RetentionSettings::MIN_DAYS,
                RetentionSettings::MAX_DAYS
            ));
        }
        if let Some(at) = &self.nobd.daily_at {
            chrono::NaiveTime::parse_from_str(at, "%H:%M")
                .map_err(|_| format!("[nobd] daily_at {at:?} is not HH:MM"))?;
        }
        Ok(())
    }

    pub fn meal_windows(&self) -> Result<Vec<MealWindow>, String> {
        self.meals
            .iter()
            .map(|(kind, text)| MealWindow::parse(*kind, text).map_err(|e| format!("[meals]: {e}")))
            .collect()
    }

    /// The proxies whose forwarding headers are believed, already validated at load.
    pub fn trusted_proxies(&self) -> crate::client_addr::TrustedProxies {
        crate::client_addr::TrustedProxies::parse(&self.server.trusted_proxies)
            .expect("validated at load")
    }

    /// Meal windows, already validated when the settings were built.
    pub fn windows(&self) -> Vec<MealWindow> {
        self.meal_windows().expect("validated at load")
    }
}

/// The school years of `[school_year]` (the only year) or `[[school_years]]` (several); neither:
/// the default calendar.
fn school_years(
    single: Option<toml::Value>,
    list: Option<toml::Value>,
) -> Result<SchoolYears, String> {
    let years = match (single, list) {
        (Some(_), Some(_)) => {
            return Err(
                "give the school years either as one [school_year] table or as \
                 [[school_years]] tables, not both"
                    .into(),
            )
        }
        (None, None) => Vec::new(),
        (Some(mut year), None) => {
            // A partly given school year takes its missing dates from the default one; its
            // breaks are only those it lists (default breaks may fall outside a year given by
            // hand).
            if let toml::Value::Table(year) = &mut year {
                let default = toml::Value::try_from(default_school_year()).expect("serialisable");
                if let toml::Value::Table(d) = default {
                    for (k, v) in d.into_iter().filter(|(k, _)| k != "breaks") {
                        year.entry(k).or_insert(v);
                    }
                }
            }
            vec![school_year(year).map_err(|e| format!("[school_year]: {e}"))?]
        }
        (None, Some(toml::Value::Array(tables))) => tables
            .into_iter()
            .enumerate()
            .map(|(i, table)| {
                // Each of several years says when it starts and ends: no default fits them all.
                let named = |key: &str| table.get(key).is_some();
                if !named("start") || !named("end") {
                    return Err(format!(
                        "[[school_years]] number {}: start and end are required",
                        i + 1
                    ));
                }
                school_year(table).map_err(|e| format!("[[school_years]] number {}: {e}", i + 1))
            })
            .collect::<Result<_, _>>()?,
        (None, Some(_)) => {
            return Err("school_years must be [[school_years]] tables (an array of tables)".into())
        }
    };
    SchoolYears::new(years).map_err(|e| e.to_string())
}

/// One school year's table. Its keys are checked here: the type is also the terminals' wire
/// format, which must take fields a later server adds.
fn school_year(table: toml::Value) -> Result<SchoolYear, String> {
    const KEYS: [&str; 4] = ["start", "end", "breaks", "school_days"];
    if let Some(unknown) = table
        .as_table()
        .and_then(|t| t.keys().find(|k| !KEYS.contains(&k.as_str())))
    {
        return Err(format!(
            "unknown field `{unknown}`, expected one of {}",
            KEYS.map(|k| format!("`{k}`")).join(", ")
        ));
    }
    table
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_owned())
}

/// Where a command keeps its files, and the database it uses.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub database_url: String,
}

impl Paths {
    pub fn new(data_dir: PathBuf, database_url: Option<String>) -> Paths {
        let database_url = database_url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("tamaq.db").display()));
        Paths {
            data_dir,
            database_url,
        }
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let s = Settings::from_toml("").unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:8080");
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(s.eligibility.minimum_on(day(2026, 9, 1)), 50_851);
        assert_eq!(s.eligibility.minimums().len(), 1);
        assert_eq!(s.tokens.short_ttl_minutes, 10);
        assert_eq!(s.windows()[0].text(), "11:00-15:00");
        assert!(s.sms.inbound_secret.is_none());
        assert_eq!(s.retention.days, 365);
        let env = vec![("TAMAQ_RETENTION_DAYS".to_owned(), "730".to_owned())];
        assert_eq!(Settings::load(None, env).unwrap().retention.days, 730);
    }

    #[test]
    fn design_example_parses() {
        let s = Settings::from_toml(
            r#"
[school_year]
start = "2026-09-01"
end = "2027-05-25"
breaks = [["2026-10-26", "2026-11-01"], ["2026-12-29", "2027-01-07"], ["2027-03-19", "2027-03-29"]]
school_days = ["mon", "tue", "wed", "thu", "fri"]
[meals]
lunch = "11:00-15:00"
[eligibility]
subsistence_minimum_kzt = 50851
[tokens]
short_ttl_minutes = 10
[sms]
inbound_secret = "s3cret"
"#,
        )
        .unwrap();
        let [year] = s.school_years.configured() else {
            panic!("one year: {:?}", s.school_years)
        };
        assert_eq!(year.label(), "2026-2027");
        assert_eq!(year.breaks.len(), 3);
        assert_eq!(s.sms.inbound_secret.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(
            s.eligibility
                .minimum_on(NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()),
            50_851
        );
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn env_overrides_single_keys() {
        let env = vec![
            ("TAMAQ_TOKENS_SHORT_TTL_MINUTES".to_owned(), "5".to_owned()),
            ("TAMAQ_SMS_INBOUND_SECRET".to_owned(), "x".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let s = Settings::load(None, env).unwrap();
        assert_eq!(s.tokens.short_ttl_minutes, 5);
        assert_eq!(s.sms.inbound_secret.unwrap().expose(), "x");
        let bad = vec![(
            "TAMAQ_TOKENS_SHORT_TTL_MINUTES".to_owned(),
            "ten".to_owned(),
        )];
        let err = Settings::load(None, bad).unwrap_err().to_string();
        assert!(err.contains("TAMAQ_TOKENS_SHORT_TTL_MINUTES"), "{err}");
    }

    #[test]
    fn proxies_logs_and_metrics_are_configured() {
        let env = vec![
            (
                "TAMAQ_SERVER_TRUSTED_PROXIES".to_owned(),
                "10.0.0.0/8, 127.0.0.1".to_owned(),
            ),
            ("TAMAQ_LOG_FORMAT".to_owned(), "json".to_owned()),
            ("TAMAQ_METRICS_LISTEN".to_owned(), "0.0.0.0:9100".to_owned()),
        ];
        let s = Settings::load(None, env).unwrap();
        assert_eq!(s.server.trusted_proxies, ["10.0.0.0/8", "127.0.0.1"]);
        assert!(s.trusted_proxies().contains("10.20.30.40".parse().unwrap()));
        assert!(!s.trusted_proxies().contains("11.0.0.1".parse().unwrap()));
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.metrics.listen.as_deref(), Some("0.0.0.0:9100"));
        assert!(Settings::default().trusted_proxies().is_empty());
    }

    const TWO_YEARS: &str = r#"
[[school_years]]
start = "2026-09-01"
end = "2027-05-25"
breaks = [["2026-10-26", "2026-11-01"], ["2026-12-29", "2027-01-07"]]

[[school_years]]
start = "2027-09-01"
end = "2028-05-25"
breaks = [["2027-12-29", "2028-01-07"]]
school_days = ["mon", "tue", "wed", "thu", "fri", "sat"]
"#;

    fn at(date: &str) -> i64 {
        let day = shared::ServiceDay(date.parse().unwrap());
        day.unix_at(chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap())
    }

    #[test]
    fn several_school_years_and_the_year_of_a_day() {
        let s = Settings::from_toml(TWO_YEARS).unwrap();
        let labels: Vec<String> = s
            .school_years
            .configured()
            .iter()
            .map(|y| y.label())
            .collect();
        assert_eq!(labels, ["2026-2027", "2027-2028"]);
        let label = |date: &str| s.year_at(at(date)).map(|y| y.label());
        assert_eq!(label("2026-11-23").as_deref(), Some("2026-2027"));
        assert_eq!(label("2027-07-01"), None, "between years: none");
        assert_eq!(label("2027-09-01").as_deref(), Some("2027-2028"));
        assert_eq!(label("2028-06-01"), None, "after the last year");
        let second = s.year_at(at("2027-09-04")).unwrap();
        assert!(
            second.is_school_day("2027-09-04".parse().unwrap()),
            "a Saturday"
        );
        // The default calendar goes on year after year.
        let d = Settings::from_toml("").unwrap();
        assert!(d.school_years.configured().is_empty());
        assert_eq!(
            d.year_at(at("2031-02-03")).map(|y| y.label()).as_deref(),
            Some("2030-2031")
        );
        // `[school_year]` alone is still the only year.
        let one =
            Settings::from_toml("[school_year]\nstart = \"2026-09-01\"\nend = \"2027-05-25\"")
                .unwrap();
        assert_eq!(one.school_years.configured().len(), 1);
        assert_eq!(one.year_at(at("2027-09-01")), None);
    }

    #[test]
    fn bad_school_years_name_the_year() {
        let second = |extra: &str| {
            let text = format!("{TWO_YEARS}\n[[school_years]]\n{extra}");
            Settings::from_toml(&text).unwrap_err().to_string()
        };
        for (extra, needle) in [
            (
                "start = \"2028-05-01\"\nend = \"2029-05-25\"",
                "school years 2027-2028 and 2028-2029 overlap: 2028-05-01 is in both",
            ),
            (
                "start = \"2029-09-01\"\nend = \"2029-05-25\"",
                "school year 2029-2029: ends (2029-05-25) before it starts (2029-09-01)",
            ),
            (
                "start = \"2028-09-01\"\nend = \"2029-05-25\"\nbreaks = [[\"2029-06-01\", \"2029-06-03\"]]",
                "school year 2028-2029: break 2029-06-01 – 2029-06-03 is reversed or outside",
            ),
            ("start = \"2028-09-01\"", "[[school_years]] number 3: start and end are required"),
            (
                "start = \"2028-09-01\"\nend = \"2029-05-25\"\nschool_days = []",
                "school year 2028-2029: school_days is empty",
            ),
            (
                "start = \"2028-09-01\"\nend = \"2029-05-25\"\nholidays = 3",
                "[[school_years]] number 3: unknown field `holidays`",
            ),
        ] {
            let err = second(extra);
            assert!(err.contains(needle), "{extra}: {err}");
        }
        // The same year twice.
        let text =
            format!("{TWO_YEARS}\n[[school_years]]\nstart = \"2026-09-01\"\nend = \"2027-05-25\"");
        let err = Settings::from_toml(&text).unwrap_err().to_string();
        assert!(
            err.contains("school year 2026-2027 is listed twice"),
            "{err}"
        );
        // Two years within one calendar year would share the label vouchers are issued under.
        let text = "[[school_years]]\nstart = \"2027-01-10\"\nend = \"2027-03-01\"\n\
                    [[school_years]]\nstart = \"2027-04-01\"\nend = \"2027-05-01\"";
        let err = Settings::from_toml(text).unwrap_err().to_string();
        assert!(
            err.contains("school year 2027-2027 is listed twice"),
            "{err}"
        );
        let err = Settings::from_toml("school_years = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[[school_years]] tables"), "{err}");
        // An environment override of [school_year] next to [[school_years]] is refused too.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tamaq.toml");
        std::fs::write(&file, TWO_YEARS).unwrap();
        let env = vec![(
            "TAMAQ_SCHOOL_YEAR_START".to_owned(),
            "2026-09-02".to_owned(),
        )];
        let err = Settings::load(Some(&file), env).unwrap_err().to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_clearly() {
        for (text, needle) in [
            ("[meals]\nlunch = \"15:00-11:00\"", "meal window"),
            ("[tokens]\nshort_ttl_minutes = 0", "short_ttl_minutes"),
            (
                "[school_year]\nstart = \"2027-09-01\"\nend = \"2026-05-25\"",
                "ends",
            ),
            ("[nonsense]\nx = 1", "unknown field"),
            (
                "[server]\ntrusted_proxies = [\"10.0.0.0/40\"]",
                "10.0.0.0/40",
            ),
            ("[log]\nformat = \"xml\"", "unknown variant"),
            ("[metrics]\ntoken = \"short\"", "16 characters"),
            ("[metrics]\nlisten = \"everywhere\"", "everywhere"),
            ("[retention]\ndays = 0", "[retention] days must be between 30 and 3650"),
            ("[retention]\ndays = -5", "got -5"),
            ("[retention]\ndays = 100000", "got 100000"),
            ("[retention]\ndays = \"a year\"", "invalid type"),
            ("[retention]\nweeks = 3", "unknown field `weeks`"),
            ("[school_year]\nschool_days = [\"funday\"]", "funday"),
            (
                "[school_year]\nstart = \"2026-09-01\"\n[[school_years]]\nstart = \"2027-09-01\"\nend = \"2028-05-25\"",
                "not both",
            ),
        ] {
            let err = Settings::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn subsistence_minimum_is_monthly_and_dated() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let s = Settings::from_toml(
            r#"
[[eligibility.subsistence_minimum]]
from = 2027-01-01
kzt = 53000
[[eligibility.subsistence_minimum]]
from = "2026-01-01"
kzt = 50851
"#,
        )
        .unwrap();
        assert_eq!(s.eligibility.minimum_on(day(2026, 12, 31)), 50_851);
        assert_eq!(s.eligibility.minimum_on(day(2027, 1, 1)), 53_000);
        assert_eq!(s.eligibility.minimum_on(day(2030, 5, 1)), 53_000);
        // Before every entry: the earliest.
        assert_eq!(s.eligibility.minimum_on(day(2025, 9, 1)), 50_851);

        // The single old setting is one value for every date, also from the environment.
        let env = vec![(
            "TAMAQ_ELIGIBILITY_SUBSISTENCE_MINIMUM_KZT".to_owned(),
            "60001".to_owned(),
        )];
        let s = Settings::load(None, env).unwrap();
        assert_eq!(s.eligibility.minimum_on(day(2026, 9, 1)), 60_001);
        assert_eq!(s.eligibility.minimum_on(day(2031, 1, 1)), 60_001);

        for (text, needle) in [
            (
                "[[eligibility.subsistence_minimum]]\nfrom = 2026-01-01\nkzt = 1\n\
                 [[eligibility.subsistence_minimum]]\nfrom = 2026-01-01\nkzt = 2\n",
                "from 2026-01-01 is given twice",
            ),
            (
                "[[eligibility.subsistence_minimum]]\nfrom = 2026-01-01\nkzt = 0\n",
                "kzt must be positive, got 0",
            ),
            (
                "[[eligibility.subsistence_minimum]]\nfrom = 2026-01-01\nkzt = -5\n",
                "kzt must be positive, got -5",
            ),
            (
                "[eligibility]\nsubsistence_minimum_kzt = 1\n\
                 [[eligibility.subsistence_minimum]]\nfrom = 2026-01-01\nkzt = 2\n",
                "not both",
            ),
            (
                "[eligibility]\nsubsistence_minimum_kzt = 0\n",
                "subsistence_minimum_kzt must be positive",
            ),
            (
                "[[eligibility.subsistence_minimum]]\nfrom = \"1 Jan\"\nkzt = 2\n",
                "is not a date YYYY-MM-DD",
            ),
            ("[[eligibility.subsistence_minimum]]\nkzt = 2\n", "from"),
        ] {
            let err = Settings::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
