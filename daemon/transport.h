/* SPDX-License-Identifier: MIT */
/* transport.h - our reads and writes on /dev/fuse (see transport.c). */
#ifndef SECTORFS_TRANSPORT_H
#define SECTORFS_TRANSPORT_H

#include <stdbool.h>

#include "ops.h"

struct tr_config {
	unsigned spin_us;       /* poll this long before sleeping (0: never) */
	unsigned max_threads;   /* 1: the session loop is single-threaded */
	bool clone_fd;          /* a /dev/fuse clone per worker (polling needs it) */
	bool uring;             /* take FUSE over io_uring if the kernel offers it */
	const char *uring_note; /* why not, for `sectorfs stats` (copied) */
};

/* Take over the session's I/O, after fuse_session_mount(): 0 or -errno.
 * On /dev/fuse a worker polls for spin_us before it sleeps, only with one
 * /dev/fuse clone per thread (clone_fd) or a single thread.  With uring,
 * the INIT reply takes io_uring if the kernel offers it (ring.c), with
 * max_threads threads spread over the queues (at least two a queue). */
int tr_install(struct fuse_session *se, const struct tr_config *c);

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

/* After the loop, before the final save: tr_end(), and the io_uring
 * threads answer no more; on return, every request ever answered has
 * made its changes (rg_stop()), as the loop's joined workers have. */
void tr_stop(void);

/* After the final save: requests held back unanswered since tr_stop() are
 * answered ENOTCONN, so that nothing still waits for them (rg_refuse()). */
void tr_refuse(void);

/* After the unmount, before fuse_session_destroy(): the io_uring threads
 * end (rg_free()); false if one could not, and then the session and the
 * tree must stay until the process ends. */
bool tr_free(void);

/* One line for `sectorfs stats`: the live transport (and why /dev/fuse). */
size_t tr_describe(char *buf, size_t len);

#endif
