#!/usr/bin/env bash
# `make bench-wait`: what `redis_wait_replicas` costs (issue 18), side by side in one run on one
# master with one replica, alternating the two variants ROUNDS times:
#   async: ROOMCAST_REDIS_WAIT_REPLICAS=0 (the default: the script publishes, replication follows)
#   wait1: ROOMCAST_REDIS_WAIT_REPLICAS=1 (the script stores, WAIT 1, then PUBLISH)
# each with `broadcast 1 -> 10` published one at a time as fast as answered (a publisher's
# throughput: every publish waits for its reply) and paced at 200/s (latency), and the Redis
# master's CPU per publish (INFO cpu around each run). Release binaries from target/release
# (built here unless BUILD=0). Writes bench/REPLICATION.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
PUBLISHES=${PUBLISHES:-3000}
OUT=${OUT:-bench/REPLICATION.md}
WORK=$(mktemp -d /tmp/roomcast-replication.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
log() { printf 'replication bench: %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ "${BUILD:-1}" = 1 ]; then
    log "building release binaries"
    cargo build --release -q -p roomcast-gateway -p roomcast-loadtest
fi
RC=target/release/roomcast
LT=target/release/roomcast-loadtest
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

MASTER=$(free_port)
REPLICA=$(free_port)
mkdir -p "$WORK/m" "$WORK/r"
redis-server --port "$MASTER" --bind 127.0.0.1 --save '' --appendonly no --repl-diskless-sync-delay 0 \
    --dir "$WORK/m" >"$WORK/master.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$MASTER" ping >/dev/null 2>&1 && break; sleep 0.05; done
redis-server --port "$REPLICA" --bind 127.0.0.1 --save '' --appendonly no --replicaof 127.0.0.1 "$MASTER" \
    --dir "$WORK/r" >"$WORK/replica.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do
    redis-cli -p "$REPLICA" info replication 2>/dev/null | grep -q master_link_status:up && break
    sleep 0.05
done
redis-cli -p "$REPLICA" info replication | grep -q master_link_status:up || { log "the replica never synced"; exit 1; }

# start_node NAME WAIT : a node on the master; sets NODE_ADDR and NODE_PID
start_node() {
    local port
    port=$(free_port)
    env ROOMCAST_LISTEN="127.0.0.1:$port" ROOMCAST_REDIS_URL="redis://127.0.0.1:$MASTER" \
        ROOMCAST_NODE_ID="$1" ROOMCAST_JWT_SECRET=dev-secret-do-not-use-in-production \
        ROOMCAST_API_KEY=dev-api-key ROOMCAST_REDIS_WAIT_REPLICAS="$2" RUST_LOG=warn "$RC" >"$WORK/$1.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    NODE_ADDR="127.0.0.1:$port"
    for _ in $(seq 200); do curl -sf "http://$NODE_ADDR/readyz" >/dev/null 2>&1 && return; sleep 0.05; done
    log "node $1 did not become ready"; cat "$WORK/$1.log" >&2; exit 1
}
stop_node() { kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true; }
redis_cpu() { redis-cli -p "$MASTER" info cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.6f\n", s}'; }

for round in $(seq "$ROUNDS"); do
    for variant in async wait1; do
        wait=0
        [ $variant = wait1 ] && wait=1
        for shape in unpaced paced; do
            start_node "$variant-$shape-$round" "$wait"
            rate=0
            [ $shape = paced ] && rate=200
            c0=$(redis_cpu)
            "$LT" broadcast --name "$variant" --node "$NODE_ADDR=$NODE_PID" --subscribers 10 --payload 100 \
                --publishes "$PUBLISHES" --rate "$rate" --json "$WORK/$variant-$shape-$round.json" >/dev/null
            c1=$(redis_cpu)
            python3 -c "print(($c1 - $c0) * 1e6 / $PUBLISHES)" >"$WORK/$variant-$shape-$round.redis"
            stop_node
            redis-cli -p "$MASTER" flushall >/dev/null
        done
    done
done

python3 bench/replication_report.py "$WORK" "$ROUNDS" "$PUBLISHES" "$(git rev-parse --short HEAD)" "$(uptime)" >"$OUT"
log "wrote $OUT"
cat "$OUT"
