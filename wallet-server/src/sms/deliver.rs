//! The delivery job: claim due outbox rows, send them, mark them sent or schedule a retry.

use super::gateway::{GatewayError, OutgoingSms, SmsGateway};
use crate::store::{Store, StoreResult};

/// How long a claim keeps other instances off a row; longer than a batch can take to send
/// (an HTTP batch of 50 with every message timing out thrice takes about 5 minutes).
pub const LEASE_SECONDS: i64 = 600;
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
    deliver_due_with_progress(store, gateway, now, &mut |_| {}).await
}

/// [`deliver_due`], calling `progress` with the counts so far after every batch.
pub async fn deliver_due_with_progress(
    store: &dyn Store,
    gateway: &dyn SmsGateway,
    now: i64,
    progress: &mut (dyn FnMut(&DeliveryReport) + Send),
) -> StoreResult<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let limit = gateway.batch_size().max(1) as i64;
    loop {
        let rows = store.claim_due_sms(now, LEASE_SECONDS, limit).await?;
        if rows.is_empty() {
            return Ok(report);
        }
        let batch: Vec<OutgoingSms> = rows
            .iter()
            .map(|r| OutgoingSms::new(&r.id, &r.to_phone, &r.text, &r.kind, r.created_at))
            .collect();
        let results = gateway.send_batch(&batch).await;
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
