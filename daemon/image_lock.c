/* SPDX-License-Identifier: MIT */
/* image_lock.c - one process at a time owns an image (see image_lock.h).
 *
 * Without it, an unmount that returns before the daemon's last save lets
 * the next mount load the old image, and the next unmount write the old
 * tree over the new one: data lost for good.  So a daemon with image=
 * (and `sectorfs image create`) owns the image for its whole life: it
 * holds flock(LOCK_EX) on a lock file beside it, .NAME.lock, taken before
 * the image is read and never given back by hand: the kernel drops it
 * when the process ends, after its last save is on disk, or when it is
 * killed.  A mount that finds the image owned waits for it, polling every
 * 50 ms, and after image_wait= seconds gives up with one line.
 *
 * flock() rather than fcntl() locks: flock belongs to the open file, which
 * fuse_daemonize()'s fork shares with the daemon, so the lock passes to
 * the process that serves the mount without a moment unlocked.  The
 * descriptor is close-on-exec, so no program the daemon runs (fusermount3
 * at unmount) keeps the lock.  The file is never removed: removing a lock
 * file races with the next process opening it.  A process that took the
 * lock checks that the file it locked is still the one at the path (not
 * removed and made again meanwhile), or tries again.
 *
 * The file also carries two lines of text, each in its own 512-byte slot,
 * so that neither overwrites the other: what the owner is doing, which a
 * waiter prints ("pid 812, serving /mnt/ram: saving"), and the owner's
 * last word, how its final save went, which `sectorfs umount` reads once
 * the daemon has ended.  Each line carries the pid that wrote it, so a
 * line from an earlier owner is never taken for this one's.
 */
#include "image_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SLOT 512             /* bytes per line: the owner's state, then its end */
#define POLL_NS 50000000L    /* how often a waiter tries again */

static int lock_fd = -1;
static char lock_mountpoint[PATH_MAX];

/* DIR/.NAME.lock for DIR/NAME. */
static int lock_path(const char *image, char *out, size_t size)
{
	const char *slash = strrchr(image, '/');
	if (!slash || !slash[1])
		return -EINVAL;
	int n = snprintf(out, size, "%.*s/.%s.lock", (int)(slash - image), image, slash + 1);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* One line, padded to its slot. */
static void put_line(int fd, off_t at, const char *text)
{
	char slot[SLOT];
	size_t n = strnlen(text, SLOT - 1);
	memcpy(slot, text, n);
	memset(slot + n, ' ', SLOT - 1 - n);
	slot[SLOT - 1] = '\n';
	ssize_t w = pwrite(fd, slot, SLOT, at);
	(void)w; /* a lock file we may not write (another user's) only says less */
}

/* The line at `at`, without its padding: its length. */
static size_t get_line(int fd, off_t at, char *buf, size_t size)
{
	ssize_t n = pread(fd, buf, size - 1, at);
	if (n <= 0)
		n = 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	size_t len = strlen(buf);
	while (len && buf[len - 1] == ' ')
		buf[--len] = '\0';
	return len;
}

static void sleep_ns(long ns)
{
	struct timespec t = {.tv_sec = 0, .tv_nsec = ns};
	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Who owns it, for a message: "pid 812, serving /mnt/ram: saving". */
static void describe_owner(int fd, char *out, size_t size)
{
	char line[SLOT];
	int pid = 0, skip = 0;
	get_line(fd, 0, line, sizeof line);
	if (sscanf(line, "owner %d %n", &pid, &skip) >= 1 && pid > 0 && skip > 0)
		snprintf(out, size, "pid %d, %s", pid, line + skip);
	else
		snprintf(out, size, "another process");
}

int ilock_take(const char *image, unsigned wait_s, const char *mountpoint, char *err,
               size_t errlen)
{
	char path[PATH_MAX + 16];
	int rc = lock_path(image, path, sizeof path);
	if (rc) {
		snprintf(err, errlen, "%s: cannot make its lock file's name: %s", image,
		         strerror(-rc));
		return rc;
	}
	snprintf(lock_mountpoint, sizeof lock_mountpoint, "%s", mountpoint ? mountpoint : "");
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool said = false;
	for (;;) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno == EACCES)
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot open its lock file %s: %s", image, path,
			         strerror(errno));
			return rc;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			/* Still the file at the path?  Else it was replaced
			 * while we waited: lock the new one. */
			struct stat a, b;
			if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
			    a.st_ino == b.st_ino) {
				lock_fd = fd;
				ilock_state("starting");
				return 0;
			}
			close(fd);
			continue;
		}
		if (errno != EWOULDBLOCK) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot lock %s: %s", image, path, strerror(errno));
			close(fd);
			return rc;
		}
		char owner[SLOT + 64];
		describe_owner(fd, owner, sizeof owner);
		close(fd);
		double waited = seconds_since(&t0);
		if (waited >= (double)wait_s) {
			snprintf(err, errlen,
			         "%s is in use by %s: gave up after %u s (image_wait= sets how "
			         "long to wait)",
			         image, owner, wait_s);
			return -EBUSY;
		}
		if (!said) {
			fprintf(stderr, "sectorfs: waiting up to %u s for %s, in use by %s\n", wait_s,
			        image, owner);
			said = true;
		}
		sleep_ns(POLL_NS);
	}
}

void ilock_state(const char *state)
{
	if (lock_fd < 0)
		return;
	char line[PATH_MAX + SLOT]; /* cut to its slot by put_line() */
	if (lock_mountpoint[0])
		snprintf(line, sizeof line, "owner %d serving %s: %s", (int)getpid(),
		         lock_mountpoint, state);
	else
		snprintf(line, sizeof line, "owner %d: %s", (int)getpid(), state);
	put_line(lock_fd, 0, line);
}

void ilock_end(bool ok, const char *text)
{
	if (lock_fd < 0)
		return;
	char line[2 * SLOT];
	snprintf(line, sizeof line, "end %d %s %s", (int)getpid(), ok ? "ok" : "failed", text);
	put_line(lock_fd, SLOT, line);
	ilock_state("ended");
}

int ilock_read_end(const char *image, pid_t pid, char *buf, size_t size, bool *ok)
{
	char path[PATH_MAX + 16];
	int rc = lock_path(image, path, sizeof path);
	if (rc)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	char line[SLOT];
	get_line(fd, SLOT, line, sizeof line);
	close(fd);
	int who = 0, skip = 0;
	char verdict[8];
	if (sscanf(line, "end %d %7s %n", &who, verdict, &skip) < 2 || who != (int)pid || !skip)
		return 0;
	*ok = !strcmp(verdict, "ok");
	snprintf(buf, size, "%s", line + skip);
	return 1;
}
