//! Token v1 next to the raw Ed25519 operations it is built on, in the same run, so that the
//! token's own overhead (layout, base64url, key look-up) can be read as a ratio; and the QR
//! rendering the wallet does for every token. Times are the thread's CPU time (`cpu_time` says
//! why), followed by paired token/raw ratios (`paired`).
//!
//! `cargo bench -p tamaq-shared --bench token -- --warm-up-time 1 --measurement-time 3`

mod cpu_time;
mod paired;

use criterion::measurement::Measurement;
use criterion::Criterion;
use ed25519_dalek::{Signature, Signer};
use qrcode::{EcLevel, QrCode};
use shared::token::{self, TokenRequest, DEFAULT_SKEW, RAW_LEN};
use shared::{b64, KeyPair, KeyRing};
use std::hint::black_box;
use uuid::Uuid;

const SCHOOL: u32 = 1042;
const ISSUED: u32 = 1_790_000_000;

fn request() -> TokenRequest {
    TokenRequest {
        voucher_id: Uuid::from_u128(0x6f1c_2b9e_4d7a_4c3e_9b21_0a5f_7e88_d104),
        school_code: SCHOOL,
        issued_at: ISSUED,
        expires_at: ISSUED + 600,
    }
}

fn ed25519<M: Measurement>(c: &mut Criterion<M>) {
    let key = KeyPair::from_seed([0x42; 32]);
    // A realistic ring: the current key, a retired one with the same role, and another.
    let ring = KeyRing::from_public_keys([
        KeyPair::from_seed([1; 32]).public_bytes(),
        key.public_bytes(),
        KeyPair::from_seed([2; 32]).public_bytes(),
    ]);
    let token = token::sign_with_nonce(&request(), &key, [7; 8]);
    let decoded = token::decode(&token).unwrap();
    // The same 52 bytes the token signs: `TAMAQ-QR-V1` ‖ payload.
    let message = token::signing_input(&decoded.payload);
    let signature = Signature::from_bytes(&decoded.signature);
    let verifying = key.verifying_key();
    let now = i64::from(ISSUED) + 100;

    let mut g = c.benchmark_group("ed25519");
    g.bench_function("raw_sign", |b| {
        b.iter(|| key.signing_key().sign(black_box(&message)))
    });
    g.bench_function("token_sign", |b| {
        b.iter(|| token::sign(black_box(&request()), &key))
    });
    g.bench_function("raw_verify_strict", |b| {
        b.iter(|| verifying.verify_strict(black_box(&message), black_box(&signature)))
    });
    g.bench_function("token_verify", |b| {
        b.iter(|| token::verify(black_box(&token), &ring, SCHOOL, now, DEFAULT_SKEW))
    });
    g.finish();

    let raw: [u8; RAW_LEN] = b64::decode(&token).unwrap().try_into().unwrap();
    let mut g = c.benchmark_group("codec");
    g.bench_function("encode", |b| b.iter(|| token::encode_raw(black_box(&raw))));
    g.bench_function("decode", |b| b.iter(|| token::decode(black_box(&token))));
    g.finish();
}

/// The server's check of an upload: 450 served tokens (a batch of 500 events), batched as
/// `verify_many` does it against one at a time. Divide by 450 for the cost per token.
fn upload_tokens<M: Measurement>(c: &mut Criterion<M>) {
    let key = KeyPair::from_seed([0x42; 32]);
    let ring = KeyRing::from_public_keys([key.public_bytes()]);
    let now = i64::from(ISSUED) + 100;
    let tokens: Vec<(token::Decoded, i64)> = (0..450u128)
        .map(|i| {
            let request = TokenRequest {
                voucher_id: Uuid::from_u128(i),
                ..request()
            };
            (token::decode(&token::sign(&request, &key)).unwrap(), now)
        })
        .collect();
    let mut g = c.benchmark_group("upload_450_tokens");
    g.sample_size(20);
    g.bench_function("verify_many", |b| {
        b.iter(|| token::verify_many(black_box(&tokens), &ring, SCHOOL, DEFAULT_SKEW))
    });
    g.bench_function("verify_one_by_one", |b| {
        b.iter(|| {
            tokens
                .iter()
                .map(|(d, now)| {
                    token::verify_decoded(black_box(d), &ring, SCHOOL, *now, DEFAULT_SKEW)
                })
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

fn qr<M: Measurement>(c: &mut Criterion<M>) {
    let token = token::sign_with_nonce(&request(), &KeyPair::from_seed([0x42; 32]), [7; 8]);
    let mut g = c.benchmark_group("qr");
    g.bench_function("matrix", |b| {
        b.iter(|| QrCode::with_error_correction_level(black_box(&token), EcLevel::M).unwrap())
    });
    g.bench_function("png", |b| {
        b.iter(|| {
            let code = QrCode::with_error_correction_level(black_box(&token), EcLevel::M).unwrap();
            let img = code.render::<image::Luma<u8>>().build();
            let mut png = Vec::with_capacity(4096);
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            png
        })
    });
    g.bench_function("svg", |b| {
        b.iter(|| {
            let code = QrCode::with_error_correction_level(black_box(&token), EcLevel::M).unwrap();
            code.render::<qrcode::render::svg::Color<'_>>().build()
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .with_measurement(cpu_time::ThreadCpuTime)
        .configure_from_args();
    ed25519(&mut c);
    upload_tokens(&mut c);
    qr(&mut c);
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and only wants a smoke run.
    paired::run(std::env::args().any(|a| a == "--bench"));
    c.final_summary();
}
