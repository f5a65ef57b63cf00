/* transport.h - our reads and writes on /dev/fuse (see transport.c). */
#ifndef SECTORFS_TRANSPORT_H
#define SECTORFS_TRANSPORT_H

#include "ops.h"

/* Take over the session's I/O, after fuse_session_mount(), polling for
 * spin_us microseconds before sleeping (0: never; only with one /dev/fuse
 * clone per thread): 0 or -errno. */
int tr_install(struct fuse_session *se, unsigned spin_us);

#endif
