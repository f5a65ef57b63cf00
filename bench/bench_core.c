/* SPDX-License-Identifier: MIT */
/* bench_core.c - the filesystem core against the kernel's tmpfs, same run.
 *
 *   sudo build/bench_core [--files N] [--quick]
 *
 * 1. create, stat, rename and unlink of N files (default 1,000,000) in
 *    1,000 directories: in-process through libsectorfs, and through
 *    syscalls on a tmpfs the benchmark mounts in a private namespace;
 *    files per second and the ratio.
 * 2. memory per 100-byte file (100,000 of them): the process's RSS for the
 *    library; Shmem + slab from /proc/meminfo for tmpfs; and how much of
 *    it comes back when they are deleted.
 * 3. one directory with N/2 entries: create, list, look up (directories
 *    must scale).
 * Needs root for the tmpfs side; without it, prints the library figures.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os.h"
#include "sectorfs.h"

static int nfiles = 1000000;
static const int ndirs = 1000;
static const struct sfs_cred cred = {.uid = 0, .gid = 0, .umask = 022};

static double now(void)
{
	return (double)os_monotonic_ns() / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* ---- the library ---- */

struct phases {
	double create, stat, rename, unlink; /* files per second */
};

static struct phases lib_run(void)
{
	struct sfs_fs *fs;
	struct sfs_config cfg = {0};
	if (sfs_fs_create(&cfg, &fs))
		die("sfs_fs_create");
	sfs_ino_t *dirs = malloc(sizeof(*dirs) * ndirs);
	char name[32], name2[32];
	for (int d = 0; d < ndirs; d++) {
		snprintf(name, sizeof name, "d%d", d);
		struct sfs_entry e;
		if (sfs_mkdir(fs, &cred, SFS_ROOT_INO, name, 0755, &e))
			die("mkdir");
		dirs[d] = e.ino;
	}
	struct phases p;
	double t0 = now();
	for (int i = 0; i < nfiles; i++) {
		snprintf(name, sizeof name, "f%d", i);
		if (sfs_mknod(fs, &cred, dirs[i % ndirs], name, S_IFREG | 0644, 0, NULL))
			die("mknod");
	}
	double t1 = now();
	for (int i = 0; i < nfiles; i++) {
		snprintf(name, sizeof name, "f%d", i);
		struct sfs_entry e;
		if (sfs_lookup(fs, &cred, dirs[i % ndirs], name, &e) || sfs_forget(fs, e.ino, 1))
			die("stat");
	}
	double t2 = now();
	for (int i = 0; i < nfiles; i++) {
		snprintf(name, sizeof name, "f%d", i);
		snprintf(name2, sizeof name2, "g%d", i);
		if (sfs_rename(fs, &cred, dirs[i % ndirs], name, dirs[(i + 1) % ndirs], name2, 0))
			die("rename");
	}
	double t3 = now();
	for (int i = 0; i < nfiles; i++) {
		snprintf(name2, sizeof name2, "g%d", i);
		if (sfs_unlink(fs, &cred, dirs[(i + 1) % ndirs], name2))
			die("unlink");
	}
	double t4 = now();
	p.create = nfiles / (t1 - t0);
	p.stat = nfiles / (t2 - t1);
	p.rename = nfiles / (t3 - t2);
	p.unlink = nfiles / (t4 - t3);
	free(dirs);
	sfs_fs_destroy(fs);
	return p;
}

/* ---- tmpfs, through syscalls ---- */

static char mnt[] = "/tmp/sfs-bench-XXXXXX";

static bool mount_tmpfs(void)
{
	if (geteuid() != 0)
		return false;
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return false;
	if (!mkdtemp(mnt) || mount("tmpfs", mnt, "tmpfs", 0, "size=50%,nr_inodes=0"))
		return false;
	return true;
}

static struct phases tmpfs_run(void)
{
	int *dfd = malloc(sizeof(int) * ndirs);
	char name[32], name2[32];
	int root = open(mnt, O_DIRECTORY | O_RDONLY);
	for (int d = 0; d < ndirs; d++) {
		snprintf(name, sizeof name, "d%d", d);
		if (mkdirat(root, name, 0755))
			die("mkdirat");
		dfd[d] = openat(root, name, O_DIRECTORY | O_RDONLY);
	}
	struct phases p;
	struct stat st;
	double t0 = now();
	for (int i = 0; i < nfiles; i++) {
		snprintf(name, sizeof name, "f%d", i);
		if (mknodat(dfd[i % ndirs], name, S_IFREG | 0644, 0))
			die("mknodat");
	}
	double t1 = now();
	for (int i = 0; i < nfiles; i++) {
		snprintf(name, sizeof name, "f%d", i);
		if (fstatat(dfd[i % ndirs], name, &st, AT_SYMLINK_NOFOLLOW))
			die("fstatat");
	}
	double t2 = now();
	for (int i = 0; i < nfiles; i++) {
		snprintf(name, sizeof name, "f%d", i);
		snprintf(name2, sizeof name2, "g%d", i);
		if (renameat(dfd[i % ndirs], name, dfd[(i + 1) % ndirs], name2))
			die("renameat");
	}
	double t3 = now();
	for (int i = 0; i < nfiles; i++) {
		snprintf(name2, sizeof name2, "g%d", i);
		if (unlinkat(dfd[(i + 1) % ndirs], name2, 0))
			die("unlinkat");
	}
	double t4 = now();
	p.create = nfiles / (t1 - t0);
	p.stat = nfiles / (t2 - t1);
	p.rename = nfiles / (t3 - t2);
	p.unlink = nfiles / (t4 - t3);
	for (int d = 0; d < ndirs; d++) {
		close(dfd[d]);
		snprintf(name, sizeof name, "d%d", d);
		unlinkat(root, name, AT_REMOVEDIR);
	}
	close(root);
	free(dfd);
	return p;
}

/* ---- memory of small files ---- */

static long meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10) * 1024;
	if (f)
		fclose(f);
	return v;
}

static void drop_caches(void)
{
	sync();
	FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
	if (f) {
		fputs("2\n", f); /* reclaim dentries and inodes left from earlier work */
		fclose(f);
	}
}

static void small_files(bool have_tmpfs)
{
	const int n = 100000, dirs = 100;
	char data[100], name[48];
	memset(data, 'x', sizeof data);
	struct sfs_fs *fs;
	struct sfs_config cfg = {0};
	if (sfs_fs_create(&cfg, &fs))
		die("sfs_fs_create");
	sfs_ino_t d[100];
	for (int i = 0; i < dirs; i++) {
		struct sfs_entry e;
		snprintf(name, sizeof name, "dir%02d", i);
		if (sfs_mkdir(fs, &cred, SFS_ROOT_INO, name, 0755, &e))
			die("mkdir");
		d[i] = e.ino;
	}
	uint64_t rss0 = os_rss();
	struct sfs_stats s0;
	sfs_get_stats(fs, &s0);
	for (int i = 0; i < n; i++) {
		struct sfs_file *fh;
		snprintf(name, sizeof name, "file-%06d.txt", i);
		if (sfs_create(fs, &cred, d[i % dirs], name, 0644, O_WRONLY, NULL, &fh) ||
		    sfs_write(fs, &cred, fh, data, sizeof data, 0) != sizeof data ||
		    sfs_release(fs, fh))
			die("create small");
	}
	uint64_t rss1 = os_rss();
	struct sfs_stats s1;
	sfs_get_stats(fs, &s1);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "file-%06d.txt", i);
		if (sfs_unlink(fs, &cred, d[i % dirs], name))
			die("unlink small");
	}
	uint64_t rss2 = os_rss();
	printf("2. memory per 100-byte file (%d files, names like file-000123.txt)\n", n);
	printf("   sectorfs: %.0f bytes of RSS per file (%.0f accounted: inode, entry, data, "
	       "index); after deleting them: %+.1f MiB RSS\n",
	       (double)(rss1 - rss0) / n, (double)(s1.reserved - s0.reserved) / n,
	       ((double)rss2 - (double)rss0) / 1048576.0);
	sfs_fs_destroy(fs);
	if (!have_tmpfs)
		return;
	char path[256];
	for (int i = 0; i < dirs; i++) {
		snprintf(path, sizeof path, "%s/dir%02d", mnt, i);
		mkdir(path, 0755);
	}
	drop_caches();
	long m0 = meminfo("Shmem") + meminfo("Slab");
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/dir%02d/file-%06d.txt", mnt, i % dirs, i);
		int fd = open(path, O_CREAT | O_WRONLY, 0644);
		if (fd < 0 || write(fd, data, sizeof data) != sizeof data)
			die("tmpfs small");
		close(fd);
	}
	long m1 = meminfo("Shmem") + meminfo("Slab");
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/dir%02d/file-%06d.txt", mnt, i % dirs, i);
		unlink(path);
	}
	drop_caches();
	long m2 = meminfo("Shmem") + meminfo("Slab");
	printf("   tmpfs:    %.0f bytes per file (Shmem + Slab); after deleting them: %+.1f MiB\n",
	       (double)(m1 - m0) / n, (double)(m2 - m0) / 1048576.0);
}

/* ---- one big directory ---- */

/* readdir in pieces of 4096 entries, as a FUSE buffer would take them. */
struct piece {
	long seen, taken;
	off_t next;
};

static int take_entry(void *ctx, const char *name, const struct stat *st, off_t next)
{
	struct piece *p = ctx;
	(void)name, (void)st;
	if (p->taken == 4096)
		return 1;
	p->taken++;
	p->seen++;
	p->next = next;
	return 0;
}

static void big_dir(void)
{
	const int n = nfiles / 2;
	struct sfs_fs *fs;
	struct sfs_config cfg = {0};
	if (sfs_fs_create(&cfg, &fs))
		die("sfs_fs_create");
	char name[32];
	double t0 = now();
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "entry%d", i);
		if (sfs_mknod(fs, &cred, SFS_ROOT_INO, name, S_IFREG | 0644, 0, NULL))
			die("mknod");
	}
	double t1 = now();
	struct sfs_file *dh;
	if (sfs_opendir(fs, &cred, SFS_ROOT_INO, &dh))
		die("opendir");
	struct piece p = {0};
	do {
		p.taken = 0;
		if (sfs_readdir(fs, dh, p.next, false, take_entry, &p))
			die("readdir");
	} while (p.taken == 4096);
	long seen = p.seen;
	sfs_releasedir(fs, dh);
	double t2 = now();
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof name, "entry%d", (int)((uint64_t)i * 2654435761u % (uint64_t)n));
		struct sfs_entry e;
		if (sfs_lookup(fs, &cred, SFS_ROOT_INO, name, &e) || sfs_forget(fs, e.ino, 1))
			die("lookup");
	}
	double t3 = now();
	printf("3. one directory of %d entries: create %.0f/s, list %.1f M entries/s (%ld), random "
	       "lookup %.0f/s\n",
	       n, n / (t1 - t0), (double)seen / (t2 - t1) / 1e6, seen, n / (t3 - t2));
	sfs_fs_destroy(fs);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--files") && i + 1 < argc)
			nfiles = atoi(argv[++i]);
		if (!strcmp(argv[i], "--quick"))
			nfiles = 100000;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	bool tmpfs = mount_tmpfs();
	printf("1. %d files in %d directories, files per second (tmpfs: %s)\n", nfiles, ndirs,
	       tmpfs ? "syscalls on a fresh mount" : "not run, needs root");
	struct phases l = lib_run();
	struct phases k = {1, 1, 1, 1};
	if (tmpfs)
		k = tmpfs_run();
	const char *names[] = {"create", "stat", "rename", "unlink"};
	double lv[] = {l.create, l.stat, l.rename, l.unlink}, kv[] = {k.create, k.stat, k.rename,
	                                                                k.unlink};
	for (int i = 0; i < 4; i++)
		if (tmpfs)
			printf("   %-7s sectorfs %9.0f   tmpfs %9.0f   ratio %.2f\n", names[i], lv[i], kv[i],
			       lv[i] / kv[i]);
		else
			printf("   %-7s sectorfs %9.0f\n", names[i], lv[i]);
	small_files(tmpfs);
	big_dir();
	if (tmpfs)
		umount(mnt);
	return 0;
}
