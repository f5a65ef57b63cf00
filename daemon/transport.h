/* transport.h - our reads and writes on /dev/fuse (see transport.c). */
#ifndef SECTORFS_TRANSPORT_H
#define SECTORFS_TRANSPORT_H

#include "ops.h"

/* Take over the session's I/O, after fuse_session_mount(): 0 or -errno. */
int tr_install(struct fuse_session *se);

#endif
