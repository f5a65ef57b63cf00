/* SPDX-License-Identifier: MIT */
/* umount_cmd.c - `sectorfs umount MOUNTPOINT`: unmount, and return only
 * once everything is saved and the daemon has ended (see umount_cmd.h).
 *
 * fusermount3 -u and umount(8) return as soon as the kernel lets the
 * mount go; the daemon saves its image after that, in the background, and
 * a save that fails then has nobody to tell.  This command does the work
 * in the order that loses nothing:
 *
 *   1. It asks the daemon (through xattrs of the mount's root, as `sectorfs
 *      stats` does) for its pid and image, and pins the process with a
 *      pidfd, so that the pid cannot be mistaken for a later process.
 *   2. With an image, it saves first, while the mount is still there, with
 *      progress on a terminal: if that save fails, nothing is unmounted,
 *      the files stay where they are, and the command says why (exit 1).
 *   3. It unmounts (umount2() as root, fusermount3 -u otherwise): a busy
 *      mount stays mounted, with a line that says so (exit 1).
 *   4. It waits for the daemon to end.  Its final save writes nothing
 *      unless something changed between 2 and 3, and it leaves its last
 *      word in the image's lock file (image_lock.c), which this command
 *      prints if it is anything but success.
 */
#include "umount_cmd.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image_cmd.h"
#include "image_lock.h"
#include "ops.h"
#include "say.h"

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

/* fusermount3 -u MP, as the ordinary user who mounted it: its status. */
static int run_fusermount(const char *mp)
{
	pid_t child = fork();
	if (child < 0)
		return -1;
	if (child == 0) {
		execlp("fusermount3", "fusermount3", "-u", "--", mp, (char *)NULL);
		fprintf(stderr, "sectorfs: cannot run fusermount3: %s\n", strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Wait for the daemon behind pidfd (or pid, where pidfds are missing). */
static void wait_for(int pidfd, pid_t pid)
{
	for (;;) {
		if (pidfd >= 0) {
			struct pollfd p = {.fd = pidfd, .events = POLLIN};
			int n = poll(&p, 1, -1);
			if (n > 0 || (n < 0 && errno != EINTR))
				return;
		} else {
			if (kill(pid, 0) != 0 && errno == ESRCH)
				return;
			usleep(20000);
		}
	}
}

int umount_command(const char *arg)
{
	char mp[PATH_MAX];
	if (!realpath(arg, mp)) {
		if (errno == ENOTCONN)
			return say_error("%s is a dead mount (its daemon is gone): clear it with "
			                 "fusermount3 -u %s",
			                 arg, arg);
		return say_error("%s: %s", arg, strerror(errno));
	}
	char who[PATH_MAX + 64];
	ssize_t n = getxattr(mp, DAEMON_XATTR, who, sizeof who - 1);
	if (n < 0) {
		if (errno == EOPNOTSUPP || errno == ENODATA || errno == ENOTSUP)
			return say_error("%s is not a sectorfs mount", mp);
		return say_error("%s: %s", mp, strerror(errno));
	}
	who[n] = '\0';
	int pid = 0, skip = 0;
	if (sscanf(who, "pid %d %n", &pid, &skip) < 1 || pid <= 0)
		return say_error("%s: the daemon's answer is not understood: %s", mp, who);
	char *image = NULL;
	if (skip > 0 && !strncmp(who + skip, "image ", 6)) {
		image = who + skip + 6;
		image[strcspn(image, "\n")] = '\0';
	}
	int pidfd = pidfd_of(pid);

	if (image) {
		char msg[1100];
		if (image_request_save(mp, msg, sizeof msg) != 0) {
			say_error("%s", msg);
			return say_error("%s is still mounted: nothing was unmounted", mp);
		}
		puts(msg);
		fflush(stdout);
	}
	if (geteuid() == 0) {
		if (umount2(mp, 0) != 0) {
			int e = errno;
			if (e == EBUSY)
				return say_error("%s is busy (a process has a file open or its working "
				                 "directory there): not unmounted",
				                 mp);
			return say_error("cannot unmount %s: %s", mp, strerror(e));
		}
	} else if (run_fusermount(mp) != 0) {
		return say_error("%s: fusermount3 -u failed: not unmounted", mp);
	}
	wait_for(pidfd, pid);
	if (pidfd >= 0)
		close(pidfd);
	if (!image)
		return 0;
	char end[600];
	bool ok = false;
	int rc = ilock_read_end(image, pid, end, sizeof end, &ok);
	if (rc < 0)
		return say_error("%s: unmounted, but the daemon's final result cannot be read: %s",
		                 mp, strerror(-rc));
	if (rc == 0)
		return say_error("%s: unmounted, but the daemon (pid %d) ended without a final "
		                 "result (killed?): %s may not hold the last changes",
		                 mp, pid, image);
	if (!ok)
		return say_error("%s", end);
	return 0;
}
