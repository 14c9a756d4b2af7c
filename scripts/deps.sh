#!/usr/bin/env bash
# Installs what mcpgate needs to build and test: Debian packages (apt-get, as root or through
# sudo) and the npm packages the tests drive, in build/peers/ (never in the repository).
# Does nothing when everything is present. Usage: scripts/deps.sh [--build-only]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

debs=(build-essential cmake pkg-config clang curl
      libjansson-dev libssl-dev libcjose-dev libmicrohttpd-dev libcurl4-openssl-dev
      libsqlite3-dev libpq-dev libargon2-dev libcmocka-dev libpcre2-dev libclang-rt-14-dev json-schema-test-suite
      chromium)

missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing Debian packages: ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = "--build-only" ] && exit 0

# npm packages for the tests, pinned; installed once into build/peers.
peers="$top/build/peers"
stamp="$peers/.stamp"
want="$(cat "$top/scripts/peers.json")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "deps: installing npm packages into build/peers" >&2
    mkdir -p "$peers"
    cp "$top/scripts/peers.json" "$peers/package.json"
    (cd "$peers" && npm install --no-audit --no-fund --loglevel=error)
    printf '%s' "$want" > "$stamp"
fi
