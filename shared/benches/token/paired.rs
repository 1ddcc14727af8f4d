//! The ratios the format promises (token ≤ 1.1× raw), measured paired: short batches of the raw
//! and the token operation alternate, so both see the same machine load, which on a shared
//! machine changes between criterion's benchmarks (they run one after the other). Batches are
//! timed with the thread's CPU clock (see `cpu_time`). Reported: the median and quartiles of the
//! rounds' ratios, and the ratio of each operation's fastest batch.

use super::{request, DEFAULT_SKEW, ISSUED, SCHOOL};
use crate::cpu_time;
use ed25519_dalek::{Signature, Signer};
use shared::token;
use shared::{KeyPair, KeyRing};
use std::hint::black_box;

const ROUNDS: usize = 1001;
const BATCH: u32 = 20;

/// Seconds per operation over one batch.
fn time(batch: u32, op: &mut impl FnMut()) -> f64 {
    let start = cpu_time::now();
    for _ in 0..batch {
        op();
    }
    (cpu_time::now() - start) / f64::from(batch)
}

struct Ratio {
    median: f64,
    q1: f64,
    q3: f64,
    fastest: f64,
    raw_fastest: f64,
    token_fastest: f64,
}

fn ratio(rounds: usize, batch: u32, mut raw: impl FnMut(), mut token: impl FnMut()) -> Ratio {
    let mut pairs: Vec<(f64, f64)> = (0..rounds)
        .map(|round| {
            // Alternate which goes first so that neither always runs on a warmer cache.
            if round % 2 == 0 {
                let r = time(batch, &mut raw);
                (r, time(batch, &mut token))
            } else {
                let t = time(batch, &mut token);
                (time(batch, &mut raw), t)
            }
        })
        .collect();
    let raw_fastest = pairs.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let token_fastest = pairs.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    pairs.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
    let at = |i: usize| pairs[i].1 / pairs[i].0;
    Ratio {
        median: at(rounds / 2),
        q1: at(rounds / 4),
        q3: at(3 * rounds / 4),
        fastest: token_fastest / raw_fastest,
        raw_fastest,
        token_fastest,
    }
}

pub fn run(full: bool) {
    let (rounds, batch) = if full { (ROUNDS, BATCH) } else { (11, 1) };
    let key = KeyPair::from_seed([0x42; 32]);
    let ring = KeyRing::from_public_keys([
        KeyPair::from_seed([1; 32]).public_bytes(),
        key.public_bytes(),
        KeyPair::from_seed([2; 32]).public_bytes(),
    ]);
    let token = token::sign_with_nonce(&request(), &key, [7; 8]);
    let decoded = token::decode(&token).unwrap();
    let message = token::signing_input(&decoded.payload);
    let signature = Signature::from_bytes(&decoded.signature);
    let verifying = key.verifying_key();
    let now = i64::from(ISSUED) + 100;

    let sign = ratio(
        rounds,
        batch,
        || {
            black_box(key.signing_key().sign(black_box(&message)));
        },
        || {
            black_box(token::sign(black_box(&request()), &key));
        },
    );
    let verify = ratio(
        rounds,
        batch,
        || {
            black_box(verifying.verify_strict(black_box(&message), black_box(&signature))).unwrap();
        },
        || {
            black_box(token::verify(
                black_box(&token),
                &ring,
                SCHOOL,
                now,
                DEFAULT_SKEW,
            ))
            .unwrap();
        },
    );
    for (name, r) in [("sign", sign), ("verify", verify)] {
        println!(
            "paired/token_{name}_over_raw_{name}: median {:.3}x (quartiles {:.3}x - {:.3}x), \
             fastest batches {:.3}x ({:.1} us raw, {:.1} us token); {rounds} rounds of {batch}",
            r.median,
            r.q1,
            r.q3,
            r.fastest,
            r.raw_fastest * 1e6,
            r.token_fastest * 1e6,
        );
    }
}
