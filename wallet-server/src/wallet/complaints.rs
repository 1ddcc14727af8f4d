//! Complaints from parents, forwarded to e-Otinish for the district education authority of the
//! pupil's school (DESIGN §1 step 10, §7.3).
//!
//! A complaint is stored with the document to send (`queued`), then delivered through
//! [`crate::delivery`]: one attempt right after it is filed, then by the background job with
//! back-off until accepted (`sent`). Claims are leases on the row, so several server instances
//! never deliver the same complaint at the same time; a receiver gets the complaint id as the
//! idempotency key, so a retry after a lost answer does not file it twice.

use super::views::{clean_text, ComplaintView, COMPLAINT_MAX_CHARS, COMPLAINT_MIN_CHARS};
use crate::delivery::{backoff, Sink};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::lease;
use crate::store::wallet::{NewComplaint, ParentVoucher};
use serde_json::json;

/// Outbox folder and idempotency namespace of e-Otinish documents.
pub const KIND_DIR: &str = "eotinish";
/// Complaints a phone may file per day.
pub const PER_PHONE_PER_DAY: i64 = 10;

fn rfc3339_local(ts: i64) -> String {
    let offset = chrono::FixedOffset::east_opt(shared::KZ_OFFSET_SECONDS as i32).expect("UTC+5");
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.with_timezone(&offset).to_rfc3339())
        .unwrap_or_default()
}

/// The document e-Otinish receives.
pub fn payload(
    id: &str,
    v: &ParentVoucher,
    phone: &str,
    text: &str,
    now: i64,
) -> serde_json::Value {
    json!({
        "complaint_id": id,
        "submitted_at": rfc3339_local(now),
        "recipient": {
            "kind": "district_education_authority",
            "district": v.school_district,
        },
        "subject": "school_meals",
        "school": {
            "bin": v.school_bin,
            "name": v.school_name,
            "district": v.school_district,
        },
        "pupil": {
            "name": v.pupil_name(),
            "grade": v.grade,
            "class_letter": v.class_letter,
        },
        "applicant": { "phone": phone, "role": "parent" },
        "voucher_id": v.id,
        "text": text,
        "source": "tamaq-wallet",
    })
}

/// Stores the complaint (`queued`) and starts one delivery attempt in the background.
pub async fn file(
    state: &AppState,
    v: &ParentVoucher,
    phone: &str,
    text: &str,
) -> AppResult<ComplaintView> {
    let text = clean_text(text, "The complaint", COMPLAINT_MAX_CHARS)?;
    if text.chars().count() < COMPLAINT_MIN_CHARS {
        return Err(AppError::Invalid(
            "text_too_short",
            format!("Describe the problem in at least {COMPLAINT_MIN_CHARS} characters."),
        ));
    }
    let now = state.now();
    if state.store.complaints_since(phone, now - 86_400).await? >= PER_PHONE_PER_DAY {
        return Err(AppError::TooManyRequests(format!(
            "At most {PER_PHONE_PER_DAY} complaints a day can be sent from one number."
        )));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let doc = payload(&id, v, phone, &text, now).to_string();
    let row = state
        .store
        .insert_complaint(&NewComplaint {
            id: &id,
            voucher_id: &v.id,
            school_code: v.school_code,
            phone,
            text: &text,
            payload: &doc,
            now,
        })
        .await?;
    let background = state.clone();
    tokio::spawn(async move {
        if let Err(e) = deliver_due(&background).await {
            tracing::warn!(error = %e, "complaint delivery failed; the job retries");
        }
    });
    row.to_view()
}

/// Delivers every complaint that is due; returns how many were accepted.
pub async fn deliver_due(state: &AppState) -> anyhow::Result<usize> {
    let worker = crate::lease::Worker::new(
        "eotinish",
        state.settings.server.lease_seconds as i64,
        crate::lease::Stop::never(),
    );
    deliver_due_as(state, &worker).await
}

/// [`deliver_due`] as `worker`: leases on the database's clock, renewed while a batch is out;
/// asked to stop, no further complaint is sent and the rest of the batch is released.
pub async fn deliver_due_as(
    state: &AppState,
    worker: &crate::lease::Worker,
) -> anyhow::Result<usize> {
    let sink = Sink::from_settings(&state.settings.eotinish, &state.paths.outbox_dir());
    let mut sent = 0;
    loop {
        if worker.stop.is_set() {
            return Ok(sent);
        }
        let now = state.now();
        let batch = state
            .store
            .claim_due_complaints(now, &worker.id, worker.lease_seconds, 20)
            .await?;
        if batch.is_empty() {
            return Ok(sent);
        }
        let ids: Vec<String> = batch.iter().map(|c| c.id.clone()).collect();
        let sending = async {
            for c in batch {
                if worker.stop.is_set() {
                    break;
                }
                match sink.deliver(KIND_DIR, &c.id, c.payload.as_bytes()).await {
                    Ok(()) => {
                        state.store.complaint_sent(&c.id, state.now()).await?;
                        tracing::info!(complaint = %c.id, "complaint delivered to e-Otinish");
                        sent += 1;
                    }
                    Err(e) => {
                        let next = state.now() + backoff(c.attempts);
                        tracing::warn!(complaint = %c.id, attempts = c.attempts + 1, error = %e, "complaint not delivered");
                        state
                            .store
                            .complaint_failed(&c.id, &worker.id, next, &e.to_string())
                            .await?;
                    }
                }
            }
            anyhow::Ok(())
        };
        match crate::lease::hold(
            state.store.as_ref(),
            lease::COMPLAINTS,
            worker,
            &ids,
            sending,
        )
        .await
        {
            crate::lease::Held::Done(r) => r?,
            crate::lease::Held::Lost => {
                anyhow::bail!("the e-Otinish outbox lease could not be renewed; delivery stopped")
            }
        }
        if worker.stop.is_set() {
            state
                .store
                .release_leases(lease::COMPLAINTS, &worker.id, Some(&ids))
                .await?;
            return Ok(sent);
        }
    }
}
