/* SPDX-License-Identifier: MIT */
/* inval.h - answering writes that went past the page cache (prefix inv_). */
#ifndef SECTORFS_INVAL_H
#define SECTORFS_INVAL_H

#include "ops.h"

/* Answer the write `req` (n bytes written at off into ino) once the kernel
 * has dropped its cached pages of that range; the caller returns at once. */
void inv_reply_write(struct fuse_session *se, fuse_req_t req, fuse_ino_t ino, off_t off,
                     size_t n);

/* Answer whatever is still waiting and end the thread (the session ends). */
void inv_stop(void);

#endif
