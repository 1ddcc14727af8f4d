//! QR token v1 (DESIGN §3): `base64url_nopad(payload ‖ signature)`, 105 bytes, 140 characters.
//!
//! Payload layout (41 bytes, integers big-endian) — fixed forever for version 1:
//!
//! | offset | size | field         |
//! |--------|------|---------------|
//! | 0      | 1    | version = 0x01 |
//! | 1      | 4    | key_id        |
//! | 5      | 16   | voucher_id    |
//! | 21     | 4    | school_code   |
//! | 25     | 4    | issued_at     |
//! | 29     | 4    | expires_at    |
//! | 33     | 8    | nonce         |
//!
//! The signature is Ed25519 over `TAMAQ-QR-V1` ‖ payload.

use crate::b64;
use crate::keys::{KeyId, KeyPair};
use crate::trust::KeyRing;
use crate::verdict::Verdict;
use ed25519_dalek::{Signature, Signer};
use uuid::Uuid;

pub const VERSION: u8 = 0x01;
pub const DOMAIN: &[u8; 11] = b"TAMAQ-QR-V1";
pub const PAYLOAD_LEN: usize = 41;
pub const SIGNATURE_LEN: usize = 64;
pub const RAW_LEN: usize = PAYLOAD_LEN + SIGNATURE_LEN;
pub const TOKEN_LEN: usize = 140;
/// Clock skew the terminals tolerate by default, in seconds.
pub const DEFAULT_SKEW: u32 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub key_id: KeyId,
    pub voucher_id: Uuid,
    pub school_code: u32,
    pub issued_at: u32,
    pub expires_at: u32,
    pub nonce: [u8; 8],
}

impl Claims {
    pub fn to_payload(&self) -> [u8; PAYLOAD_LEN] {
        let mut p = [0u8; PAYLOAD_LEN];
        p[0] = VERSION;
        p[1..5].copy_from_slice(&self.key_id.0);
        p[5..21].copy_from_slice(self.voucher_id.as_bytes());
        p[21..25].copy_from_slice(&self.school_code.to_be_bytes());
        p[25..29].copy_from_slice(&self.issued_at.to_be_bytes());
        p[29..33].copy_from_slice(&self.expires_at.to_be_bytes());
        p[33..41].copy_from_slice(&self.nonce);
        p
    }

    /// `None` for an unknown version or `expires_at <= issued_at`.
    pub fn from_payload(p: &[u8; PAYLOAD_LEN]) -> Option<Claims> {
        if p[0] != VERSION {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        let claims = Claims {
            key_id: KeyId([p[1], p[2], p[3], p[4]]),
            voucher_id: Uuid::from_bytes(p[5..21].try_into().ok()?),
            school_code: u32_at(21),
            issued_at: u32_at(25),
            expires_at: u32_at(29),
            nonce: p[33..41].try_into().ok()?,
        };
        (claims.expires_at > claims.issued_at).then_some(claims)
    }
}

/// The exact bytes the signature covers.
pub fn signing_input(payload: &[u8; PAYLOAD_LEN]) -> [u8; DOMAIN.len() + PAYLOAD_LEN] {
    let mut m = [0u8; DOMAIN.len() + PAYLOAD_LEN];
    m[..DOMAIN.len()].copy_from_slice(DOMAIN);
    m[DOMAIN.len()..].copy_from_slice(payload);
    m
}

/// What a parent's wallet asks for; the key id and nonce are filled in when signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRequest {
    pub voucher_id: Uuid,
    pub school_code: u32,
    pub issued_at: u32,
    pub expires_at: u32,
}

/// Signs a token with a fresh random nonce.
pub fn sign(request: &TokenRequest, key: &KeyPair) -> String {
    sign_with_nonce(request, key, rand::random())
}

pub fn sign_with_nonce(request: &TokenRequest, key: &KeyPair, nonce: [u8; 8]) -> String {
    let claims = Claims {
        key_id: key.key_id(),
        voucher_id: request.voucher_id,
        school_code: request.school_code,
        issued_at: request.issued_at,
        expires_at: request.expires_at,
        nonce,
    };
    encode_signed(&claims, key)
}

pub fn encode_signed(claims: &Claims, key: &KeyPair) -> String {
    let payload = claims.to_payload();
    let signature = key.signing_key().sign(&signing_input(&payload));
    let mut raw = [0u8; RAW_LEN];
    raw[..PAYLOAD_LEN].copy_from_slice(&payload);
    raw[PAYLOAD_LEN..].copy_from_slice(&signature.to_bytes());
    encode_raw(&raw)
}

pub fn encode_raw(raw: &[u8; RAW_LEN]) -> String {
    let mut out = [0u8; TOKEN_LEN];
    let n = b64::encode_into(raw, &mut out).expect("105 bytes always encode to 140 characters");
    debug_assert_eq!(n, TOKEN_LEN);
    String::from_utf8(out.to_vec()).expect("base64 is ASCII")
}

/// A token whose shape is right; its signature is not checked yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub claims: Claims,
    pub payload: [u8; PAYLOAD_LEN],
    pub signature: [u8; SIGNATURE_LEN],
}

/// Checks the shape only: exactly 140 characters of the url-safe alphabet, no padding,
/// version 1, `expires_at > issued_at`. Anything else is `bad_format`.
pub fn decode(token: &str) -> Result<Decoded, Verdict> {
    if token.len() != TOKEN_LEN {
        return Err(Verdict::BadFormat);
    }
    let mut raw = [0u8; RAW_LEN + 3];
    match b64::decode_into(token, &mut raw) {
        Ok(RAW_LEN) => {}
        _ => return Err(Verdict::BadFormat),
    }
    let payload: [u8; PAYLOAD_LEN] = raw[..PAYLOAD_LEN].try_into().expect("fixed split");
    let signature: [u8; SIGNATURE_LEN] = raw[PAYLOAD_LEN..RAW_LEN].try_into().expect("fixed split");
    let claims = Claims::from_payload(&payload).ok_or(Verdict::BadFormat)?;
    Ok(Decoded {
        claims,
        payload,
        signature,
    })
}

/// Everything a token alone can decide, in the order of DESIGN §4:
/// `bad_format`, `unknown_key`, `bad_signature`, `wrong_school`, `not_yet_valid`, `expired`.
pub fn verify(
    token: &str,
    keys: &KeyRing,
    school_code: u32,
    now: i64,
    skew: u32,
) -> Result<Claims, Verdict> {
    let decoded = decode(token)?;
    verify_decoded(&decoded, keys, school_code, now, skew)
}

pub fn verify_decoded(
    decoded: &Decoded,
    keys: &KeyRing,
    school_code: u32,
    now: i64,
    skew: u32,
) -> Result<Claims, Verdict> {
    check_signature(decoded, keys, now)?;
    check_claims(decoded.claims, school_code, now, skew)
}

/// `unknown_key` or `bad_signature`, checked one token at a time with `verify_strict`.
fn check_signature(decoded: &Decoded, keys: &KeyRing, now: i64) -> Result<(), Verdict> {
    let message = signing_input(&decoded.payload);
    let signature = Signature::from_bytes(&decoded.signature);
    let mut any_key = false;
    for key in keys.candidates(decoded.claims.key_id, now) {
        any_key = true;
        if key.verify_strict(&message, &signature).is_ok() {
            return Ok(());
        }
    }
    Err(if any_key {
        Verdict::BadSignature
    } else {
        Verdict::UnknownKey
    })
}

/// Signatures checked in one batch equation by [`verify_many`]. Past a few hundred the gain
/// per signature flattens; one forged token sends at most this many to the single checks.
pub const BATCH: usize = 256;

/// [`verify_decoded`] for many tokens at once, each at its own `now`, with the same answers.
///
/// Tokens whose key id names exactly one key usable at their time are checked `BATCH` at a
/// time per key in one equation ([`crate::ed25519_batch`]); a batch that fails is checked
/// again one token at a time, so a forged token never passes and costs its batch the single
/// checks. Other tokens, and tokens of weak keys, are checked singly.
pub fn verify_many(
    tokens: &[(Decoded, i64)],
    keys: &KeyRing,
    school_code: u32,
    skew: u32,
) -> Vec<Result<Claims, Verdict>> {
    let mut signatures: Vec<Option<Result<(), Verdict>>> = vec![None; tokens.len()];
    let mut by_key: Vec<(&ed25519_dalek::VerifyingKey, Vec<usize>)> = Vec::new();
    for (i, (decoded, now)) in tokens.iter().enumerate() {
        let mut candidates = keys.candidates(decoded.claims.key_id, *now);
        match (candidates.next(), candidates.next()) {
            (Some(key), None) if !key.is_weak() => {
                match by_key.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, members)) => members.push(i),
                    None => by_key.push((key, vec![i])),
                }
            }
            _ => signatures[i] = Some(check_signature(decoded, keys, *now)),
        }
    }
    for (key, members) in &by_key {
        for part in members.chunks(BATCH) {
            let inputs: Vec<_> = part
                .iter()
                .map(|i| signing_input(&tokens[*i].0.payload))
                .collect();
            let items: Vec<(&[u8], &[u8; SIGNATURE_LEN])> = part
                .iter()
                .zip(&inputs)
                .map(|(i, m)| (&m[..], &tokens[*i].0.signature))
                .collect();
            let all_good = crate::ed25519_batch::all_valid(key, &items);
            for i in part {
                let (decoded, now) = &tokens[*i];
                signatures[*i] = Some(if all_good {
                    Ok(())
                } else {
                    check_signature(decoded, keys, *now)
                });
            }
        }
    }
    tokens
        .iter()
        .zip(signatures)
        .map(|((decoded, now), signature)| {
            signature.expect("every token checked")?;
            check_claims(decoded.claims, school_code, *now, skew)
        })
        .collect()
}

/// What a token's claims decide once its signature holds: `wrong_school`, `not_yet_valid`,
/// `expired`.
pub fn check_claims(
    claims: Claims,
    school_code: u32,
    now: i64,
    skew: u32,
) -> Result<Claims, Verdict> {
    if claims.school_code != school_code {
        return Err(Verdict::WrongSchool);
    }
    let skew = i64::from(skew);
    if now < i64::from(claims.issued_at) - skew {
        return Err(Verdict::NotYetValid);
    }
    if now > i64::from(claims.expires_at) + skew {
        return Err(Verdict::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TokenRequest {
        TokenRequest {
            voucher_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            school_code: 42,
            issued_at: 1_790_000_000,
            expires_at: 1_790_000_600,
        }
    }

    #[test]
    fn token_is_140_chars_and_round_trips() {
        let key = KeyPair::from_seed([1u8; 32]);
        let token = sign_with_nonce(&request(), &key, [5u8; 8]);
        assert_eq!(token.len(), TOKEN_LEN);
        let d = decode(&token).unwrap();
        assert_eq!(d.claims.voucher_id, request().voucher_id);
        assert_eq!(d.claims.key_id, key.key_id());
        assert_eq!(d.claims.nonce, [5u8; 8]);
        let ring = KeyRing::from_public_keys([key.public_bytes()]);
        let claims = verify(&token, &ring, 42, 1_790_000_100, DEFAULT_SKEW).unwrap();
        assert_eq!(claims, d.claims);
    }

    #[test]
    fn payload_layout_is_fixed() {
        let key = KeyPair::from_seed([1u8; 32]);
        let claims = Claims {
            key_id: key.key_id(),
            voucher_id: request().voucher_id,
            school_code: 0x0102_0304,
            issued_at: 0x0a0b_0c0d,
            expires_at: 0x0a0b_0c0e,
            nonce: [0xee; 8],
        };
        let p = claims.to_payload();
        assert_eq!(p[0], 1);
        assert_eq!(&p[1..5], &key.key_id().0);
        assert_eq!(&p[5..21], request().voucher_id.as_bytes());
        assert_eq!(&p[21..25], &[1, 2, 3, 4]);
        assert_eq!(&p[25..29], &[0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(&p[29..33], &[0x0a, 0x0b, 0x0c, 0x0e]);
        assert_eq!(&p[33..41], &[0xee; 8]);
        assert_eq!(&signing_input(&p)[..11], b"TAMAQ-QR-V1");
    }

    #[test]
    fn verdicts_in_order() {
        let key = KeyPair::from_seed([1u8; 32]);
        let other = KeyPair::from_seed([2u8; 32]);
        let ring = KeyRing::from_public_keys([key.public_bytes()]);
        let token = sign_with_nonce(&request(), &key, [0u8; 8]);
        let now = 1_790_000_100;
        assert_eq!(verify("x", &ring, 42, now, 120), Err(Verdict::BadFormat));
        let foreign = sign_with_nonce(&request(), &other, [0u8; 8]);
        assert_eq!(
            verify(&foreign, &ring, 42, now, 120),
            Err(Verdict::UnknownKey)
        );
        let mut tampered = token.clone().into_bytes();
        tampered[100] = if tampered[100] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            verify(&tampered, &ring, 42, now, 120),
            Err(Verdict::BadSignature)
        );
        assert_eq!(
            verify(&token, &ring, 43, now, 120),
            Err(Verdict::WrongSchool)
        );
        let early = 1_790_000_000 - 121;
        assert_eq!(
            verify(&token, &ring, 42, early, 120),
            Err(Verdict::NotYetValid)
        );
        assert!(verify(&token, &ring, 42, early + 1, 120).is_ok());
        let late = 1_790_000_600 + 121;
        assert_eq!(verify(&token, &ring, 42, late, 120), Err(Verdict::Expired));
        assert!(verify(&token, &ring, 42, late - 1, 120).is_ok());
    }

    #[test]
    fn expiry_not_after_issue_is_bad_format() {
        let key = KeyPair::from_seed([1u8; 32]);
        let mut r = request();
        r.expires_at = r.issued_at;
        let token = sign(&r, &key);
        assert_eq!(decode(&token).unwrap_err(), Verdict::BadFormat);
    }
}
