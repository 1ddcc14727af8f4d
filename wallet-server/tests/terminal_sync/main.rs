//! Terminal sync on the server (DESIGN §5), over HTTP, on SQLite and PostgreSQL.

mod fixtures;

mod batches;
mod concurrency;
mod counting;
mod enroll;
mod events;
mod floods;
mod proof;
mod properties;
mod snapshot;
