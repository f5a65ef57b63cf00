#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_memory.sh - the daemon holds what its files need and gives it back:
# on a sectorfs with default options, writing a 1 GiB file raises the
# daemon's RSS to within 3% of 1 GiB + its baseline, and deleting it brings
# RSS back to within baseline + 32 MiB in 2 s.  The same write on a tmpfs
# beside it, for reference (its Shmem figure).
#
# usage: mount_memory.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=300
mt_init mount_memory "$@"

GiB=$((1 << 30))
avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
[ "$avail_kb" -gt $((3 * 1024 * 1024)) ] || die "needs 3 GiB of available memory, have $((avail_kb / 1024)) MiB"

rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
shmem() { awk '/^Shmem:/ { print $2 * 1024 }' /proc/meminfo; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# The data: 1 GiB of random bytes, made once (so that nothing can be
# stored as zeros), read from a pipe so it costs no page cache of its own.
gen() { "$PY" -c '
import os, sys, random
r = random.Random(1)
chunk = r.randbytes(1 << 20)
out = sys.stdout.buffer
for i in range(1024):
    out.write(bytes([i & 255, i >> 8]) + chunk[2:])
'; }

TM=$T/tmpfs
mount_tmpfs "$TM" size=2g
s0=$(shmem)
gen | dd of="$TM/big" bs=1M count=1024 iflag=fullblock conv=fsync status=none
s1=$(shmem)
rm "$TM/big"
s2=$(shmem)
say "tmpfs (reference): Shmem $(mib "$s0") -> $(mib "$s1") after 1 GiB -> $(mib "$s2") after rm"
force_unmount "$TM"

SM=$T/sfs
mount_sfs "$SM" ""
pid=$(sfs_pid "$SM")
echo warm >"$SM/warm" && rm "$SM/warm"
sleep 0.2
base=$(rss "$pid")
# Is the daemon's RSS ($now) back within 32 MiB of its baseline?
rss_back() {
	now=$(rss "$pid")
	[ "$now" -le $((base + (32 << 20))) ]
}
say "sectorfs daemon $pid: baseline RSS $(mib "$base")"

printf 'write 1 GiB (dd bs=1M count=1024 conv=fsync) ... '
gen | dd of="$SM/big" bs=1M count=1024 iflag=fullblock conv=fsync status=none ||
	die "dd of 1 GiB into sectorfs failed"
[ "$(stat -c %s "$SM/big")" = $GiB ] || die "big file has size $(stat -c %s "$SM/big")"
sleep 0.2
full=$(rss "$pid")
want=$((GiB + base))
delta=$((full - want))
say "RSS $(mib "$full"), expected $(mib "$want") +- 3% ($(mib $((want * 3 / 100)))): off by $(mib "$delta")"
[ ${delta#-} -le $((want * 3 / 100)) ] ||
	die "RSS with a 1 GiB file is $(mib "$full"); want within 3% of $(mib "$want")"
# The default mount faults memory in ahead of large writes: its thread
# runs, and its 2 MiB at most are inside the 3% above.
grep -qx sfs-prefault /proc/"$pid"/task/*/comm ||
	die "no sfs-prefault thread in the daemon after a 1 GiB write"

printf 'the data reads back ... '
drop_caches
a=$(sha256sum <"$SM/big" | cut -c1-64)
b=$(gen | sha256sum | cut -c1-64)
[ "$a" = "$b" ] || die "1 GiB file reads back with sha256 $a, want $b"
say "ok"
after_read=$(rss "$pid")

printf 'delete it: RSS back within baseline + 32 MiB in 2 s ... '
rm "$SM/big"
poll 2 rss_back || true
say "RSS $(mib "$now") (baseline $(mib "$base"), after the read $(mib "$after_read"))"
[ "$now" -le $((base + (32 << 20))) ] ||
	die "RSS 2 s after deleting the 1 GiB file is $(mib "$now"); want at most $(mib $((base + (32 << 20))))"

printf 'and again (no creeping growth) ... '
gen | dd of="$SM/big" bs=1M count=1024 iflag=fullblock conv=fsync status=none
full2=$(rss "$pid")
rm "$SM/big"
poll 2 rss_back || true
say "RSS $(mib "$full2") with the file, $(mib "$now") after rm"
d2=$((full2 - want))
[ ${d2#-} -le $((want * 3 / 100)) ] || die "second 1 GiB write: RSS $(mib "$full2"), want within 3% of $(mib "$want")"
[ "$now" -le $((base + (32 << 20))) ] || die "second delete: RSS $(mib "$now") after 2 s"

unmount_sfs "$SM"
mt_pass
