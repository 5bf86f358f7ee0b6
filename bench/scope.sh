#!/usr/bin/env bash
# Throughput of `cellwarden scope` over large generated database audit logs (bench/gen_dbaudit.py:
# a pgaudit stderr log and a MySQL Enterprise Audit JSON log), with baselines from the same run:
#   1. parse only: `hunt` with a never-matching rule and the database analytics off
#   2. scope with the SQL fingerprint cache (the default)
#   3. scope parsing every statement (--no-sql-cache)
#   4. the SQL analyser and access collector alone, one thread (cargo bench --bench sql)
# Prints statements/s and MB/s per run, the ratios, and peak RSS of scope.
set -euo pipefail
cd "$(dirname "$0")/.."
N_PG=${N_PG:-1000000}
N_MY=${N_MY:-500000}
RUNS=${RUNS:-3}
THREADS=${THREADS:-$(nproc)}
cargo build --release -q
BIN=target/release/cellwarden
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
python3 bench/gen_dbaudit.py "$DIR" "$N_PG" "$N_MY"

for f in postgresql-bench.log mysql-audit-bench.json; do
    in="$DIR/$f"
    mb=$(du -m "$in" | cut -f1)
    best_p=0; best_c=0; best_u=0
    for _ in $(seq "$RUNS"); do
        p=$("$BIN" hunt "$in" -r bench/never.yml --no-analytics --threads "$THREADS" --format jsonl -o /dev/null 2>&1 | sed -n -E 's/^summary: .*\(([0-9]+) events\/s.*/\1/p')
        c=$("$BIN" scope "$in" --threads "$THREADS" -o /dev/null --schema-out /dev/null 2>&1 | sed -n -E 's/^summary: .*\(([0-9]+) statements\/s\).*/\1/p')
        [ "$p" -gt "$best_p" ] && best_p=$p
        [ "$c" -gt "$best_c" ] && best_c=$c
    done
    u=$("$BIN" scope "$in" --no-sql-cache --threads "$THREADS" -o /dev/null --schema-out /dev/null 2>&1 | sed -n -E 's/^summary: .*\(([0-9]+) statements\/s\).*/\1/p')
    rss=$( { /usr/bin/time -v "$BIN" scope "$in" --threads "$THREADS" -o /dev/null --schema-out /dev/null; } 2>&1 | sed -n 's/.*Maximum resident set size (kbytes): //p')
    echo "$f: ${mb} MB, $THREADS threads, best of $RUNS"
    printf '  parse only (no analytics)   %9d statements/s\n' "$best_p"
    printf '  scope, fingerprint cache    %9d statements/s  (%s%% of parse only)\n' "$best_c" "$(awk -v a="$best_c" -v b="$best_p" 'BEGIN{printf "%.0f", 100*a/b}')"
    printf '  scope, parsing every SQL    %9d statements/s  (cache: %sx faster)\n' "$u" "$(awk -v a="$best_c" -v b="$u" 'BEGIN{printf "%.1f", a/b}')"
    echo "  peak RSS of scope           $((rss / 1024)) MiB"
done
echo
cargo bench -q -p cellwarden-telecom --bench sql 2>/dev/null | grep -v '^$'
