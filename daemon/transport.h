/* SPDX-License-Identifier: MIT */
/* transport.h - our reads and writes on /dev/fuse (see transport.c). */
#ifndef SECTORFS_TRANSPORT_H
#define SECTORFS_TRANSPORT_H

#include <stdbool.h>

#include "ops.h"

/* Take over the session's I/O, after fuse_session_mount(), polling for
 * spin_us microseconds before sleeping (0: never; only with one /dev/fuse
 * clone per thread): 0 or -errno. */
int tr_install(struct fuse_session *se, unsigned spin_us, bool one_thread);

/* True once the kernel has agreed that files opened with FOPEN_DIRECT_IO
 * may still be mapped (FUSE_DIRECT_IO_ALLOW_MMAP, as of Linux 6.9). */
bool tr_direct_io_mmap(void);

/* Wait for at most timeout_ms until the kernel has no request for the
 * daemon left and no worker holds one besides `mine` (requests the caller
 * is answering itself: 0 or 1): true once there.  syncfs() only starts the
 * writeback of a FUSE mount's dirty pages, so whoever needs them in the
 * daemon's memory (a save, the end of the session) calls this after it.
 * False at once where only the caller could answer. */
bool tr_wait_quiet(int mine, unsigned timeout_ms);

/* The session loop is over: tr_wait_quiet() returns false at once. */
void tr_end(void);

#endif
