#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/bench_image.sh: how fast sectorfs saves and loads images, against tar,
# and how long a writer waits while a save runs.
#
#   sudo bench/bench_image.sh [SECTORFS_BINARY_OR_BUILD_DIR] [--quick] [--out FILE]
#
# Two trees, each generated once on a tmpfs:
#   large   16 files of 256 MiB (4 GiB of random data)
#   small   1,000,000 files of 0-2 KiB (1 KiB on average) in 1,000 directories
# For each tree, in the same disk directory (a directory under /var/tmp):
#   load    mount sectorfs with image= (the command returns once the image is
#           loaded and the mount is live), page cache dropped first
#           vs tar -x of the same tree from a tarball on that disk into a
#           fresh tmpfs, page cache dropped first
#   save    sectorfs save (snapshot, write, fsync, rename, directory fsync)
#           vs tar -c of the tree from the tmpfs to that disk, then sync of
#           the tarball (tar writes no fsync of its own; a save does)
# Throughput is the tree's file data over the time, in GiB/s (2^30 B/s); the
# ratio is sectorfs's over tar's, so above 1 means sectorfs is faster.
#
# The writer pause: a writer appends 4 KiB blocks to a file in the mount
# (pwrite, rewinding every 64 MiB) and times each write, for 3 s alone,
# then while `sectorfs save` of the large tree runs; the figure is the
# longest single write (and the 99.9th percentile) in each case.  For
# reference, the same writer on the tmpfs during another save, and how long
# the snapshot itself held writers back (`sectorfs save` reports it).
#
# Results go to bench/results/image.md (or --out).  --quick: 1 GiB and
# 100,000 files.  Needs root (mount, drop_caches), python3, cc, tar,
# fusermount3; holds /run/sectorfs-bench.lock as bench/run.sh does, so the
# two never run at once.
set -euo pipefail

NAME=bench_image
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
QUICK=0
OUT=$BENCH_DIR/results/image.md
bench_args "quick out" "$@"

[ "$(id -u)" -eq 0 ] || die "needs root (mount, drop_caches)"
[ -x "$SECTORFS" ] || die "no sectorfs binary at $SECTORFS"
SECTORFS=$(readlink -f "$SECTORFS")
for t in python3 cc tar fusermount3 flock; do
	command -v "$t" >/dev/null || die "missing $t"
done
# Not while another benchmark runs: the figures would measure both.
while pgrep -f 'bench/(run|cache_policy)\.sh' >/dev/null; do
	log "another benchmark is running: waiting"
	sleep 60
done
take_bench_lock

W=$(mktemp -d /tmp/sfsbench-image.XXXXXX)     # mounts: a tmpfs and sectorfs
D=$(mktemp -d /var/tmp/sfsbench-image.XXXXXX) # the disk directory
MOUNTS=("$W/sfs" "$W/tmpfs")
cleanup() {
	set +e
	cd /
	local pid
	pid=$(daemon_of "$W/sfs")
	for m in "${MOUNTS[@]}"; do
		if grep -q " $m " /proc/self/mountinfo; then
			fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m"
		fi
	done
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	grep -q " $W/" /proc/self/mountinfo || rm -rf --one-file-system "$W"
	rm -rf "$D"
}
trap cleanup EXIT
# The daemon serving mount point $1, found by its command line.
daemon_of() { pgrep -f -- "sectorfs -o .* $1\$" | head -1; }

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
gibs() { awk -v bytes="$1" -v s="$2" 'BEGIN { printf "%.2f", bytes / 1073741824 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

TMP=$W/tmpfs
SFS=$W/sfs
mkdir -p "$TMP" "$SFS"
mount -t tmpfs -o size=12g tmpfs "$TMP"

mount_image() { # mount_image IMAGE: the time to load it and mount
	local t0 t1
	drop
	t0=$(now)
	"$SECTORFS" -o "image=$1,size=12g,nr_inodes=0" "$SFS"
	t1=$(now)
	secs "$t0" "$t1"
}

unmount_nosave() { # end the mount without its final save
	local pid
	pid=$(daemon_of "$SFS")
	kill -KILL "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	fusermount3 -u "$SFS" 2>/dev/null || umount -l "$SFS"
}

# ---- the writer ----
cat >"$W/writer.c" <<'EOF'
/* writer FILE SECONDS STOPFILE: 4 KiB pwrites, each timed; prints the
 * count, the longest and the 99.9th percentile in microseconds. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}
static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}
int main(int argc, char **argv)
{
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return perror(argv[1]), 1;
	double until = now() + atof(argv[2]);
	size_t cap = 1 << 22, n = 0;
	double *lat = malloc(cap * sizeof *lat);
	char buf[4096];
	memset(buf, 'w', sizeof buf);
	long long off = 0;
	while (now() < until && access(argv[3], F_OK) != 0 && n < cap) {
		double t0 = now();
		if (pwrite(fd, buf, sizeof buf, off) != sizeof buf)
			return perror("pwrite"), 1;
		lat[n++] = (now() - t0) * 1e6;
		off = (off + 4096) % (64 << 20);
	}
	qsort(lat, n, sizeof *lat, cmp);
	printf("%zu %.0f %.0f\n", n, n ? lat[n - 1] : 0, n ? lat[(size_t)(n * 0.999)] : 0);
	return 0;
}
EOF
cc -O2 -o "$W/writer" "$W/writer.c"

# ---- the trees ----
gen_large() { # 16 files (4 by --quick) of 256 MiB
	local n=16 i
	[ "$QUICK" -eq 1 ] && n=4
	mkdir -p "$1"
	for i in $(seq 1 "$n"); do
		head -c $((256 << 20)) /dev/urandom >"$1/big$i"
	done
}

gen_small() { # 1,000,000 files (100,000 by --quick) of 0-2 KiB in 1,000 dirs
	python3 - "$1" "$QUICK" <<'EOF'
import os, random, sys
root, quick = sys.argv[1], sys.argv[2] == "1"
n = 100000 if quick else 1000000
rnd = random.Random(1)
blob = rnd.randbytes(4096)
os.makedirs(root)
per = n // 1000
for d in range(1000):
    p = os.path.join(root, "d%03d" % d)
    os.mkdir(p)
    for f in range(per):
        size = rnd.randrange(0, 2049)
        start = rnd.randrange(0, 2048)
        with open(os.path.join(p, "f%04d" % f), "wb") as fh:
            fh.write(blob[start:start + size])
EOF
}

declare -A R=()

run_tree() { # run_tree NAME
	local name=$1 src=$TMP/$1 img=$D/$1.img tar=$D/$1.tar bytes files t0 t1 tl ts tc tx
	log "$name: generating the tree on tmpfs"
	"gen_$name" "$src"
	bytes=$(du -sb --apparent-size "$src" | cut -f1)
	files=$(find "$src" -type f | wc -l)
	log "$name: $files files, $((bytes >> 20)) MiB; sectorfs image create"
	t0=$(now)
	"$SECTORFS" image create "$img" "$src" >/dev/null
	t1=$(now)
	R[$name.create]=$(secs "$t0" "$t1")

	log "$name: load (mount with image=)"
	tl=$(mount_image "$img")
	log "$name: save"
	t0=$(now)
	"$SECTORFS" save "$SFS" >/dev/null
	t1=$(now)
	ts=$(secs "$t0" "$t1")
	if [ "$name" = large ]; then
		log "$name: writer alone, then during a save"
		R[pause.alone]=$("$W/writer" "$SFS/writer" 3 "$W/stop")
		rm -f "$W/stop"
		"$W/writer" "$SFS/writer" 600 "$W/stop" >"$W/pause.out" &
		local wp=$!
		sleep 0.5
		t0=$(now)
		"$SECTORFS" save "$SFS" >"$W/save.out"
		t1=$(now)
		R[pause.save]=$(secs "$t0" "$t1")
		R[pause.held]=$(sed -n 's/.*(writers held \([0-9.]*\) ms).*/\1/p' "$W/save.out")
		sleep 0.5
		touch "$W/stop"
		wait "$wp"
		R[pause.during]=$(cat "$W/pause.out")
		rm -f "$W/stop" "$SFS/writer"
		# The same writer on the tmpfs, during another save: what the
		# save's disk and CPU load cost any writer on this machine.
		log "$name: a writer on tmpfs during a save"
		"$W/writer" "$TMP/writer" 600 "$W/stop" >"$W/pause.out" &
		wp=$!
		sleep 0.5
		"$SECTORFS" save "$SFS" >/dev/null
		sleep 0.5
		touch "$W/stop"
		wait "$wp"
		R[pause.tmpfs]=$(cat "$W/pause.out")
		rm -f "$W/stop" "$TMP/writer"
	fi
	unmount_nosave
	R[$name.image]=$(stat -c %s "$img")
	rm -f "$img"

	log "$name: tar -c to disk (+ sync)"
	drop
	t0=$(now)
	tar -cf "$tar" -C "$src" .
	sync "$tar"
	t1=$(now)
	tc=$(secs "$t0" "$t1")
	rm -rf "$src"
	log "$name: tar -x from disk"
	drop
	mkdir "$src"
	t0=$(now)
	tar -xf "$tar" -C "$src"
	t1=$(now)
	tx=$(secs "$t0" "$t1")
	rm -rf "$src" "$tar"
	R[$name.bytes]=$bytes
	R[$name.files]=$files
	R[$name.load]=$tl
	R[$name.save]=$ts
	R[$name.tarc]=$tc
	R[$name.tarx]=$tx
	log "$name: load $tl s, save $ts s, tar -x $tx s, tar -c $tc s"
}

run_tree large
run_tree small

# ---- the table ----
row() { # row NAME LABEL
	local n=$1 b=${R[$1.bytes]}
	local ls ss tx tc
	ls=$(gibs "$b" "${R[$n.load]}") ss=$(gibs "$b" "${R[$n.save]}")
	tx=$(gibs "$b" "${R[$n.tarx]}") tc=$(gibs "$b" "${R[$n.tarc]}")
	printf '| %s | %s GiB/s (%s s) | %s GiB/s (%s s) | **%s** | %s GiB/s (%s s) | %s GiB/s (%s s) | **%s** |\n' \
		"$2" "$ls" "${R[$n.load]}" "$tx" "${R[$n.tarx]}" "$(ratio "$ls" "$tx")" \
		"$ss" "${R[$n.save]}" "$tc" "${R[$n.tarc]}" "$(ratio "$ss" "$tc")"
}
read -r an amax a999 <<<"${R[pause.alone]}"
read -r dn dmax d999 <<<"${R[pause.during]}"
read -r tn tmax t999 <<<"${R[pause.tmpfs]}"
mkdir -p "$(dirname "$OUT")"
{
	echo "# Image save and load, against tar"
	echo
	echo "Measured by \`bench/bench_image.sh$([ "$QUICK" -eq 1 ] && echo " --quick")\` on $(date -u +%Y-%m-%d),"
	echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) of RAM, kernel $(uname -r);"
	echo "the disk directory is on $(df -T "$D" | awk 'NR == 2 { print $2 " (" $1 ")" }')."
	echo "Load: page cache dropped, then mount with \`image=\` (returns once loaded and"
	echo "mounted) vs \`tar -x\` from the disk into a tmpfs. Save: \`sectorfs save\`"
	echo "(snapshot, write, fsync, rename, directory fsync) vs \`tar -c\` from a tmpfs"
	echo "to the disk, then \`sync\` of the tarball. Ratio: sectorfs / tar, above 1 is"
	echo "faster. GiB/s counts the trees' file data."
	echo
	echo "| tree | load | tar -x | ratio | save | tar -c + sync | ratio |"
	echo "|---|---|---|---|---|---|---|"
	row large "$(printf "%'d" "${R[large.files]}") files, $((R[large.bytes] >> 20)) MiB"
	row small "$(printf "%'d" "${R[small.files]}") files, $((R[small.bytes] >> 20)) MiB"
	echo
	echo "Images: $((R[large.image] >> 20)) MiB and $((R[small.image] >> 20)) MiB;"
	echo "\`sectorfs image create\` from the tmpfs took ${R[large.create]} s and ${R[small.create]} s."
	echo
	echo "## Writer pause"
	echo
	echo "A writer doing 4 KiB pwrites into the mounted large tree, each write timed:"
	echo
	echo "| | writes | longest write | 99.9th percentile |"
	echo "|---|---|---|---|"
	echo "| alone, 3 s | $an | $amax µs | $a999 µs |"
	echo "| during a save (${R[pause.save]} s) | $dn | $dmax µs | $d999 µs |"
	echo "| on tmpfs, during a save of the sectorfs mount | $tn | $tmax µs | $t999 µs |"
	echo
	echo "The save's snapshot held every writer back for ${R[pause.held]} ms (the freeze:"
	echo "metadata copied, data frozen copy-on-write; reported by 'sectorfs save'). The"
	echo "rest of the longest write is the load the save puts on the machine (its disk"
	echo "writes, its CPU), which a writer on tmpfs meets too."
} >"$OUT"
cat "$OUT"
