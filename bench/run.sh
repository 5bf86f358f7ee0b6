#!/usr/bin/env bash
# Throughput of cellwarden over the shared Windows attack samples, with baselines from the
# same run:
#   1. parse only: `hunt` with one rule that can never match (sources and events, no detection)
#   2. full hunt with all SigmaHQ Windows rules
#   3. the evaluator alone vs rsigma-eval, same in-memory events and rules, one thread
# Prints events/s, MB/s, the hunt/parse ratio, and the peak RSS of the full hunt.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RULES=$SHARED/sigma/rules/windows
need_shared "$SAMPLES" "$RULES"
RUNS=${RUNS:-5}
THREADS=${THREADS:-$(nproc)}
# COPIES > 1: the samples copied that many times into a temporary folder (the ×20 set of
# 5,540 files).
COPIES=${COPIES:-1}
cargo build --release -q
BIN=target/release/cellwarden
if [ "$COPIES" -gt 1 ]; then
    COPY_DIR=$(mktemp -d)
    trap 'rm -rf "$COPY_DIR"' EXIT
    copy_samples "$COPY_DIR" "$COPIES"
    SAMPLES=$COPY_DIR
fi

# best (highest events/s) of $RUNS runs; prints "events/s MB/s"
best() {
    local top_e=0 top_m=0
    for _ in $(seq "$RUNS"); do
        read -r e m < <("$BIN" hunt "$SAMPLES" -r "$@" --threads "$THREADS" --format jsonl -o /dev/null 2>&1 | rate_mb)
        if [ "$e" -gt "$top_e" ]; then top_e=$e; top_m=$m; fi
    done
    echo "$top_e $top_m"
}

read -r pe pm < <(best bench/never.yml --no-analytics)
read -r he hm < <(best "$RULES")
rss=$( { /usr/bin/time -v "$BIN" hunt "$SAMPLES" -r "$RULES" --threads "$THREADS" --format jsonl -o /dev/null; } 2>&1 | sed -n 's/.*Maximum resident set size (kbytes): //p')
echo "cellwarden hunt over $SAMPLES ($THREADS threads, best of $RUNS)"
printf '  parse only   %8d events/s %7.1f MB/s\n' "$pe" "$pm"
printf '  full hunt    %8d events/s %7.1f MB/s  (%s rules)\n' "$he" "$hm" "$(find "$RULES" -name '*.yml' | wc -l)"
awk -v h="$he" -v p="$pe" 'BEGIN { printf "  hunt/parse   %8.0f%%\n", 100*h/p }'
echo "  peak RSS     $((rss / 1024)) MiB (full hunt, whole sample set)"
echo
cargo bench -q -p cellwarden-sigma --bench evaluator 2>/dev/null | grep -v '^$'
