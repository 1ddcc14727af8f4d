#!/usr/bin/env python3
"""A second implementation of QR token v1 verification, written from docs/token-format.md only,
checked against the committed vectors.

It shares no code with the Rust crate: Python 3, the `cryptography` package for the Ed25519
equation, and its own small-order check (docs/token-format.md section 4, step 3), which OpenSSL
does not do.

    python3 shared/tests/vectors/check_vectors.py [path/to/token-v1.json]

Prints one line per disagreement and a summary; exits non-zero if any case disagrees. Not part
of `cargo test`.
"""

import base64
import hashlib
import json
import re
import struct
import sys
import uuid
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DOMAIN = b"TAMAQ-QR-V1"
TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]{140}")

# Curve constants (RFC 8032 section 5.1).
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


class Verdict(Exception):
    """A failed check; its argument is the verdict code."""


def key_id(public_key: bytes) -> bytes:
    return hashlib.sha256(public_key).digest()[:4]


def decode_point(data: bytes):
    """RFC 8032 section 5.1.3; None if the bytes are not a point."""
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = (u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P)) % P
    if (v * x * x - u) % P != 0:
        if (v * x * x + u) % P != 0:
            return None
        x = (x * SQRT_M1) % P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def double(pt):
    x1, y1, z1, _ = pt
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = (a + b) % P
    e = (h - (x1 + y1) * (x1 + y1)) % P
    g = (a - b) % P
    f = (c + g) % P
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def has_small_order(pt) -> bool:
    """[8]P is the neutral element (x = 0, y = z)."""
    for _ in range(3):
        pt = double(pt)
    x, y, z, _ = pt
    return x % P == 0 and (y - z) % P == 0


def verify_strict(public_key: bytes, message: bytes, signature: bytes) -> bool:
    r, s = signature[:32], signature[32:]
    if int.from_bytes(s, "little") >= L:  # step 1
        return False
    point_a, point_r = decode_point(public_key), decode_point(r)
    if point_a is None or point_r is None:  # step 2
        return False
    if has_small_order(point_a) or has_small_order(point_r):  # step 3
        return False
    try:  # step 4: OpenSSL's cofactorless equation with a byte comparison of R
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def decode(text: str) -> dict:
    """Section 1 and 2: shape first, then bytes."""
    if not TOKEN_TEXT.fullmatch(text):
        raise Verdict("bad_format")
    raw = base64.urlsafe_b64decode(text)
    assert len(raw) == 105
    version, kid, voucher, school, issued, expires, nonce = struct.unpack(">B4s16sIII8s", raw[:41])
    if version != 1 or expires <= issued:
        raise Verdict("bad_format")
    return {
        "payload": raw[:41],
        "signature": raw[41:],
        "key_id": kid,
        "voucher_id": str(uuid.UUID(bytes=voucher)),
        "school_code": school,
        "issued_at": issued,
        "expires_at": expires,
        "nonce": nonce.hex(),
    }


def trusted_keys(case: dict) -> list:
    """(key id, public key, verify_until or None) for every trusted key of a case."""
    ring = []
    for text in case["public_keys"]:
        pk = base64.urlsafe_b64decode(text + "=")
        ring.append((key_id(pk), pk, None))
    for entry in case.get("trusted_keys", []):
        pk = base64.urlsafe_b64decode(entry["public_key"] + "=")
        if len(pk) != 32 or key_id(pk).hex() != entry["key_id"]:
            raise ValueError(f"{case['name']}: trust entry does not match its key id")
        ring.append((key_id(pk), pk, entry["verify_until"]))
    return ring


def verify(case: dict) -> dict:
    """Section 7, in order; returns the claims or raises the verdict."""
    token = decode(case["token"])
    now, skew = case["now"], case["skew"]
    candidates = [
        pk
        for kid, pk, until in trusted_keys(case)
        if kid == token["key_id"] and (until is None or now <= until)
    ]
    if not candidates:
        raise Verdict("unknown_key")
    message = DOMAIN + token["payload"]
    if not any(verify_strict(pk, message, token["signature"]) for pk in candidates):
        raise Verdict("bad_signature")
    if token["school_code"] != case["school_code"]:
        raise Verdict("wrong_school")
    if now < token["issued_at"] - skew:
        raise Verdict("not_yet_valid")
    if now > token["expires_at"] + skew:
        raise Verdict("expired")
    return token


def check(case: dict):
    """None if the case agrees, else what went wrong."""
    try:
        token = verify(case)
    except Verdict as v:
        got = v.args[0]
        return None if got == case["expect"] else f"expected {case['expect']}, got {got}"
    if case["expect"] != "ok":
        return f"expected {case['expect']}, got ok"
    want = case.get("claims")
    if want is not None:
        got = {field: token[field] for field in want if field != "key_id"}
        got["key_id"] = token["key_id"].hex()
        if got != want:
            return f"claims {got} != {want}"
    return None


def main() -> int:
    default = Path(__file__).with_name("token-v1.json")
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
    failed = 0
    for case in cases:
        problem = check(case)
        if problem:
            failed += 1
            print(f"DISAGREE {case['name']}: {problem}")
    print(f"token-v1 vectors: {len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
