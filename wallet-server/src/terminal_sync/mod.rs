//! The server side of canteen-terminal sync (DESIGN §5): enrollment codes, terminal
//! credentials, snapshots down and event batches up. `api::terminal` is the HTTP face of it;
//! `docs/terminal-sync.md` is the contract terminals are written against.

pub mod cli;
pub mod credentials;
pub mod enroll;
pub mod events;
pub mod proof;
pub mod snapshot;
