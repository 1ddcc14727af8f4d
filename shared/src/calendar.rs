//! School calendar, meal windows and the service day, all in Kazakhstan local time (UTC+5).

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// Kazakhstan has one time zone, UTC+5, with no daylight saving.
pub const KZ_OFFSET_SECONDS: i64 = 5 * 3600;

/// The local calendar day a meal belongs to. The one-meal guard is keyed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceDay(pub NaiveDate);

impl ServiceDay {
    pub fn from_unix(ts: i64) -> ServiceDay {
        let local = ts + KZ_OFFSET_SECONDS;
        let days = local.div_euclid(86_400);
        ServiceDay(
            NaiveDate::from_num_days_from_ce_opt(719_163 + days as i32)
                .expect("timestamp within chrono's range"),
        )
    }

    /// Unix seconds of a local wall-clock time on this day.
    pub fn unix_at(&self, time: NaiveTime) -> i64 {
        self.0.and_time(time).and_utc().timestamp() - KZ_OFFSET_SECONDS
    }

    pub fn date(&self) -> NaiveDate {
        self.0
    }
}

impl fmt::Display for ServiceDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

/// Local wall-clock time of a Unix timestamp.
pub fn local_time(ts: i64) -> NaiveTime {
    let secs = (ts + KZ_OFFSET_SECONDS).rem_euclid(86_400) as u32;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).expect("seconds within a day")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MealKind {
    Breakfast,
    Lunch,
    Snack,
}

impl MealKind {
    pub const ALL: [MealKind; 3] = [MealKind::Breakfast, MealKind::Lunch, MealKind::Snack];

    pub fn as_str(self) -> &'static str {
        match self {
            MealKind::Breakfast => "breakfast",
            MealKind::Lunch => "lunch",
            MealKind::Snack => "snack",
        }
    }
}

impl fmt::Display for MealKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown meal kind {0:?}: expected breakfast, lunch or snack")]
pub struct UnknownMealKind(pub String);

impl FromStr for MealKind {
    type Err = UnknownMealKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MealKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| UnknownMealKind(s.to_owned()))
    }
}

/// When a meal kind is served, local time, `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MealWindow {
    pub kind: MealKind,
    #[serde(with = "hhmm")]
    pub start: NaiveTime,
    #[serde(with = "hhmm")]
    pub end: NaiveTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("meal window {0:?} is not HH:MM-HH:MM with the start before the end")]
pub struct BadMealWindow(pub String);

impl MealWindow {
    /// Parses `"11:00-15:00"`.
    pub fn parse(kind: MealKind, text: &str) -> Result<MealWindow, BadMealWindow> {
        let bad = || BadMealWindow(text.to_owned());
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| bad())?;
        let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| bad())?;
        if start >= end {
            return Err(bad());
        }
        Ok(MealWindow { kind, start, end })
    }

    pub fn contains(&self, time: NaiveTime) -> bool {
        self.start <= time && time < self.end
    }

    pub fn text(&self) -> String {
        format!(
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let text = String::deserialize(d)?;
        NaiveTime::parse_from_str(&text, "%H:%M").map_err(serde::de::Error::custom)
    }
}

/// A school year: first and last day, breaks (inclusive ranges) and the weekdays with lessons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchoolYear {
    pub start: NaiveDate,
    pub end: NaiveDate,
    #[serde(default)]
    pub breaks: Vec<(NaiveDate, NaiveDate)>,
    #[serde(default = "default_school_days", with = "weekdays")]
    pub school_days: Vec<Weekday>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSchoolYear {
    #[error("ends ({end}) before it starts ({start})")]
    Order { start: NaiveDate, end: NaiveDate },
    #[error("break {0} – {1} is reversed or outside the school year")]
    Break(NaiveDate, NaiveDate),
    #[error("school_days is empty")]
    NoDays,
}

fn default_school_days() -> Vec<Weekday> {
    vec![
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
    ]
}

impl SchoolYear {
    /// The Kazakh school year containing `today` (or starting next, in summer): 1 September to
    /// 25 May, with the usual autumn, winter and spring breaks, Monday to Friday.
    pub fn default_for(today: NaiveDate) -> SchoolYear {
        let first = if today.month() >= 6 {
            today.year()
        } else {
            today.year() - 1
        };
        SchoolYear::kazakh(first)
    }

    /// The Kazakh school year starting on 1 September of `first`.
    pub fn kazakh(first: i32) -> SchoolYear {
        let d = |y: i32, m: u32, day: u32| NaiveDate::from_ymd_opt(y, m, day).expect("valid date");
        SchoolYear {
            start: d(first, 9, 1),
            end: d(first + 1, 5, 25),
            breaks: vec![
                (d(first, 10, 26), d(first, 11, 1)),
                (d(first, 12, 29), d(first + 1, 1, 7)),
                (d(first + 1, 3, 19), d(first + 1, 3, 29)),
            ],
            school_days: default_school_days(),
        }
    }

    pub fn validate(&self) -> Result<(), BadSchoolYear> {
        if self.end < self.start {
            return Err(BadSchoolYear::Order {
                start: self.start,
                end: self.end,
            });
        }
        for &(a, b) in &self.breaks {
            if b < a || a < self.start || b > self.end {
                return Err(BadSchoolYear::Break(a, b));
            }
        }
        if self.school_days.is_empty() {
            return Err(BadSchoolYear::NoDays);
        }
        Ok(())
    }

    /// `"2026-2027"`: the label vouchers are issued under (one per pupil per label).
    pub fn label(&self) -> String {
        format!("{}-{}", self.start.year(), self.end.year())
    }

    pub fn contains(&self, day: NaiveDate) -> bool {
        self.start <= day && day <= self.end
    }

    pub fn is_school_day(&self, day: NaiveDate) -> bool {
        self.contains(day)
            && self.school_days.contains(&day.weekday())
            && !self.breaks.iter().any(|&(a, b)| a <= day && day <= b)
    }
}

/// The school years a server runs: those configured (`[[school_years]]`, or `[school_year]` as
/// the only one), sorted and without overlaps; or, when none is configured, the Kazakh default
/// calendar ([`SchoolYear::kazakh`]) for every year. The year of a day is the one whose
/// `start..=end` holds it; between two years there is none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchoolYears {
    /// Sorted by start; empty: the default calendar.
    configured: Vec<SchoolYear>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSchoolYears {
    #[error("school year {label}: {error}")]
    Year { label: String, error: BadSchoolYear },
    #[error("school year {0} is listed twice (a label names one year)")]
    Duplicate(String),
    #[error("school years {first} and {second} overlap: {day} is in both")]
    Overlap {
        first: String,
        second: String,
        day: NaiveDate,
    },
}

impl SchoolYears {
    /// Checks each year and that no two share a day or a label; the order given does not
    /// matter. An empty list means the default calendar.
    pub fn new(mut years: Vec<SchoolYear>) -> Result<SchoolYears, BadSchoolYears> {
        for y in &years {
            y.validate().map_err(|error| BadSchoolYears::Year {
                label: y.label(),
                error,
            })?;
        }
        let mut labels: Vec<String> = years.iter().map(SchoolYear::label).collect();
        labels.sort();
        if let Some(w) = labels.windows(2).find(|w| w[0] == w[1]) {
            return Err(BadSchoolYears::Duplicate(w[0].clone()));
        }
        years.sort_by_key(|y| y.start);
        if let Some(w) = years.windows(2).find(|w| w[1].start <= w[0].end) {
            return Err(BadSchoolYears::Overlap {
                first: w[0].label(),
                second: w[1].label(),
                day: w[1].start,
            });
        }
        Ok(SchoolYears { configured: years })
    }

    /// The configured years, sorted; empty when the default calendar applies.
    pub fn configured(&self) -> &[SchoolYear] {
        &self.configured
    }

    /// The school year holding `day`, if any.
    pub fn year_for(&self, day: NaiveDate) -> Option<Cow<'_, SchoolYear>> {
        if self.configured.is_empty() {
            let y = SchoolYear::default_for(day);
            return y.contains(day).then_some(Cow::Owned(y));
        }
        self.configured
            .iter()
            .find(|y| y.contains(day))
            .map(Cow::Borrowed)
    }

    /// The first school year that starts after `day`, if one is configured.
    pub fn next_after(&self, day: NaiveDate) -> Option<Cow<'_, SchoolYear>> {
        if self.configured.is_empty() {
            let y = SchoolYear::default_for(day);
            return Some(Cow::Owned(if y.start > day {
                y
            } else {
                SchoolYear::kazakh(y.start.year() + 1)
            }));
        }
        self.configured
            .iter()
            .find(|y| y.start > day)
            .map(Cow::Borrowed)
    }

    /// The last school year that ended before `day`, if any.
    pub fn last_before(&self, day: NaiveDate) -> Option<Cow<'_, SchoolYear>> {
        if self.configured.is_empty() {
            let y = SchoolYear::default_for(day);
            return Some(Cow::Owned(if y.end < day {
                y
            } else {
                SchoolYear::kazakh(y.start.year() - 1)
            }));
        }
        self.configured
            .iter()
            .rev()
            .find(|y| y.end < day)
            .map(Cow::Borrowed)
    }

    /// Whether `day` is a school day of its year (false between years).
    pub fn is_school_day(&self, day: NaiveDate) -> bool {
        self.year_for(day).is_some_and(|y| y.is_school_day(day))
    }
}

mod weekdays {
    use chrono::Weekday;
    use serde::{Deserialize, Deserializer, Serializer};

    const NAMES: [(&str, Weekday); 7] = [
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];

    pub fn name(day: Weekday) -> &'static str {
        NAMES
            .iter()
            .find(|(_, d)| *d == day)
            .map(|(n, _)| *n)
            .expect("all weekdays named")
    }

    pub fn serialize<S: Serializer>(days: &[Weekday], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(days.iter().map(|d| name(*d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| {
                NAMES
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n.trim()))
                    .map(|(_, d)| *d)
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!("unknown weekday {n:?}: use mon..sun"))
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn service_day_is_local_utc_plus_5() {
        // 2026-11-22 18:59:59 UTC is 23:59:59 local; one second later is the next day.
        let ts = d(2026, 11, 22)
            .and_hms_opt(18, 59, 59)
            .unwrap()
            .and_utc()
            .timestamp();
        assert_eq!(ServiceDay::from_unix(ts).0, d(2026, 11, 22));
        assert_eq!(ServiceDay::from_unix(ts + 1).0, d(2026, 11, 23));
        assert_eq!(
            local_time(ts + 1),
            NaiveTime::from_hms_opt(0, 0, 0).unwrap()
        );
        let day = ServiceDay(d(2026, 11, 23));
        assert_eq!(
            day.unix_at(NaiveTime::from_hms_opt(0, 0, 0).unwrap()),
            ts + 1
        );
    }

    #[test]
    fn school_days_exclude_weekends_breaks_and_outside_the_year() {
        let y = SchoolYear::default_for(d(2026, 11, 22));
        assert_eq!(y.label(), "2026-2027");
        y.validate().unwrap();
        assert!(y.is_school_day(d(2026, 11, 23))); // Monday
        assert!(!y.is_school_day(d(2026, 11, 22))); // Sunday
        assert!(!y.is_school_day(d(2026, 10, 28))); // autumn break
        assert!(!y.is_school_day(d(2027, 1, 5))); // winter break
        assert!(!y.is_school_day(d(2027, 6, 1))); // summer
        assert_eq!(SchoolYear::default_for(d(2027, 3, 1)).label(), "2026-2027");
        assert_eq!(SchoolYear::default_for(d(2027, 7, 1)).label(), "2027-2028");
    }

    #[test]
    fn school_year_toml_shape_round_trips() {
        let json = r#"{"start":"2026-09-01","end":"2027-05-25","breaks":[["2026-10-26","2026-11-01"]],"school_days":["mon","tue","wed","thu","fri","sat"]}"#;
        let y: SchoolYear = serde_json::from_str(json).unwrap();
        assert!(y.is_school_day(d(2026, 11, 28)));
        assert_eq!(serde_json::to_string(&y).unwrap(), json);
        assert!(serde_json::from_str::<SchoolYear>(&json.replace("sat", "xyz")).is_err());
        let mut bad = y.clone();
        bad.breaks.push((d(2027, 6, 1), d(2027, 6, 2)));
        assert!(bad.validate().is_err());
    }

    fn year(start: NaiveDate, end: NaiveDate) -> SchoolYear {
        SchoolYear {
            start,
            end,
            breaks: vec![],
            school_days: default_school_days(),
        }
    }

    #[test]
    fn the_year_of_a_day_among_configured_years() {
        let y1 = year(d(2026, 9, 1), d(2027, 5, 25));
        let y2 = year(d(2027, 9, 1), d(2028, 5, 25));
        // Given in any order, kept sorted.
        let years = SchoolYears::new(vec![y2.clone(), y1.clone()]).unwrap();
        assert_eq!(years.configured(), [y1.clone(), y2.clone()]);
        assert_eq!(years.year_for(d(2026, 9, 1)).as_deref(), Some(&y1));
        assert_eq!(years.year_for(d(2027, 5, 25)).as_deref(), Some(&y1));
        assert_eq!(years.year_for(d(2027, 7, 1)), None, "summer: no year");
        assert_eq!(years.year_for(d(2027, 9, 1)).as_deref(), Some(&y2));
        assert_eq!(years.year_for(d(2028, 9, 1)), None, "after the last");
        assert_eq!(years.next_after(d(2026, 12, 1)).as_deref(), Some(&y2));
        assert_eq!(years.next_after(d(2027, 7, 1)).as_deref(), Some(&y2));
        assert_eq!(years.next_after(d(2027, 9, 1)), None);
        assert_eq!(years.last_before(d(2027, 7, 1)).as_deref(), Some(&y1));
        assert_eq!(years.last_before(d(2026, 12, 1)), None);
        assert!(years.is_school_day(d(2027, 9, 1)));
        assert!(!years.is_school_day(d(2027, 8, 31)));
    }

    #[test]
    fn without_configured_years_every_year_is_a_kazakh_one() {
        let years = SchoolYears::default();
        assert_eq!(
            years.year_for(d(2031, 2, 3)).map(|y| y.label()).as_deref(),
            Some("2030-2031")
        );
        assert_eq!(years.year_for(d(2031, 5, 28)), None);
        assert_eq!(
            years
                .next_after(d(2031, 5, 28))
                .map(|y| y.label())
                .as_deref(),
            Some("2031-2032")
        );
        assert_eq!(
            years
                .next_after(d(2031, 2, 3))
                .map(|y| y.label())
                .as_deref(),
            Some("2031-2032")
        );
        assert_eq!(
            years
                .last_before(d(2031, 7, 1))
                .map(|y| y.label())
                .as_deref(),
            Some("2030-2031")
        );
        assert_eq!(
            years
                .last_before(d(2031, 2, 3))
                .map(|y| y.label())
                .as_deref(),
            Some("2029-2030")
        );
        assert!(years.is_school_day(d(2031, 2, 3)));
    }

    #[test]
    fn bad_lists_name_the_year() {
        let y1 = year(d(2026, 9, 1), d(2027, 5, 25));
        let err = |years: Vec<SchoolYear>| SchoolYears::new(years).unwrap_err().to_string();
        assert_eq!(
            err(vec![y1.clone(), year(d(2027, 5, 25), d(2028, 5, 25))]),
            "school years 2026-2027 and 2027-2028 overlap: 2027-05-25 is in both"
        );
        assert_eq!(
            err(vec![y1.clone(), y1.clone()]),
            "school year 2026-2027 is listed twice (a label names one year)"
        );
        assert_eq!(
            err(vec![y1.clone(), year(d(2028, 9, 1), d(2027, 5, 25))]),
            "school year 2028-2027: ends (2027-05-25) before it starts (2028-09-01)"
        );
        let mut with_break = year(d(2027, 9, 1), d(2028, 5, 25));
        with_break.breaks.push((d(2028, 6, 1), d(2028, 6, 5)));
        assert_eq!(
            err(vec![y1, with_break]),
            "school year 2027-2028: break 2028-06-01 – 2028-06-05 is reversed or outside the school year"
        );
    }

    #[test]
    fn meal_windows() {
        let w = MealWindow::parse(MealKind::Lunch, "11:00-15:00").unwrap();
        assert!(w.contains(NaiveTime::from_hms_opt(11, 0, 0).unwrap()));
        assert!(!w.contains(NaiveTime::from_hms_opt(15, 0, 0).unwrap()));
        assert_eq!(w.text(), "11:00-15:00");
        assert!(MealWindow::parse(MealKind::Lunch, "15:00-11:00").is_err());
        assert!(MealWindow::parse(MealKind::Lunch, "lunchtime").is_err());
        assert_eq!("lunch".parse::<MealKind>().unwrap(), MealKind::Lunch);
        assert!("dinner".parse::<MealKind>().is_err());
    }
}
