# roomcast: `make run` starts a development node, `make test` runs every check CI runs,
# `make cluster` starts three nodes behind nginx with Redis and Prometheus (deploy/local).

CARGO ?= cargo
LISTEN ?= 127.0.0.1:8080
DEV_SECRET ?= dev-secret-do-not-use-in-production
DEV_API_KEY ?= dev-api-key
BIN := target/debug/roomcast

.PHONY: all build run test deps cluster cluster-stop fmt lint clean bench soak autobahn fuzz

all: build

## build: compile the workspace (debug)
build:
	$(CARGO) build --workspace

## run: start one node on the embedded broker with a development secret and API key
run: build
	@TOKEN=$$(ROOMCAST_JWT_SECRET='$(DEV_SECRET)' $(BIN) token --sub u1 --org o1 --ttl 24h) && \
	echo "" && \
	echo "roomcast dev node on http://$(LISTEN)  (secret and API key are for development only)" && \
	echo "" && \
	echo "  token for user u1, org o1:  $$TOKEN" && \
	echo "  connect:  websocat 'ws://$(LISTEN)/ws?token='$$TOKEN" && \
	echo "  publish:  curl -s -H 'Authorization: Bearer $(DEV_API_KEY)' \\" && \
	echo "              -d '{\"room\":\"user:u1\",\"event\":\"user:notification\",\"data\":{\"text\":\"hello\"}}' \\" && \
	echo "              http://$(LISTEN)/api/publish" && \
	echo ""
	ROOMCAST_JWT_SECRET='$(DEV_SECRET)' ROOMCAST_API_KEY='$(DEV_API_KEY)' ROOMCAST_LISTEN='$(LISTEN)' \
		ROOMCAST_NODE_ID=dev $(BIN)

## test: format check, clippy with -D warnings, every test of the workspace, the deployment
## checks and the Autobahn WebSocket conformance suite (skipped, saying so, without Python 2.7)
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace
	clients/js/scripts/test.sh
	clients/socketio/scripts/test.sh
	deploy/check/run.sh
	CARGO='$(CARGO)' deploy/check/autobahn.sh

## autobahn: the Autobahn|Testsuite fuzzing client (cases 1-10) against the echo example built on
## the gateway's frame reader and writer; report in target/autobahn (about 1 min, +1 min to install)
autobahn:
	CARGO='$(CARGO)' deploy/check/autobahn.sh

## deps: install what the tests need when it is missing: redis-server, nginx and prometheus from
## Debian (without starting their services), helm-sdkpy, helm-python-sdk and PyYAML in a Python 3.12 venv
deps:
	@deploy/local/cluster.sh deps
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is still missing"; exit 1; }
	@deploy/check/run.sh --deps-only
	@clients/js/scripts/install.sh
	@clients/socketio/scripts/install.sh

## demo: the demo chat of the JavaScript client (clients/js/demo) on one node, with its backend;
## prints the URLs (http://127.0.0.1:5173/?user=alice and ?user=bob)
.PHONY: demo
demo: build
	clients/js/scripts/demo.sh

## cluster: Redis, three nodes, nginx (ws://127.0.0.1:18080/ws) and Prometheus on this machine
cluster: build
	deploy/local/cluster.sh start

## cluster-stop: stop everything `make cluster` started
cluster-stop:
	deploy/local/cluster.sh stop

## bench: release build, then Redis, roomcast and the Socket.IO / socketioxide peers on free ports and
## the standard suite (loadtest/suite.toml; ~14 min with a cold build, ~7 min warm; loads both cores); writes bench/RESULTS.md and
## bench/results/<date>-<commit>.json. Needs node/npm, redis-server, openssl. Never part of `make test`.
bench: deps
	bench/run.sh

## soak: release build, then churn against three nodes of roomcast, Socket.IO and socketioxide on one
## Redis (AOF) behind nginx while a node and Redis are SIGKILLed, a slow reader in a busy room and a
## million connect/disconnect cycles (~12 min plus the builds, loads both cores); writes bench/SOAK.md
## and fails when roomcast misses a goal. Needs node/npm, redis-server, nginx. Never part of `make test`.
soak: deps
	CARGO='$(CARGO)' bench/soak.sh

## bench-presence: what presence, online status, events and receipts cost (issue 15): a connect
## storm with presence off and on, Redis calls per connect and disconnect, broadcast with and
## without receipts, on one Redis, release builds (~5 min); writes bench/PRESENCE.md. Not in `make test`.
.PHONY: bench-presence
bench-presence: deps
	bench/presence.sh

## bench-wait: what redis_wait_replicas costs (issue 18): a master and a replica, broadcast 1 -> 10
## published one at a time and paced at 200/s with WAIT 0 and WAIT 1 alternating, Redis CPU per
## publish, release builds (~3 min); writes bench/REPLICATION.md. Not in `make test`.
.PHONY: bench-wait
bench-wait: deps
	bench/replication.sh

## fuzz: every cargo-fuzz target (fuzz/fuzz_targets) for FUZZ_SECS seconds each (default 60), one at
## a time at nice 19, from the seeds in fuzz/seeds; nightly toolchain, installs cargo-fuzz when missing.
## Not part of `make test`. FUZZ_TARGETS="token envelope" runs some only.
FUZZ_SECS ?= 60
FUZZ_TARGETS ?=
fuzz:
	FUZZ_SECS=$(FUZZ_SECS) fuzz/run.sh $(FUZZ_TARGETS)

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
