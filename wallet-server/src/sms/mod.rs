//! Outgoing SMS: a durable outbox in the database and gateways that deliver it.
//!
//! # Sending an SMS from another module
//!
//! Queue it; the delivery job sends it (within seconds: queueing wakes the job):
//!
//! ```no_run
//! # async fn send(state: wallet_server::AppState, phone: shared::phone::Phone, text: String)
//! #     -> Result<(), wallet_server::store::StoreError> {
//! use wallet_server::sms::{self, SmsKind};
//! let id = sms::queue(state.store.as_ref(), &phone, &text, SmsKind::LoginCode, state.now()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! `queue` writes the outbox row and returns; it never talks to the gateway, so a slow or
//! broken gateway never fails or slows a request. When an SMS must commit together with a state
//! change (the consent process does this), write the outbox row inside that transaction with
//! [`crate::store::sms::insert_sms_sql`] and [`crate::bind_sms!`] instead.
//!
//! # Delivery
//!
//! [`deliver::deliver_due`] claims due rows with a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL), hands them to the configured [`SmsGateway`] and marks them sent; failures are
//! retried with growing back-off. Delivery is at least once: a crash after the gateway took a
//! message but before it was marked sent sends it again with the same `id`, which receivers use
//! to drop the repeat.
//!
//! The default gateway appends to `<data-dir>/outbox/sms.jsonl` ([`file::FileGateway`]); with
//! `[sms] gateway_url` set, messages are POSTed there ([`http::HttpGateway`]).

pub mod deliver;
pub mod file;
pub mod gateway;
pub mod http;

use crate::store::sms::NewSms;
use crate::store::{Store, StoreResult};
use serde::{Deserialize, Serialize};
use shared::phone::Phone;
use std::sync::LazyLock;
use tokio::sync::Notify;

pub use deliver::{deliver_due, deliver_due_with_progress, DeliveryReport};
pub use gateway::{from_settings, GatewayError, OutgoingSms, SmsGateway};

/// What an SMS is for; written to the outbox file as `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsKind {
    ConsentRequest,
    ConsentRepeat,
    ConsentConfirmed,
    ConsentRefused,
    Help,
    LoginCode,
    /// A new school year's voucher for a pupil whose consent stands (DESIGN §10).
    VoucherIssued,
    /// The answer to a `3#2` that withdrew a consent: the vouchers are revoked (DESIGN §10).
    ConsentWithdrawn,
}

impl SmsKind {
    pub const ALL: [SmsKind; 8] = [
        SmsKind::ConsentRequest,
        SmsKind::ConsentRepeat,
        SmsKind::ConsentConfirmed,
        SmsKind::ConsentRefused,
        SmsKind::Help,
        SmsKind::LoginCode,
        SmsKind::VoucherIssued,
        SmsKind::ConsentWithdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SmsKind::ConsentRequest => "consent_request",
            SmsKind::ConsentRepeat => "consent_repeat",
            SmsKind::ConsentConfirmed => "consent_confirmed",
            SmsKind::ConsentRefused => "consent_refused",
            SmsKind::Help => "help",
            SmsKind::LoginCode => "login_code",
            SmsKind::VoucherIssued => "voucher_issued",
            SmsKind::ConsentWithdrawn => "consent_withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<SmsKind> {
        SmsKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Queues an SMS to `to` and wakes the delivery job. Returns the outbox id.
pub async fn queue(
    store: &dyn Store,
    to: &Phone,
    text: &str,
    kind: SmsKind,
    now: i64,
) -> StoreResult<String> {
    let id = store
        .queue_sms(
            &NewSms {
                to: to.as_str().to_owned(),
                text: text.to_owned(),
                kind,
            },
            now,
        )
        .await?;
    wake();
    Ok(id)
}

/// Tells the delivery job there is something to send (after a commit that queued SMS).
pub fn wake() {
    WAKE.notify_one();
}

/// Resolves at the next [`wake`] (or at once if one came since the last wait).
pub async fn woken() {
    WAKE.notified().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in SmsKind::ALL {
            assert_eq!(SmsKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
        assert_eq!(SmsKind::parse("other"), None);
    }
}
