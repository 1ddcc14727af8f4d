//! Wire types of the HTTP API (DESIGN §6.3) that more than one program reads.
//!
//! Times are Unix seconds (UTC) unless the field is a local date (`YYYY-MM-DD`).

use crate::calendar::{MealKind, MealWindow, SchoolYear};
use crate::trust::SignedTrustList;
use crate::verdict::Verdict;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoucherStatus {
    Issued,
    Active,
    Revoked,
    Expired,
}

impl VoucherStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VoucherStatus::Issued => "issued",
            VoucherStatus::Active => "active",
            VoucherStatus::Revoked => "revoked",
            VoucherStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<VoucherStatus> {
        [
            VoucherStatus::Issued,
            VoucherStatus::Active,
            VoucherStatus::Revoked,
            VoucherStatus::Expired,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// `GET /api/v1/wallet/vouchers` items (§6.4 fixes the first seven fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletVoucher {
    pub voucher_id: Uuid,
    pub status: VoucherStatus,
    pub pupil_name: String,
    pub school_bin: String,
    pub school_code: u32,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    pub school_name: String,
    pub grade: u8,
    pub class_letter: String,
    pub school_year: String,
    pub activated_at: Option<i64>,
    /// When and why a `revoked` voucher was revoked (DESIGN §10): `not_eligible`, `removed`,
    /// `withdrawn` or `operator`; `null` otherwise.
    #[serde(default)]
    pub revoked_at: Option<i64>,
    #[serde(default)]
    pub revoke_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    #[default]
    Short,
    Today,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrRequest {
    #[serde(default)]
    pub validity: Validity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrResponse {
    pub token: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub svg: String,
}

/// `GET /api/v1/wallet/vouchers/{id}/history` items (§6.4 fixes the first three fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub served_at: i64,
    pub meal_kind: MealKind,
    pub school_bin: String,
    pub school_name: String,
    pub service_day: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub code: String,
    /// What staff call this counter, e.g. "Canteen 1".
    #[serde(default)]
    pub label: Option<String>,
    /// The bearer secret the terminal chose for itself (32 random bytes, URL-safe base64
    /// without padding). Sent again with the same code when the answer was lost, it gets back
    /// the terminal that code already made, so retrying an enrollment is safe. Without it the
    /// server picks the secret and a lost answer spends the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_key: Option<String>,
}

/// Bytes of a terminal secret before encoding.
pub const TERMINAL_KEY_BYTES: usize = 32;

/// Whether `key` has the form of a terminal secret: URL-safe base64 of at least
/// [`TERMINAL_KEY_BYTES`] bytes, at most 128 characters.
pub fn is_terminal_key(key: &str) -> bool {
    (43..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub terminal_id: Uuid,
    pub school_bin: String,
    pub school_code: u32,
    pub school_name: String,
    /// Bearer secret for later calls; shown once, kept hashed on the server.
    pub secret: String,
    /// base64url of the 32-byte root public key the terminal pins.
    pub root_public_key: String,
    pub snapshot: Snapshot,
}

/// A voucher as a terminal knows it: no IIN, no category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotVoucher {
    pub voucher_id: Uuid,
    pub status: VoucherStatus,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    /// First name and last initial, e.g. "Айгерим С."
    pub display_name: String,
    pub grade: u8,
    pub class_letter: String,
    pub card_number: Option<String>,
}

/// A meal already served today at another terminal of the same school.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedMeal {
    pub voucher_id: Uuid,
    pub meal_kind: MealKind,
    pub service_day: NaiveDate,
    pub served_at: i64,
    pub terminal_id: Uuid,
    pub terminal_label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Pass back as `?cursor=` to get only what changed after this snapshot.
    pub cursor: i64,
    /// True when this snapshot replaces everything the terminal held (cursor 0).
    pub full: bool,
    pub server_time: i64,
    pub trust_list: SignedTrustList,
    pub school_code: u32,
    /// The school year in force; between years, the next one (or, when none is configured,
    /// the last). Terminals older than `next_calendar` know only this one.
    pub calendar: SchoolYear,
    /// The school year after `calendar`, once it is configured: a terminal offline at the turn
    /// of the year still knows the new year's school days. Absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_calendar: Option<SchoolYear>,
    pub meal_windows: Vec<MealWindow>,
    pub vouchers: Vec<SnapshotVoucher>,
    pub served_today: Vec<ServedMeal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanSource {
    Qr,
    Card,
}

/// A new event id: a random UUID whose leading 48 bits are the scan time (the UUIDv7 layout).
/// The server keeps event ids in a unique index, and ids that grow with time land on its last
/// pages instead of dirtying a random page per event. 74 random bits keep ids unique.
pub fn time_ordered_event_id(scanned_at: i64) -> Uuid {
    let millis = u64::try_from(scanned_at).unwrap_or(0).saturating_mul(1000);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid()
}

/// One scan at a terminal, served or rejected; the terminal's log is append-only by `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalEvent {
    pub event_id: Uuid,
    pub seq: i64,
    pub scanned_at: i64,
    pub service_day: NaiveDate,
    pub verdict: Verdict,
    pub source: ScanSource,
    pub meal_kind: MealKind,
    pub voucher_id: Option<Uuid>,
    /// Key id (hex) of a token that decoded, for audits of key rotation.
    pub key_id: Option<String>,
    /// The token text a served QR event was served on: the server re-verifies it before the
    /// meal counts. Absent on card events and rejections; a served QR event without it comes
    /// from a terminal older than [`PROOF_REQUIRED_SINCE`] and is refused as a whole upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// The same token shown again at the same terminal within the repeat window of its `ok`:
    /// recorded, never counted, never listed as a suspicious second attempt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeat: bool,
    /// How many scans this event stands for: a rejection repeated with the same input within
    /// a second is one event counted up, not one event per scan. Always 1 for `ok`; absent
    /// (1) from terminals that predate it, and left out when 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: i64,
    /// A rejection over the terminal's per-minute cap on rejection events: it stands, with its
    /// `count`, for every such rejection of that minute with the same verdict, source, meal
    /// kind and repeat mark (and voucher, for `already_served`), not recorded one by one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capped: bool,
}

/// The largest `count` of one event; a terminal starts a new event before it.
pub const MAX_EVENT_COUNT: i64 = 1_000_000_000;

fn one() -> i64 {
    1
}

fn is_one(n: &i64) -> bool {
    *n == 1
}

/// The first terminal version whose served QR events carry `proof`.
pub const PROOF_REQUIRED_SINCE: &str = "0.2.0";

/// Request header through which a terminal names its version on every call to the server.
pub const TERMINAL_VERSION_HEADER: &str = "x-tamaq-terminal-version";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventUpload {
    pub events: Vec<TerminalEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAck {
    /// Highest `seq` the server holds for this terminal, contiguous from 1.
    pub last_seq: i64,
    pub stored: u64,
    pub already_had: u64,
    /// Served events of this batch that the server stored as refused (no valid proof, voucher
    /// not active, not a school day, ...): kept for the school's anomalies, never counted.
    #[serde(default)]
    pub refused: u64,
}

#[cfg(test)]
mod tests {
    use super::time_ordered_event_id;

    #[test]
    fn event_ids_grow_with_scan_time() {
        let (a, b) = (
            time_ordered_event_id(1_795_424_400),
            time_ordered_event_id(1_795_424_401),
        );
        assert!(a < b && a.to_string() < b.to_string());
        assert_eq!(a.get_version_num(), 7);
        assert_ne!(
            time_ordered_event_id(1_795_424_400),
            a,
            "random within a second"
        );
    }
}

#[cfg(test)]
mod terminal_key_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_encoded_key_of_32_to_96_bytes_is_accepted(
            bytes in proptest::collection::vec(any::<u8>(), TERMINAL_KEY_BYTES..=96)
        ) {
            prop_assert!(is_terminal_key(&crate::b64::encode(&bytes)));
        }

        #[test]
        fn accepted_exactly_when_length_and_alphabet_fit(text in "\\PC{0,140}") {
            let fits = (43..=128).contains(&text.len())
                && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            prop_assert_eq!(is_terminal_key(&text), fits);
        }
    }
}
