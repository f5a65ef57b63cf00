/* SPDX-License-Identifier: MIT */
/* smallfiles: the small-file workload of bench/run.sh (W5) and the
 * bytes-per-file figure of M1.
 *
 *   smallfiles DIR NFILES NDIRS SIZE PHASES
 *
 * DIR must not exist; it is created, with NDIRS subdirectories d000..,
 * and NFILES files f0000000.. spread over them in turn (file i goes into
 * directory i % NDIRS).  PHASES is a comma-separated list run in order:
 *
 *   create  open(O_CREAT|O_EXCL|O_WRONLY) + write SIZE bytes + close
 *   stat    stat() of each file
 *   restat  the same again: through FUSE the kernel can answer from the
 *           attributes the stat phase fetched, unless they changed since
 *   nxattr  getxattr() of a name no file has (user.sfsbench.none): one
 *           request to the filesystem with nothing behind it, so through
 *           FUSE the cost of a round trip to the daemon and little else
 *   read    open(O_RDONLY) + read (checks SIZE bytes) + close
 *   delete  unlink() of each file (then, untimed, the directories and DIR)
 *
 * Each phase is timed alone with CLOCK_MONOTONIC; making and removing the
 * directories is not timed.  Prints one JSON line per phase as it ends:
 *   {"phase": "create", "files": N, "seconds": s, "files_per_s": f}
 * Exits 1 with a message on stderr at the first failing call (the phases
 * already printed stand).
 *
 * Build: cc -O2 -o smallfiles bench/smallfiles.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static const char *root;
static long nfiles, ndirs, size;
static char *buf;

static void die(const char *what, const char *path)
{
	fprintf(stderr, "smallfiles: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void dir_path(char *p, size_t n, long d)
{
	snprintf(p, n, "%s/d%03ld", root, d);
}

static void file_path(char *p, size_t n, long i)
{
	snprintf(p, n, "%s/d%03ld/f%07ld", root, i % ndirs, i);
}

static void do_create(void)
{
	char p[4096];
	for (long i = 0; i < nfiles; i++) {
		file_path(p, sizeof p, i);
		int fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			die("open", p);
		if (size && write(fd, buf, (size_t)size) != (ssize_t)size)
			die("write", p);
		if (close(fd) != 0)
			die("close", p);
	}
}

static void do_stat(void)
{
	char p[4096];
	struct stat st;
	for (long i = 0; i < nfiles; i++) {
		file_path(p, sizeof p, i);
		if (stat(p, &st) != 0)
			die("stat", p);
		if (st.st_size != size) {
			errno = EIO;
			die("stat: wrong size of", p);
		}
	}
}

static void do_nxattr(void)
{
	char p[4096], v[64];
	for (long i = 0; i < nfiles; i++) {
		file_path(p, sizeof p, i);
		if (getxattr(p, "user.sfsbench.none", v, sizeof v) >= 0 || errno != ENODATA) {
			if (errno == 0)
				errno = EEXIST;
			die("getxattr of a missing name on", p);
		}
	}
}

static void do_read(void)
{
	char p[4096];
	for (long i = 0; i < nfiles; i++) {
		file_path(p, sizeof p, i);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			die("open", p);
		ssize_t n = read(fd, buf, (size_t)size + 1);
		if (n != (ssize_t)size) {
			if (n >= 0)
				errno = EIO;
			die("read", p);
		}
		close(fd);
	}
}

static void do_delete(void)
{
	char p[4096];
	for (long i = 0; i < nfiles; i++) {
		file_path(p, sizeof p, i);
		if (unlink(p) != 0)
			die("unlink", p);
	}
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: smallfiles DIR NFILES NDIRS SIZE create,stat,restat,nxattr,read,delete\n");
		return 2;
	}
	root = argv[1];
	nfiles = atol(argv[2]);
	ndirs = atol(argv[3]);
	size = atol(argv[4]);
	if (nfiles < 1 || ndirs < 1 || size < 0 || size > (1 << 24)) {
		fprintf(stderr, "smallfiles: bad NFILES, NDIRS or SIZE\n");
		return 2;
	}
	buf = malloc((size_t)size + 1);
	if (!buf)
		return 1;
	for (long i = 0; i < size; i++)
		buf[i] = (char)('a' + i % 26);

	if (mkdir(root, 0755) != 0)
		die("mkdir", root);
	char p[4096];
	for (long d = 0; d < ndirs; d++) {
		dir_path(p, sizeof p, d);
		if (mkdir(p, 0755) != 0)
			die("mkdir", p);
	}

	char *phases = strdup(argv[5]);
	for (char *ph = strtok(phases, ","); ph; ph = strtok(NULL, ",")) {
		void (*fn)(void) = !strcmp(ph, "create") ? do_create
		                   : !strcmp(ph, "stat") || !strcmp(ph, "restat") ? do_stat
		                   : !strcmp(ph, "nxattr") ? do_nxattr
		                   : !strcmp(ph, "read") ? do_read
		                   : !strcmp(ph, "delete") ? do_delete
		                                           : NULL;
		if (!fn) {
			fprintf(stderr, "smallfiles: unknown phase '%s'\n", ph);
			return 2;
		}
		double t0 = now();
		fn();
		double t = now() - t0;
		printf("{\"phase\": \"%s\", \"files\": %ld, \"seconds\": %.6f, \"files_per_s\": %.1f}\n",
		       ph, nfiles, t, (double)nfiles / t);
		fflush(stdout);
		if (fn == do_delete) {
			for (long d = 0; d < ndirs; d++) {
				dir_path(p, sizeof p, d);
				if (rmdir(p) != 0)
					die("rmdir", p);
			}
			if (rmdir(root) != 0)
				die("rmdir", root);
		}
	}
	free(phases);
	free(buf);
	return 0;
}
