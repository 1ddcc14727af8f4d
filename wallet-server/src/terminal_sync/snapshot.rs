//! What a terminal gets on enrollment and on every sync: the school's vouchers (changed after a
//! cursor), keys, calendar, meal windows and today's meals served at the school's other
//! terminals. No IIN, no category, no phone: a terminal never holds them (DESIGN §9).

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::roster::School;
use crate::store::terminals::{ServedRow, SnapshotRow};
use chrono::NaiveDate;
use shared::calendar::{MealKind, ServiceDay};
use shared::wire::{ServedMeal, Snapshot, SnapshotVoucher, VoucherStatus};
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
    // A pupil dropped from the roster keeps no meal, whatever the voucher row says.
    let status = if row.pupil_removed_at.is_some() {
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

/// The snapshot for a terminal of `school` (`me`: its id, left out of `served_today`).
/// Cursor 0 — or a cursor the server never handed out — gives a full snapshot.
pub async fn build(
    state: &AppState,
    school: &School,
    me: Option<Uuid>,
    cursor: i64,
) -> AppResult<Snapshot> {
    let now = state.now();
    let today = ServiceDay::from_unix(now).to_string();
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
        calendar: state.settings.school_year.clone(),
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
    fn display_names_are_first_name_and_last_initial() {
        assert_eq!(display_name("Айгерим", "Сапарова"), "Айгерим С.");
        assert_eq!(display_name(" Ержан ", ""), "Ержан");
        assert_eq!(display_name("Ivan", " petrov"), "Ivan p.");
    }
}
