//! What a terminal gets on enrollment and on every sync: the school's vouchers (changed after a
//! cursor), keys, calendar, meal windows and today's meals served at the school's other
//! terminals. No IIN, no category, no phone: a terminal never holds them (DESIGN §9).

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::roster::School;
use crate::store::terminals::{ServedRow, SnapshotRow};
use chrono::NaiveDate;
use shared::calendar::{MealKind, SchoolYear, SchoolYears, ServiceDay};
use shared::wire::{ServedMeal, Snapshot, SnapshotVoucher, VoucherStatus};
use std::borrow::Cow;
use uuid::Uuid;

/// First name and last initial — all a counter screen shows of a child.
pub fn display_name(first_name: &str, last_name: &str) -> String {
    match last_name.trim().chars().next() {
        Some(c) => format!("{} {}.", first_name.trim(), c),
        None => first_name.trim().to_owned(),
    }
}

fn corrupt(what: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!(
        "stored data for a snapshot is invalid: {what}"
    ))
}

fn date(text: &str) -> AppResult<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| corrupt(format!("date {text:?}")))
}

fn uuid(text: &str) -> AppResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| corrupt(format!("id {text:?}")))
}

pub fn voucher(row: &SnapshotRow) -> AppResult<SnapshotVoucher> {
    let stored = VoucherStatus::parse(&row.status)
        .ok_or_else(|| corrupt(format!("voucher status {:?}", row.status)))?;
    // A pupil dropped from the roster keeps no meal, whatever the voucher row says; nor does a
    // voucher that moved away.
    let status = if row.pupil_removed_at.is_some() || row.moved_away {
        VoucherStatus::Revoked
    } else {
        stored
    };
    Ok(SnapshotVoucher {
        voucher_id: uuid(&row.id)?,
        status,
        valid_from: date(&row.valid_from)?,
        valid_to: date(&row.valid_to)?,
        display_name: display_name(&row.first_name, &row.last_name),
        grade: u8::try_from(row.grade).map_err(|_| corrupt(format!("grade {}", row.grade)))?,
        class_letter: row.class_letter.clone(),
        card_number: row.card_number.clone(),
        moved_away: row.moved_away,
    })
}

pub fn served(row: &ServedRow) -> AppResult<ServedMeal> {
    Ok(ServedMeal {
        voucher_id: uuid(&row.voucher_id)?,
        meal_kind: row
            .meal_kind
            .parse::<MealKind>()
            .map_err(|_| corrupt(format!("meal kind {:?}", row.meal_kind)))?,
        service_day: date(&row.service_day)?,
        served_at: row.scanned_at,
        terminal_id: uuid(&row.terminal_id)?,
        terminal_label: row.terminal_label.clone(),
    })
}

/// The calendars a terminal gets on `day`: the school year in force and, once configured, the
/// one after it. Between years the first is the coming year (old terminals read only that one,
/// and refuse the summer's days as outside it), or, after the last configured year, that last
/// year.
pub fn calendars(years: &SchoolYears, day: NaiveDate) -> (SchoolYear, Option<SchoolYear>) {
    if let Some(current) = years.year_for(day) {
        let next = years.next_after(current.end).map(Cow::into_owned);
        return (current.into_owned(), next);
    }
    let year = years
        .next_after(day)
        .or_else(|| years.last_before(day))
        .map_or_else(|| SchoolYear::default_for(day), Cow::into_owned);
    (year, None)
}

/// The snapshot for a terminal of `school` (`me`: its id, left out of `served_today`).
/// Cursor 0 — or a cursor the server never handed out — gives a full snapshot.
pub async fn build(
    state: &AppState,
    school: &School,
    me: Option<Uuid>,
    cursor: i64,
) -> AppResult<Snapshot> {
    let now = state.now();
    let day = ServiceDay::from_unix(now);
    let today = day.to_string();
    let (calendar, next_calendar) = calendars(&state.settings.school_years, day.date());
    let rows = state
        .store
        .snapshot_vouchers(school.code, cursor, &today)
        .await?;
    let served_rows = state.store.served_on_day(school.code, &today, me).await?;
    Ok(Snapshot {
        cursor: rows.cursor,
        full: rows.full,
        server_time: now,
        trust_list: state.keys.active().trust.clone(),
        school_code: u32::try_from(school.code)
            .map_err(|_| corrupt(format!("school code {}", school.code)))?,
        calendar,
        next_calendar,
        meal_windows: state.settings.windows(),
        vouchers: rows.rows.iter().map(voucher).collect::<AppResult<_>>()?,
        served_today: served_rows.iter().map(served).collect::<AppResult<_>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str, removed: Option<i64>) -> SnapshotRow {
        SnapshotRow {
            id: Uuid::new_v4().to_string(),
            status: status.into(),
            valid_from: "2026-09-01".into(),
            valid_to: "2027-05-25".into(),
            change_seq: 3,
            first_name: "Айгерим".into(),
            last_name: "Сапарова".into(),
            grade: 3,
            class_letter: "А".into(),
            card_number: None,
            pupil_removed_at: removed,
            moved_away: false,
        }
    }

    #[test]
    fn statuses_and_removed_pupils() {
        assert_eq!(
            voucher(&row("active", None)).unwrap().status,
            VoucherStatus::Active
        );
        assert_eq!(
            voucher(&row("issued", None)).unwrap().status,
            VoucherStatus::Issued
        );
        assert_eq!(
            voucher(&row("active", Some(5))).unwrap().status,
            VoucherStatus::Revoked
        );
        assert!(voucher(&row("lost", None)).is_err());
        let mut bad = row("active", None);
        bad.grade = 300;
        assert!(voucher(&bad).is_err());
        let v = voucher(&row("active", None)).unwrap();
        assert_eq!(v.display_name, "Айгерим С.");
        assert_eq!(v.valid_to.to_string(), "2027-05-25");
    }

    #[test]
    fn terminals_get_the_year_in_force_and_the_next_once_configured() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let year = |start: &str, end: &str| SchoolYear {
            start: d(start),
            end: d(end),
            breaks: vec![],
            school_days: SchoolYear::kazakh(2026).school_days,
        };
        let y1 = year("2026-09-01", "2027-05-25");
        let y2 = year("2027-09-01", "2028-05-25");
        let one = SchoolYears::new(vec![y1.clone()]).unwrap();
        assert_eq!(calendars(&one, d("2026-11-23")), (y1.clone(), None));
        assert_eq!(
            calendars(&one, d("2027-07-01")),
            (y1.clone(), None),
            "the last year"
        );
        let two = SchoolYears::new(vec![y1.clone(), y2.clone()]).unwrap();
        assert_eq!(
            calendars(&two, d("2026-11-23")),
            (y1.clone(), Some(y2.clone()))
        );
        assert_eq!(
            calendars(&two, d("2027-07-01")),
            (y2.clone(), None),
            "summer"
        );
        assert_eq!(calendars(&two, d("2027-09-01")), (y2.clone(), None));
        let (default, next) = calendars(&SchoolYears::default(), d("2026-11-23"));
        assert_eq!(default.label(), "2026-2027");
        assert_eq!(next.map(|y| y.label()).as_deref(), Some("2027-2028"));
    }

    #[test]
    fn display_names_are_first_name_and_last_initial() {
        assert_eq!(display_name("Айгерим", "Сапарова"), "Айгерим С.");
        assert_eq!(display_name(" Ержан ", ""), "Ержан");
        assert_eq!(display_name("Ivan", " petrov"), "Ivan p.");
    }
}
