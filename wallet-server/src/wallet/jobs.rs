//! The wallet's background work while the server runs: writing token counts, evicting caches,
//! delivering complaints and purging used-up logins.

use super::complaints;
use crate::state::AppState;
use shared::ServiceDay;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often token counts are written (the most a crash can lose).
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
const PURGE_EVERY_SECONDS: i64 = 3_600;

/// One round of the frequent work: write token counts, drop stale cache entries.
pub async fn flush(state: &AppState) {
    let now = state.now();
    let today = ServiceDay::from_unix(now).date();
    if let Err(e) = state.wallet.tokens.flush(state.store.as_ref(), today).await {
        tracing::warn!(error = %e, "token counts not written; retrying");
    }
    state.wallet.sessions.evict_stale(now);
    state.wallet.ownership.evict_stale(now);
    state.wallet.addresses.purge(now);
}

/// Starts the wallet's jobs; they stop when the runtime does. Call [`flush`] once more on
/// shutdown so the last counts are written.
pub fn spawn(state: &AppState) -> Vec<JoinHandle<()>> {
    let counts = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                flush(&state).await;
            }
        })
    };
    let delivery = {
        let state = state.clone();
        let every = Duration::from_secs(state.settings.server.job_interval_seconds.clamp(1, 3_600));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_purge = i64::MIN;
            loop {
                tick.tick().await;
                if let Err(e) = complaints::deliver_due(&state).await {
                    tracing::warn!(error = %e, "complaint delivery round failed");
                }
                let now = state.now();
                if now - last_purge >= PURGE_EVERY_SECONDS {
                    match state.store.purge_wallet_logins(now).await {
                        Ok(n) if n > 0 => tracing::info!(rows = n, "purged used-up logins"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "purging logins failed"),
                    }
                    last_purge = now;
                }
            }
        })
    };
    vec![counts, delivery]
}
