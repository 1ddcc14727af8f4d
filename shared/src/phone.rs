//! Kazakhstan mobile numbers, normalised to `+77XXXXXXXXX`.
//!
//! Accepted written forms: `+7 7XX XXX XX XX`, `8 7XX …`, `7 7XX …` and the bare ten digits
//! `7XX…`, with spaces, dashes, dots and brackets anywhere.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("not a phone number: only digits, spaces, dashes, dots, brackets and a leading + are allowed")]
    Characters,
    #[error("not a Kazakhstan mobile number: expected +7 7XX XXX XX XX or 8 7XX XXX XX XX")]
    NotKzMobile,
}

impl Phone {
    pub fn parse(text: &str) -> Result<Phone, PhoneError> {
        let text = text.trim();
        let (plus, rest) = match text.strip_prefix('+') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let mut digits = String::with_capacity(12);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '(' | ')' | '.' | '\u{a0}' => {}
                _ => return Err(PhoneError::Characters),
            }
        }
        let national = match (plus, digits.len()) {
            (true, 11) if digits.starts_with('7') => &digits[1..],
            (false, 11) if digits.starts_with('8') || digits.starts_with('7') => &digits[1..],
            (false, 10) => &digits[..],
            _ => return Err(PhoneError::NotKzMobile),
        };
        // Mobile operators use 70x, 74x, 75x, 76x and 77x; 71x-72x are landline area codes.
        let b = national.as_bytes();
        if b[0] != b'7' || !matches!(b[1], b'0' | b'4' | b'5' | b'6' | b'7') {
            return Err(PhoneError::NotKzMobile);
        }
        Ok(Phone(format!("+7{national}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs: `+7701*****67`.
    pub fn masked(&self) -> String {
        format!("{}*****{}", &self.0[..5], &self.0[10..])
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

impl FromStr for Phone {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phone::parse(s)
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Phone::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_forms_normalise() {
        for form in [
            "+77011234567",
            "87011234567",
            "8 701 123 45 67",
            "+7 (701) 123-45-67",
            "8-701-123-45-67",
            "77011234567",
            "7011234567",
            " +7 701 123 4567 ",
        ] {
            assert_eq!(
                Phone::parse(form).unwrap().as_str(),
                "+77011234567",
                "{form}"
            );
        }
    }

    #[test]
    fn other_numbers_are_refused() {
        for bad in [
            "",
            "+7 727 123 45 67",
            "8 727 123 45 67",
            "+49 170 1234567",
            "+770112345678",
            "870112345",
            "+7 701 123 45 6x",
            "++77011234567",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masked() {
        assert_eq!(
            Phone::parse("+77011234567").unwrap().masked(),
            "+7701*****67"
        );
    }
}
