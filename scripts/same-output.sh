#!/usr/bin/env bash
# Runs two cellwarden binaries over the same simulated operators (and the shared EVTX samples
# with SigmaHQ's Windows rules, when ../shared is there) and compares everything they write:
# hunt (jsonl, csv, table, incidents, ATT&CK layer), scope (json, csv, html; selections;
# pseudonyms), demo (story and files) and watch (followed files, alerts as a set).
# Use it around a restructuring that must not change results:
#   scripts/same-output.sh OLD_BINARY NEW_BINARY
# Prints one line per comparison and exits 1 if any output differs.
set -uo pipefail
OLD=$(realpath "$1")
NEW=$(realpath "$2")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=$ROOT/../shared/data
WORK=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
fail=0

# Timings and the run's own folder are the only parts allowed to differ.
scrub() {
    sed -E -e "s#$WORK/(old|new)#WORK#g" \
        -e 's/in [0-9.]+ s \([0-9]+ (events|statements)\/s(, [0-9.]+ MB\/s)?\)/in T/' \
        -e 's/Done in [0-9.]+ s/Done in T/' \
        -e 's/"(generated|started)": ?"[^"]*"/"\1":"T"/g'
}

compare() { # name
    local name=$1
    if cmp -s <(scrub <"$WORK/old/$name") <(scrub <"$WORK/new/$name"); then
        echo "same       $name ($(wc -l <"$WORK/new/$name") lines)"
    else
        echo "DIFFERENT  $name"
        # Word by word: HTML reports are long lines.
        git diff --no-index --word-diff=plain --word-diff-regex='[^<> ]+' \
            <(scrub <"$WORK/old/$name") <(scrub <"$WORK/new/$name") |
            grep -o '\[-[^]]*-\]{+[^}]*+}' | sort | uniq -c | sort -rn | head -20
        fail=1
    fi
}

# run NAME CMD...: runs both binaries with stdout to NAME.out, stderr to NAME.err (in each
# side's own folder, where relative output files land too).
run() {
    local name=$1
    shift
    for side in old new; do
        local bin=$OLD
        [ "$side" = new ] && bin=$NEW
        (cd "$WORK/$side" && "$bin" "$@" >"$name.out" 2>"$name.err"; echo "exit $?" >>"$name.err")
    done
    compare "$name.out"
    compare "$name.err"
}

mkdir -p "$WORK/old" "$WORK/new"
"$OLD" simulate --out "$WORK/sim" --seed 7 --subscribers 20000 --days 10 \
    --scenario softcell --scenario insider 2>/dev/null
"$OLD" simulate --out "$WORK/sim2" --seed 12 --subscribers 20000 --days 8 \
    --scenario softcell --scenario benign 2>/dev/null
S=$WORK/sim
A=(--assets "$S/assets.toml" --watchlist "$S/watchlist.txt")
for f in jsonl csv table json; do
    run "hunt-$f" hunt "$S/windows" "$S/db" "$S/network" "$S/linux" "${A[@]}" --format "$f"
done
run hunt-1thread hunt "$S" "${A[@]}" --format jsonl --threads 1
run hunt-sim2 hunt "$WORK/sim2" --assets "$WORK/sim2/assets.toml" --format jsonl
run hunt-incidents hunt "$S" "${A[@]}" --incidents --format jsonl --attack-layer layer.json
compare layer.json
run hunt-incidents-table hunt "$S" "${A[@]}" --incidents
run hunt-incidents-csv hunt "$S" "${A[@]}" --incidents --format csv --gap 600
run hunt-high hunt "$S" "${A[@]}" --min-level high --format csv
for f in json csv html; do
    run "scope-$f" scope "$S/db" "$S/network" "${A[@]}" --format "$f" --schema-out schema.toml
done
compare schema.toml
run scope-account scope "$S/db" "${A[@]}" --account svc_report --since 2026-03-01
head -c 32 /dev/zero | tr '\0' k >"$WORK/old/key"
cp "$WORK/old/key" "$WORK/new/key"
run scope-pseudonyms scope "$S/db" "$S/network" "${A[@]}" --pseudonymise key --format csv
run demo demo --out demo
for f in scope.json scope-report.html alerts.jsonl; do compare "demo/$f"; done
run rules-check rules check "$ROOT/rules" --json
if [ -d "$SHARED/evtx-attack-samples" ]; then
    run sigma-evtx hunt "$SHARED/evtx-attack-samples" -r "$SHARED/sigma/rules/windows" --format jsonl
    run sigma-evtx-incidents hunt "$SHARED/evtx-attack-samples" -r "$SHARED/sigma/rules/windows" \
        -r "$SHARED/sigma/rules-emerging-threats" --incidents --format jsonl
    run sigma-linux hunt "$SHARED/real-formats" -r "$SHARED/sigma/rules/linux" --format jsonl
else
    echo "skipped the SigmaHQ comparisons: $SHARED not found"
fi

# watch: follow the simulated files to their end, stop, compare the alerts as a set.
for side in old new; do
    bin=$OLD
    [ "$side" = new ] && bin=$NEW
    d=$WORK/$side/watch
    mkdir -p "$d"
    "$bin" watch --follow "$S/*/*.log" --follow "$S/*/*.jsonl" --follow "$S/*/*/*.log" \
        "${A[@]}" --state "$d/state" -o "$d/alerts.jsonl" --quiet --checkpoint-secs 0.2 \
        --idle-secs 1 2>"$d/log" &
    pid=$!
    # Caught up when the alert file stops growing for 3 s after the last checkpoint moved.
    last=-1
    stable=0
    for _ in $(seq 600); do
        sleep 0.5
        size=$(stat -c %s "$d/alerts.jsonl" 2>/dev/null || echo 0)
        if [ "$size" = "$last" ]; then stable=$((stable + 1)); else stable=0; last=$size; fi
        [ "$stable" -ge 6 ] && break
    done
    kill -TERM "$pid"
    wait "$pid"
    sort "$d/alerts.jsonl" >"$WORK/$side/watch-alerts.sorted"
done
compare watch-alerts.sorted
exit $fail
