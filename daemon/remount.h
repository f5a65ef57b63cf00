/* SPDX-License-Identifier: MIT */
/* remount.h - changing a live mount: `mount -o remount`, `sectorfs -o
 * remount` and `sectorfs resize` (prefix remount_; see remount.c). */
#ifndef SECTORFS_REMOUNT_H
#define SECTORFS_REMOUNT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ops.h"

/* The name whose getxattr on the root asks the daemon for a change; the
 * request follows it: "size=BYTES", "nr_inodes=N", "rw", comma-separated.
 * The value is the answer, "ERRNO text". */
#define REMOUNT_XATTR "sectorfs.remount:"

/* A size in whole sectors, rounded up, as tmpfs's are whole pages (0, no
 * limit, stays 0). */
uint64_t remount_round(uint64_t size, size_t sector_size);

/* The least size= that a filesystem made with cfg can start with: what an
 * empty one counts against its limit, in whole sectors. */
uint64_t remount_min_size(const struct sfs_config *cfg);

/* sectorfs -o remount,... MOUNTPOINT (what mount -o remount runs, through
 * mount.fuse3) and sectorfs resize MOUNTPOINT size=N: the exit status.
 * argv is the command line, for the kernel's flags (ro, rw, nosuid, ...). */
int remount_command(const struct opts *o, int argc, char **argv);

/* In the daemon, for a caller of uid: carry out `args` (what follows
 * REMOUNT_XATTR) and write the answer line into out; returns its length. */
size_t remount_request(struct daemon *d, uid_t uid, const char *args, char *out, size_t size);

#endif
