#!/usr/bin/env bash
# Runs a fuzz target for SECONDS on a scratch copy of its corpus (the checked-in corpus only
# grows by hand, with inputs worth keeping). usage: fuzz/run.sh TARGET_BINARY CORPUS_DIR SECONDS
set -euo pipefail
bin=$1 corpus=$2 secs=${3:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus"/. "$work"/
cd "$work"
"$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "$work" 2>&1 | tail -n 12
