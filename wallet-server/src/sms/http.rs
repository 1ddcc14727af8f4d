//! An HTTP SMS provider: each message is POSTed as the JSON of [`OutgoingSms`] to
//! `[sms] gateway_url`, with `Authorization: Bearer <gateway_token>` when a token is set and
//! `Idempotency-Key: <id>` so a provider can drop a repeat after a lost answer.
//!
//! 2xx is success. Network errors, timeouts, 408, 429 and 5xx are retried here a few times with
//! growing pauses, then left to the outbox's own back-off; other 4xx are rejections.

use super::gateway::{GatewayError, OutgoingSms, SmsGateway};
use crate::config::Secret;
use async_trait::async_trait;
use std::time::Duration;

/// Attempts per message within one delivery round.
const ATTEMPTS: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// Messages in flight at once.
const PARALLEL: usize = 8;

pub struct HttpGateway {
    client: reqwest::Client,
    url: reqwest::Url,
    token: Option<Secret>,
    pause: Duration,
}

impl HttpGateway {
    pub fn new(url: &str, token: Option<Secret>) -> anyhow::Result<HttpGateway> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("[sms] gateway_url {url:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("[sms] gateway_url must be http:// or https://");
        }
        Ok(HttpGateway {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            url,
            token,
            pause: FIRST_PAUSE,
        })
    }

    /// Shorter pauses between attempts (tests).
    pub fn with_pause(mut self, pause: Duration) -> HttpGateway {
        self.pause = pause;
        self
    }

    async fn send_once(&self, sms: &OutgoingSms) -> Result<(), GatewayError> {
        let mut req = self
            .client
            .post(self.url.clone())
            .header("Idempotency-Key", &sms.id)
            .json(sms);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| GatewayError::Temporary(format!("SMS gateway unreachable: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        let msg = format!("SMS gateway answered {status}: {body}");
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(GatewayError::Temporary(msg))
        } else {
            Err(GatewayError::Rejected(msg))
        }
    }

    async fn send_with_retries(&self, sms: &OutgoingSms) -> Result<(), GatewayError> {
        let mut pause = self.pause;
        let mut attempt = 1;
        loop {
            match self.send_once(sms).await {
                Err(GatewayError::Temporary(e)) if attempt < ATTEMPTS => {
                    tracing::debug!(id = %sms.id, attempt, error = %e, "SMS send failed, retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl SmsGateway for HttpGateway {
    async fn send_batch(&self, batch: &[OutgoingSms]) -> Vec<Result<(), GatewayError>> {
        let mut results = Vec::with_capacity(batch.len());
        for group in batch.chunks(PARALLEL) {
            let sends = group.iter().map(|sms| self.send_with_retries(sms));
            results.extend(futures::future::join_all(sends).await);
        }
        results
    }

    fn group_size(&self) -> usize {
        PARALLEL
    }

    fn describe(&self) -> String {
        let mut shown = self.url.clone();
        let _ = shown.set_password(None);
        shown.set_query(None);
        format!("HTTP {shown}")
    }
}
