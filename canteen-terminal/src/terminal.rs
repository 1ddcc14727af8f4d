//! The terminal: opens its data dir, verifies scans and records them durably.

use crate::clock::{Clock, Reading, TrustedTime};
use crate::config::{Settings, OFFSET_WARNING_SECONDS};
use crate::flood::{self, Placement, RowKey};
use crate::outcome::{local_datetime, messages, NotRecorded, ScanOutcome};
use crate::state::State;
use crate::store::{self, NewEvent, PriorMeal, StoreError};
use crate::verify::{self, Credential};
use chrono::NaiveDate;
use serde::Serialize;
use shared::calendar::{MealKind, ServiceDay};
use shared::verdict::Verdict;
use shared::wire::ScanSource;
use sqlx::SqlitePool;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;
use uuid::Uuid;

pub const SECRET_FILE: &str = "terminal.secret";

/// At start the flood guard reads the current minute's rejections among the last
/// `rejections_per_minute` + this many events (capped events, served scans between them).
const FLOOD_SEED_EXTRA: i64 = 256;

/// Says what to do when the log cannot be trusted; staff see the kk/ru line, the administrator
/// the rest.
const LOG_ADVICE: &str = "The terminal stops so that no meal is recorded into a fresh or broken \
    log. Either restore terminal.db from the latest backup into the data dir (with the terminal \
    stopped), or, knowing that meals not yet sent to the server are lost, move the data dir \
    aside and enroll again with a new code. / Тамақ журналы жоқ немесе бүлінген: әкімшіге \
    хабарлаңыз. / Журнал питания отсутствует или повреждён: сообщите администратору.";

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error(
        "{dir} holds no enrolled terminal. Enroll it first: \
         canteen-terminal --data-dir {dir} enroll --server URL --code CODE \
         (school staff print the code with `wallet-server terminal enroll-code --school BIN`)"
    )]
    NotEnrolled { dir: String },
    #[error(
        "{dir} already holds enrolled terminal {terminal_id} of school {school}; \
         use another --data-dir for a new terminal"
    )]
    AlreadyEnrolled {
        dir: String,
        terminal_id: Uuid,
        school: String,
    },
    #[error("cannot use data dir {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error(
        "cannot read the terminal secret {path}: {source}; re-enroll the terminal with a new code"
    )]
    Secret {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the meal log {path} is missing, but this terminal's credentials are still in {dir}. {advice}",
        advice = LOG_ADVICE
    )]
    LogMissing { path: String, dir: String },
    #[error("the meal log {path} is damaged ({detail}). {advice}", advice = LOG_ADVICE)]
    LogDamaged { path: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A staff-facing warning about the terminal's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub message_kk: String,
    pub message_ru: String,
}

/// Everything the counter screen shows besides the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub terminal_id: Uuid,
    pub label: Option<String>,
    pub school_name: String,
    pub school_bin: String,
    pub server_url: String,
    pub now: i64,
    pub service_day: NaiveDate,
    pub current_meal: MealKind,
    pub last_sync_at: Option<i64>,
    pub last_sync_local: Option<String>,
    pub last_sync_error: Option<String>,
    pub server_offset: Option<i64>,
    pub trust_version: Option<u64>,
    pub vouchers: usize,
    pub unsynced_events: i64,
    /// Free space of the data dir's file system, bytes (None where it cannot be read).
    pub free_bytes: Option<u64>,
    /// Set while the last attempt to record a scan failed; cleared by the next commit.
    pub storage_alarm: Option<StorageAlarm>,
    pub warnings: Vec<Warning>,
}

/// A scan could not be committed: shown on the counter screen until a later commit succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageAlarm {
    pub since: i64,
    pub since_local: String,
    pub failures: u64,
    pub last_error: String,
}

pub struct Terminal {
    pub(crate) pool: SqlitePool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    pub(crate) dir: PathBuf,
    pub(crate) state: Mutex<State>,
    /// Fixed at enrollment.
    pub(crate) identity: store::Identity,
    /// Meals are dated by this, not by the PC's clock (see [`crate::clock`]).
    pub(crate) time: TrustedTime,
    pub(crate) storage_alarm: std::sync::Mutex<Option<StorageAlarm>>,
    /// The flood rules' memory; used only under the `state` lock.
    pub(crate) flood: std::sync::Mutex<flood::Guard>,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal").field("dir", &self.dir).finish()
    }
}

impl Terminal {
    /// Opens an enrolled terminal; an empty or missing dir is refused without creating files.
    /// A log that is missing beside the terminal's credentials, or that fails its quick check,
    /// stops the terminal: starting on a fresh log would hide every meal not yet uploaded.
    pub async fn open(
        dir: &Path,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Terminal, TerminalError> {
        let not_enrolled = || TerminalError::NotEnrolled {
            dir: dir.display().to_string(),
        };
        let db = dir.join(store::DB_FILE);
        let has_credentials = dir.join(SECRET_FILE).exists();
        if !db.is_file() {
            if has_credentials {
                return Err(TerminalError::LogMissing {
                    path: db.display().to_string(),
                    dir: dir.display().to_string(),
                });
            }
            return Err(not_enrolled());
        }
        let busy = std::time::Duration::from_millis(settings.db_busy_timeout_ms);
        let pool = match store::open_existing(dir, busy).await {
            Ok(pool) => pool,
            Err(StoreError::Damaged { path, detail }) => {
                return Err(TerminalError::LogDamaged { path, detail })
            }
            Err(e) => return Err(e.into()),
        };
        let state = match State::load(&pool).await? {
            Some(state) => state,
            None if has_credentials => {
                pool.close().await;
                return Err(TerminalError::LogDamaged {
                    path: db.display().to_string(),
                    detail:
                        "it holds no enrolled terminal, but the credentials of one are beside it"
                            .to_owned(),
                });
            }
            None => return Err(not_enrolled()),
        };
        let time = TrustedTime::load(dir);
        let now = time.peek(clock.as_ref()).unwrap_or_else(|| clock.now());
        let cap = settings.rejections_per_minute;
        let seed = store::flood_seed(&pool, now, i64::from(cap) + FLOOD_SEED_EXTRA).await?;
        Ok(Terminal {
            flood: std::sync::Mutex::new(flood::Guard::seed(cap, now, seed)),
            time,
            identity: state.identity.clone(),
            pool,
            clock,
            settings,
            dir: dir.to_owned(),
            state: Mutex::new(state),
            storage_alarm: std::sync::Mutex::new(None),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Trusted time while this boot's anchor holds, else the PC's clock.
    pub fn now(&self) -> i64 {
        self.time
            .peek(self.clock.as_ref())
            .unwrap_or_else(|| self.clock.now())
    }

    /// The time to serve by, judged against the log's watermark and the last sync.
    pub(crate) fn reading(&self, sync: &store::SyncState) -> Reading {
        // The sync state keeps the local time of the last sync and the server's time minus it.
        let last_sync = sync
            .last_sync_at
            .map(|at| at + sync.server_offset.unwrap_or(0));
        self.time.read(
            self.clock.as_ref(),
            sync.last_seen_time,
            self.settings.offline_budget_seconds,
            last_sync,
        )
    }

    pub(crate) fn secret(&self) -> Result<String, TerminalError> {
        let path = self.dir.join(SECRET_FILE);
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_owned())
            .map_err(|source| TerminalError::Secret {
                path: path.display().to_string(),
                source,
            })
    }

    /// Verifies a scanned token and records the scan; returns after the commit, or
    /// [`NotRecorded`] when the event could not be committed.
    pub async fn scan(
        &self,
        token: &str,
        meal: Option<MealKind>,
    ) -> Result<ScanOutcome, NotRecorded> {
        // Wedge scanners end lines with CR LF and some pad with spaces.
        self.check(Credential::Token(token.trim()), ScanSource::Qr, meal)
            .await
    }

    /// The fallback by ID-card number (§1.9): same checks from `unknown_voucher` on.
    pub async fn redeem_card(
        &self,
        card: &str,
        meal: Option<MealKind>,
    ) -> Result<ScanOutcome, NotRecorded> {
        self.check(Credential::Card(card.trim()), ScanSource::Card, meal)
            .await
    }

    /// The storage alarm, if the last attempt to record failed.
    pub fn storage_alarm(&self) -> Option<StorageAlarm> {
        self.storage_alarm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn check(
        &self,
        credential: Credential<'_>,
        source: ScanSource,
        meal: Option<MealKind>,
    ) -> Result<ScanOutcome, NotRecorded> {
        let result = self.check_and_record(credential, source, meal).await;
        let mut alarm = self.storage_alarm.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(outcome) => {
                if let Some(a) = alarm.take() {
                    tracing::warn!(
                        "the meal log records again after {} failed scans since {}",
                        a.failures,
                        a.since_local
                    );
                }
                Ok(outcome)
            }
            Err(e) => {
                let now = self.clock.now();
                let error = e.to_string();
                tracing::error!("scan not recorded: {error}");
                let a = alarm.get_or_insert_with(|| StorageAlarm {
                    since: now,
                    since_local: local_datetime(now),
                    failures: 0,
                    last_error: String::new(),
                });
                a.failures += 1;
                a.last_error = error.clone();
                Err(NotRecorded::new(error, now))
            }
        }
    }

    async fn check_and_record(
        &self,
        credential: Credential<'_>,
        source: ScanSource,
        meal: Option<MealKind>,
    ) -> Result<ScanOutcome, TerminalError> {
        let mut state = self.state.lock().await;
        let reading = self.reading(&state.sync);
        let now = reading.time();
        let day = ServiceDay::from_unix(now).0;
        state.ensure_day(&self.pool, day).await?;
        let meal_kind = meal.unwrap_or_else(|| state.default_meal(now));
        let decision = match reading {
            Reading::Trusted { .. } => verify::decide(
                &state,
                credential,
                now,
                meal_kind,
                self.settings.skew_seconds,
            ),
            // No meal on a day the terminal cannot vouch for; the scan is still logged.
            Reading::Refused { .. } => verify::Decision {
                verdict: Verdict::ClockUntrusted,
                service_day: day,
                meal_kind,
                voucher_id: None,
                key_id: None,
                earlier: None,
            },
        };
        let token_text = match credential {
            Credential::Token(text) => Some(text),
            Credential::Card(_) => None,
        };
        // The same token served here moments ago: neutral, recorded, never counted.
        let repeat = decision.verdict == Verdict::AlreadyServed
            && decision.earlier.as_ref().is_some_and(|m| {
                m.terminal_label.is_none()
                    && verify::is_repeat(m.proof.as_deref(), m.served_at, token_text, now)
            });
        let key_id = decision.key_id.map(|k| k.hex());
        // Rejections go through the flood rules: the same input again is counted into the
        // previous event, and past the per-minute cap into one capped event per key.
        let input = match credential {
            Credential::Token(text) | Credential::Card(text) => text,
        };
        let row_key = (decision.verdict != Verdict::Ok).then(|| RowKey {
            verdict: decision.verdict,
            service_day: decision.service_day,
            source,
            meal_kind,
            voucher_id: decision.voucher_id,
            key_id: key_id.clone(),
            repeat,
        });
        // The same input's window is measured on the boot-time clock (whole seconds of trusted
        // time where there is none); read only for rejections, off the serving path.
        let at_ms = match &row_key {
            Some(_) => self
                .clock
                .elapsed()
                .map(|e| e.millis)
                .unwrap_or_else(|| now.saturating_mul(1000)),
            None => 0,
        };
        let placement = match &row_key {
            Some(k) => self.flood_guard().plan(k, input, now, at_ms),
            None => Placement::default(),
        };
        let event = NewEvent {
            event_id: shared::wire::time_ordered_event_id(now),
            scanned_at: now,
            service_day: decision.service_day,
            verdict: decision.verdict,
            source,
            meal_kind,
            voucher_id: decision.voucher_id,
            key_id,
            proof: token_text.map(str::to_owned),
            repeat,
            placement,
        };
        let recorded = store::record(&self.pool, &event).await?;
        {
            let mut guard = self.flood_guard();
            match &row_key {
                Some(k) if recorded.verdict == decision.verdict => {
                    guard.landed(k, input, at_ms, recorded.landed)
                }
                _ => guard.interrupted(),
            }
        }
        if recorded.verdict != Verdict::ClockUntrusted {
            state.sync.last_seen_time = state.sync.last_seen_time.max(now);
        }
        let mut earlier = decision.earlier;
        if let Some(voucher_id) = decision.voucher_id {
            if recorded.verdict == Verdict::Ok {
                state.today.note_local(
                    voucher_id,
                    meal_kind,
                    now,
                    event.proof.clone().filter(|_| source == ScanSource::Qr),
                );
            } else if let Some(at) = recorded.earlier_served_at {
                // Another process on this data dir served it first; learn that.
                state
                    .today
                    .note_local(voucher_id, meal_kind, at, recorded.earlier_proof.clone());
                earlier = Some(PriorMeal {
                    voucher_id,
                    meal_kind,
                    served_at: at,
                    terminal_label: None,
                    proof: recorded.earlier_proof.clone(),
                });
            }
        }
        let verdict = recorded.verdict;
        let repeat = recorded.repeat;
        let pupil = decision
            .voucher_id
            .and_then(|id| state.vouchers.get(&id))
            .filter(|_| verdict.shows_pupil());
        let served_at = match verdict {
            Verdict::Ok => Some(now),
            Verdict::AlreadyServed => earlier.as_ref().map(|m| m.served_at),
            _ => None,
        };
        let (message_kk, message_ru) = messages(verdict, source, earlier.as_ref(), repeat);
        Ok(ScanOutcome {
            verdict,
            serve: verdict.serves(),
            voucher_id: decision.voucher_id,
            display_name: pupil.map(|p| p.display_name.clone()),
            class: pupil.map(|p| p.class()),
            served_at,
            served_at_local: served_at.map(local_datetime),
            served_where: earlier.as_ref().map(|m| {
                m.terminal_label
                    .clone()
                    .unwrap_or_else(|| state.label().to_owned())
            }),
            served_here: earlier.as_ref().map(|m| m.terminal_label.is_none()),
            repeat,
            message_kk,
            message_ru,
            meal_kind,
            service_day: decision.service_day,
            scanned_at: now,
            source,
            seq: recorded.seq,
            event_id: recorded.event_id,
            count: recorded.count,
            capped: matches!(
                recorded.landed,
                flood::Landed::Row { capped: true, .. } | flood::Landed::CappedEvent { .. }
            ),
        })
    }

    fn flood_guard(&self) -> std::sync::MutexGuard<'_, flood::Guard> {
        self.flood.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the in-memory view from the database (after a sync).
    pub async fn reload(&self) -> Result<(), TerminalError> {
        let fresh = State::load(&self.pool)
            .await?
            .ok_or_else(|| TerminalError::NotEnrolled {
                dir: self.dir.display().to_string(),
            })?;
        let mut state = self.state.lock().await;
        *state = fresh;
        Ok(())
    }

    pub async fn status(&self) -> Result<Status, TerminalError> {
        let unsynced = store::last_seq(&self.pool).await?;
        let sync = store::sync_state(&self.pool).await?;
        let state = self.state.lock().await;
        let reading = self.reading(&sync);
        let now = reading.time();
        let mut warnings = clock_warnings(&self.settings, reading);
        let alarmed = !warnings.is_empty();
        // The alarm measured now says more than the offset measured at the last sync.
        warnings.extend(
            self::warnings(&self.settings, &sync, now)
                .into_iter()
                .filter(|w| !(alarmed && w.code == "clock_offset")),
        );
        let free_bytes = free_bytes(&self.dir);
        let storage_alarm = self.storage_alarm();
        warnings.extend(storage_warnings(
            &self.settings,
            free_bytes,
            storage_alarm.as_ref(),
        ));
        Ok(Status {
            terminal_id: state.identity.terminal_id,
            label: state.identity.label.clone(),
            school_name: state.identity.school_name.clone(),
            school_bin: state.identity.school_bin.clone(),
            server_url: state.identity.server_url.clone(),
            now,
            service_day: ServiceDay::from_unix(now).0,
            current_meal: state.default_meal(now),
            last_sync_at: sync.last_sync_at,
            last_sync_local: sync.last_sync_at.map(local_datetime),
            last_sync_error: sync.last_sync_error.clone(),
            server_offset: sync.server_offset,
            trust_version: sync.trust_version,
            vouchers: state.vouchers.len(),
            unsynced_events: (unsynced - sync.uploaded_through).max(0),
            free_bytes,
            storage_alarm,
            warnings,
        })
    }
}

/// The clock alarm: the PC's clock disagrees with trusted time (serving goes on), or after a
/// reboot it cannot be trusted (serving stops until a sync).
pub fn clock_warnings(settings: &Settings, reading: Reading) -> Vec<Warning> {
    match reading {
        Reading::Trusted { now, system_offset }
            if system_offset.abs() > settings.clock_tolerance_seconds =>
        {
            let pc = local_datetime(now + system_offset);
            let right = local_datetime(now);
            vec![Warning {
                code: "clock_wrong",
                message_kk: format!(
                    "Компьютер сағаты қате ({pc}, дұрысы {right}): сағатты түзетіп, синхрондаңыз. \
                     Тамақ дұрыс уақытпен жазылып жатыр."
                ),
                message_ru: format!(
                    "Часы компьютера неверны ({pc}, верно {right}): исправьте их и синхронизируйте. \
                     Питание записывается по верному времени."
                ),
            }]
        }
        Reading::Trusted { .. } => Vec::new(),
        Reading::Refused { system_now, .. } => {
            let pc = local_datetime(system_now);
            vec![Warning {
                code: "clock_refused",
                message_kk: format!(
                    "Компьютер сағатына сенуге болмайды ({pc}): сағатты түзетіп, синхрондаңыз. \
                     Синхрондалғанша тамақ берілмейді."
                ),
                message_ru: format!(
                    "Часам компьютера нельзя доверять ({pc}): исправьте их и синхронизируйте. \
                     До синхронизации питание не выдаётся."
                ),
            }]
        }
    }
}

/// Free space available to this process on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let st = rustix::fs::statvfs(dir).ok()?;
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Staff warnings about the log's storage: a scan that could not be recorded, little free space.
pub fn storage_warnings(
    settings: &Settings,
    free_bytes: Option<u64>,
    alarm: Option<&StorageAlarm>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    if let Some(a) = alarm {
        out.push(Warning {
            code: "storage_failed",
            message_kk: format!(
                "Сканерлеу жазылмады ({}, {} рет). Тамақты осы терминалмен бермеңіз, әкімшіге хабарлаңыз.",
                a.since_local, a.failures
            ),
            message_ru: format!(
                "Сканы не записываются (с {}, {} раз). Не выдавайте питание по этому терминалу, сообщите администратору.",
                a.since_local, a.failures
            ),
        });
    }
    if let Some(free) = free_bytes {
        let limit = settings.low_space_warning_mb.saturating_mul(1024 * 1024);
        if free < limit {
            let mb = free / (1024 * 1024);
            out.push(Warning {
                code: "low_disk_space",
                message_kk: format!(
                    "Терминал дискісінде орын аз: {mb} МБ қалды. Әкімшіге хабарлаңыз."
                ),
                message_ru: format!(
                    "На диске терминала мало места: осталось {mb} МБ. Сообщите администратору."
                ),
            });
        }
    }
    out
}

/// Staff warnings: clock behind its watermark, clock far from the server's, sync too old.
pub fn warnings(settings: &Settings, sync: &store::SyncState, now: i64) -> Vec<Warning> {
    let mut out = Vec::new();
    if now < sync.last_seen_time {
        out.push(Warning {
            code: "clock_untrusted",
            message_kk: format!(
                "Терминал сағаты артқа кетті ({}). Сағатты түзетіп, синхрондаңыз.",
                local_datetime(now)
            ),
            message_ru: format!(
                "Часы терминала ушли назад ({}). Исправьте часы и синхронизируйте.",
                local_datetime(now)
            ),
        });
    }
    if let Some(offset) = sync.server_offset {
        if offset.abs() > OFFSET_WARNING_SECONDS {
            let minutes = offset.abs() / 60;
            out.push(Warning {
                code: "clock_offset",
                message_kk: format!(
                    "Терминал сағаты сервермен {minutes} минутқа сәйкес келмейді. Сағатты түзетіңіз."
                ),
                message_ru: format!(
                    "Часы терминала расходятся с сервером на {minutes} мин. Исправьте часы."
                ),
            });
        }
    }
    match sync.last_sync_at {
        None => out.push(Warning {
            code: "never_synced",
            message_kk: "Терминал әлі синхрондалмаған.".to_owned(),
            message_ru: "Терминал ещё не синхронизирован.".to_owned(),
        }),
        Some(at) if now - at > settings.stale_after_seconds => {
            let when = local_datetime(at);
            out.push(Warning {
                code: "sync_stale",
                message_kk: format!("Соңғы синхрондау: {when}. Интернетке қосылып, синхрондаңыз."),
                message_ru: format!(
                    "Последняя синхронизация: {when}. Подключитесь к интернету и синхронизируйте."
                ),
            });
        }
        Some(_) => {}
    }
    out
}
