#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/run.sh: sectorfs (FUSE) against tmpfs, same workloads, same machine.
#
#   sudo bench/run.sh [--rounds N] [--quick] [--sectorfs-opts OPTS]
#                     [--variant NAME=OPTS ...] [--out DIR]
#
# Mounts a fresh tmpfs (size=8g), a fresh sectorfs (size=8g plus OPTS) and
# a fresh sectorfs for each variant (size=8g plus OPTS plus the variant's;
# by default two: writeback=writeback, the kernel's writeback cache, and
# uring=io_uring=on, FUSE over io_uring; --variant none for none) in a
# private temporary directory and runs each
# workload on each, in turn, round after round, each round starting one
# further along (tmpfs sectorfs writeback, sectorfs writeback tmpfs, ...;
# default 3 rounds); the figure of a workload is the median of its rounds.  The file systems are mounted afresh for
# each round of a workload (W3/W4: once per workload, since they share a
# laid-out file).
#
#   W1   sequential write, 2 GiB file, 1 MiB blocks, fsync at the end     MB/s
#   W2   sequential read of it after echo 3 > /proc/sys/vm/drop_caches    MB/s
#   W2b  the same read again, caches kept                                 MB/s
#   W3   random 4 KiB reads of a 512 MiB file, psync, 1/2/4 jobs, 8 s     IOPS
#   W4   random 4 KiB writes, same                                        IOPS
#   W5   100,000 files of 1 KiB in 100 directories: create, stat, stat
#        again, read, delete (bench/smallfiles.c)                       files/s
#   R0   in W5, a getxattr of a missing name on each file: one request
#        with nothing behind it, the price of a round trip      files/s
#   W6   tarball of /usr/include: tar -x, tar -c . | cat, rm -rf        seconds
#   M1   memory: daemon RSS / data for the 2 GiB file; RSS left after
#        deleting it; bytes per 100-byte file (100,000 files); the page
#        cache the mount holds after W2 + W2b; sectorfs stats.  Page cache,
#        tmpfs pages and kernel objects are counted in the run's memory
#        cgroup if it has one (so the rest of the machine stays out), else
#        from /proc/meminfo; the daemon's RSS is VmRSS of its pid.
#
# Before W1 and before W2, bench/touchmem.c touches (size + 1 GiB) of
# memory and gives it back: on these virtual machines memory nobody used
# lately must be faulted in again by the host, which would otherwise make
# whoever allocates first in a round look 2-4 times as fast.
#
# fio runs with ioengine=psync, direct=0, invalidate=0 (fio must not drop
# the page cache itself: W2b and W3 read what the kernel kept),
# fallocate=none; MB/s is 10^6 bytes/s.  W3/W4 read and write a file laid
# out beforehand (not timed); before each W3 run the file is read once in
# full (not timed), so W3 is the warm case: sectorfs with cache=keep then
# serves it from the kernel's page cache (the daemon's own read path shows
# with cache=open: bench/cache_policy.sh).  Warm figures (W2b, W3, M1's page
# cache) are measured again, up to 5 times, when another process drops the
# caches meanwhile (/proc/vmstat drop_pagecache; test suites do).  A
# watchdog turns a request the daemon never answers into a "hang" figure
# (null in results.json, listed under the table) instead of a stuck run.
#
# Output, in --out (default bench/results):
#   results.json  every figure of every round, medians, sectorfs stats, setup
#   table.md      medians; ratio = sectorfs / tmpfs, for each sectorfs.  For
#                 MB/s, IOPS and files/s above 1 means sectorfs is faster;
#                 for W6 (seconds) the ratio is time_sectorfs / time_tmpfs,
#                 so above 1 means sectorfs is slower.  A second table
#                 gives the memory.
#   ratios.png    the ratios on a log scale, one bar per workload and
#                 sectorfs, a line at 1
#
# When a variant has io_uring=on, the kernel's switch
# /sys/module/fuse/parameters/enable_uring is Y for the run (put back as it
# was at the end, whatever happens), and every configuration that does not
# name io_uring= gets io_uring=off: their columns stay /dev/fuse.  The
# table then ends with the io_uring column's ratios beside the /dev/fuse
# ones (sectorfs).
#
# --quick: 1 round, 256 MiB / 128 MiB files, 2 s random runs, 10,000 small
# files: a smoke test in about 3 minutes.  The default run takes about 20.
# The daemon is build/sectorfs (or $SECTORFS), copied at the start so that a
# rebuild during the run changes nothing; results.json and table.md name
# its build time and hash.  Waits for /run/sectorfs-bench.lock: one
# benchmark at a time.  Needs root (mount, drop_caches), fio, python3,
# gnuplot, cc, fusermount3.  bench/cache_policy.sh sources this file for
# its helpers.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
SECTORFS=${SECTORFS:-$REPO/build/sectorfs}
FS_SIZE=8g
LOCK=/run/sectorfs-bench.lock

WORK=""
RAW=""
SMALLFILES=""
TOUCHMEM=""
declare -A FS_KIND=() FS_OPTS=() FS_MP=() FS_PID=() BROKEN=()
FS_NAMES=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---- setup and cleanup ----

# Stop a sectorfs daemon and clear its mount point.
sfs_stop() { # MOUNTPOINT [PID]
	local mp=$1 pid=${2:-} i
	[ -n "$pid" ] || pid=$(sfs_find_pid "$mp")
	if mountpoint -q "$mp" 2>/dev/null || findmnt -n -o TARGET --target "$mp" 2>/dev/null | grep -qFx "$mp"; then
		fusermount3 -u "$mp" 2>/dev/null || umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
	fi
	if [ -n "$pid" ]; then
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 0.1
		done
		kill "$pid" 2>/dev/null || true
		sleep 0.5
		kill -9 "$pid" 2>/dev/null || true
	fi
}

# The daemon serving MOUNTPOINT: the sectorfs process whose command line
# ends with it (the mount point is unique to this run).
sfs_find_pid() { # MOUNTPOINT
	local p
	for p in $(pgrep -f -- " $1\$" || true); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = sectorfs ] && { echo "$p"; return 0; }
	done
	return 0
}

URING_SWITCH=/sys/module/fuse/parameters/enable_uring
URING_RESTORE="" # the switch as it was, if this run turned it on

bench_cleanup() {
	local rc=$? n
	trap - EXIT INT TERM
	guard_stop || true
	for n in "${FS_NAMES[@]}"; do
		fs_umount "$n" || true
	done
	[ -z "$URING_RESTORE" ] || echo "$URING_RESTORE" >"$URING_SWITCH" || true
	[ -n "$WORK" ] && rm -rf "$WORK"
	exit $rc
}

bench_init() { # needs root; makes WORK, takes the lock, builds smallfiles
	[ "$(id -u)" -eq 0 ] || die "run as root (mount, drop_caches)"
	local t
	for t in fio python3 gnuplot cc fusermount3 pgrep tar findmnt; do
		command -v "$t" >/dev/null || die "$t is missing (scripts/deps.sh)"
	done
	[ -x "$SECTORFS" ] || die "no $SECTORFS: cmake --build build --target sectorfs"
	# One benchmark at a time (bench/bench_image.sh takes the same lock).
	exec 9>"$LOCK"
	if ! flock -n 9; then
		log "another benchmark holds $LOCK: waiting for it"
		flock 9
	fi
	# Daemons left by an earlier, killed run of this script.
	local mp
	for mp in $(findmnt -rn -o TARGET | grep -E '^/tmp/sfsbench\.[A-Za-z0-9]+/' || true); do
		log "clearing leftover mount $mp"
		if [ "$(findmnt -n -o FSTYPE "$mp")" = tmpfs ]; then umount -l "$mp" || true; else sfs_stop "$mp"; fi
	done
	WORK=$(mktemp -d /tmp/sfsbench.XXXXXX)
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	RAW=$WORK/raw.jsonl
	: >"$RAW"
	SMALLFILES=$WORK/smallfiles
	cc -O2 -Wall -o "$SMALLFILES" "$BENCH_DIR/smallfiles.c"
	TOUCHMEM=$WORK/touchmem
	cc -O2 -Wall -o "$TOUCHMEM" "$BENCH_DIR/touchmem.c"
	# A private copy of the daemon: a rebuild of build/ during the run
	# cannot change the binary under the benchmark.
	SECTORFS_ORIG=$SECTORFS
	mkdir "$WORK/bin"
	cp "$SECTORFS" "$WORK/bin/sectorfs"
	SECTORFS_MTIME=$(date -r "$SECTORFS" '+%FT%T')
	SECTORFS=$WORK/bin/sectorfs
	SECTORFS_SHA=$(sha256sum "$SECTORFS" | cut -c1-64)
	MY_PGID=$(awk '{ sub(/.*\) /, ""); print $3 }' /proc/$$/stat)
	memcg_find
	log "memory counted in: ${MEMCG:-/proc/meminfo} ($MEMCG_KIND)"
}

# ---- the watchdog ----
# A request the daemon never answers blocks its caller for good.  While a
# measured command runs, a watchdog checks every second; when the daemon has
# used no CPU for 10 s and a process of this run is blocked in the kernel
# (state D, or waiting for a FUSE answer: wchan request_wait_answer), it
# kills the daemon (which fails the pending requests with ENOTCONN), and the
# figure is recorded as null with "error": "hang".
WATCH_PID=""
WATCH_FLAG=""
HANG_TIMEOUT=10

guard_start() { # FS
	local dpid=${FS_PID[$1]:-} mp=${FS_MP[$1]}
	WATCH_FLAG=$WORK/hang.$1
	rm -f "$WATCH_FLAG"
	WATCH_PID=""
	[ -n "$dpid" ] || return 0
	(
		trap - EXIT INT TERM
		idle=0 last=""
		while sleep 1; do
			cpu=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$dpid/stat" 2>/dev/null) || exit 0
			[ -n "$cpu" ] || exit 0
			if [ "$cpu" = "$last" ]; then idle=$((idle + 1)); else idle=0; fi
			last=$cpu
			[ $idle -ge $HANG_TIMEOUT ] || continue
			for st in /proc/[0-9]*/stat; do
				p=${st#/proc/}
				p=${p%/stat}
				# state and process group; then what it waits on
				read -r state g < <(awk '{ sub(/.*\) /, ""); print $1, $3 }' "$st" 2>/dev/null) || continue
				[ "$g" = "$MY_PGID" ] || continue
				w=$(cat "/proc/$p/wchan" 2>/dev/null) || continue
				[ "$state" = D ] || [ "$w" = request_wait_answer ] || continue
				printf 'pid %s (%s) blocked in %s, the daemon (pid %s, %s) idle for %s s\n' \
					"$p" "$(tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-200)" "$w" "$dpid" "$mp" "$idle" >"$WATCH_FLAG"
				cat "/proc/$p/stack" >>"$WATCH_FLAG" 2>/dev/null || true
				kill -9 "$dpid"
				exit 0
			done
		done
	) &
	WATCH_PID=$!
}

# False (and a log line) if the watchdog found a hang.
guard_stop() {
	if [ -n "$WATCH_PID" ]; then
		kill "$WATCH_PID" 2>/dev/null || true
		wait "$WATCH_PID" 2>/dev/null || true
	fi
	WATCH_PID=""
	if [ -n "$WATCH_FLAG" ] && [ -e "$WATCH_FLAG" ]; then
		log "HANG: $(head -1 "$WATCH_FLAG"); daemon killed"
		cat "$WATCH_FLAG" >>"$WORK/hangs.log"
		rm -f "$WATCH_FLAG"
		return 1
	fi
	return 0
}

# ---- file systems: a name, a kind (tmpfs or sectorfs), options ----

fs_add() { # NAME KIND [OPTS]
	FS_NAMES+=("$1")
	FS_KIND[$1]=$2
	FS_OPTS[$1]=${3:-}
	FS_MP[$1]=$WORK/$1
	FS_PID[$1]=""
	mkdir -p "$WORK/$1"
}

fs_mount() { # NAME
	local n=$1 mp=${FS_MP[$1]} opts
	if [ "${FS_KIND[$n]}" = tmpfs ]; then
		opts=size=$FS_SIZE,mode=1777${FS_OPTS[$n]:+,${FS_OPTS[$n]}}
		mount -t tmpfs -o "$opts" sfsbench-tmpfs "$mp"
	else
		opts=size=$FS_SIZE${FS_OPTS[$n]:+,${FS_OPTS[$n]}}
		"$SECTORFS" -o "$opts" "$mp"
		FS_PID[$n]=$(sfs_find_pid "$mp")
		[ -n "${FS_PID[$n]}" ] || die "no daemon found for $mp"
	fi
	mountpoint -q "$mp" || die "$mp did not mount"
}

fs_umount() { # NAME
	local n=$1 mp=${FS_MP[$1]}
	if [ "${FS_KIND[$n]}" = tmpfs ]; then
		if mountpoint -q "$mp"; then umount "$mp" || umount -l "$mp"; fi
	else
		sfs_stop "$mp" "${FS_PID[$n]}"
		FS_PID[$n]=""
	fi
}

fs_umount_all() { # NAME...
	local n
	for n; do
		fs_umount "$n"
	done
}

fs_fresh() { # NAME...
	local n
	for n; do
		fs_umount "$n"
		fs_mount "$n"
		BROKEN[$n]=""
	done
}

# ---- measuring ----

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# How many times anyone dropped the page cache since boot: other processes
# doing it in the middle of a measurement (test suites do) spoil the warm
# figures, which are then measured again.
drops() { awk '$1 == "drop_pagecache" { print $2 }' /proc/vmstat; }
TRIES=5
# Before another try: wait until nobody has dropped the caches for 15 s
# (at most 5 minutes).
wait_quiet() {
	local d quiet=0 waited=0
	d=$(drops)
	while [ $quiet -lt 15 ] && [ $waited -lt 300 ]; do
		sleep 1
		waited=$((waited + 1))
		if [ "$(drops)" = "$d" ]; then quiet=$((quiet + 1)); else quiet=0 d=$(drops); fi
	done
	[ $waited -le 15 ] || log "waited $waited s for the other process to stop dropping the caches"
}
# The start of a measurement from cold caches, try $1 of TRIES: wait for
# quiet after a spoiled try, drop the caches, note the drop count (D0) and,
# once fio and python3 are back in memory, the page cache (C0).
cold_start() {
	[ "$1" = 1 ] || wait_quiet
	drop_caches
	D0=$(drops)
	warm_tools
	C0=$(pagecache_kib)
}
# Memory is counted in this run's memory cgroup when it has one (the page
# cache a process faults in, the tmpfs pages it writes, and the kernel
# objects it makes are charged to its cgroup, so other activity on the
# machine stays out), else machine-wide from /proc/meminfo.
MEMCG="" MEMCG_KIND=meminfo
memcg_find() {
	local line path base
	while IFS= read -r line; do
		case $line in
		*:memory:*)
			path=${line#*:memory:}
			if [ -r "/sys/fs/cgroup/memory$path/memory.kmem.usage_in_bytes" ]; then
				MEMCG=/sys/fs/cgroup/memory$path MEMCG_KIND=v1
				return 0
			fi
			;;
		0::*)
			path=${line#0::}
			for base in /sys/fs/cgroup /sys/fs/cgroup/unified; do
				if [ -r "$base$path/memory.stat" ] && [ "$path" != / ]; then
					MEMCG=$base$path MEMCG_KIND=v2
				fi
			done
			;;
		esac
	done </proc/self/cgroup
}
# "page-cache shmem kernel" in KiB: page cache without tmpfs pages, tmpfs
# pages, kernel objects (slab: inodes, dentries; v1: all kernel memory).
mem_kib() {
	case $MEMCG_KIND in
	v1) awk -v k="$(cat "$MEMCG/memory.kmem.usage_in_bytes")" \
		'$1 == "total_cache" { c = $2 } $1 == "total_shmem" { s = $2 } END { printf "%d %d %d\n", (c - s) / 1024, s / 1024, k / 1024 }' \
		"$MEMCG/memory.stat" ;;
	v2) awk '$1 == "file" { c = $2 } $1 == "shmem" { s = $2 } $1 == "slab" { k = $2 } END { printf "%d %d %d\n", (c - s) / 1024, s / 1024, k / 1024 }' \
		"$MEMCG/memory.stat" ;;
	*) awk '$1 == "Cached:" { c = $2 } $1 == "Shmem:" { s = $2 } $1 == "Slab:" { k = $2 } END { print c - s, s, k }' /proc/meminfo ;;
	esac
}
pagecache_kib() { mem_kib | awk '{ print $1 }'; }
shmem_kib() { mem_kib | awk '{ print $2 }'; }
kmem_kib() { mem_kib | awk '{ print $3 }'; }
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.4f}')" "$1" "$2"; }
sfs_stats() { "$SECTORFS" stats "${FS_MP[$1]}"; }

# One figure: SUITE WORKLOAD FS ROUND VALUE UNIT [EXTRA_JSON_OBJECT]
record() {
	printf '{"suite": "%s", "w": "%s", "fs": "%s", "round": %s, "value": %s, "unit": "%s", "extra": %s}\n' \
		"$1" "$2" "$3" "$4" "$5" "$6" "${7:-{\}}" >>"$RAW"
	log "$2 $3 round $4: $5 $6"
}

# Text kept as is (stats output): SUITE LABEL FS TEXT
record_text() {
	python3 -c 'import json, sys; print(json.dumps({"suite": sys.argv[1], "text": sys.argv[2], "fs": sys.argv[3], "value": sys.argv[4]}))' \
		"$1" "$2" "$3" "$4" >>"$RAW"
}

# Add "key": number to a JSON object written on one line.
json_add() { # JSON KEY VALUE
	if [ "$1" = "{}" ]; then echo "{\"$2\": $3}"; else echo "${1%\}}, \"$2\": $3}"; fi
}

FIO_COMMON=(--ioengine=psync --direct=0 --invalidate=0 --fallocate=none --output-format=json)

run_fio() { # OUTFILE fio-args...
	local out=$1
	shift
	fio "${FIO_COMMON[@]}" --output="$out" "$@" >/dev/null
}

# "VALUE<TAB>EXTRA_JSON" from a fio JSON file: FILE read|write bw|iops
fio_figures() {
	python3 - "$@" <<'EOF'
import json, sys
path, rw, metric = sys.argv[1:4]
text = open(path).read()
j = json.loads(text[text.index("{"):])
job = j["jobs"][0]
d = job[rw]
clat = d.get("clat_ns", {})
pct = clat.get("percentile", {})
extra = {
    "io_bytes": d["io_bytes"], "MBps": round(d["bw_bytes"] / 1e6, 2),
    "iops": round(d["iops"], 1), "runtime_ms": d["runtime"],
    "clat_mean_us": round(clat.get("mean", 0) / 1e3, 2),
    "clat_p50_us": round(pct.get("50.000000", 0) / 1e3, 2),
    "clat_p99_us": round(pct.get("99.000000", 0) / 1e3, 2),
    "usr_cpu": round(job["usr_cpu"], 2), "sys_cpu": round(job["sys_cpu"], 2),
}
val = d["bw_bytes"] / 1e6 if metric == "bw" else d["iops"]
print(f"{val:.2f}\t{json.dumps(extra)}")
EOF
}

# Right before a measurement that takes much fresh memory (W1's file, W2's
# page cache): touch that much and give it back, so that every file system
# gets memory the host has just backed (see bench/touchmem.c).
warm_memory() { # MIB; its speed (MB/s) goes to touchmem.rates
	"$TOUCHMEM" "$1" >>"$WORK/touchmem.rates"
}

# ---- workloads; each takes a suite name, ROUNDS, sizes, then the file
# systems in turn ----

# After a drop_caches, fio and python3 fault their own files back into the
# page cache; do that before taking a page cache baseline.
warm_tools() {
	run_fio "$WORK/tools.json" --name=tools --filename="$WORK/tools.dat" --rw=write --bs=4k --size=64k
	fio_figures "$WORK/tools.json" write bw >/dev/null
	rm -f "$WORK/tools.dat"
}

# fio on FS under the watchdog: FS OUTFILE read|write bw|iops fio-args...
# Sets FIG_V (the figure, or null) and FIG_X (the details); false on a hang
# or a failure, after which the file system is marked broken.
fio_on() {
	local fs=$1 out=$2 rw=$3 metric=$4 rc=0 d0
	shift 4
	d0=$(drops)
	guard_start "$fs"
	run_fio "$out" "$@" || rc=$?
	guard_stop || rc=124
	if [ $rc = 0 ]; then
		IFS=$'\t' read -r FIG_V FIG_X < <(fio_figures "$out" "$rw" "$metric")
		FIG_X=$(json_add "$FIG_X" foreign_drop_caches $(($(drops) - d0)))
		return 0
	fi
	FIG_V=null
	if [ $rc = 124 ]; then FIG_X='{"error": "hang"}'; else FIG_X="{\"error\": \"fio exit status $rc\"}"; fi
	BROKEN[$fs]=1
	return 1
}

# The file systems in the order of round R: each round starts one further
# along (tmpfs sectorfs writeback, then sectorfs writeback tmpfs, ...), so
# that none always comes right after another's memory was freed.  On a
# virtual machine that hands freed memory back to its host, memory used
# again at once is fast and memory used later has to be faulted in again
# there, which moves a large write or a first read by 2-4 times.
rotated() { # R FS...
	local r=$1 n i
	shift
	n=$#
	for ((i = 0; i < n; i++)); do
		local k=$(((r - 1 + i) % n + 1))
		printf '%s\n' "${!k}"
	done
}

# A figure not measured because the mount was lost earlier in the round.
skipped() { # SUITE W FS ROUND UNIT
	record "$1" "$2" "$3" "$4" null "$5" '{"error": "skipped: the mount was lost earlier"}'
}

# W1, W2, W2b.  Per round: fresh mounts; W1 on each; then on each: drop
# caches, W2, W2b, and the page cache held by the mount (page cache after
# W2 and after W2b, minus after the drop; and once more after the file is
# opened and closed again, which with cache=open drops its pages).
# With SEQ_READS=0, W1 only.
w_seq() { # SUITE ROUNDS SIZE_MIB FS...
	local suite=$1 rounds=$2 size=$3 r fs mp sh0 c0 d0 try v2 v2b x2 x2b
	shift 3
	for ((r = 1; r <= rounds; r++)); do
		fs_fresh "$@"
		for fs in $(rotated "$r" "$@"); do
			mp=${FS_MP[$fs]}
			sh0=$(shmem_kib) c0=$(pagecache_kib)
			warm_memory $((size + 1024))
			if fio_on "$fs" "$WORK/fio-w1-$fs-$r.json" write bw --name=W1 --filename="$mp/seq" \
				--rw=write --bs=1M --size="${size}m" --end_fsync=1; then
				FIG_X=$(json_add "$FIG_X" shmem_delta_kib $(($(shmem_kib) - sh0)))
				FIG_X=$(json_add "$FIG_X" pagecache_delta_kib $(($(pagecache_kib) - c0)))
				[ -z "${FS_PID[$fs]}" ] || FIG_X=$(json_add "$FIG_X" daemon_rss_kib "$(rss_kib "${FS_PID[$fs]}")")
			fi
			record "$suite" W1 "$fs" "$r" "$FIG_V" MB/s "$FIG_X"
		done
		[ "${SEQ_READS:-1}" = 1 ] || continue
		for fs in $(rotated "$r" "$@"); do
			mp=${FS_MP[$fs]}
			if [ -n "${BROKEN[$fs]:-}" ]; then
				skipped "$suite" W2 "$fs" "$r" MB/s
				skipped "$suite" W2b "$fs" "$r" MB/s
				continue
			fi
			# Again (up to 5 tries) if somebody else drops the caches meanwhile.
			for ((try = 1; try <= TRIES; try++)); do
				cold_start $try
				d0=$D0 c0=$C0
				v2=null v2b=null x2b='{"error": "skipped: W2 failed"}'
				warm_memory $((size + 1024))
				if fio_on "$fs" "$WORK/fio-w2-$fs-$r.json" read bw --name=W2 --filename="$mp/seq" \
					--rw=read --bs=1M --size="${size}m"; then
					FIG_X=$(json_add "$FIG_X" pagecache_delta_kib $(($(pagecache_kib) - c0)))
				fi
				v2=$FIG_V x2=$FIG_X
				[ -z "${BROKEN[$fs]:-}" ] || break
				if fio_on "$fs" "$WORK/fio-w2b-$fs-$r.json" read bw --name=W2b --filename="$mp/seq" \
					--rw=read --bs=1M --size="${size}m"; then
					FIG_X=$(json_add "$FIG_X" pagecache_delta_kib $(($(pagecache_kib) - c0)))
					[ -z "${FS_PID[$fs]}" ] || FIG_X=$(json_add "$FIG_X" daemon_rss_kib "$(rss_kib "${FS_PID[$fs]}")")
					guard_start "$fs"
					true <"$mp/seq"
					guard_stop || BROKEN[$fs]=1
					FIG_X=$(json_add "$FIG_X" pagecache_after_reopen_kib $(($(pagecache_kib) - c0)))
				fi
				v2b=$FIG_V x2b=$FIG_X
				[ -z "${BROKEN[$fs]:-}" ] || break
				[ "$(drops)" != "$d0" ] || break
				log "W2/W2b on $fs: another process dropped the caches meanwhile (try $try of $TRIES)"
			done
			[ "$v2" = null ] || x2=$(json_add "$x2" tries "$try")
			[ "$v2b" = null ] || x2b=$(json_add "$x2b" tries "$try")
			record "$suite" W2 "$fs" "$r" "$v2" MB/s "$x2"
			record "$suite" W2b "$fs" "$r" "$v2b" MB/s "$x2b"
		done
	done
	fs_umount_all "$@"
}

# A fresh mount with the W3/W4 file laid out (not timed).
rand_prepare() { # FS SIZE_MIB
	fs_fresh "$1"
	fio_on "$1" "$WORK/fio-layout-$1.json" write bw --name=layout --filename="${FS_MP[$1]}/rand" \
		--rw=write --bs=1M --size="${2}m" --end_fsync=1 || true
}

# W3 (randread) and W4 (randwrite), for each number of jobs.  One fresh
# mount and one laid-out file per file system serve all rounds (again after
# a hang).
w_rand() { # SUITE ROUNDS SIZE_MIB RUNTIME_S "JOBS..." "RW..." FS...
	local suite=$1 rounds=$2 size=$3 runtime=$4 jobs=$5 rws=$6 r fs nj rw w d0 try
	shift 6
	for fs in "$@"; do
		rand_prepare "$fs" "$size"
	done
	for rw in $rws; do
		[ "$rw" = randread ] && w=W3 || w=W4
		for ((r = 1; r <= rounds; r++)); do
			for nj in $jobs; do
				for fs in $(rotated "$r" "$@"); do
					# W3 reads a file read once before: the warm case, as
					# tmpfs always is; sectorfs with cache=keep serves it
					# from the page cache, with cache=open (which drops
					# the pages at each open) from the daemon.  Again (up to
					# 5 tries) if somebody else drops the caches meanwhile.
					for ((try = 1; try <= TRIES; try++)); do
						[ $try = 1 ] || wait_quiet
						[ -z "${BROKEN[$fs]:-}" ] || rand_prepare "$fs" "$size"
						d0=$(drops)
						[ $w = W4 ] || fio_on "$fs" "$WORK/fio-warm-$fs.json" read bw --name=warm \
							--filename="${FS_MP[$fs]}/rand" --rw=read --bs=1M --size="${size}m" || true
						fio_on "$fs" "$WORK/fio-$w-$nj-$fs-$r.json" "${rw#rand}" iops --name="$w" \
							--filename="${FS_MP[$fs]}/rand" --rw="$rw" --bs=4k --size="${size}m" \
							--numjobs="$nj" --time_based --runtime="$runtime" --group_reporting || break
						if [ $w = W4 ] || [ "$(drops)" = "$d0" ]; then break; fi
						log "$w on $fs: another process dropped the caches meanwhile (try $try of $TRIES)"
					done
					[ "$FIG_V" = null ] || FIG_X=$(json_add "$FIG_X" tries "$try")
					record "$suite" "$w-${nj}j" "$fs" "$r" "$FIG_V" IOPS "$FIG_X"
				done
			done
		done
	done
	fs_umount_all "$@"
}

# W5: NFILES files of 1 KiB in 100 directories.
w_small() { # SUITE ROUNDS NFILES FS...
	local suite=$1 rounds=$2 n=$3 r fs out ph v err d0
	shift 3
	for ((r = 1; r <= rounds; r++)); do
		fs_fresh "$@"
		for fs in $(rotated "$r" "$@"); do
			out=$WORK/small-$fs-$r.jsonl
			err='{"error": "smallfiles failed"}'
			d0=$(drops)
			guard_start "$fs"
			"$SMALLFILES" "${FS_MP[$fs]}/w5" "$n" 100 1024 create,stat,restat,nxattr,read,delete >"$out" || true
			guard_stop || { err='{"error": "hang"}'; BROKEN[$fs]=1; }
			d0=$(($(drops) - d0))
			for ph in create stat restat nxattr read delete; do
				v=$(python3 -c 'import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["phase"] == sys.argv[2]:
        print(d["files_per_s"])' "$out" "$ph")
				if [ -n "$v" ]; then
					record "$suite" "W5-$ph" "$fs" "$r" "$v" files/s "{\"files\": $n, \"size\": 1024, \"foreign_drop_caches\": $d0}"
				else
					record "$suite" "W5-$ph" "$fs" "$r" null files/s "$err"
				fi
			done
		done
	done
	fs_umount_all "$@"
}

# W6: unpack TARBALL (of include/), tar it to a pipe, remove it.
w_tree() { # SUITE ROUNDS TARBALL FS...
	local suite=$1 rounds=$2 tarball=$3 r fs mp t0 t1 step rc
	shift 3
	for ((r = 1; r <= rounds; r++)); do
		fs_fresh "$@"
		for fs in $(rotated "$r" "$@"); do
			mp=${FS_MP[$fs]}
			cat "$tarball" >/dev/null # the tarball itself from the page cache
			for step in untar tar rm; do
				if [ -n "${BROKEN[$fs]:-}" ]; then
					skipped "$suite" "W6-$step" "$fs" "$r" s
					continue
				fi
				rc=0
				guard_start "$fs"
				t0=$(now)
				case $step in
				untar) tar -C "$mp" -xf "$tarball" 2>"$WORK/w6.err" || rc=$? ;;
				tar) (cd "$mp" && tar -c . 2>"$WORK/w6.err" | cat >/dev/null) || rc=$? ;;
				rm) rm -rf "$mp/include" 2>"$WORK/w6.err" || rc=$? ;;
				esac
				t1=$(now)
				guard_stop || rc=124
				[ $rc = 0 ] || head -3 "$WORK/w6.err" >&2
				if [ $rc = 0 ]; then
					record "$suite" "W6-$step" "$fs" "$r" "$(elapsed "$t0" "$t1")" s
				else
					BROKEN[$fs]=1
					record "$suite" "W6-$step" "$fs" "$r" null s \
						"$([ $rc = 124 ] && echo '{"error": "hang"}' || echo "{\"error\": \"exit status $rc\"}")"
				fi
			done
		done
	done
	fs_umount_all "$@"
}

# M1 memory, once per file system (fresh mounts):
#  - a SIZE_MIB file written as in W1: daemon RSS over data (sectorfs),
#    Shmem delta (tmpfs); then drop caches, read it twice (W2, W2b) and take
#    the page cache the mount holds (page cache delta); the total is
#    daemon RSS growth + page cache (sectorfs) or Shmem growth (tmpfs);
#  - delete it: daemon RSS left over the idle baseline;
#  - fresh mount, NSMALL files of 100 bytes (smallfiles create): bytes per
#    file, daemon RSS delta / n (sectorfs) or shmem delta / n (tmpfs), and
#    the kernel's side: kernel memory delta / n and page cache delta / n.
m_mem() { # SUITE SIZE_MIB NSMALL FS...
	local suite=$1 size=$2 nsmall=$3 fs mp pid r0 r1 r2 sh0 sh1 c0 c2 sl0 sl1 x bytes ok d0 try
	shift 3
	bytes=$((size * 1048576))
	for fs in "$@"; do
		fs_fresh "$fs"
		mp=${FS_MP[$fs]} pid=${FS_PID[$fs]}
		drop_caches
		sleep 1
		r0=0 r1=0 r2=0
		[ -z "$pid" ] || r0=$(rss_kib "$pid")
		sh0=$(shmem_kib)
		ok=1
		fio_on "$fs" "$WORK/fio-m1-$fs.json" write bw --name=M1 --filename="$mp/seq" --rw=write --bs=1M \
			--size="${size}m" --end_fsync=1 || ok=""
		sh1=$(shmem_kib)
		if [ -n "$ok" ] && [ -n "$pid" ]; then
			r1=$(rss_kib "$pid")
			record_text "$suite" "after writing the ${size} MiB file" "$fs" "$(sfs_stats "$fs")"
		fi
		for ((try = 1; try <= TRIES; try++)); do
			cold_start $try
			d0=$D0 c0=$C0
			[ -z "$ok" ] || fio_on "$fs" "$WORK/fio-m1r-$fs.json" read bw --name=M1r --filename="$mp/seq" \
				--rw=read --bs=1M --size="${size}m" || ok=""
			[ -z "$ok" ] || fio_on "$fs" "$WORK/fio-m1r-$fs.json" read bw --name=M1r --filename="$mp/seq" \
				--rw=read --bs=1M --size="${size}m" || ok=""
			c2=$(pagecache_kib)
			if [ -z "$ok" ] || [ "$(drops)" = "$d0" ]; then break; fi
			log "M1 on $fs: another process dropped the caches meanwhile (try $try of $TRIES)"
		done
		if [ -n "$ok" ]; then
			[ -z "$pid" ] || r2=$(rss_kib "$pid")
			x="{\"data_bytes\": $bytes, \"rss_idle_kib\": $r0, \"rss_after_write_kib\": $r1, \"rss_after_reads_kib\": $r2, \"shmem_delta_kib\": $((sh1 - sh0)), \"pagecache_before_reads_kib\": $c0, \"pagecache_after_reads_kib\": $c2}"
			if [ -n "$pid" ]; then
				record "$suite" M1-rss-per-data "$fs" 1 "$(python3 -c "print(round($r1 * 1024 / $bytes, 4))")" x "$x"
				record "$suite" M1-pagecache "$fs" 1 "$(((c2 - c0) / 1024))" MiB "$x"
				record "$suite" M1-total "$fs" 1 "$(((r2 - r0 + c2 - c0) / 1024))" MiB "$x"
			else
				record "$suite" M1-pagecache "$fs" 1 "$(((sh1 - sh0) / 1024))" MiB "$x"
				record "$suite" M1-total "$fs" 1 "$(((sh1 - sh0) / 1024))" MiB "$x"
			fi
			rm -f "$mp/seq"
			sleep 1
			if [ -n "$pid" ]; then
				r2=$(rss_kib "$pid")
				record "$suite" M1-rss-after-delete "$fs" 1 "$(python3 -c "print(round(($r2 - $r0) / 1024, 1))")" MiB \
					"{\"rss_idle_kib\": $r0, \"rss_after_delete_kib\": $r2}"
				record_text "$suite" "after deleting it" "$fs" "$(sfs_stats "$fs")"
			fi
		else
			log "M1: the big file failed on $fs"
		fi

		fs_fresh "$fs"
		pid=${FS_PID[$fs]}
		drop_caches
		warm_tools
		"$SMALLFILES" "$WORK/tools-small" 10 1 100 create,delete >/dev/null
		sleep 1
		r0=0 r1=0
		[ -z "$pid" ] || r0=$(rss_kib "$pid")
		sh0=$(shmem_kib) c0=$(pagecache_kib) sl0=$(kmem_kib)
		ok=1
		d0=$(drops)
		guard_start "$fs"
		"$SMALLFILES" "$mp/m1" "$nsmall" 100 100 create >/dev/null || ok=""
		guard_stop || ok=""
		sleep 1
		sh1=$(shmem_kib) c2=$(pagecache_kib) sl1=$(kmem_kib)
		[ "$(drops)" = "$d0" ] || log "M1 on $fs: another process dropped the caches meanwhile: the small-file figures are off"
		if [ -z "$ok" ]; then
			log "M1: the small files failed on $fs"
			fs_umount "$fs"
			continue
		fi
		[ -z "$pid" ] || r1=$(rss_kib "$pid")
		x="{\"files\": $nsmall, \"rss_before_kib\": $r0, \"rss_after_kib\": $r1, \"shmem_delta_kib\": $((sh1 - sh0)), \"slab_delta_kib\": $((sl1 - sl0)), \"pagecache_delta_kib\": $((c2 - c0)), \"foreign_drop_caches\": $(($(drops) - d0))}"
		if [ -n "$pid" ]; then
			record "$suite" M1-bytes-per-file "$fs" 1 "$(((r1 - r0) * 1024 / nsmall))" B "$x"
			record "$suite" M1-pagecache-per-file "$fs" 1 "$(((c2 - c0) * 1024 / nsmall))" B "$x"
			record_text "$suite" "after $nsmall files of 100 bytes" "$fs" "$(sfs_stats "$fs")"
		else
			record "$suite" M1-bytes-per-file "$fs" 1 "$(((sh1 - sh0) * 1024 / nsmall))" B "$x"
			record "$suite" M1-pagecache-per-file "$fs" 1 0 B "$x"
		fi
		record "$suite" M1-slab-per-file "$fs" 1 "$(((sl1 - sl0) * 1024 / nsmall))" B "$x"
		fs_umount "$fs"
	done
}

make_tarball() { # -> path
	local t=$WORK/include.tar
	[ -f "$t" ] || tar -C /usr -cf "$t" include
	echo "$t"
}

# results.json, table.md, ratios.dat and ratios.png from RAW.
make_report() { # OUTDIR META_JSON
	mkdir -p "$1"
	python3 - "$RAW" "$1" "$2" <<'EOF'
import json, statistics, sys, os
raw, outdir, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
hangs_path = os.path.join(os.path.dirname(raw), "hangs.log")
hangs = open(hangs_path).read() if os.path.exists(hangs_path) else ""
recs, texts = [], []
for line in open(raw):
    r = json.loads(line)
    (texts if "text" in r else recs).append(r)
# The sectorfs configurations measured, in order: name, label, options.
configs = meta["configs"]
cnames = [c["name"] for c in configs]
label = {c["name"]: c["label"] for c in configs}
fss = ["tmpfs"] + cnames

names = {
    "W1": "W1 seq write 2 GiB, 1 MiB blocks, fsync", "W2": "W2 seq read, caches dropped",
    "W2b": "W2b seq read again, caches kept",
    "W3-1j": "W3 rand read 4 KiB, 1 job", "W3-2j": "W3 rand read 4 KiB, 2 jobs",
    "W3-4j": "W3 rand read 4 KiB, 4 jobs", "W4-1j": "W4 rand write 4 KiB, 1 job",
    "W4-2j": "W4 rand write 4 KiB, 2 jobs", "W4-4j": "W4 rand write 4 KiB, 4 jobs",
    "W5-create": "W5 small files: create", "W5-stat": "W5 small files: stat",
    "W5-restat": "W5 small files: stat again", "W5-read": "W5 small files: read",
    "W5-delete": "W5 small files: delete",
    "W5-nxattr": "R0 one request, nothing behind it (getxattr of a missing name)",
    "W6-untar": "W6 tar -xf /usr/include", "W6-tar": "W6 tar -c . | cat",
    "W6-rm": "W6 rm -rf",
}
if meta.get("quick"):
    names["W1"] = "W1 seq write %d MiB, 1 MiB blocks, fsync" % meta["seq_mib"]

order, by = [], {}
for r in recs:
    key = (r["w"], r["fs"])
    if r["w"] not in order:
        order.append(r["w"])
    by.setdefault(key, []).append(r)

def med(w, fs):
    vals = [x["value"] for x in by.get((w, fs), []) if x["value"] is not None]
    return statistics.median(vals) if vals else None

notes = []
def failed(w, fs):
    """A mark for rounds without a figure (a hang), and a footnote."""
    rs = by.get((w, fs), [])
    bad = [x for x in rs if x["value"] is None]
    if not bad:
        return ""
    errs = sorted(set(x["extra"].get("error", "failed") for x in bad))
    notes.append("%s on %s: %d of %d rounds without a figure (%s)" % (w, fs, len(bad), len(rs), "; ".join(errs)))
    return " (%d/%d failed)" % (len(bad), len(rs))

def fmt(v, unit):
    if v is None:
        return "none"
    if unit in ("s", "x"):
        return "%.3f" % v
    return "%.0f" % v if abs(v) >= 100 else "%.1f" % v

medians, rows = {}, []
perf = [w for w in order if not w.startswith("M1")]
# R0 last: it explains the others.
perf.sort(key=lambda w: w == "W5-nxattr")
for w in perf:
    unit = by[(w, "tmpfs")][0]["unit"]
    t = med(w, "tmpfs")
    vals = {fs: med(w, fs) for fs in fss}
    ratios = {c: (vals[c] / t if t and vals[c] is not None else None) for c in cnames}
    medians[w] = dict(vals, unit=unit, ratio=ratios[cnames[0]], ratios=ratios,
                      rounds={fs: [x["value"] for x in by.get((w, fs), [])] for fs in fss})
    rows.append((w, names.get(w, w), unit, vals, ratios))

def ratio_text(r):
    return "-" if r is None else "%.2f" % r

with open(os.path.join(outdir, "table.md"), "w") as f:
    f.write("# sectorfs vs tmpfs\n\n")
    f.write("%s; %s rounds alternating %s; medians.\n"
            % (meta["date"], meta["rounds"], ", ".join(fss)))
    f.write("Kernel %s, %d CPUs; daemon %s (built %s, sha256 %s…; tree %s).\n"
            % (meta["kernel"], meta["cpus"], meta["sectorfs_binary"], meta["sectorfs_mtime"],
               meta["sectorfs_sha256"][:12], meta["sectorfs_git"]))
    if meta.get("fresh_memory_mbps"):
        f.write("Fresh memory in 4 KiB pages comes to a process here at %d MB/s (median; %d\n"
                "to %d over the bench/touchmem.c runs before each large write and first read):\n"
                "a cost tmpfs does not pay (kernel pages) and sectorfs avoids with huge pages\n"
                "where it can.\n"
                % (meta["fresh_memory_mbps"], meta["fresh_memory_mbps_min"],
                   meta["fresh_memory_mbps_max"]))
    f.write("Mount options: tmpfs `size=%s,mode=1777`; %s.\n\n" % (meta["fs_size"], "; ".join(
        "%s `%s`" % (c["label"], c["mount_opts"]) for c in configs)))
    f.write("Ratio = sectorfs / tmpfs: above 1 sectorfs is faster, except for W6 (seconds),\n"
            "where it is time_sectorfs / time_tmpfs and above 1 sectorfs is slower.\n\n")
    f.write("| workload | tmpfs | %s | unit |\n" % " | ".join("%s | ratio" % label[c] for c in cnames))
    f.write("|---|---:|%s---|\n" % ("---:|---:|" * len(cnames)))
    for w, name, unit, vals, ratios in rows:
        cells = ["%s | %s" % (fmt(vals[c], unit) + failed(w, c), ratio_text(ratios[c])) for c in cnames]
        f.write("| %s | %s | %s | %s |\n" % (name, fmt(vals["tmpfs"], unit) + failed(w, "tmpfs"),
                                            " | ".join(cells), unit))
    uring = [c["name"] for c in configs if "io_uring=on" in c["mount_opts"].split(",")]
    if uring and cnames[0] not in uring:
        u = uring[0]
        f.write("\nFUSE over io_uring (%s) beside /dev/fuse (%s), ratios to tmpfs: %s.\n"
                % (label[u], label[cnames[0]], "; ".join(
                    "%s %s (/dev/fuse %s)" % (w, ratio_text(ratios[u]), ratio_text(ratios[cnames[0]]))
                    for w, name, unit, vals, ratios in rows)))
    disturbed = ["%s on %s, round %s" % (r["w"], r["fs"], r["round"]) for r in recs
                 if r["value"] is not None and r["extra"].get("foreign_drop_caches")]
    if disturbed:
        f.write("\nMeasured while another process dropped the caches (after all tries): %s.\n"
                % "; ".join(disturbed))
    if notes:
        f.write("\nFailed rounds (medians are of the other rounds):\n\n")
        for n in notes:
            f.write("- %s\n" % n)
    if hangs:
        f.write("\nHangs (the watchdog killed the daemon):\n\n```\n%s```\n" % hangs)
    mem = [w for w in ("M1-rss-per-data", "M1-rss-after-delete", "M1-pagecache", "M1-total",
                       "M1-bytes-per-file", "M1-pagecache-per-file", "M1-slab-per-file") if w in order]
    if mem:
        mnames = {
            "M1-rss-per-data": "daemon RSS / file data, after writing the %d MiB file" % meta["seq_mib"],
            "M1-pagecache": "page cache held after reading the file twice (tmpfs: the file's own pages, shmem)",
            "M1-total": "total memory for the %d MiB file (sectorfs: daemon RSS growth + page cache; tmpfs: shmem)" % meta["seq_mib"],
            "M1-rss-after-delete": "daemon RSS over its idle baseline after deleting the file",
            "M1-bytes-per-file": "bytes per 100-byte file: sectorfs daemon RSS delta / n; tmpfs shmem delta / n",
            "M1-pagecache-per-file": "bytes per 100-byte file: kernel page cache (non-shmem) delta / n",
            "M1-slab-per-file": "bytes per 100-byte file: kernel memory delta / n (inodes, dentries, ...)",
        }
        f.write("\n## Memory (M1)\n\n")
        f.write("Counted in %s; the daemon's RSS from /proc/PID/status.\n\n" % meta["memory_source"])
        f.write("| figure | tmpfs | %s | unit |\n|---|---:|%s---|\n"
                % (" | ".join(label[c] for c in cnames), "---:|" * len(cnames)))
        for w in mem:
            vals = {fs: med(w, fs) for fs in fss}
            unit = next(by[(w, fs)][0]["unit"] for fs in fss if (w, fs) in by)
            medians[w] = dict(vals, unit=unit)
            f.write("| %s | %s | %s | %s |\n" % (
                mnames.get(w, w), "n/a" if vals["tmpfs"] is None else fmt(vals["tmpfs"], unit),
                " | ".join(fmt(vals[c], unit) for c in cnames), unit))
        def pc_mib(w, c):
            xs = [x["extra"]["pagecache_delta_kib"] / 1024 for x in by.get((w, c), [])
                  if "pagecache_delta_kib" in x["extra"]]
            return fmt(statistics.median(xs), "MiB") if xs else "none"
        f.write("\n")
        for c in cnames:
            f.write("Page cache held by %s right after writing the file (W1): %s MiB; after W2 + W2b: %s MiB"
                    " (medians of the rounds).\n" % (label[c], pc_mib("W1", c), pc_mib("W2b", c)))
    for t in texts:
        f.write("\n`sectorfs stats` (%s) %s:\n\n```\n%s\n```\n" % (label.get(t["fs"], t["fs"]), t["text"],
                                                                t["value"].rstrip()))

json.dump({"meta": meta, "medians": medians, "records": recs, "hangs": hangs,
           "stats": [{"when": t["text"], "fs": t["fs"], "output": t["value"]} for t in texts]},
          open(os.path.join(outdir, "results.json"), "w"), indent=1)

# For the plot: one line per workload, a ratio per configuration ("nan"
# where there is none), whether it is a time, and the label.
with open(os.path.join(outdir, "ratios.dat"), "w") as f:
    i = 0
    for w, name, unit, vals, ratios in rows:
        if all(ratios[c] is None for c in cnames):
            continue
        short = "R0" if w == "W5-nxattr" else w
        f.write('%d %s %d "%s"\n' % (i, " ".join("nan" if ratios[c] is None else "%.4f" % ratios[c]
                                               for c in cnames), 1 if unit == "s" else 0,
                                    short + (" (time)" if unit == "s" else "")))
        i += 1
with open(os.path.join(outdir, "ratios.plt"), "w") as f:
    n = len(cnames)
    width = 0.8 / n
    colors = ["#3a7dc9", "#7fb24a", "#d9822b", "#8e5ab5"]
    f.write("set boxwidth %.3f\n" % width)
    plots = ['"%s" using 1:(1/0):xtic(%d) with points notitle' % (os.path.join(outdir, "ratios.dat"), n + 3)]
    for j, c in enumerate(cnames):
        off = (j - (n - 1) / 2) * width
        col = j + 2
        plots.append('"" using ($1%+.3f):%d with boxes lc rgb "%s" title "%s"'
                     % (off, col, colors[j % len(colors)], label[c]))
        plots.append('"" using ($1%+.3f):%d:(sprintf("%%.2f", $%d)) with labels offset 0,0.6 font ",8" notitle'
                     % (off, col, col))
    f.write("plot " + ", \\\n     ".join(plots) + "\n")
EOF
	local ymin ymax
	read -r ymin ymax < <(awk '{ for (i = 2; i < NF - 1; i++) if ($i != "nan") { if (min == "" || $i < min) min = $i; if ($i > max) max = $i } } END { lo = 0.1; while (lo > min * 0.7) lo /= 10; hi = 10; while (hi < max * 1.4) hi *= 10; print lo, hi }' "$1/ratios.dat")
	gnuplot <<EOF
set terminal pngcairo size 1200,600 font "sans,10"
set output "$1/ratios.png"
set title "sectorfs / tmpfs, medians of $(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["rounds"])' "$2") rounds ($(date +%F))\nthroughput ratio: above 1 = sectorfs faster; (time) ratio: above 1 = sectorfs slower"
set logscale y
set yrange [$ymin:$ymax]
set ylabel "ratio sectorfs / tmpfs (log)"
set style fill solid 0.8 border -1
set xtics rotate by -40 left nomirror
set grid ytics
set key top left
set xrange [-0.7:*]
set rmargin 7
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black"
load "$1/ratios.plt"
EOF
	rm -f "$1/ratios.dat" "$1/ratios.plt"
}

binary_meta() { # arguments for meta_json: the daemon binary's identity
	printf '%s\n' "sectorfs_binary=\"$SECTORFS_ORIG\"" "sectorfs_sha256=\"$SECTORFS_SHA\"" \
		"sectorfs_mtime=\"$SECTORFS_MTIME\""
}

meta_json() { # extra "k": v pairs (JSON text) appended
	python3 - "$@" <<'EOF'
import json, os, subprocess, sys, time
def sh(*c):
    try:
        return subprocess.run(c, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""
m = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "kernel": os.uname().release,
     "cpus": os.cpu_count(), "fio": sh("fio", "--version"),
     "sectorfs_git": sh("git", "-C", os.environ["REPO"], "describe", "--always", "--dirty"),
     "mem_total_kib": int(open("/proc/meminfo").readline().split()[1])}
for kv in sys.argv[1:]:
    k, v = kv.split("=", 1)
    m[k] = json.loads(v)
print(json.dumps(m))
EOF
}

# ---- main ----

main() {
	local rounds=3 quick=0 opts="" out=$BENCH_DIR/results rounds_set=0 v
	local -a variants=(writeback=writeback uring=io_uring=on) names=()
	local variants_set=0
	while [ $# -gt 0 ]; do
		case $1 in
		--rounds) rounds=$2 rounds_set=1; shift 2 ;;
		--quick) quick=1; shift ;;
		--sectorfs-opts) opts=$2; shift 2 ;;
		--variant)
			[ $variants_set = 1 ] || variants=()
			variants_set=1
			[ "$2" = none ] || variants+=("$2")
			shift 2
			;;
		--out) out=$2; shift 2 ;;
		-h | --help) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) die "unknown argument $1 (see --help)" ;;
		esac
	done
	local seq=2048 rnd=512 runtime=8 nsmall=100000 nmem=100000
	if [ $quick = 1 ]; then
		seq=256 rnd=128 runtime=2 nsmall=10000 nmem=10000
		[ $rounds_set = 1 ] || rounds=1
	fi
	[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "bad --rounds $rounds"
	[ "$rounds" -ge 3 ] || [ $quick = 1 ] || log "warning: fewer than 3 rounds"
	for v in "${variants[@]}"; do
		[[ $v =~ ^[a-z][a-z0-9_]*=.+$ ]] || die "bad --variant '$v' (NAME=OPTIONS, NAME in [a-z0-9_])"
		[[ ${v%%=*} != tmpfs && ${v%%=*} != sectorfs ]] || die "--variant: '${v%%=*}' is taken"
	done
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	bench_init
	local uring=0
	for v in "${variants[@]}"; do
		[[ ,${v#*=}, == *,io_uring=on,* ]] && uring=1
	done
	if [ $uring = 1 ]; then
		[ -e "$URING_SWITCH" ] || die "io_uring=on: this kernel has no FUSE over io_uring ($URING_SWITCH)"
		URING_RESTORE=$(cat "$URING_SWITCH")
		echo Y >"$URING_SWITCH"
		# The variants come after these options and override them.
		[[ ,$opts, == *,io_uring=* ]] || opts=${opts:+$opts,}io_uring=off
	fi
	fs_add tmpfs tmpfs
	fs_add sectorfs sectorfs "$opts"
	names=(tmpfs sectorfs)
	local configs="[{\"name\": \"sectorfs\", \"label\": \"sectorfs\", \"mount_opts\": \"size=$FS_SIZE${opts:+,$opts}\"}"
	for v in "${variants[@]}"; do
		fs_add "${v%%=*}" sectorfs "${opts:+$opts,}${v#*=}"
		names+=("${v%%=*}")
		configs+=", {\"name\": \"${v%%=*}\", \"label\": \"sectorfs -o ${v#*=}\", \"mount_opts\": \"size=$FS_SIZE,${opts:+$opts,}${v#*=}\"}"
	done
	configs+="]"
	local t0=$SECONDS
	log "W1/W2/W2b: ${seq} MiB, $rounds rounds, on ${names[*]}"
	w_seq perf "$rounds" "$seq" "${names[@]}"
	log "W3/W4: ${rnd} MiB, ${runtime} s per run"
	w_rand perf "$rounds" "$rnd" "$runtime" "1 2 4" "randread randwrite" "${names[@]}"
	log "W5: $nsmall files"
	w_small perf "$rounds" "$nsmall" "${names[@]}"
	log "W6: /usr/include"
	w_tree perf "$rounds" "$(make_tarball)" "${names[@]}"
	log "M1: memory"
	m_mem perf "$seq" "$nmem" "${names[@]}"
	local meta bm
	mapfile -t bm < <(binary_meta)
	local fresh=("fresh_memory_mbps=null")
	if [ -s "$WORK/touchmem.rates" ]; then # median, min, max of touchmem's speeds
		read -r -a fresh < <(sort -n "$WORK/touchmem.rates" | awk '{ v[NR] = $1 } END {
			printf "fresh_memory_mbps=%d fresh_memory_mbps_min=%d fresh_memory_mbps_max=%d\n",
			       v[int((NR + 1) / 2)], v[1], v[NR] }')
	fi
	meta=$(REPO=$REPO meta_json "rounds=$rounds" "quick=$([ $quick = 1 ] && echo true || echo false)" \
		"seq_mib=$seq" "rand_mib=$rnd" "rand_runtime_s=$runtime" "small_files=$nsmall" "mem_files=$nmem" \
		"fs_size=\"$FS_SIZE\"" "configs=$configs" \
		"memory_source=\"${MEMCG:-/proc/meminfo} ($MEMCG_KIND)\"" \
		"duration_s=$((SECONDS - t0))" \
		"${fresh[@]}" \
		"usr_include_files=$(tar -tf "$(make_tarball)" | wc -l)" \
		"${bm[@]}")
	make_report "$out" "$meta"
	log "done in $((SECONDS - t0)) s: $out/table.md"
	cat "$out/table.md"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
