#!/bin/sh
# SPDX-License-Identifier: MIT
# run.sh - run the image fuzzer for a bounded time (the ctest test fuzz_image).
#
#   run.sh FUZZER SECONDS SOURCE_DIR WORK_DIR
#
# New inputs go to WORK_DIR/corpus (never into the source tree); the seed
# corpus and the regression cases are read from SOURCE_DIR/fuzz.  A crash
# leaves its input in WORK_DIR/artifacts: after fixing the bug, copy it to
# fuzz/regressions/ so that fuzz_image_replay runs it in every build.
set -eu
fuzzer=$1 seconds=$2 src=$3 work=$4
mkdir -p "$work/corpus" "$work/artifacts"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
	-print_final_stats=1 -artifact_prefix="$work/artifacts/" \
	"$work/corpus" "$src/fuzz/corpus" "$src/fuzz/regressions"
