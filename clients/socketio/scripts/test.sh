#!/usr/bin/env bash
# Every check of the Socket.IO face with the real npm socket.io-client, as `make test` runs it
# (after clients/js/scripts/test.sh; cargo has built the gateway binary): installs what is missing
# (scripts/install.sh), then lint, format check and type check (biome, tsc), the Node tests
# (real nodes, Redis and the local nginx cluster) and the browser test (Debian's chromium), and
# prints `roomcast-socketio: N passed, M failed`.
#
#   ROOMCAST_BIN   the gateway binary (default ${CARGO_TARGET_DIR:-<repo>/target}/debug/roomcast)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export ROOMCAST_BIN="${ROOMCAST_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/roomcast}"
cd "$HERE"

say() { printf '\n== roomcast-socketio: %s\n' "$*"; }
started=$SECONDS
timings=()
failed_steps=()
# A check that fails is counted and the run goes on, so that the summary covers everything
# (failed tests are counted from vitest's JSON reports, not here).
step() {
  local name="$1" t0=$SECONDS
  shift
  say "$name"
  "$@" || [ "${name% tests}" != "$name" ] || failed_steps+=("$name")
  timings+=("$name $((SECONDS - t0))s")
}

[ -x "$ROOMCAST_BIN" ] || { echo "roomcast-socketio: gateway binary $ROOMCAST_BIN not found (cargo build, or set ROOMCAST_BIN)" >&2; exit 1; }
say "install what is missing"
scripts/install.sh
step "lint (biome)" npx biome lint --error-on-warnings .
step "format check (biome)" npx biome format .
step "type check (tsc, strict)" npx tsc -p tsconfig.json

mkdir -p test-results
rm -f test-results/*.json
for project in node browser; do
  step "$project tests" npx vitest run --project "$project" --reporter=default --reporter=json \
    --outputFile.json="test-results/$project.json"
done

say "done in $((SECONDS - started))s: ${timings[*]/%/,}"
FAILED_STEPS="${#failed_steps[@]}" node -e '
const fs = require("node:fs");
// Each failed lint, format or type check counts as one failure.
let passed = 0, failed = Number(process.env.FAILED_STEPS);
for (const p of ["node", "browser"]) {
  try {
    const r = JSON.parse(fs.readFileSync(`test-results/${p}.json`, "utf8"));
    passed += r.numPassedTests;
    failed += r.numFailedTests + r.numPendingTests + r.numTodoTests;
    // A file that failed outside its tests (a hook, an import) counts once.
    if (r.numFailedTests === 0) failed += r.numFailedTestSuites;
  } catch {
    failed++;
  }
}
console.log(`roomcast-socketio: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
'
