//! Consent recorded at school (DESIGN §11): the school's staff record a consent the parent or
//! legal representative gave in person on a paper form, and the pupil's voucher of the school
//! year is issued at once (`school_recorded`) and activated, to be served by card or staff
//! look-up — no phone and no wallet needed. This is how pupils of `no_phone` families are fed,
//! and the way back for a family whose SMS process ended `refused` or `expired`.
//!
//! Decisions where the design is silent (docs/consent.md, "Consent recorded at school"):
//! * the staff of the pupil's school record it (role `school_admin`); an authority reads only,
//!   and an operator is not the school that holds the paper form;
//! * the relation is one of `mother`, `father`, `guardian` (any other legal representative);
//! * the form's date may not be in the future nor more than a year old;
//! * a pupil with any voucher of the year (even revoked, as after a withdrawal) is refused: one
//!   voucher per pupil per year, and a revoked one comes back only by the lifecycle's rules.

use crate::config::Settings;
use crate::error::{AppError, AppResult};
use crate::lifecycle;
use crate::store::consent::{SchoolConsent, SchoolConsentOutcome};
use crate::store::roster::School;
use crate::store::Store;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The longest name on a form.
pub const MAX_NAME: usize = 200;
/// The longest identity document number.
pub const MAX_DOCUMENT: usize = 32;
pub const RELATIONS: [&str; 3] = ["mother", "father", "guardian"];

/// The paper form as the school's staff type it in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    pub pupil_iin: String,
    /// Who signed: the parent's or legal representative's full name.
    #[serde(default)]
    pub signer_name: String,
    #[serde(default)]
    pub relation: String,
    /// Their identity document's number.
    #[serde(default)]
    pub document_number: String,
    /// `YYYY-MM-DD`, the date on the form.
    #[serde(default)]
    pub signed_on: String,
}

/// What the school gets back: the voucher made, ready to be served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    pub pupil_iin: String,
    pub school_year: String,
    pub consent: &'static str,
    pub voucher_id: String,
    pub voucher_status: String,
    pub recorded_by: String,
}

fn invalid(field: &str, message: &str) -> AppError {
    AppError::Invalid("bad_consent_form", format!("{field}: {message}"))
}

/// A text field: trimmed, present, at most `max` characters, no control characters.
fn text(field: &str, value: &str, max: usize) -> AppResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(invalid(field, "required"));
    }
    if v.chars().count() > max {
        return Err(invalid(field, &format!("at most {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(field, "control characters are not allowed"));
    }
    Ok(v.to_owned())
}

/// The form checked field by field against `today`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedForm {
    pub pupil_iin: String,
    pub signer_name: String,
    pub relation: String,
    pub document_number: String,
    pub signed_on: NaiveDate,
}

pub fn check(form: &ConsentForm, today: NaiveDate) -> AppResult<CheckedForm> {
    let iin = form.pupil_iin.trim();
    if iin.is_empty() {
        return Err(invalid("pupil_iin", "required"));
    }
    if iin.len() != 12 || !iin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("pupil_iin", "12 digits"));
    }
    let signer_name = text("signer_name", &form.signer_name, MAX_NAME)?;
    let relation = form.relation.trim();
    if relation.is_empty() {
        return Err(invalid("relation", "required"));
    }
    if !RELATIONS.contains(&relation) {
        return Err(invalid("relation", "one of mother, father, guardian"));
    }
    let document_number = text("document_number", &form.document_number, MAX_DOCUMENT)?;
    let signed = form.signed_on.trim();
    if signed.is_empty() {
        return Err(invalid("signed_on", "required"));
    }
    let signed_on = NaiveDate::parse_from_str(signed, "%Y-%m-%d")
        .map_err(|_| invalid("signed_on", "a date as YYYY-MM-DD"))?;
    if signed_on > today {
        return Err(invalid("signed_on", "in the future"));
    }
    if signed_on < today - chrono::Days::new(366) {
        return Err(invalid("signed_on", "more than a year ago"));
    }
    Ok(CheckedForm {
        pupil_iin: iin.to_owned(),
        signer_name,
        relation: relation.to_owned(),
        document_number,
        signed_on,
    })
}

/// Records the form for a pupil of `school` and issues the voucher; `staff` is the username
/// audited with both. Writes nothing when the form or the pupil is refused.
pub async fn record(
    store: &dyn Store,
    settings: &Settings,
    school: &School,
    staff: &str,
    form: &ConsentForm,
    now: i64,
) -> AppResult<Recorded> {
    let today = shared::ServiceDay::from_unix(now).date();
    let form = check(form, today)?;
    let year = settings.year_at(now).ok_or_else(|| {
        AppError::Conflict(
            "no school year is in force today: nothing to issue a voucher for".into(),
        )
    })?;
    let label = year.label();
    let signed_on = form.signed_on.to_string();
    let outcome = store
        .record_school_consent(
            &SchoolConsent {
                school_year: &label,
                school_code: school.code,
                pupil_iin: &form.pupil_iin,
                recorded_by: staff,
                signer_name: &form.signer_name,
                relation: &form.relation,
                document_number: &form.document_number,
                signed_on: &signed_on,
            },
            now,
        )
        .await?;
    let has_voucher = || {
        AppError::Conflict(format!(
            "the pupil already has a voucher for the school year {label}"
        ))
    };
    let (pupil_id, school_code) = match outcome {
        SchoolConsentOutcome::Recorded {
            pupil_id,
            school_code,
            ..
        } => (pupil_id, school_code),
        SchoolConsentOutcome::UnknownPupil => {
            return Err(AppError::NotFound(format!(
                "no pupil with IIN {} is listed at this school",
                form.pupil_iin
            )))
        }
        SchoolConsentOutcome::NotEligible => {
            return Err(AppError::Conflict(
                "the pupil is in no eligible category: no voucher can be issued".into(),
            ))
        }
        SchoolConsentOutcome::HasVoucher => return Err(has_voucher()),
    };
    let actor = format!("staff:{staff}");
    let voucher = lifecycle::issue_at_school(store, &year, pupil_id, school_code, &actor, now)
        .await?
        .ok_or_else(has_voucher)?;
    tracing::info!(school = %school.bin, %staff, "consent recorded at school");
    Ok(Recorded {
        pupil_iin: form.pupil_iin,
        school_year: label,
        consent: "consented",
        voucher_id: voucher.id,
        voucher_status: voucher.status,
        recorded_by: staff.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> ConsentForm {
        ConsentForm {
            pupil_iin: "150101500011".into(),
            signer_name: " Ахметова Айгуль ".into(),
            relation: "mother".into(),
            document_number: "N12345678".into(),
            signed_on: "2026-11-20".into(),
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    #[test]
    fn a_good_form_is_trimmed() {
        let c = check(&good(), today()).unwrap();
        assert_eq!(c.signer_name, "Ахметова Айгуль");
        assert_eq!(c.signed_on.to_string(), "2026-11-20");
    }

    #[test]
    fn each_bad_field_is_named() {
        type Change = Box<dyn Fn(&mut ConsentForm)>;
        let cases: Vec<(&str, Change)> = vec![
            ("pupil_iin", Box::new(|f| f.pupil_iin = "".into())),
            ("pupil_iin", Box::new(|f| f.pupil_iin = "12345".into())),
            ("signer_name", Box::new(|f| f.signer_name = "  ".into())),
            ("signer_name", Box::new(|f| f.signer_name = "А".repeat(201))),
            (
                "signer_name",
                Box::new(|f| f.signer_name = "a\u{7}b".into()),
            ),
            ("relation", Box::new(|f| f.relation = "aunt".into())),
            ("relation", Box::new(|f| f.relation = "".into())),
            (
                "document_number",
                Box::new(|f| f.document_number = "".into()),
            ),
            (
                "document_number",
                Box::new(|f| f.document_number = "9".repeat(33)),
            ),
            ("signed_on", Box::new(|f| f.signed_on = "20.11.2026".into())),
            ("signed_on", Box::new(|f| f.signed_on = "2026-11-24".into())),
            ("signed_on", Box::new(|f| f.signed_on = "2025-11-21".into())),
        ];
        for (field, change) in cases {
            let mut f = good();
            change(&mut f);
            let err = check(&f, today()).unwrap_err();
            assert_eq!(err.code(), "bad_consent_form");
            assert!(err.to_string().starts_with(field), "{field}: {err}");
        }
        let mut f = good();
        f.signer_name = "А".repeat(200);
        assert!(check(&f, today()).is_ok(), "200 characters fit");
    }
}
