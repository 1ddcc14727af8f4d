//! Checking one roster row (DESIGN §7.1) and turning it into a pupil: every problem of the row
//! is reported, each with its column.

use super::fields::{Column, RawRow, RowError};
use crate::config::Lang;
use crate::eligibility::{contact, Family};
use crate::store::roster::NewPupil;
use shared::ids::{Bin, Iin};
use shared::phone::Phone;

/// What a valid row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRow {
    pub line: u64,
    pub school_bin: String,
    pub school_name: String,
    /// `school_code` is 0 until the school is stored.
    pub pupil: NewPupil,
}

pub struct Validator {
    /// The monthly minimum in force on the import's date (`EligibilitySettings::minimum_on`).
    pub subsistence_minimum_kzt: i64,
    pub default_lang: Lang,
}

const NAME_MAX: usize = 100;
const PARENT_NAME_MAX: usize = 200;
const SCHOOL_NAME_MAX: usize = 300;
const CLASS_LETTER_MAX: usize = 8;
const CARD_MAX: usize = 32;
const INCOME_MAX: i64 = 1_000_000_000_000;

/// Whitespace runs (line breaks included) become one space; other control characters refuse.
pub fn clean_text(value: &str, max: usize) -> Result<Option<String>, String> {
    if value.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err("contains control characters".into());
    }
    let text = value.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > max {
        return Err(format!("longer than {max} characters"));
    }
    Ok(Some(text))
}

pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_lowercase().as_str() {
        "true" | "1" | "да" | "иә" => Ok(true),
        "false" | "0" | "нет" | "жоқ" => Ok(false),
        "" => Err("required: true/false, 1/0, да/нет or иә/жоқ".into()),
        other => Err(format!(
            "{other:?} is not true/false, 1/0, да/нет or иә/жоқ"
        )),
    }
}

/// An optional column: empty means "not given".
pub fn parse_optional_bool(value: &str) -> Result<Option<bool>, String> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        parse_bool(value).map(Some)
    }
}

pub fn parse_grade(value: &str) -> Result<i64, String> {
    if value.is_empty() {
        return Err("required: a grade from 0 to 11".into());
    }
    match value.parse::<i64>() {
        Ok(g) if (0..=11).contains(&g) && value.bytes().all(|b| b.is_ascii_digit()) => Ok(g),
        _ => Err(format!("{value:?} is not a grade from 0 to 11")),
    }
}

/// Tenge per person, a whole number; spaces as thousands separators are fine (`50 851`).
pub fn parse_income(value: &str) -> Result<Option<i64>, String> {
    let digits: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}'))
        .collect();
    if digits.is_empty() {
        return Ok(None);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{value:?} is not a whole number of tenge (0 or more)"
        ));
    }
    match digits.parse::<i64>() {
        Ok(n) if n <= INCOME_MAX => Ok(Some(n)),
        _ => Err(format!("{value:?} is too large")),
    }
}

fn parse_card(value: &str) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > CARD_MAX
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "card numbers are up to {CARD_MAX} letters, digits and dashes"
        ));
    }
    Ok(Some(value.to_owned()))
}

/// Collects a row's problems while its columns are read.
struct Problems {
    line: u64,
    list: Vec<RowError>,
}

impl Problems {
    fn take<T>(&mut self, column: Column, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(x) => Some(x),
            Err(reason) => {
                self.list.push(RowError::at(self.line, column, reason));
                None
            }
        }
    }
}

fn required_text(value: &str, max: usize) -> Result<String, String> {
    clean_text(value, max)?.ok_or_else(|| "required".to_owned())
}

fn optional_phone(value: &str) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    Phone::parse(value)
        .map(|p| Some(p.as_str().to_owned()))
        .map_err(|e| format!("{value:?}: {e}"))
}

fn parse_lang(value: &str, default: Lang) -> Result<Lang, String> {
    match value.to_ascii_lowercase().as_str() {
        "" => Ok(default),
        "kk" => Ok(Lang::Kk),
        "ru" => Ok(Lang::Ru),
        _ => Err(format!("{value:?} is not kk or ru")),
    }
}

impl Validator {
    /// The row as a pupil, or every problem it has. `raw.errors` (from reading) count too.
    pub fn validate(&self, raw: &RawRow) -> Result<ValidRow, Vec<RowError>> {
        if raw.errors.iter().any(|e| e.column.is_none()) {
            // The row as a whole could not be read (field count, not an object).
            return Err(raw.errors.clone());
        }
        let mut p = Problems {
            line: raw.line,
            list: raw.errors.clone(),
        };
        let v = |c: Column| raw.get(c);
        use Column as C;

        let bin = p.take(
            C::SchoolBin,
            Bin::parse(v(C::SchoolBin))
                .map_err(|e| id_reason("BIN", v(C::SchoolBin), &e.to_string())),
        );
        let iin = p.take(
            C::StudentIin,
            Iin::parse(v(C::StudentIin))
                .map_err(|e| id_reason("IIN", v(C::StudentIin), &e.to_string())),
        );
        let school_name = p.take(
            C::SchoolName,
            required_text(v(C::SchoolName), SCHOOL_NAME_MAX),
        );
        let last_name = p.take(C::LastName, required_text(v(C::LastName), NAME_MAX));
        let first_name = p.take(C::FirstName, required_text(v(C::FirstName), NAME_MAX));
        let middle_name = p.take(C::MiddleName, clean_text(v(C::MiddleName), NAME_MAX));
        let grade = p.take(C::Grade, parse_grade(v(C::Grade)));
        let class_letter = p.take(
            C::ClassLetter,
            clean_text(v(C::ClassLetter), CLASS_LETTER_MAX),
        );
        let receives_asp = p.take(C::ReceivesAsp, parse_bool(v(C::ReceivesAsp)));
        let income = p.take(
            C::PerCapitaIncomeKzt,
            parse_income(v(C::PerCapitaIncomeKzt)),
        );
        let orphan = p.take(C::Orphan, parse_bool(v(C::Orphan)));
        let mother_name = p.take(C::MotherName, clean_text(v(C::MotherName), PARENT_NAME_MAX));
        let mother_phone = p.take(C::MotherPhone, optional_phone(v(C::MotherPhone)));
        let father_name = p.take(C::FatherName, clean_text(v(C::FatherName), PARENT_NAME_MAX));
        let father_phone = p.take(C::FatherPhone, optional_phone(v(C::FatherPhone)));
        let guardian_name = p.take(
            C::GuardianName,
            clean_text(v(C::GuardianName), PARENT_NAME_MAX),
        );
        let guardian_phone = p.take(C::GuardianPhone, optional_phone(v(C::GuardianPhone)));
        let card_number = p.take(C::CardNumber, parse_card(v(C::CardNumber)));
        let lang = p.take(C::Lang, parse_lang(v(C::Lang), self.default_lang));
        let asp_entitled = p.take(C::AspEntitled, parse_optional_bool(v(C::AspEntitled)));
        let in_family = p.take(C::InFamily, parse_optional_bool(v(C::InFamily)));

        let (
            Some(bin),
            Some(iin),
            Some(school_name),
            Some(last_name),
            Some(first_name),
            Some(middle_name),
            Some(grade),
            Some(class_letter),
            Some(receives_asp),
            Some(income),
            Some(orphan),
            Some(mother_name),
            Some(mother_phone),
            Some(father_name),
            Some(father_phone),
            Some(guardian_name),
            Some(guardian_phone),
            Some(card_number),
            Some(lang),
            Some(asp_entitled),
            Some(in_family),
        ) = (
            bin,
            iin,
            school_name,
            last_name,
            first_name,
            middle_name,
            grade,
            class_letter,
            receives_asp,
            income,
            orphan,
            mother_name,
            mother_phone,
            father_name,
            father_phone,
            guardian_name,
            guardian_phone,
            card_number,
            lang,
            asp_entitled,
            in_family,
        )
        else {
            return Err(p.list);
        };
        if !p.list.is_empty() {
            return Err(p.list);
        }
        let family = Family {
            receives_asp,
            asp_entitled,
            per_capita_income_kzt: income,
            orphan,
            in_family: in_family.unwrap_or(true),
        };
        let category = family.category(self.subsistence_minimum_kzt);
        let (contact_phone, contact_name) = match contact(
            (mother_phone.as_deref(), mother_name.as_deref()),
            (father_phone.as_deref(), father_name.as_deref()),
            (guardian_phone.as_deref(), guardian_name.as_deref()),
            orphan,
        ) {
            Some((phone, name)) => (Some(phone.to_owned()), name.map(str::to_owned)),
            None => (None, None),
        };
        Ok(ValidRow {
            line: raw.line,
            school_bin: bin.to_string(),
            school_name,
            pupil: NewPupil {
                iin: iin.to_string(),
                school_code: 0,
                last_name,
                first_name,
                middle_name,
                grade,
                class_letter: class_letter.unwrap_or_default(),
                receives_asp,
                per_capita_income_kzt: income,
                orphan,
                mother_name,
                mother_phone,
                father_name,
                father_phone,
                guardian_name,
                guardian_phone,
                card_number,
                lang: lang.as_str().to_owned(),
                category,
                contact_phone,
                contact_name,
            },
        })
    }
}

fn id_reason(what: &str, value: &str, why: &str) -> String {
    if value.is_empty() {
        format!("required: the 12-digit {what}")
    } else {
        format!("{value:?} is not a valid {what}: {why}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_in_three_languages() {
        for t in ["true", "TRUE", "1", "да", "Да", "ДА", "иә", "Иә"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "False", "0", "нет", "НЕТ", "жоқ", "ЖОҚ"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["", "yes", "2", "да!", "t"] {
            assert!(parse_bool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grades_and_incomes() {
        assert_eq!(parse_grade("0"), Ok(0));
        assert_eq!(parse_grade("11"), Ok(11));
        for bad in ["12", "-1", "", "3.0", "+3", "три"] {
            assert!(parse_grade(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_income(""), Ok(None));
        assert_eq!(parse_income("50 851"), Ok(Some(50_851)));
        assert_eq!(parse_income("0"), Ok(Some(0)));
        for bad in ["-1", "12.5", "abc", "99999999999999999999"] {
            assert!(parse_income(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_is_tidied() {
        assert_eq!(
            clean_text("  Сапарова \r\n Динара ", 50),
            Ok(Some("Сапарова Динара".into()))
        );
        assert_eq!(clean_text("   ", 50), Ok(None));
        assert!(clean_text("a\u{0}b", 50).is_err());
        assert!(clean_text("abcdef", 5).is_err());
    }
}
