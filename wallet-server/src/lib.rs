//! The Tamaq wallet server: roster import, eligibility, SMS consent, vouchers, the parents'
//! wallet with signed QR tokens, terminal sync, school review and NOBD reports.

pub mod access_log;
pub mod api;
pub mod app;
pub mod cli;
pub mod cli_school;
pub mod client_addr;
pub mod clock;
pub mod config;
pub mod consent;
pub mod datadir;
pub mod delivery;
pub mod demo;
pub mod eligibility;
pub mod error;
pub mod jobs;
pub mod lease;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod nobd;
pub mod retention;
pub mod review;
pub mod roster;
pub mod signing;
pub mod sms;
pub mod staff;
pub mod state;
pub mod store;
pub mod terminal_sync;
pub mod testkit;
pub mod wallet;
pub mod web;

pub use app::app;
pub use state::AppState;
