//! What every handler and job shares.

use crate::clock::Clock;
use crate::config::{Paths, Settings};
use crate::signing::Keys;
use crate::store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub paths: Arc<Paths>,
    pub keys: Arc<Keys>,
    pub clock: Clock,
    /// `demo` mode: the SMS inbound endpoint works without a secret, login codes are printed.
    pub demo: bool,
    /// The parents' wallet: login-code pepper, session cache, rate limits, token counts.
    pub wallet: Arc<crate::wallet::WalletRuntime>,
}

impl AppState {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}
