#!/usr/bin/env bash
# Throughput of partitioned state workers (`watch --stage state --exchange`) on a local tansu
# broker, beside `hunt` over the same records in the same run:
#   1. $N_MY MySQL JSON audit statements (bench/gen_dbaudit.py) and $N_FLOWS Zeek conn flows
#      (bench/gen_zeek.py) produced to a 4-partition input topic
#   2. 2 parse workers hand them on to a 4-partition topic (records/s of the parse stage)
#   3. 1, 2 and 4 state workers, each time a new group reading the handed-on topic from its
#      start: records/s until every partition's records are read, peak RSS per worker
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
