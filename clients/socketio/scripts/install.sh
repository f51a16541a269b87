#!/usr/bin/env bash
# Installs what the Socket.IO face's tests need when it is missing: Debian's chromium (apt-get,
# with sudo when not root), redis-server, nginx and prometheus (deploy/local/cluster.sh deps), and
# the npm packages (npm ci from package-lock.json, when node_modules is missing or older than the
# lock file). --npm-only installs only the npm packages.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"

if [ "${1:-}" != "--npm-only" ]; then
  "$HERE/../../deploy/local/cluster.sh" deps
  if [ ! -x /usr/bin/chromium ]; then
    echo "install: chromium (Debian package) is missing; installing it"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
  fi
fi

stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "install: npm ci (node_modules missing or older than package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error
fi
