//! What the wallet server and the canteen terminals must agree on, byte for byte.
//!
//! No web framework and no database live here: only formats, keys and value types, so that a
//! third implementation (a mobile app, a state system) can be checked against this crate.

pub mod b64;
pub mod calendar;
pub mod ed25519_batch;
pub mod error;
pub mod ids;
pub mod keys;
pub mod phone;
pub mod private_fs;
pub mod token;
pub mod trust;
pub mod verdict;
pub mod wire;

pub use calendar::{MealKind, MealWindow, SchoolYear, SchoolYears, ServiceDay, KZ_OFFSET_SECONDS};
pub use error::{ErrorBody, ErrorDetail};
pub use ids::{Bin, IdError, Iin};
pub use keys::{KeyId, KeyPair};
pub use phone::{Phone, PhoneError};
pub use token::{Claims, PAYLOAD_LEN, RAW_LEN, TOKEN_LEN};
pub use trust::{KeyRing, SignedTrustList, TrustPayload, TrustedKey};
pub use verdict::Verdict;
