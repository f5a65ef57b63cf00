/* SPDX-License-Identifier: MIT */
/* umount_cmd.h - `sectorfs umount MOUNTPOINT` (see umount_cmd.c). */
#ifndef SECTORFS_UMOUNT_CMD_H
#define SECTORFS_UMOUNT_CMD_H

/* Save (if the mount has an image), unmount, and wait until the daemon
 * has ended with everything on disk: the command's exit status. */
int umount_command(const char *mountpoint);

#endif
