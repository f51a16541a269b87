#!/usr/bin/env bash
# make demo: the demo chat on one roomcast node (embedded broker) and its backend, until Ctrl-C.
#
#   ROOMCAST_BIN   the gateway binary (default ${CARGO_TARGET_DIR:-<repo>/target}/debug/roomcast)
#   GATEWAY_PORT   the node's port (default 18090)
#   DEMO_PORT      the demo page and backend (default 5173)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BIN="${ROOMCAST_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/roomcast}"
GATEWAY_PORT="${GATEWAY_PORT:-18090}"
DEMO_PORT="${DEMO_PORT:-5173}"
SECRET="${ROOMCAST_JWT_SECRET:-dev-secret-do-not-use-in-production}"
API_KEY="${ROOMCAST_API_KEY:-dev-api-key}"

[ -x "$BIN" ] || { echo "demo: $BIN not found (make demo builds it; or set ROOMCAST_BIN)" >&2; exit 1; }
cd "$HERE"
"$HERE/scripts/install.sh" --npm-only
node scripts/build.mjs >/dev/null

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

ROOMCAST_LISTEN="127.0.0.1:$GATEWAY_PORT" ROOMCAST_NODE_ID=demo ROOMCAST_JWT_SECRET="$SECRET" \
  ROOMCAST_API_KEY="$API_KEY" "$BIN" &
pids+=($!)
deadline=$((SECONDS + 20))
until curl -fsS -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/readyz" 2>/dev/null; do
  kill -0 "${pids[0]}" 2>/dev/null || { echo "demo: the node exited (port $GATEWAY_PORT taken? set GATEWAY_PORT)" >&2; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { echo "demo: the node was not ready within 20 s" >&2; exit 1; }
  sleep 0.1
done

PORT="$DEMO_PORT" ROOMCAST_URL="http://127.0.0.1:$GATEWAY_PORT" ROOMCAST_JWT_SECRET="$SECRET" \
  ROOMCAST_API_KEY="$API_KEY" node demo/server.mjs &
pids+=($!)
deadline=$((SECONDS + 20))
until curl -fsS -o /dev/null "http://127.0.0.1:$DEMO_PORT/" 2>/dev/null; do
  kill -0 "${pids[1]}" 2>/dev/null || { echo "demo: the demo backend exited (port $DEMO_PORT taken? set DEMO_PORT)" >&2; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { echo "demo: the demo backend was not ready within 20 s" >&2; exit 1; }
  sleep 0.1
done
echo ""
echo "demo: open http://127.0.0.1:$DEMO_PORT/?user=alice and http://127.0.0.1:$DEMO_PORT/?user=bob (Ctrl-C stops both)"
wait -n
