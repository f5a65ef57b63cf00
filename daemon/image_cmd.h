/* SPDX-License-Identifier: MIT */
/* image_cmd.h - the daemon's disk images: -o image=, save_interval=,
 * `sectorfs save` and `sectorfs image create|check|info` (see image_cmd.c).
 */
#ifndef SECTORFS_IMAGE_CMD_H
#define SECTORFS_IMAGE_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sectorfs.h"

/* The name `sectorfs save` sets on the root to ask for a save (the reply
 * carries its errno); reading it gives the last save's one-line result. */
#define SAVE_XATTR "sectorfs.save"

/* ---- mounting with -o image= ---- */

/* Before anything is mounted: make `path` absolute (the daemon moves to /
 * when it goes to the background) and check that its directory is one we
 * can write, so that a save at unmount cannot be the first to find out.
 * Returns a malloc'd absolute path, or NULL with a message in err. */
char *image_resolve(const char *path, char *err, size_t errlen);

/* Own the image (image_lock.h: waiting up to wait_s seconds for another
 * owner), then load it into the new filesystem if the file exists (with
 * progress on a terminal): 0, or -errno with "PATH: problem" in err.  Also
 * removes temporary files a killed daemon left beside it.  The image stays
 * ours until the process ends. */
int image_mount_load(struct sfs_fs *fs, const char *path, const char *mountpoint,
                     unsigned wait_s, char *err, size_t errlen);

/* Once the mount is live and in the background: remember what to save and
 * where, and start the periodic saver if interval > 0.  `autosave` false
 * (a read-only mount) leaves saving to `sectorfs save`. */
void image_serve(struct sfs_fs *fs, const char *path, const char *mountpoint, unsigned interval,
                 bool autosave);

/* The session is over: stop the periodic saver and save a last time
 * (nothing is written if nothing changed).  0 or -errno (the failure is
 * logged). */
int image_finish(void);

/* After the unmount, the daemon's last act: if the final save failed, try
 * again every few seconds until it succeeds (only SIGKILL ends that); then
 * leave the final result where `sectorfs umount` reads it. */
void image_end(void);

/* The image= path, or NULL. */
const char *image_path(void);

/* ---- requests from ops.c ---- */

/* `sectorfs save` from uid: save now and wait.  0 or -errno. */
int image_save_request(uid_t uid);
/* The last save's result, one line, not NUL-terminated; returns its length. */
size_t image_last_result(char *buf, size_t size);

/* ---- commands ---- */

/* Ask the daemon of mountpoint to save now (with progress on a terminal)
 * and wait: 0 or -errno, with the daemon's result line in msg. */
int image_request_save(const char *mountpoint, char *msg, size_t size);
int image_save_command(const char *mountpoint);
/* sectorfs image create PATH [DIR] | check PATH | info PATH; create waits
 * up to wait_s seconds for another owner of PATH (-o image_wait=). */
int image_command(const char *what, const char *path, const char *dir, unsigned wait_s);

#endif
