/* SPDX-License-Identifier: MIT */
/* progress.h - how far a long load or save has come, on a terminal
 * (prefix progress_; see progress.c). */
#ifndef SECTORFS_PROGRESS_H
#define SECTORFS_PROGRESS_H

#include <stdbool.h>

#include "sectorfs.h"

/* Where the figures come from: fill *p, return false when none can be had. */
typedef bool (*progress_sample_fn)(void *ctx, struct sfs_image_progress *p);

struct progress;

/* If stderr is a terminal, show "sectorfs: WHAT: phase done of total (n%)"
 * on one line, updated four times a second from `sample`, until
 * progress_stop(), which erases it.  Otherwise (and if no thread can be
 * had) it shows nothing: returns NULL, which progress_stop() takes. */
struct progress *progress_start(const char *what, progress_sample_fn sample, void *ctx);
void progress_stop(struct progress *p);

/* Samplers: a filesystem in this process; a mount's daemon, through the
 * mount point (ctx: the path). */
bool progress_of_fs(void *fs, struct sfs_image_progress *p);
bool progress_of_mount(void *mountpoint, struct sfs_image_progress *p);

/* The name a mount's root answers with "PHASE DONE TOTAL" (ops.c). */
#define PROGRESS_XATTR "sectorfs.progress"

#endif
