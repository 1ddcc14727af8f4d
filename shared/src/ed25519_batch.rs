//! Many Ed25519 signatures by one key checked in one equation.
//!
//! For signatures `(R_i, s_i)` by the key `A` on messages `M_i`, with `k_i = H(R_i ‖ A ‖ M_i)`
//! and random 128-bit `z_i`, every signature satisfies `[s_i]B = R_i + [k_i]A` (the equation
//! `verify_strict` checks) — up to a chance of 2^-128 — if
//!
//! ```text
//! [Σ z_i·s_i]B = Σ [z_i]R_i + [Σ z_i·k_i]A
//! ```
//!
//! With one key the `A` terms sum into one, so the multiplication runs over n + 2 points, not
//! the 2n + 1 of a batch with a key per signature (`ed25519_dalek::verify_batch`): the server's
//! uploads carry hundreds of tokens signed by the same one or two keys.
//!
//! What `verify_strict` refuses besides the equation is refused here before it: `s` not
//! canonical, `R` not a canonical encoding of a point, `R` of small order; the caller sends
//! weak keys to the single check. A `false` only says "not all": the caller checks one by one.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// Whether every `(message, signature)` is a valid signature by `key`. An empty batch holds.
pub fn all_valid(key: &VerifyingKey, items: &[(&[u8], &[u8; 64])]) -> bool {
    let a = key.as_bytes();
    let mut scalars = Vec::with_capacity(items.len() + 2);
    let mut points = Vec::with_capacity(items.len() + 2);
    let mut s_sum = Scalar::ZERO;
    let mut k_sum = Scalar::ZERO;
    for (message, signature) in items {
        let (r_bytes, s_bytes) = signature.split_at(32);
        let r_bytes: [u8; 32] = r_bytes.try_into().expect("64 = 32 + 32");
        let s_bytes: [u8; 32] = s_bytes.try_into().expect("64 = 32 + 32");
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        if !canonical_y(&r_bytes) {
            return false;
        }
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        if r.is_small_order() {
            return false;
        }
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(r_bytes)
                .chain_update(a)
                .chain_update(message)
                .finalize()
                .into(),
        );
        let z = Scalar::from(rand::random::<u128>());
        s_sum += z * s;
        k_sum += z * k;
        scalars.push(z);
        points.push(r);
    }
    scalars.push(-s_sum);
    points.push(ED25519_BASEPOINT_POINT);
    scalars.push(k_sum);
    points.push(key.to_edwards());
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points).is_identity()
}

/// The y coordinate below p = 2^255 - 19 (the sign bit aside). A larger one encodes the same
/// point as a smaller one; `verify_strict` compares encodings and so refuses it.
fn canonical_y(bytes: &[u8; 32]) -> bool {
    let mut y = *bytes;
    y[31] &= 0x7f;
    // p = 0x7fff…ffed, little-endian: y ≥ p only if every byte above the first is at its
    // maximum and the first is ≥ 0xed.
    !(y[0] >= 0xed && y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    type Signed = Vec<(Vec<u8>, [u8; 64])>;

    fn signed(n: usize) -> (SigningKey, Signed) {
        let key = SigningKey::from_bytes(&[9; 32]);
        let items = (0..n)
            .map(|i| {
                let m = format!("meal {i}").into_bytes();
                let s = key.sign(&m).to_bytes();
                (m, s)
            })
            .collect();
        (key, items)
    }

    fn check(key: &SigningKey, items: &Signed) -> bool {
        let refs: Vec<(&[u8], &[u8; 64])> = items.iter().map(|(m, s)| (&m[..], s)).collect();
        all_valid(&key.verifying_key(), &refs)
    }

    #[test]
    fn honest_batches_hold_and_any_change_breaks_them() {
        for n in [0, 1, 2, 63, 200] {
            let (key, items) = signed(n);
            assert!(check(&key, &items), "{n}");
            if n == 0 {
                continue;
            }
            for byte in [0, 31, 32, 63] {
                let mut bad = items.clone();
                bad[n / 2].1[byte] ^= 0x04;
                assert!(!check(&key, &bad), "{n} signature byte {byte}");
            }
            let mut bad = items.clone();
            bad[n - 1].0.push(b'!');
            assert!(!check(&key, &bad), "{n} message");
            let other = SigningKey::from_bytes(&[10; 32]);
            assert!(!check(&other, &items), "{n} other key");
        }
    }

    #[test]
    fn what_verify_strict_refuses_is_refused() {
        let (key, mut items) = signed(3);
        // s ≥ ℓ: the same s plus the group order.
        // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
        let mut l = [0u8; 32];
        l[..16].copy_from_slice(&[
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14,
        ]);
        l[31] = 0x10;
        assert_eq!(Scalar::from_bytes_mod_order(l), Scalar::ZERO);
        let mut s = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(items[1].1[32 + i]) + u16::from(l[i]) + carry;
            s[i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "s + ℓ fits in 32 bytes");
        items[1].1[32..].copy_from_slice(&s);
        assert!(!check(&key, &items));
        // R the identity (small order), and R with y ≥ p.
        let (key, mut items) = signed(3);
        items[0].1[..32].copy_from_slice(&EdwardsPoint::default().compress().to_bytes());
        assert!(!check(&key, &items));
        let mut y = [0xff; 32];
        y[0] = 0xee;
        y[31] = 0x7f;
        assert!(!canonical_y(&y));
        y[0] = 0xec;
        assert!(canonical_y(&y));
    }
}
