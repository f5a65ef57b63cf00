/* SPDX-License-Identifier: MIT */
/* shutdown.h - what the kernel holds back is ours before the daemon stops
 * or saves (prefix sd_; see shutdown.c). */
#ifndef SECTORFS_SHUTDOWN_H
#define SECTORFS_SHUTDOWN_H

#include <sys/types.h>

#include "ops.h"

/* Write back to the daemon everything the kernel holds unwritten for the
 * filesystem mounted at `path` (dirty pages of the writeback cache and of
 * shared mappings): syncfs(2).  0 or -errno. */
int sd_sync(const char *path);

/* Once the mount is live and the daemon in the background: SIGTERM,
 * SIGINT and SIGHUP then end the session in order (sd_sync first, while
 * requests are still served, then the loop stops); a second signal stops
 * it at once.  `dev` is the mount's device number (st_dev), known without
 * touching the mount: nothing may ask it anything before the loop runs.
 * 0 or -errno (the loop then ends as libfuse would). */
int sd_start(struct fuse_session *se, const char *mountpoint, dev_t dev);

/* Right after the loop: nothing is asked of it any more, and libfuse's
 * signal handlers are back (for fuse_remove_signal_handlers()). */
void sd_loop_ended(void);

/* After fuse_session_destroy() (a flush cut short by a second signal
 * returns only then): the thread sd_start() started is gone. */
void sd_finish(void);

#endif
