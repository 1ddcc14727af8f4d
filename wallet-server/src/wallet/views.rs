//! Request and response bodies of the wallet endpoints that are not in `shared::wire`, and the
//! conversion of stored rows into what a parent sees.

use crate::error::AppError;
use crate::store::wallet::{ComplaintRow, MealRow, ParentVoucher, RatingRow, SigningVoucher};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use shared::wire::{HistoryEntry, VoucherStatus, WalletVoucher};
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub phone: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoginAccepted {
    /// Always `"code_sent"`: the same answer for every well-formed number.
    pub status: String,
    pub expires_in: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub phone: String,
    pub code: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionResponse {
    pub session_token: String,
    pub expires_at: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    pub voucher_id: String,
    pub stars: i64,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RatingView {
    pub voucher_id: Uuid,
    pub service_day: NaiveDate,
    pub stars: u8,
    pub comment: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplaintRequest {
    pub voucher_id: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ComplaintStatus {
    /// Stored, waiting to be accepted by e-Otinish.
    Queued,
    /// e-Otinish (or the outbox folder) accepted it.
    Sent,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ComplaintView {
    pub complaint_id: Uuid,
    pub voucher_id: Uuid,
    pub text: String,
    pub status: ComplaintStatus,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherQuery {
    pub voucher_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PngQuery {
    #[serde(default)]
    pub validity: Option<shared::wire::Validity>,
}

pub const COMMENT_MAX_CHARS: usize = 1_000;
pub const COMPLAINT_MIN_CHARS: usize = 10;
pub const COMPLAINT_MAX_CHARS: usize = 4_000;

/// Voucher ids from paths and bodies: anything that is not a UUID is simply not found, like an
/// id of another family (no hint which ids exist).
pub fn voucher_id(text: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(text.trim()).map_err(|_| not_found())
}

pub fn not_found() -> AppError {
    AppError::NotFound("No such voucher among yours.".into())
}

/// Free text from parents: trimmed; control characters other than line breaks and tabs are
/// refused (PostgreSQL cannot store NUL, and nothing a parent types needs them).
pub fn clean_text(text: &str, field: &'static str, max_chars: usize) -> Result<String, AppError> {
    let t = text.trim();
    if t.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(AppError::Invalid(
            "bad_text",
            format!("{field} contains control characters."),
        ));
    }
    if t.chars().count() > max_chars {
        return Err(AppError::Invalid(
            "text_too_long",
            format!("{field} is longer than {max_chars} characters."),
        ));
    }
    Ok(t.to_owned())
}

fn date(text: &str) -> Result<NaiveDate, AppError> {
    // `FromStr` is the fixed ISO form, cheaper than a format string on the hot path.
    text.parse::<NaiveDate>()
        .map_err(|_| AppError::Internal(anyhow::anyhow!("stored date {text:?} is not YYYY-MM-DD")))
}

/// The stored status, except that an `issued` or `active` voucher past its last day reads
/// `expired`.
pub fn status_on(
    stored: &str,
    valid_to: &str,
    today: NaiveDate,
) -> Result<VoucherStatus, AppError> {
    let status = VoucherStatus::parse(stored)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stored voucher status {stored:?}")))?;
    Ok(match status {
        VoucherStatus::Issued | VoucherStatus::Active if today > date(valid_to)? => {
            VoucherStatus::Expired
        }
        s => s,
    })
}

fn school_code_u32(code: i64) -> Result<u32, AppError> {
    u32::try_from(code)
        .map_err(|_| AppError::Internal(anyhow::anyhow!("school code {code} is not a u32")))
}

fn uuid_of(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::Internal(anyhow::anyhow!("stored voucher id {id:?}")))
}

impl SigningVoucher {
    pub fn uuid(&self) -> Result<Uuid, AppError> {
        uuid_of(&self.id)
    }

    pub fn valid_from_date(&self) -> Result<NaiveDate, AppError> {
        date(&self.valid_from)
    }

    pub fn status_on(&self, today: NaiveDate) -> Result<VoucherStatus, AppError> {
        status_on(&self.status, &self.valid_to, today)
    }

    pub fn school_code_u32(&self) -> Result<u32, AppError> {
        school_code_u32(self.school_code)
    }
}

impl ParentVoucher {
    pub fn uuid(&self) -> Result<Uuid, AppError> {
        uuid_of(&self.id)
    }

    pub fn valid_from_date(&self) -> Result<NaiveDate, AppError> {
        date(&self.valid_from)
    }

    pub fn valid_to_date(&self) -> Result<NaiveDate, AppError> {
        date(&self.valid_to)
    }

    pub fn status_on(&self, today: NaiveDate) -> Result<VoucherStatus, AppError> {
        status_on(&self.status, &self.valid_to, today)
    }

    pub fn school_code_u32(&self) -> Result<u32, AppError> {
        school_code_u32(self.school_code)
    }

    pub fn pupil_name(&self) -> String {
        crate::store::roster::full_name(
            &self.last_name,
            &self.first_name,
            self.middle_name.as_deref(),
        )
    }

    pub fn to_wire(&self, today: NaiveDate) -> Result<WalletVoucher, AppError> {
        let status = self.status_on(today)?;
        let revoked = status == VoucherStatus::Revoked;
        Ok(WalletVoucher {
            voucher_id: self.uuid()?,
            status,
            pupil_name: self.pupil_name(),
            school_bin: self.school_bin.clone(),
            school_code: self.school_code_u32()?,
            valid_from: self.valid_from_date()?,
            valid_to: self.valid_to_date()?,
            school_name: self.school_name.clone(),
            grade: u8::try_from(self.grade).unwrap_or(0),
            class_letter: self.class_letter.clone(),
            school_year: self.school_year.clone(),
            activated_at: self.activated_at,
            revoked_at: self.revoked_at.filter(|_| revoked),
            revoke_reason: self.revoke_reason.clone().filter(|_| revoked),
        })
    }
}

impl MealRow {
    pub fn to_wire(&self) -> Result<HistoryEntry, AppError> {
        Ok(HistoryEntry {
            served_at: self.scanned_at,
            meal_kind: self.meal_kind.parse().map_err(|_| {
                AppError::Internal(anyhow::anyhow!("stored meal kind {:?}", self.meal_kind))
            })?,
            school_bin: self.school_bin.clone(),
            school_name: self.school_name.clone(),
            service_day: date(&self.service_day)?,
        })
    }
}

impl RatingRow {
    pub fn to_view(&self) -> Result<RatingView, AppError> {
        Ok(RatingView {
            voucher_id: Uuid::parse_str(&self.voucher_id)
                .map_err(|_| AppError::Internal(anyhow::anyhow!("stored voucher id")))?,
            service_day: date(&self.service_day)?,
            stars: u8::try_from(self.stars).unwrap_or(0),
            comment: self.comment.clone(),
            updated_at: self.updated_at,
        })
    }
}

impl ComplaintRow {
    pub fn to_view(&self) -> Result<ComplaintView, AppError> {
        let bad = |what: &str| AppError::Internal(anyhow::anyhow!("stored complaint {what}"));
        Ok(ComplaintView {
            complaint_id: Uuid::parse_str(&self.id).map_err(|_| bad("id"))?,
            voucher_id: Uuid::parse_str(&self.voucher_id).map_err(|_| bad("voucher id"))?,
            text: self.text.clone(),
            status: match self.status.as_str() {
                "queued" => ComplaintStatus::Queued,
                "sent" => ComplaintStatus::Sent,
                _ => return Err(bad("status")),
            },
            created_at: self.created_at,
            sent_at: self.sent_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert_eq!(clean_text("  hi\n there ", "c", 20).unwrap(), "hi\n there");
        assert!(clean_text("a\u{0}b", "c", 20).is_err());
        assert!(clean_text("a\u{7}b", "c", 20).is_err());
        assert!(clean_text(&"ы".repeat(21), "c", 20).is_err());
        assert!(clean_text(&"ы".repeat(20), "c", 20).is_ok());
    }

    #[test]
    fn ids_that_are_not_uuids_are_not_found() {
        assert!(matches!(voucher_id("x"), Err(AppError::NotFound(_))));
        assert!(voucher_id("6f1c1f4e-8a0e-4e52-9d59-4f0f1d1f2a3b").is_ok());
    }
}
