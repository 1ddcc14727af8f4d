//! IIN (individual) and BIN (business) identification numbers of Kazakhstan.
//!
//! Both are 12 digits whose last digit is a check digit: the first 11 digits weighted 1..11,
//! summed, mod 11; if that is 10, weighted 3,4,5,6,7,8,9,10,11,1,2 instead; 10 again means the
//! number is invalid. Digit 7 of an IIN (century and sex) must be 1–6. The birth date in digits
//! 1–6 is not checked: real IINs exist that do not match a calendar date.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be exactly 12 digits")]
    Shape,
    #[error("check digit does not match")]
    CheckDigit,
    #[error("digit 7 must be 1-6 (century and sex)")]
    CenturyDigit,
}

const W1: [u32; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const W2: [u32; 11] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2];

fn digits(text: &str) -> Result<[u8; 12], IdError> {
    let bytes = text.as_bytes();
    if bytes.len() != 12 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(IdError::Shape);
    }
    let mut d = [0u8; 12];
    for (i, b) in bytes.iter().enumerate() {
        d[i] = b - b'0';
    }
    Ok(d)
}

/// The check digit for the first 11 digits, or `None` when both weightings give 10.
pub fn check_digit(first11: &[u8; 11]) -> Option<u8> {
    let weighted = |w: &[u32; 11]| {
        first11
            .iter()
            .zip(w)
            .map(|(d, w)| u32::from(*d) * w)
            .sum::<u32>()
            % 11
    };
    match weighted(&W1) {
        10 => match weighted(&W2) {
            10 => None,
            c => Some(c as u8),
        },
        c => Some(c as u8),
    }
}

fn validate_check(d: &[u8; 12]) -> Result<(), IdError> {
    let first: [u8; 11] = d[..11].try_into().expect("11 of 12");
    match check_digit(&first) {
        Some(c) if c == d[11] => Ok(()),
        _ => Err(IdError::CheckDigit),
    }
}

macro_rules! id_type {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(Iin, "A valid individual identification number.");
id_type!(Bin, "A valid business identification number (a school's).");

impl Iin {
    pub fn parse(text: &str) -> Result<Iin, IdError> {
        let text = text.trim();
        let d = digits(text)?;
        if !(1..=6).contains(&d[6]) {
            return Err(IdError::CenturyDigit);
        }
        validate_check(&d)?;
        Ok(Iin(text.to_owned()))
    }

    /// For logs: only the last 4 digits.
    pub fn masked(&self) -> String {
        format!("********{}", &self.0[8..])
    }
}

impl fmt::Debug for Iin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Iin({})", self.masked())
    }
}

impl Bin {
    pub fn parse(text: &str) -> Result<Bin, IdError> {
        let text = text.trim();
        let d = digits(text)?;
        validate_check(&d)?;
        Ok(Bin(text.to_owned()))
    }
}

impl fmt::Debug for Bin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bin({})", self.0)
    }
}

/// Completes 11 digits with their check digit (for fixtures and demo data).
pub fn with_check_digit(first11: &str) -> Option<String> {
    let bytes = first11.as_bytes();
    if bytes.len() != 11 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut d = [0u8; 11];
    for (i, b) in bytes.iter().enumerate() {
        d[i] = b - b'0';
    }
    check_digit(&d).map(|c| format!("{first11}{c}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_valid_numbers() {
        // First weighting: 0*1+0*2+0*3+1*4+0*5+1*6+5*7+0*8+0*9+0*10+0*11 = 45, 45 % 11 = 1.
        assert!(Iin::parse("000101500001").is_ok());
        assert_eq!(Iin::parse("000101500002"), Err(IdError::CheckDigit));
    }

    #[test]
    fn second_weighting_is_used_when_first_gives_ten() {
        // Find a prefix whose first weighting gives 10 and check the second one decides.
        let prefix = (0..100_000u32)
            .map(|n| format!("050101{}{:04}", 3, n))
            .find(|p| {
                let d: Vec<u32> = p.bytes().map(|b| u32::from(b - b'0')).collect();
                d.iter().zip(W1).map(|(a, w)| a * w).sum::<u32>() % 11 == 10
                    && d.iter().zip(W2).map(|(a, w)| a * w).sum::<u32>() % 11 != 10
            })
            .unwrap();
        let full = with_check_digit(&prefix).unwrap();
        assert!(Iin::parse(&full).is_ok());
        let d: Vec<u32> = prefix.bytes().map(|b| u32::from(b - b'0')).collect();
        let expect = d.iter().zip(W2).map(|(a, w)| a * w).sum::<u32>() % 11;
        assert_eq!(full.as_bytes()[11] - b'0', expect as u8);
    }

    #[test]
    fn shape_and_century_digit() {
        assert_eq!(Iin::parse("12345"), Err(IdError::Shape));
        assert_eq!(Iin::parse("00010150000a"), Err(IdError::Shape));
        let bad_century = with_check_digit("00010170000").unwrap();
        assert_eq!(Iin::parse(&bad_century), Err(IdError::CenturyDigit));
        // BINs have no century digit.
        assert!(Bin::parse(&bad_century).is_ok());
    }

    #[test]
    fn birth_date_is_not_checked() {
        // Month 13, day 99: not a date, still a valid IIN.
        let iin = with_check_digit("99139930000").unwrap();
        assert!(Iin::parse(&iin).is_ok());
    }

    #[test]
    fn masked_hides_all_but_last_four() {
        let iin = Iin::parse("000101500001").unwrap();
        assert_eq!(iin.masked(), "********0001");
        assert!(!format!("{iin:?}").contains("00010150"));
    }
}
