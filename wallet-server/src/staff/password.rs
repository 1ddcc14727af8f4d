//! Staff passwords: argon2id (memory-hard) in PHC strings, and the rules a new password must
//! meet.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use std::sync::OnceLock;

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 256;

/// Passwords people pick first; refused whatever the other rules say.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "qwerty",
    "qwertyuiop",
    "123456789",
    "1234567890",
    "0987654321",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "administrator",
    "letmein123",
    "welcome123",
    "йцукенгшщз",
    "qwerty12345",
    "password123",
    "mektep123",
    "school1234",
    "tamaq12345",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("the password is empty")]
    Empty,
    #[error("the password must have at least {MIN_LEN} characters")]
    TooShort,
    #[error("the password must have at most {MAX_LEN} characters")]
    TooLong,
    #[error("the password must not contain the username")]
    ContainsUsername,
    #[error(
        "the password is too simple: mix letters with digits or symbols, or upper and lower case"
    )]
    TooSimple,
    #[error("the password is on the list of commonly used passwords")]
    Common,
}

/// Refuses passwords that are empty, short, built from the username, made of few distinct
/// characters or of one kind of character only, or commonly used.
pub fn check_strength(username: &str, password: &str) -> Result<(), WeakPassword> {
    if password.is_empty() {
        return Err(WeakPassword::Empty);
    }
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(WeakPassword::TooShort);
    }
    if len > MAX_LEN {
        return Err(WeakPassword::TooLong);
    }
    let lower = password.to_lowercase();
    if !username.is_empty() && lower.contains(&username.to_lowercase()) {
        return Err(WeakPassword::ContainsUsername);
    }
    if COMMON.iter().any(|c| lower.starts_with(c)) {
        return Err(WeakPassword::Common);
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let classes = [
        password.chars().any(char::is_lowercase),
        password.chars().any(char::is_uppercase),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if distinct.len() < 5 || classes < 2 {
        return Err(WeakPassword::TooSimple);
    }
    Ok(())
}

/// argon2id with the crate's defaults (19 MiB, 2 passes, 1 lane: the OWASP baseline), random
/// 16-byte salt. Slow on purpose: call from a blocking thread.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// Constant-time verification against a stored PHC string; a malformed string never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash no password is known for: unknown usernames are checked against it, so that a wrong
/// username costs as long as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        hash(&hex::encode(secret))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_its_password() {
        let h = hash("Correct-horse-9");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("Correct-horse-9", &h));
        assert!(!verify("correct-horse-9", &h));
        assert!(!verify("Correct-horse-9", "not a hash"));
        assert_ne!(h, hash("Correct-horse-9"), "salted");
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        let cases = [
            ("", WeakPassword::Empty),
            ("Ab1!", WeakPassword::TooShort),
            ("aigerim-Secret-1", WeakPassword::ContainsUsername),
            ("Password12345", WeakPassword::Common),
            ("abcdefghijkl", WeakPassword::TooSimple),
            ("aaaaaaaaaa11", WeakPassword::TooSimple),
        ];
        for (pw, want) in cases {
            assert_eq!(check_strength("aigerim", pw), Err(want), "{pw:?}");
        }
        assert_eq!(
            check_strength("aigerim", &"Ab1".repeat(100)),
            Err(WeakPassword::TooLong)
        );
        assert_eq!(check_strength("aigerim", "Асхана-2026-көктем"), Ok(()));
        assert_eq!(check_strength("aigerim", "mint tea at 7pm"), Ok(()));
    }

    proptest::proptest! {
        #[test]
        fn strength_check_never_panics(user in "\\PC{0,10}", pw in "\\PC{0,40}") {
            let _ = check_strength(&user, &pw);
        }
    }
}
