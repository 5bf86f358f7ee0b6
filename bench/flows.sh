#!/usr/bin/env bash
# Throughput of the flow path over a generated Zeek conn.log (bench/gen_zeek.py), as TSV and
# as JSON Lines (the same rows), with baselines from the same run:
#   1. parse only: `hunt` with a never-matching rule and the analytics off
#   2. flows analysed: `hunt` with a never-matching rule and the flow analytics on
#   3. with BASE_REV (a commit) or BASE_BIN (a binary): both of that version, runs interleaved
# Prints rows/s and MB/s, the ratios, and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000000}
RUNS=${RUNS:-3}
THREADS=${THREADS:-$(nproc)}
cargo build --release -q
BIN=target/release/cellwarden
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
. bench/lib.sh
BASE=
if [ -n "${BASE_REV:-}${BASE_BIN:-}" ]; then BASE=$(base_binary "${BASE_REV:-HEAD}"); fi
python3 bench/gen_zeek.py "$DIR" "$N"

run() { # bin, args…; prints "rows/s MB/s"
    local bin=$1
    shift
    "$bin" hunt "$@" -r bench/never.yml --threads "$THREADS" --format jsonl -o /dev/null 2>&1 | rate_mb
}

for f in conn.log conn.json; do
    declare -A top=()
    for _ in $(seq "$RUNS"); do
        for bin in "$BIN" $BASE; do
            for mode in parse analysed; do
                if [ "$mode" = parse ]; then extra=(--no-analytics); else extra=(); fi
                read -r e m < <(run "$bin" "$DIR/$f" "${extra[@]}")
                k="$bin $mode"
                if [ "$e" -gt "${top[$k]:-0}" ]; then top[$k]=$e; top["$k mb"]=$m; fi
            done
        done
    done
    rss=$( { /usr/bin/time -v "$BIN" hunt "$DIR/$f" -r bench/never.yml --threads "$THREADS" --format jsonl -o /dev/null; } 2>&1 | sed -n 's/.*Maximum resident set size (kbytes): //p')
    pe=${top["$BIN parse"]}; ae=${top["$BIN analysed"]}
    echo "$f: $N rows, $(du -m "$DIR/$f" | cut -f1) MB, $THREADS threads, best of $RUNS"
    printf '  parse only        %9d rows/s %7.1f MB/s  (%d per core)\n' "$pe" "${top["$BIN parse mb"]}" "$((pe / THREADS))"
    printf '  flows analysed    %9d rows/s %7.1f MB/s  (%s%% of parse only; %d per core)\n' "$ae" "${top["$BIN analysed mb"]}" "$(pct "$ae" "$pe")" "$((ae / THREADS))"
    if [ -n "$BASE" ]; then
        bp=${top["$BASE parse"]}; ba=${top["$BASE analysed"]}
        printf '  baseline: parse only %9d rows/s (now %s%%), analysed %9d rows/s (now %s%%)\n' "$bp" "$(pct "$pe" "$bp")" "$ba" "$(pct "$ae" "$ba")"
    fi
    echo "  peak RSS          $((rss / 1024)) MiB"
    unset top
done
drop_base
