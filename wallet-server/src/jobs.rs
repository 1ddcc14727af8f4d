//! Background jobs of `wallet-server serve`: the consent tick, SMS delivery, picking up keys
//! rotated elsewhere and, once a day, retention. Each runs in a loop until [`Jobs::stop`]; a
//! failed round is logged and tried again at the next interval. Safe with several instances on
//! one PostgreSQL: every job claims its rows (see the store modules).

use crate::lease::{Stop, Worker};
use crate::sms::{self, SmsGateway};
use crate::state::AppState;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// SMS delivery waits at most this long between rounds (queueing wakes it sooner): login codes
/// must not wait for the consent interval.
const SMS_MAX_WAIT: Duration = Duration::from_secs(5);
/// How often the SQLite write-ahead log is folded back into the database (see
/// `MaintenanceStore::checkpoint`): often enough that the log stays within tens of MB at the
/// highest upload rates.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);
/// The log size above which that checkpoint also truncates the log, stopping writers while it
/// runs: the `journal_size_limit`, in frames.
const TRUNCATE_WAL_ABOVE_FRAMES: i64 =
    crate::store::WAL_SIZE_LIMIT_BYTES / crate::store::SQLITE_PAGE_BYTES;

pub struct Jobs {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    state: AppState,
    /// The `claimed_by` of this instance's delivery jobs, for releasing their leases.
    workers: Vec<String>,
}

impl Jobs {
    /// A receiver of the stop signal, for work outside the jobs (the HTTP server) that should
    /// end with them.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Signals every job to stop (deliveries stop after the message in flight) and waits for
    /// rounds in progress, at most until `deadline`; jobs still running then are aborted. Rows
    /// the delivery jobs claimed but did not send are released for other instances.
    pub async fn stop(self, deadline: tokio::time::Instant) {
        let _ = self.stop.send(true);
        for mut h in self.handles {
            if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                h.abort();
                let _ = h.await;
            }
        }
        let released = crate::lease::release_all(self.state.store.as_ref(), &self.workers).await;
        if released > 0 {
            tracing::info!(rows = released, "claimed outbox rows released");
        }
        // The last token counts since the previous flush.
        crate::wallet::jobs::flush(&self.state).await;
    }
}

/// Retention once a local day: the first round of each day (just after midnight, or at start)
/// erases who became due. A failed round is tried again at the next interval.
async fn retention_round(
    state: &AppState,
    last_day: &mut Option<chrono::NaiveDate>,
) -> anyhow::Result<()> {
    let now = state.now();
    let today = shared::ServiceDay::from_unix(now).date();
    if *last_day == Some(today) {
        return Ok(());
    }
    let report = crate::retention::run(
        state.store.as_ref(),
        &state.settings,
        crate::retention::JOB_ACTOR,
        now,
        &mut |_| {},
    )
    .await?;
    if let Some(purge) = &report.purge {
        tracing::info!(
            summary = %report.summary(),
            purged = %purge.done,
            complete = purge.complete,
            "retention"
        );
        if !purge.complete {
            anyhow::bail!("retention: the purge could not empty the write-ahead log; trying again");
        }
    }
    *last_day = Some(today);
    Ok(())
}

/// Runs `round` now and then every `every` (or when `wake` resolves) until stopped.
fn spawn_loop<R, F, W, WF>(
    name: &'static str,
    mut stop: watch::Receiver<bool>,
    every: Duration,
    wake: W,
    mut round: R,
) -> JoinHandle<()>
where
    R: FnMut() -> F + Send + 'static,
    F: Future<Output = anyhow::Result<()>> + Send,
    W: Fn() -> WF + Send + 'static,
    WF: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                break;
            }
            let result = round().await;
            crate::metrics::record_job(name, result.is_ok());
            if let Err(e) = result {
                tracing::error!(job = name, error = %format!("{e:#}"), "background job failed");
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(every) => {}
                _ = wake() => {}
            }
        }
        tracing::debug!(job = name, "stopped");
    })
}

pub fn start(state: AppState) -> anyhow::Result<Jobs> {
    let gateway: Arc<dyn SmsGateway> = sms::from_settings(&state.settings, &state.paths)?;
    tracing::info!(gateway = %gateway.describe(), "SMS delivery");
    let every = Duration::from_secs(state.settings.server.job_interval_seconds.max(1));
    let (stop, rx) = watch::channel(false);
    let lease = state.settings.server.lease_seconds as i64;
    let worker = |kind: &str| Worker::new(kind, lease, Stop::new(rx.clone()));
    let (sms_worker, complaints_worker, nobd_worker) =
        (worker("sms"), worker("eotinish"), worker("nobd"));
    let workers = vec![
        sms_worker.id.clone(),
        complaints_worker.id.clone(),
        nobd_worker.id.clone(),
    ];
    let never = || std::future::pending::<()>();
    let mut handles = Vec::new();

    let s = state.clone();
    handles.push(spawn_loop("consent", rx.clone(), every, never, move || {
        let s = s.clone();
        async move {
            let report = crate::consent::tick(s.store.as_ref(), &s.settings, s.now()).await?;
            if report != Default::default() {
                tracing::info!(?report, "consent tick");
            }
            Ok(())
        }
    }));

    let s = state.clone();
    handles.push(spawn_loop(
        "sms",
        rx.clone(),
        every.min(SMS_MAX_WAIT),
        sms::woken,
        move || {
            let (s, gateway, worker) = (s.clone(), gateway.clone(), sms_worker.clone());
            async move {
                let report = sms::deliver_due_with_progress(
                    s.store.as_ref(),
                    gateway.as_ref(),
                    s.now(),
                    &worker,
                    &mut |_| {},
                )
                .await?;
                if report.sent + report.failed > 0 {
                    tracing::info!(sent = report.sent, failed = report.failed, "SMS delivery");
                }
                Ok(())
            }
        },
    ));

    let s = state.clone();
    handles.push(spawn_loop(
        "wallet-counts",
        rx.clone(),
        crate::wallet::jobs::FLUSH_EVERY,
        never,
        move || {
            let s = s.clone();
            async move {
                crate::wallet::jobs::flush(&s).await;
                Ok(())
            }
        },
    ));

    let s = state.clone();
    let last_purge = Arc::new(tokio::sync::Mutex::new(i64::MIN));
    handles.push(spawn_loop(
        "complaints",
        rx.clone(),
        every,
        never,
        move || {
            let (s, last_purge, worker) =
                (s.clone(), last_purge.clone(), complaints_worker.clone());
            async move {
                let mut last = last_purge.lock().await;
                crate::wallet::jobs::deliver_and_purge(&s, &worker, &mut last).await
            }
        },
    ));

    let s = state.clone();
    let sink = Arc::new(crate::nobd::deliver::Sink::from_settings(
        &state.settings,
        &state.paths,
    )?);
    handles.push(spawn_loop("nobd", rx.clone(), every, never, move || {
        let (s, sink, worker) = (s.clone(), sink.clone(), nobd_worker.clone());
        async move {
            let r = crate::nobd::job::round(&s, &sink, &worker).await?;
            if r.new_reports + r.delivered + r.failed > 0 {
                tracing::info!(
                    days = ?r.days_built, new = r.new_reports, delivered = r.delivered,
                    failed = r.failed, "NOBD report round"
                );
            }
            Ok(())
        }
    }));

    let s = state.clone();
    handles.push(spawn_loop(
        "checkpoint",
        rx.clone(),
        CHECKPOINT_EVERY,
        never,
        move || {
            let s = s.clone();
            async move {
                s.store.checkpoint(TRUNCATE_WAL_ABOVE_FRAMES).await?;
                Ok(())
            }
        },
    ));

    let s = state.clone();
    let last_day = Arc::new(tokio::sync::Mutex::new(None));
    handles.push(spawn_loop(
        "retention",
        rx.clone(),
        every,
        never,
        move || {
            let (s, last_day) = (s.clone(), last_day.clone());
            async move { retention_round(&s, &mut *last_day.lock().await).await }
        },
    ));

    let s = state.clone();
    handles.push(spawn_loop("keys", rx, every, never, move || {
        let s = s.clone();
        async move {
            if s.keys.reload(s.store.as_ref(), s.now()).await? {
                tracing::info!("signing keys changed; trust list reloaded");
            }
            Ok(())
        }
    }));

    Ok(Jobs {
        stop,
        handles,
        state,
        workers,
    })
}
