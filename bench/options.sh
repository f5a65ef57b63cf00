#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/options.sh: compare sectorfs mount options on a few quick workloads,
# with tmpfs in the same run for scale.  The figures behind a default
# (spin=, max_threads=, writeback, ...) come from here.
#
#   sudo bench/options.sh [--rounds N] OPTS [OPTS ...]
#
# e.g.  sudo bench/options.sh spin=0 spin=50 max_threads=1,spin=50
#
# Each round mounts tmpfs, then sectorfs with each OPTS (plus size=4g) in
# turn, on a fresh mount point, and measures:
#   W1  sequential write, 512 MiB, 1 MiB blocks, fsync at the end     MB/s
#   W4  random 4 KiB writes into a 256 MiB file, psync, 1 job, 5 s    IOPS
#   W5  20,000 files of 1 KiB in 100 directories: create, stat, read,
#       delete (bench/smallfiles.c)                                  files/s
# fio runs as in bench/run.sh (psync, invalidate=0, fallocate=none: the
# writes allocate the file's memory).  One line per mount and round; compare lines of the same round (the
# machine's noise moves whole rounds).  Default 2 rounds, about 40 s per
# mount.  Needs root, fio, cc, python3; SECTORFS= picks the binary
# (default build/sectorfs).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECTORFS=${SECTORFS:-$(dirname "$BENCH_DIR")/build/sectorfs}
ROUNDS=2
if [ "${1:-}" = --rounds ]; then ROUNDS=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [--rounds N] OPTS [OPTS ...]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "options.sh: needs root (mount)" >&2; exit 1; }
[ -x "$SECTORFS" ] || { echo "options.sh: no sectorfs at $SECTORFS" >&2; exit 1; }

W=$(mktemp -d /tmp/sfsbench-options.XXXXXX)
M=$W/m
mkdir -p "$M"
cleanup() {
	if grep -q " $M " /proc/self/mountinfo; then
		fusermount3 -u "$M" 2>/dev/null || umount "$M" 2>/dev/null || umount -l "$M"
	fi
	rm -rf --one-file-system "$W"
}
trap cleanup EXIT
cc -O2 -o "$W/smallfiles" "$BENCH_DIR/smallfiles.c"

fio_value() { # FIELD fio-args...: one field of fio's terse output
	local field=$1
	shift
	fio --ioengine=psync --invalidate=0 --fallocate=none --output-format=terse "$@" | awk -F';' -v f="$field" '{ print $f }'
}

one() { # LABEL mount-command...
	local label=$1 w1 w4 w5
	shift
	"$@" || { echo "$label: mount failed"; return; }
	w1=$(fio_value 48 --name=w1 --filename="$M/seq" --rw=write --bs=1M --size=512m --end_fsync=1)
	rm -f "$M/seq"
	fio --name=lay --filename="$M/r" --rw=write --bs=1M --size=256m --fallocate=none --output=/dev/null
	w4=$(fio_value 49 --name=w4 --filename="$M/r" --rw=randwrite --bs=4k --size=256m \
		--time_based --runtime=5)
	rm -f "$M/r"
	w5=$("$W/smallfiles" "$M/sf" 20000 100 1024 create,stat,read,delete | python3 -c '
import json, sys
print(" ".join("%s %.0f" % (j["phase"], j["files_per_s"]) for j in map(json.loads, sys.stdin)))')
	printf '%-36s W1 %5.0f MB/s  W4 %7s IOPS  W5 %s\n' "$label" "$(awk -v k="$w1" 'BEGIN { print k / 1000 }')" "$w4" "$w5"
	fusermount3 -u "$M" 2>/dev/null || umount "$M"
}

for ((r = 1; r <= ROUNDS; r++)); do
	echo "round $r"
	one tmpfs mount -t tmpfs -o size=4g tmpfs "$M"
	for o in "$@"; do
		one "sectorfs $o" "$SECTORFS" -o "size=4g,$o" "$M"
	done
done
