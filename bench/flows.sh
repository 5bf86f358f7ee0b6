#!/usr/bin/env bash
# Throughput of the flow path over a generated Zeek conn.log (bench/gen_zeek.py), as TSV and
# as JSON Lines (the same rows), with baselines from the same run:
#   1. parse only: `hunt` with a never-matching rule and the analytics off
#   2. flows analysed: `hunt` with a never-matching rule and the flow analytics on
# Prints rows/s and MB/s, the ratio, and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000000}
RUNS=${RUNS:-3}
THREADS=${THREADS:-$(nproc)}
cargo build --release -q
BIN=target/release/cellwarden
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
python3 bench/gen_zeek.py "$DIR" "$N"

best() { # args…; prints "rows/s MB/s" (best of $RUNS)
    local top_e=0 top_m=0
    for _ in $(seq "$RUNS"); do
        line=$("$BIN" hunt "$@" -r bench/never.yml --threads "$THREADS" --format jsonl -o /dev/null 2>&1 | grep '^summary:')
        e=$(echo "$line" | sed -E 's/.*\(([0-9]+) events\/s, ([0-9.]+) MB\/s\).*/\1/')
        m=$(echo "$line" | sed -E 's/.*\(([0-9]+) events\/s, ([0-9.]+) MB\/s\).*/\2/')
        if [ "$e" -gt "$top_e" ]; then top_e=$e; top_m=$m; fi
    done
    echo "$top_e $top_m"
}

for f in conn.log conn.json; do
    read -r pe pm < <(best "$DIR/$f" --no-analytics)
    read -r ae am < <(best "$DIR/$f")
    rss=$( { /usr/bin/time -v "$BIN" hunt "$DIR/$f" -r bench/never.yml --threads "$THREADS" --format jsonl -o /dev/null; } 2>&1 | sed -n 's/.*Maximum resident set size (kbytes): //p')
    echo "$f: $N rows, $(du -m "$DIR/$f" | cut -f1) MB, $THREADS threads, best of $RUNS"
    printf '  parse only        %9d rows/s %7.1f MB/s\n' "$pe" "$pm"
    printf '  flows analysed    %9d rows/s %7.1f MB/s  (%s%% of parse only)\n' "$ae" "$am" "$(awk -v a="$ae" -v b="$pe" 'BEGIN{printf "%.0f", 100*a/b}')"
    echo "  peak RSS          $((rss / 1024)) MiB"
done
