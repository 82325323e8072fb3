#!/usr/bin/env bash
# Install everything the test suite needs (pip, npm, apt) and run the whole suite. Idempotent: quick when done.
# Usage: bash tests/run.sh [pytest args]      (e.g. bash tests/run.sh -m "not interop", which needs no Node)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() { as_root apt-get update -qq && as_root apt-get install -y -qq "$@"; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing Node.js (the interop tests run the JS reference peers)"
  apt_install nodejs npm
fi

missing=""
for tool in libtoolize:libtool autoconf:autoconf automake:automake make:make g++:g++ tmux:tmux zsh:zsh fish:fish; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing="$missing ${tool#*:}"
done
if [ -n "$missing" ]; then
  echo "== installing build tools (native sodium for the XRP peer) and shells (completion tests):$missing"
  apt_install $missing
fi

missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"            # the dashboard test (headless)
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"      # verifies `moneyd service`'s unit
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  as_root apt-get update -qq && as_root apt-get install -y -qq $missing
fi

# Debian/Ubuntu's own Python refuses `pip install` outside a venv (PEP 668): use one of our own there, seeing the
# system's packages so that what apt installed is reused.
python=python3
if [ -z "${VIRTUAL_ENV:-}" ] && python3 -c 'import sys, sysconfig, os; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
  if [ ! -x .venv/bin/python ]; then
    echo "== python3 is managed by the system: making .venv"
    python3 -m venv --system-site-packages .venv || { echo "tests/run.sh: python3 cannot make a venv: apt install python3-venv" >&2; exit 1; }
  fi
  python=.venv/bin/python
fi

echo "== pip install -e .[test]"
"$python" -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== npm ci (pinned JS reference peers, tests/js)"
if [ ! -f tests/js/node_modules/.package-lock.json ] || ! cmp -s tests/js/package-lock.json tests/js/node_modules/.moneyd-lock; then
  (cd tests/js && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.moneyd-lock)
fi

if [ -f tests/js/build-native.sh ]; then
  echo "== native modules for the JS peers"
  bash tests/js/build-native.sh
fi

echo "== pytest"
exec "$python" -m pytest "$@"
