#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/roundtrip.sh: where the time of one FUSE round trip goes, on each
# transport, against tmpfs and against the least any round trip between
# two processes costs on this machine.
#
#   sudo bench/roundtrip.sh [SECTORFS_BINARY_OR_BUILD_DIR] [--rounds N] [--out FILE]
#
# Mounts a fresh tmpfs, sectorfs over /dev/fuse (-o io_uring=off) and
# sectorfs over io_uring (-o io_uring=on; the module parameter
# /sys/module/fuse/parameters/enable_uring is set to Y for the run and put
# back as it was).  On each, in three placements of the caller:
#   free     the caller may run on any CPU, the machine otherwise idle;
#   pinned   the caller held on CPU 0 (taskset -c 0);
#   busy     free, beside a nice-19 busy loop on every CPU (a machine that
#            is never idle, though the loops yield to anything else);
# bench/roundtrip.c times two calls:
#   R0       getxattr of a missing name (one request, nothing behind it),
#            100,000 calls;
#   W1M      pwrite of 1 MiB over a 64 MiB file, 2,000 calls (a large
#            write: a request that carries data; default cache mode).
# The time of a call is the median of --rounds (default 3) runs.  Around
# the median run of each, `perf stat -a` counts, over both CPUs, context
# switches, CPU migrations and the interrupts one CPU sends another to
# wake it (irq_vectors: call_function_single and reschedule), divided by
# the calls: how many times per request a CPU is woken, a task switched,
# a task moved.  bench/pingpong.c, run first, gives the floor: a pipe
# round trip between two threads and between two processes on one CPU,
# and between CPUs sleeping and polling.
#
# Then the requests each small-file operation of bench/run.sh's W5 costs
# (bench/smallfiles.c, 5,000 files of 1 KiB in 10 directories, caller
# free): smallfiles runs four times on each transport with one phase more
# each time (create; create,stat; ...,read; ...,delete) under `perf stat
# -e fuse:fuse_request_send`, and each phase's requests are the difference.
# Beside them, tmpfs's time for the operation (smallfiles on tmpfs, median
# of --rounds) and the best ratio to tmpfs any transport could reach if
# every request cost no more than the floor (two processes on one CPU):
# tmpfs's time / (requests x floor).  The same for W6: requests per name
# of tar -x and rm -rf of /usr/include on each transport, tmpfs's time per
# name, and the least time at the floor as a multiple of tmpfs's.
#
# Results: bench/results/roundtrip.md (or --out).  Needs root (mount, the
# module parameter), 2 CPUs or more, cc, perf, tar, fusermount3, a kernel with
# FUSE over io_uring (Linux 6.14+); holds /run/sectorfs-bench.lock as the
# other benchmarks do.
set -euo pipefail

NAME=roundtrip
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ROUNDS=3
OUT=$BENCH_DIR/results/roundtrip.md
bench_args "rounds out" "$@"
URING=/sys/module/fuse/parameters/enable_uring

[ "$(id -u)" -eq 0 ] || die "needs root (mount, $URING)"
[ -x "$SECTORFS" ] || die "no sectorfs binary at $SECTORFS"
for t in cc perf tar fusermount3 flock taskset; do
	command -v "$t" >/dev/null || die "missing $t"
done
[ -w "$URING" ] || die "this kernel has no FUSE over io_uring ($URING)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs"
case $ROUNDS in '' | *[!0-9]* | 0) die "bad --rounds: '$ROUNDS'" ;; esac
take_bench_lock

W=$(mktemp -d /tmp/sfsbench-rt.XXXXXX)
URING_WAS=$(cat "$URING")
LOOPS=()
cleanup() {
	set +e
	cd /
	for pid in "${LOOPS[@]}"; do kill "$pid" 2>/dev/null; done
	for m in "$W/fuse" "$W/uring" "$W/tmpfs"; do
		if grep -q " $m " /proc/self/mountinfo; then
			fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m"
		fi
	done
	echo "$URING_WAS" >"$URING"
	rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/fuse" "$W/uring" "$W/tmpfs"
cc -O2 -Wall -o "$W/roundtrip" "$BENCH_DIR/roundtrip.c"
cc -O2 -Wall -pthread -o "$W/pingpong" "$BENCH_DIR/pingpong.c"
cc -O2 -Wall -o "$W/smallfiles" "$BENCH_DIR/smallfiles.c"

log "the floor: bench/pingpong.c"
"$W/pingpong" 200000 >"$W/pingpong.txt"

echo Y >"$URING"
mount -t tmpfs -o size=1g tmpfs "$W/tmpfs"
"$SECTORFS" -o size=1g,io_uring=off "$W/fuse"
"$SECTORFS" -o size=1g,io_uring=on "$W/uring"
"$SECTORFS" stats "$W/uring" | grep -q 'transport: *io_uring' || die "io_uring is not live on $W/uring"
for fs in tmpfs fuse uring; do touch "$W/$fs/f"; done

busy_on() {
	local cpu
	for cpu in $(seq 0 $(($(nproc) - 1))); do
		nice -n 19 taskset -c "$cpu" sh -c 'while :; do :; done' &
		LOOPS+=($!)
	done
}
busy_off() {
	local pid
	for pid in "${LOOPS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${LOOPS[@]}"; do wait "$pid" 2>/dev/null || true; done
	LOOPS=()
}

# caller PLACEMENT OP FS: the command that runs the caller.
caller() {
	local n=100000
	[ "$2" = write ] && n=2000
	local file=$W/$3/f
	[ "$2" = write ] && file=$W/$3/w
	case $1 in
	pinned) echo "taskset -c 0 $W/roundtrip $2 $file $n" ;;
	*) echo "$W/roundtrip $2 $file $n" ;;
	esac
}

EVENTS=context-switches,cpu-migrations,irq_vectors:call_function_single_entry,irq_vectors:reschedule_entry
: >"$W/results"
for placement in free pinned busy; do
	[ "$placement" = busy ] && busy_on
	for op in getxattr write; do
		for fs in tmpfs fuse uring; do
			log "$placement $op $fs"
			cmd=$(caller "$placement" "$op" "$fs")
			$cmd >/dev/null # warm: attributes cached, the write's file laid out
			times=()
			for _ in $(seq 1 "$ROUNDS"); do times+=("$($cmd)"); done
			median=$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(((ROUNDS + 1) / 2))p")
			calls=${cmd##* }
			perf stat -a -x, -e "$EVENTS" -o "$W/perf" -- $cmd >/dev/null
			counts=$(awk -F, -v n="$calls" '$1 ~ /^[0-9]+$/ { printf " %.2f", $1 / n }' "$W/perf")
			echo "$placement $op $fs $median$counts" >>"$W/results"
		done
	done
	[ "$placement" = busy ] && busy_off
done

# Requests per W5 operation, and tmpfs's time for it.
NSMALL=5000
PHASES=(create stat read delete)
: >"$W/w5"
for fs in fuse uring; do
	list=""
	prev=0
	for phase in "${PHASES[@]}"; do
		list=${list:+$list,}$phase
		log "requests: $fs $list"
		perf stat -a -x, -e fuse:fuse_request_send -o "$W/perf" -- \
			"$W/smallfiles" "$W/$fs/w5-$phase" "$NSMALL" 10 1024 "$list" >/dev/null
		total=$(awk -F, '$1 ~ /^[0-9]+$/ { print $1 }' "$W/perf")
		echo "$fs $phase $(awk -v a="$total" -v b="$prev" -v n="$NSMALL" 'BEGIN { printf "%.2f", (a - b) / n }')" >>"$W/w5"
		prev=$total
	done
done
for round in $(seq 1 "$ROUNDS"); do
	"$W/smallfiles" "$W/tmpfs/w5-$round" "$NSMALL" 10 1024 create,stat,read,delete |
		python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print("tmpfs", r["phase"], "%.3f" % (1e6 / r["files_per_s"]))
' >>"$W/w5-tmpfs"
done
# Requests per name of W6 (tar -x and rm -rf of /usr/include), and tmpfs's time.
tar -C /usr -cf "$W/include.tar" include
NAMES=$(tar -tf "$W/include.tar" | wc -l)
: >"$W/w6"
for fs in fuse uring; do
	log "requests: $fs untar, rm -rf"
	perf stat -a -x, -e fuse:fuse_request_send -o "$W/perf" -- tar -C "$W/$fs" -xf "$W/include.tar"
	echo "$fs untar $(awk -F, -v n="$NAMES" '$1 ~ /^[0-9]+$/ { printf "%.2f", $1 / n }' "$W/perf")" >>"$W/w6"
	perf stat -a -x, -e fuse:fuse_request_send -o "$W/perf" -- rm -rf "$W/$fs/include"
	echo "$fs rm $(awk -F, -v n="$NAMES" '$1 ~ /^[0-9]+$/ { printf "%.2f", $1 / n }' "$W/perf")" >>"$W/w6"
done
now_us() { date +%s%N | awk '{ printf "%.1f", $1 / 1e3 }'; }
for round in $(seq 1 "$ROUNDS"); do
	t0=$(now_us)
	tar -C "$W/tmpfs" -xf "$W/include.tar"
	t1=$(now_us)
	rm -rf "$W/tmpfs/include"
	t2=$(now_us)
	awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$NAMES" \
		'BEGIN { printf "tmpfs untar %.3f\ntmpfs rm %.3f\n", (b - a) / n, (c - b) / n }' >>"$W/w6-tmpfs"
done
FLOOR=$(awk '/two processes on CPU 0/ { print $(NF - 1) }' "$W/pingpong.txt")

{
	echo "# Where a round trip goes ($(date +%F), $(uname -r), $(nproc) CPUs)"
	echo
	echo "\`sudo bench/roundtrip.sh --rounds $ROUNDS\`: time of a call, median of $ROUNDS runs;"
	echo "counts per call over both CPUs from \`perf stat -a\` around one more run"
	echo "(context switches, CPU migrations, and wake-up interrupts: IPIs sent"
	echo "to another CPU, call_function_single + reschedule)."
	echo
	echo "The floor, bench/pingpong.c (a pipe round trip, no FUSE):"
	echo
	echo '```'
	cat "$W/pingpong.txt"
	echo '```'
	echo
	echo "| caller | call | filesystem | us per call | vs tmpfs | switches | migrations | IPIs |"
	echo "|---|---|---|---:|---:|---:|---:|---:|"
	awk '
	{ key = $1 " " $2
	  if ($3 == "tmpfs") base[key] = $4
	  name = $3 == "tmpfs" ? "tmpfs" : $3 == "fuse" ? "sectorfs, /dev/fuse" : "sectorfs, io_uring"
	  op = $2 == "getxattr" ? "R0 getxattr" : "W1M 1 MiB write"
	  printf "| %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", $1, op, name, $4, \
	         base[key] / $4, $5, $6, $7 + $8 }' "$W/results"
	echo
	echo "vs tmpfs: tmpfs's time / this one's, same caller (above 1: faster than tmpfs)."
	echo
	echo "Requests per W5 operation (bench/smallfiles.c, $NSMALL files of 1 KiB), and the"
	echo "best ratio to tmpfs a transport could reach at $FLOOR us a request (the floor:"
	echo "two processes on one CPU): tmpfs's time / (requests x floor)."
	echo
	echo "| operation | tmpfs us | requests, /dev/fuse | requests, io_uring | best ratio at the floor |"
	echo "|---|---:|---:|---:|---:|"
	for phase in "${PHASES[@]}"; do
		t=$(awk -v p="$phase" '$2 == p { print $3 }' "$W/w5-tmpfs" | sort -g | sed -n "$(((ROUNDS + 1) / 2))p")
		rf=$(awk -v p="$phase" '$1 == "fuse" && $2 == p { print $3 }' "$W/w5")
		ru=$(awk -v p="$phase" '$1 == "uring" && $2 == p { print $3 }' "$W/w5")
		awk -v p="$phase" -v t="$t" -v rf="$rf" -v ru="$ru" -v f="$FLOOR" \
			'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.2f |\n", p, t, rf, ru, t / (rf * f) }'
	done
	echo
	echo "W6, /usr/include ($NAMES names): requests per name, and the least time a"
	echo "transport could take at the floor, as bench/run.sh gives W6: x tmpfs's time."
	echo
	echo "| operation | tmpfs us a name | requests, /dev/fuse | requests, io_uring | least at the floor |"
	echo "|---|---:|---:|---:|---:|"
	for op in untar rm; do
		t=$(awk -v p="$op" '$2 == p { print $3 }' "$W/w6-tmpfs" | sort -g | sed -n "$(((ROUNDS + 1) / 2))p")
		rf=$(awk -v p="$op" '$1 == "fuse" && $2 == p { print $3 }' "$W/w6")
		ru=$(awk -v p="$op" '$1 == "uring" && $2 == p { print $3 }' "$W/w6")
		name=$op
		[ "$op" = rm ] && name="rm -rf"
		awk -v p="$name" -v t="$t" -v rf="$rf" -v ru="$ru" -v f="$FLOOR" \
			'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.1fx |\n", p, t, rf, ru, rf * f / t }'
	done
} >"$OUT"
log "written to $OUT"
