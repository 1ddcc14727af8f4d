#!/usr/bin/env python3
"""Prints the docs/benchmarks.md table from the last `cargo bench -p tamaq-shared --bench token`.

Reads criterion's estimates and samples under $CARGO_TARGET_DIR/criterion (default: target/):
the estimate criterion prints (the slope of time over iterations, or the mean) and the fastest
sample (time per iteration of the least disturbed sample; other processes only ever add time).
The paired ratios are printed by the benchmark itself, after criterion's figures.
"""

import json
import os
import sys
from pathlib import Path

ROWS = [
    ("ed25519/raw_sign", "Ed25519 sign, 52-byte message (raw)"),
    ("ed25519/token_sign", "token sign (`token::sign`)"),
    ("ed25519/raw_verify_strict", "Ed25519 verify_strict, 52-byte message (raw)"),
    ("ed25519/token_verify", "token verify (`token::verify`, ring of 3 keys)"),
    ("codec/encode", "encode 105 bytes → 140 characters"),
    ("codec/decode", "decode 140 characters → claims"),
    ("qr/matrix", "QR matrix, level M (`qrcode`)"),
    ("qr/png", "QR matrix + PNG (`image`)"),
    ("qr/svg", "QR matrix + SVG"),
]


def load(root: Path, name: str):
    new = root / name / "new"
    estimates = json.loads((new / "estimates.json").read_text())
    typical = (estimates.get("slope") or estimates["mean"])["point_estimate"]
    sample = json.loads((new / "sample.json").read_text())
    fastest = min(t / i for t, i in zip(sample["times"], sample["iters"]))
    return typical, fastest


def fmt(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def main() -> int:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CARGO_TARGET_DIR", "target"))
    root = target / "criterion"
    data = {name: load(root, name) for name, _ in ROWS}
    print("| operation | estimate | fastest sample |")
    print("| --- | ---: | ---: |")
    for name, label in ROWS:
        typical, fastest = data[name]
        print(f"| {label} | {fmt(typical)} | {fmt(fastest)} |")
    print()
    for op in ("sign", "verify"):
        raw = "ed25519/raw_sign" if op == "sign" else "ed25519/raw_verify_strict"
        tok = f"ed25519/token_{op}"
        by_estimate = data[tok][0] / data[raw][0]
        by_fastest = data[tok][1] / data[raw][1]
        print(f"token {op} / raw {op}: {by_estimate:.3f}× (estimates), {by_fastest:.3f}× (fastest samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
