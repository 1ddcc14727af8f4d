//! What staff see after a scan, as one text line or one JSON object.

use crate::store::PriorMeal;
use chrono::NaiveDate;
use serde::Serialize;
use shared::calendar::{MealKind, KZ_OFFSET_SECONDS};
use shared::verdict::Verdict;
use shared::wire::ScanSource;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanOutcome {
    pub verdict: Verdict,
    /// True only for `ok`: hand over the meal.
    pub serve: bool,
    pub voucher_id: Option<Uuid>,
    /// First name and last initial; only for `ok` and `already_served`.
    pub display_name: Option<String>,
    /// Grade and class letter, e.g. "3Б"; only for `ok` and `already_served`.
    pub class: Option<String>,
    /// Unix seconds of the meal: now for `ok`, the earlier meal for `already_served`.
    pub served_at: Option<i64>,
    /// The same in local time (UTC+5), "YYYY-MM-DD HH:MM".
    pub served_at_local: Option<String>,
    /// For `already_served`: the terminal that served it ("" label means this terminal).
    pub served_where: Option<String>,
    pub served_here: Option<bool>,
    pub message_kk: String,
    pub message_ru: String,
    pub meal_kind: MealKind,
    pub service_day: NaiveDate,
    pub scanned_at: i64,
    pub source: ScanSource,
    pub seq: i64,
    pub event_id: Uuid,
}

pub fn local_hhmm(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts + KZ_OFFSET_SECONDS, 0)
        .map(|t| t.naive_utc().format("%H:%M").to_string())
        .unwrap_or_default()
}

pub fn local_datetime(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts + KZ_OFFSET_SECONDS, 0)
        .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Staff messages; for `already_served` they say when and where.
pub fn messages(verdict: Verdict, earlier: Option<&PriorMeal>) -> (String, String) {
    let (kk, ru) = (verdict.message_kk(), verdict.message_ru());
    match (verdict, earlier) {
        (Verdict::AlreadyServed, Some(m)) => {
            let at = local_hhmm(m.served_at);
            match &m.terminal_label {
                None => (
                    format!("{kk} ({at}, осы терминалда)"),
                    format!("{ru} ({at}, на этом терминале)"),
                ),
                Some(label) => (
                    format!("{kk} ({at}, терминал «{label}»)"),
                    format!("{ru} ({at}, терминал «{label}»)"),
                ),
            }
        }
        _ => (kk.to_owned(), ru.to_owned()),
    }
}

impl ScanOutcome {
    /// `verdict | name class | message kk | message ru`; the code comes first so scripts can
    /// split on the first space.
    pub fn text_line(&self) -> String {
        let pupil = match (&self.display_name, &self.class) {
            (Some(n), Some(c)) => format!("{n} {c}"),
            _ => "-".to_owned(),
        };
        format!(
            "{} | {} | {} | {}",
            self.verdict.code(),
            pupil,
            self.message_kk,
            self.message_ru
        )
    }

    pub fn json_line(&self) -> String {
        serde_json::to_string(self).expect("outcome serialises")
    }
}

/// The line printed when a scan could not be recorded: never `ok`.
pub fn error_text_line(message: &str) -> String {
    format!("error | - | Сканерлеу жазылмады: {message} | Скан не записан: {message}")
}

pub fn error_json_line(message: &str) -> String {
    serde_json::json!({
        "verdict": "error",
        "serve": false,
        "voucher_id": null,
        "display_name": null,
        "served_at": null,
        "error": message,
        "message_kk": "Сканерлеу жазылмады. Қайта көріңіз немесе әкімшіге хабарлаңыз.",
        "message_ru": "Скан не записан. Повторите или сообщите администратору.",
    })
    .to_string()
}
