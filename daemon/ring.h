/* SPDX-License-Identifier: MIT */
/* ring.h - FUSE over io_uring (prefix rg_; see ring.c). */
#ifndef SECTORFS_RING_H
#define SECTORFS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ops.h"

/* Whether this kernel would take io_uring for a new mount: 0, or -errno
 * with one line in why (what is missing, and the switch to flip). */
int rg_probe(char *why, size_t len);

/* While the INIT reply is being written: start the ring threads (about
 * `threads` in all, at least two for each possible CPU), each with its
 * ring and its entry's buffers (payload bytes), on the session's
 * /dev/fuse `fd`.  True if every one is ready: only then may the reply
 * carry FUSE_OVER_IO_URING. */
bool rg_prepare(struct fuse_session *se, int fd, size_t payload, unsigned threads);

/* After the INIT reply: `go` (it was written, with the flag) lets the
 * threads register their entries; otherwise they end. */
void rg_start(bool go);

/* From the session's writev: if this thread is answering a ring request
 * and iov is that answer, it goes into the ring entry (committed when the
 * request's handler returns) and true is returned, with *n the bytes. */
bool rg_take_reply(const struct iovec *iov, int count, ssize_t *n);

/* The request this thread answers (if a ring request) has made every
 * change it makes: only notices to the kernel, which may wait for other
 * requests, and its answer remain.  rg_stop() does not wait for it. */
void rg_changes_made(void);

/* Before a write's answer that must wait for the kernel to drop cached
 * pages (inval.c): -1 if this thread is not answering a ring request; 1
 * if it may wait (then rg_inval_end() after), because another thread of
 * its queue is left to answer the reads that hold those pages; 0 if every
 * other thread of its queue waits so already. */
int rg_inval_begin(void);
void rg_inval_end(void);

/* Requests the ring threads hold now, or -1 if one may be on its way to
 * a thread that has not counted it yet. */
int rg_held(void);

/* Requests the ring threads have taken, ever. */
unsigned long rg_taken(void);

/* After the session loop, before the final save: the threads take no
 * request any more, and rg_stop() returns once every request being
 * answered has made its changes (rg_changes_made()); one that takes more
 * than 30 s is never answered yes (it fails).  The threads stay until rg_free();
 * requests that come meanwhile wait, unanswered, for rg_refuse(). */
void rg_stop(void);

/* After the final save: the stopped threads answer ENOTCONN to every
 * request they hold or get from now on (none may wait for an answer any
 * more). */
void rg_refuse(void);

/* After the unmount, before the session and the tree are freed:
 * rg_refuse(), the threads end and everything is freed (closing the
 * rings ends the connection).  False if a thread was still in a request
 * 10 s later: it is left running, the others go on refusing, and the
 * session and the tree it uses must then stay until the process ends. */
bool rg_free(void);

/* One line for `sectorfs stats`: the live transport. */
size_t rg_describe(char *buf, size_t len);

#endif
