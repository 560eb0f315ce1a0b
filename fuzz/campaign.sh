#!/usr/bin/env bash
# Long local campaigns (not CI): fuzz/campaign.sh SECONDS TARGET... runs the targets one after
# the other, each through ci/fuzz, logs kept under target/fuzz-campaign/.
set -u
secs="$1"; shift
for t in "$@"; do
  FUZZ_WORK="$(dirname "$0")/../target/fuzz-campaign" nice -n 19 "$(dirname "$0")/../ci/fuzz" --seconds "$secs" "$t"
done
