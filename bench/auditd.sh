#!/usr/bin/env bash
# Throughput of `hunt` over an auditd log (bench/gen_auditd.py: N events, raw format), against
# a baseline binary in the same run (BASE_BIN, or built from BASE_REV, default 23a1b82: the
# reader before lineage, system call names and file events):
#   1. parse only: `hunt` with a never-matching rule and the analytics off
#   2. hunt with SigmaHQ's rules/linux (../shared/data/sigma/rules/linux)
# Prints events/s and MB/s of both binaries and the ratio new/baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
RUNS=${RUNS:-3}
THREADS=${THREADS:-$(nproc)}
RULES=${RULES:-../shared/data/sigma/rules/linux}
cargo build --release -q
BIN=target/release/cellwarden
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
. bench/lib.sh
BASE_BIN=$(base_binary "${BASE_REV:-23a1b82}")
python3 bench/gen_auditd.py "$DIR/audit.log" "$N"

best() { # bin, args…; prints "events/s MB/s" (best of $RUNS)
    local bin=$1 top_e=0 top_m=0
    shift
    for _ in $(seq "$RUNS"); do
        read -r e m < <("$bin" hunt "$DIR/audit.log" "$@" --threads "$THREADS" --format jsonl -o /dev/null 2>&1 | rate_mb)
        if [ "$e" -gt "$top_e" ]; then top_e=$e; top_m=$m; fi
    done
    echo "$top_e $top_m"
}

echo "audit.log: $N events, $(du -m "$DIR/audit.log" | cut -f1) MB, $THREADS threads, best of $RUNS"
for what in parse rules; do
    if [ "$what" = parse ]; then args=(-r bench/never.yml --no-analytics); else args=(-r "$RULES"); fi
    read -r be bm < <(best "$BASE_BIN" "${args[@]}")
    read -r ne nm < <(best "$BIN" "${args[@]}")
    printf '  %-6s baseline %9d events/s %7.1f MB/s | now %9d events/s %7.1f MB/s | %s%% of baseline\n' \
        "$what" "$be" "$bm" "$ne" "$nm" "$(pct "$ne" "$be")"
done
drop_base
