# roomcast: `make run` starts a development node, `make test` runs every check CI runs.

CARGO ?= cargo
LISTEN ?= 127.0.0.1:8080
DEV_SECRET ?= dev-secret-do-not-use-in-production
DEV_API_KEY ?= dev-api-key
BIN := target/debug/roomcast

.PHONY: all build run test deps fmt lint clean bench

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

## test: format check, clippy with -D warnings, every test of the workspace
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

## deps: install what the tests need when it is missing (redis-server, from Debian);
## policy-rc.d keeps the package from starting a server that nothing would stop
deps:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server (Debian package) for the tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		POLICY=; [ -e /usr/sbin/policy-rc.d ] || POLICY=/usr/sbin/policy-rc.d; \
		if [ -n "$$POLICY" ]; then printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$POLICY >/dev/null; $$SUDO chmod +x $$POLICY; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; \
		STATUS=$$?; [ -z "$$POLICY" ] || $$SUDO rm -f $$POLICY; exit $$STATUS; \
	}
	@command -v redis-server >/dev/null 2>&1 || { echo "redis-server is still missing"; exit 1; }

## bench: release build, then Redis, roomcast and the Socket.IO / socketioxide peers on free ports and
## the standard suite (loadtest/suite.toml, ~15 min, loads both cores); writes bench/RESULTS.md and
## bench/results/<date>-<commit>.json. Needs node/npm, redis-server, openssl. Never part of `make test`.
bench: deps
	bench/run.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
