#!/usr/bin/env bash
# Throughput of the signalling path over the simulator's tracking capture (`simulate --scenario
# tracking`; N subscribers, two exchanges each), with baselines from the same run:
#   1. the raw read of the capture's records and the decoder alone, one thread
#      (cargo bench --bench decode)
#   2. `hunt` with a never-matching rule and the analytics off (decoding through the pipeline)
#   3. `hunt` with the signalling detections
# Prints packets, messages (events) and MB per second, the ratios, and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
RUNS=${RUNS:-3}
THREADS=${THREADS:-$(nproc)}
cargo build --release -q
BIN=target/release/cellwarden
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
. bench/lib.sh
"$BIN" simulate --out "$DIR/sim" --scenario tracking --days 1 --subscribers "$N" >/dev/null
CAP="$DIR/sim/network/signalling.pcap"
cargo bench -q -p cellwarden-signal --bench decode -- "$CAP" 2>/dev/null | grep -v '^$'
run() { "$BIN" hunt "$CAP" "$@" --threads "$THREADS" --format jsonl -o /dev/null 2>&1 | rate_mb; }
best_p=0; best_a=0
for _ in $(seq "$RUNS"); do
    read -r e m < <(run -r bench/never.yml --no-analytics)
    if [ "$e" -gt "$best_p" ]; then best_p=$e; mb_p=$m; fi
    read -r e m < <(run)
    if [ "$e" -gt "$best_a" ]; then best_a=$e; mb_a=$m; fi
done
rss=$( { /usr/bin/time -v "$BIN" hunt "$CAP" --threads "$THREADS" --format jsonl -o /dev/null; } 2>&1 | sed -n 's/.*Maximum resident set size (kbytes): //p')
echo "hunt, $THREADS threads, best of $RUNS"
printf '  decoded, no analytics   %9d events/s %7.1f MB/s\n' "$best_p" "$mb_p"
printf '  with the detections     %9d events/s %7.1f MB/s  (%s%% of decoding alone)\n' "$best_a" "$mb_a" "$(pct "$best_a" "$best_p")"
echo "  peak RSS                $((rss / 1024)) MiB"
