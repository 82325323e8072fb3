#!/usr/bin/env bash
# Install everything the test suite needs (pip, npm, apt) and run the whole suite. Idempotent: quick when done.
# Usage: bash tests/run.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing Node.js (the interop tests run the JS reference peers)"
  as_root apt-get update -qq && as_root apt-get install -y -qq nodejs npm
fi

missing=""
for tool in libtoolize:libtool autoconf:autoconf automake:automake make:make g++:g++; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing="$missing ${tool#*:}"
done
if [ -n "$missing" ]; then
  echo "== installing build tools for the native sodium binding of the XRP peer:$missing"
  as_root apt-get update -qq && as_root apt-get install -y -qq $missing
fi

missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"            # the dashboard test (headless)
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"      # verifies `moneyd service`'s unit
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  as_root apt-get update -qq && as_root apt-get install -y -qq $missing
fi

echo "== pip install -e .[all,test]"
python3 -m pip install -q --disable-pip-version-check -e '.[all,test]'

echo "== npm ci (pinned JS reference peers, tests/js)"
if [ ! -f tests/js/node_modules/.package-lock.json ] || ! cmp -s tests/js/package-lock.json tests/js/node_modules/.moneyd-lock; then
  (cd tests/js && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.moneyd-lock)
fi

if [ -f tests/js/build-native.sh ]; then
  echo "== native modules for the JS peers"
  bash tests/js/build-native.sh
fi

echo "== pytest"
exec python3 -m pytest "$@"
