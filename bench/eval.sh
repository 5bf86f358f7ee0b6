#!/usr/bin/env bash
# Detection quality on the simulated operator: for seeds 1..SEEDS of every scenario, simulate
# (SUBSCRIBERS subscribers, DAYS days), run `hunt --assets --watchlist` and `scope
# --watchlist`, and score both with `eval --json`; `hunt --campaigns` too, scored for
# completeness (each scenario's steps in one campaign) and purity. One row per run.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-5}
SUBSCRIBERS=${SUBSCRIBERS:-20000}
DAYS=${DAYS:-10}
cargo build --release -q
BIN=$PWD/target/release/cellwarden
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
printf '%-11s %4s %8s %9s %6s %10s %8s %11s %9s %13s %9s %6s %6s\n' scenario seed targets recall prec steps techn exfil benign/d "delay med/max" campaigns compl purity
for sc in softcell lightbasin insider benign; do
    for seed in $(seq "$SEEDS"); do
        rm -rf "$DIR/o"
        "$BIN" simulate --out "$DIR/o" --seed "$seed" --subscribers "$SUBSCRIBERS" --days "$DAYS" --scenario "$sc" >/dev/null 2>&1
        (cd "$DIR/o" &&
            "$BIN" hunt . --assets assets.toml --watchlist watchlist.txt --format jsonl -o alerts.jsonl 2>/dev/null &&
            "$BIN" hunt . --assets assets.toml --watchlist watchlist.txt --campaigns --format jsonl -o campaigns.jsonl 2>/dev/null &&
            "$BIN" scope db --watchlist watchlist.txt -o scope.json 2>/dev/null &&
            "$BIN" eval --truth ground-truth.json alerts.jsonl scope.json --campaigns campaigns.jsonl --json > score.json)
        python3 - "$DIR/o/score.json" "$sc" "$seed" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
f = lambda x: "-" if x is None else f"{x:.2f}"
steps = s["steps"]
delays = [x["delay_secs"] for x in steps if x["delay_secs"] is not None]
med = f"{sorted(delays)[len(delays) // 2]}/{max(delays)} s" if delays else "-"
exfil = "-" if not s["exfiltration_flows"] else ("found" if s["exfiltration_found"] else "MISSED")
print(f'{sys.argv[2]:<11} {sys.argv[3]:>4} {s["targets_found"]:>3}/{s["targets"]:<4} {f(s["recall"]):>9} {f(s["precision"]):>6} '
      f'{s["steps_detected"]:>4}/{len(steps):<5} {s["techniques_detected"]:>3}/{s["techniques"]:<4} {exfil:>11} '
      f'{s["benign_alerts_per_day"]:>9.2f} {med:>13} {s["campaigns"]["campaigns"]:>9} {f(s["campaigns"]["completeness"]):>6} {f(s["campaigns"]["purity"]):>6}')
PY
    done
done
