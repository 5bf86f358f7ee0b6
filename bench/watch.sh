#!/usr/bin/env bash
# Sustained throughput of `cellwarden watch`, with `hunt` over the same events in the same run
# as the baseline:
#   1. file follow: a generated Zeek conn.log ($N_FLOWS flows) already on disk, read by watch
#      until its checkpoint covers every line (events/s, MB/s) vs `hunt` of the file, in
#      $PAIRS pairs run back to back (with BASE_REV or BASE_BIN, pairs of that version between)
#   2. Kafka (when tansu is installed): the same flows as JSON records on a 2-partition topic
#      (beside `hunt` of that JSON, their own baseline),
#      consumed by 1 worker, then by 2 parse workers + 1 state worker
#   3. memory: watch following $N_MEM flows over 30 days with --retention-days 7; peak and
#      final RSS and the state entries from /metrics
# Timings poll the checkpoint every 0.05 s; watch checkpoints every $CK s (0.2), so a figure is
# at most that late. Reading a backlog, watch judges the closed days once input pauses: the
# follow and Kafka timings wait for its log line saying so (they include the judging).
set -euo pipefail
cd "$(dirname "$0")/.."
N_FLOWS=${N_FLOWS:-1000000}
N_MEM=${N_MEM:-10000000}
DIR=${DIR:-$(mktemp -d)}
CK=${CK:-0.2}
cargo build --release -q
cargo build --release -q -p cellwarden-stream --example produce
BIN=$PWD/target/release/cellwarden
PRODUCE=$PWD/target/release/examples/produce

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits until the state folders given have handled $1 records in total (the checkpoints' lines
# for files, next offsets for Kafka; with $METRICS, the events counted on that metrics address
# instead: a state stage's offsets count the parse stage's marks too) and, when $LOGS names log
# files, until one says the closed days were judged; prints seconds since $2. With $METRICS it
# also stops once the count has not moved for 3 s, and prints the seconds to its last move and
# the count: when the parse group moves a partition, the test broker skips the rest of the
# batch the committed offset falls in (see examples/produce.rs), so a few records may never
# come. One poller process (every 0.05 s) so that polling takes little of the machine.
wait_for() {
    python3 - "$@" <<'EOF'
import json, os, sys, time, urllib.request
want, t0, dirs = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
logs = [l for l in os.environ.get("LOGS", "").split(":") if l]
metrics = os.environ.get("METRICS")
def counted():
    try:
        page = urllib.request.urlopen("http://%s/metrics" % metrics, timeout=1).read().decode()
    except Exception:
        return 0
    return sum(int(float(l.split()[-1])) for l in page.splitlines()
               if l.startswith("cellwarden_events_total"))
def handled(d):
    if metrics:
        return counted()
    try:
        c = json.load(open(d + "/checkpoint.json"))
    except Exception:
        return 0
    return sum(v["lines"] for v in c.get("files", {}).values()) + sum(c.get("kafka", {}).values())
def judged():
    return not logs or any("judged together" in open(l, errors="replace").read() for l in logs)
read = None
last, moved = -1, time.time()
while True:
    n = sum(handled(d) for d in dirs)
    if n != last:
        last, moved = n, time.time()
    if read is None and n >= want:
        read = time.time()
    if read is None and metrics and n > 0 and time.time() - moved > 3:
        print(moved - t0, n)
        sys.exit(0)
    # Days wait at most 30 s; a run that never defers them has no such line.
    if read is not None and (judged() or time.time() - read > 35):
        break
    time.sleep(0.05)
print(time.time() - t0, *([last] if metrics else []))
EOF
}
per_sec() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%d", n / s }'; }

mkdir -p "$DIR/flows"
[ -f "$DIR/flows/conn.log" ] || python3 bench/gen_zeek.py "$DIR/flows" "$N_FLOWS"
LOG=$DIR/flows/conn.log
LINES=$(wc -l <"$LOG")
MB=$(du -m "$LOG" | cut -f1)
echo "follow: $LOG ($N_FLOWS flows, $MB MB)"

# Baseline: hunt over the file (all cores), then the follow to the judged days, in pairs
# ($PAIRS, 3 by default; with BASE_REV or BASE_BIN, a pair of that version after each of
# ours): the machine's speed moves between runs, so each ratio is of a pair run back to back,
# and the median and spread of the ratios are printed.
follow_pair() { # bin; prints "hunt_events/s hunt_MB/s follow_secs"
    local bin=$1 line st
    line=$("$bin" hunt "$LOG" --format jsonl -o /dev/null 2>&1 | grep '^summary:')
    st=$DIR/st-follow
    rm -rf "$st"
    local t0
    t0=$(now)
    "$bin" watch --follow "$LOG" --state "$st" --checkpoint-secs "$CK" -q \
        -o "$DIR/follow-alerts.jsonl" 2>"$DIR/follow.log" &
    local pid=$!
    local secs
    secs=$(LOGS=$DIR/follow.log wait_for "$LINES" "$t0" "$st")
    kill -TERM $pid
    wait $pid || true
    echo "$(echo "$line" | sed -E 's/.*\(([0-9]+) events\/s, ([0-9.]+) MB\/s\).*/\1 \2/') $secs"
}
. bench/lib.sh
BASE=
if [ -n "${BASE_REV:-}${BASE_BIN:-}" ]; then BASE=$(base_binary "${BASE_REV:-HEAD}"); fi
PAIRS=${PAIRS:-3}
ratios=() base_ratios=()
for i in $(seq "$PAIRS"); do
    read -r he hm secs < <(follow_pair "$BIN")
    fe=$(per_sec "$N_FLOWS" "$secs")
    r=$(echo "$fe / $he" | bc -l)
    ratios+=("$r")
    printf '  pair %d: hunt %8d events/s %7.1f MB/s, watch --follow %8d events/s %7.1f MB/s (%.2f of hunt)\n' \
        "$i" "$he" "$hm" "$fe" "$(echo "$MB / $secs" | bc -l)" "$r"
    if [ -n "$BASE" ]; then
        read -r bhe _ bsecs < <(follow_pair "$BASE")
        bfe=$(per_sec "$N_FLOWS" "$bsecs")
        br=$(echo "$bfe / $bhe" | bc -l)
        base_ratios+=("$br")
        printf '  pair %d, base: hunt %8d events/s, watch --follow %8d events/s (%.2f of hunt)\n' \
            "$i" "$bhe" "$bfe" "$br"
    fi
done
spread() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {printf "median %.2f (%.2f-%.2f)", v[int((NR+1)/2)], v[1], v[NR]}'; }
echo "  watch --follow / hunt over $PAIRS pairs: $(spread "${ratios[@]}")"
if [ -n "$BASE" ]; then
    echo "  the same, base: $(spread "${base_ratios[@]}")"
fi
drop_base

TANSU=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
if [ -x "$TANSU" ]; then
    port=$(free_port)
    url=tcp://127.0.0.1:$port
    "$TANSU" broker --listener-url "$url" --advertised-listener-url "$url" \
        --storage-engine memory://tansu/ >/dev/null 2>&1 &
    broker=$!
    trap 'kill $broker 2>/dev/null || true' EXIT
    until (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.2; done
    for t in in handoff; do "$TANSU" topic create "$t" --broker "$url" --partitions 2 >/dev/null; done
    "$PRODUCE" "127.0.0.1:$port" in <"$DIR/flows/conn.json"
    JMB=$(du -m "$DIR/flows/conn.json" | cut -f1)
    # The records on the topic are JSON: hunt over the same JSON is their own baseline.
    je=$("$BIN" hunt "$DIR/flows/conn.json" --format jsonl -o /dev/null 2>&1 | grep '^summary:' |
        sed -E 's/.*\(([0-9]+) events\/s.*/\1/')
    rm -rf "$DIR"/st-k*
    t0=$(now)
    "$BIN" watch --kafka "127.0.0.1:$port" --topic in --group one --state "$DIR/st-k1" \
        --checkpoint-secs "$CK" -q 2>"$DIR/k1.log" &
    pid=$!
    secs=$(LOGS=$DIR/k1.log wait_for "$N_FLOWS" "$t0" "$DIR/st-k1")
    kill -TERM $pid; wait $pid || true
    k1=$(per_sec "$N_FLOWS" "$secs")
    t0=$(now)
    for w in a b; do
        "$BIN" watch --kafka "127.0.0.1:$port" --topic in --group parse --stage parse \
            --forward handoff --state "$DIR/st-kp$w" --checkpoint-secs "$CK" -q 2>/dev/null &
    done
    kport=$(free_port)
    "$BIN" watch --kafka "127.0.0.1:$port" --topic handoff --group state --stage state \
        --state "$DIR/st-ks" --checkpoint-secs "$CK" -q --metrics "127.0.0.1:$kport" \
        2>"$DIR/ks.log" &
    read -r secs got < <(LOGS=$DIR/ks.log METRICS=127.0.0.1:$kport wait_for "$N_FLOWS" "$t0" "$DIR/st-ks")
    pkill -TERM -f -- "--state $DIR/st-k" || true
    while pgrep -f -- "--state $DIR/st-k" >/dev/null; do sleep 0.2; done
    k2=$(per_sec "$got" "$secs")
    if [ "$got" -lt "$N_FLOWS" ]; then
        echo "  (two-stage run: $((N_FLOWS - got)) records skipped by the test broker when the parse group moved a partition)"
    fi
    printf '  hunt of the JSON   %8d events/s\n' "$je"
    printf '  kafka, 1 worker    %8d events/s %7.1f MB/s  (%.2f of hunt, %.2f of hunt of the JSON)\n' "$k1" \
        "$(echo "$JMB * $k1 / $N_FLOWS" | bc -l)" "$(echo "$k1 / $he" | bc -l)" "$(echo "$k1 / $je" | bc -l)"
    printf '  kafka, 2 parse + 1 state %8d events/s %7.1f MB/s  (%.2f of hunt, %.2f of hunt of the JSON)\n' "$k2" \
        "$(echo "$JMB * $k2 / $N_FLOWS" | bc -l)" "$(echo "$k2 / $he" | bc -l)" "$(echo "$k2 / $je" | bc -l)"
    kill $broker 2>/dev/null || true
else
    echo "  kafka: skipped (tansu not installed)"
fi

# Memory after $N_MEM events with a 7-day window.
mkdir -p "$DIR/mem"
[ -f "$DIR/mem/conn.log" ] || python3 bench/gen_zeek.py "$DIR/mem" "$N_MEM"
rm -f "$DIR/mem/conn.json"
MLINES=$(wc -l <"$DIR/mem/conn.log")
mport=$(free_port)
rm -rf "$DIR/st-mem"
t0=$(now)
"$BIN" watch --follow "$DIR/mem/conn.log" --state "$DIR/st-mem" --checkpoint-secs "$CK" -q -o /dev/null \
    --retention-days 7 --metrics "127.0.0.1:$mport" 2>/dev/null &
pid=$!
secs=$(wait_for "$MLINES" "$t0" "$DIR/st-mem")
hwm=$(sed -n 's/VmHWM:\s*//p' /proc/$pid/status)
rss=$(sed -n 's/VmRSS:\s*//p' /proc/$pid/status)
entries=$(curl -s "http://127.0.0.1:$mport/metrics" | grep '^cellwarden_state_entries' | tr '\n' ' ')
kill -TERM $pid; wait $pid || true
printf '  memory after %d events (%.0f s, %d events/s): peak %s, now %s\n' "$N_MEM" "$secs" \
    "$(per_sec "$N_MEM" "$secs")" "$hwm" "$rss"
echo "  state: $entries"
