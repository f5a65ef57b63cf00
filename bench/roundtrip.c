/* SPDX-License-Identifier: MIT */
/* roundtrip: the caller's side of bench/roundtrip.sh -- one kind of call,
 * many times, on one file, timed.
 *
 *   roundtrip getxattr FILE N   getxattr() of a name FILE does not have:
 *                               through FUSE one request with nothing
 *                               behind it (R0 of bench/run.sh)
 *   roundtrip write FILE N      pwrite() of 1 MiB, N times over the first
 *                               64 MiB of FILE (created; overwritten after
 *                               the first 64 calls): through FUSE without
 *                               the writeback cache, 1 MiB requests
 *
 * Prints the mean time of a call in microseconds ("12.34") on stdout; on
 * a failing call, its errno on stderr and exit status 1 (a getxattr that
 * fails with ENODATA is the call working).
 *
 * Build: cc -O2 -o roundtrip bench/roundtrip.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (1L << 20)
#define SPAN 64

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	long n = argc == 4 ? atol(argv[3]) : 0;
	if (n < 1 || (strcmp(argv[1], "getxattr") && strcmp(argv[1], "write"))) {
		fprintf(stderr, "usage: roundtrip getxattr|write FILE N\n");
		return 2;
	}
	const char *path = argv[2];
	double t0, t1;
	if (!strcmp(argv[1], "getxattr")) {
		char value[64];
		t0 = now();
		for (long i = 0; i < n; i++) {
			if (getxattr(path, "user.roundtrip.none", value, sizeof value) >= 0 ||
			    errno != ENODATA) {
				fprintf(stderr, "roundtrip: getxattr %s: %s\n", path,
				        strerror(errno ? errno : EEXIST));
				return 1;
			}
		}
		t1 = now();
	} else {
		char *buf = malloc(BLOCK);
		int fd = open(path, O_WRONLY | O_CREAT, 0644);
		if (!buf || fd < 0) {
			fprintf(stderr, "roundtrip: %s: %s\n", path, strerror(errno));
			return 1;
		}
		memset(buf, 'r', BLOCK);
		t0 = now();
		for (long i = 0; i < n; i++) {
			if (pwrite(fd, buf, BLOCK, (i % SPAN) * BLOCK) != BLOCK) {
				fprintf(stderr, "roundtrip: write %s: %s\n", path, strerror(errno));
				return 1;
			}
		}
		t1 = now();
		if (close(fd) != 0) {
			fprintf(stderr, "roundtrip: close %s: %s\n", path, strerror(errno));
			return 1;
		}
		free(buf);
	}
	printf("%.2f\n", (t1 - t0) / (double)n * 1e6);
	return 0;
}
