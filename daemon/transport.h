/* transport.h - our reads and writes on /dev/fuse (see transport.c). */
#ifndef SECTORFS_TRANSPORT_H
#define SECTORFS_TRANSPORT_H

#include <stdbool.h>

#include "ops.h"

/* Take over the session's I/O, after fuse_session_mount(), polling for
 * spin_us microseconds before sleeping (0: never; only with one /dev/fuse
 * clone per thread): 0 or -errno. */
int tr_install(struct fuse_session *se, unsigned spin_us);

/* True once the kernel has agreed that files opened with FOPEN_DIRECT_IO
 * may still be mapped (FUSE_DIRECT_IO_ALLOW_MMAP, as of Linux 6.9). */
bool tr_direct_io_mmap(void);

#endif
