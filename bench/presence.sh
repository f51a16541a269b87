#!/usr/bin/env bash
# `make bench-presence`: what presence, online status and events to the backend cost (issue 15),
# side by side in one run on one Redis, alternating the two variants ROUNDS times:
#   1. connect storm: `connect` against a node with presence=false and against one with presence
#      and the event stream on (the defaults plus ROOMCAST_EVENTS_STREAM=true), connections/s;
#   2. Redis commands per connect and per disconnect (INFO commandstats around each phase of an
#      `idle` run of IDLE connections, heartbeats of the quiet seconds subtracted);
#   3. broadcast 1 -> 1000 without delivery receipts, with them (receipt_rooms org:) and every
#      client acking at most every 200 ms (the JavaScript client's default), and with every
#      client acking after every batch it reads (the worst case).
# Release binaries from target/release (built here unless BUILD=0). Writes bench/PRESENCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-10000}
IDLE=${IDLE:-5000}
OUT=${OUT:-bench/PRESENCE.md}
WORK=$(mktemp -d /tmp/roomcast-presence.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
log() { printf 'presence bench: %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ "${BUILD:-1}" = 1 ]; then
    log "building release binaries"
    cargo build --release -q -p roomcast-gateway -p roomcast-loadtest
fi
RC=target/release/roomcast
LT=target/release/roomcast-loadtest
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
for _ in $(seq 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.05; done

# start_node NAME ENV... : a node on the Redis; sets NODE_ADDR and NODE_PID
start_node() {
    local name=$1 port
    shift
    port=$(free_port)
    env ROOMCAST_LISTEN="127.0.0.1:$port" ROOMCAST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
        ROOMCAST_NODE_ID="$name" ROOMCAST_JWT_SECRET=dev-secret-do-not-use-in-production \
        ROOMCAST_API_KEY=dev-api-key ROOMCAST_MAX_CONNECTIONS=100000 ROOMCAST_OFFLINE_GRACE=1s \
        RUST_LOG=warn "$@" "$RC" >"$WORK/$name.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    NODE_ADDR="127.0.0.1:$port"
    for _ in $(seq 200); do curl -sf "http://$NODE_ADDR/readyz" >/dev/null 2>&1 && return; sleep 0.05; done
    log "node $name did not become ready"; cat "$WORK/$name.log" >&2; exit 1
}
stop_node() { kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true; }
OFF=(ROOMCAST_PRESENCE=false)
ON=(ROOMCAST_EVENTS_STREAM=true)
# Total Redis calls so far (every command, scripts counted once per call).
calls() { rcli info commandstats | python3 -c 'import sys,re; print(sum(int(m.group(1)) for m in re.finditer(r"calls=(\d+)", sys.stdin.read())))'; }
open_conns() { curl -s "http://$NODE_ADDR/metrics" | awk '/^roomcast_connections_open\{/ {print int($2)}'; }

# 1. connect storm
for round in $(seq "$ROUNDS"); do
    for variant in off on; do
        if [ $variant = off ]; then start_node "c-$variant-$round" "${OFF[@]}"; else start_node "c-$variant-$round" "${ON[@]}"; fi
        "$LT" connect --name "presence $variant" --node "$NODE_ADDR=$NODE_PID" --connections "$CONNECTIONS" \
            --concurrency 200 --json "$WORK/connect-$variant-$round.json" >/dev/null
        stop_node
        rcli flushall >/dev/null
    done
done

# 2. Redis calls per connect and per disconnect: idle connections held, phases found by polling.
for variant in off on; do
    if [ $variant = off ]; then start_node "i-$variant" "${OFF[@]}"; else start_node "i-$variant" "${ON[@]}"; fi
    sleep 3 # heartbeat baseline: calls made by a node with no connection
    b0=$(calls); sleep 4; b1=$(calls)
    base=$(python3 -c "print(($b1 - $b0) / 4)")
    start=$(calls); t0=$(date +%s.%N)
    "$LT" idle --name "presence $variant" --node "$NODE_ADDR=$NODE_PID" --steps "$IDLE" --hold-secs 6 \
        --json "$WORK/idle-$variant.json" >/dev/null &
    lt=$!
    until [ "$(open_conns)" -ge "$IDLE" ]; do sleep 0.05; done
    sleep 1 # the last presence batch (20 ms) and the stream writes
    opened=$(calls); t1=$(date +%s.%N)
    wait $lt
    until [ "$(open_conns)" = 0 ]; do sleep 0.05; done
    # Every user offline: the grace (1 s), then sweeps (1 s apart, a batch each) settle them.
    if [ $variant = on ]; then
        for _ in $(seq 600); do
            [ "$(rcli xlen roomcast:events)" -ge $((2 * IDLE)) ] && break
            sleep 0.1
        done
    fi
    sleep 1
    closed=$(calls); t2=$(date +%s.%N)
    python3 - "$variant" "$IDLE" "$start" "$opened" "$closed" "$t0" "$t1" "$t2" "$base" >>"$WORK/calls.tsv" <<'EOF'
import sys
v, n, start, opened, closed, t0, t1, t2, base = sys.argv[1:]
n, start, opened, closed = int(n), int(start), int(opened), int(closed)
t0, t1, t2, base = float(t0), float(t1), float(t2), float(base)
per_connect = (opened - start - base * (t1 - t0)) / n
per_disconnect = (closed - opened - base * (t2 - t1)) / n
print(f"{v}\t{per_connect:.2f}\t{per_disconnect:.2f}\t{base:.1f}")
EOF
    rcli info commandstats | grep -E "cmdstat_(evalsha|eval|xadd|hset|hincrby|zadd|publish|spublish)" >"$WORK/cmdstats-$variant.txt" || true
    stop_node
    rcli flushall >/dev/null
    rcli config resetstat >/dev/null
done

# 3. broadcast with and without receipts
for round in $(seq "$ROUNDS"); do
    for variant in plain receipts batch; do
        if [ $variant = plain ]; then
            start_node "b-$variant-$round" "${ON[@]}"
            "$LT" broadcast --name "no receipts" --node "$NODE_ADDR=$NODE_PID" --subscribers 1000 --payload 100 \
                --publishes 1000 --json "$WORK/broadcast-$variant-$round.json" >/dev/null
        else
            interval=200
            [ $variant = batch ] && interval=0
            start_node "b-$variant-$round" "${ON[@]}" ROOMCAST_RECEIPT_ROOMS=org:
            "$LT" broadcast --name "receipts" --node "$NODE_ADDR=$NODE_PID" --subscribers 1000 --payload 100 \
                --publishes 1000 --acks --ack-interval-ms $interval --json "$WORK/broadcast-$variant-$round.json" >/dev/null
            rcli xlen roomcast:events >"$WORK/delivered-$variant-$round.txt"
        fi
        stop_node
        rcli flushall >/dev/null
    done
done

python3 bench/presence_report.py "$WORK" "$ROUNDS" "$(git rev-parse --short HEAD)" "$(uptime)" >"$OUT"
log "wrote $OUT"
cat "$OUT"
