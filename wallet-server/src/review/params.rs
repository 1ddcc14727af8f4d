//! Query parameters of the review pages and endpoints, checked into store filters.

use crate::error::AppError;
use crate::store::school_view::{ClassRef, MealFilter, FOLLOW_UP_STATUSES};
use chrono::{Duration, NaiveDate};
use serde::Deserialize;

/// Days shown when no range is given (today and the 29 before).
pub const DEFAULT_DAYS: i64 = 30;
/// The longest range one request may ask for.
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReviewQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub class: Option<String>,
    pub voucher: Option<String>,
    pub group: Option<String>,
    pub status: Option<String>,
    pub kind: Option<String>,
    pub q: Option<String>,
    pub lang: Option<String>,
}

/// `Query<ReviewQuery>` whose rejection is our JSON error body.
#[derive(Debug, Clone, Default)]
pub struct Params(pub ReviewQuery);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Params {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, AppError> {
        axum::extract::Query::<ReviewQuery>::try_from_uri(&parts.uri)
            .map(|q| Params(q.0))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Day,
    Class,
    Pupil,
    List,
}

impl Group {
    pub const ALL: [Group; 4] = [Group::Day, Group::Class, Group::Pupil, Group::List];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Day => "day",
            Group::Class => "class",
            Group::Pupil => "pupil",
            Group::List => "list",
        }
    }
}

fn bad(message: String) -> AppError {
    AppError::Invalid("bad_filter", message)
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn date(name: &str, v: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| bad(format!("{name} must be a date YYYY-MM-DD, got {v:?}")))
}

impl ReviewQuery {
    /// `[from, to]`: by default the last [`DEFAULT_DAYS`] days up to `today`.
    pub fn range(&self, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), AppError> {
        let to = match non_empty(&self.to) {
            Some(v) => date("to", v)?,
            None => today,
        };
        let from = match non_empty(&self.from) {
            Some(v) => date("from", v)?,
            None => to - Duration::days(DEFAULT_DAYS - 1),
        };
        if from > to {
            return Err(bad(format!("from ({from}) is after to ({to})")));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(bad(format!("ask for at most {MAX_DAYS} days at once")));
        }
        Ok((from, to))
    }

    pub fn filter(&self, school_code: i64, today: NaiveDate) -> Result<MealFilter, AppError> {
        let (from, to) = self.range(today)?;
        let class = match non_empty(&self.class) {
            Some(c) => Some(ClassRef::parse(c).ok_or_else(|| {
                bad(format!(
                    "class must be a grade and a letter, like 3А; got {c:?}"
                ))
            })?),
            None => None,
        };
        let voucher = match non_empty(&self.voucher) {
            Some(v) => Some(
                uuid::Uuid::parse_str(v)
                    .map_err(|_| bad(format!("voucher must be a voucher id, got {v:?}")))?
                    .to_string(),
            ),
            None => None,
        };
        Ok(MealFilter {
            school_code,
            from: from.to_string(),
            to: to.to_string(),
            class,
            voucher,
        })
    }

    pub fn group(&self) -> Result<Group, AppError> {
        match non_empty(&self.group) {
            None => Ok(Group::Day),
            Some(g) => Group::ALL
                .into_iter()
                .find(|x| x.as_str() == g)
                .ok_or_else(|| {
                    bad(format!(
                        "group must be day, class, pupil or list; got {g:?}"
                    ))
                }),
        }
    }

    /// A consent status to narrow the follow-up list to, if given.
    pub fn follow_up_status(&self) -> Result<Option<&'static str>, AppError> {
        match non_empty(&self.status) {
            None => Ok(None),
            Some(s) => FOLLOW_UP_STATUSES
                .into_iter()
                .find(|x| *x == s)
                .map(Some)
                .ok_or_else(|| {
                    bad(format!(
                        "status must be no_phone, refused or expired; got {s:?}"
                    ))
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    fn q(from: &str, to: &str) -> ReviewQuery {
        ReviewQuery {
            from: Some(from.into()),
            to: Some(to.into()),
            ..ReviewQuery::default()
        }
    }

    #[test]
    fn default_range_is_the_last_thirty_days() {
        let (from, to) = ReviewQuery::default().range(today()).unwrap();
        assert_eq!(to, today());
        assert_eq!((to - from).num_days(), 29);
    }

    #[test]
    fn bad_filters_are_refused_with_the_reason() {
        for (query, needle) in [
            (q("2026-11-24", "2026-11-23"), "after"),
            (q("2025-01-01", "2026-11-23"), "at most"),
            (q("23.11.2026", ""), "YYYY-MM-DD"),
            (
                ReviewQuery {
                    class: Some("A3".into()),
                    ..ReviewQuery::default()
                },
                "grade and a letter",
            ),
            (
                ReviewQuery {
                    voucher: Some("x".into()),
                    ..ReviewQuery::default()
                },
                "voucher id",
            ),
        ] {
            let err = query.filter(1, today()).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        let g = ReviewQuery {
            group: Some("week".into()),
            ..ReviewQuery::default()
        };
        assert!(g.group().is_err());
        let s = ReviewQuery {
            status: Some("consented".into()),
            ..ReviewQuery::default()
        };
        assert!(s.follow_up_status().is_err());
    }

    #[test]
    fn good_filters_pass_through() {
        let mut query = q("2026-11-01", "2026-11-23");
        query.class = Some("3а".into());
        query.group = Some("pupil".into());
        let f = query.filter(7, today()).unwrap();
        assert_eq!(f.school_code, 7);
        assert_eq!(f.from, "2026-11-01");
        assert_eq!(f.class.unwrap().to_string(), "3А");
        assert_eq!(query.group().unwrap(), Group::Pupil);
    }

    proptest::proptest! {
        #[test]
        fn any_query_gives_a_bounded_range_or_an_error(
            from in proptest::option::of("\\PC{0,12}|20[0-9]{2}-[01][0-9]-[0-3][0-9]"),
            to in proptest::option::of("\\PC{0,12}|20[0-9]{2}-[01][0-9]-[0-3][0-9]"),
            class in proptest::option::of("\\PC{0,6}"),
        ) {
            let query = ReviewQuery { from, to, class, ..ReviewQuery::default() };
            if let Ok(f) = query.filter(1, today()) {
                let a = NaiveDate::parse_from_str(&f.from, "%Y-%m-%d").unwrap();
                let b = NaiveDate::parse_from_str(&f.to, "%Y-%m-%d").unwrap();
                proptest::prop_assert!(a <= b && (b - a).num_days() < MAX_DAYS);
            }
        }
    }
}
