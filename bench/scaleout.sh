#!/usr/bin/env bash
# Throughput of partitioned state workers (`watch --stage state --exchange`) on a local tansu
# broker, beside `hunt` over the same records in the same run:
#   1. $N_MY MySQL JSON audit statements (bench/gen_dbaudit.py) and $N_FLOWS Zeek conn flows
#      (bench/gen_zeek.py) produced to a 4-partition input topic
#   2. 2 parse workers hand them on to a 4-partition topic (records/s of the parse stage)
#   3. 1, 2 and 4 state workers, each time a new group reading the handed-on topic from its
#      start: records/s until every partition's records are read, peak RSS per worker
#   4. takeover with a changelog: one state worker of a new group writes its partitions'
#      states to a changelog topic (--changelog) while it reads everything, and stops; then a
#      new worker of that group takes every partition over, restoring it from the changelog:
#      seconds until it has read every partition to its end, beside the seconds the first
#      worker took (a takeover without a changelog reads the handed-on topic from its start,
#      as the first worker did)
# On a 2-core machine more workers share the same cores: the figures show the overhead of
# partitioning (exchange, one engine per partition), not a speed-up.
set -euo pipefail
cd "$(dirname "$0")/.."
N_MY=${N_MY:-300000}
N_FLOWS=${N_FLOWS:-300000}
DIR=${DIR:-$(mktemp -d)}
cargo build --release -q
cargo build --release -q -p cellwarden-stream --example produce
BIN=$PWD/target/release/cellwarden
PRODUCE=$PWD/target/release/examples/produce
TANSU=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
if [ ! -x "$TANSU" ]; then
    echo "skipped: tansu not installed (cargo install tansu --locked --features dynostore,libsql)"
    exit 0
fi

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Sum over partitions of the next offset read, from checkpoint.json (parse workers) or
# progress.json (state workers) in the folders given (a partition counted once, at its most).
offsets() {
    python3 - "$@" <<'EOF'
import json, sys
best = {}
for d in sys.argv[1:]:
    for name in ("checkpoint.json", "progress.json"):
        try:
            c = json.load(open(f"{d}/{name}"))
        except Exception:
            continue
        for k, v in c.get("kafka", {}).items():
            best[k] = max(best.get(k, 0), v)
print(sum(best.values()))
EOF
}
# wait_for N T0 DIR…: waits until the folders' offsets reach N; prints seconds since T0.
wait_for() {
    local want=$1 t0=$2; shift 2
    until [ "$(offsets "$@")" -ge "$want" ]; do sleep 0.1; done
    echo "$(now) - $t0" | bc -l
}
rss() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status" 2>/dev/null || echo 0; }

mkdir -p "$DIR/data"
python3 bench/gen_dbaudit.py "$DIR/data" 0 "$N_MY"
python3 bench/gen_zeek.py "$DIR/data" "$N_FLOWS"
MY=$DIR/data/mysql-audit-bench.json
# Produced in time order, as live sources interleave.
python3 - "$MY" "$DIR/data/conn.json" "$DIR/data/all.json" <<'EOF'
import json, sys
from datetime import datetime, timezone
def t(line):
    o = json.loads(line)
    if "ts" in o:
        return o["ts"]
    d = datetime.strptime(o["timestamp"][:19], "%Y-%m-%d %H:%M:%S")
    return d.replace(tzinfo=timezone.utc).timestamp()
rows = []
for f in sys.argv[1:3]:
    rows.extend((t(l), l) for l in open(f))
rows.sort(key=lambda r: r[0])
with open(sys.argv[3], "w") as out:
    out.writelines(l for _, l in rows)
EOF
ALL=$DIR/data/all.json
TOTAL=$(wc -l <"$ALL")
MB=$(du -m "$ALL" | cut -f1)
echo "records: $TOTAL ($N_MY statements, $N_FLOWS flows, $MB MB as JSON)"

# Baseline: hunt over the same records as files (all cores).
he=$("$BIN" hunt "$MY" "$DIR/data/conn.log" --format jsonl -o /dev/null 2>&1 |
    sed -n -E 's/^summary: .*\(([0-9]+) events\/s.*/\1/p')

port=$(free_port)
url=tcp://127.0.0.1:$port
"$TANSU" broker --listener-url "$url" --advertised-listener-url "$url" \
    --storage-engine memory://tansu/ >/dev/null 2>&1 &
broker=$!
trap 'pkill -TERM -f -- "--state $DIR/st-" 2>/dev/null || true; kill $broker 2>/dev/null || true' EXIT
until (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.2; done
topic() { "$TANSU" topic create "$1" --broker "$url" --partitions "$2" >/dev/null; }
topic in 4
topic handoff 4
topic alerts 1
for m in 1 2 4; do topic "exchange-$m" 1; done
topic exchange-c 1
topic changelog 4
"$PRODUCE" "127.0.0.1:$port" in <"$ALL" 2>/dev/null

t0=$(now)
for w in 1 2; do
    "$BIN" watch --kafka "127.0.0.1:$port" --topic in --group parse --stage parse \
        --forward handoff --state "$DIR/st-p$w" --checkpoint-secs 0.5 -q 2>"$DIR/parse$w.log" &
done
secs=$(wait_for "$TOTAL" "$t0" "$DIR"/st-p1 "$DIR"/st-p2)
pkill -TERM -f -- "--state $DIR/st-p" || true
while pgrep -f -- "--state $DIR/st-p" >/dev/null; do sleep 0.2; done
pe=$(awk -v n="$TOTAL" -v s="$secs" 'BEGIN { printf "%d", n / s }')
printf '  hunt (baseline, one process)   %8d records/s\n' "$he"
printf '  parse stage, 2 workers         %8d records/s  (%.2f of hunt)\n' "$pe" "$(echo "$pe / $he" | bc -l)"

# The handed-on records: one per record (statements and flows feed the analytics).
HANDED=$TOTAL
for m in 1 2 4; do
    rm -rf "$DIR"/st-s"$m"-*
    t0=$(now)
    pids=()
    dirs=()
    for i in $(seq "$m"); do
        d=$DIR/st-s$m-$i
        dirs+=("$d")
        "$BIN" watch --kafka "127.0.0.1:$port" --topic handoff --group "state-$m" --stage state \
            --exchange "exchange-$m" --kafka-alerts alerts --state "$d" --checkpoint-secs 0.2 \
            --idle-secs 2 --kafka-option fetch.wait.max.ms=10 -q 2>"$DIR/state$m-$i.log" &
        pids+=($!)
    done
    secs=$(wait_for "$HANDED" "$t0" "${dirs[@]}")
    peak=0
    for p in "${pids[@]}"; do r=$(rss "$p"); [ "$r" -gt "$peak" ] && peak=$r; done
    kill -TERM "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    se=$(awk -v n="$HANDED" -v s="$secs" 'BEGIN { printf "%d", n / s }')
    printf '  state stage, %d worker(s)       %8d records/s  (%.2f of hunt), peak RSS per worker %d MiB\n' \
        "$m" "$se" "$(echo "$se / $he" | bc -l)" "$peak"
done

# 4. Takeover: the states a worker wrote, restored by the next one.
state_c() { # state_c NAME: a state worker of group state-c writing and reading the changelog
    "$BIN" watch --kafka "127.0.0.1:$port" --topic handoff --group state-c --stage state \
        --exchange exchange-c --kafka-alerts alerts --state "$DIR/st-$1" --checkpoint-secs 0.2 \
        --idle-secs 2 --kafka-option fetch.wait.max.ms=10 --changelog changelog \
        --changelog-secs 5 -q 2>"$DIR/$1.log" &
}
rm -rf "$DIR"/st-c1 "$DIR"/st-c2
t0=$(now)
state_c c1
pid=$!
first=$(wait_for "$HANDED" "$t0" "$DIR/st-c1")
# Stopped once its states are written after its last judging (it writes them again as it
# stops).
until grep -q "days before" "$DIR/c1.log"; do sleep 0.2; done
sleep 3
kill -TERM $pid
wait $pid 2>/dev/null || true
bytes=$(python3 - "$DIR/c1.log" <<'EOF'
import re, sys
last = {}
for l in open(sys.argv[1]):
    m = re.search(r"kafka://handoff/(\d+): state written to the changelog \((\d+) bytes", l)
    if m:
        last[m.group(1)] = int(m.group(2))
print(sum(last.values()))
EOF
)
t0=$(now)
state_c c2
pid=$!
second=$(wait_for "$HANDED" "$t0" "$DIR/st-c2")
kill -TERM $pid
wait $pid 2>/dev/null || true
restored=$(grep -c "restored from the changelog" "$DIR/c2.log" || true)
printf '  one state worker writing a changelog: %.1f s to read everything (%d records/s)\n' \
    "$first" "$(awk -v n="$HANDED" -v s="$first" 'BEGIN { printf "%d", n / s }')"
printf '  its partitions'"'"' latest states: %d bytes in all\n' "$bytes"
printf '  takeover by a new worker: %d of 4 partitions restored, %.1f s until all are read to their end (%.2f of the first)\n' \
    "$restored" "$second" "$(echo "$second / $first" | bc -l)"
