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

/// What the roster says about a pupil's family, as far as eligibility goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub receives_asp: bool,
    /// `asp_entitled`, where NOBD supplies it.
    pub asp_entitled: Option<bool>,
    pub per_capita_income_kzt: Option<i64>,
    pub orphan: bool,
    /// `in_family`: false for a child in a residential institution.
    pub in_family: bool,
}

impl Family {
    /// The order says "entitled to АСП": a family that receives it is, and so is one NOBD marks
    /// entitled.
    pub fn asp(&self) -> bool {
        self.receives_asp || self.asp_entitled == Some(true)
    }

    /// The `orphan` category is for orphans living in a family; children in residential
    /// institutions are fed by the institution, not by this programme.
    pub fn orphan_in_family(&self) -> bool {
        self.orphan && self.in_family
    }

    pub fn category(&self, subsistence_minimum_kzt: i64) -> Category {
        categorize(
            self.asp(),
            self.per_capita_income_kzt,
            self.orphan_in_family(),
            subsistence_minimum_kzt,
        )
    }
}

/// `asp` if the family is entitled to targeted social assistance; else `low_income` if the
/// per-capita income is known and below the (monthly) subsistence minimum; else `orphan` (an
/// orphan living in a family); else not eligible.
pub fn categorize(
    asp: bool,
    per_capita_income_kzt: Option<i64>,
    orphan_in_family: bool,
    subsistence_minimum_kzt: i64,
) -> Category {
    if asp {
        Category::Asp
    } else if per_capita_income_kzt.is_some_and(|i| i < subsistence_minimum_kzt) {
        Category::LowIncome
    } else if orphan_in_family {
        Category::Orphan
    } else {
        Category::NotEligible
    }
}

/// The parent or representative to ask, the first with a phone: mother, then father, then other
/// legal representative — but for an orphan the guardian first, since a listed mother or father
/// of an orphan is not the one who speaks for the child. Returns (phone, name).
pub fn contact<'a>(
    mother: (Option<&'a str>, Option<&'a str>),
    father: (Option<&'a str>, Option<&'a str>),
    guardian: (Option<&'a str>, Option<&'a str>),
    orphan: bool,
) -> Option<(&'a str, Option<&'a str>)> {
    let order = if orphan {
        [guardian, mother, father]
    } else {
        [mother, father, guardian]
    };
    order
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
        assert_eq!(contact(m, f, g, false), Some(("+77010000001", Some("M"))));
        assert_eq!(
            contact(none, f, g, false),
            Some(("+77010000002", Some("F")))
        );
        assert_eq!(
            contact(none, none, g, false),
            Some(("+77010000003", Some("G")))
        );
        assert_eq!(contact(none, none, none, false), None);
    }

    #[test]
    fn an_orphans_guardian_comes_first() {
        let m = (Some("+77010000001"), Some("M"));
        let f = (Some("+77010000002"), Some("F"));
        let g = (Some("+77010000003"), Some("G"));
        let none = (None, Some("X"));
        assert_eq!(contact(m, f, g, true), Some(("+77010000003", Some("G"))));
        assert_eq!(contact(m, f, none, true), Some(("+77010000001", Some("M"))));
        assert_eq!(
            contact(none, f, none, true),
            Some(("+77010000002", Some("F")))
        );
        assert_eq!(contact(none, none, none, true), None);
    }

    #[test]
    fn entitled_to_asp_and_orphans_in_a_family() {
        let min = 50_851;
        let base = Family {
            receives_asp: false,
            asp_entitled: None,
            per_capita_income_kzt: None,
            orphan: false,
            in_family: true,
        };
        assert_eq!(base.category(min), Category::NotEligible);
        let entitled = Family {
            asp_entitled: Some(true),
            ..base
        };
        assert_eq!(entitled.category(min), Category::Asp);
        let not_entitled = Family {
            asp_entitled: Some(false),
            receives_asp: true,
            ..base
        };
        assert_eq!(not_entitled.category(min), Category::Asp);
        let orphan = Family {
            orphan: true,
            ..base
        };
        assert_eq!(orphan.category(min), Category::Orphan);
        let institution = Family {
            in_family: false,
            ..orphan
        };
        assert_eq!(institution.category(min), Category::NotEligible);
        // Other categories do not ask where the child lives.
        let poor = Family {
            per_capita_income_kzt: Some(min - 1),
            ..institution
        };
        assert_eq!(poor.category(min), Category::LowIncome);
    }
}
