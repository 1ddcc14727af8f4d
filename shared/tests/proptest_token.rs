//! Token v1 against arbitrary input: claims survive encode/decode, any change to a signed token
//! is refused, and no input makes the decoder or verifier panic.

use proptest::prelude::*;
use shared::token::{self, Claims, PAYLOAD_LEN, RAW_LEN, TOKEN_LEN};
use shared::{b64, KeyId, KeyPair, KeyRing, Verdict};
use uuid::Uuid;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn signer() -> KeyPair {
    KeyPair::from_seed([0x5a; 32])
}

fn ring() -> KeyRing {
    KeyRing::from_public_keys([signer().public_bytes()])
}

/// Claims a server could sign: any voucher, school, nonce and a window with expires > issued.
fn valid_claims() -> impl Strategy<Value = Claims> {
    (
        any::<u128>(),
        any::<u32>(),
        0..u32::MAX,
        any::<[u8; 8]>(),
        any::<u32>(),
    )
        .prop_map(|(voucher, school_code, issued_at, nonce, len)| {
            let room = u32::MAX - issued_at;
            Claims {
                key_id: signer().key_id(),
                voucher_id: Uuid::from_u128(voucher),
                school_code,
                issued_at,
                expires_at: issued_at + 1 + len % room,
                nonce,
            }
        })
}

/// Every payload byte pattern, including invalid versions and windows.
fn any_claims() -> impl Strategy<Value = Claims> {
    (
        any::<[u8; 4]>(),
        any::<u128>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<[u8; 8]>(),
    )
        .prop_map(
            |(id, v, school_code, issued_at, expires_at, nonce)| Claims {
                key_id: KeyId(id),
                voucher_id: Uuid::from_u128(v),
                school_code,
                issued_at,
                expires_at,
                nonce,
            },
        )
}

/// A moment inside the claims' window, so a good token must verify.
fn inside(c: &Claims) -> i64 {
    i64::from(c.issued_at) + (i64::from(c.expires_at) - i64::from(c.issued_at)) / 2
}

fn raw(token: &str) -> [u8; RAW_LEN] {
    b64::decode(token).unwrap().try_into().unwrap()
}

/// Which verdict a single-bit change in a given byte must produce. A time field may turn
/// `expires_at` into a value not after `issued_at`, which is a format error, not a forgery.
fn allowed_for_byte(byte: usize) -> &'static [Verdict] {
    match byte {
        0 => &[Verdict::BadFormat],
        1..=4 => &[Verdict::UnknownKey],
        25..=32 => &[Verdict::BadSignature, Verdict::BadFormat],
        _ => &[Verdict::BadSignature],
    }
}

fn check_every_bit_flip(claims: &Claims) {
    let token = token::encode_signed(claims, &signer());
    let ring = ring();
    let now = inside(claims);
    assert_eq!(
        token::verify(&token, &ring, claims.school_code, now, 0),
        Ok(*claims)
    );
    let original = raw(&token);
    for bit in 0..RAW_LEN * 8 {
        let mut flipped = original;
        flipped[bit / 8] ^= 1 << (bit % 8);
        let text = token::encode_raw(&flipped);
        let verdict = token::verify(&text, &ring, claims.school_code, now, 0)
            .expect_err("a flipped bit must never verify");
        assert!(
            allowed_for_byte(bit / 8).contains(&verdict),
            "bit {bit} (byte {}) gave {verdict}",
            bit / 8
        );
    }
}

#[test]
fn every_single_bit_flip_of_a_token_is_refused() {
    let claims = Claims {
        key_id: signer().key_id(),
        voucher_id: Uuid::from_u128(0x1234_5678_9abc_def0_0fed_cba9_8765_4321),
        school_code: 1042,
        issued_at: 1_790_000_000,
        expires_at: 1_790_000_600,
        nonce: [1, 2, 3, 4, 5, 6, 7, 8],
    };
    check_every_bit_flip(&claims);
}

#[test]
fn every_character_replacement_is_refused() {
    let claims = Claims {
        key_id: signer().key_id(),
        voucher_id: Uuid::from_u128(7),
        school_code: 9,
        issued_at: 1000,
        expires_at: 2000,
        nonce: [9; 8],
    };
    let token = token::encode_signed(&claims, &signer());
    let ring = ring();
    for pos in 0..TOKEN_LEN {
        let current = token.as_bytes()[pos];
        // One other alphabet character per position (all 63 would only repeat the bit flips),
        // and characters a scanner or a careless copy can produce.
        let next = ALPHABET[(ALPHABET.iter().position(|&c| c == current).unwrap() + 1) % 64];
        for replacement in [next as char, '+', '/', '=', ' ', '.', 'ы'] {
            let mut chars: Vec<char> = token.chars().collect();
            chars[pos] = replacement;
            let text: String = chars.into_iter().collect();
            assert!(
                token::verify(&text, &ring, 9, 1500, 0).is_err(),
                "position {pos} replaced by {replacement:?} verified"
            );
        }
    }
}

proptest! {
    #[test]
    fn payload_round_trips_for_any_bytes(claims in any_claims()) {
        let payload = claims.to_payload();
        prop_assert_eq!(payload[0], token::VERSION);
        let back = Claims::from_payload(&payload);
        if claims.expires_at > claims.issued_at {
            prop_assert_eq!(back, Some(claims));
        } else {
            prop_assert_eq!(back, None);
        }
    }

    #[test]
    fn signed_token_round_trips(claims in valid_claims()) {
        let token = token::encode_signed(&claims, &signer());
        prop_assert_eq!(token.len(), TOKEN_LEN);
        prop_assert!(token.bytes().all(|c| ALPHABET.contains(&c)));
        let decoded = token::decode(&token).unwrap();
        prop_assert_eq!(decoded.claims, claims);
        prop_assert_eq!(decoded.payload, claims.to_payload());
        let verified = token::verify(&token, &ring(), claims.school_code, inside(&claims), 0);
        prop_assert_eq!(verified, Ok(claims));
    }

    #[test]
    fn a_random_bit_flip_of_a_random_token_is_refused(
        claims in valid_claims(),
        bit in 0..RAW_LEN * 8,
    ) {
        let mut bytes = raw(&token::encode_signed(&claims, &signer()));
        bytes[bit / 8] ^= 1 << (bit % 8);
        let verdict = token::verify(
            &token::encode_raw(&bytes), &ring(), claims.school_code, inside(&claims), 0,
        );
        let verdict = verdict.expect_err("a flipped bit must never verify");
        prop_assert!(allowed_for_byte(bit / 8).contains(&verdict), "bit {} gave {}", bit, verdict);
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>(), now in any::<i64>(), skew in any::<u32>()) {
        let decoded = token::decode(&text);
        let verified = token::verify(&text, &ring(), 1, now, skew);
        // A string that is not 140 url-safe characters can never decode.
        if text.len() != TOKEN_LEN || !text.bytes().all(|c| ALPHABET.contains(&c)) {
            prop_assert_eq!(decoded, Err(Verdict::BadFormat));
            prop_assert_eq!(verified, Err(Verdict::BadFormat));
        }
    }

    #[test]
    fn near_tokens_never_panic(text in "[A-Za-z0-9_+/=\\-]{138,142}", now in any::<i64>()) {
        let result = token::verify(&text, &ring(), 1, now, 120);
        prop_assert!(result.is_err());
        if text.len() != TOKEN_LEN || text.contains(['+', '/', '=']) {
            prop_assert_eq!(result, Err(Verdict::BadFormat));
        }
    }

    /// Well-formed bytes with a trusted key id and a garbage signature reach the signature
    /// check itself, which must refuse them without panicking (invalid points, S ≥ L, …).
    #[test]
    fn garbage_signatures_never_panic(claims in valid_claims(), signature in prop::array::uniform32(any::<u8>()), s in prop::array::uniform32(any::<u8>())) {
        let mut bytes = [0u8; RAW_LEN];
        bytes[..PAYLOAD_LEN].copy_from_slice(&claims.to_payload());
        bytes[PAYLOAD_LEN..PAYLOAD_LEN + 32].copy_from_slice(&signature);
        bytes[PAYLOAD_LEN + 32..].copy_from_slice(&s);
        let result = token::verify(&token::encode_raw(&bytes), &ring(), claims.school_code, inside(&claims), 0);
        prop_assert_eq!(result, Err(Verdict::BadSignature));
    }

    /// The batch check gives every token the answer the single check gives, whatever mix of
    /// honest tokens, flipped bits, unknown keys, other schools and times lies in one batch;
    /// half of the cases hold no forgery, so that whole batches pass as one.
    #[test]
    fn batch_verification_agrees_with_the_single_check(
        tokens in prop::collection::vec(
            (valid_claims(), 0u8..6, any::<usize>(), any::<i64>()),
            0..(2 * token::BATCH + 5),
        ),
        school in any::<u32>(),
        forgeries in any::<bool>(),
    ) {
        let stranger = KeyPair::from_seed([0x77; 32]);
        let mut inputs = Vec::new();
        for (claims, kind, flip, now) in tokens {
            let claims = Claims { school_code: if kind == 4 { school ^ 1 } else { school }, ..claims };
            let text = match kind {
                // Signed by a key the ring does not hold.
                3 => token::encode_signed(&Claims { key_id: stranger.key_id(), ..claims }, &stranger),
                _ => token::encode_signed(&claims, &signer()),
            };
            let mut bytes = raw(&text);
            if kind == 1 && forgeries {
                // One bit of the signature or of the payload (not the version or key id).
                let bit = 5 * 8 + flip % ((RAW_LEN - 5) * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
            let Ok(decoded) = token::decode(&token::encode_raw(&bytes)) else { continue };
            let at = if kind == 5 { now } else { inside(&claims) };
            inputs.push((decoded, at));
        }
        let ring = ring();
        let many = token::verify_many(&inputs, &ring, school, token::DEFAULT_SKEW);
        prop_assert_eq!(many.len(), inputs.len());
        for ((decoded, at), got) in inputs.iter().zip(many) {
            let single = token::verify_decoded(decoded, &ring, school, *at, token::DEFAULT_SKEW);
            prop_assert_eq!(got, single);
        }
    }
}
