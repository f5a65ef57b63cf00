/* SPDX-License-Identifier: MIT */
/* mountinfo.h - what is mounted where, from /proc/self/mountinfo (prefix
 * mi_; see mountinfo.c). */
#ifndef SECTORFS_MOUNTINFO_H
#define SECTORFS_MOUNTINFO_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

struct mi_mount {
	unsigned id, parent;  /* mount ids */
	char dev[32];         /* "major:minor" of the filesystem */
	char root[PATH_MAX];  /* the filesystem's directory mounted there ("/": all of it) */
	char point[PATH_MAX]; /* where it is mounted */
	char type[64];        /* "tmpfs", "fuse.sectorfs", ... */
	char mount_opts[256]; /* this mount's: "rw,nosuid,nodev,relatime" */
	char super_opts[512]; /* the filesystem's: "rw,user_id=0,..." */
};

/* The mount on top at `path` (absolute, symlinks resolved): where several
 * are stacked there, the one that no other is mounted on.  True with *m
 * filled in if anything is mounted at path. */
bool mi_top(const char *path, struct mi_mount *m);

/* The mount `path` (absolute, symlinks resolved) lies on: the top one at
 * the longest mount point that is a prefix of it.  False if none is found
 * (/proc/self/mountinfo unreadable). */
bool mi_under(const char *path, struct mi_mount *m);

/* Whether something is mounted strictly below `path` (absolute, symlinks
 * resolved); if so, one such mount point into found[size]. */
bool mi_below(const char *path, char *found, size_t size);

/* Whether the comma-separated option list has `name` as one of its
 * options (exactly: "ro" is not in "rootmode=..."). */
bool mi_has(const char *opts, const char *name);

#endif
