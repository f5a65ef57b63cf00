/* SPDX-License-Identifier: MIT */
/* stale_reads.c - reads older than a completed write (a helper of
 * tests/mount/mount_directio.sh).
 *
 *   stale_reads FILE WRITER ROUNDS
 *
 * Makes FILE (256 KiB), then rewrites all of it ROUNDS times, each time
 * with the round's number in every word, through one kind of descriptor
 * (WRITER), while two threads read it through the page cache with pread()
 * and one through a shared mapping.  After each write has completed it
 * reads the file back three ways: pread() on a descriptor the readers
 * share, the mapping, and a descriptor opened afresh; each must hold the
 * round's data.  Prints how many rounds each way saw older data (on tmpfs,
 * with one copy of the data, none ever does).
 *
 * WRITER: aio-direct (io_submit on an O_DIRECT descriptor, read-write),
 * direct (pwrite on an O_DIRECT descriptor), write-only (pwrite on an
 * O_WRONLY descriptor: past the page cache under sectorfs's
 * direct_write=auto), write-only-aio (io_submit on an O_WRONLY|O_DIRECT
 * one), buffered (pwrite on an O_RDWR descriptor, through the cache),
 * mapped (stores into a shared writable mapping, then msync).
 * Exit status: 0 when it ran (whatever it counted), 2 on a usage or
 * system error.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SIZE (256 * 1024)

static const char *path;
static int shared_fd = -1;
static const volatile uint32_t *shared_map;
static atomic_bool stop;

static void *pread_reader(void *arg)
{
	(void)arg;
	char *buf = malloc(SIZE);
	while (buf && !atomic_load(&stop))
		if (pread(shared_fd, buf, SIZE, 0) < 0)
			break;
	free(buf);
	return NULL;
}

static void *map_reader(void *arg)
{
	(void)arg;
	uint32_t sum = 0;
	while (!atomic_load(&stop))
		for (size_t i = 0; i < SIZE / 4; i += 1024)
			sum += shared_map[i];
	return (void *)(uintptr_t)sum;
}

static int fail(const char *what)
{
	fprintf(stderr, "stale_reads: %s: %s\n", what, strerror(errno));
	return 2;
}

/* Whether buf holds round r in every word. */
static bool holds(const volatile uint32_t *buf, uint32_t r)
{
	for (size_t i = 0; i < SIZE / 4; i++)
		if (buf[i] != r)
			return false;
	return true;
}

static int aio_write(aio_context_t ctx, int fd, const void *buf)
{
	struct iocb cb = {.aio_lio_opcode = IOCB_CMD_PWRITE, .aio_fildes = (uint32_t)fd,
	                  .aio_buf = (uint64_t)(uintptr_t)buf, .aio_nbytes = SIZE};
	struct iocb *list[1] = {&cb};
	if (syscall(SYS_io_submit, ctx, 1, list) != 1)
		return -1;
	struct io_event ev;
	if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) != 1)
		return -1;
	if (ev.res != SIZE) {
		errno = ev.res < 0 ? (int)-ev.res : EIO;
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: stale_reads FILE aio-direct|direct|write-only|write-only-aio|"
		                "buffered|mapped ROUNDS\n");
		return 2;
	}
	path = argv[1];
	const char *kind = argv[2];
	int rounds = atoi(argv[3]);
	bool aio = !strcmp(kind, "aio-direct") || !strcmp(kind, "write-only-aio");
	int flags = !strcmp(kind, "aio-direct") || !strcmp(kind, "direct") ? O_RDWR | O_DIRECT
	            : !strcmp(kind, "write-only")                           ? O_WRONLY
	            : !strcmp(kind, "write-only-aio")                       ? O_WRONLY | O_DIRECT
	            : !strcmp(kind, "buffered") || !strcmp(kind, "mapped")  ? O_RDWR
	                                                                    : -1;
	if (flags < 0 || rounds <= 0) {
		fprintf(stderr, "stale_reads: bad writer '%s' or rounds '%s'\n", kind, argv[3]);
		return 2;
	}
	uint32_t *data;
	if (posix_memalign((void **)&data, 4096, SIZE))
		return fail("memory");
	memset(data, 0, SIZE);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0 || pwrite(fd, data, SIZE, 0) != SIZE || close(fd))
		return fail(path);
	int wfd = open(path, flags);
	shared_fd = open(path, O_RDONLY);
	if (wfd < 0 || shared_fd < 0)
		return fail("open");
	void *m = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, shared_fd, 0);
	uint32_t *wmap = !strcmp(kind, "mapped")
	                         ? mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, wfd, 0)
	                         : NULL;
	if (m == MAP_FAILED || wmap == MAP_FAILED)
		return fail("mmap");
	shared_map = m;
	aio_context_t ctx = 0;
	if (aio && syscall(SYS_io_setup, 4, &ctx))
		return fail("io_setup");
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		if (pthread_create(&t[i], NULL, i < 2 ? pread_reader : map_reader, NULL))
			return fail("pthread_create");
	int stale_pread = 0, stale_map = 0, stale_open = 0, rc = 0;
	uint32_t *back;
	if (posix_memalign((void **)&back, 4096, SIZE))
		return fail("memory");
	for (int r = 1; r <= rounds && rc == 0; r++) {
		for (size_t i = 0; i < SIZE / 4; i++)
			data[i] = (uint32_t)r;
		if (aio)
			rc = aio_write(ctx, wfd, data);
		else if (wmap)
			rc = (memcpy(wmap, data, SIZE), msync(wmap, SIZE, MS_SYNC));
		else
			rc = pwrite(wfd, data, SIZE, 0) == SIZE ? 0 : -1;
		if (rc) {
			rc = fail("write");
			break;
		}
		if (pread(shared_fd, back, SIZE, 0) != SIZE)
			return fail("pread");
		stale_pread += !holds(back, (uint32_t)r);
		stale_map += !holds(shared_map, (uint32_t)r);
		int nfd = open(path, O_RDONLY);
		if (nfd < 0 || pread(nfd, back, SIZE, 0) != SIZE || close(nfd))
			return fail("new open");
		stale_open += !holds(back, (uint32_t)r);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	if (rc)
		return rc;
	printf("%s: %d rounds, stale reads after a completed write: pread %d, mapping %d, "
	       "new open %d\n",
	       kind, rounds, stale_pread, stale_map, stale_open);
	return 0;
}
