#!/bin/sh
# Installs Debian's glewlwyd (the C OAuth2/OIDC server bench/oauth.sh compares mcpgate with) as
# /work/shared/PEERS.md describes: the debconf question answered first ("No configuration", the
# benchmark writes its own glewlwyd.conf and SQLite database), then apt-get as root or through
# sudo. Does nothing when glewlwyd is already installed. Not a benchmark (it lives outside
# bench/*.sh, so bench/run.sh never runs it); bench/oauth.sh runs it when glewlwyd is missing.
#
#   bench/glewlwyd/install.sh          install what is missing
#   bench/glewlwyd/install.sh --check  only report: exit 0 when present, 77 otherwise
set -u

pkgs="glewlwyd dbconfig-no-thanks sqlite3"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
[ "${1:-}" = "--check" ] && exit 77

echo "bench/glewlwyd/install.sh: installing Debian packages:$missing" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "bench/glewlwyd/install.sh: not root and no sudo; install$missing by hand" >&2
        exit 77
    fi
    sudo="sudo"
fi
# Without an answer the package's post-install asks for a database and fails.
echo "glewlwyd glewlwyd/config_type select No configuration" | $sudo debconf-set-selections ||
    exit 77
$sudo apt-get update -qq || exit 77
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing ||
    exit 77
