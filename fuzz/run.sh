#!/usr/bin/env bash
# Builds one fuzz target with libFuzzer on the stable toolchain and runs it.
#   fuzz/run.sh TARGET [SECONDS] [libFuzzer options...]
# cargo-fuzz would do the same on nightly; on stable only its coverage flags are needed (no
# sanitizer: safe Rust with `unsafe_code = "forbid"` has no memory errors for ASan to find).
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh token_decode|phone_parse|iin_parse [SECONDS] [libFuzzer options...]}
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))

triple=$(rustc -vV | sed -n 's/^host: //p')
# Own target dir: these flags would otherwise invalidate the main workspace's release builds.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/target}
# --target keeps the flags off build scripts and proc macros.
RUSTFLAGS="--cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares" \
  cargo build --release --target "$triple" --bin "$target"

corpus=corpus/$target
mkdir -p "$corpus" "artifacts/$target"
# Start the token decoder from the committed vectors: valid tokens and every near miss.
if [ "$target" = token_decode ] && [ -z "$(ls -A "$corpus")" ]; then
  i=0
  grep -o '"token": "[^"]*"' ../shared/tests/vectors/token-v1.json | sed 's/^"token": "//; s/"$//' |
    while IFS= read -r t; do printf '%s' "$t" > "$corpus/vector-$i"; i=$((i + 1)); done
fi
exec "$CARGO_TARGET_DIR/$triple/release/$target" -max_total_time="$seconds" \
  -artifact_prefix="artifacts/$target/" "$@" "$corpus"
