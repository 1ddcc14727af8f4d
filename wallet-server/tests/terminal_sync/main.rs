//! Terminal sync on the server (DESIGN §5), over HTTP, on SQLite and PostgreSQL.

mod fixtures;

mod batches;
mod concurrency;
mod enroll;
mod events;
mod properties;
mod snapshot;
