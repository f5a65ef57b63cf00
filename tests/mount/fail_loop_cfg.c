/* SPDX-License-Identifier: MIT */
/* fail_loop_cfg.c - libfuse's fuse_loop_cfg_create() failing, as it does
 * when malloc fails: loaded with LD_PRELOAD into the daemon by
 * mount_badopts.sh, which checks that the mount is refused with one line
 * and nothing mounted.  (libfuse's allocations are out of reach of
 * sectorfs's own fault point.) */
#include <stddef.h>

struct fuse_loop_config;
__attribute__((visibility("default"))) struct fuse_loop_config *fuse_loop_cfg_create(void);

struct fuse_loop_config *fuse_loop_cfg_create(void)
{
	return NULL;
}
