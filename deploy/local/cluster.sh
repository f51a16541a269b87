#!/usr/bin/env bash
# A roomcast cluster on this machine, without Docker: one Redis, three nodes (a, b, c), nginx as the
# WebSocket load balancer in front of them and Prometheus scraping all three.
#
#   deploy/local/cluster.sh start    # start everything, wait until it is ready, print the addresses
#   deploy/local/cluster.sh stop     # stop everything this script started
#   deploy/local/cluster.sh status   # what runs
#   deploy/local/cluster.sh deps     # only install what is missing (make test's deps uses it)
#
# Every process runs as a plain process with its config, data and log under RUN_DIR. nginx and
# Prometheus come from Debian's packages and are installed when missing (no system service is
# started: a temporary policy-rc.d forbids it). Settings, all optional:
#
#   RUN_DIR          where configs, data, logs and pid files go   (default: target/local-cluster)
#   ROOMCAST_BIN     the roomcast binary                          (default: target/debug/roomcast)
#   LB_PORT          nginx, the address clients and backends use  (default: 18080)
#   NODE_PORTS       the three nodes' ports                       (default: "18081 18082 18083")
#   REDIS_PORT       Redis                                        (default: 18379)
#   PROMETHEUS_PORT  Prometheus                                   (default: 19090)
#   SCRAPE_INTERVAL  Prometheus scrape interval                   (default: 5s)
#   ROOMCAST_JWT_SECRET, ROOMCAST_API_KEY  (default: the development values of `make run`)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
RUN_DIR="${RUN_DIR:-$REPO/target/local-cluster}"
ROOMCAST_BIN="${ROOMCAST_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/roomcast}"
LB_PORT="${LB_PORT:-18080}"
NODE_PORTS="${NODE_PORTS:-18081 18082 18083}"
REDIS_PORT="${REDIS_PORT:-18379}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-19090}"
SCRAPE_INTERVAL="${SCRAPE_INTERVAL:-5s}"
JWT_SECRET="${ROOMCAST_JWT_SECRET:-dev-secret-do-not-use-in-production}"
API_KEY="${ROOMCAST_API_KEY:-dev-api-key}"
NODE_NAMES=(a b c)
# Seconds a readiness wait may take before start-up gives up.
PATIENCE=20

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Installs Debian packages when their command is missing, without starting their services.
ensure_installed() {
    local missing=()
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
    command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]} (Debian packages; their services are not started)"
    local sudo="" policy=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod +x "$policy"
    fi
    local status=0
    { $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null; } \
        || status=$?
    [ -z "$policy" ] || $sudo rm -f "$policy"
    [ "$status" = 0 ] || die "apt-get install ${missing[*]} failed"
}

nginx_bin() { command -v nginx 2>/dev/null || echo /usr/sbin/nginx; }

# Starts a process detached from this shell, its output in RUN_DIR/<name>.log, its pid in RUN_DIR/<name>.pid.
spawn() {
    local name="$1"
    shift
    setsid "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/$name.pid"
}

alive() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

# Polls an HTTP URL until it answers 200, for at most PATIENCE seconds.
wait_http() {
    local what="$1" url="$2" name="$3" deadline=$((SECONDS + PATIENCE))
    until curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; do
        alive "$name" || die "$what exited; see $RUN_DIR/$name.log"
        [ "$SECONDS" -lt "$deadline" ] || die "$what not ready within ${PATIENCE}s; see $RUN_DIR/$name.log"
        sleep 0.1
    done
}

render() {
    local template="$1" out="$2" upstreams="" targets=""
    for port in $NODE_PORTS; do
        upstreams+="        server 127.0.0.1:$port max_fails=1 fail_timeout=5s;"$'\n'
        targets+="'127.0.0.1:$port', "
    done
    local text
    text="$(<"$template")"
    text="${text//@RUN_DIR@/$RUN_DIR}"
    text="${text//@LB_PORT@/$LB_PORT}"
    text="${text//@UPSTREAMS@/${upstreams%$'\n'}}"
    text="${text//@TARGETS@/${targets%, }}"
    text="${text//@SCRAPE_INTERVAL@/$SCRAPE_INTERVAL}"
    text="${text//@ALERTS@/$REPO/deploy/prometheus/alerts.yml}"
    printf '%s\n' "$text" >"$out"
}

start() {
    [ -x "$ROOMCAST_BIN" ] || die "$ROOMCAST_BIN not found: run cargo build (make cluster does)"
    local ports
    read -r -a ports <<<"$NODE_PORTS"
    [ ${#ports[@]} -eq 3 ] || die "NODE_PORTS: expected three ports, got \"$NODE_PORTS\""
    for name in redis node-a node-b node-c nginx prometheus; do
        ! alive "$name" || die "already running ($name); stop it first with: $0 stop"
    done
    # A port that answers already would pass the readiness checks for the wrong process.
    local all="$LB_PORT $NODE_PORTS $REDIS_PORT $PROMETHEUS_PORT" port
    [ "$(tr ' ' '\n' <<<"$all" | sort -u | wc -l)" -eq 6 ] || die "ports must differ: $all"
    for port in $all; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port is in use; set LB_PORT, NODE_PORTS, REDIS_PORT or PROMETHEUS_PORT"
        fi
    done
    ensure_installed
    # A start that fails half-way stops what it had started.
    trap 'if [ $? -ne 0 ]; then say "start failed; stopping what it started"; stop; fi' EXIT
    mkdir -p "$RUN_DIR/redis" "$RUN_DIR/nginx" "$RUN_DIR/prometheus"

    spawn redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$RUN_DIR/redis"
    local deadline=$((SECONDS + PATIENCE))
    until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
        alive redis || die "redis-server exited; see $RUN_DIR/redis.log"
        [ "$SECONDS" -lt "$deadline" ] || die "redis-server not ready within ${PATIENCE}s"
        sleep 0.1
    done

    for i in 0 1 2; do
        local name="${NODE_NAMES[$i]}" port="${ports[$i]}"
        spawn "node-$name" env ROOMCAST_NODE_ID="$name" ROOMCAST_LISTEN="127.0.0.1:$port" \
            ROOMCAST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" ROOMCAST_JWT_SECRET="$JWT_SECRET" \
            ROOMCAST_API_KEY="$API_KEY" ROOMCAST_LOG_FORMAT=json ROOMCAST_DRAIN_WINDOW=2s "$ROOMCAST_BIN"
    done
    for i in 0 1 2; do
        wait_http "node ${NODE_NAMES[$i]}" "http://127.0.0.1:${ports[$i]}/readyz" "node-${NODE_NAMES[$i]}"
    done

    render "$HERE/nginx.conf.in" "$RUN_DIR/nginx/nginx.conf"
    spawn nginx "$(nginx_bin)" -p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" -g 'daemon off;'
    wait_http nginx "http://127.0.0.1:$LB_PORT/readyz" nginx

    render "$HERE/prometheus.yml.in" "$RUN_DIR/prometheus/prometheus.yml"
    spawn prometheus prometheus --config.file="$RUN_DIR/prometheus/prometheus.yml" \
        --storage.tsdb.path="$RUN_DIR/prometheus/data" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
    wait_http prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" prometheus

    cat >"$RUN_DIR/cluster.env" <<EOF
LB_URL=http://127.0.0.1:$LB_PORT
WS_URL=ws://127.0.0.1:$LB_PORT/ws
NODE_URLS="http://127.0.0.1:${ports[0]} http://127.0.0.1:${ports[1]} http://127.0.0.1:${ports[2]}"
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT
EOF
    cat <<EOF
roomcast cluster is up (configs, data and logs in $RUN_DIR)
  load balancer (nginx):  ws://127.0.0.1:$LB_PORT/ws   and   http://127.0.0.1:$LB_PORT/api/...
  nodes a, b, c:          127.0.0.1:${ports[0]}, 127.0.0.1:${ports[1]}, 127.0.0.1:${ports[2]}  (JSON logs: node-*.log)
  Redis:                  redis://127.0.0.1:$REDIS_PORT
  Prometheus:             http://127.0.0.1:$PROMETHEUS_PORT   (e.g. /api/v1/query?query=roomcast_connections_open)
  stop it all with:       make cluster-stop   (or $0 stop)
EOF
}

# Stops what start started: TERM (the nodes drain), then KILL whatever is left after 10 s.
stop() {
    local pids=() name
    for name in nginx prometheus node-a node-b node-c redis; do
        if alive "$name"; then
            pids+=("$(cat "$RUN_DIR/$name.pid")")
            kill -TERM "${pids[-1]}" 2>/dev/null || true
        fi
        rm -f "$RUN_DIR/$name.pid"
    done
    local deadline=$((SECONDS + 10)) pid
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    say "stopped ${#pids[@]} process(es)"
}

status() {
    local name
    for name in redis node-a node-b node-c nginx prometheus; do
        if alive "$name"; then echo "$name: running (pid $(cat "$RUN_DIR/$name.pid"))"; else echo "$name: stopped"; fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    deps) ensure_installed ;;
    *) die "usage: $0 start|stop|status|deps" ;;
esac
