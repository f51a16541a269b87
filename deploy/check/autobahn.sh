#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client (cases 1-10; 12 and 13, permessage-deflate, are not
# offered by roomcast) against crates/gateway/examples/autobahn_echo.rs, an echo server built on
# the gateway's own listener, upgrade checks, frame reader and writer, and checks the report:
# every case must be OK, NON-STRICT or INFORMATIONAL, as fastwebsockets and tokio-tungstenite
# require of themselves. Run by `make test` and `make autobahn`.
#
#   deploy/check/autobahn.sh            # install when missing, run, check; report in target/autobahn
#
# wstest runs only on Python 2.7. It is looked for under pyenv (versions/2.7.18) and on the PATH;
# when there is none the check says so and is SKIPPED (exit 0): Debian has no python2.7 package.
# The venv (target/autobahn-venv) is made with virtualenv<20.22, the last that makes 2.7 venvs,
# and the pinned packages of autobahn-requirements.txt.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="${AUTOBAHN_OUT:-$REPO/target/autobahn}"
VENV="${AUTOBAHN_VENV:-$REPO/target/autobahn-venv}"
TOOL="$REPO/target/autobahn-tool"
CARGO="${CARGO:-cargo}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"

find_python27() {
    local candidate
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7 python2.7; do
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! "$VENV/bin/wstest" --help >/dev/null 2>&1; then
    if ! python27=$(find_python27); then
        echo "autobahn: SKIPPED: no Python 2.7 found (looked in \$PYENV_ROOT/versions/2.7* and for python2.7 on the PATH); the WebSocket conformance suite did not run" >&2
        exit 0
    fi
    echo "autobahn: creating $VENV with $python27 and autobahntestsuite (about a minute)" >&2
    rm -rf "$VENV" "$TOOL"
    python3 -m venv "$TOOL"
    "$TOOL/bin/pip" install -q --disable-pip-version-check "virtualenv<20.22"
    "$TOOL/bin/virtualenv" -q -p "$python27" "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-python-version-warning \
        -r "$HERE/autobahn-requirements.txt"
fi

# Unquoted: CARGO may be a command with arguments (make test CARGO="flock lock cargo").
$CARGO build -q -p roomcast-gateway --example autobahn_echo
ECHO_BIN="$TARGET_DIR/debug/examples/autobahn_echo"

rm -rf "$OUT"
mkdir -p "$OUT"
"$ECHO_BIN" 127.0.0.1:0 >"$OUT/echo.out" 2>"$OUT/echo.log" &
ECHO_PID=$!
trap 'kill "$ECHO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -q '^listening on ' "$OUT/echo.out" 2>/dev/null && break
    kill -0 "$ECHO_PID" 2>/dev/null || { echo "autobahn: the echo server exited: $(cat "$OUT/echo.log")" >&2; exit 1; }
    sleep 0.1
done
ADDR=$(sed -n 's/^listening on //p' "$OUT/echo.out")
[ -n "$ADDR" ] || { echo "autobahn: the echo server did not start" >&2; exit 1; }

cat >"$OUT/fuzzingclient.json" <<JSON
{
  "outdir": "$OUT/reports",
  "servers": [{"agent": "roomcast", "url": "ws://$ADDR"}],
  "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
echo "autobahn: wstest -m fuzzingclient against $ADDR (cases 1-10, no compression)" >&2
start=$(date +%s)
(cd "$OUT" && "$VENV/bin/wstest" -m fuzzingclient -s fuzzingclient.json >"$OUT/wstest.log" 2>&1) || {
    echo "autobahn: wstest failed; see $OUT/wstest.log" >&2
    tail -20 "$OUT/wstest.log" >&2
    exit 1
}
echo "autobahn: $(($(date +%s) - start)) s; report in $OUT/reports/index.html" >&2

python3 - "$OUT/reports/index.json" <<'PY'
import collections, json, sys
report = json.load(open(sys.argv[1]))["roomcast"]
accepted = {"OK", "NON-STRICT", "INFORMATIONAL"}
counts = collections.Counter(case["behavior"] for case in report.values())
closes = collections.Counter(case["behaviorClose"] for case in report.values())
key = lambda c: [int(p) for p in c.split(".")]
bad = sorted((c for c, case in report.items() if case["behavior"] not in accepted), key=key)
summary = ", ".join(f"{n} {b}" for b, n in sorted(counts.items()))
print(f"autobahn: {len(report)} cases: {summary} (close handling: "
      + ", ".join(f"{n} {b}" for b, n in sorted(closes.items())) + ")")
for c in sorted((c for c, case in report.items() if case["behavior"] != "OK"), key=key):
    print(f"autobahn:   {c}: {report[c]['behavior']} (close {report[c]['behaviorClose']})")
if bad:
    print(f"autobahn: FAILED: {len(bad)} cases are not OK, NON-STRICT or INFORMATIONAL: {', '.join(bad)}")
    sys.exit(1)
PY
