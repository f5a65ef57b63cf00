/* SPDX-License-Identifier: MIT */
/* protocol.h - requests newer than libfuse 3.14 (prefix pt_; see
 * protocol.c). */
#ifndef SECTORFS_PROTOCOL_H
#define SECTORFS_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "ops.h"

/* The filesystem whose birth times STATX answers with. */
void pt_install(struct sfs_fs *fs);

/* A whole request (fuse_in_header first) this thread is about to hand to
 * libfuse: one libfuse 3.14 cannot decode is rewritten in place as the
 * older request it can, and its answer is converted back by pt_reply(). */
void pt_request(void *msg, size_t len);

/* A reply this thread is about to send: true if it was converted, into
 * out[0] (one iovec over `room`, PT_ROOM bytes, 8-aligned). */
#define PT_ROOM 512
bool pt_reply(const struct iovec *iov, int count, struct iovec *out, void *room);

/* True while this thread answers a FUSE_TMPFILE, which libfuse sees as a
 * FUSE_CREATE (the name is then "/"). */
bool pt_tmpfile(void);

#endif
