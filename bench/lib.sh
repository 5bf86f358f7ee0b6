# Shared by the bench scripts (sourced from the project root; base_binary needs DIR, a scratch
# folder).

# base_binary REV: the path of a release binary to compare with: BASE_BIN if set, else one
# built from REV in a worktree under $DIR (removed by drop_base).
base_binary() {
    if [ -n "${BASE_BIN:-}" ]; then
        echo "$BASE_BIN"
        return
    fi
    git worktree add -q "$DIR/base" "$1"
    (cd "$DIR/base" && CARGO_TARGET_DIR="$DIR/base-target" cargo build --release -q -p cellwarden) >&2
    echo "$DIR/base-target/release/cellwarden"
}

drop_base() {
    if [ -d "$DIR/base" ]; then git worktree remove --force "$DIR/base"; fi
}

# rate FIELD: reads a run's `summary:` line on stdin and prints the number before FIELD/s
# (FIELD is events or statements).
rate() {
    sed -n -E "s/^summary: .*\(([0-9]+) $1\/s.*/\1/p"
}

# rate_mb: reads a `hunt` run's output on stdin and prints "events/s MB/s" of its summary.
rate_mb() {
    sed -n -E 's/^summary: .*\(([0-9]+) events\/s, ([0-9.]+) MB\/s\).*/\1 \2/p'
}

# pct A B: A as a whole percentage of B.
pct() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", 100*a/b}'; }

# The shared Windows attack samples; need_shared DIR… ends the script with a line when one
# of the folders of the shared test data is absent.
SHARED=../shared/data
SAMPLES=$SHARED/evtx-attack-samples
need_shared() {
    local d
    for d in "$@"; do
        if [ ! -d "$d" ]; then
            echo "skipped: $SHARED not found (shared test data absent)"
            exit 0
        fi
    done
}

# copy_samples DEST N: N copies of $SAMPLES in DEST/c1 … DEST/cN.
copy_samples() {
    local i
    for i in $(seq "$2"); do
        mkdir -p "$1/c$i"
        cp -r "$SAMPLES/." "$1/c$i/"
    done
}
