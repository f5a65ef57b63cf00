/* SPDX-License-Identifier: MIT */
/* snapshot.h - a consistent, point-in-time view of a whole filesystem, for
 * saving it (internal; see snapshot.c).
 *
 * snap_begin() fixes the moment; everything read through the snapshot is
 * the state at that moment, whatever writers do meanwhile, until
 * snap_end().  The view holds every inode that was linked into the tree
 * (unlinked files, even open ones, are not part of a saved image, as they
 * would not survive a reboot of tmpfs either).
 */
#ifndef SECTORFS_SNAPSHOT_H
#define SECTORFS_SNAPSHOT_H

#include <stdint.h>
#include <time.h>

#include "sectorfs.h"
#include "sectorfs/engine.h"

struct snap;

struct snap_inode {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t size;  /* regular files and symlinks */
	uint64_t rdev;  /* devices */
	struct timespec atime, mtime, ctime;
};

int snap_begin(struct sfs_fs *fs, struct snap **out);
/* sfs_fs_changes() at the snapshot's instant. */
uint64_t snap_changes(const struct snap *s);
/* How long snap_begin() held every change back, in nanoseconds. */
uint64_t snap_held_ns(const struct snap *s);
void snap_end(struct snap *s);

/* The inodes, in increasing inode number (the root first). */
size_t snap_count(const struct snap *s);
void snap_inode(const struct snap *s, size_t i, struct snap_inode *out);

/* A directory's entries in readdir order: fn(ctx, name, child inode). */
int snap_dir(struct snap *s, size_t i, int (*fn)(void *ctx, const char *name, uint64_t ino),
             void *ctx);
/* An inode's extended attributes (ACLs included): fn(ctx, name, value, len). */
int snap_xattrs(struct snap *s, size_t i,
                int (*fn)(void *ctx, const char *name, const void *value, size_t len),
                void *ctx);
/* A file's (or symlink's) data, holes skipped: fn(ctx, offset, bytes, len)
 * in pieces of at most 1 MiB. */
int snap_data(struct snap *s, size_t i,
              int (*fn)(void *ctx, uint64_t off, const void *buf, size_t len), void *ctx);
/* The sectors of a file's data that other files (or other places of it)
 * shared at the snapshot's instant, in increasing index, each with an
 * identity: equal identities, in this snapshot, mean the same bytes.
 * Returns how many; *sector_size gets the filesystem's. */
size_t snap_shares(const struct snap *s, size_t i, const struct sv_frozen_share **list,
                   uint64_t *sector_size);

#endif
