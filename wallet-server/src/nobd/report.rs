//! The NOBD daily report document (DESIGN §7.3; schema in `docs/nobd-report.schema.json`).
//!
//! A report is its *content* (what NOBD learns about the school's day) wrapped in an envelope
//! (`schema`, `report_id`, `revision`, `generated_at`). Revisions are decided on the content
//! alone: its canonical JSON is hashed, and a new revision exists only when that hash changes.

use crate::store::nobd::{DayData, DayWindow};
use crate::store::roster::School;
use chrono::{FixedOffset, NaiveDate, TimeZone};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::Verdict;
use std::collections::{BTreeMap, HashMap};

pub const SCHEMA: &str = "tamaq-nobd-daily-v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NobdReport {
    pub schema: String,
    pub report_id: String,
    pub revision: i64,
    pub generated_at: String,
    #[serde(flatten)]
    pub content: ReportContent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportContent {
    pub school: SchoolRef,
    pub date: String,
    pub vouchers: VoucherSection,
    pub meals: MealSection,
    pub rejected_scans: RejectedSection,
    /// Served events the server refused (no valid proof, voucher not active, not a school
    /// day, ...): not meals, listed apart so NOBD sees them.
    pub refused_events: RefusedSection,
    pub consent_outcomes: Vec<ConsentOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchoolRef {
    pub bin: String,
    pub name: String,
    pub code: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VoucherSection {
    /// Vouchers of the school year in force, issued before the end of the day.
    pub issued_total: i64,
    /// Of those, activated before the end of the day.
    pub activated_total: i64,
    /// Of those, revoked before the end of the day.
    pub revoked_total: i64,
    pub activated_on_day: i64,
    pub activations: Vec<Activation>,
    /// Vouchers of the school revoked during the day, whatever the reason (DESIGN §10).
    #[serde(default)]
    pub revocations: Vec<Revocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub voucher_id: String,
    pub pupil_iin: String,
    /// `not_eligible`, `removed`, `withdrawn` or `operator`.
    pub reason: String,
    pub revoked_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub voucher_id: String,
    pub pupil_iin: String,
    pub activated_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MealSection {
    /// Meals served: distinct (voucher, meal kind) with an `ok` scan that day.
    pub served_total: i64,
    pub by_category: ByCategory,
    pub by_meal_kind: BTreeMap<String, i64>,
    /// Further `ok` scans of a meal already counted (two offline terminals); not in the totals.
    pub duplicates: i64,
    /// The served total by class of proof.
    pub by_proof: ByProof,
    /// Each meal of the totals whose pupil is known, one entry per pupil and meal kind (DESIGN
    /// §11), sorted by IIN, meal kind and proof. Absent from reports built before it existed.
    #[serde(default)]
    pub served: Vec<ServedMeal>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServedMeal {
    pub pupil_iin: String,
    pub meal_kind: String,
    /// `proven`, `card` or `unverified`, as in [`ByProof`].
    pub proof: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ByProof {
    /// Served on a QR token the server re-verified.
    pub proven: i64,
    /// Served on an ID card or a staff look-up: no token exists.
    pub card: i64,
    /// Stored before the server checked proofs (terminals of an earlier version).
    pub unverified: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RefusedSection {
    pub total: i64,
    pub by_reason: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ByCategory {
    pub asp: i64,
    pub low_income: i64,
    pub orphan: i64,
    /// The pupil is no longer in an eligible category, or the voucher is unknown.
    pub other: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RejectedSection {
    pub total: i64,
    pub by_verdict: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentOutcome {
    pub pupil_iin: String,
    pub status: String,
    pub at: String,
}

/// `"{school_bin}-{date}-r{revision}"`.
pub fn report_id(bin: &str, date: NaiveDate, revision: i64) -> String {
    format!("{bin}-{date}-r{revision}")
}

/// Local time (UTC+5) in RFC 3339, e.g. `2026-11-23T12:05:00+05:00`.
pub fn local_rfc3339(ts: i64) -> String {
    let tz = FixedOffset::east_opt(shared::KZ_OFFSET_SECONDS as i32).expect("valid offset");
    match tz.timestamp_opt(ts, 0).single() {
        Some(t) => t.to_rfc3339(),
        None => ts.to_string(),
    }
}

impl ReportContent {
    /// SHA-256 hex of the canonical JSON (fields in declaration order, maps sorted, lists
    /// sorted when built): equal content, equal hash.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(
            serde_json::to_vec(self).expect("report content serialises"),
        ))
    }

    pub fn has_activity(&self) -> bool {
        self.meals.served_total
            + self.meals.duplicates
            + self.rejected_scans.total
            + self.refused_events.total
            > 0
            || self.vouchers.activated_on_day > 0
            || !self.vouchers.revocations.is_empty()
            || !self.consent_outcomes.is_empty()
    }

    fn empty(school: &School, date: NaiveDate) -> ReportContent {
        let mut by_meal_kind = BTreeMap::new();
        for k in shared::MealKind::ALL {
            by_meal_kind.insert(k.as_str().to_owned(), 0);
        }
        let mut by_verdict = BTreeMap::new();
        for v in Verdict::ALL.into_iter().filter(|v| !v.serves()) {
            by_verdict.insert(v.code().to_owned(), 0);
        }
        ReportContent {
            school: SchoolRef {
                bin: school.bin.clone(),
                name: school.name.clone(),
                code: school.code,
            },
            date: date.to_string(),
            vouchers: VoucherSection::default(),
            meals: MealSection {
                by_meal_kind,
                ..MealSection::default()
            },
            rejected_scans: RejectedSection {
                total: 0,
                by_verdict,
            },
            refused_events: RefusedSection::default(),
            consent_outcomes: Vec::new(),
        }
    }
}

/// One content per school, from a day's rows of many schools.
pub fn assemble(
    day: &DayWindow,
    date: NaiveDate,
    schools: &[School],
    data: DayData,
) -> HashMap<i64, ReportContent> {
    let mut out: HashMap<i64, ReportContent> = schools
        .iter()
        .map(|s| (s.code, ReportContent::empty(s, date)))
        .collect();
    debug_assert_eq!(day.day, date.to_string());
    for t in data.vouchers {
        if let Some(r) = out.get_mut(&t.school_code) {
            r.vouchers.issued_total = t.issued_total;
            r.vouchers.activated_total = t.activated_total;
            r.vouchers.revoked_total = t.revoked_total;
        }
    }
    for a in data.activations {
        if let Some(r) = out.get_mut(&a.school_code) {
            r.vouchers.activations.push(Activation {
                voucher_id: a.voucher_id,
                pupil_iin: a.pupil_iin,
                activated_at: local_rfc3339(a.activated_at),
            });
        }
    }
    for x in data.revocations {
        if let Some(r) = out.get_mut(&x.school_code) {
            r.vouchers.revocations.push(Revocation {
                voucher_id: x.voucher_id,
                pupil_iin: x.pupil_iin,
                reason: x.reason,
                revoked_at: local_rfc3339(x.revoked_at),
            });
        }
    }
    for m in data.meals {
        if let Some(r) = out.get_mut(&m.school_code) {
            r.meals.served_total += m.meals;
            r.meals.duplicates += m.oks - m.meals;
            r.meals.by_proof.card += m.card;
            r.meals.by_proof.unverified += m.unverified;
            r.meals.by_proof.proven += m.meals - m.card - m.unverified;
            *r.meals.by_meal_kind.entry(m.meal_kind).or_insert(0) += m.meals;
            let c = &mut r.meals.by_category;
            match m.category.as_deref() {
                Some("asp") => c.asp += m.meals,
                Some("low_income") => c.low_income += m.meals,
                Some("orphan") => c.orphan += m.meals,
                _ => c.other += m.meals,
            }
        }
    }
    for m in data.served {
        if let Some(r) = out.get_mut(&m.school_code) {
            let proof = if m.card > 0 {
                "card"
            } else if m.unverified > 0 {
                "unverified"
            } else {
                "proven"
            };
            r.meals.served.push(ServedMeal {
                pupil_iin: m.pupil_iin,
                meal_kind: m.meal_kind,
                proof: proof.to_owned(),
            });
        }
    }
    for v in data.rejected {
        if let Some(r) = out.get_mut(&v.school_code) {
            r.rejected_scans.total += v.scans;
            *r.rejected_scans.by_verdict.entry(v.verdict).or_insert(0) += v.scans;
        }
    }
    for x in data.refused {
        if let Some(r) = out.get_mut(&x.school_code) {
            r.refused_events.total += x.events;
            *r.refused_events.by_reason.entry(x.refusal).or_insert(0) += x.events;
        }
    }
    for c in data.consents {
        if let Some(r) = out.get_mut(&c.school_code) {
            r.consent_outcomes.push(ConsentOutcome {
                pupil_iin: c.pupil_iin,
                status: c.status,
                at: local_rfc3339(c.at),
            });
        }
    }
    for r in out.values_mut() {
        r.vouchers.activated_on_day = r.vouchers.activations.len() as i64;
        r.canonical_order();
    }
    out
}

impl ReportContent {
    /// Sorts the lists: rows come in whatever order the database likes, and the hash must not
    /// depend on it. Also after an erased pupil's IIN was replaced in a stored report.
    pub fn canonical_order(&mut self) {
        self.vouchers.activations.sort_by(|a, b| {
            (&a.activated_at, &a.pupil_iin, &a.voucher_id).cmp(&(
                &b.activated_at,
                &b.pupil_iin,
                &b.voucher_id,
            ))
        });
        self.vouchers.revocations.sort_by(|a, b| {
            (&a.revoked_at, &a.pupil_iin, &a.voucher_id).cmp(&(
                &b.revoked_at,
                &b.pupil_iin,
                &b.voucher_id,
            ))
        });
        self.meals.served.sort();
        self.consent_outcomes.sort_by(|a, b| {
            (&a.at, &a.pupil_iin, &a.status).cmp(&(&b.at, &b.pupil_iin, &b.status))
        });
    }
}

/// A stored report with the IINs of erased pupils replaced (`iins`: IIN → placeholder), as it
/// would be built from the database after the erasure: its body and, when the body is a report
/// of this schema, the hash of its content (so that building the day again finds it unchanged
/// and sends no revision). `None` when none of the IINs occurs in it.
pub fn replace_iins(
    body: &str,
    iins: &HashMap<String, String>,
) -> Option<(String, Option<String>)> {
    fn walk(v: &mut serde_json::Value, iins: &HashMap<String, String>) -> bool {
        match v {
            serde_json::Value::String(s) => match iins.get(s.as_str()) {
                Some(placeholder) => {
                    *s = placeholder.clone();
                    true
                }
                None => false,
            },
            serde_json::Value::Array(items) => {
                items.iter_mut().fold(false, |hit, i| walk(i, iins) | hit)
            }
            serde_json::Value::Object(fields) => fields
                .values_mut()
                .fold(false, |hit, f| walk(f, iins) | hit),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_str(body).ok()?;
    if !walk(&mut value, iins) {
        return None;
    }
    match serde_json::from_value::<NobdReport>(value.clone()) {
        Ok(mut doc) => {
            doc.content.canonical_order();
            let body = serde_json::to_string(&doc).expect("report serialises");
            Some((body, Some(doc.content.hash())))
        }
        // A document of another shape keeps its hash: only its IINs change.
        Err(_) => Some((value.to_string(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::nobd::{MealAggregate, RevocationRow, VerdictAggregate};

    fn school(code: i64) -> School {
        School {
            code,
            bin: format!("{code:012}"),
            name: format!("School {code}"),
            district: None,
        }
    }

    #[test]
    fn ids_and_times_have_the_documented_shape() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(
            report_id("000140000007", d, 2),
            "000140000007-2026-11-23-r2"
        );
        assert_eq!(
            local_rfc3339(crate::testkit::MONDAY_9AM),
            "2026-11-23T09:00:00+05:00"
        );
    }

    #[test]
    fn each_pupil_served_is_listed_with_the_class_of_proof_sorted() {
        use crate::store::nobd::ServedRow;
        let date = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let day = crate::nobd::build::day_window(date);
        let row = |school_code, iin: &str, kind: &str, card, unverified| ServedRow {
            school_code,
            pupil_iin: iin.into(),
            meal_kind: kind.into(),
            card,
            unverified,
        };
        let data = DayData {
            served: vec![
                row(1, "200000000002", "lunch", 0, 0),
                row(1, "100000000001", "lunch", 1, 0),
                row(2, "300000000003", "lunch", 0, 1),
                row(1, "100000000001", "breakfast", 0, 0),
            ],
            ..DayData::default()
        };
        let out = assemble(&day, date, &[school(1), school(2)], data);
        let listed = |code: i64| -> Vec<(String, String, String)> {
            out[&code]
                .meals
                .served
                .iter()
                .map(|m| (m.pupil_iin.clone(), m.meal_kind.clone(), m.proof.clone()))
                .collect()
        };
        let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(
            listed(1),
            vec![
                t("100000000001", "breakfast", "proven"),
                t("100000000001", "lunch", "card"),
                t("200000000002", "lunch", "proven"),
            ]
        );
        assert_eq!(listed(2), vec![t("300000000003", "lunch", "unverified")]);
        // An erased pupil's IIN is replaced in the list as everywhere else.
        let doc = NobdReport {
            schema: SCHEMA.into(),
            report_id: "x".into(),
            revision: 1,
            generated_at: "t".into(),
            content: out[&1].clone(),
        };
        let body = serde_json::to_string(&doc).unwrap();
        let iins = HashMap::from([("100000000001".to_owned(), "erased:7".to_owned())]);
        let (body, hash) = replace_iins(&body, &iins).unwrap();
        assert!(
            !body.contains("100000000001") && body.contains("erased:7"),
            "{body}"
        );
        assert!(hash.is_some());
    }

    #[test]
    fn revocations_land_in_their_school_sorted_and_count_as_activity() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let day = crate::nobd::build::day_window(date);
        let rev = |school_code, voucher: &str, at| RevocationRow {
            school_code,
            voucher_id: voucher.into(),
            pupil_iin: format!("iin-{voucher}"),
            reason: "not_eligible".into(),
            revoked_at: at,
        };
        let data = DayData {
            revocations: vec![
                rev(1, "b", day.start + 7200),
                rev(1, "a", day.start + 3600),
                rev(2, "c", day.start),
            ],
            ..DayData::default()
        };
        let out = assemble(&day, date, &[school(1), school(2), school(3)], data);
        let ids: Vec<&str> = out[&1]
            .vouchers
            .revocations
            .iter()
            .map(|r| r.voucher_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            out[&1].vouchers.revocations[0].revoked_at,
            "2026-11-23T01:00:00+05:00"
        );
        assert_eq!(out[&2].vouchers.revocations.len(), 1);
        assert!(
            out[&2].has_activity(),
            "a revocation alone is worth a report"
        );
        assert!(!out[&3].has_activity());
    }

    #[test]
    fn rows_land_in_their_school_and_sum_up() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let day = DayWindow {
            day: date.to_string(),
            start: 0,
            end: 86_400,
        };
        let meal = |school_code, kind: &str, cat: Option<&str>, meals, oks| MealAggregate {
            school_code,
            meal_kind: kind.into(),
            category: cat.map(str::to_owned),
            meals,
            oks,
            card: if cat == Some("orphan") { 1 } else { 0 },
            unverified: 0,
        };
        let data = DayData {
            meals: vec![
                meal(1, "lunch", Some("asp"), 3, 4),
                meal(1, "lunch", Some("orphan"), 1, 1),
                meal(1, "breakfast", None, 2, 2),
                meal(2, "lunch", Some("low_income"), 5, 7),
                meal(9, "lunch", Some("asp"), 100, 100),
            ],
            rejected: vec![VerdictAggregate {
                school_code: 2,
                verdict: "already_served".into(),
                scans: 2,
            }],
            ..DayData::default()
        };
        let out = assemble(&day, date, &[school(1), school(2), school(3)], data);
        assert_eq!(out.len(), 3, "school 9 is not asked for");
        let one = &out[&1].meals;
        assert_eq!(one.served_total, 6);
        assert_eq!(one.duplicates, 1);
        assert_eq!(one.by_category.asp, 3);
        assert_eq!(one.by_category.other, 2);
        assert_eq!(one.by_meal_kind["breakfast"], 2);
        assert_eq!(one.by_meal_kind["lunch"], 4);
        assert_eq!(one.by_meal_kind["snack"], 0);
        assert_eq!(out[&2].meals.duplicates, 2);
        assert_eq!((one.by_proof.proven, one.by_proof.card), (5, 1));
        assert_eq!(out[&2].rejected_scans.by_verdict["already_served"], 2);
        assert_eq!(out[&2].rejected_scans.by_verdict["expired"], 0);
        assert!(!out[&2].rejected_scans.by_verdict.contains_key("ok"));
        assert!(!out[&3].has_activity());
        assert!(out[&1].has_activity());
        assert_ne!(out[&1].hash(), out[&3].hash());
        assert_eq!(out[&3].hash(), out[&3].clone().hash());
    }

    #[test]
    fn an_erased_iin_gives_the_report_a_build_would_give() {
        use crate::store::nobd::{ActivationRow, ConsentOutcomeRow};
        let date = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let day = DayWindow {
            day: date.to_string(),
            start: 0,
            end: 86_400,
        };
        let content = |iin: &str| {
            let activation = |voucher: &str, iin: &str| ActivationRow {
                school_code: 1,
                voucher_id: voucher.into(),
                pupil_iin: iin.into(),
                activated_at: 100,
            };
            let data = DayData {
                activations: vec![activation("v1", iin), activation("v2", "200101500000")],
                consents: vec![ConsentOutcomeRow {
                    school_code: 1,
                    pupil_iin: iin.into(),
                    status: "refused".into(),
                    at: 50,
                }],
                ..DayData::default()
            };
            assemble(&day, date, &[school(1)], data)[&1].clone()
        };
        let doc = NobdReport {
            schema: SCHEMA.into(),
            report_id: "r".into(),
            revision: 1,
            generated_at: "g".into(),
            content: content("100101500159"),
        };
        let body = serde_json::to_string(&doc).unwrap();
        let iins = HashMap::from([("100101500159".to_owned(), "erased:7".to_owned())]);
        let (redacted, hash) = replace_iins(&body, &iins).unwrap();
        // The placeholder sorts after the other pupil's IIN, as a build would sort it.
        let built = content("erased:7");
        assert_eq!(built.vouchers.activations[0].pupil_iin, "200101500000");
        assert_eq!(hash, Some(built.hash()));
        let stored: NobdReport = serde_json::from_str(&redacted).unwrap();
        assert_eq!(stored.content, built);
        assert_eq!((stored.report_id, stored.revision), (doc.report_id, 1));
        assert!(!redacted.contains("100101500159"));
        assert_eq!(
            replace_iins(&redacted, &iins),
            None,
            "nothing left to replace"
        );
        // Another shape: the IIN is still replaced, the hash left to the caller.
        let other = r#"{"list":[{"pupil_iin":"100101500159"}],"n":1}"#;
        let (replaced, hash) = replace_iins(other, &iins).unwrap();
        assert_eq!(hash, None);
        assert!(replaced.contains("\"erased:7\"") && !replaced.contains("100101500159"));
    }
}
