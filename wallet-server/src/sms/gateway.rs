//! The interface every SMS gateway implements, and the choice between them by configuration.

use crate::config::{Paths, Settings};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One SMS as gateways receive it; also the line format of `outbox/sms.jsonl`:
/// `{"id","to","text","kind","created_at"}`, `created_at` as RFC 3339 UTC
/// (`2026-11-23T04:00:00Z`), the time the SMS was queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingSms {
    pub id: String,
    pub to: String,
    pub text: String,
    pub kind: String,
    pub created_at: String,
}

impl OutgoingSms {
    pub fn new(id: &str, to: &str, text: &str, kind: &str, created_at: i64) -> OutgoingSms {
        OutgoingSms {
            id: id.to_owned(),
            to: to.to_owned(),
            text: text.to_owned(),
            kind: kind.to_owned(),
            created_at: rfc3339(created_at),
        }
    }
}

pub fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Worth trying again later (network, 5xx, 429, a full disk).
    #[error("{0}")]
    Temporary(String),
    /// The gateway refused this message (4xx): retried only at the longest back-off.
    #[error("{0}")]
    Rejected(String),
}

#[async_trait]
pub trait SmsGateway: Send + Sync {
    /// Delivers a batch; one result per message, in order.
    async fn send_batch(&self, batch: &[OutgoingSms]) -> Vec<Result<(), GatewayError>>;
    /// Messages handed over per call.
    fn batch_size(&self) -> usize {
        50
    }
    /// Messages handed over between two looks at the stop signal: a shutdown waits for at
    /// most one group.
    fn group_size(&self) -> usize {
        self.batch_size()
    }
    /// For logs: where messages go (no secrets).
    fn describe(&self) -> String;
}

/// The HTTP gateway when `[sms] gateway_url` is set, else the outbox file.
pub fn from_settings(settings: &Settings, paths: &Paths) -> anyhow::Result<Arc<dyn SmsGateway>> {
    Ok(match &settings.sms.gateway_url {
        Some(url) => Arc::new(super::http::HttpGateway::new(
            url,
            settings.sms.gateway_token.clone(),
        )?),
        None => Arc::new(super::file::FileGateway::new(
            paths.outbox_dir().join("sms.jsonl"),
        )),
    })
}
