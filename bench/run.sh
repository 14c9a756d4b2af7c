#!/bin/sh
# Runs every benchmark (bench/*.sh except this file and deps.sh), one after the other: stdio.sh
# (stdio against the TypeScript SDK), http.sh (Streamable HTTP against the SDK and nginx), oauth.sh
# (the token endpoint against Glewlwyd) and connect.sh (the stdio proxy against mcp-remote).
#
#   bench/run.sh           full runs (what `make bench` does)
#   bench/run.sh --smoke   tiny runs: checks each benchmark still builds, runs and gets right
#                          answers; never fails because of timing
#
# Exit status: 0 when every benchmark ran and its servers answered right; otherwise the first
# non-zero status of a benchmark. A benchmark exiting 77 (a peer not installed) is reported as
# skipped and does not fail the suite.
set -u

here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-}
case "$mode" in
"" | --smoke) ;;
*)
    echo "usage: bench/run.sh [--smoke]" >&2
    exit 2
    ;;
esac

status=0
for b in "$here"/*.sh; do
    case "$(basename "$b")" in
    run.sh | deps.sh) continue ;; # this runner; the installer of wrk and nginx-light
    esac
    name=$(basename "$b" .sh)
    echo "== bench $name${mode:+ ($mode)}"
    sh "$b" $mode
    rc=$?
    if [ $rc -eq 77 ]; then
        echo "== bench $name: skipped (a peer is not installed)"
    elif [ $rc -ne 0 ]; then
        echo "== bench $name: FAILED (exit $rc)"
        [ $status -eq 0 ] && status=$rc
    else
        echo "== bench $name: ok"
    fi
done
exit $status
