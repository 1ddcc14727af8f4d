//! `Iin` and `Bin` accept exactly the numbers with a valid check digit (and, for an IIN, digit 7
//! in 1–6), compared against a reference written here from DESIGN §7.1, not from the crate.

use proptest::prelude::*;
use shared::{Bin, Iin};

/// DESIGN §7.1, read literally: weights 1..11 mod 11; if 10, weights 3..11,1,2 mod 11; if 10
/// again, no valid number has these 11 digits.
fn reference_check_digit(first11: &str) -> Option<u32> {
    let digits: Vec<u32> = first11.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let first = (0..11).map(|i| digits[i] * (i as u32 + 1)).sum::<u32>() % 11;
    if first != 10 {
        return Some(first);
    }
    let second = (0..11)
        .map(|i| digits[i] * ((i as u32 + 2) % 11 + 1))
        .sum::<u32>()
        % 11;
    (second != 10).then_some(second)
}

/// What the parsers accept, after trimming surrounding whitespace (CSV cells often carry it).
fn reference_bin(text: &str) -> Option<String> {
    let t = text.trim();
    if t.len() != 12 || !t.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let check = reference_check_digit(&t[..11])?;
    (t[11..].parse::<u32>().ok()? == check).then(|| t.to_owned())
}

fn reference_iin(text: &str) -> Option<String> {
    let t = reference_bin(text)?;
    matches!(t.as_bytes()[6], b'1'..=b'6').then_some(t)
}

#[test]
fn reference_second_weights_are_3_to_11_then_1_2() {
    let weights: Vec<u32> = (0..11u32).map(|i| (i + 2) % 11 + 1).collect();
    assert_eq!(weights, [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2]);
}

/// Eleven digits completed with the reference check digit, when one exists.
fn valid_number() -> impl Strategy<Value = String> {
    "[0-9]{11}".prop_filter_map("both weightings give 10", |first| {
        reference_check_digit(&first).map(|c| format!("{first}{c}"))
    })
}

proptest! {
    #[test]
    fn valid_numbers_are_accepted(n in valid_number()) {
        prop_assert_eq!(Bin::parse(&n).map(|b| b.to_string()).ok(), Some(n.clone()));
        let century_ok = matches!(n.as_bytes()[6], b'1'..=b'6');
        prop_assert_eq!(Iin::parse(&n).is_ok(), century_ok);
    }

    #[test]
    fn any_wrong_last_digit_is_refused(n in valid_number(), delta in 1u8..10) {
        let mut bytes = n.into_bytes();
        bytes[11] = b'0' + (bytes[11] - b'0' + delta) % 10;
        let wrong = String::from_utf8(bytes).unwrap();
        prop_assert!(Bin::parse(&wrong).is_err());
        prop_assert!(Iin::parse(&wrong).is_err());
    }

    #[test]
    fn twelve_digits_agree_with_reference(n in "[0-9]{12}") {
        prop_assert_eq!(Bin::parse(&n).ok().map(|b| b.to_string()), reference_bin(&n));
        prop_assert_eq!(Iin::parse(&n).ok().map(|i| i.to_string()), reference_iin(&n));
    }

    #[test]
    fn near_numbers_agree_with_reference(text in "[ \t]?[0-9a٣ -]{10,14}[ \n]?") {
        prop_assert_eq!(Bin::parse(&text).ok().map(|b| b.to_string()), reference_bin(&text));
        prop_assert_eq!(Iin::parse(&text).ok().map(|i| i.to_string()), reference_iin(&text));
    }

    #[test]
    fn arbitrary_text_agrees_with_reference(text in any::<String>()) {
        prop_assert_eq!(Bin::parse(&text).ok().map(|b| b.to_string()), reference_bin(&text));
        prop_assert_eq!(Iin::parse(&text).ok().map(|i| i.to_string()), reference_iin(&text));
    }
}
