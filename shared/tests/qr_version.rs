//! DESIGN §8: a token's QR code is version 8 or lower at error correction M, whatever its bytes.
//! The version depends on the text's length and the encoding mode the QR library picks for its
//! characters, so random tokens cover every character mix a real one can have.

use proptest::prelude::*;
use qrcode::{EcLevel, QrCode, Version};
use shared::token::{self, RAW_LEN, TOKEN_LEN};
use shared::KeyPair;

fn version_of(text: &str) -> i16 {
    match QrCode::with_error_correction_level(text, EcLevel::M)
        .expect("a 140-character token fits a QR code")
        .version()
    {
        Version::Normal(v) => v,
        Version::Micro(v) => panic!("micro QR version {v} for a token"),
    }
}

#[test]
fn signed_tokens_fit_version_8_at_level_m() {
    let key = KeyPair::generate();
    for i in 0..200u32 {
        let request = token::TokenRequest {
            voucher_id: uuid::Uuid::new_v4(),
            school_code: i,
            issued_at: 1_790_000_000 + i,
            expires_at: 1_790_000_600 + i,
        };
        let t = token::sign(&request, &key);
        assert_eq!(t.len(), TOKEN_LEN);
        assert!(version_of(&t) <= 8, "{t} needs version {}", version_of(&t));
    }
}

#[test]
fn worst_case_characters_fit_version_8() {
    // Byte mode is the densest choice left for base64url text; all-digit or all-upper runs
    // only let the encoder pick a cheaper mode.
    for text in [
        "_".repeat(TOKEN_LEN),
        "a".repeat(TOKEN_LEN),
        "-z".repeat(70),
    ] {
        assert!(version_of(&text) <= 8, "{text}");
    }
}

/// Guards the guard: on the same text level H does need a bigger symbol, so `version_of`
/// measures what the other tests rely on.
#[test]
fn level_h_needs_more_than_version_8() {
    let code = QrCode::with_error_correction_level("_".repeat(TOKEN_LEN), EcLevel::H).unwrap();
    assert!(matches!(code.version(), Version::Normal(v) if v > 8));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn any_105_bytes_fit_version_8(raw in prop::array::uniform32(any::<u8>()).prop_flat_map(|a| {
        (Just(a), prop::collection::vec(any::<u8>(), RAW_LEN - 32))
    })) {
        let mut bytes = [0u8; RAW_LEN];
        bytes[..32].copy_from_slice(&raw.0);
        bytes[32..].copy_from_slice(&raw.1);
        let text = token::encode_raw(&bytes);
        prop_assert!(version_of(&text) <= 8);
    }
}
