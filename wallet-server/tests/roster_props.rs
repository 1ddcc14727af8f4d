//! Property tests of the roster reader and row validation: outside input never panics, and
//! every validly written row is read back as what it says.

#[path = "core_support/mod.rs"]
mod common;

use proptest::prelude::*;
use shared::ids::with_check_digit;
use wallet_server::config::Lang;
use wallet_server::eligibility::{Category, Family};
use wallet_server::roster::{prepare, read_rows, Column, Format, Validator};

fn validator() -> Validator {
    Validator {
        subsistence_minimum_kzt: 50_851,
        default_lang: Lang::Ru,
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(fields).unwrap();
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

/// The required columns and the optional ones.
fn columns() -> Vec<Column> {
    Column::ALL.into_iter().chain(Column::OPTIONAL).collect()
}

fn header() -> String {
    columns()
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(",")
        + "\n"
}

/// An optional boolean column: left empty, or written in one of its forms.
fn optional_boolean() -> impl Strategy<Value = (String, Option<bool>)> {
    prop_oneof![
        Just((String::new(), None)),
        boolean().prop_map(|(s, b)| (s, Some(b))),
    ]
}

fn iin() -> impl Strategy<Value = String> {
    (0u32..100_000_000, 1u8..=6, 0u32..10_000).prop_filter_map("check digit", |(d, c, s)| {
        with_check_digit(&format!("{:06}{c}{s:04}", d % 1_000_000))
    })
}

fn bin() -> impl Strategy<Value = String> {
    (0u64..100_000_000_000)
        .prop_filter_map("check digit", |n| with_check_digit(&format!("{n:011}")))
}

/// A Kazakhstan mobile number in one of its written forms, and its normal form.
fn phone() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![Just("70"), Just("74"), Just("75"), Just("76"), Just("77")],
        0u32..100_000_000,
        0usize..5,
    )
        .prop_map(|(op, rest, form)| {
            let national = format!("{op}{rest:08}");
            let written = match form {
                0 => format!("+7{national}"),
                1 => format!("8{national}"),
                2 => format!(
                    "+7 ({}) {}-{}-{}",
                    &national[..3],
                    &national[3..6],
                    &national[6..8],
                    &national[8..]
                ),
                3 => format!(
                    "8 {} {} {} {}",
                    &national[..3],
                    &national[3..6],
                    &national[6..8],
                    &national[8..]
                ),
                _ => national.clone(),
            };
            (written, format!("+7{national}"))
        })
}

fn boolean() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        Just(("true", true)),
        Just(("1", true)),
        Just(("Да", true)),
        Just(("иә", true)),
        Just(("ИӘ", true)),
        Just(("FALSE", false)),
        Just(("0", false)),
        Just(("нет", false)),
        Just(("жоқ", false)),
        Just(("Жоқ", false)),
    ]
    .prop_map(|(s, b)| (s.to_owned(), b))
}

fn name() -> impl Strategy<Value = String> {
    "[А-Яа-яӘәҒғҚқҢңӨөҰұҮүҺһІі\"',; -]{0,20}[А-Яа-яӘә]"
}

prop_compose! {
    fn valid_row()(
        school_bin in bin(),
        school_name in name(),
        iin in iin(),
        last in name(),
        first in name(),
        grade in 0u8..=11,
        asp in boolean(),
        income in proptest::option::of(0i64..200_000),
        orphan in boolean(),
        mother in proptest::option::of(phone()),
        father in proptest::option::of(phone()),
        guardian in proptest::option::of(phone()),
        lang in prop_oneof![Just(""), Just("kk"), Just("RU")],
        asp_entitled in optional_boolean(),
        in_family in optional_boolean(),
    ) -> (Vec<String>, Option<i64>, Option<String>, Family) {
        let mut f = vec![String::new(); Column::ALL.len() + Column::OPTIONAL.len()];
        let mut set = |c: Column, v: String| f[c.index()] = v;
        set(Column::SchoolBin, school_bin);
        set(Column::SchoolName, school_name);
        set(Column::StudentIin, iin);
        set(Column::LastName, last);
        set(Column::FirstName, first);
        set(Column::Grade, grade.to_string());
        set(Column::ClassLetter, "Ә".into());
        set(Column::ReceivesAsp, asp.0);
        set(Column::PerCapitaIncomeKzt, income.map(|i| i.to_string()).unwrap_or_default());
        set(Column::Orphan, orphan.0);
        set(Column::MotherPhone, mother.as_ref().map(|p| p.0.clone()).unwrap_or_default());
        set(Column::FatherPhone, father.as_ref().map(|p| p.0.clone()).unwrap_or_default());
        set(Column::GuardianPhone, guardian.as_ref().map(|p| p.0.clone()).unwrap_or_default());
        set(Column::Lang, lang.into());
        set(Column::AspEntitled, asp_entitled.0);
        set(Column::InFamily, in_family.0);
        let contact = if orphan.1 {
            guardian.or(mother).or(father)
        } else {
            mother.or(father).or(guardian)
        }
        .map(|p| p.1);
        let family = Family {
            receives_asp: asp.1,
            asp_entitled: asp_entitled.1,
            per_capita_income_kzt: income,
            orphan: orphan.1,
            in_family: in_family.1.unwrap_or(true),
        };
        (f, income, contact, family)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_fields_never_panic(fields in proptest::collection::vec("\\PC{0,16}", 21)) {
        let text = header() + &csv_line(&fields);
        let rows = read_rows(text.as_bytes(), Format::Csv).unwrap();
        prop_assert!(rows.len() <= 1);
        let prepared = prepare(&rows, &validator());
        prop_assert_eq!(prepared.pupils.len() + prepared.rejected_rows, rows.len());
        for e in &prepared.errors {
            prop_assert_eq!(e.line, 2);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = read_rows(&bytes, Format::Csv).map(|rows| prepare(&rows, &validator()));
        let _ = read_rows(&bytes, Format::Json).map(|rows| prepare(&rows, &validator()));
        let mut with_header = header().into_bytes();
        with_header.extend_from_slice(&bytes);
        if let Ok(rows) = read_rows(&with_header, Format::Csv) {
            let _ = prepare(&rows, &validator());
        }
    }

    #[test]
    fn valid_rows_are_read_as_written(
        rows in proptest::collection::vec(valid_row(), 1..6),
        semicolon in any::<bool>(),
        crlf in any::<bool>(),
        bom in any::<bool>(),
    ) {
        // Distinct IINs: a repeat is (rightly) an error.
        let mut seen = std::collections::HashSet::new();
        let rows: Vec<_> = rows.into_iter().filter(|r| seen.insert(r.0[Column::StudentIin.index()].clone())).collect();
        let mut text = String::new();
        if bom { text.push('\u{feff}'); }
        let delimiter = if semicolon { b';' } else { b',' };
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
            .from_writer(Vec::new());
        w.write_record(columns().iter().map(|c| c.name())).unwrap();
        for r in &rows {
            w.write_record(&r.0).unwrap();
        }
        text.push_str(&String::from_utf8(w.into_inner().unwrap()).unwrap());
        let raw = read_rows(text.as_bytes(), Format::Csv).unwrap();
        let prepared = prepare(&raw, &validator());
        prop_assert_eq!(&prepared.errors, &vec![]);
        prop_assert_eq!(prepared.pupils.len(), rows.len());
        for (got, (fields, income, contact, family)) in prepared.pupils.iter().zip(&rows) {
            let p = &got.pupil;
            prop_assert_eq!(&p.iin, &fields[Column::StudentIin.index()]);
            prop_assert_eq!(p.grade.to_string(), fields[Column::Grade.index()].clone());
            prop_assert_eq!(p.per_capita_income_kzt, *income);
            prop_assert_eq!(&p.contact_phone, contact);
            prop_assert_eq!(p.receives_asp, family.receives_asp);
            prop_assert_eq!(p.orphan, family.orphan);
            let collapsed = fields[Column::LastName.index()].split_whitespace().collect::<Vec<_>>().join(" ");
            prop_assert_eq!(&p.last_name, &collapsed);
            let want_lang = match fields[Column::Lang.index()].as_str() { "kk" => "kk", _ => "ru" };
            prop_assert_eq!(p.lang.as_str(), want_lang);
            // The rule as the order words it, written out again.
            let asp = family.receives_asp || family.asp_entitled == Some(true);
            let expect = if asp {
                Category::Asp
            } else if income.is_some_and(|i| i < 50_851) {
                Category::LowIncome
            } else if family.orphan && family.in_family {
                Category::Orphan
            } else {
                Category::NotEligible
            };
            prop_assert_eq!(p.category, expect);
            prop_assert_eq!(p.category, family.category(50_851));
            prop_assert!(p.category != Category::Orphan || family.in_family);
        }
        // The JSON form of the same rows reads the same.
        let items: Vec<serde_json::Value> = rows.iter().map(|r| {
            serde_json::Value::Object(columns().iter().map(|c| (c.name().to_owned(), r.0[c.index()].clone().into())).collect())
        }).collect();
        let json = serde_json::to_string_pretty(&items).unwrap();
        let from_json = prepare(&read_rows(json.as_bytes(), Format::Json).unwrap(), &validator());
        prop_assert_eq!(&from_json.errors, &vec![]);
        let a: Vec<_> = from_json.pupils.iter().map(|p| &p.pupil).collect();
        let b: Vec<_> = prepared.pupils.iter().map(|p| &p.pupil).collect();
        prop_assert_eq!(a, b);
    }
}
