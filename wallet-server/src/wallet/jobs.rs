//! The wallet's background work while the server runs: writing token counts, evicting caches,
//! delivering complaints and purging used-up logins.

use super::complaints;
use crate::state::AppState;
use shared::ServiceDay;
use std::time::Duration;

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
    state.wallet.phones.purge(now);
}

/// One round of the slower work: deliver due complaints; purge used-up logins hourly.
pub async fn deliver_and_purge(
    state: &AppState,
    worker: &crate::lease::Worker,
    last_purge: &mut i64,
) -> anyhow::Result<()> {
    complaints::deliver_due_as(state, worker).await?;
    let now = state.now();
    if now.saturating_sub(*last_purge) >= PURGE_EVERY_SECONDS {
        let n = state.store.purge_wallet_logins(now).await?;
        if n > 0 {
            tracing::info!(rows = n, "purged used-up logins");
        }
        *last_purge = now;
    }
    Ok(())
}
