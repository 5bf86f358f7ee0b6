#!/usr/bin/env bash
# cellwarden beside rsigma, installed from the crate registry (`cargo install rsigma
# --features evtx`, RSIGMA_VERSION, default 0.23.0, the newest that builds with this
# toolchain), on the same EVTX files and SigmaHQ rules: wall time, peak RSS, detections,
# events/s.
#
# The files: the shared Windows attack samples, copied COPIES times (default 1) into a
# temporary folder. rsigma's CLI reads one EVTX file per run (`engine eval -e @FILE`) and
# loads the rules each time, so it runs once per file, JOBS at a time (default: the cores);
# its figure includes that rule loading, which is how it would be used on a folder of logs.
# rsigma's EVTX records are nested (`Event.EventData.*`, `Event.System.*`): `--jq` lifts both
# to the top so the rules' field names meet them; it has no log-source routing, so rules of
# other services run on every event too. cellwarden reads the whole folder in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RULES=${RULES:-$SHARED/sigma/rules/windows}
need_shared "$SAMPLES" "$RULES"
COPIES=${COPIES:-1}
JOBS=${JOBS:-$(nproc)}
RSIGMA_VERSION=${RSIGMA_VERSION:-0.23.0}
RSIGMA_ROOT=${RSIGMA_ROOT:-$PWD/target/peers}
RSIGMA=$RSIGMA_ROOT/bin/rsigma
cargo build --release -q
BIN=$PWD/target/release/cellwarden
if [ ! -x "$RSIGMA" ] || ! "$RSIGMA" --version 2>/dev/null | grep -q "$RSIGMA_VERSION"; then
    echo "installing rsigma $RSIGMA_VERSION (--features evtx) into $RSIGMA_ROOT" >&2
    cargo install rsigma --version "$RSIGMA_VERSION" --features evtx --root "$RSIGMA_ROOT" --locked -q
fi
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
copy_samples "$DIR/files" "$COPIES"
find "$DIR/files" -name '*.evtx' -print0 >"$DIR/list"
nfiles=$(tr -cd '\0' <"$DIR/list" | wc -c)
mb=$(du -sm "$DIR/files" | cut -f1)

# cellwarden: one run over the folder.
/usr/bin/time -f '%e %M' -o "$DIR/cw.time" "$BIN" hunt "$DIR/files" -r "$RULES" \
    --format jsonl -o "$DIR/cw.jsonl" 2>"$DIR/cw.err" || true
read -r cw_wall cw_rss <"$DIR/cw.time"
events=$(sed -nE 's/^summary: [0-9]+ files, ([0-9]+) events.*/\1/p' "$DIR/cw.err")
cw_det=$(wc -l <"$DIR/cw.jsonl")

# rsigma: one run per file, JOBS at a time; each run's detections and peak RSS kept.
mkdir "$DIR/rs"
start=$(date +%s.%N)
xargs -0 -P "$JOBS" -I{} sh -c '
    out=$(mktemp -p "$1/rs")
    /usr/bin/time -f "%M" -o "$out.time" "$2" engine eval -r "$3" -e "@$0" --jq ".Event.EventData + .Event.System" --output-format ndjson -q >"$out" 2>/dev/null || true
' {} "$DIR" "$RSIGMA" "$RULES" <"$DIR/list"
end=$(date +%s.%N)
rs_wall=$(echo "$end - $start" | bc)
rs_det=$(find "$DIR/rs" -type f ! -name '*.time' -exec cat {} + | grep -c . || true)
rs_rss=$(cat "$DIR"/rs/*.time | sort -n | tail -1)

echo "$nfiles EVTX files ($COPIES × the shared samples, $mb MB, $events events), $(find "$RULES" -name '*.yml' | wc -l) rules, $(nproc) cores"
printf '%-34s %9s %13s %11s %12s\n' tool "wall s" "peak RSS MB" detections "events/s"
printf '%-34s %9.2f %13d %11d %12.0f\n' "cellwarden hunt (one run)" "$cw_wall" $((cw_rss / 1024)) "$cw_det" "$(echo "$events / $cw_wall" | bc -l)"
printf '%-34s %9.2f %13d %11d %12.0f\n' "rsigma $RSIGMA_VERSION (a run per file, $JOBS jobs)" "$rs_wall" $((rs_rss / 1024)) "$rs_det" "$(echo "$events / $rs_wall" | bc -l)"
echo "rsigma / cellwarden wall time: $(echo "scale=1; $rs_wall / $cw_wall" | bc)×"
