# Shared by the bench scripts (sourced from the project root, with DIR a scratch folder).

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
