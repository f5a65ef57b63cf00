/* SPDX-License-Identifier: MIT */
/* ops.h - the daemon's state and its libfuse operations. */
#ifndef SECTORFS_OPS_H
#define SECTORFS_OPS_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>

#include "options.h"
#include "sectorfs.h"

/* The name `sectorfs stats` reads on the root to get the daemon's report. */
#define STATS_XATTR "sectorfs.stats"
/* The name that gives "pid PID\n" or "pid PID image PATH\n" (sectorfs umount). */
#define DAEMON_XATTR "sectorfs.daemon"

struct daemon {
	struct sfs_fs *fs;
	struct fuse_session *se; /* set once, before the first request */
	enum opt_cache cache;
	enum opt_direct direct_write;
	bool writeback;
	bool read_only;          /* -o ro: nothing changes the tree (clone_cmd.c) */
	bool single_thread;      /* max_threads=1 (clone_cmd.c) */
};

/* sfs_config.attrs_changed for a daemon: the kernel forgets the inode's
 * cached attributes. */
void daemon_attrs_changed(void *daemon, sfs_ino_t ino);

extern const struct fuse_lowlevel_ops sectorfs_ops;

/* The text of `sectorfs stats`: what the filesystem holds and costs. */
size_t daemon_report(struct daemon *d, char *buf, size_t size);

#endif
