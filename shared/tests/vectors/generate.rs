//! Builds `token-v1.json` from fixed seeds, byte for byte the same on every run (Ed25519
//! signatures are deterministic).
//!
//! Every expected verdict is written here by hand, case by case. The generator never calls the
//! verifier: vectors computed by the code under test would only mirror its bugs.
//!
//! Regenerate the committed file with
//! `TAMAQ_REGEN_VECTORS=1 cargo test -p tamaq-shared --test vectors`.

use curve25519_dalek::Scalar;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use shared::token::{self, Claims, PAYLOAD_LEN, RAW_LEN};
use shared::{b64, KeyId, KeyPair, TrustedKey};
use uuid::Uuid;

/// The whole file: `{"cases": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorFile {
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub name: String,
    pub token: String,
    /// Trusted without a time limit; the key id of each is computed from it.
    pub public_keys: Vec<String>,
    /// Optional: trust-list entries, usable while `now <= verify_until`. `not_before` and
    /// `not_after` only tell the server when to sign with the key; verifiers ignore them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_keys: Vec<TrustedKey>,
    pub school_code: u32,
    pub now: i64,
    pub skew: u32,
    pub expect: String,
    /// Optional, on `ok` cases only: the fields a verifier must read out of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsJson>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimsJson {
    pub key_id: String,
    pub voucher_id: Uuid,
    pub school_code: u32,
    pub issued_at: u32,
    pub expires_at: u32,
    pub nonce: String,
}

impl ClaimsJson {
    pub fn of(c: &Claims) -> ClaimsJson {
        ClaimsJson {
            key_id: c.key_id.hex(),
            voucher_id: c.voucher_id,
            school_code: c.school_code,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            nonce: hex::encode(c.nonce),
        }
    }
}

const SCHOOL: u32 = 1042;
const ISSUED: u32 = 1_790_000_000;
const EXPIRES: u32 = ISSUED + 600;
const SKEW: u32 = 120;
const VOUCHER: Uuid = Uuid::from_u128(0x6f1c_2b9e_4d7a_4c3e_9b21_0a5f_7e88_d104);

/// The 4-byte key ids of these two keys are equal; `find_key_id_collision` (an example) finds
/// them again: they are the first colliding pair of `collision_seed(0..)`. A 32-bit id collides
/// after about 2^16 keys, so an honest collision costs seconds, not a forgery.
pub const COLLIDING: (u32, u32) = (107_189, 112_607);

/// Ed25519 group order L, little-endian.
const GROUP_ORDER_LE: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The neutral element's encoding: a point of order 1, which strict verification refuses as a
/// public key and as R.
const IDENTITY: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
};

fn seed(label: &str) -> [u8; 32] {
    Sha256::digest(format!("tamaq token-v1 test vectors: {label}")).into()
}

fn key(label: &str) -> KeyPair {
    KeyPair::from_seed(seed(label))
}

pub fn collision_seed(n: u32) -> [u8; 32] {
    seed(&format!("collision {n}"))
}

fn base_claims(key: &KeyPair, nonce: u64) -> Claims {
    Claims {
        key_id: key.key_id(),
        voucher_id: VOUCHER,
        school_code: SCHOOL,
        issued_at: ISSUED,
        expires_at: EXPIRES,
        nonce: nonce.to_be_bytes(),
    }
}

/// Signs any 41 bytes, valid claims or not (wrong versions need this).
fn sign_payload(payload: &[u8; PAYLOAD_LEN], key: &KeyPair) -> [u8; RAW_LEN] {
    use ed25519_dalek::Signer;
    let sig = key.signing_key().sign(&token::signing_input(payload));
    join(payload, &sig.to_bytes())
}

fn join(payload: &[u8; PAYLOAD_LEN], signature: &[u8; 64]) -> [u8; RAW_LEN] {
    let mut raw = [0u8; RAW_LEN];
    raw[..PAYLOAD_LEN].copy_from_slice(payload);
    raw[PAYLOAD_LEN..].copy_from_slice(signature);
    raw
}

fn raw_of(claims: &Claims, key: &KeyPair) -> [u8; RAW_LEN] {
    sign_payload(&claims.to_payload(), key)
}

fn tok(raw: &[u8; RAW_LEN]) -> String {
    token::encode_raw(raw)
}

/// A signature with R = the identity point and S = k·a. The cofactorless equation
/// [S]B = R + [k]A holds, so only the small-order check of strict verification refuses it.
fn small_order_r_signature(payload: &[u8; PAYLOAD_LEN], key: &KeyPair) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(IDENTITY);
    h.update(key.public_bytes());
    h.update(token::signing_input(payload));
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let s = k * key.signing_key().to_scalar();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&IDENTITY);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// S + L: the same point equation, but S is not reduced, which RFC 8032 forbids.
fn unreduced_s(raw: &[u8; RAW_LEN]) -> [u8; RAW_LEN] {
    let mut out = *raw;
    let s = &mut out[PAYLOAD_LEN + 32..];
    let mut carry = 0u16;
    for (b, l) in s.iter_mut().zip(GROUP_ORDER_LE) {
        let sum = u16::from(*b) + u16::from(l) + carry;
        *b = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits because S < L < 2^253");
    out
}

fn flip(raw: &[u8; RAW_LEN], byte: usize, bit: u8) -> [u8; RAW_LEN] {
    let mut out = *raw;
    out[byte] ^= 1 << bit;
    out
}

/// Collects cases; defaults are the common terminal situation, each case overrides what it
/// is about.
struct Builder {
    cases: Vec<Case>,
}

struct Spec<'a> {
    token: String,
    keys: Vec<String>,
    trusted: Vec<TrustedKey>,
    school: u32,
    now: i64,
    skew: u32,
    expect: &'a str,
    claims: Option<Claims>,
}

impl<'a> Spec<'a> {
    fn new(token: String, keys: &[&KeyPair], expect: &'a str) -> Spec<'a> {
        Spec {
            token,
            keys: keys.iter().map(|k| k.public_b64()).collect(),
            trusted: Vec::new(),
            school: SCHOOL,
            now: i64::from(ISSUED) + 100,
            skew: SKEW,
            expect,
            claims: None,
        }
    }
    fn now(mut self, now: i64) -> Self {
        self.now = now;
        self
    }
    fn skew(mut self, skew: u32) -> Self {
        self.skew = skew;
        self
    }
    fn school(mut self, school: u32) -> Self {
        self.school = school;
        self
    }
    fn trusted(mut self, t: TrustedKey) -> Self {
        self.trusted.push(t);
        self
    }
    fn raw_keys(mut self, keys: Vec<String>) -> Self {
        self.keys = keys;
        self
    }
    fn claims(mut self, c: Claims) -> Self {
        self.claims = Some(c);
        self
    }
}

impl Builder {
    fn add(&mut self, name: &str, s: Spec<'_>) {
        assert!(
            s.claims.is_none() || s.expect == "ok",
            "{name}: claims only on ok cases"
        );
        assert!(
            !self.cases.iter().any(|c| c.name == name),
            "{name}: duplicate case name"
        );
        self.cases.push(Case {
            name: name.to_owned(),
            token: s.token,
            public_keys: s.keys,
            trusted_keys: s.trusted,
            school_code: s.school,
            now: s.now,
            skew: s.skew,
            expect: s.expect.to_owned(),
            claims: s.claims.as_ref().map(ClaimsJson::of),
        });
    }
}

pub fn generate() -> VectorFile {
    let k1 = key("signing key 1");
    let k2 = key("signing key 2");
    let retired = key("retired signing key");
    let c1 = KeyPair::from_seed(collision_seed(COLLIDING.0));
    let c2 = KeyPair::from_seed(collision_seed(COLLIDING.1));
    assert_eq!(
        c1.key_id(),
        c2.key_id(),
        "COLLIDING must name colliding keys"
    );
    assert_ne!(c1.public_bytes(), c2.public_bytes());

    let mut b = Builder { cases: Vec::new() };
    let issued = i64::from(ISSUED);
    let expires = i64::from(EXPIRES);
    let skew = i64::from(SKEW);

    // ok, and the validity window's edges.
    let claims = base_claims(&k1, 1);
    let good = tok(&raw_of(&claims, &k1));
    let good_raw = raw_of(&claims, &k1);
    let ok = |now: i64, sk: u32| {
        Spec::new(good.clone(), &[&k1], "ok")
            .now(now)
            .skew(sk)
            .claims(claims)
    };
    b.add("ok", ok(issued + 100, SKEW));
    b.add("ok_at_issued_at_minus_skew", ok(issued - skew, SKEW));
    b.add("ok_at_expires_at_plus_skew", ok(expires + skew, SKEW));
    b.add("ok_zero_skew_at_issued_at", ok(issued, 0));
    b.add("ok_zero_skew_at_expires_at", ok(expires, 0));
    let early = |now: i64, sk: u32| {
        Spec::new(good.clone(), &[&k1], "not_yet_valid")
            .now(now)
            .skew(sk)
    };
    b.add(
        "not_yet_valid_one_second_before_skew",
        early(issued - skew - 1, SKEW),
    );
    b.add("not_yet_valid_zero_skew", early(issued - 1, 0));
    b.add("not_yet_valid_long_before", early(0, SKEW));
    let late = |now: i64, sk: u32| Spec::new(good.clone(), &[&k1], "expired").now(now).skew(sk);
    b.add(
        "expired_one_second_after_skew",
        late(expires + skew + 1, SKEW),
    );
    b.add("expired_zero_skew", late(expires + 1, 0));
    b.add("expired_long_after", late(expires + 86_400 * 365, SKEW));

    // Arithmetic that must not wrap: times near 0 and near u32::MAX, `now` past u32::MAX.
    let mut low = base_claims(&k1, 2);
    low.issued_at = 60;
    low.expires_at = 660;
    let low_tok = tok(&raw_of(&low, &k1));
    b.add(
        "ok_issued_at_smaller_than_skew",
        Spec::new(low_tok, &[&k1], "ok").now(0).claims(low),
    );
    let mut high = base_claims(&k1, 3);
    high.issued_at = u32::MAX - 600;
    high.expires_at = u32::MAX;
    let high_tok = tok(&raw_of(&high, &k1));
    b.add(
        "ok_expires_at_u32_max_now_past_u32_max",
        Spec::new(high_tok.clone(), &[&k1], "ok")
            .now(i64::from(u32::MAX) + skew)
            .claims(high),
    );
    b.add(
        "expired_expires_at_u32_max",
        Spec::new(high_tok, &[&k1], "expired").now(i64::from(u32::MAX) + skew + 1),
    );

    // Every trusted key is tried, and which one signed does not depend on its place in the list.
    b.add(
        "ok_signed_by_second_trusted_key",
        Spec::new(good.clone(), &[&k2, &k1], "ok").claims(claims),
    );
    let mut k2_claims = base_claims(&k2, 4);
    k2_claims.school_code = 7;
    b.add(
        "ok_signed_by_first_trusted_key",
        Spec::new(tok(&raw_of(&k2_claims, &k2)), &[&k2, &k1], "ok")
            .school(7)
            .claims(k2_claims),
    );

    // Two different trusted keys with the same key id: both must be tried.
    let cc1 = base_claims(&c1, 5);
    let cc2 = base_claims(&c2, 6);
    b.add(
        "ok_key_id_shared_by_two_keys_first_signed",
        Spec::new(tok(&raw_of(&cc1, &c1)), &[&c1, &c2], "ok").claims(cc1),
    );
    b.add(
        "ok_key_id_shared_by_two_keys_second_signed",
        Spec::new(tok(&raw_of(&cc2, &c2)), &[&c1, &c2], "ok").claims(cc2),
    );
    let mut forged = base_claims(&k1, 7);
    forged.key_id = c1.key_id();
    b.add(
        "bad_signature_key_id_shared_by_two_keys_neither_signed",
        Spec::new(tok(&raw_of(&forged, &k1)), &[&c1, &c2], "bad_signature"),
    );

    // Retired keys: still verify until `verify_until`, then they are unknown.
    let rc = base_claims(&retired, 8);
    let retired_tok = tok(&raw_of(&rc, &retired));
    let retired_entry = |verify_until: i64| TrustedKey {
        key_id: retired.key_id(),
        public_key: retired.public_b64(),
        not_before: issued - 86_400,
        not_after: issued + 60,
        verify_until,
    };
    b.add(
        "ok_retired_key_before_verify_until",
        Spec::new(retired_tok.clone(), &[], "ok")
            .trusted(retired_entry(expires + skew))
            .now(issued + 300)
            .claims(rc),
    );
    b.add(
        "ok_retired_key_at_verify_until",
        Spec::new(retired_tok.clone(), &[], "ok")
            .trusted(retired_entry(expires + skew))
            .now(expires + skew)
            .claims(rc),
    );
    b.add(
        "unknown_key_retired_key_past_verify_until",
        Spec::new(retired_tok.clone(), &[], "unknown_key")
            .trusted(retired_entry(issued + 200))
            .now(issued + 201),
    );
    b.add(
        "unknown_key_before_expired_retired_key_past_verify_until",
        Spec::new(retired_tok, &[&k2], "unknown_key")
            .trusted(retired_entry(expires + skew))
            .now(expires + skew + 1),
    );

    // Text shape: only exactly 140 characters of the url-safe alphabet, no padding.
    let (dashed_claims, dashed) = (0u64..)
        .map(|n| {
            let c = base_claims(&k1, 0x0100 + n);
            (c, tok(&raw_of(&c, &k1)))
        })
        .find(|(_, t)| t.contains('-') && t.contains('_'))
        .expect("some nonce gives both characters");
    b.add(
        "ok_token_with_dash_and_underscore",
        Spec::new(dashed.clone(), &[&k1], "ok").claims(dashed_claims),
    );
    let bad = |t: String| Spec::new(t, &[&k1], "bad_format");
    b.add(
        "bad_format_standard_alphabet_plus",
        bad(dashed.replace('-', "+")),
    );
    b.add(
        "bad_format_standard_alphabet_slash",
        bad(dashed.replace('_', "/")),
    );
    b.add("bad_format_empty", bad(String::new()));
    b.add(
        "bad_format_one_character_short",
        bad(good[..139].to_owned()),
    );
    b.add(
        "bad_format_one_character_short_at_start",
        bad(good[1..].to_owned()),
    );
    b.add("bad_format_one_character_long", bad(format!("{good}A")));
    b.add("bad_format_padding_appended", bad(format!("{good}=")));
    b.add(
        "bad_format_padding_replaces_last_character",
        bad(format!("{}=", &good[..139])),
    );
    b.add(
        "bad_format_double_padding",
        bad(format!("{}==", &good[..138])),
    );
    b.add("bad_format_trailing_newline", bad(format!("{good}\n")));
    b.add(
        "bad_format_space_inside",
        bad(format!("{} {}", &good[..70], &good[71..])),
    );
    b.add(
        "bad_format_character_outside_alphabet",
        bad(format!("{}*{}", &good[..70], &good[71..])),
    );
    b.add(
        "bad_format_non_ascii_140_characters",
        bad(format!("{}é{}", &good[..70], &good[71..])),
    );
    b.add(
        "bad_format_non_ascii_140_bytes",
        bad(format!("{}é{}", &good[..70], &good[72..])),
    );
    b.add("bad_format_all_zero_bytes", bad("A".repeat(140)));

    // Payload rules, each re-signed by a trusted key so that only that rule is broken.
    for (name, version) in [
        ("bad_format_version_0", 0u8),
        ("bad_format_version_2", 2),
        ("bad_format_version_255", 255),
    ] {
        let mut p = base_claims(&k1, 9).to_payload();
        p[0] = version;
        b.add(name, bad(tok(&sign_payload(&p, &k1))));
    }
    let mut same = base_claims(&k1, 10);
    same.expires_at = same.issued_at;
    b.add(
        "bad_format_expires_at_equals_issued_at",
        bad(tok(&raw_of(&same, &k1))),
    );
    let mut before = base_claims(&k1, 11);
    before.expires_at = before.issued_at - 1;
    b.add(
        "bad_format_expires_at_before_issued_at",
        bad(tok(&raw_of(&before, &k1))),
    );
    let mut wrong_version_untrusted = base_claims(&k2, 12).to_payload();
    wrong_version_untrusted[0] = 2;
    b.add(
        "bad_format_before_unknown_key",
        bad(tok(&sign_payload(&wrong_version_untrusted, &k2))),
    );

    // unknown_key
    b.add(
        "unknown_key_not_in_list",
        Spec::new(good.clone(), &[&k2], "unknown_key"),
    );
    b.add(
        "unknown_key_no_trusted_keys",
        Spec::new(good.clone(), &[], "unknown_key"),
    );
    b.add(
        "unknown_key_before_bad_signature",
        Spec::new(tok(&flip(&good_raw, 60, 2)), &[&k2], "unknown_key"),
    );

    // bad_signature: anything a signature check can get wrong.
    let sig = |t: String, keys: &[&KeyPair]| Spec::new(t, keys, "bad_signature");
    b.add(
        "bad_signature_bit_flipped_in_r",
        sig(tok(&flip(&good_raw, 41, 0)), &[&k1]),
    );
    b.add(
        "bad_signature_bit_flipped_in_s",
        sig(tok(&flip(&good_raw, 80, 3)), &[&k1]),
    );
    b.add(
        "bad_signature_bit_flipped_in_nonce",
        sig(tok(&flip(&good_raw, 40, 7)), &[&k1]),
    );
    let mut elsewhere = base_claims(&k1, 13);
    elsewhere.school_code = SCHOOL + 1;
    let mut moved = raw_of(&elsewhere, &k1);
    moved[21..25].copy_from_slice(&SCHOOL.to_be_bytes());
    b.add(
        "bad_signature_school_code_changed_after_signing",
        sig(tok(&moved), &[&k1]),
    );
    let plain = base_claims(&k1, 14).to_payload();
    let no_domain = {
        use ed25519_dalek::Signer;
        join(&plain, &k1.signing_key().sign(&plain).to_bytes())
    };
    b.add(
        "bad_signature_signed_without_domain_prefix",
        sig(tok(&no_domain), &[&k1]),
    );
    let mut impostor = base_claims(&k2, 15);
    impostor.key_id = k1.key_id();
    b.add(
        "bad_signature_other_key_with_trusted_key_id",
        sig(tok(&raw_of(&impostor, &k2)), &[&k1]),
    );
    b.add(
        "bad_signature_s_not_reduced",
        sig(
            tok(&unreduced_s(&raw_of(&base_claims(&k1, 16), &k1))),
            &[&k1],
        ),
    );
    let small_r = base_claims(&k1, 17).to_payload();
    b.add(
        "bad_signature_small_order_r",
        sig(
            tok(&join(&small_r, &small_order_r_signature(&small_r, &k1))),
            &[&k1],
        ),
    );
    let mut weak = base_claims(&k1, 18);
    weak.key_id = KeyId::of(&IDENTITY);
    let mut weak_sig = [0u8; 64];
    weak_sig[..32].copy_from_slice(&IDENTITY);
    b.add(
        "bad_signature_small_order_public_key",
        sig(tok(&join(&weak.to_payload(), &weak_sig)), &[]).raw_keys(vec![b64::encode(&IDENTITY)]),
    );
    b.add(
        "bad_signature_before_wrong_school",
        sig(tok(&flip(&good_raw, 41, 0)), &[&k1]).school(SCHOOL + 1),
    );

    // wrong_school, and that it comes before the time checks.
    let school = |t: String, code: u32| Spec::new(t, &[&k1], "wrong_school").school(code);
    b.add("wrong_school", school(good.clone(), SCHOOL + 1));
    b.add(
        "wrong_school_little_endian_reading",
        school(good.clone(), SCHOOL.swap_bytes()),
    );
    b.add(
        "wrong_school_before_not_yet_valid",
        school(good.clone(), SCHOOL + 1).now(issued - skew - 1),
    );
    b.add(
        "wrong_school_before_expired",
        school(good.clone(), SCHOOL + 1).now(expires + skew + 1),
    );

    VectorFile { cases: b.cases }
}

/// The committed file's exact text.
pub fn render(file: &VectorFile) -> String {
    let mut text = serde_json::to_string_pretty(file).expect("vectors serialise");
    text.push('\n');
    text
}
