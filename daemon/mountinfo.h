/* SPDX-License-Identifier: MIT */
/* mountinfo.h - the mounts this process sees (/proc/self/mountinfo). */
#ifndef SECTORFS_MOUNTINFO_H
#define SECTORFS_MOUNTINFO_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

struct mount_entry {
	char dev[64];         /* major:minor */
	char root[PATH_MAX];  /* the directory of the filesystem mounted there */
	char point[PATH_MAX]; /* where */
	char fstype[64];      /* e.g. fuse.sectorfs */
};

/* The mount on which the absolute, resolved `path` lies: the one whose
 * mount point is its longest prefix (the last mounted of equals), or, with
 * `exact`, the last one mounted right at `path`.  False if none (or
 * /proc/self/mountinfo cannot be read). */
bool mount_find(const char *path, bool exact, struct mount_entry *out);

#endif
