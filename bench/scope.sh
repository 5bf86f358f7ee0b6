#!/usr/bin/env bash
# Throughput of `cellwarden scope` over large generated database audit logs (bench/gen_dbaudit.py:
# a pgaudit stderr log with every statement in a session of its own, the same statements in
# sessions as a server keeps them, and MySQL Enterprise Audit JSON logs: `general` records only,
# and half as many statements as the `log_all` filter writes them, per table and `general`,
# 300 connections interleaved), with baselines from the same run:
#   1. parse only: `hunt` with a never-matching rule and the database analytics off
#   2. scope with the SQL fingerprint cache (the default)
#   3. scope parsing every statement (--no-sql-cache)
#   4. with BASE_REV (a commit) or BASE_BIN (a binary): scope of that version, runs interleaved
#      with this one's
#   5. the SQL analyser and access collector alone, one thread (cargo bench --bench sql)
# Prints statements/s per run, the ratios, and peak RSS of scope.
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
. bench/lib.sh
BASE=
if [ -n "${BASE_REV:-}${BASE_BIN:-}" ]; then BASE=$(base_binary "${BASE_REV:-HEAD}"); fi
python3 bench/gen_dbaudit.py "$DIR" "$N_PG" "$N_MY"

scope() { # bin, file; prints statements/s
    "$1" scope "$2" --threads "$THREADS" -o /dev/null --schema-out /dev/null 2>&1 | rate statements
}
max() { if [ "$1" -gt "$2" ]; then echo "$1"; else echo "$2"; fi; }

for f in postgresql-bench.log postgresql-sessions-bench.log mysql-audit-bench.json mysql-audit-logall-bench.json; do
    in="$DIR/$f"
    mb=$(du -m "$in" | cut -f1)
    best_p=0; best_c=0; best_b=0
    for _ in $(seq "$RUNS"); do
        p=$("$BIN" hunt "$in" -r bench/never.yml --no-analytics --threads "$THREADS" --format jsonl -o /dev/null 2>&1 | rate events)
        best_p=$(max "$p" "$best_p")
        best_c=$(max "$(scope "$BIN" "$in")" "$best_c")
        if [ -n "$BASE" ]; then best_b=$(max "$(scope "$BASE" "$in")" "$best_b"); fi
    done
    u=$("$BIN" scope "$in" --no-sql-cache --threads "$THREADS" -o /dev/null --schema-out /dev/null 2>&1 | rate statements)
    out=$( { /usr/bin/time -v "$BIN" scope "$in" --threads "$THREADS" -o /dev/null --schema-out /dev/null; } 2>&1)
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' <<<"$out")
    # Records and the statements they make (MySQL's log_all writes a statement as several).
    read -r recs stmts < <(sed -n -E 's/^summary: [0-9]+ files?, ([0-9]+) events, ([0-9]+) database statements.*/\1 \2/p' <<<"$out")
    best_cr=$((best_c * recs / stmts))
    echo "$f: ${mb} MB, $THREADS threads, best of $RUNS, $recs records, $stmts statements"
    printf '  parse only (no analytics)   %9d records/s\n' "$best_p"
    printf '  scope, fingerprint cache    %9d statements/s  (%d records/s: %s%% of parse only; %d statements/s per core)\n' "$best_c" "$best_cr" "$(pct "$best_cr" "$best_p")" "$((best_c / THREADS))"
    printf '  scope, parsing every SQL    %9d statements/s  (cache: %sx faster)\n' "$u" "$(awk -v a="$best_c" -v b="$u" 'BEGIN{printf "%.1f", a/b}')"
    if [ -n "$BASE" ]; then
        printf '  scope of the baseline       %9d statements/s  (now %s%% of it)\n' "$best_b" "$(pct "$best_c" "$best_b")"
    fi
    echo "  peak RSS of scope           $((rss / 1024)) MiB"
done
drop_base
echo
cargo bench -q -p cellwarden-telecom --bench sql 2>/dev/null | grep -v '^$'
