//! Who gets free meals (DESIGN §1.2) and which phone is asked (§1.3).

/// The first category that applies, in this order; otherwise `NotEligible`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Asp,
    LowIncome,
    Orphan,
    NotEligible,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Asp => "asp",
            Category::LowIncome => "low_income",
            Category::Orphan => "orphan",
            Category::NotEligible => "not_eligible",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        [
            Category::Asp,
            Category::LowIncome,
            Category::Orphan,
            Category::NotEligible,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    pub fn is_eligible(self) -> bool {
        self != Category::NotEligible
    }
}

/// `asp` if the family receives targeted social assistance; else `low_income` if the per-capita
/// income is known and below the subsistence minimum; else `orphan`; else not eligible.
pub fn categorize(
    receives_asp: bool,
    per_capita_income_kzt: Option<i64>,
    orphan: bool,
    subsistence_minimum_kzt: i64,
) -> Category {
    if receives_asp {
        Category::Asp
    } else if per_capita_income_kzt.is_some_and(|i| i < subsistence_minimum_kzt) {
        Category::LowIncome
    } else if orphan {
        Category::Orphan
    } else {
        Category::NotEligible
    }
}

/// The parent or representative to ask: mother, then father, then other legal representative —
/// the first with a phone. Returns (phone, name).
pub fn contact<'a>(
    mother: (Option<&'a str>, Option<&'a str>),
    father: (Option<&'a str>, Option<&'a str>),
    guardian: (Option<&'a str>, Option<&'a str>),
) -> Option<(&'a str, Option<&'a str>)> {
    [mother, father, guardian]
        .into_iter()
        .find_map(|(phone, name)| phone.map(|p| (p, name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_category_that_applies() {
        let min = 50_851;
        assert_eq!(categorize(true, Some(10), true, min), Category::Asp);
        assert_eq!(
            categorize(false, Some(50_850), true, min),
            Category::LowIncome
        );
        assert_eq!(categorize(false, Some(50_851), true, min), Category::Orphan);
        assert_eq!(categorize(false, None, true, min), Category::Orphan);
        assert_eq!(
            categorize(false, Some(60_000), false, min),
            Category::NotEligible
        );
        assert_eq!(categorize(false, None, false, min), Category::NotEligible);
        for c in [
            Category::Asp,
            Category::LowIncome,
            Category::Orphan,
            Category::NotEligible,
        ] {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn mother_then_father_then_guardian() {
        let m = (Some("+77010000001"), Some("M"));
        let f = (Some("+77010000002"), Some("F"));
        let g = (Some("+77010000003"), Some("G"));
        let none = (None, Some("X"));
        assert_eq!(contact(m, f, g), Some(("+77010000001", Some("M"))));
        assert_eq!(contact(none, f, g), Some(("+77010000002", Some("F"))));
        assert_eq!(contact(none, none, g), Some(("+77010000003", Some("G"))));
        assert_eq!(contact(none, none, none), None);
    }
}
