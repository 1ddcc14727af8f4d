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
    /// `already_served` because this very token was served here moments ago (a camera still
    /// seeing it, a scanner firing twice): shown in a neutral colour, never counted.
    pub repeat: bool,
    pub message_kk: String,
    pub message_ru: String,
    pub meal_kind: MealKind,
    pub service_day: NaiveDate,
    pub scanned_at: i64,
    pub source: ScanSource,
    pub seq: i64,
    /// The event this scan is recorded in: for a rejection counted into an earlier event
    /// (docs/terminal.md, "Floods"), that event's id and seq.
    pub event_id: Uuid,
    /// How many scans that event stands for now; left out when 1.
    #[serde(skip_serializing_if = "is_one")]
    pub count: i64,
    /// The rejection was over the per-minute cap: only counted, in a capped event.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub capped: bool,
}

fn is_one(n: &i64) -> bool {
    *n == 1
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

/// Staff messages; for `already_served` they say when and where, for a repeat that it is one.
pub fn messages(
    verdict: Verdict,
    source: ScanSource,
    earlier: Option<&PriorMeal>,
    repeat: bool,
) -> (String, String) {
    let (kk, ru) = (verdict.message_kk(), verdict.message_ru());
    match (verdict, earlier) {
        (Verdict::AlreadyServed, Some(m)) if repeat => {
            let at = local_hhmm(m.served_at);
            (
                format!("Жаңа ғана сканерленді, тамақ {at} берілді."),
                format!("Только что отсканирован, питание выдано в {at}."),
            )
        }
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
        // A card number the snapshot does not know is not cured by a sync: the card was never
        // registered to a pupil with a voucher.
        (Verdict::UnknownVoucher, _) if source == ScanSource::Card => (
            "Карта тіркелмеген — оқушыны тізімнен іздеңіз немесе кеңсеге қоңырау шалыңыз."
                .to_owned(),
            "Карта не зарегистрирована — найдите ученика по списку или позвоните в канцелярию."
                .to_owned(),
        ),
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

/// The outcome of a scan whose event could not be committed (full disk, I/O error, failing
/// fsync, the log locked past its timeout). Never an event and never uploaded: it exists only
/// on the screen and in the exit code, so that nobody serves on a scan that is not in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotRecorded {
    /// Always `not_recorded`.
    pub verdict: &'static str,
    pub serve: bool,
    pub voucher_id: Option<Uuid>,
    pub display_name: Option<String>,
    pub served_at: Option<i64>,
    pub repeat: bool,
    pub message_kk: String,
    pub message_ru: String,
    /// What failed, for the administrator.
    pub error: String,
    pub scanned_at: i64,
}

pub const NOT_RECORDED: &str = "not_recorded";

impl NotRecorded {
    pub fn new(error: String, scanned_at: i64) -> NotRecorded {
        NotRecorded {
            verdict: NOT_RECORDED,
            serve: false,
            voucher_id: None,
            display_name: None,
            served_at: None,
            repeat: false,
            message_kk: "Жазылмады — бұл сканерлеуге сенбеңіз, әкімшіге хабарлаңыз.".to_owned(),
            message_ru: "Не записано — не полагайтесь на этот скан, сообщите администратору."
                .to_owned(),
            error,
            scanned_at,
        }
    }

    /// `not_recorded | - | kk | ru (error)`, split like every verdict line.
    pub fn text_line(&self) -> String {
        format!(
            "{} | - | {} | {} ({})",
            self.verdict, self.message_kk, self.message_ru, self.error
        )
    }

    pub fn json_line(&self) -> String {
        serde_json::to_string(self).expect("outcome serialises")
    }
}

impl std::fmt::Display for NotRecorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the scan was not recorded: {}", self.error)
    }
}

impl std::error::Error for NotRecorded {}
