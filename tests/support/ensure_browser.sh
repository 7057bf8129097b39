#!/bin/sh
# The studio's browser tests drive Debian's Chromium at /usr/bin/chromium (Playwright never downloads a browser).
# `make test` runs this first: nothing to do when Chromium is there; as root with apt-get, it is installed (the
# package lists are fetched first only when apt-get has none that know chromium); otherwise this stops with what to
# install. The tests themselves fail (never skip) with the same message.
set -eu

CHROMIUM=/usr/bin/chromium
MESSAGE='The studio'"'"'s browser tests need Chromium: run `sudo apt-get install chromium` (Debian) and run make test again.'

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

install_chromium() {
    log=$(mktemp)
    status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >"$log" 2>&1 || status=$?
    cat "$log"
    if [ "$status" -ne 0 ] && grep -Eq "Unable to locate package|has no installation candidate" "$log"; then
        rm -f "$log"
        return 2  # no package lists (a fresh machine): fetch them, then try again
    fi
    rm -f "$log"
    return "$status"
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Chromium for the studio's browser tests: apt-get install chromium"
    status=0
    install_chromium || status=$?
    if [ "$status" -eq 2 ]; then
        apt-get update && install_chromium || true
    fi
    if [ -x "$CHROMIUM" ]; then
        exit 0
    fi
fi

echo "$MESSAGE" >&2
exit 1
