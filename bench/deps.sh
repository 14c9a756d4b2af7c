#!/bin/sh
# Installs the Debian packages only the benchmarks need (wrk, nginx-light), with apt-get as root
# or through sudo. Does nothing when they are present. Not a benchmark: bench/run.sh skips it.
#
#   bench/deps.sh          install what is missing
#   bench/deps.sh --check  only report: exit 0 when everything is present, 77 otherwise
set -u

pkgs="wrk nginx-light"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
[ "${1:-}" = "--check" ] && exit 77

echo "bench/deps.sh: installing Debian packages:$missing" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "bench/deps.sh: not root and no sudo; install$missing by hand" >&2
        exit 77
    fi
    sudo="sudo"
fi
$sudo apt-get update -qq || exit 77
# nginx-light's post-install starts the system nginx on port 80 when it can; the benchmark
# never uses that instance (it runs its own with -c/-p under a temporary directory).
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing ||
    exit 77
