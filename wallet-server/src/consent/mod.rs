//! The consent process (DESIGN §1.3–1.5, §7.2), one per eligible pupil and school year:
//!
//! ```text
//!                    ┌──────────── no phone in the roster ───────────▶ no_phone (ends)
//!   eligible pupil ──┤
//!                    └─ request SMS ─▶ requested ── 72 h, no answer ──▶ repeated ── 72 h ──▶ expired
//!                                        │   │    (repeat SMS)            │   │
//!                                   3#1  │   │ 3#2                   3#1  │   │ 3#2
//!                                        ▼   ▼                            ▼   ▼
//!                  consented (confirmation SMS, voucher)      refused (refusal SMS)
//!                        │
//!                   3#2  ▼  (vouchers revoked, confirmation SMS)
//!                  withdrawn
//! ```
//!
//! [`tick`] takes the timed steps (run by `wallet-server consent tick` and by the server every
//! `job_interval_seconds`); [`handle_reply`] takes the answers (`POST /api/v1/sms/inbound`).
//! Time always comes in as an argument, so tests walk through the days with a manual clock.
//! Every transition is stored in `consent_transitions` with its time; the SMS of a step is
//! queued in the outbox in the same transaction as the step.

pub mod answer;
pub mod reply;
pub mod school;
pub mod texts;
pub mod tick;
pub mod withdraw;

pub use crate::store::consent::ConsentStatus;
pub use answer::{handle_reply, ReplyOutcome};
pub use reply::{parse_reply, Reply};
pub use tick::{issue_vouchers, tick, tick_with_progress, TickReport, ANSWER_WINDOW_SECONDS};
