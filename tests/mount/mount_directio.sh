#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_directio.sh - no read returns data older than a completed write,
# whatever the mix of descriptors, on a fresh tmpfs and a fresh sectorfs
# side by side.  tests/stale_reads.c rewrites a file 50 times through one
# kind of descriptor (aio and plain O_DIRECT, a write-only one, aio through
# a write-only O_DIRECT one, a buffered one, a shared mapping) while other
# threads read it through the page cache and a mapping, and after each
# write counts the reads that still see older data, through the readers'
# descriptor, the mapping and a new open (on tmpfs: none).  Again with
# cache=open, direct_write=all and -o writeback for the writers that go
# past the page cache.
#
# usage: mount_directio.sh SECTORFS_BINARY_OR_BUILD_DIR STALE_READS_BINARY   (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=200
mt_init mount_directio "$@"
STALE=${2:-}
[ -n "$STALE" ] && [ -x "$STALE" ] ||
	die "no stale_reads helper at '$STALE' (the second argument; built from tests/stale_reads.c)"
STALE=$(readlink -f "$STALE")

mount_side_by_side size=64m,mode=1777 size=64m

WRITERS="aio-direct direct write-only write-only-aio buffered mapped"
sec_writers() {
	local w
	for w in $WRITERS; do r "$STALE" "$MNT/f" "$w" 50; done
}
section "reads after each completed write, through the cache, a mapping and a new open" sec_writers

WRITERS="aio-direct write-only write-only-aio"
for extra in cache=open direct_write=all writeback; do
	S2=$T/sfs-${extra//=/-}
	mount_sfs "$S2" "size=64m,$extra"
	section "$extra: the same for the writers past the page cache" sec_writers "$TM" "$S2"
	unmount_sfs "$S2"
done

unmount_sfs "$SM"
mt_pass
