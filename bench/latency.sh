#!/usr/bin/env bash
# Live latency of `cellwarden watch`: the time from a line appended to a followed file to its
# alert on watch's standard output. A writer appends $RATE Sysmon process-creation events a
# second for $SECS seconds, each matching the built-in HTRAN relay rule and carrying its own
# marker; a reader takes the alerts as watch prints them. Prints p50, p90, p99 and the worst,
# and how many alerts did not come. POLL_MS sets watch's --poll-ms (how often followed files
# are looked at). KAFKA=1: the events go instead through a Kafka topic (tansu on 127.0.0.1,
# in memory; the producer sends each record at once, linger 0) to `watch --kafka`, timed from
# the write to the producer to the alert.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-200}
SECS=${SECS:-20}
cargo build --release -q
DIR=$(mktemp -d)
BROKER=
if [ -n "${KAFKA:-}" ]; then
    cargo build --release -q -p cellwarden-stream --example produce
    TANSU=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    url=tcp://127.0.0.1:$port
    "$TANSU" broker --listener-url "$url" --advertised-listener-url "$url" \
        --storage-engine memory://tansu/ >/dev/null 2>&1 &
    tansu_pid=$!
    until (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.2; done
    "$TANSU" topic create live --broker "$url" --partitions 1 >/dev/null
    BROKER=127.0.0.1:$port
fi
trap 'rm -rf "$DIR"; if [ -n "${tansu_pid:-}" ]; then kill $tansu_pid 2>/dev/null || true; fi' EXIT
python3 - "$PWD/target/release/cellwarden" "$DIR" "$RATE" "$SECS" "${POLL_MS:-}" "$BROKER" \
    "$PWD/target/release/examples/produce" <<'EOF'
import json, os, re, subprocess, sys, threading, time

binary, d, rate, secs, poll, broker, produce = sys.argv[1:8]
rate, secs = int(rate), int(secs)
live = f"{d}/live.jsonl"
open(live, "w").close()
if broker:
    args = [binary, "watch", "--kafka", broker, "--topic", "live", "--group", "latency",
            "--state", f"{d}/state"]
else:
    args = [binary, "watch", "--follow", live, "--state", f"{d}/state"]
if poll and not broker:
    args += ["--poll-ms", poll]
w = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
sent, got = {}, {}
marker = re.compile(r"relay\.exe -tran 8080 m(\d+)")

def read():
    for line in w.stdout:
        m = marker.search(line)
        if m:
            got.setdefault(int(m.group(1)), time.monotonic())

threading.Thread(target=read, daemon=True).start()
time.sleep(2)
n = rate * secs
if broker:
    p = subprocess.Popen([produce, broker, "live"], stdin=subprocess.PIPE, text=True,
                         stderr=subprocess.DEVNULL, env=dict(os.environ, LINGER_MS="0"))
    # The consumer joins its group and is assigned the partition before the clock starts.
    time.sleep(5)
with (p.stdin if broker else open(live, "a")) as f:
    start = time.monotonic()
    for i in range(n):
        due = start + i / rate
        while time.monotonic() < due:
            time.sleep(max(0, min(0.001, due - time.monotonic())))
        t = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        ev = {"Event": {"System": {"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
              "Computer": "bill-db-01", "EventRecordID": i + 1,
              "TimeCreated": {"#attributes": {"SystemTime": t}}},
              "EventData": {"Image": "C:\\Users\\Public\\relay.exe",
                            "CommandLine": f"relay.exe -tran 8080 m{i} 10.0.0.9 3389"}}}
        f.write(json.dumps(ev) + "\n")
        f.flush()
        sent[i] = time.monotonic()
time.sleep(3)
if broker:
    p.wait()
w.terminate()
w.wait()
lat = sorted((got[i] - sent[i]) * 1000 for i in sent if i in got)
def q(p):
    return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
how = "kafka" if broker else f"poll {poll or 'default'} ms"
print(f"{n} events at {rate}/s, {how}: {len(lat)} alerts; latency "
      f"p50 {q(0.5):.0f} ms, p90 {q(0.9):.0f} ms, p99 {q(0.99):.0f} ms, worst {max(lat, default=float('nan')):.0f} ms; "
      f"{n - len(lat)} missing")
EOF
