//! The committed token v1 vectors: every case gives its expected verdict, and the file is exactly
//! what the generator produces (so it cannot drift from the fixed seeds it documents).

#[path = "vectors/generate.rs"]
mod generate;

use ed25519_dalek::Signature;
use generate::{Case, ClaimsJson, VectorFile};
use shared::token::{self, DEFAULT_SKEW};
use shared::{b64, KeyId, KeyRing, TrustPayload, TrustedKey, Verdict};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn vector_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/token-v1.json")
}

fn committed() -> VectorFile {
    let text = std::fs::read_to_string(vector_path()).expect("token-v1.json is committed");
    serde_json::from_str(&text).expect("token-v1.json parses")
}

/// The vectors' ring rule: `public_keys` have no time limit, `trusted_keys` stop at their
/// `verify_until`; both go through the same trust-list parser as production keys.
fn ring(case: &Case) -> KeyRing {
    let mut keys: Vec<TrustedKey> = case
        .public_keys
        .iter()
        .map(|k| {
            let bytes: [u8; 32] = b64::decode(k).unwrap().try_into().unwrap();
            TrustedKey {
                key_id: KeyId::of(&bytes),
                public_key: k.clone(),
                not_before: i64::MIN,
                not_after: i64::MAX,
                verify_until: i64::MAX,
            }
        })
        .collect();
    keys.extend(case.trusted_keys.iter().cloned());
    KeyRing::from_payload(&TrustPayload { version: 1, keys })
        .unwrap_or_else(|e| panic!("{}: ring: {e}", case.name))
}

fn outcome(case: &Case) -> (String, Option<ClaimsJson>) {
    match token::verify(
        &case.token,
        &ring(case),
        case.school_code,
        case.now,
        case.skew,
    ) {
        Ok(claims) => ("ok".to_owned(), Some(ClaimsJson::of(&claims))),
        Err(v) => (v.code().to_owned(), None),
    }
}

#[test]
fn every_vector_gives_its_expected_verdict() {
    let file = committed();
    let mut failures = Vec::new();
    for case in &file.cases {
        let (got, claims) = outcome(case);
        if got != case.expect {
            failures.push(format!(
                "{}: expected {}, got {got}",
                case.name, case.expect
            ));
        } else if case.claims.is_some() && claims != case.claims {
            failures.push(format!("{}: claims {claims:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The server's batch check gives every vector the single check's verdict: alone, and three
/// times in one batch (so that the strict refusals — small-order R, s ≥ ℓ, colliding key ids —
/// meet the batch equation, not only the single check).
#[test]
fn batch_check_gives_every_vector_its_verdict() {
    let file = committed();
    let mut failures = Vec::new();
    for case in &file.cases {
        let Ok(decoded) = token::decode(&case.token) else {
            continue; // `bad_format`: never reaches a signature check.
        };
        let ring = ring(case);
        for copies in [1, 3] {
            let tokens = vec![(decoded, case.now); copies];
            for got in token::verify_many(&tokens, &ring, case.school_code, case.skew) {
                let got = got.map_or_else(|v| v.code().to_owned(), |_| "ok".to_owned());
                if got != case.expect {
                    failures.push(format!(
                        "{} x{copies}: expected {}, got {got}",
                        case.name, case.expect
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vectors_cover_every_token_verdict() {
    let expected: BTreeSet<&str> = [
        Verdict::Ok,
        Verdict::BadFormat,
        Verdict::UnknownKey,
        Verdict::BadSignature,
        Verdict::WrongSchool,
        Verdict::NotYetValid,
        Verdict::Expired,
    ]
    .iter()
    .map(|v| v.code())
    .collect();
    let file = committed();
    let seen: BTreeSet<&str> = file.cases.iter().map(|c| c.expect.as_str()).collect();
    assert_eq!(seen, expected);
    // The cases the format's promises rest on.
    let names: BTreeSet<&str> = file.cases.iter().map(|c| c.name.as_str()).collect();
    for must in [
        "ok_key_id_shared_by_two_keys_second_signed",
        "ok_retired_key_before_verify_until",
        "unknown_key_retired_key_past_verify_until",
        "bad_format_one_character_long",
        "bad_format_one_character_short",
        "bad_format_padding_appended",
        "bad_format_standard_alphabet_plus",
        "bad_format_standard_alphabet_slash",
        "bad_format_version_2",
        "bad_format_non_ascii_140_bytes",
    ] {
        assert!(names.contains(must), "missing case {must}");
    }
    assert!(file.cases.iter().all(|c| c.skew <= DEFAULT_SKEW));
}

#[test]
fn shared_key_id_case_uses_two_distinct_keys_with_one_id() {
    let file = committed();
    let case = file
        .cases
        .iter()
        .find(|c| c.name == "ok_key_id_shared_by_two_keys_second_signed")
        .unwrap();
    assert_eq!(case.public_keys.len(), 2);
    assert_ne!(case.public_keys[0], case.public_keys[1]);
    let ids: Vec<KeyId> = case
        .public_keys
        .iter()
        .map(|k| KeyId::of(&b64::decode(k).unwrap().try_into().unwrap()))
        .collect();
    assert_eq!(ids[0], ids[1]);
}

/// These vectors exist to catch verifiers that are not strict; they would be worthless if
/// plain (cofactorless, non-strict) verification refused them too.
#[test]
fn small_order_vectors_pass_lax_verification() {
    let file = committed();
    for name in [
        "bad_signature_small_order_r",
        "bad_signature_small_order_public_key",
    ] {
        let case = file.cases.iter().find(|c| c.name == name).unwrap();
        let decoded = token::decode(&case.token).unwrap();
        let key_bytes: [u8; 32] = b64::decode(&case.public_keys[0])
            .unwrap()
            .try_into()
            .unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).unwrap();
        let message = token::signing_input(&decoded.payload);
        let signature = Signature::from_bytes(&decoded.signature);
        assert!(key.verify_strict(&message, &signature).is_err(), "{name}");
        assert!(
            ed25519_dalek::Verifier::verify(&key, &message, &signature).is_ok(),
            "{name}"
        );
    }
}

#[test]
fn committed_file_is_what_the_generator_produces() {
    let fresh = generate::render(&generate::generate());
    if std::env::var_os("TAMAQ_REGEN_VECTORS").is_some_and(|v| v == "1") {
        // Renamed into place so that the other tests, running in parallel, never read half a file.
        let tmp = vector_path().with_extension("json.tmp");
        std::fs::write(&tmp, &fresh).unwrap();
        std::fs::rename(&tmp, vector_path()).unwrap();
    }
    let on_disk = std::fs::read_to_string(vector_path()).unwrap();
    assert!(
        on_disk == fresh,
        "token-v1.json differs from the generator; if the change is intended run \
         TAMAQ_REGEN_VECTORS=1 cargo test -p tamaq-shared --test vectors"
    );
}
