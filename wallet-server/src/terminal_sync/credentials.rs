//! Enrollment codes and terminal bearer secrets: how they are made, normalised, hashed and
//! checked. Only SHA-256 hashes of either are ever stored.

use crate::store::terminals::TerminalRecord;
use crate::store::{Store, StoreError};
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Digits and capitals without the look-alikes 0/O, 1/I/L: staff read codes aloud and type them.
pub const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// 31^10 ≈ 8·10^14 codes; with 24 h validity and rate-limited guesses, out of reach.
pub const CODE_LEN: usize = 10;
/// Bytes of randomness in a terminal secret (sent as 43 base64url characters).
pub const SECRET_BYTES: usize = 32;
/// Longest secret text accepted in a header (anything longer is not ours).
const MAX_SECRET_LEN: usize = 128;

pub fn generate_code() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

/// Accepts what staff type: any case, spaces and dashes anywhere. `None` if it cannot be a code.
pub fn normalize_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn generate_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    shared::b64::encode(&bytes)
}

/// Compares without an early exit, so timing says nothing about how much matched.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a terminal presents: `Authorization: Bearer {terminal_id}:{secret}`, or the secret alone.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub terminal_id: Option<Uuid>,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({:?}, secret hidden)", self.terminal_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error(
        "this call needs the terminal's credential: Authorization: Bearer <terminal_id>:<secret>"
    )]
    Missing,
    #[error("the Authorization header is not `Bearer <terminal_id>:<secret>`")]
    Malformed,
    #[error("unknown terminal or wrong secret; enroll the terminal again with a new code")]
    Unknown,
    #[error("this terminal was revoked by the school; enroll it again with a new code")]
    Revoked,
}

pub fn parse_authorization(header: Option<&str>) -> Result<Credential, AuthFailure> {
    let header = header.ok_or(AuthFailure::Missing)?.trim();
    let (scheme, value) = header.split_once(' ').ok_or(AuthFailure::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::Malformed);
    }
    let value = value.trim();
    let (terminal_id, secret) = match value.split_once(':') {
        Some((id, secret)) => (
            Some(Uuid::parse_str(id).map_err(|_| AuthFailure::Malformed)?),
            secret,
        ),
        None => (None, value),
    };
    if secret.is_empty()
        || secret.len() > MAX_SECRET_LEN
        || !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AuthFailure::Malformed);
    }
    Ok(Credential {
        terminal_id,
        secret: secret.to_owned(),
    })
}

/// The terminal behind a credential, if the secret matches and it is not revoked.
pub async fn authenticate(
    store: &dyn Store,
    credential: &Credential,
) -> Result<Result<TerminalRecord, AuthFailure>, StoreError> {
    let hash = sha256_hex(credential.secret.as_bytes());
    let found = match credential.terminal_id {
        Some(id) => store.terminal(id).await?,
        None => store.terminal_by_secret_hash(&hash).await?,
    };
    Ok(match found {
        Some(t) if ct_eq(t.secret_hash.as_bytes(), hash.as_bytes()) => {
            if t.revoked_at.is_some() {
                Err(AuthFailure::Revoked)
            } else {
                Ok(t)
            }
        }
        _ => Err(AuthFailure::Unknown),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_use_the_alphabet_and_normalise() {
        for _ in 0..100 {
            let code = generate_code();
            assert_eq!(normalize_code(&code).as_deref(), Some(code.as_str()));
        }
        assert_eq!(
            normalize_code(" abcd-efgh 23 ").as_deref(),
            Some("ABCDEFGH23")
        );
        assert_eq!(normalize_code("ABCDEFGH2"), None); // short
        assert_eq!(normalize_code("ABCDEFGH20"), None); // 0 is not in the alphabet
        assert_eq!(normalize_code("ABCDEFGHIJ"), None); // nor I
        assert_eq!(normalize_code("АBCDEFGH23"), None); // Cyrillic А
    }

    #[test]
    fn secrets_are_43_chars_of_base64url() {
        let s = generate_secret();
        assert_eq!(s.len(), 43);
        assert_eq!(shared::b64::decode(&s).unwrap().len(), SECRET_BYTES);
        assert_ne!(s, generate_secret());
    }

    #[test]
    fn authorization_forms() {
        let id = Uuid::new_v4();
        let c = parse_authorization(Some(&format!("Bearer {id}:abc_DEF-1"))).unwrap();
        assert_eq!(c.terminal_id, Some(id));
        assert_eq!(c.secret, "abc_DEF-1");
        let bare = parse_authorization(Some("bearer abc")).unwrap();
        assert_eq!(bare.terminal_id, None);
        assert!(!format!("{c:?}").contains("abc_DEF"));
        assert_eq!(parse_authorization(None), Err(AuthFailure::Missing));
        for bad in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "Bearer not-a-uuid:abc",
            &format!("Bearer {id}:"),
            &format!("Bearer {id}:a b"),
            &format!("Bearer {id}:a:b"),
            &format!("Bearer {}", "a".repeat(200)),
        ] {
            assert!(parse_authorization(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    proptest! {
        #[test]
        fn any_header_parses_or_is_refused_without_panic(s in ".{0,200}") {
            let _ = parse_authorization(Some(&s));
            let _ = normalize_code(&s);
        }

        #[test]
        fn well_formed_headers_round_trip(secret in "[A-Za-z0-9_-]{1,128}") {
            let id = Uuid::new_v4();
            let c = parse_authorization(Some(&format!("Bearer {id}:{secret}"))).unwrap();
            prop_assert_eq!(c.terminal_id, Some(id));
            prop_assert_eq!(c.secret, secret);
        }
    }
}
