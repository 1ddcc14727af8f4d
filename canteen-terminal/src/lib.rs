//! The Tamaq canteen terminal: verifies QR tokens offline, records every scan durably before
//! showing a verdict, and syncs with the wallet server when it can.

pub mod client;
pub mod clock;
pub mod commands;
pub mod config;
pub mod flood;
pub mod frames;
pub mod image_input;
pub mod kiosk;
pub mod kiosk_guard;
pub mod ops;
pub mod outcome;
pub mod report;
pub mod state;
pub mod store;
pub mod stream;
pub mod sync;
pub mod terminal;
pub mod verify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Settings;
pub use outcome::ScanOutcome;
pub use terminal::{Terminal, TerminalError};
