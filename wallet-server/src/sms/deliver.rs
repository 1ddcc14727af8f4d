//! The delivery job: claim due outbox rows, send them, mark them sent or schedule a retry.

use super::gateway::{GatewayError, OutgoingSms, SmsGateway};
use crate::lease::{hold, Held, Worker};
use crate::store::lease;
use crate::store::{Store, StoreResult};

/// Retry back-off: 30 s doubling per attempt, at most an hour; rejected messages wait the hour.
const FIRST_RETRY: i64 = 30;
const LONGEST_RETRY: i64 = 3600;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: usize,
    pub failed: usize,
}

pub fn retry_delay(attempts: i64, rejected: bool) -> i64 {
    if rejected {
        return LONGEST_RETRY;
    }
    let shift = attempts.clamp(1, 20) - 1;
    (FIRST_RETRY << shift).min(LONGEST_RETRY)
}

/// Sends everything due now, batch by batch, until nothing due is left unclaimed.
pub async fn deliver_due(
    store: &dyn Store,
    gateway: &dyn SmsGateway,
    now: i64,
) -> StoreResult<DeliveryReport> {
    deliver_due_with_progress(store, gateway, now, &Worker::one_off("sms"), &mut |_| {}).await
}

/// [`deliver_due`] as `worker`, calling `progress` with the counts so far after every batch.
///
/// `now` decides only what is due (and is recorded as the time of sending and the base of the
/// back-off); leases run on the database's clock and are renewed while a batch is out. When
/// the worker is asked to stop, the round ends after the group of messages in flight and the
/// rest of the batch is released at once.
pub async fn deliver_due_with_progress(
    store: &dyn Store,
    gateway: &dyn SmsGateway,
    now: i64,
    worker: &Worker,
    progress: &mut (dyn FnMut(&DeliveryReport) + Send),
) -> StoreResult<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let limit = gateway.batch_size().max(1) as i64;
    let group = gateway.group_size().max(1);
    loop {
        if worker.stop.is_set() {
            return Ok(report);
        }
        let rows = store
            .claim_due_sms(now, &worker.id, worker.lease_seconds, limit)
            .await?;
        if rows.is_empty() {
            return Ok(report);
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let batch: Vec<OutgoingSms> = rows
            .iter()
            .map(|r| OutgoingSms::new(&r.id, &r.to_phone, &r.text, &r.kind, r.created_at))
            .collect();
        let mut results = Vec::with_capacity(batch.len());
        let sending = async {
            for part in batch.chunks(group) {
                if worker.stop.is_set() {
                    break;
                }
                results.extend(gateway.send_batch(part).await);
            }
        };
        let held = hold(store, lease::SMS, worker, &ids, sending).await;
        let mut sent = Vec::with_capacity(rows.len());
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => sent.push(row.id.clone()),
                Err(e) => {
                    report.failed += 1;
                    let rejected = matches!(e, GatewayError::Rejected(_));
                    tracing::warn!(id = %row.id, attempts = row.attempts, error = %e, "SMS not delivered");
                    store
                        .mark_sms_failed(
                            &row.id,
                            &worker.id,
                            &e.to_string(),
                            now + retry_delay(row.attempts, rejected),
                        )
                        .await?;
                }
            }
        }
        report.sent += sent.len();
        store.mark_sms_sent(&sent, now).await?;
        progress(&report);
        if held == Held::Lost {
            return Ok(report);
        }
        if worker.stop.is_set() {
            // What was claimed but not handed over goes back now, not when the lease ends.
            store
                .release_leases(lease::SMS, &worker.id, Some(&ids))
                .await?;
            return Ok(report);
        }
        if (rows.len() as i64) < limit {
            return Ok(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_and_caps() {
        assert_eq!(retry_delay(1, false), 30);
        assert_eq!(retry_delay(2, false), 60);
        assert_eq!(retry_delay(5, false), 480);
        assert_eq!(retry_delay(30, false), 3600);
        assert_eq!(retry_delay(1, true), 3600);
    }
}
