#!/usr/bin/env bash
# Checks of the deployment files that need Python, Helm, nginx or promtool rather than cargo:
# the Helm chart linted (helm-sdkpy) and rendered (helm-python-sdk) by real Helm, the compose
# file and its settings, the Dockerfile, the nginx and Prometheus configs. Run by `make test`.
#
#   deploy/check/run.sh              # create the venv when missing, then run every check
#   deploy/check/run.sh --deps-only  # only create the venv
#
# The venv (target/ops-venv) gets Python 3.12, which helm-sdkpy needs, from pyenv or the PATH.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${OPS_VENV:-$REPO/target/ops-venv}"
# Pinned: the checks rely on the shape of their results. helm-sdkpy lints (as Helm does);
# helm-python-sdk renders templates offline, which helm-sdkpy cannot.
PACKAGES=(helm-sdkpy==0.1.32 helm-python-sdk==0.2.2 PyYAML==6.0.2)

find_python312() {
    local candidate
    # pyenv's shim answers `command -v` even when 3.12 is not selected: run each candidate.
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 python3.12; do
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! { "$VENV/bin/python" -c 'import helm_sdkpy, yaml' && "$VENV/bin/python" -c 'import helm_python'; } >/dev/null 2>&1; then
    python=$(find_python312) || { echo "deploy checks: Python 3.12 not found (pyenv install 3.12 or apt-get install python3.12)" >&2; exit 1; }
    echo "deploy checks: creating $VENV with $python and ${PACKAGES[*]}" >&2
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PACKAGES[@]}"
fi
[ "${1:-}" = "--deps-only" ] && exit 0
exec "$VENV/bin/python" "$HERE/check_deploy.py"
