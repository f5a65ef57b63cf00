#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/profile.sh: where the time of a workload goes, system-wide.
#
#   sudo bench/profile.sh [--tmpfs] [--seconds N] [--sectorfs-opts OPTS] WORKLOAD
#
# WORKLOAD is one of bench/run.sh's:
#   W1     sequential write, 1 MiB blocks (fio, a new 2 GiB file each loop)
#   W2b    sequential re-read of a 2 GiB file the page cache holds
#   W4     random 4 KiB writes into a laid-out 512 MiB file, psync, 1 job
#   W5stat the first stat() of each of N small files after it was written
#          (N = 70,000 per second asked for)
#   R0     a getxattr() of a missing name on each of N small files: one
#          request with nothing behind it, the round trip alone
# It mounts a fresh sectorfs (or, with --tmpfs, a tmpfs: the same workload
# without FUSE, for comparison), prepares the files untimed, then records
# both CPUs with `perf record -e cpu-clock -a -g` for N seconds (default
# 4) while the workload runs (cpu-clock, not cycles: a halted CPU counts no
# cycles, and the idle time is part of the answer), and prints:
#   1. the share of all CPU time of the idle CPUs, the client (fio or
#      smallfiles: user and kernel), the daemon (user and kernel), and the
#      rest of the machine;
#   2. per operation: wall time, and the CPU time of the client, the
#      daemon's workers (user, kernel) and its faulting-in thread, from
#      /proc in a first window without perf (sampling costs CPU too);
#   3. the daemon's kernel time by entry point: reading requests from
#      /dev/fuse, writing replies, page faults and populating memory,
#      futex waits; its top user-space symbols;
#   4. the top symbols of each side.
# So the part of a workload's cost that is FUSE's transport (the kernel's
# copies and wake-ups) and the part that is ours can be read off one run.
# Needs root, perf, fio, cc.  The perf data stays in the work directory
# named at the end (deleted at the next run).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECTORFS=${SECTORFS:-$(dirname "$BENCH_DIR")/build/sectorfs}
FS=sectorfs SECONDS_=4 OPTS=
while [ $# -gt 1 ]; do
	case $1 in
	--tmpfs) FS=tmpfs; shift ;;
	--seconds) SECONDS_=$2; shift 2 ;;
	--sectorfs-opts) OPTS=,$2; shift 2 ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--tmpfs] [--seconds N] [--sectorfs-opts OPTS] W1|W2b|W4|W5stat|R0" >&2; exit 2; }
WL=$1
case $WL in W1 | W2b | W4 | W5stat | R0) ;; *) echo "profile.sh: unknown workload $WL" >&2; exit 2 ;; esac
# W5stat and R0 time a phase of bench/smallfiles.c: which one
PHASE=
case $WL in W5stat) PHASE=stat ;; R0) PHASE=nxattr ;; esac
[ "$(id -u)" -eq 0 ] || { echo "profile.sh: needs root (mount, perf -a)" >&2; exit 1; }
for t in perf fio cc; do
	command -v $t >/dev/null || { echo "profile.sh: needs $t" >&2; exit 1; }
done

W=/tmp/sfsbench-profile
if [ -d "$W" ]; then
	grep -q " $W/m " /proc/self/mountinfo && { fusermount3 -u "$W/m" 2>/dev/null || umount -l "$W/m"; }
	rm -rf --one-file-system "$W"
fi
M=$W/m
mkdir -p "$M"
BG=
cleanup() {
	[ -n "$BG" ] && kill "$BG" 2>/dev/null && wait "$BG" 2>/dev/null
	if grep -q " $M " /proc/self/mountinfo; then
		fusermount3 -u "$M" 2>/dev/null || umount "$M" 2>/dev/null || umount -l "$M"
	fi
}
trap cleanup EXIT
if [ $FS = tmpfs ]; then
	mount -t tmpfs -o size=8g tmpfs "$M"
	CLIENT_DAEMON=
else
	"$SECTORFS" -o "size=8g$OPTS" "$M"
	CLIENT_DAEMON=$(pgrep -n -x sectorfs)
fi

FIO="fio --ioengine=psync --invalidate=0 --fallocate=none --output=/dev/null"
case $WL in
W2b)
	$FIO --name=lay --filename="$M/f" --rw=write --bs=1M --size=2g
	cat "$M/f" >/dev/null ;;
W4) $FIO --name=lay --filename="$M/f" --rw=write --bs=1M --size=512m ;;
W5stat | R0) cc -O2 -o "$W/smallfiles" "$BENCH_DIR/smallfiles.c" ;;
esac

# Start the workload in the background: BG, CLIENT, CPID (the process
# doing the I/O).
RUN=0
start_workload() {
	RUN=$((RUN + 1))
	case $WL in
	W1)
		$FIO --name=w1 --filename="$M/f" --rw=write --bs=1M --size=2g --end_fsync=1 \
			--time_based --runtime=$((SECONDS_ + 30)) --unlink_each_loop=1 &
		BG=$! CLIENT=fio ;;
	W2b)
		$FIO --name=w2b --filename="$M/f" --rw=read --bs=1M --size=2g \
			--time_based --runtime=$((SECONDS_ + 30)) &
		BG=$! CLIENT=fio ;;
	W4)
		$FIO --name=w4 --filename="$M/f" --rw=randwrite --bs=4k --size=512m \
			--time_based --runtime=$((SECONDS_ + 30)) &
		BG=$! CLIENT=fio ;;
	W5stat | R0)
		# W5stat: the first stat of each file after its write: that one
		# asks the daemon (the write dropped the kernel's copy of the
		# attributes); stat again and the kernel answers alone, at
		# tmpfs's speed.  R0: a getxattr of a missing name, which always
		# asks the daemon.  The second phase keeps the client alive
		# until the counters are read.  The phases are read from a pipe
		# as they end: blocking reads, so that waiting for them costs no
		# CPU.
		rm -f "$W/fifo"
		mkfifo "$W/fifo"
		"$W/smallfiles" "$M/sf$RUN" $((SECONDS_ * 70000)) 100 1024 create,$PHASE,$PHASE >"$W/fifo" &
		BG=$! CLIENT=smallfiles
		exec 3<"$W/fifo"
		read -r line <&3 || { echo "profile.sh: smallfiles failed" >&2; exit 1; }
		echo "$line" >"$W/phases" ;;
	esac
	CPID=$BG
	if [ "$CLIENT" = fio ]; then
		sleep 1 # past the start
		CPID=$(pgrep -P "$BG" -x fio | head -1)
	fi
}
stop_workload() {
	[ -z "$PHASE" ] || exec 3<&-
	kill "$BG" 2>/dev/null || true
	wait "$BG" 2>/dev/null || true
	BG=
}

# Counters: CPU ticks of the client, the daemon and its faulting-in
# thread, and the client's operations (from /proc/PID/io, or for stat the
# figure of smallfiles' phase).
ticks() { [ -r "$1" ] && awk '{ print $14 + $15 }' "$1" || echo 0; }
user_ticks() { [ -r "$1" ] && awk '{ print $14 }' "$1" || echo 0; }
warmer_stat() {
	local t
	[ -n "$CLIENT_DAEMON" ] || return 0
	for t in /proc/"$CLIENT_DAEMON"/task/*; do
		[ "$(cat "$t/comm" 2>/dev/null)" = sfs-prefault ] && echo "$t/stat" && return
	done
}
snapshot() { # prints: client daemon daemon_user warmer ops
	local ops=0 ws d=/proc/"$CLIENT_DAEMON"/stat
	case $WL in
	W1) ops=$(awk '/^wchar/ { print $2 / 1048576 }' /proc/"$CPID"/io) ;;
	W2b) ops=$(awk '/^rchar/ { print $2 / 1048576 }' /proc/"$CPID"/io) ;;
	W4) ops=$(awk '/^syscw/ { print $2 }' /proc/"$CPID"/io) ;;
	esac
	ws=$(warmer_stat)
	[ -n "$CLIENT_DAEMON" ] || d=/nonexistent
	echo "$(ticks /proc/"$CPID"/stat) $(ticks $d) $(user_ticks $d) $( [ -n "$ws" ] && ticks "$ws" || echo 0) $ops"
}
# window [perf]: one measuring window (SECONDS_, or W5stat's or R0's phase);
# sets before, after, t0, t1.  With perf, records both CPUs meanwhile.
window() {
	local perf_pid=
	[ "${1:-}" = perf ] && {
		perf record -q -e cpu-clock -a -g -o "$W/perf.data" -- sleep 600 2>/dev/null &
		perf_pid=$!
		sleep 0.5 # perf is up
	}
	before=$(snapshot)
	t0=$(date +%s.%N)
	if [ -n "$PHASE" ]; then
		read -r line <&3 || { echo "profile.sh: smallfiles failed" >&2; exit 1; }
		echo "$line" >>"$W/phases"
	else
		sleep "$SECONDS_"
	fi
	t1=$(date +%s.%N)
	after=$(snapshot)
	[ -n "$perf_pid" ] && { kill -INT $perf_pid; wait $perf_pid || true; }
	return 0
}

# The figures per operation come from a window without perf (its
# sampling costs CPU time too); the profile from a second one.
start_workload
window
cp "$W/phases" "$W/phases.counted" 2>/dev/null || true
b0=$before a0=$after s0=$t0 s1=$t1
if [ -n "$PHASE" ]; then
	stop_workload
	start_workload
fi
window perf
stop_workload

# (head closes the pipe early: perf dies of SIGPIPE, which is fine)
report() { perf report -i "$W/perf.data" --stdio -q "$@" 2>/dev/null || true; }

echo "# $WL on $FS$OPTS: $(nproc) CPUs recorded for $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, $(uname -r)"
echo
echo "## All CPU time (percent of both CPUs)"
report --no-children --sort comm,dso -g none | awk -v client="$CLIENT" '
	$1 ~ /%$/ {
		p = $1 + 0; comm = $2; dso = $3
		k = (dso == "[kernel.kallsyms]") ? "kernel" : "user"
		if (comm == "swapper") key = "idle"
		else if (comm == client) key = "client " k
		else if (comm == "sectorfs" || comm == "sfs-prefault") key = comm " " k
		else key = "other"
		s[key] += p
	}
	END { for (k in s) printf "%-22s %6.1f%%\n", k, s[k] }' | sort -k2 -rn
echo
case $WL in
W1) unit="MiB written" ;; W2b) unit="MiB read" ;; W4) unit="4 KiB write" ;; W5stat) unit="stat" ;;
R0) unit="getxattr" ;;
esac
echo "## Per operation ($unit): wall time, and CPU time of each side"
python3 - "$b0" "$a0" "$s0" "$s1" "$PHASE" "$unit" "$(getconf CLK_TCK)" "$W/phases.counted" <<'PY'
import json, sys
b = [float(x) for x in sys.argv[1].split()]
a = [float(x) for x in sys.argv[2].split()]
secs = float(sys.argv[4]) - float(sys.argv[3])
phase, unit, hz = sys.argv[5], sys.argv[6], float(sys.argv[7])
d = [y - x for x, y in zip(b, a)]
if phase:
    rates = [json.loads(l)["files_per_s"] for l in open(sys.argv[8]) if json.loads(l)["phase"] == phase]
    rates.sort()
    ops = rates[len(rates) // 2] * secs if rates else 0
else:
    ops = d[4]
if ops <= 0:
    print("no operations counted"); sys.exit(0)
us = lambda t: t / hz / ops * 1e6
print("%-34s %10.0f /s" % ("throughput", ops / secs))
print("%-34s %10.1f us" % ("wall time per " + unit, secs / ops * 1e6))
print("%-34s %10.1f us" % ("client CPU (user + kernel)", us(d[0])))
if d[1] or d[3]:
    print("%-34s %10.1f us" % ("daemon workers' CPU, user", us(d[2])))
    print("%-34s %10.1f us" % ("daemon workers' CPU, kernel", us(d[1] - d[2] - d[3])))
    print("%-34s %10.1f us" % ("sfs-prefault thread's CPU", us(d[3])))
    print("(with spin= on, the daemon's CPU time includes polling while it waits)")
PY
if [ -n "$CLIENT_DAEMON" ]; then
	echo
	echo "## The daemon's kernel time by entry point (percent of both CPUs)"
	report --children --comm sectorfs --sort sym -g none | awk '
		$1 ~ /%$/ && $3 == "[k]" {
			c[$4] = $1 + 0
		}
		END {
			printf "%-42s %6.1f%%\n", "read requests (ksys_read, splice)", c["ksys_read"] + c["__x64_sys_splice"]
			printf "%-42s %6.1f%%\n", "write replies (do_writev)", c["do_writev"]
			printf "%-42s %6.1f%%\n", "page faults (asm_exc_page_fault)", c["asm_exc_page_fault"]
			printf "%-42s %6.1f%%\n", "madvise (populate, give back)", c["__x64_sys_madvise"]
			printf "%-42s %6.1f%%\n", "futex (locks, thread wake-ups)", c["__x64_sys_futex"]
		}'
	echo
	echo "## The daemon's top user-space symbols (percent of both CPUs)"
	report --no-children --comm sectorfs --sort sym -g none | awk '$2 == "[.]"' | head -8
	echo
	echo "## Top symbols of the daemon"
	report --no-children --comm sectorfs --sort sym -g none | head -15
	if report --no-children --comm sfs-prefault --sort sym -g none | grep -q .; then
		echo
		echo "## Top symbols of the faulting-in thread (sfs-prefault)"
		report --no-children --comm sfs-prefault --sort sym -g none | head -6
	fi
fi
echo
echo "## Top symbols of the client ($CLIENT)"
report --no-children --comm "$CLIENT" --sort sym -g none | head -12
echo
echo "(perf data: $W/perf.data)"
