/* SPDX-License-Identifier: MIT */
/* inval.h - answering writes that went past the page cache (prefix inv_). */
#ifndef SECTORFS_INVAL_H
#define SECTORFS_INVAL_H

#include "ops.h"

/* Answer the write `req` (n bytes written at off into ino) once the kernel
 * has dropped its cached pages of that range.  A /dev/fuse worker returns
 * at once (a thread of inval.c answers); a ring thread may wait for the
 * kernel itself (see inval.c). */
void inv_reply_write(struct fuse_session *se, fuse_req_t req, fuse_ino_t ino, off_t off,
                     size_t n);

/* Answer whatever is still waiting and end the thread (the session ends). */
void inv_stop(void);

#endif
