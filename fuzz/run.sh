#!/usr/bin/env bash
# Runs every fuzz target (or those named) for FUZZ_SECS seconds each (default 60), one after the
# other, with libFuzzer through cargo-fuzz on the nightly toolchain, and prints how long each ran
# and whether it crashed. Used by `make fuzz`; never part of `make test`.
#
#   fuzz/run.sh                      # every target, 60 s each
#   FUZZ_SECS=600 fuzz/run.sh token  # one target, 10 minutes
#
# Each target starts from its checked-in seeds (fuzz/seeds/<target>) plus what earlier runs
# found (target/fuzz/corpus/<target>, kept between runs, never checked in). A crash is saved
# under fuzz/artifacts/<target>/; turn it into a regression test next to the code it broke.
# Installs cargo-fuzz from crates.io when missing. Runs at nice 19: it takes one core.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SECS="${FUZZ_SECS:-60}"
WORK="$REPO/target/fuzz"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(frame_reader client_command room_name token envelope api_body socketio_packet)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
rustup run nightly rustc --version >/dev/null 2>&1 || { echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2; exit 1; }

cd "$HERE"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$WORK/build}"
# One build of every target (with the sanitizer flags cargo-fuzz sets; about 8 minutes cold).
nice -n 10 cargo +nightly fuzz build -O

summary=()
crashed=0
for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/corpus/$t" "$HERE/artifacts/$t"
    log="$WORK/$t.log"
    echo "fuzz: $t for ${SECS}s (log $log)" >&2
    start=$(date +%s)
    status=0
    nice -n 19 "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$t" "$WORK/corpus/$t" "$HERE/seeds/$t" \
        -max_total_time="$SECS" -artifact_prefix="$HERE/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    secs=$(($(date +%s) - start))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$status" -eq 0 ]; then
        summary+=("$t: ${secs}s, ${runs:-?} runs, no crash, corpus $(ls "$WORK/corpus/$t" | wc -l) inputs")
    else
        crashed=1
        summary+=("$t: CRASHED after ${secs}s; input in fuzz/artifacts/$t/: $(grep -m1 -E 'panicked|ERROR' "$log" || true)")
    fi
done
printf 'fuzz: %s\n' "${summary[@]}"
exit "$crashed"
