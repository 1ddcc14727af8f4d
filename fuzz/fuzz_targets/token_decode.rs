//! Any bytes, as a token string and as raw token bytes: the decoder and the verifier must answer
//! without panicking, and whatever decodes must be the one canonical encoding of its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::token::{self, Claims, RAW_LEN, TOKEN_LEN};
use shared::{KeyPair, KeyRing};
use std::sync::OnceLock;

fn ring() -> &'static (KeyPair, KeyRing) {
    static RING: OnceLock<(KeyPair, KeyRing)> = OnceLock::new();
    RING.get_or_init(|| {
        let key = KeyPair::from_seed([0x5a; 32]);
        let ring = KeyRing::from_public_keys([key.public_bytes()]);
        (key, ring)
    })
}

fuzz_target!(|data: &[u8]| {
    let (key, ring) = ring();
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(decoded) = token::decode(text) {
            assert_eq!(text.len(), TOKEN_LEN);
            let mut raw = [0u8; RAW_LEN];
            raw[..41].copy_from_slice(&decoded.payload);
            raw[41..].copy_from_slice(&decoded.signature);
            assert_eq!(token::encode_raw(&raw), text, "two texts for one token");
        }
        let _ = token::verify(text, ring, 1042, 1_790_000_100, 120);
    }
    // Raw bytes: the first 105 become a token, signed again by the trusted key so that the
    // fuzzer also reaches the checks after the signature.
    if let Ok(raw) = <[u8; RAW_LEN]>::try_from(data.get(..RAW_LEN).unwrap_or(&[])) {
        let text = token::encode_raw(&raw);
        let payload: [u8; 41] = raw[..41].try_into().unwrap();
        match token::decode(&text) {
            Ok(d) => assert_eq!(Some(d.claims), Claims::from_payload(&payload)),
            Err(_) => assert_eq!(Claims::from_payload(&payload), None),
        }
        if let Some(claims) = Claims::from_payload(&payload) {
            let signed = token::encode_signed(&claims, key);
            let now = i64::from(u32::from_be_bytes([raw[41], raw[42], raw[43], raw[44]]));
            if let Ok(verified) = token::verify(&signed, ring, claims.school_code, now, 0) {
                assert!(claims.key_id == key.key_id() && verified == claims);
                assert!(now >= i64::from(claims.issued_at) && now <= i64::from(claims.expires_at));
            }
        }
    }
});
