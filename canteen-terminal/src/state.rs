//! What the scan hot path reads, held in memory: the key ring, the vouchers, the calendar, and
//! the meals already served on the current service day. Loaded at start, rebuilt after a sync;
//! the database stays the authority (its unique key is the final one-meal guard).

use crate::store::{self, Identity, PriorMeal, StoreError, SyncState};
use chrono::NaiveDate;
use shared::calendar::{local_time, MealKind, MealWindow, SchoolYear};
use shared::trust::KeyRing;
use shared::wire::{SnapshotVoucher, VoucherStatus};
use sqlx::SqlitePool;
use std::collections::HashMap;
use uuid::Uuid;

/// A voucher as the counter needs it. Deliberately no IIN and no category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherEntry {
    pub status: VoucherStatus,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    pub display_name: String,
    pub grade: u8,
    pub class_letter: String,
}

impl VoucherEntry {
    /// "3Б": grade and class letter as staff say it.
    pub fn class(&self) -> String {
        format!("{}{}", self.grade, self.class_letter)
    }
}

/// Meals of one service day, here and elsewhere, by (voucher, meal kind).
#[derive(Debug, Clone, Default)]
pub struct DayMeals {
    pub day: Option<NaiveDate>,
    pub meals: HashMap<(Uuid, MealKind), PriorMeal>,
}

impl DayMeals {
    fn insert(&mut self, m: PriorMeal) {
        // A meal here wins over a report from elsewhere; otherwise the earliest is kept.
        let key = (m.voucher_id, m.meal_kind);
        match self.meals.get(&key) {
            Some(old) if old.terminal_label.is_none() && m.terminal_label.is_some() => {}
            Some(old)
                if old.terminal_label.is_some() == m.terminal_label.is_some()
                    && old.served_at <= m.served_at => {}
            _ => {
                self.meals.insert(key, m);
            }
        }
    }

    pub fn note_local(
        &mut self,
        voucher_id: Uuid,
        meal_kind: MealKind,
        served_at: i64,
        proof: Option<String>,
    ) {
        self.insert(PriorMeal {
            voucher_id,
            meal_kind,
            served_at,
            terminal_label: None,
            proof,
        });
    }
}

#[derive(Debug, Clone)]
pub struct State {
    pub identity: Identity,
    pub sync: SyncState,
    pub ring: KeyRing,
    pub vouchers: HashMap<Uuid, VoucherEntry>,
    pub cards: HashMap<String, Uuid>,
    pub school_year: Option<SchoolYear>,
    /// The year after `school_year`, once the server configured it.
    pub next_school_year: Option<SchoolYear>,
    pub meal_windows: Vec<MealWindow>,
    pub today: DayMeals,
}

/// Card numbers as printed vary in spacing and dashes; compare them without those.
pub fn normalize_card(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

impl State {
    /// Loads everything the hot path needs; `None` when the terminal is not enrolled.
    pub async fn load(pool: &SqlitePool) -> Result<Option<State>, StoreError> {
        let Some(identity) = store::identity(pool).await? else {
            return Ok(None);
        };
        let sync = store::sync_state(pool).await?;
        let ring = match &sync.trust_list {
            // The list was verified against the pinned root before it was stored; parse only.
            Some(list) => trust_ring(list)?,
            None => KeyRing::default(),
        };
        let calendar = store::calendar(pool).await?;
        let mut state = State {
            identity,
            sync,
            ring,
            vouchers: HashMap::new(),
            cards: HashMap::new(),
            school_year: calendar.as_ref().map(|c| c.school_year.clone()),
            next_school_year: calendar.as_ref().and_then(|c| c.next_school_year.clone()),
            meal_windows: calendar.map(|c| c.meal_windows).unwrap_or_default(),
            today: DayMeals::default(),
        };
        for v in store::listed_vouchers(pool).await? {
            state.add_voucher(v);
        }
        Ok(Some(state))
    }

    fn add_voucher(&mut self, v: SnapshotVoucher) {
        if let Some(card) = v.card_number.as_deref().map(normalize_card) {
            if !card.is_empty() {
                self.cards.insert(card, v.voucher_id);
            }
        }
        self.vouchers.insert(
            v.voucher_id,
            VoucherEntry {
                status: v.status,
                valid_from: v.valid_from,
                valid_to: v.valid_to,
                display_name: v.display_name,
                grade: v.grade,
                class_letter: v.class_letter,
            },
        );
    }

    /// Makes `today` hold the meals of `day` (reloading when the day changed).
    pub async fn ensure_day(
        &mut self,
        pool: &SqlitePool,
        day: NaiveDate,
    ) -> Result<(), StoreError> {
        if self.today.day == Some(day) {
            return Ok(());
        }
        let mut meals = DayMeals {
            day: Some(day),
            meals: HashMap::new(),
        };
        for m in store::meals_on(pool, day).await? {
            meals.insert(m);
        }
        for m in store::served_elsewhere_on(pool, day).await? {
            meals.insert(m);
        }
        self.today = meals;
        Ok(())
    }

    /// The meal kind served now: the window containing `now`; outside every window, the next
    /// window today, else the last one (the scan is then refused as outside the window anyway).
    pub fn default_meal(&self, now: i64) -> MealKind {
        let t = local_time(now);
        if let Some(w) = self.meal_windows.iter().find(|w| w.contains(t)) {
            return w.kind;
        }
        let mut windows = self.meal_windows.clone();
        windows.sort_by_key(|w| w.start);
        windows
            .iter()
            .find(|w| w.start > t)
            .or(windows.last())
            .map(|w| w.kind)
            .unwrap_or(MealKind::Lunch)
    }

    /// Whether `day` is a school day of a year this terminal knows.
    pub fn is_school_day(&self, day: NaiveDate) -> bool {
        [&self.school_year, &self.next_school_year]
            .into_iter()
            .flatten()
            .any(|y| y.is_school_day(day))
    }

    pub fn label(&self) -> &str {
        self.identity.label.as_deref().unwrap_or("")
    }
}

pub fn trust_ring(list: &shared::trust::SignedTrustList) -> Result<KeyRing, StoreError> {
    let bad = || StoreError::Corrupt {
        what: "sync_state.trust_list",
        value: list.payload.clone(),
    };
    let bytes = shared::b64::decode(&list.payload).map_err(|_| bad())?;
    let payload: shared::trust::TrustPayload = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    KeyRing::from_payload(&payload).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;
    use shared::calendar::ServiceDay;

    fn state_with(windows: Vec<MealWindow>) -> State {
        State {
            identity: Identity {
                terminal_id: Uuid::nil(),
                label: None,
                school_code: 1,
                school_bin: String::new(),
                school_name: String::new(),
                server_url: String::new(),
                root_public_key: String::new(),
                enrolled_at: 0,
            },
            sync: SyncState::default(),
            ring: KeyRing::default(),
            vouchers: HashMap::new(),
            cards: HashMap::new(),
            school_year: None,
            next_school_year: None,
            meal_windows: windows,
            today: DayMeals::default(),
        }
    }

    fn at(h: u32, m: u32) -> i64 {
        ServiceDay(NaiveDate::from_ymd_opt(2026, 11, 23).unwrap())
            .unix_at(NaiveTime::from_hms_opt(h, m, 0).unwrap())
    }

    #[test]
    fn default_meal_follows_the_windows() {
        let s = state_with(vec![
            MealWindow::parse(MealKind::Snack, "15:00-16:00").unwrap(),
            MealWindow::parse(MealKind::Breakfast, "08:00-10:00").unwrap(),
            MealWindow::parse(MealKind::Lunch, "11:00-14:00").unwrap(),
        ]);
        assert_eq!(s.default_meal(at(9, 0)), MealKind::Breakfast);
        assert_eq!(s.default_meal(at(12, 0)), MealKind::Lunch);
        assert_eq!(s.default_meal(at(15, 30)), MealKind::Snack);
        assert_eq!(s.default_meal(at(7, 0)), MealKind::Breakfast, "next window");
        assert_eq!(s.default_meal(at(10, 30)), MealKind::Lunch, "next window");
        assert_eq!(s.default_meal(at(20, 0)), MealKind::Snack, "last window");
        assert_eq!(state_with(vec![]).default_meal(at(12, 0)), MealKind::Lunch);
    }

    #[test]
    fn school_days_of_this_year_and_the_next() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let mut s = state_with(vec![]);
        assert!(!s.is_school_day(d(2026, 11, 23)), "no calendar yet");
        s.school_year = Some(SchoolYear::kazakh(2026));
        assert!(s.is_school_day(d(2026, 11, 23)));
        assert!(!s.is_school_day(d(2027, 9, 1)), "next year not known");
        s.next_school_year = Some(SchoolYear::kazakh(2027));
        assert!(s.is_school_day(d(2027, 9, 1)));
        assert!(!s.is_school_day(d(2027, 7, 1)), "summer");
    }

    #[test]
    fn card_numbers_ignore_spacing_dashes_and_case() {
        assert_eq!(normalize_card(" 0123-456 78 "), "012345678");
        assert_eq!(normalize_card("ab 12"), "AB12");
    }

    #[test]
    fn a_local_meal_wins_over_a_report_from_elsewhere() {
        let v = Uuid::from_u128(1);
        let mut d = DayMeals::default();
        d.insert(PriorMeal {
            voucher_id: v,
            meal_kind: MealKind::Lunch,
            served_at: 100,
            terminal_label: Some("B".into()),
            proof: None,
        });
        d.note_local(v, MealKind::Lunch, 200, None);
        d.insert(PriorMeal {
            voucher_id: v,
            meal_kind: MealKind::Lunch,
            served_at: 50,
            terminal_label: Some("C".into()),
            proof: None,
        });
        let m = &d.meals[&(v, MealKind::Lunch)];
        assert_eq!((m.served_at, m.terminal_label.as_deref()), (200, None));
    }
}
