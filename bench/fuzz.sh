#!/usr/bin/env bash
# Runs every fuzz target longer than the tests do (FUZZ_SECS per target, default 60) and prints
# executions per target. Inputs that fail are saved under target/fuzz-failures/<target>/;
# copy them into the crate's tests/fuzz-regressions/<target>/ once fixed, so they stay tests.
#   bash bench/fuzz.sh            # 60 s a target
#   FUZZ_SECS=600 FUZZ_SEED=42 bash bench/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_SECS=${FUZZ_SECS:-60}
for p in cellwarden-source cellwarden-telecom cellwarden-sigma cellwarden-web; do
    cargo test --release -q -p "$p" --test fuzz -- --test-threads 1 2>&1 |
        grep -oE 'fuzz [a-z-]+: [0-9]+ executions, slowest [^ ]+|panicked.*|[0-9]+ failed' || true
done
