/* SPDX-License-Identifier: MIT */
/* clone_cmd.h - `sectorfs clone SRC DST` and the request that carries it
 * to the daemon (see clone_cmd.c). */
#ifndef SECTORFS_CLONE_CMD_H
#define SECTORFS_CLONE_CMD_H

#include <linux/ioctl.h>
#include <stdint.h>

#include "ops.h"

/* The request: an ioctl on any file or directory of the mount (the
 * command uses SRC itself), with both paths as the filesystem names them
 * (from its root, whatever the mount point).  The reply fills in the
 * result (0 or -errno) and, on failure, one line. */
struct clone_ioc {
	uint32_t version;      /* CLONE_IOC_VERSION */
	int32_t result;
	char src[4096], dst[4096];
	char message[1024];
};
#define CLONE_IOC_VERSION 1
#define CLONE_IOC _IOWR(0xf5, 0x43, struct clone_ioc)

/* In the daemon: a CLONE_IOC request (ops.c); clone_finish() once the
 * session's loop has ended, before the session goes. */
void clone_request(fuse_req_t req, const void *in, size_t insize, size_t outsize);
void clone_finish(void);

/* sectorfs clone SRC DST: the exit status. */
int clone_command(const char *src, const char *dst);

#endif
