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
    /// Connection counts of the HTTP front door, for `/metrics`.
    pub front_door: Arc<front_door::Counters>,
}

impl AppState {
    /// Loads the keys (creating them on a fresh data dir) and the wallet's runtime around an
    /// opened store: the one way a state is put together, for the binary and for tests.
    pub async fn assemble(
        store: Arc<dyn Store>,
        settings: Settings,
        paths: Paths,
        clock: Clock,
        demo: bool,
    ) -> anyhow::Result<AppState> {
        use anyhow::Context;
        let keys = Keys::open(&paths.keys_dir(), store.as_ref(), clock.now())
            .await
            .context("cannot load signing keys")?;
        let wallet = crate::wallet::WalletRuntime::open(&paths.keys_dir())
            .context("cannot load the wallet's login pepper")?;
        Ok(AppState {
            store,
            settings: Arc::new(settings),
            paths: Arc::new(paths),
            keys: Arc::new(keys),
            clock,
            demo,
            wallet: Arc::new(wallet),
            front_door: Arc::default(),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}
