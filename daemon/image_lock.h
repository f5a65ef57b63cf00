/* SPDX-License-Identifier: MIT */
/* image_lock.h - one process at a time owns an image (prefix ilock_; see
 * image_lock.c). */
#ifndef SECTORFS_IMAGE_LOCK_H
#define SECTORFS_IMAGE_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Seconds a mount or `sectorfs image create` waits for another owner of
 * the image by default (image_wait= changes it for a mount). */
#define ILOCK_WAIT_DEFAULT 120

/* Take the image at `image` (an absolute path) for the rest of this
 * process's life: its lock file is .NAME.lock beside it.  If another
 * process owns it, wait up to wait_s seconds, saying once on stderr whom
 * we wait for.  `mountpoint` (NULL: none) is what waiters are told we
 * serve.  0, or -errno with one line in err (-EBUSY: still owned after
 * wait_s). */
int ilock_take(const char *image, unsigned wait_s, const char *mountpoint, char *err,
               size_t errlen);

/* What the owner is doing, for those who wait ("mounted", "saving", ...). */
void ilock_state(const char *state);

/* The owner's last word, just before it ends and the lock goes: how the
 * final save went.  `sectorfs umount` reads it (ilock_read_end). */
void ilock_end(bool ok, const char *line);

/* The last word process `pid` left for `image`: 1 with the line in buf and
 * *ok, 0 if it left none (killed?), or -errno. */
int ilock_read_end(const char *image, pid_t pid, char *buf, size_t size, bool *ok);

#endif
