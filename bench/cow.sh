#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/cow.sh: copies that share memory, against tmpfs and XFS with
# reflink on a zram device (the closest thing Linux has to a copy-on-write
# RAM disk), in one run.
#
#   sudo bench/cow.sh [SECTORFS_BINARY_OR_BUILD_DIR] [--size MIB] [--rounds N] [--out FILE]
#
# Three filesystems side by side, each 4 GiB: a fresh tmpfs, a fresh
# sectorfs (default options), and XFS (mkfs.xfs's defaults, reflink on) on
# a fresh zram device.  On each, in turn, each round:
#   cp     a file of --size MiB (default 1024) of random bytes, already
#          there (page cache dropped first): `cp big copy` (coreutils: a
#          reflink where the filesystem has one, else copy_file_range);
#   empty  `cp empty copy` of a 0-byte file: what any cp costs here (the
#          process, its look-ups), the floor of the cp row
#   cfr    the same copy as one copy_file_range(2) call timed inside the
#          process that makes it (what the filesystem costs, without cp's
#          start-up and its other system calls)
#   tree   /usr/include, copied there beforehand: on tmpfs and XFS
#          `cp -a src copy`, on sectorfs `sectorfs clone src copy` (and
#          `cp -a` as well, for reference)
# Each copy's time is wall time around the command (bash's EPOCHREALTIME,
# no process started to read the clock), with the command's program
# already loaded (its --version run after the page cache is dropped:
# loading cp from the machine's disk is not what a copy costs); the memory
# it adds is
# what the filesystem holds afterwards minus before (tmpfs: Shmem in
# /proc/meminfo; sectorfs: the daemon's RSS; zram: mem_used_total in its
# mm_stat, the device's memory), page cache not counted.  Times are the
# median of the rounds; ratios are to tmpfs in the same run.
#
# Results go to bench/results/cow.md (or --out).  Needs root (mount, zram,
# drop_caches), python3, mkfs.xfs (xfsprogs), a zram device the kernel can
# add (/sys/class/zram-control), fusermount3; holds
# /run/sectorfs-bench.lock as the other benchmarks do.
set -euo pipefail

NAME=cow
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SIZE_MIB=1024
ROUNDS=5
OUT=$BENCH_DIR/results/cow.md
bench_args "size rounds out" "$@"

[ "$(id -u)" -eq 0 ] || die "needs root (mount, zram, drop_caches)"
[ -x "$SECTORFS" ] || die "no sectorfs binary at $SECTORFS"
SECTORFS=$(readlink -f "$SECTORFS")
for t in python3 mkfs.xfs fusermount3 flock cp; do
	command -v "$t" >/dev/null || die "missing $t"
done
[ -w /sys/class/zram-control/hot_add ] || modprobe zram num_devices=0 2>/dev/null || true
[ -w /sys/class/zram-control/hot_add ] || die "no zram (/sys/class/zram-control)"
[ -d /usr/include ] || die "no /usr/include to copy"
take_bench_lock

W=$(mktemp -d /tmp/sfsbench-cow.XXXXXX)
ZRAM=""
cleanup() {
	set +e
	cd /
	for m in "$W/sfs" "$W/tmpfs" "$W/xfs"; do
		if grep -q " $m " /proc/self/mountinfo; then
			fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m"
		fi
	done
	if [ -n "$ZRAM" ]; then
		echo 1 >"/sys/block/zram$ZRAM/reset" 2>/dev/null
		echo "$ZRAM" >/sys/class/zram-control/hot_remove 2>/dev/null
	fi
	rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/sfs" "$W/tmpfs" "$W/xfs"

mount -t tmpfs -o size=4g tmpfs "$W/tmpfs"
"$SECTORFS" -o size=4g "$W/sfs"
SFS_PID=$(pgrep -f -- "$SECTORFS -o size=4g $W/sfs" | head -1)
[ -n "$SFS_PID" ] || die "cannot find the sectorfs daemon"
ZRAM=$(cat /sys/class/zram-control/hot_add)
echo 4G >"/sys/block/zram$ZRAM/disksize"
mkfs.xfs -q "/dev/zram$ZRAM"
mount "/dev/zram$ZRAM" "$W/xfs"
xfs_info "$W/xfs" 2>/dev/null | grep -q "reflink=1" || die "XFS without reflink"

# Memory a filesystem holds, in bytes.
held() {
	case $1 in
	tmpfs) awk '/^Shmem:/ { printf "%d\n", $2 * 1024 }' /proc/meminfo ;;
	sfs) awk '/^VmRSS:/ { printf "%d\n", $2 * 1024 }' "/proc/$SFS_PID/status" ;;
	xfs) awk '{ print $3 }' "/sys/block/zram$ZRAM/mm_stat" ;;
	esac
}
drop() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}
now_us() { echo "${EPOCHREALTIME/./}"; }

log "writing the ${SIZE_MIB} MiB file and /usr/include into each"
python3 -c '
import sys, random
r = random.Random(42)
out = sys.stdout.buffer
for i in range(int(sys.argv[1])):
    out.write(r.randbytes(1 << 20))
' "$SIZE_MIB" >"$W/tmpfs/big"
for fs in sfs xfs; do cp "$W/tmpfs/big" "$W/$fs/big"; done
for fs in tmpfs sfs xfs; do cp -a /usr/include "$W/$fs/src"; done
NFILES=$(find /usr/include | wc -l)
INC_MIB=$(du -sm /usr/include | cut -f1)

# measure KEY FS CMD...: time and memory added, appended to $W/results.
measure() {
	local key=$1 fs=$2 t0 t1 m0 m1
	shift 2
	drop
	"$1" --version >/dev/null
	m0=$(held "$fs")
	t0=$(now_us)
	"$@"
	t1=$(now_us)
	sync
	m1=$(held "$fs")
	echo "$key $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1000 }') $((m1 - m0))" >>"$W/results"
}

for round in $(seq 1 "$ROUNDS"); do
	log "round $round of $ROUNDS"
	for fs in tmpfs sfs xfs; do
		cd "$W/$fs"
		measure "cp-$fs" "$fs" cp big copy
		cmp -s big copy || die "$fs: the copy differs"
		rm copy
		: >empty
		measure "empty-$fs" "$fs" cp empty copy
		rm empty copy
		drop
		python3 -c '
import os, sys, time
src = os.open("big", os.O_RDONLY)
dst = os.open("copy", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
t0 = time.perf_counter()
left = os.fstat(src).st_size
while left:
    left -= os.copy_file_range(src, dst, left)
print("cfr-%s %.1f 0" % (sys.argv[1], (time.perf_counter() - t0) * 1e3))
' "$fs" >>"$W/results"
		cmp -s big copy || die "$fs: the copy_file_range copy differs"
		rm copy
		if [ $fs = sfs ]; then
			measure "tree-$fs" "$fs" "$SECTORFS" clone src copy
			rm -rf copy
			measure "cpa-$fs" "$fs" cp -a src copy
		else
			measure "tree-$fs" "$fs" cp -a src copy
		fi
		rm -rf copy
	done
done
cd /

median() { # KEY FIELD
	awk -v k="$1" -v f="$2" '$1 == k { print $f }' "$W/results" | sort -n |
		awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.4f", a / b; else print "-" }'; }

mkdir -p "$(dirname "$OUT")"
{
	echo "# Copies that share memory ($(date +%F), $(uname -r), $(nproc) CPUs)"
	echo
	echo "\`sudo bench/cow.sh --size $SIZE_MIB --rounds $ROUNDS\`: medians of $ROUNDS rounds; memory"
	echo "added is what the filesystem holds after the copy minus before (tmpfs:"
	echo "Shmem; sectorfs: daemon RSS; XFS: the zram device's mem_used_total)."
	echo "/usr/include: $NFILES names, $INC_MIB MiB."
	echo
	echo "| copy | filesystem | command | time (ms) | vs tmpfs | memory added (MiB) |"
	echo "|---|---|---|---:|---:|---:|"
	# row WHAT KEY COMMAND REFERENCE: one row per filesystem.
	row() {
		local fs name cmd t
		for fs in tmpfs sfs xfs; do
			case $fs in
			tmpfs) name=tmpfs ;;
			sfs) name=sectorfs ;;
			xfs) name="XFS on zram (reflink)" ;;
			esac
			cmd=$3
			[ "$cmd" = tree ] && { [ $fs = sfs ] && cmd="sectorfs clone" || cmd="cp -a"; }
			t=$(median "$2-$fs" 2)
			echo "| $1 | $name | $cmd | $t | $(ratio "$t" "$4") | $(mib "$(median "$2-$fs" 3)") |"
		done
	}
	tt=$(median tree-tmpfs 2)
	row "${SIZE_MIB} MiB file" cp cp "$(median cp-tmpfs 2)"
	row "0-byte file (the floor of any cp)" empty cp "$(median cp-tmpfs 2)"
	row "${SIZE_MIB} MiB file" cfr "copy_file_range, timed in-process" "$(median cfr-tmpfs 2)"
	row /usr/include tree tree "$tt"
	t=$(median cpa-sfs 2)
	echo "| /usr/include | sectorfs | cp -a | $t | $(ratio "$t" "$tt") | $(mib "$(median cpa-sfs 3)") |"
	echo
	echo "Every round, raw (key, ms, bytes added):"
	echo
	echo '```'
	cat "$W/results"
	echo '```'
} >"$OUT"
cat "$OUT"
