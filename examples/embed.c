/* SPDX-License-Identifier: MIT */
/* embed.c - a private in-memory filesystem inside a C program.
 *
 * libsectorfs needs no kernel module, no mount and no privileges: link it
 * and call it.  This program makes a filesystem limited to 64 MiB, builds
 * a small tree with the path API (sfs_path_*, which resolves paths and
 * follows symlinks like the kernel), reads it back, lists, renames, links,
 * stats, shows the size limit at work, removes everything and checks that
 * nothing leaked.  It prints each step and exits 0 only if all of them
 * worked, so it doubles as a smoke test.
 *
 * Build against an installed copy with:
 *     cc embed.c $(pkg-config --cflags --libs sectorfs)
 *
 * Every call returns 0 (or a count) on success and a negative errno on
 * failure, as the kernel would for the same operation on tmpfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sectorfs.h>

/* Stop at the first failure, saying which call failed and why. */
#define TRY(call)                                                                   \
	do {                                                                        \
		long long rc_ = (long long)(call);                                  \
		if (rc_ < 0) {                                                      \
			fprintf(stderr, "embed: %s:%d: %s: %s\n", __FILE__, __LINE__, \
			        #call, strerror((int)-rc_));                        \
			exit(1);                                                    \
		}                                                                   \
	} while (0)

#define EXPECT(cond)                                                                \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "embed: %s:%d: expected %s\n", __FILE__,   \
			        __LINE__, #cond);                                   \
			exit(1);                                                    \
		}                                                                   \
	} while (0)

static const char *type_of(mode_t mode)
{
	return S_ISDIR(mode) ? "dir" : S_ISLNK(mode) ? "symlink" : S_ISREG(mode) ? "file" : "other";
}

/* sfs_path_list calls this for each entry; returning nonzero would stop. */
static int print_entry(void *ctx, const char *name, const struct stat *st)
{
	int *count = ctx;
	printf("    %-8s %6lld  %s\n", type_of(st->st_mode), (long long)st->st_size, name);
	++*count;
	return 0;
}

int main(void)
{
	/* ---- a filesystem of at most 64 MiB, owned by whoever runs this ---- */
	struct sfs_config cfg = {
		.size_limit = 64u << 20, /* data and metadata together */
		.root_mode = 0755,
		.root_uid = getuid(),
		.root_gid = getgid(),
	};
	struct sfs_fs *fs;
	TRY(sfs_fs_create(&cfg, &fs));
	printf("created a filesystem limited to 64 MiB\n");

	/* Who we are to the filesystem: it checks permissions for this
	 * identity and applies its umask, as the kernel would.  (A NULL cred
	 * means "trusted": no checks at all.) */
	struct sfs_cred me = {.uid = getuid(), .gid = getgid(), .umask = 022};

	/* ---- directories and files ---- */
	TRY(sfs_path_mkdir(fs, &me, "/projects/demo/src", 0777, true)); /* mkdir -p */
	printf("mkdir -p /projects/demo/src\n");

	const char *readme = "sectorfs: a filesystem in memory\n";
	const char *code = "int main(void) { return 0; }\n";
	TRY(sfs_path_write_file(fs, &me, "/projects/demo/README", readme, strlen(readme), 0666));
	TRY(sfs_path_write_file(fs, &me, "/projects/demo/src/main.c", code, strlen(code), 0666));
	printf("wrote /projects/demo/README and /projects/demo/src/main.c\n");

	char buf[256];
	ssize_t n = sfs_path_read_file(fs, &me, "/projects/demo/README", buf, sizeof buf - 1);
	TRY(n);
	buf[n] = '\0';
	printf("read /projects/demo/README (%zd bytes): %s", n, buf);
	EXPECT(strcmp(buf, readme) == 0);

	/* ---- listing ---- */
	int count = 0;
	printf("ls /projects/demo:\n");
	TRY(sfs_path_list(fs, &me, "/projects/demo", print_entry, &count));
	EXPECT(count == 2);

	/* ---- rename and symlink ---- */
	TRY(sfs_path_rename(fs, &me, "/projects/demo/README", "/projects/demo/README.txt", 0));
	printf("mv README README.txt\n");
	TRY(sfs_path_symlink(fs, &me, "projects/demo", "/latest"));
	printf("ln -s projects/demo /latest\n");
	n = sfs_path_read_file(fs, &me, "/latest/README.txt", buf, sizeof buf - 1);
	TRY(n);
	EXPECT((size_t)n == strlen(readme));
	printf("read /latest/README.txt through the link: %zd bytes\n", n);

	/* ---- stat: follow the link, or not ---- */
	struct stat st;
	TRY(sfs_path_stat(fs, &me, "/latest", &st, true));
	printf("stat /latest:  %s, mode %04o, %ld links\n", type_of(st.st_mode),
	       (unsigned)(st.st_mode & 07777), (long)st.st_nlink);
	EXPECT(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0755); /* 0777 & ~umask */
	TRY(sfs_path_stat(fs, &me, "/latest", &st, false));
	printf("lstat /latest: %s of %lld bytes\n", type_of(st.st_mode), (long long)st.st_size);
	EXPECT(S_ISLNK(st.st_mode));

	/* ---- the size limit at work: write until the filesystem is full ---- */
	struct sfs_file *fh;
	TRY(sfs_path_open(fs, &me, "/big", O_WRONLY | O_CREAT | O_TRUNC, 0644, &fh));
	size_t chunk = 1u << 20;
	char *data = malloc(chunk);
	EXPECT(data != NULL);
	memset(data, 'x', chunk);
	int mib = 0;
	ssize_t w;
	for (;;) {
		w = sfs_write(fs, &me, fh, data, chunk, (off_t)mib * (off_t)chunk);
		if (w != (ssize_t)chunk)
			break;
		mib++;
	}
	EXPECT(w == -ENOSPC && mib > 32 && mib <= 64);
	printf("wrote %d MiB to /big, then: %s\n", mib, strerror((int)-w));
	free(data);

	/* ---- how full it is ---- */
	struct statvfs vfs;
	TRY(sfs_statfs(fs, &vfs));
	unsigned long long bs = vfs.f_frsize;
	printf("statfs: %llu KiB total, %llu KiB used, %llu KiB free (block size %llu)\n",
	       (unsigned long long)vfs.f_blocks * bs / 1024,
	       (unsigned long long)(vfs.f_blocks - vfs.f_bfree) * bs / 1024,
	       (unsigned long long)vfs.f_bavail * bs / 1024, bs);
	struct sfs_stats stats;
	sfs_get_stats(fs, &stats);
	printf("stats: %llu inodes (%llu files, %llu dirs, %llu symlinks), %llu data bytes\n",
	       (unsigned long long)stats.inodes, (unsigned long long)stats.files,
	       (unsigned long long)stats.dirs, (unsigned long long)stats.symlinks,
	       (unsigned long long)stats.data_bytes);
	TRY(sfs_release(fs, fh));
	TRY(sfs_path_unlink(fs, &me, "/big"));

	/* ---- rm -r, and a link left dangling ---- */
	TRY(sfs_path_remove_all(fs, &me, "/projects"));
	printf("rm -r /projects\n");
	EXPECT(sfs_path_stat(fs, &me, "/latest", &st, true) == -ENOENT);
	printf("stat /latest now: %s (the link dangles)\n", strerror(ENOENT));
	TRY(sfs_path_unlink(fs, &me, "/latest"));

	/* ---- nothing left, nothing leaked ---- */
	sfs_get_stats(fs, &stats);
	EXPECT(stats.inodes == 1 && stats.data_bytes == 0); /* just the root */
	char msg[256] = "";
	int rc = sfs_check(fs, msg, sizeof msg);
	if (rc) {
		fprintf(stderr, "embed: sfs_check: %s\n", msg);
		return 1;
	}
	printf("check: consistent, %llu inode left (the root)\n",
	       (unsigned long long)stats.inodes);
	sfs_fs_destroy(fs);
	printf("destroyed; all done\n");
	return 0;
}
