#!/usr/bin/env bash
# Every check of the JavaScript client, as `make test` runs it (after `cargo test`, which built the
# gateway binary): installs what is missing (Debian's chromium, redis-server, nginx, prometheus;
# npm ci), then lint, format check, type check, build, unit tests, package tests (size, npm pack),
# integration tests against real nodes and Redis, and the browser test through nginx.
#
#   ROOMCAST_BIN   the gateway binary (default ${CARGO_TARGET_DIR:-<repo>/target}/debug/roomcast)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export ROOMCAST_BIN="${ROOMCAST_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/roomcast}"
cd "$HERE"

say() { printf '\n== roomcast-client: %s\n' "$*"; }
started=$SECONDS
timings=()
step() {
  local name="$1" t0=$SECONDS
  shift
  say "$name"
  "$@"
  timings+=("$name $((SECONDS - t0))s")
}

[ -x "$ROOMCAST_BIN" ] || { echo "roomcast-client: gateway binary $ROOMCAST_BIN not found (cargo build, or set ROOMCAST_BIN)" >&2; exit 1; }
step "install what is missing" bash -c '"$0"/../../deploy/local/cluster.sh deps && scripts/install.sh' "$HERE"
step "lint (biome)" npx biome lint --error-on-warnings .
step "format check (biome)" npx biome format .
step "type check (client without DOM/Node types, server, tests)" bash -c \
  'npx tsc -p tsconfig.json && npx tsc -p tsconfig.server.json && npx tsc -p tsconfig.test.json'
step "build" node scripts/build.mjs

mkdir -p test-results
rm -f test-results/*.json
for project in unit package integration browser; do
  step "$project tests" npx vitest run --project "$project" --reporter=default --reporter=json \
    --outputFile.json="test-results/$project.json"
done

say "done in $((SECONDS - started))s: ${timings[*]/%/,}"
node -e '
const fs = require("node:fs");
let passed = 0, failed = 0;
for (const p of ["unit", "package", "integration", "browser"]) {
  const r = JSON.parse(fs.readFileSync(`test-results/${p}.json`, "utf8"));
  passed += r.numPassedTests; failed += r.numFailedTests + r.numPendingTests + r.numTodoTests;
}
console.log(`roomcast-client: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
'
