#!/bin/sh
# Build the native sodium-native 2.4.9 binding inside tests/js/node_modules.
#
# Why: `npm ci --ignore-scripts` leaves sodium-native without a binary (its prebuilds stop at Node ABI 79; Node 20 is
# ABI 115), so sodium-universal falls back to sodium-javascript, whose sodium_malloc() buffers make
# ilp-plugin-xrp-asym-server sign garbage. Nothing here downloads anything: libsodium is built from the sources
# shipped in the npm tarball (autotools regenerate its configure script) and node-gyp compiles against the headers
# of the installed node (--nodedir), not headers fetched from nodejs.org.
#
# Needs: apt-get install -y libtool autoconf automake (plus make, g++, python3). Idempotent: exits at once when the
# binding already loads. The build happens in a scratch copy and is moved in at the end, so a concurrent test never
# sees a half-built package.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PKG="$HERE/node_modules/sodium-native"

loads() {
  (cd "$HERE" && node -e "
    const s = require('sodium-native');
    const pk = Buffer.alloc(s.crypto_sign_PUBLICKEYBYTES), sk = Buffer.alloc(s.crypto_sign_SECRETKEYBYTES);
    s.crypto_sign_seed_keypair(pk, sk, Buffer.alloc(32, 1));
    const sig = Buffer.alloc(s.crypto_sign_BYTES);
    s.crypto_sign_detached(sig, Buffer.from('x'), sk);
    if (!s.crypto_sign_verify_detached(sig, Buffer.from('x'), pk)) process.exit(1);
  " >/dev/null 2>&1)
}

[ -d "$PKG" ] || { echo "build-native: $PKG missing: run npm ci --ignore-scripts in $HERE first" >&2; exit 1; }
if loads; then
  echo "build-native: sodium-native already built"
  exit 0
fi

for tool in libtoolize autoconf automake make g++ python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "build-native: $tool is missing (apt-get update && apt-get install -y libtool autoconf automake g++ make python3)" >&2
    exit 1
  }
done

NODEDIR=${NODEDIR:-}
if [ -z "$NODEDIR" ]; then
  # The headers that ship with the installed node (Debian/NodeSource put them in <prefix>/include/node).
  prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  if [ -f "$prefix/include/node/node.h" ]; then NODEDIR=$prefix; fi
fi
[ -n "$NODEDIR" ] || { echo "build-native: no node headers found; set NODEDIR to a node source/header tree" >&2; exit 1; }

GYP=$(command -v node-gyp || true)
if [ -z "$GYP" ]; then
  npm_root=$(npm root -g 2>/dev/null)
  GYP="node $npm_root/npm/node_modules/node-gyp/bin/node-gyp.js"
fi

WORK=$(mktemp -d "$HERE/.sodium-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# A path without spaces (libsodium's configure refuses them) and a private copy of the package sources.
cp -R "$PKG" "$WORK/sodium-native"
cd "$WORK/sodium-native"
rm -rf build lib tmp
echo "build-native: building libsodium from the bundled sources (a minute or two)"
node preinstall.js >"$WORK/libsodium.log" 2>&1 || { tail -40 "$WORK/libsodium.log" >&2; exit 1; }
echo "build-native: compiling the binding against $NODEDIR/include/node"
$GYP rebuild --nodedir="$NODEDIR" >"$WORK/gyp.log" 2>&1 || { tail -40 "$WORK/gyp.log" >&2; exit 1; }
node postinstall.js

# Move the results in: lib/ (the linked libsodium), tmp/lib/libsodium.la (read by postinstall), build/Release.
rm -rf "$PKG/build.new" "$PKG/lib.new"
mkdir -p "$PKG/build.new"
cp -R build/Release "$PKG/build.new/Release"
cp -R lib "$PKG/lib.new"
rm -rf "$PKG/lib" && mv "$PKG/lib.new" "$PKG/lib"
rm -rf "$PKG/build" && mv "$PKG/build.new" "$PKG/build"

if loads; then
  echo "build-native: sodium-native built and verified"
else
  echo "build-native: sodium-native was built but does not load" >&2
  exit 1
fi
