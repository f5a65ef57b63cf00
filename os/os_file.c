/* SPDX-License-Identifier: MIT */
/* os_file.c - files on disk, for the core's images (see os.h).
 *
 * Thin wrappers over the system calls an image save or load makes.  Each
 * returns what it got or a negative errno (never -1 and errno, so a caller
 * cannot read an errno some later call overwrote), retries EINTR itself,
 * and first passes the I/O fault point (fault_point.h), where a test can
 * make it fail with an errno of its choice, or -- for a read or a write --
 * move a single byte of those asked for, as the kernel may on any call.  An
 * injected failure does nothing (the file is not written, the rename not
 * made), except that a close still closes: a descriptor is gone after
 * close(2) whatever it returns.
 *
 * Trade-off: one fault point per call the caller sees, not per system
 * call: os_fsync_dir() opens, syncs and closes a directory, and is one
 * point ("fsync_dir"), because to its caller it is one step that works or
 * does not.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fault_point.h"

#define FAIL_IF_INJECTED(call)                                                         \
	do {                                                                           \
		int f_ = os_io_fault((call), 0);                                       \
		if (f_ > 0)                                                            \
			return -f_;                                                    \
	} while (0)

int os_open(const char *path, int flags)
{
	FAIL_IF_INJECTED("open");
	int fd;
	do
		fd = open(path, flags | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

int os_open_temp(char *tmpl)
{
	FAIL_IF_INJECTED("mkostemp");
	int fd = mkostemp(tmpl, O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int os_close(int fd)
{
	int f = os_io_fault("close", 0);
	/* Closed whatever happens: retrying could close another thread's
	 * new descriptor of the same number. */
	int rc = close(fd) == 0 || errno == EINTR ? 0 : -errno;
	return f > 0 ? -f : rc;
}

int os_stat(const char *path, struct stat *st)
{
	FAIL_IF_INJECTED("stat");
	return stat(path, st) == 0 ? 0 : -errno;
}

int os_fstat(int fd, struct stat *st)
{
	FAIL_IF_INJECTED("fstat");
	return fstat(fd, st) == 0 ? 0 : -errno;
}

ssize_t os_pread(int fd, void *buf, size_t len, uint64_t off)
{
	int f = os_io_fault("pread", len);
	if (f > 0)
		return -f;
	if (f == OS_IO_SHORT)
		len = 1;
	ssize_t got;
	do
		got = pread(fd, buf, len, (off_t)off);
	while (got < 0 && errno == EINTR);
	return got < 0 ? -errno : got;
}

ssize_t os_pwritev(int fd, const struct iovec *iov, int n, uint64_t off)
{
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	int f = os_io_fault("pwritev", total);
	if (f > 0)
		return -f;
	struct iovec one;
	if (f == OS_IO_SHORT) {
		/* One byte, the harshest a kernel that stops early may do. */
		while (iov->iov_len == 0)
			iov++;
		one = (struct iovec){.iov_base = iov->iov_base, .iov_len = 1};
		iov = &one;
		n = 1;
	}
	ssize_t got;
	do
		got = pwritev(fd, iov, n, (off_t)off);
	while (got < 0 && errno == EINTR);
	return got < 0 ? -errno : got;
}

int os_writeback(int fd, uint64_t off, uint64_t len)
{
	FAIL_IF_INJECTED("sync_file_range");
	return sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : -errno;
}

int os_read_ahead(int fd)
{
	FAIL_IF_INJECTED("fadvise");
	return -posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
}

int os_fsync(int fd)
{
	FAIL_IF_INJECTED("fsync");
	int rc;
	do
		rc = fsync(fd);
	while (rc != 0 && errno == EINTR);
	return rc == 0 ? 0 : -errno;
}

int os_fsync_dir(const char *path)
{
	FAIL_IF_INJECTED("fsync_dir");
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc;
	do
		rc = fsync(fd);
	while (rc != 0 && errno == EINTR);
	rc = rc == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

int os_fchown(int fd, uid_t uid, gid_t gid)
{
	FAIL_IF_INJECTED("fchown");
	return fchown(fd, uid, gid) == 0 ? 0 : -errno;
}

int os_fchmod(int fd, mode_t mode)
{
	FAIL_IF_INJECTED("fchmod");
	return fchmod(fd, mode) == 0 ? 0 : -errno;
}

int os_rename(const char *from, const char *to)
{
	FAIL_IF_INJECTED("rename");
	return rename(from, to) == 0 ? 0 : -errno;
}

int os_unlink(const char *path)
{
	FAIL_IF_INJECTED("unlink");
	return unlink(path) == 0 ? 0 : -errno;
}

int os_random(void *buf, size_t len, bool wait)
{
	int f = os_io_fault("getrandom", len);
	if (f > 0)
		return -f;
	if (f == OS_IO_SHORT)
		return -EAGAIN; /* what a short fill means to the caller */
	ssize_t got;
	do
		got = getrandom(buf, len, wait ? 0 : GRND_NONBLOCK);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	return (size_t)got == len ? 0 : -EAGAIN;
}

bool os_privileged(void)
{
	return geteuid() == 0;
}
