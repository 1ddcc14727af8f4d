//! Holding outbox leases while sending, and stopping between messages.
//!
//! A batch is claimed for a lease on the database's clock (see [`crate::store::lease`]); while it
//! is being sent the lease is renewed every third of its length, so a slow gateway can take as
//! long as it likes without another instance picking the rows up. If renewals fail for two
//! thirds of a lease (the database is gone), sending stops before the lease can run out: another
//! instance may take the rows from then on, and must not find this one still sending them.

use crate::store::lease::Outbox;
use crate::store::Store;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Long enough that renewals every 40 s survive a database hiccup, short enough that the rows
/// of a crashed instance wait only two minutes.
pub const DEFAULT_LEASE_SECONDS: i64 = 120;

/// A signal to stop between messages (serve's shutdown); never set for one-off commands.
#[derive(Clone, Debug, Default)]
pub struct Stop(Option<watch::Receiver<bool>>);

impl Stop {
    pub fn never() -> Stop {
        Stop(None)
    }

    pub fn new(rx: watch::Receiver<bool>) -> Stop {
        Stop(Some(rx))
    }

    pub fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Resolves once the signal is set (never, for [`Stop::never`]).
    pub async fn wait(&self) {
        let Some(rx) = &self.0 else {
            return std::future::pending().await;
        };
        let mut rx = rx.clone();
        let _ = rx.wait_for(|stop| *stop).await;
        if !*rx.borrow() {
            // The sender is gone without asking to stop: nobody will ask any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Who is delivering, and on what terms.
#[derive(Clone, Debug)]
pub struct Worker {
    /// Written into `claimed_by`: unique per process and job.
    pub id: String,
    pub lease_seconds: i64,
    pub stop: Stop,
}

impl Worker {
    pub fn new(kind: &str, lease_seconds: i64, stop: Stop) -> Worker {
        Worker {
            id: format!("{kind}-{}", uuid::Uuid::new_v4().simple()),
            lease_seconds: lease_seconds.max(3),
            stop,
        }
    }

    /// A one-off command's worker: the default lease, no stop signal.
    pub fn one_off(kind: &str) -> Worker {
        Worker::new(kind, DEFAULT_LEASE_SECONDS, Stop::never())
    }
}

/// How [`hold`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Held<T> {
    Done(T),
    /// Renewals failed for too long; the work was dropped at its next await point.
    Lost,
}

/// Runs `work` while renewing `worker`'s lease on `ids`, which it claimed just before.
pub async fn hold<T>(
    store: &dyn Store,
    outbox: Outbox,
    worker: &Worker,
    ids: &[String],
    work: impl Future<Output = T>,
) -> Held<T> {
    let lease = Duration::from_secs(worker.lease_seconds as u64);
    let renew_every = lease / 3;
    // The claim was taken a moment before this point; two thirds leaves that moment and one
    // failed renewal inside the lease.
    let give_up_after = lease * 2 / 3;
    let mut renewed_at = Instant::now();
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Held::Done(out),
            _ = tokio::time::sleep(renew_every) => {}
        }
        match store
            .renew_leases(outbox, &worker.id, ids, worker.lease_seconds)
            .await
        {
            Ok(_) => renewed_at = Instant::now(),
            Err(e) => tracing::warn!(outbox = outbox.table, error = %e, "lease renewal failed"),
        }
        if renewed_at.elapsed() >= give_up_after {
            tracing::error!(
                outbox = outbox.table,
                "outbox lease could not be renewed; sending stops until the database answers"
            );
            return Held::Lost;
        }
    }
}

/// Gives back every undelivered row `worker_id` holds in the three outboxes (shutdown).
pub async fn release_all(store: &dyn Store, worker_ids: &[String]) -> usize {
    let mut released = 0;
    for id in worker_ids {
        for outbox in crate::store::lease::ALL {
            match store.release_leases(outbox, id, None).await {
                Ok(n) => released += n as usize,
                Err(e) => {
                    tracing::warn!(outbox = outbox.table, error = %e, "could not release leases")
                }
            }
        }
    }
    released
}
