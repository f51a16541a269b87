#!/usr/bin/env bash
# `make bench`: builds roomcast, the load tester and both peers in release mode, starts a Redis,
# roomcast nodes, Socket.IO and socketioxide nodes on free loopback ports, runs the standard
# suite (loadtest/suite.toml) against all three in one session, and writes
# bench/results/<date>-<commit>.json, its SVG plots and bench/RESULTS.md.
# Everything it starts it stops (trap on exit). Never part of `make test`.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
START=$SECONDS
DATE=$(date -u +%F)
COMMIT=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- crates loadtest || COMMIT="$COMMIT-dirty"
NAME="$DATE-$COMMIT"
WORK=$(mktemp -d /tmp/roomcast-bench.XXXXXX)
PIDS=()

log() { printf '[bench %4ds] %s\n' $((SECONDS - START)) "$*" >&2; }

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "make bench needs $1 ($2)" >&2; exit 1; }; }
need cargo "Rust toolchain"
need redis-server "Debian package redis-server"
need redis-cli "Debian package redis-tools"
need node "Node 20"
need npm "Node 20"
need openssl "Debian package openssl"
need python3 "Debian package python3"
need curl "Debian package curl"

# Sockets: each server and the load tester hold up to ~19k.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "building roomcast and roomcast-loadtest (release)"
cargo build --release -q -p roomcast-gateway -p roomcast-loadtest
log "building the socketioxide peer from crates.io (release)"
cargo build --release -q --manifest-path loadtest/peers/socketioxide/Cargo.toml --target-dir target/peers
log "installing the Socket.IO peer from npm"
(cd loadtest/peers/socketio && npm install --no-audit --no-fund --loglevel=error >/dev/null)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url name
    for _ in $(seq 1 300); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "$2 did not answer $1 within 30 s; its log:" >&2
    cat "$WORK/$2.log" >&2 || true
    exit 1
}

# Keys: HS256 secret for everything, an ES256 pair for the asymmetric connect storm.
SECRET="bench-$(openssl rand -hex 16)"
API_KEY="bench-key"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ec.pem" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$WORK/ec.pem" -out "$WORK/es256-private.pem"
openssl ec -in "$WORK/ec.pem" -pubout -out "$WORK/es256-public.pem" 2>/dev/null

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 1 300); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

# start NAME HEALTH_PATH ENV... -- COMMAND...: starts a server on a free port ($PORT in its env).
start() {
    local name=$1 health=$2; shift 2
    local port; port=$(free_port)
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    env "${envs[@]//\$PORT/$port}" "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$port$health" "$name"
    eval "ADDR_${name//-/_}=127.0.0.1:$port"
    eval "PID_${name//-/_}=$pid"
    log "$name on 127.0.0.1:$port (pid $pid)"
}

RC=(ROOMCAST_JWT_SECRET="$SECRET" ROOMCAST_API_KEY="$API_KEY" ROOMCAST_LOG=warn ROOMCAST_LISTEN='127.0.0.1:$PORT')
start rc-single /readyz "${RC[@]}" ROOMCAST_NODE_ID=single -- target/release/roomcast
start rc-a /readyz "${RC[@]}" ROOMCAST_NODE_ID=a ROOMCAST_REDIS_URL="$REDIS_URL" -- target/release/roomcast
start rc-b /readyz "${RC[@]}" ROOMCAST_NODE_ID=b ROOMCAST_REDIS_URL="$REDIS_URL" -- target/release/roomcast
start rc-es256 /readyz ROOMCAST_JWT_PUBLIC_KEY="$WORK/es256-public.pem" ROOMCAST_LOG=warn ROOMCAST_NODE_ID=es256 \
    ROOMCAST_LISTEN='127.0.0.1:$PORT' -- target/release/roomcast

PEER=(JWT_SECRET="$SECRET" JWT_PUBLIC_KEY="$WORK/es256-public.pem" LISTEN='127.0.0.1:$PORT')
SIO=(node loadtest/peers/socketio/server.js)
start sio-single /healthz "${PEER[@]}" -- "${SIO[@]}"
start sio-a /healthz "${PEER[@]}" REDIS_URL="$REDIS_URL" -- "${SIO[@]}"
start sio-b /healthz "${PEER[@]}" REDIS_URL="$REDIS_URL" -- "${SIO[@]}"
SIOX=(target/peers/release/roomcast-peer-socketioxide)
start siox-single /healthz "${PEER[@]}" -- "${SIOX[@]}"
start siox-a /healthz "${PEER[@]}" REDIS_URL="$REDIS_URL" -- "${SIOX[@]}"
start siox-b /healthz "${PEER[@]}" REDIS_URL="$REDIS_URL" -- "${SIOX[@]}"

cat >"$WORK/targets.toml" <<TOML
[[target]]
name = "roomcast"
protocol = "roomcast"
secret = "$SECRET"
api_key = "$API_KEY"
es256_key = "$WORK/es256-private.pem"
redis_pid = $REDIS_PID
redis_addr = "127.0.0.1:$REDIS_PORT"
single = { addr = "$ADDR_rc_single", pid = $PID_rc_single }
es256 = { addr = "$ADDR_rc_es256", pid = $PID_rc_es256 }
cluster = [{ addr = "$ADDR_rc_a", pid = $PID_rc_a }, { addr = "$ADDR_rc_b", pid = $PID_rc_b }]

[[target]]
name = "roomcast /socket.io/"
protocol = "roomcast-socketio"
secret = "$SECRET"
api_key = "$API_KEY"
es256_key = "$WORK/es256-private.pem"
redis_pid = $REDIS_PID
redis_addr = "127.0.0.1:$REDIS_PORT"
single = { addr = "$ADDR_rc_single", pid = $PID_rc_single }
es256 = { addr = "$ADDR_rc_es256", pid = $PID_rc_es256 }
cluster = [{ addr = "$ADDR_rc_a", pid = $PID_rc_a }, { addr = "$ADDR_rc_b", pid = $PID_rc_b }]

[[target]]
name = "socket.io"
protocol = "socketio"
secret = "$SECRET"
es256_key = "$WORK/es256-private.pem"
redis_pid = $REDIS_PID
redis_addr = "127.0.0.1:$REDIS_PORT"
single = { addr = "$ADDR_sio_single", pid = $PID_sio_single }
cluster = [{ addr = "$ADDR_sio_a", pid = $PID_sio_a }, { addr = "$ADDR_sio_b", pid = $PID_sio_b }]

[[target]]
name = "socketioxide"
protocol = "socketio"
secret = "$SECRET"
es256_key = "$WORK/es256-private.pem"
redis_pid = $REDIS_PID
redis_addr = "127.0.0.1:$REDIS_PORT"
single = { addr = "$ADDR_siox_single", pid = $PID_siox_single }
cluster = [{ addr = "$ADDR_siox_a", pid = $PID_siox_a }, { addr = "$ADDR_siox_b", pid = $PID_siox_b }]
TOML

log "running the standard suite (${BENCH_SUITE:-loadtest/suite.toml})"
mkdir -p bench/results
target/release/roomcast-loadtest suite --suite "${BENCH_SUITE:-loadtest/suite.toml}" --targets "$WORK/targets.toml" \
    --commit "$COMMIT" --date "$DATE" --json "bench/results/$NAME.json" --markdown "${BENCH_MARKDOWN:-bench/RESULTS.md}" \
    --plots "bench/results/$NAME" --plots-link "results/$NAME/"
log "done in $((SECONDS - START)) s: bench/RESULTS.md, bench/results/$NAME.json"
