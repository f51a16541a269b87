#!/usr/bin/env bash
# `make soak`: the hardening soak (issue 17). Builds roomcast, the load tester and both peers in
# release mode, then, on free loopback ports:
#
#   1. churn: for each target (roomcast, the Socket.IO peer, the socketioxide peer) three nodes on
#      one Redis with AOF on, behind nginx (round-robin, a server block per target); the `churn`
#      scenario drops every client about every SOAK_DROP_EVERY s while this script SIGKILLs one
#      node at SOAK_KILL_NODE_AT s and restarts it SOAK_DOWN_SECS later, and SIGKILLs Redis at
#      SOAK_KILL_REDIS_AT s and restarts it on the same AOF directory;
#   2. slow reader: `broadcast` on one node of each target, without and with
#      `--slow-readers SOAK_SLOW_READERS`: the others' p99 delivery latency, with / without;
#   3. cycles: SOAK_CYCLES connect/disconnect cycles against a fresh roomcast node, its RSS after
#      the warm-up and at the end.
#
# Every setting is an environment variable (SOAK_*, read below); SOAK_BUILD=0 skips the builds.
# Writes bench/SOAK.md (SOAK_MARKDOWN) and the raw JSON next to it in bench/results/soak-*.
# Exits non-zero when roomcast misses a goal: 100% delivered, no duplicates, no reordering, no
# `recovered:false`, slow-reader p99 ratio within 1.2x, RSS growth within 10%, no roomcast
# process dying on its own. The peers' figures are reported, never judged.
# Everything it starts it stops (trap on exit). Never part of `make test`.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
START=$SECONDS
CARGO=${CARGO:-cargo}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
DATE=$(date -u +%F)
COMMIT=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- crates loadtest ':(exclude)*.md' || COMMIT="$COMMIT-dirty"
NAME="soak-$DATE-$COMMIT"
MARKDOWN=${SOAK_MARKDOWN:-bench/SOAK.md}
TARGETS=${SOAK_TARGETS:-"roomcast socketio socketioxide"}
USERS=${SOAK_USERS:-300}
DIALOGS=${SOAK_DIALOGS:-100}
RATE=${SOAK_RATE:-50}
SECS=${SOAK_SECS:-120}
DROP_EVERY=${SOAK_DROP_EVERY:-15}
SETTLE=${SOAK_SETTLE:-20}
KILL_NODE_AT=${SOAK_KILL_NODE_AT:-35}
KILL_REDIS_AT=${SOAK_KILL_REDIS_AT:-75}
DOWN_SECS=${SOAK_DOWN_SECS:-5}
# Each slow reader is sent PUBLISHES x PAYLOAD bytes (8 MB): more than the kernel's socket buffers
# (up to 4 MiB sent, ~128 KiB received by a socket never read) and roomcast's 1 MiB bound hold.
SLOW_READERS=${SOAK_SLOW_READERS:-5}
SLOW_SUBSCRIBERS=${SOAK_SLOW_SUBSCRIBERS:-200}
SLOW_PUBLISHES=${SOAK_SLOW_PUBLISHES:-8000}
SLOW_RATE=${SOAK_SLOW_RATE:-500}
SLOW_PAYLOAD=${SOAK_SLOW_PAYLOAD:-1000}
CYCLES=${SOAK_CYCLES:-1000000}
# Seconds a readiness wait may take.
PATIENCE=30

WORK=$(mktemp -d /tmp/roomcast-soak.XXXXXX)
OUT=bench/results/$NAME
declare -A PID=()     # name -> pid of what runs now
declare -A PORT=()    # name -> its port, kept across restarts
declare -A LAUNCH=()  # name -> its command line (restarts)
declare -A HEALTH=()  # name -> its readiness URL
TESTER=""            # the load tester running in the background, if any
EVENTS=$WORK/events.txt
: >"$EVENTS"

log() { printf '[soak %4ds] %s\n' $((SECONDS - START)) "$*" >&2; }
event() { log "$*"; printf '%s\n' "$*" >>"$EVENTS"; }

cleanup() {
    local name
    [ -z "$TESTER" ] || kill "$TESTER" 2>/dev/null || true
    for name in "${!PID[@]}"; do kill "${PID[$name]}" 2>/dev/null || true; done
    for name in "${!PID[@]}"; do wait "${PID[$name]}" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "make soak needs $1 ($2)" >&2; exit 1; }; }
need cargo "Rust toolchain"
need redis-server "Debian package redis-server"
need redis-cli "Debian package redis-tools"
need node "Node 20"
need npm "Node 20"
need python3 "Debian package python3"
need curl "Debian package curl"
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "make soak needs nginx (Debian package nginx-light; make deps installs it)" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "${SOAK_BUILD:-1}" = 1 ]; then
    log "building roomcast and roomcast-loadtest (release)"
    $CARGO build --release -q -p roomcast-gateway -p roomcast-loadtest
    log "building the socketioxide peer from crates.io (release)"
    $CARGO build --release -q --manifest-path loadtest/peers/socketioxide/Cargo.toml --target-dir "$TARGET_DIR/peers"
    log "installing the Socket.IO peer from npm"
    (cd loadtest/peers/socketio && npm install --no-audit --no-fund --loglevel=error >/dev/null)
else
    log "SOAK_BUILD=0: using the binaries already in $BIN and $TARGET_DIR/peers"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
alive() { [ -n "${PID[$1]:-}" ] && kill -0 "${PID[$1]}" 2>/dev/null; }

# until_ready NAME CHECK...: polls CHECK every 0.1 s until it succeeds, for at most PATIENCE s.
until_ready() {
    local name=$1 deadline=$((SECONDS + PATIENCE)); shift
    until "$@" >/dev/null 2>&1; do
        alive "$name" || { echo "$name exited; its log:" >&2; tail -20 "$WORK/$name.log" >&2; exit 1; }
        [ "$SECONDS" -lt "$deadline" ] || { echo "$name not ready within ${PATIENCE}s; its log:" >&2; tail -20 "$WORK/$name.log" >&2; exit 1; }
        sleep 0.1
    done
}

# launch NAME: (re)starts NAME from its recorded command line on its recorded port.
launch() {
    local name=$1
    # exec: the pid is the server's own, so that SIGKILL reaches it and not a shell.
    eval "exec ${LAUNCH[$name]}" >>"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
}

# server NAME HEALTH_PATH ENV... -- COMMAND...: a server on a free port ($PORT in its env).
server() {
    local name=$1 health=$2; shift 2
    local port=${PORT[$name]:-$(free_port)} envs=() line
    PORT[$name]=$port
    while [ "$1" != "--" ]; do envs+=("${1//\$PORT/$port}"); shift; done
    shift
    printf -v line '%q ' env "${envs[@]}" "$@"
    LAUNCH[$name]=$line
    HEALTH[$name]="http://127.0.0.1:$port$health"
    launch "$name"
    until_ready "$name" curl -sf -o /dev/null --max-time 1 "${HEALTH[$name]}"
    log "$name on 127.0.0.1:$port (pid ${PID[$name]})"
}

restart() {
    launch "$1"
    until_ready "$1" curl -sf -o /dev/null --max-time 1 "${HEALTH[$1]}"
}

stop() { # NAME...: TERM, then wait
    local name
    for name in "$@"; do kill "${PID[$name]}" 2>/dev/null || true; done
    for name in "$@"; do wait "${PID[$name]}" 2>/dev/null || true; unset "PID[$name]"; done
}

SECRET="soak-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
API_KEY="soak-key"

# Redis with AOF: a restart on the same directory reads back member sets and room history.
mkdir -p "$WORK/redis"
PORT[redis]=$(free_port)
printf -v LAUNCH[redis] '%q ' redis-server --port "${PORT[redis]}" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync everysec --dir "$WORK/redis"
redis_up() { redis-cli -p "${PORT[redis]}" ping | grep -q PONG; }
launch redis
until_ready redis redis_up
REDIS_URL="redis://127.0.0.1:${PORT[redis]}"
log "redis on 127.0.0.1:${PORT[redis]} (AOF in $WORK/redis)"

# The three nodes of each target; their ports now, so that nginx knows them all.
NODES="a b c"
for t in rc sio siox; do for n in $NODES; do PORT[$t-$n]=$(free_port); done; PORT[lb-$t]=$(free_port); done

mkdir -p "$WORK/nginx/logs"
{
    echo "worker_processes 1;"
    echo "pid $WORK/nginx/nginx.pid;"
    echo "error_log $WORK/nginx/error.log warn;"
    echo "events { worker_connections 8192; }"
    echo "http {"
    echo "    access_log off;"
    for d in client_body proxy fastcgi uwsgi scgi; do echo "    ${d}_temp_path $WORK/nginx/$d;"; done
    echo '    map $http_upgrade $connection_upgrade { default upgrade; "" close; }'
    for t in rc sio siox; do
        echo "    upstream $t {"
        for n in $NODES; do echo "        server 127.0.0.1:${PORT[$t-$n]} max_fails=1 fail_timeout=2s;"; done
        echo "    }"
        echo "    server {"
        echo "        listen 127.0.0.1:${PORT[lb-$t]};"
        echo "        location / {"
        echo "            proxy_pass http://$t;"
        echo "            proxy_http_version 1.1;"
        echo '            proxy_set_header Upgrade $http_upgrade;'
        echo '            proxy_set_header Connection $connection_upgrade;'
        echo '            proxy_set_header Host $host;'
        echo "            proxy_next_upstream error timeout http_502 http_503;"
        echo "            proxy_connect_timeout 2s;"
        echo "            proxy_read_timeout 1h;"
        echo "            proxy_send_timeout 1h;"
        echo "            proxy_buffering off;"
        echo "        }"
        echo "    }"
    done
    echo "}"
} >"$WORK/nginx/nginx.conf"
printf -v LAUNCH[nginx] '%q ' "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;'
launch nginx
nginx_up() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "${PORT[lb-rc]}"; }
until_ready nginx nginx_up
log "nginx: roomcast on ${PORT[lb-rc]}, Socket.IO on ${PORT[lb-sio]}, socketioxide on ${PORT[lb-siox]}"

RC=(ROOMCAST_JWT_SECRET="$SECRET" ROOMCAST_API_KEY="$API_KEY" ROOMCAST_LOG=warn ROOMCAST_LISTEN='127.0.0.1:$PORT')
PEER=(JWT_SECRET="$SECRET" LISTEN='127.0.0.1:$PORT')
start_target() { # rc|sio|siox: its three nodes on Redis
    local t=$1 n
    for n in $NODES; do
        case $t in
            rc) server "rc-$n" /readyz "${RC[@]}" ROOMCAST_NODE_ID="$n" ROOMCAST_REDIS_URL="$REDIS_URL" -- "$BIN/roomcast" ;;
            sio) server "sio-$n" /healthz "${PEER[@]}" REDIS_URL="$REDIS_URL" -- node loadtest/peers/socketio/server.js ;;
            siox) server "siox-$n" /healthz "${PEER[@]}" REDIS_URL="$REDIS_URL" -- \
                "$TARGET_DIR/peers/release/roomcast-peer-socketioxide" ;;
        esac
    done
}

mkdir -p "$OUT"
UPTIME_BEFORE=$(uptime)
log "load before: $UPTIME_BEFORE"

# One churn run against target $1 (rc|sio|siox) while a node and Redis are killed.
churn() {
    local t=$1 name protocol
    case $t in
        rc) name=roomcast protocol=roomcast ;;
        sio) name=socket.io protocol=socketio ;;
        siox) name=socketioxide protocol=socketio ;;
    esac
    start_target "$t"
    local cluster=()
    for n in $NODES; do cluster+=(--cluster-node "127.0.0.1:${PORT[$t-$n]}"); done
    log "churn $name: $USERS users / $DIALOGS dialogs, $RATE msg/s for $SECS s, a drop every ~$DROP_EVERY s"
    local began=$SECONDS
    "$BIN/roomcast-loadtest" churn --name "$name" --protocol "$protocol" --node "127.0.0.1:${PORT[lb-$t]}" \
        "${cluster[@]}" --secret "$SECRET" --api-key "$API_KEY" --users "$USERS" --dialogs "$DIALOGS" \
        --rate "$RATE" --duration-secs "$SECS" --drop-every-secs "$DROP_EVERY" --settle-secs "$SETTLE" \
        --json "$OUT/churn-$t.json" >"$WORK/churn-$t.md" 2>"$WORK/churn-$t.log" &
    TESTER=$!
    # The faults, at fixed moments of the run (a schedule, not a readiness wait).
    sleep "$KILL_NODE_AT"
    local victim="$t-c" down_at
    kill -KILL "${PID[$victim]}"
    wait "${PID[$victim]}" 2>/dev/null || true
    down_at=$SECONDS
    sleep "$DOWN_SECS"
    restart "$victim"
    event "$name: node c SIGKILLed at $((down_at - began)) s, serving again at $((SECONDS - began)) s"
    sleep $((KILL_REDIS_AT - (SECONDS - began) > 0 ? KILL_REDIS_AT - (SECONDS - began) : 0))
    kill -KILL "${PID[redis]}"
    wait "${PID[redis]}" 2>/dev/null || true
    down_at=$SECONDS
    sleep "$DOWN_SECS"
    launch redis
    until_ready redis redis_up
    event "$name: Redis SIGKILLed at $((down_at - began)) s, restarted on its AOF at $((SECONDS - began)) s"
    local status=0
    wait "$TESTER" || status=$?
    TESTER=""
    [ "$status" = 0 ] || { echo "churn against $name failed; its log:" >&2; tail -30 "$WORK/churn-$t.log" >&2; exit 1; }
    for n in $NODES; do
        if ! alive "$t-$n"; then
            cp "$WORK/$t-$n.log" "$OUT/$t-$n.log"
            event "$name: node $n EXITED on its own during the run (its log: $OUT/$t-$n.log): $(grep -m1 -iE 'error|panic' "$WORK/$t-$n.log" | cut -c1-200)"
        fi
    done
    stop "$t-a" "$t-b" "$t-c"
    log "churn $name done in $((SECONDS - began)) s"
}

for t in $TARGETS; do
    case $t in
        roomcast) churn rc ;;
        socketio) churn sio ;;
        socketioxide) churn siox ;;
        *) echo "SOAK_TARGETS: unknown target $t (roomcast, socketio, socketioxide)" >&2; exit 1 ;;
    esac
done
stop nginx

# Slow readers: one node per target, no Redis, the same room without and with them.
slow() {
    local t=$1 name protocol node
    case $t in
        rc) name=roomcast protocol=roomcast
            server rc-single /readyz "${RC[@]}" ROOMCAST_NODE_ID=single -- "$BIN/roomcast" ;;
        sio) name=socket.io protocol=socketio
            server sio-single /healthz "${PEER[@]}" -- node loadtest/peers/socketio/server.js ;;
        siox) name=socketioxide protocol=socketio
            server siox-single /healthz "${PEER[@]}" -- "$TARGET_DIR/peers/release/roomcast-peer-socketioxide" ;;
    esac
    node="127.0.0.1:${PORT[$t-single]}=${PID[$t-single]}"
    for readers in 0 "$SLOW_READERS"; do
        log "broadcast $name: $SLOW_SUBSCRIBERS subscribers, $SLOW_PUBLISHES x $SLOW_PAYLOAD B at $SLOW_RATE/s, $readers slow readers"
        "$BIN/roomcast-loadtest" broadcast --name "$name" --protocol "$protocol" --node "$node" --secret "$SECRET" \
            --api-key "$API_KEY" --subscribers "$SLOW_SUBSCRIBERS" --publishes "$SLOW_PUBLISHES" --rate "$SLOW_RATE" \
            --payload "$SLOW_PAYLOAD" --slow-readers "$readers" --json "$OUT/slow-$t-$readers.json" \
            >"$WORK/slow-$t-$readers.md" 2>"$WORK/slow-$t-$readers.log" \
            || { echo "broadcast against $name failed:" >&2; tail -30 "$WORK/slow-$t-$readers.log" >&2; exit 1; }
    done
    alive "$t-single" || event "$name: the broadcast node EXITED on its own: $(tail -3 "$WORK/$t-single.log" | tr '\n' ' ')"
    stop "$t-single"
}
for t in $TARGETS; do
    case $t in roomcast) slow rc ;; socketio) slow sio ;; socketioxide) slow siox ;; esac
done

# A million connect/disconnect cycles against a fresh roomcast node.
server rc-cycles /readyz "${RC[@]}" ROOMCAST_NODE_ID=cycles -- "$BIN/roomcast"
log "cycles: $CYCLES connect/disconnect cycles against roomcast"
"$BIN/roomcast-loadtest" cycles --name roomcast --protocol roomcast --node "127.0.0.1:${PORT[rc-cycles]}=${PID[rc-cycles]}" \
    --secret "$SECRET" --api-key "$API_KEY" --cycles "$CYCLES" --json "$OUT/cycles.json" \
    >"$WORK/cycles.md" 2>"$WORK/cycles.log" || { echo "cycles failed:" >&2; tail -30 "$WORK/cycles.log" >&2; exit 1; }
alive rc-cycles || event "roomcast: the cycles node EXITED on its own: $(tail -3 "$WORK/rc-cycles.log" | tr '\n' ' ')"
stop rc-cycles
stop redis

UPTIME_AFTER=$(uptime)
log "load after: $UPTIME_AFTER"

status=0
python3 bench/soak_report.py --out "$OUT" --markdown "$MARKDOWN" --events "$EVENTS" --date "$DATE" --commit "$COMMIT" \
    --uptime-before "$UPTIME_BEFORE" --uptime-after "$UPTIME_AFTER" --wall $((SECONDS - START)) \
    --machine "$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)" \
    --params "$USERS users / $DIALOGS dialogs, $RATE msg/s for $SECS s (+$SETTLE s settle), a drop every ~$DROP_EVERY s per client; node c SIGKILLed at ${KILL_NODE_AT} s and Redis at ${KILL_REDIS_AT} s, each down ${DOWN_SECS} s" \
    --builds "$([ "${SOAK_BUILD:-1}" = 1 ] && echo 'builds included' || echo 'builds skipped with SOAK_BUILD=0')" \
    --slow-params "$SLOW_SUBSCRIBERS subscribers, $SLOW_PUBLISHES publishes of $SLOW_PAYLOAD B at $SLOW_RATE/s, $SLOW_READERS slow readers" \
    || status=$?
log "done in $((SECONDS - START)) s: $MARKDOWN, $OUT/"
exit "$status"
