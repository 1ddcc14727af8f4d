//! `Phone` accepts exactly the written forms documented in `shared::phone`: `+7 7XX…`, `8 7XX…`,
//! `7 7XX…` and the bare ten digits `7XX…`, with spaces, dashes, dots, brackets (and no-break
//! spaces) anywhere, for the mobile ranges 70x, 74x–77x, and always normalises to `+77XXXXXXXXX`.

use proptest::prelude::*;
use shared::Phone;

const SEPARATORS: [char; 6] = [' ', '-', '.', '(', ')', '\u{a0}'];

/// Written independently of the parser, from the module documentation.
fn reference(text: &str) -> Option<String> {
    let t = text.trim();
    let (plus, rest) = match t.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, t),
    };
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || SEPARATORS.contains(&c))
    {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let national = match (plus, digits.len(), digits.chars().next()) {
        (true, 11, Some('7')) => &digits[1..],
        (false, 11, Some('7' | '8')) => &digits[1..],
        (false, 10, _) => &digits[..],
        _ => return None,
    };
    let mobile = ["70", "74", "75", "76", "77"]
        .iter()
        .any(|p| national.starts_with(p));
    mobile.then(|| format!("+7{national}"))
}

/// A mobile number's ten national digits.
fn national() -> impl Strategy<Value = String> {
    ("7[04567]", "[0-9]{8}").prop_map(|(a, b)| format!("{a}{b}"))
}

/// How people write it: one of the four prefixes, separators sprinkled between the digits.
fn written(national: String) -> impl Strategy<Value = (String, String)> {
    let prefix = prop::sample::select(vec!["+7", "8", "7", ""]);
    let gaps = prop::collection::vec(
        prop::collection::vec(prop::sample::select(SEPARATORS.to_vec()), 0..3),
        11,
    );
    let pad = prop::sample::select(vec!["", " ", "  ", "\t"]);
    (prefix, gaps, pad).prop_map(move |(prefix, gaps, pad)| {
        let mut text = String::from(pad);
        text.push_str(prefix);
        for (i, d) in national.chars().enumerate() {
            text.extend(&gaps[i]);
            text.push(d);
        }
        text.extend(&gaps[10]);
        text.push_str(pad);
        (text, national.clone())
    })
}

#[test]
fn reference_accepts_the_documented_examples() {
    for form in [
        "+7 701 123 45 67",
        "8 (701) 123-45-67",
        "7 701 123 45 67",
        "701.123.45.67",
    ] {
        assert_eq!(reference(form).as_deref(), Some("+77011234567"), "{form}");
    }
}

proptest! {
    #[test]
    fn every_written_form_normalises(
        (text, national) in national().prop_flat_map(written)
    ) {
        let expected = format!("+7{national}");
        prop_assert_eq!(
            Phone::parse(&text).ok().map(|p| p.to_string()),
            Some(expected),
            "{:?}", text
        );
        prop_assert_eq!(reference(&text), Some(format!("+7{national}")));
    }

    #[test]
    fn other_ranges_are_refused(
        range in "7[12389]|[0-689][0-9]",
        rest in "[0-9]{8}",
        prefix in prop::sample::select(vec!["+7", "8", ""]),
    ) {
        let text = format!("{prefix}{range}{rest}");
        prop_assert!(Phone::parse(&text).is_err(), "{}", text);
    }

    #[test]
    fn digit_runs_agree_with_reference(text in "\\+?[0-9]{8,13}") {
        prop_assert_eq!(Phone::parse(&text).ok().map(|p| p.to_string()), reference(&text));
    }

    #[test]
    fn near_numbers_agree_with_reference(text in "[ +]{0,2}[0-9 ()\\-.+a\u{a0}\u{2013}]{8,20}") {
        prop_assert_eq!(Phone::parse(&text).ok().map(|p| p.to_string()), reference(&text));
    }

    #[test]
    fn arbitrary_text_agrees_with_reference(text in any::<String>()) {
        prop_assert_eq!(Phone::parse(&text).ok().map(|p| p.to_string()), reference(&text));
    }
}
