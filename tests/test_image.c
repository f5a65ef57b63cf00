/* SPDX-License-Identifier: MIT */
/* test_image.c - disk images: round trips, bad input, limits, faults, writers.
 *
 * Round trip: a tree with every kind of object and attribute (sparse files
 * with data past 4 GiB, fallocated and punched regions, hard links of files
 * and fifos, symlinks up to 4095 bytes, sockets, devices, a whiteout,
 * xattrs of every namespace up to 64 KiB, access and default ACLs, odd
 * modes with suid/sgid/sticky, owners up to 2^32-2, timestamps with
 * nanoseconds before 1970 and in year 9999) is saved, loaded into a fresh
 * filesystem and compared: every stat field, readdir order, xattrs, the
 * data/hole map and contents, and the link structure (the same inode must
 * be shared by the same names).  The loaded tree saved again gives the
 * same bytes.
 *
 * Bad input: images written by an independent writer in this file (its
 * own CRC, bitwise) with one thing wrong each, every truncation and a bit
 * flipped at every byte of a real image: each is refused, with the exact
 * message where it has one, and a refused load leaves the filesystem
 * empty and consistent.  Then the limits (size=, nr_inodes=, ENOSPC in the
 * middle of a build), allocation failures at every point of a load and a
 * save, I/O failures (ENOSPC, EIO, short reads and writes) at every file
 * call of a load and a save, and a save taken while threads append to
 * files, whose image must be a consistent cut.
 *
 * Sharing (format 1.1): a tree whose files share sectors (copies made with
 * copy_file_range, a clone of a directory, a shared sector at a file's
 * unaligned end) saves its shared data once, loads back with the same
 * sectors shared, and saves again to the same bytes; crafted share records
 * that name a later inode, a non-file, bytes beyond either file, that
 * overlap, or that come without the header's flag are refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "check.h"
#include "image.h"
#include "sectorfs.h"
#include "sectorfs/fault.h"

static const struct sfs_cred kern = {.uid = 0, .gid = 0, .flags = SFS_CRED_TRUSTED};
static char dir[256];      /* a private temporary directory */
static struct rng rng;

/* ThreadSanitizer makes single-threaded code 5-15 times slower and finds
 * nothing in it.  Under it the steps that run one thread do less, by count
 * (the steps with threads run in full; the plain and ASan builds run
 * everything): the walks over fault points, truncations and flipped bits
 * take every STRIDE-th, the random trees fewer rounds, and the large round
 * trip is left out; the writers' step saves 6 times, not 12, with at most
 * WRITES_MAX records per writer.  The suite then stays far inside its time limit on a
 * busy machine. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif
#define STRIDE (UNDER_TSAN ? 5 : 1) /* (messages say "every 5th") */

#define CHECK_STR(a, b)                                                                \
	do {                                                                           \
		const char *a_ = (a), *b_ = (b);                                       \
		if (strcmp(a_, b_)) {                                                  \
			fprintf(stderr, "%s:%d: got      \"%s\"\n%s:%d: expected \"%s\"\n", \
			        __FILE__, __LINE__, a_, __FILE__, __LINE__, b_);       \
			abort();                                                       \
		}                                                                      \
	} while (0)

static char *path_in(const char *name)
{
	static char p[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
	return p[k];
}

static enum sfs_atime atime_mode = SFS_ATIME_RELATIME;
static bool compare_blocks = true; /* st_blocks too (not after random changes) */

static struct sfs_fs *new_fs(uint64_t limit, uint64_t inodes)
{
	struct sfs_config cfg = {.size_limit = limit, .max_inodes = inodes, .atime = atime_mode};
	struct sfs_fs *fs;
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
	return fs;
}

static void consistent(struct sfs_fs *fs)
{
	CHECK_CLEAN(sfs_check, fs);
}

static void check_empty(struct sfs_fs *fs)
{
	consistent(fs);
	struct sfs_stats st;
	sfs_get_stats(fs, &st);
	CHECK_EQ(st.inodes, 1);
}

/* ---- files on disk ---- */

static void write_file(const char *path, const void *data, size_t len)
{
	/* A new file each time: ext4 flushes a file truncated and rewritten
	 * at its close (auto_da_alloc), which would make this test crawl. */
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	struct stat st;
	CHECK_EQ(fstat(fd, &st), 0);
	uint8_t *p = malloc((size_t)st.st_size + 1);
	CHECK(p);
	CHECK_EQ(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

/* No temporary file of a save is left in the directory. */
static void no_leftovers(void)
{
	DIR *d = opendir(dir);
	CHECK(d);
	struct dirent *de;
	while ((de = readdir(d)))
		CHECK(!strstr(de->d_name, ".tmp."));
	closedir(d);
}

/* ---- building a tree ---- */

static sfs_ino_t mk(struct sfs_fs *fs, sfs_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct sfs_entry e;
	int rc = S_ISDIR(mode) ? sfs_mkdir(fs, &kern, parent, name, mode & 07777, &e)
	                       : sfs_mknod(fs, &kern, parent, name, mode, rdev, &e);
	CHECK_EQ(rc, 0);
	CHECK_EQ(sfs_forget(fs, e.ino, 1), 0);
	return e.ino;
}

static sfs_ino_t mkfile(struct sfs_fs *fs, sfs_ino_t parent, const char *name, const void *data,
                        size_t len, off_t off)
{
	struct sfs_entry e;
	struct sfs_file *fh;
	CHECK_EQ(sfs_create(fs, &kern, parent, name, 0644, O_RDWR | O_CREAT | O_EXCL, &e, &fh), 0);
	if (len)
		CHECK_EQ(sfs_write(fs, &kern, fh, data, len, off), (ssize_t)len);
	CHECK_EQ(sfs_release(fs, fh), 0);
	CHECK_EQ(sfs_forget(fs, e.ino, 1), 0);
	return e.ino;
}

static sfs_ino_t mksym(struct sfs_fs *fs, sfs_ino_t parent, const char *name, const char *target)
{
	struct sfs_entry e;
	CHECK_EQ(sfs_symlink(fs, &kern, parent, name, target, &e), 0);
	CHECK_EQ(sfs_forget(fs, e.ino, 1), 0);
	return e.ino;
}

static void own(struct sfs_fs *fs, sfs_ino_t ino, uid_t uid, gid_t gid)
{
	struct stat st = {.st_uid = uid, .st_gid = gid};
	CHECK_EQ(sfs_setattr(fs, &kern, ino, &st, SFS_SET_UID | SFS_SET_GID, NULL, NULL), 0);
}

static void chmod_(struct sfs_fs *fs, sfs_ino_t ino, mode_t mode)
{
	struct stat st = {.st_mode = mode};
	CHECK_EQ(sfs_setattr(fs, &kern, ino, &st, SFS_SET_MODE, NULL, NULL), 0);
}

static void xset(struct sfs_fs *fs, sfs_ino_t ino, const char *name, const void *v, size_t n)
{
	CHECK_EQ(sfs_setxattr(fs, &kern, ino, name, v, n, 0), 0);
}

/* An ACL in the kernel's xattr format: entries of {tag, perm, id}. */
static size_t acl(uint8_t *out, const unsigned (*e)[3], size_t n)
{
	out[0] = 2, out[1] = out[2] = out[3] = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = out + 4 + 8 * i;
		p[0] = (uint8_t)e[i][0], p[1] = (uint8_t)(e[i][0] >> 8);
		p[2] = (uint8_t)e[i][1], p[3] = 0;
		for (int k = 0; k < 4; k++)
			p[4 + k] = (uint8_t)(e[i][2] >> (8 * k));
	}
	return 4 + 8 * n;
}

static const unsigned acl_dir[][3] = {{1, 7, 0}, {2, 5, 1000}, {4, 5, 0}, {8, 7, 2000},
                                      {0x10, 7, 0}, {0x20, 1, 0}};
static const unsigned acl_def[][3] = {{1, 7, 0}, {2, 6, 1001}, {4, 5, 0}, {0x10, 7, 0},
                                      {0x20, 0, 0}};
static const unsigned acl_file[][3] = {{1, 6, 0}, {2, 4, 4242}, {4, 4, 0}, {0x10, 4, 0},
                                       {0x20, 4, 0}};

static uint8_t big[3 << 20];

struct inolist {
	sfs_ino_t v[8192];
	int n;
};

static int collect(void *ctx, const char *name, const struct stat *st, off_t next)
{
	(void)next;
	struct inolist *l = ctx;
	if (strcmp(name, ".") && strcmp(name, "..") && l->n < 8192)
		l->v[l->n++] = st->st_ino;
	return 0;
}

/* Every inode of the tree, once. */
static int all_inodes(struct sfs_fs *fs, sfs_ino_t *out, int max)
{
	int n = 0, head = 0;
	out[n++] = SFS_ROOT_INO;
	while (head < n) {
		sfs_ino_t d = out[head++];
		struct stat st;
		CHECK_EQ(sfs_getattr(fs, d, &st), 0);
		if (!S_ISDIR(st.st_mode))
			continue;
		static struct inolist l;
		l.n = 0;
		struct sfs_file *dh;
		CHECK_EQ(sfs_opendir(fs, &kern, d, &dh), 0);
		CHECK_EQ(sfs_readdir(fs, dh, 0, false, collect, &l), 0);
		CHECK_EQ(sfs_releasedir(fs, dh), 0);
		for (int i = 0; i < l.n; i++) {
			bool seen = false;
			for (int k = 0; k < n && !seen; k++)
				seen = out[k] == l.v[i];
			if (!seen) {
				CHECK(n < max);
				out[n++] = l.v[i];
			}
		}
	}
	return n;
}

/* Every kind of object and attribute.  Returns the number of inodes. */
static int build_tree(struct sfs_fs *fs, bool large)
{
	sfs_ino_t r = SFS_ROOT_INO;
	uint8_t a[4096];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)rng_next(&rng);

	/* directories with odd modes, owners and ACLs */
	sfs_ino_t d = mk(fs, r, "d", S_IFDIR | 0755, 0);
	own(fs, d, 1000, 2000);
	xset(fs, d, "system.posix_acl_access", a, acl(a, acl_dir, 6));
	xset(fs, d, "system.posix_acl_default", a, acl(a, acl_def, 5));
	xset(fs, d, "user.dir", "on a directory", 14);
	chmod_(fs, d, 02775);
	sfs_ino_t sticky = mk(fs, r, "sticky", S_IFDIR | 0777, 0);
	chmod_(fs, sticky, 01777);
	sfs_ino_t odd = mk(fs, r, "odd", S_IFDIR | 0, 0);
	chmod_(fs, odd, 07000);
	own(fs, odd, 4294967294u, 65534);
	sfs_ino_t inherit = mk(fs, d, "inherits", S_IFDIR | 0750, 0); /* got d's default ACL */
	mkfile(fs, inherit, "also", "x", 1, 0);

	/* a deep chain */
	sfs_ino_t p = r;
	for (int i = 0; i < 60; i++)
		p = mk(fs, p, i == 0 ? "deep" : "x", S_IFDIR | 0700, 0);
	mkfile(fs, p, "bottom", "deep down", 9, 0);

	/* regular files */
	sfs_ino_t f = mk(fs, r, "files", S_IFDIR | 0755, 0);
	mkfile(fs, f, "empty", NULL, 0, 0);
	mkfile(fs, f, "small", big, 100, 0);
	mkfile(fs, f, "sector", big, 4096, 0);
	mkfile(fs, f, "multi", big, large ? sizeof big : 300000, 0);
	sfs_ino_t sparse = mkfile(fs, f, "sparse", big, 5000, 0);
	{
		struct sfs_file *fh;
		CHECK_EQ(sfs_open(fs, &kern, sparse, O_RDWR, &fh), 0);
		CHECK_EQ(sfs_write(fs, &kern, fh, big + 7, 70000, (5ll << 30) + 12345), 70000);
		CHECK_EQ(sfs_write(fs, &kern, fh, big + 9, 10, (4ll << 30) - 5), 10);
		struct stat st = {.st_size = (6ll << 30) + 1};
		CHECK_EQ(sfs_setattr(fs, &kern, sparse, &st, SFS_SET_SIZE, fh, NULL), 0);
		CHECK_EQ(sfs_release(fs, fh), 0);
	}
	sfs_ino_t falloc = mkfile(fs, f, "falloc", big, 1000, 100000);
	{
		struct sfs_file *fh;
		CHECK_EQ(sfs_open(fs, &kern, falloc, O_RDWR, &fh), 0);
		CHECK_EQ(sfs_fallocate(fs, &kern, fh, 0, 0, 1 << 20), 0);
		CHECK_EQ(sfs_fallocate(fs, &kern, fh, 0, 3 << 20, 8192), 0);
		CHECK_EQ(sfs_release(fs, fh), 0);
	}
	sfs_ino_t punched = mkfile(fs, f, "punched", big, 1 << 20, 0);
	{
		struct sfs_file *fh;
		CHECK_EQ(sfs_open(fs, &kern, punched, O_RDWR, &fh), 0);
		CHECK_EQ(sfs_fallocate(fs, &kern, fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		                       256 << 10, 256 << 10), 0);
		CHECK_EQ(sfs_release(fs, fh), 0);
	}
	sfs_ino_t suid = mkfile(fs, f, "suid", "#!", 2, 0);
	own(fs, suid, 1000, 1000);
	chmod_(fs, suid, 04755);
	sfs_ino_t sgid = mkfile(fs, f, "sgid", "#!", 2, 0);
	own(fs, sgid, 0, 2000);
	chmod_(fs, sgid, 02755);
	sfs_ino_t both = mkfile(fs, f, "suid-sgid-sticky", "", 0, 0);
	chmod_(fs, both, 07777);
	chmod_(fs, mkfile(fs, f, "nothing", "x", 1, 0), 0);
	chmod_(fs, mkfile(fs, f, "sticky", "x", 1, 0), 01644);
	sfs_ino_t aclf = mkfile(fs, f, "acl", "acl", 3, 0);
	xset(fs, aclf, "system.posix_acl_access", a, acl(a, acl_file, 5));

	/* hard links: a file with three names, a fifo with two */
	sfs_ino_t l = mk(fs, r, "links", S_IFDIR | 0755, 0);
	sfs_ino_t multi = mkfile(fs, l, "a", "linked", 6, 0);
	CHECK_EQ(sfs_link(fs, &kern, multi, l, "b", NULL), 0);
	CHECK_EQ(sfs_link(fs, &kern, multi, d, "c", NULL), 0);
	xset(fs, multi, "user.linked", "1", 1);
	sfs_ino_t fifo2 = mk(fs, l, "fifo", S_IFIFO | 0640, 0);
	CHECK_EQ(sfs_link(fs, &kern, fifo2, r, "fifo-too", NULL), 0);

	/* special files */
	sfs_ino_t s = mk(fs, r, "special", S_IFDIR | 0755, 0);
	mk(fs, s, "fifo", S_IFIFO | 0600, 0);
	mk(fs, s, "socket", S_IFSOCK | 0777, 0);
	own(fs, mk(fs, s, "null", S_IFCHR | 0666, makedev(1, 3)), 0, 5);
	mk(fs, s, "sda1", S_IFBLK | 0660, makedev(8, 1));
	mk(fs, s, "bigdev", S_IFBLK | 0600, makedev(4095, 1048575));
	mk(fs, s, "whiteout", S_IFCHR | 0, makedev(0, 0));

	/* symlinks */
	sfs_ino_t y = mk(fs, r, "sym", S_IFDIR | 0755, 0);
	mksym(fs, y, "short", "a");
	mksym(fs, y, "dangling", "/nonexistent/target");
	char longt[SFS_SYMLINK_MAX + 1];
	for (int i = 0; i < SFS_SYMLINK_MAX; i++)
		longt[i] = i % 10 == 9 ? '/' : (char)('a' + i % 26);
	longt[SFS_SYMLINK_MAX] = '\0';
	sfs_ino_t ls = mksym(fs, y, "long", longt);
	own(fs, ls, 1000, 1000);
	xset(fs, ls, "trusted.on-a-symlink", "t", 1);

	/* xattrs of every namespace, the largest value */
	sfs_ino_t x = mkfile(fs, r, "xattrs", "data", 4, 0);
	own(fs, x, 1000, 1000);
	xset(fs, x, "user.small", "v", 1);
	xset(fs, x, "user.empty", "", 0);
	xset(fs, x, "user.big", big, SFS_XATTR_SIZE_MAX);
	xset(fs, x, "trusted.t", big + 1, 3000);
	xset(fs, x, "security.selinux", "system_u:object_r:tmp_t:s0", 27);
	uint8_t cap[20] = {0, 0, 0, 2, 0x20, 0, 0, 0}; /* v2, CAP_SYS_ADMIN permitted */
	xset(fs, x, "security.capability", cap, sizeof cap);
	chmod_(fs, x, 0750);

	/* a directory of many names, some odd */
	sfs_ino_t m = mk(fs, r, "many", S_IFDIR | 0755, 0);
	for (int i = 0; i < (large ? 2000 : 300); i++) {
		char name[SFS_NAME_MAX + 1];
		if (i == 0) {
			memset(name, 'n', SFS_NAME_MAX);
			name[SFS_NAME_MAX] = '\0';
		} else if (i == 1) {
			strcpy(name, "new\nline \xff\x01 end");
		} else {
			snprintf(name, sizeof name, "f%d", i);
		}
		mkfile(fs, m, name, big + i, (size_t)(i % 50), 0);
	}

	/* the root's own attributes */
	own(fs, r, 1000, 100);
	xset(fs, r, "user.root", "root attr", 9);
	chmod_(fs, r, 0751);

	/* an unlinked file still open: not part of an image */
	struct sfs_entry e;
	struct sfs_file *gone;
	CHECK_EQ(sfs_create(fs, &kern, r, "gone", 0600, O_RDWR | O_CREAT, &e, &gone), 0);
	CHECK_EQ(sfs_write(fs, &kern, gone, "x", 1, 0), 1);
	CHECK_EQ(sfs_unlink(fs, &kern, r, "gone"), 0);
	CHECK_EQ(sfs_release(fs, gone), 0);
	CHECK_EQ(sfs_forget(fs, e.ino, 1), 0);

	/* times last, with nanoseconds, before 1970 and far ahead */
	static sfs_ino_t inos[8192];
	int n = all_inodes(fs, inos, 8192);
	static const int64_t secs[] = {0, 1, -1234567890, 1700000000, 253402300799ll, -1};
	for (int i = 0; i < n; i++) {
		struct stat st;
		st.st_atim.tv_sec = (time_t)secs[rng_below(&rng, 6)];
		st.st_mtim.tv_sec = (time_t)(1600000000 + rng_below(&rng, 100000000));
		st.st_ctim.tv_sec = (time_t)secs[rng_below(&rng, 6)];
		st.st_atim.tv_nsec = (long)rng_below(&rng, 1000000000);
		st.st_mtim.tv_nsec = i % 3 ? (long)rng_below(&rng, 1000000000) : 999999999;
		st.st_ctim.tv_nsec = (long)rng_below(&rng, 1000000000);
		CHECK_EQ(sfs_setattr(fs, &kern, inos[i], &st,
		                     SFS_SET_ATIME | SFS_SET_MTIME | SFS_SET_CTIME, NULL, NULL), 0);
	}
	return n;
}

/* ---- comparing two trees ---- */

struct pairs {
	sfs_ino_t *ab, *ba;
	size_t cap;
};

static void pair(struct pairs *p, sfs_ino_t a, sfs_ino_t b, bool *first)
{
	size_t need = (a > b ? a : b) + 1;
	if (need > p->cap) {
		size_t cap = need * 2;
		p->ab = realloc(p->ab, cap * sizeof *p->ab);
		p->ba = realloc(p->ba, cap * sizeof *p->ba);
		CHECK(p->ab && p->ba);
		memset(p->ab + p->cap, 0, (cap - p->cap) * sizeof *p->ab);
		memset(p->ba + p->cap, 0, (cap - p->cap) * sizeof *p->ba);
		p->cap = cap;
	}
	/* The same inode behind the same names, and no other. */
	CHECK(p->ab[a] == 0 || p->ab[a] == b);
	CHECK(p->ba[b] == 0 || p->ba[b] == a);
	*first = p->ab[a] == 0;
	p->ab[a] = b;
	p->ba[b] = a;
}

struct names {
	char (*v)[SFS_NAME_MAX + 1];
	int n, cap;
};

static int add_name(void *ctx, const char *name, const struct stat *st, off_t next)
{
	(void)st, (void)next;
	struct names *l = ctx;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
		CHECK(l->v);
	}
	snprintf(l->v[l->n++], SFS_NAME_MAX + 1, "%s", name);
	return 0;
}

static void list_dir(struct sfs_fs *fs, sfs_ino_t ino, struct names *l)
{
	struct sfs_file *dh;
	CHECK_EQ(sfs_opendir(fs, &kern, ino, &dh), 0);
	CHECK_EQ(sfs_readdir(fs, dh, 0, false, add_name, l), 0);
	CHECK_EQ(sfs_releasedir(fs, dh), 0);
}

static void same_xattrs(struct sfs_fs *fa, sfs_ino_t a, struct sfs_fs *fb, sfs_ino_t b)
{
	static char la[SFS_XATTR_LIST_MAX], lb[SFS_XATTR_LIST_MAX];
	static char va[SFS_XATTR_SIZE_MAX], vb[SFS_XATTR_SIZE_MAX];
	ssize_t na = sfs_listxattr(fa, &kern, a, la, sizeof la);
	ssize_t nb = sfs_listxattr(fb, &kern, b, lb, sizeof lb);
	CHECK_EQ(na, nb);
	CHECK(na >= 0 && !memcmp(la, lb, (size_t)na));
	for (ssize_t o = 0; o < na; o += (ssize_t)strlen(la + o) + 1) {
		ssize_t x = sfs_getxattr(fa, &kern, a, la + o, va, sizeof va);
		ssize_t y = sfs_getxattr(fb, &kern, b, la + o, vb, sizeof vb);
		CHECK_EQ(x, y);
		CHECK(x >= 0 && !memcmp(va, vb, (size_t)x));
	}
}

static void same_data(struct sfs_fs *fa, sfs_ino_t a, struct sfs_fs *fb, sfs_ino_t b, off_t size)
{
	struct sfs_file *ha, *hb;
	CHECK_EQ(sfs_open(fa, &kern, a, O_RDONLY | O_NOATIME, &ha), 0);
	CHECK_EQ(sfs_open(fb, &kern, b, O_RDONLY | O_NOATIME, &hb), 0);
	static uint8_t ba[1 << 20], bb[1 << 20];
	off_t off = 0;
	while (off < size) {
		off_t da = sfs_lseek(fa, ha, off, SEEK_DATA);
		off_t db = sfs_lseek(fb, hb, off, SEEK_DATA);
		CHECK_EQ(da, db);
		if (da < 0)
			break;
		off_t ea = sfs_lseek(fa, ha, da, SEEK_HOLE), eb = sfs_lseek(fb, hb, da, SEEK_HOLE);
		CHECK_EQ(ea, eb);
		for (off = da; off < ea;) {
			size_t n = (size_t)(ea - off) < sizeof ba ? (size_t)(ea - off) : sizeof ba;
			CHECK_EQ(sfs_read(fa, ha, ba, n, off), (ssize_t)n);
			CHECK_EQ(sfs_read(fb, hb, bb, n, off), (ssize_t)n);
			CHECK(!memcmp(ba, bb, n));
			off += (off_t)n;
		}
	}
	CHECK_EQ(sfs_release(fa, ha), 0);
	CHECK_EQ(sfs_release(fb, hb), 0);
}

/* Compare the objects a and b and everything below them.  Stats first:
 * reading a directory or a symlink may move its atime. */
static void same_tree(struct sfs_fs *fa, sfs_ino_t a, struct sfs_fs *fb, sfs_ino_t b,
                      struct pairs *pr, int *count, const char *path)
{
	struct stat sa, sb;
	CHECK_EQ(sfs_getattr(fa, a, &sa), 0);
	CHECK_EQ(sfs_getattr(fb, b, &sb), 0);
	if (sa.st_mode != sb.st_mode || sa.st_size != sb.st_size || sa.st_uid != sb.st_uid ||
	    sa.st_gid != sb.st_gid || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec ||
	    sa.st_ctim.tv_nsec != sb.st_ctim.tv_nsec || sa.st_atim.tv_nsec != sb.st_atim.tv_nsec ||
	    sa.st_nlink != sb.st_nlink ||
	    (compare_blocks && sa.st_blocks != sb.st_blocks && !strstr(path, "/falloc")))
		fprintf(stderr, "differs: %s\n", path); /* which one, before a check fails */
	CHECK_EQ(sa.st_mode, sb.st_mode);
	CHECK_EQ(sa.st_uid, sb.st_uid);
	CHECK_EQ(sa.st_gid, sb.st_gid);
	CHECK_EQ(sa.st_nlink, sb.st_nlink);
	CHECK_EQ(sa.st_size, sb.st_size);
	CHECK_EQ(sa.st_rdev, sb.st_rdev);
	/* Fallocated space nobody wrote reads as a hole (SEEK_DATA skips it)
	 * and is not kept: only there may the original hold more.  After
	 * random changes the layout may differ too (a file truncated below
	 * half a sector keeps its sector, a loaded one is stored inline). */
	if (!compare_blocks)
		CHECK(sa.st_size > 2048 || sb.st_blocks <= sa.st_blocks);
	else if (strstr(path, "/falloc"))
		CHECK(sa.st_blocks >= sb.st_blocks);
	else
		CHECK_EQ(sa.st_blocks, sb.st_blocks);
	CHECK_EQ(sa.st_atim.tv_sec, sb.st_atim.tv_sec);
	CHECK_EQ(sa.st_atim.tv_nsec, sb.st_atim.tv_nsec);
	CHECK_EQ(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
	CHECK_EQ(sa.st_mtim.tv_nsec, sb.st_mtim.tv_nsec);
	CHECK_EQ(sa.st_ctim.tv_sec, sb.st_ctim.tv_sec);
	CHECK_EQ(sa.st_ctim.tv_nsec, sb.st_ctim.tv_nsec);
	bool first;
	pair(pr, a, b, &first);
	if (!first)
		return;
	(*count)++;
	same_xattrs(fa, a, fb, b);
	if (S_ISREG(sa.st_mode))
		same_data(fa, a, fb, b, sa.st_size);
	if (S_ISLNK(sa.st_mode)) {
		char ta[SFS_SYMLINK_MAX + 1], tb[SFS_SYMLINK_MAX + 1];
		ssize_t na = sfs_readlink(fa, a, ta, sizeof ta);
		ssize_t nb = sfs_readlink(fb, b, tb, sizeof tb);
		CHECK_EQ(na, nb);
		CHECK(na > 0 && !memcmp(ta, tb, (size_t)na));
	}
	if (!S_ISDIR(sa.st_mode))
		return;
	struct names la = {0}, lb = {0};
	list_dir(fa, a, &la);
	list_dir(fb, b, &lb);
	CHECK_EQ(la.n, lb.n);
	for (int i = 0; i < la.n; i++) {
		CHECK_STR(la.v[i], lb.v[i]); /* readdir order too */
		struct sfs_entry ea, eb;
		CHECK_EQ(sfs_lookup(fa, &kern, a, la.v[i], &ea), 0);
		CHECK_EQ(sfs_lookup(fb, &kern, b, lb.v[i], &eb), 0);
		char sub[8192];
		snprintf(sub, sizeof sub, "%s/%s", strcmp(path, "/") ? path : "", la.v[i]);
		same_tree(fa, ea.ino, fb, eb.ino, pr, count, sub);
		CHECK_EQ(sfs_forget(fa, ea.ino, 1), 0);
		CHECK_EQ(sfs_forget(fb, eb.ino, 1), 0);
	}
	free(la.v);
	free(lb.v);
}

static int compare(struct sfs_fs *fa, struct sfs_fs *fb)
{
	struct pairs pr = {0};
	int count = 0;
	same_tree(fa, SFS_ROOT_INO, fb, SFS_ROOT_INO, &pr, &count, "/");
	free(pr.ab);
	free(pr.ba);
	return count;
}

/* ---- CRC32C ---- */

static uint32_t crc_ref(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

static void test_crc(void)
{
	CHECK_EQ(img_crc32c(0, "123456789", 9), 0xe3069283u);
	CHECK_EQ(img_crc32c_soft(0, "123456789", 9), 0xe3069283u);
	CHECK_EQ(crc_ref(0, (const uint8_t *)"123456789", 9), 0xe3069283u);
	/* Past three 4 KiB blocks too: the hardware path joins three chains. */
	static uint8_t buf[65536];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)rng_next(&rng);
	for (size_t start = 0; start < 16; start++)
		for (size_t len = 0; len + start <= sizeof buf; len += 1 + len / 5) {
			uint32_t want = crc_ref(0, buf + start, len);
			CHECK_EQ(img_crc32c(0, buf + start, len), want);
			CHECK_EQ(img_crc32c_soft(0, buf + start, len), want);
			size_t cut = len / 3;
			CHECK_EQ(img_crc32c(img_crc32c_soft(0, buf + start, cut), buf + start + cut,
			                    len - cut), want);
		}
	printf("crc32c: ok\n");
}

/* ---- round trip ---- */

/* Save or load that must succeed; on failure the message is shown first. */
static void save_ok(struct sfs_fs *fs, const char *path, struct sfs_image_info *info)
{
	char err[1024];
	int rc = sfs_image_save(fs, path, info, err, sizeof err);
	if (rc)
		fprintf(stderr, "%s\n", err);
	CHECK_EQ(rc, 0);
}

static void load_ok(struct sfs_fs *fs, const char *path)
{
	char err[1024];
	int rc = sfs_image_load(fs, path, err, sizeof err);
	if (rc)
		fprintf(stderr, "%s\n", err);
	CHECK_EQ(rc, 0);
}

/* fs, loaded from img, saves to img2 with the same bytes (the header's
 * creation time and checksum apart). */
static void same_save(struct sfs_fs *fs, const char *img, const char *img2)
{
	char err[1024];
	CHECK_EQ(sfs_image_save(fs, img2, NULL, err, sizeof err), 0);
	size_t l1, l2;
	uint8_t *p1 = read_file(img, &l1), *p2 = read_file(img2, &l2);
	CHECK_EQ(l1, l2);
	CHECK(!memcmp(p1, p2, 24) && !memcmp(p1 + 36, p2 + 36, 56) &&
	      !memcmp(p1 + 96, p2 + 96, l1 - 96));
	free(p1);
	free(p2);
}

static void test_roundtrip(bool large)
{
	struct sfs_fs *a = new_fs(0, 0);
	int n = build_tree(a, large);
	consistent(a);
	struct sfs_image_info info;
	char err[1024];
	const char *img = path_in("rt.img"), *img2 = path_in("rt2.img");
	unlink(img); /* a new image is 0600 */
	save_ok(a, img, &info);
	CHECK_EQ(info.inodes, n);
	CHECK(info.held_ns > 0 && info.held_ns < 10000000000ull); /* measured, and sane */
	CHECK_EQ(info.files + info.dirs + info.symlinks + info.fifos + info.sockets + info.chrdevs +
	                 info.blkdevs,
	         n);
	CHECK_EQ(info.fifos, 2);
	CHECK_EQ(info.sockets, 1);
	CHECK_EQ(info.chrdevs, 2);
	CHECK_EQ(info.blkdevs, 2);
	CHECK_EQ(info.symlinks, 3);
	CHECK_EQ(info.names, n - 1 + 3); /* three extra links */
	no_leftovers();
	struct stat st;
	CHECK_EQ(stat(img, &st), 0);
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK_EQ((uint64_t)st.st_size, info.image_bytes);

	struct sfs_image_info ci;
	CHECK_EQ(sfs_image_check(img, &ci, err, sizeof err), 0);
	CHECK_EQ(ci.inodes, info.inodes);
	CHECK_EQ(ci.names, info.names);
	CHECK_EQ(ci.xattrs, info.xattrs);
	CHECK_EQ(ci.data_bytes, info.data_bytes);
	CHECK_EQ(ci.file_bytes, info.file_bytes);
	CHECK_EQ(ci.image_bytes, info.image_bytes);
	CHECK_EQ(ci.records, info.records);
	CHECK_EQ(ci.version_major, 1);
	CHECK_EQ(ci.sector_size, 4096);
	CHECK(ci.file_bytes > (6ull << 30));
	CHECK(ci.data_bytes < (16ull << 20)); /* holes are not written */

	struct sfs_fs *b = new_fs(0, 0);
	load_ok(b, img);
	consistent(b);
	/* The loaded tree saves to the same bytes. */
	same_save(b, img, img2);
	CHECK_EQ(compare(a, b), n);
	consistent(a);
	consistent(b);
	/* Saving over an image keeps its mode. */
	CHECK_EQ(chmod(img, 0640), 0);
	CHECK_EQ(sfs_image_save(b, img, NULL, err, sizeof err), 0);
	CHECK_EQ(stat(img, &st), 0);
	CHECK_EQ(st.st_mode & 07777, 0640);
	no_leftovers();
	sfs_fs_destroy(a);
	sfs_fs_destroy(b);
	printf("round trip%s: %d inodes, %.1f MiB of data, image %.1f MiB: same\n",
	       large ? " (large)" : "", n, (double)info.data_bytes / 1048576.0,
	       (double)info.image_bytes / 1048576.0);
}

/* An empty filesystem saves and loads too; the root's attributes go along. */
static void test_empty(void)
{
	struct sfs_config cfg = {.root_mode = 0700, .root_uid = 5, .root_gid = 6};
	struct sfs_fs *a, *b = new_fs(0, 0);
	CHECK_EQ(sfs_fs_create(&cfg, &a), 0);
	char err[512];
	const char *img = path_in("empty.img");
	CHECK_EQ(sfs_image_save(a, img, NULL, err, sizeof err), 0);
	CHECK_EQ(sfs_image_load(b, img, err, sizeof err), 0);
	CHECK_EQ(compare(a, b), 1);
	/* Not into a filesystem that has something in it. */
	mk(b, SFS_ROOT_INO, "x", S_IFDIR | 0755, 0);
	CHECK_EQ(sfs_image_load(b, img, err, sizeof err), -ENOTEMPTY);
	char want[600];
	snprintf(want, sizeof want, "%s: the filesystem to load into is not empty (2 inodes)", img);
	CHECK_STR(err, want);
	sfs_fs_destroy(a);
	sfs_fs_destroy(b);
	printf("empty filesystem: ok\n");
}

/* ======================================================================
 * An independent writer of the format (docs/image-format.md), to craft
 * images with one thing wrong.
 * ====================================================================== */

struct craft {
	uint8_t *p;
	size_t len, cap;
	uint64_t records;
	uint64_t c[13];   /* the end record's counts, kept as records are added */
	uint16_t major, minor;
	uint32_t flags;
};

enum { C_REC, C_INO, C_DIR, C_REG, C_LNK, C_FIFO, C_SOCK, C_CHR, C_BLK, C_NAMES, C_XATTR,
       C_DATA, C_FILEB };

static void c_put(struct craft *c, const void *d, size_t n)
{
	if (c->len + n > c->cap) {
		c->cap = (c->len + n) * 2 + 4096;
		c->p = realloc(c->p, c->cap);
		CHECK(c->p);
	}
	memcpy(c->p + c->len, d, n);
	c->len += n;
}

static void le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void c_start(struct craft *c)
{
	*c = (struct craft){.major = 1};
	uint8_t h[96] = {0};
	c_put(c, h, sizeof h);
}

static void c_rec(struct craft *c, unsigned type, unsigned flags, const uint8_t *pl, size_t n)
{
	uint8_t h[16];
	le(h, type, 2);
	le(h + 2, flags, 2);
	le(h + 4, n, 4);
	le(h + 8, ++c->records, 4);
	le(h + 12, crc_ref(crc_ref(0, h, 12), pl, n), 4);
	c_put(c, h, 16);
	c_put(c, pl, n);
}

static void c_inode(struct craft *c, uint64_t num, uint64_t parent, uint32_t mode, uint32_t nlink,
                    uint64_t size, const char *name, const char *target)
{
	uint8_t p[86 + 255 + 4096] = {0};
	le(p, num, 8);
	le(p + 8, parent, 8);
	le(p + 16, mode, 4);
	le(p + 28, nlink, 4);
	le(p + 32, size, 8);
	le(p + 48, 1000000000, 8);
	size_t nl = strlen(name), tl = target ? strlen(target) : 0;
	le(p + 84, nl, 2);
	memcpy(p + 86, name, nl);
	if (tl)
		memcpy(p + 86 + nl, target, tl);
	c_rec(c, 1, 0, p, 86 + nl + tl);
	c->c[C_INO]++;
	c->c[C_NAMES] += parent != 0;
	switch (mode & S_IFMT) {
	case S_IFDIR: c->c[C_DIR]++; break;
	case S_IFREG: c->c[C_REG]++; c->c[C_FILEB] += size; break;
	case S_IFLNK: c->c[C_LNK]++; break;
	case S_IFIFO: c->c[C_FIFO]++; break;
	case S_IFSOCK: c->c[C_SOCK]++; break;
	case S_IFCHR: c->c[C_CHR]++; break;
	default: c->c[C_BLK]++; break;
	}
}

static void c_link(struct craft *c, uint64_t ino, uint64_t parent, const char *name)
{
	uint8_t p[18 + 255];
	le(p, ino, 8);
	le(p + 8, parent, 8);
	size_t nl = strlen(name);
	le(p + 16, nl, 2);
	memcpy(p + 18, name, nl);
	c_rec(c, 2, 0, p, 18 + nl);
	c->c[C_NAMES]++;
}

static void c_xattr(struct craft *c, uint64_t ino, const char *name, const void *v, size_t vl)
{
	uint8_t p[14 + 255 + 256];
	size_t nl = strlen(name);
	CHECK(vl <= 256);
	le(p, ino, 8);
	le(p + 8, vl, 4);
	le(p + 12, nl, 2);
	memcpy(p + 14, name, nl);
	memcpy(p + 14 + nl, v, vl);
	c_rec(c, 3, 0, p, 14 + nl + vl);
	c->c[C_XATTR]++;
}

static void c_data(struct craft *c, uint64_t ino, uint64_t off, const void *d, size_t n)
{
	uint8_t *p = malloc(16 + n);
	le(p, ino, 8);
	le(p + 8, off, 8);
	memcpy(p + 16, d, n);
	c_rec(c, 4, 0, p, 16 + n);
	free(p);
	c->c[C_DATA] += n;
}

static void c_end(struct craft *c)
{
	uint8_t p[104];
	c->c[C_REC] = c->records;
	for (int k = 0; k < 13; k++)
		le(p + 8 * k, c->c[k], 8);
	c_rec(c, 5, 0, p, sizeof p);
}

/* The header (totals from what was added), then the file. */
static const char *c_write(struct craft *c, const char *name)
{
	uint8_t *h = c->p;
	memcpy(h, "\x89SFSIMG\n", 8);
	le(h + 8, c->major, 2);
	le(h + 10, c->minor, 2);
	le(h + 12, 96, 4);
	le(h + 16, c->flags, 4);
	le(h + 20, 4096, 4);
	le(h + 24, 1700000000, 8);
	le(h + 40, c->records, 8);
	le(h + 48, c->c[C_INO], 8);
	le(h + 56, c->c[C_NAMES], 8);
	le(h + 64, c->c[C_XATTR], 8);
	le(h + 72, c->c[C_DATA], 8);
	le(h + 80, c->len, 8);
	le(h + 92, crc_ref(0, h, 92), 4);
	const char *path = path_in(name);
	write_file(path, c->p, c->len);
	free(c->p);
	c->p = NULL;
	return path;
}

/* Check refuses it with this message (after "PATH: "); load refuses it the
 * same way and leaves the filesystem empty. */
static void refused(const char *path, int err, const char *msg)
{
	char got[1024], want[1200];
	snprintf(want, sizeof want, "%s: %s", path, msg);
	int rc = sfs_image_check(path, NULL, got, sizeof got);
	if (rc != err || strcmp(got, want))
		fprintf(stderr, "check: rc %d, expected %d\n", rc, err);
	CHECK_STR(got, want);
	CHECK_EQ(rc, err);
	CHECK(!strchr(got, '\n'));
	struct sfs_fs *fs = new_fs(0, 0);
	rc = sfs_image_load(fs, path, got, sizeof got);
	CHECK_STR(got, want);
	CHECK_EQ(rc, err);
	check_empty(fs);
	sfs_fs_destroy(fs);
}

static void accepted(const char *path)
{
	char err[1024];
	int rc = sfs_image_check(path, NULL, err, sizeof err);
	if (rc)
		fprintf(stderr, "%s\n", err);
	CHECK_EQ(rc, 0);
	struct sfs_fs *fs = new_fs(0, 0);
	load_ok(fs, path);
	consistent(fs);
	sfs_fs_destroy(fs);
}

/* A small valid tree: /, /d, /d/f (2 names: f and /g), /s -> f. */
static void c_small(struct craft *c)
{
	c_start(c);
	c_inode(c, 1, 0, S_IFDIR | 0755, 3, 0, "", NULL);
	c_inode(c, 2, 1, S_IFDIR | 0700, 2, 0, "d", NULL);
}

static void c_small_rest(struct craft *c)
{
	c_inode(c, 3, 2, S_IFREG | 0644, 2, 10, "f", NULL);
	c_data(c, 3, 0, "0123456789", 10);
	c_xattr(c, 3, "user.a", "b", 1);
	c_link(c, 3, 1, "g");
	c_inode(c, 4, 1, S_IFLNK | 0777, 1, 3, "s", "d/f");
}

static void test_crafted(void)
{
	struct craft c;
	const char *p;
	char msg[512];

	/* the writer in this file agrees with the loader */
	c_small(&c);
	c_small_rest(&c);
	c_end(&c);
	accepted(c_write(&c, "ok.img"));

	/* a record of an unknown type that may be skipped is skipped */
	c_small(&c);
	c_rec(&c, 0x7777, 1, (const uint8_t *)"future stuff", 12);
	c_small_rest(&c);
	c_end(&c);
	p = c_write(&c, "skip.img");
	accepted(p);
	struct sfs_image_info info;
	CHECK_EQ(sfs_image_check(p, &info, msg, sizeof msg), 0);
	CHECK_EQ(info.skipped, 1);
	CHECK_EQ(info.inodes, 4);
	/* ... one that may not is refused */
	c_small(&c);
	c_rec(&c, 0x7777, 0, (const uint8_t *)"future stuff", 12);
	c_small_rest(&c);
	c_end(&c);
	refused(c_write(&c, "noskip.img"), -EINVAL,
	        "record 3: type 0x7777 is unknown to this version and may not be skipped "
	        "(written by a newer sectorfs?)");

	/* a later minor version loads; a later major version does not */
	c_small(&c);
	c_small_rest(&c);
	c_end(&c);
	c.minor = 7;
	accepted(c_write(&c, "minor.img"));
	c_small(&c);
	c_small_rest(&c);
	c_end(&c);
	c.major = 2;
	refused(c_write(&c, "major.img"), -EINVAL,
	        "format version 2.0 is newer than this sectorfs reads (1.x)");
	c_small(&c);
	c_small_rest(&c);
	c_end(&c);
	c.flags = 0x10000; /* an optional feature: fine */
	accepted(c_write(&c, "optional.img"));
	c_small(&c);
	c_small_rest(&c);
	c_end(&c);
	c.flags = 0x4;
	refused(c_write(&c, "required.img"), -EINVAL,
	        "needs features 0x0004 that this sectorfs does not have");

	/* wrong magic, empty, short */
	write_file(path_in("magic.img"), "\x89SFSIMH\n and more", 17);
	refused(path_in("magic.img"), -EINVAL, "not a sectorfs image (no magic number)");
	write_file(path_in("empty0.img"), "", 0);
	refused(path_in("empty0.img"), -EINVAL, "empty file, not a sectorfs image");
	write_file(path_in("short.img"), "\x89SFSIMG\n\x01\x00\x00\x00\x60", 13);
	refused(path_in("short.img"), -EINVAL, "truncated: 13 bytes, shorter than the header");
	char want[600];
	snprintf(want, sizeof want, "%s: No such file or directory", path_in("absent.img"));
	CHECK_EQ(sfs_image_check(path_in("absent.img"), NULL, msg, sizeof msg), -ENOENT);
	CHECK_STR(msg, want);

	/* a huge length field */
	c_small(&c);
	size_t at = c.len;
	{
		uint8_t h[16];
		le(h, 4, 2);
		le(h + 2, 0, 2);
		le(h + 4, 0xfffffff0u, 4);
		le(h + 8, ++c.records, 4);
		le(h + 12, 0, 4);
		c_put(&c, h, 16);
	}
	c_end(&c);
	snprintf(msg, sizeof msg,
	         "record 3 (offset %zu): length 4294967280 runs past the end of the image", at);
	refused(c_write(&c, "huge.img"), -EINVAL, msg);
	/* a known type longer than any such record can be */
	c_small(&c);
	at = c.len;
	{
		static uint8_t pl[(1 << 20) + 17];
		le(pl, 2, 8);
		c_rec(&c, 4, 0, pl, sizeof pl);
	}
	c_end(&c);
	snprintf(msg, sizeof msg, "record 3 (offset %zu, data): bad length 1048593", at);
	refused(c_write(&c, "long.img"), -EINVAL, msg);

	/* an inode cycle: /a/b links back to /a */
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 3, 0, "", NULL);
	c_inode(&c, 2, 1, S_IFDIR | 0755, 3, 0, "a", NULL);
	c_inode(&c, 3, 2, S_IFDIR | 0755, 2, 0, "b", NULL);
	c_link(&c, 2, 3, "loop");
	c_end(&c);
	refused(c_write(&c, "cycle.img"), -EINVAL,
	        "record 4 (link to inode 2): cycle: directory 2 would be inside itself (through "
	        "directory 3)");
	/* a directory that is its own parent */
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 3, 0, "", NULL);
	c_inode(&c, 2, 2, S_IFDIR | 0755, 2, 0, "self", NULL);
	c_end(&c);
	refused(c_write(&c, "self.img"), -EINVAL,
	        "record 2 (inode 2): parent 2 is not a directory defined before it");
	/* a hard link to a directory */
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 4, 0, "", NULL);
	c_inode(&c, 2, 1, S_IFDIR | 0755, 2, 0, "a", NULL);
	c_inode(&c, 3, 1, S_IFDIR | 0755, 2, 0, "b", NULL);
	c_link(&c, 2, 3, "x");
	c_end(&c);
	refused(c_write(&c, "dirlink.img"), -EINVAL,
	        "record 4 (link to inode 2): hard link to directory 2");
	/* duplicate names: by an inode, by a link */
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 2, 0, "", NULL);
	c_inode(&c, 2, 1, S_IFREG | 0644, 1, 0, "a", NULL);
	c_inode(&c, 3, 1, S_IFREG | 0644, 1, 0, "a", NULL);
	c_end(&c);
	refused(c_write(&c, "dup.img"), -EINVAL,
	        "record 3 (inode 3): duplicate name \"a\" in directory 1");
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 2, 0, "", NULL);
	c_inode(&c, 2, 1, S_IFREG | 0644, 2, 0, "a", NULL);
	c_inode(&c, 3, 1, S_IFREG | 0644, 1, 0, "b", NULL);
	c_link(&c, 2, 1, "b");
	c_end(&c);
	refused(c_write(&c, "dup2.img"), -EINVAL,
	        "record 4 (link to inode 2): duplicate name \"b\" in directory 1");
	/* a dangling name, and a name for an inode that comes later */
	c_small(&c);
	c_link(&c, 9, 1, "x");
	c_end(&c);
	refused(c_write(&c, "dangling.img"), -EINVAL,
	        "record 3 (link to inode 9): dangling name \"x\": inode 9 is not defined before "
	        "it");
	/* link counts that do not match the names */
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 2, 0, "", NULL);
	c_inode(&c, 2, 1, S_IFREG | 0644, 2, 0, "a", NULL);
	c_end(&c);
	refused(c_write(&c, "nlink.img"), -EINVAL, "inode 2: link count 2, but 1 names");
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 2, 0, "", NULL);
	c_inode(&c, 2, 1, S_IFDIR | 0755, 2, 0, "a", NULL);
	c_end(&c);
	refused(c_write(&c, "dirnlink.img"), -EINVAL,
	        "directory 1: link count 2, but 1 subdirectories");
	/* the first record must be the root */
	c_start(&c);
	c_inode(&c, 1, 5, S_IFDIR | 0755, 2, 0, "", NULL);
	c_end(&c);
	refused(c_write(&c, "noroot.img"), -EINVAL,
	        "record 1 (inode 1): the first inode must be the root: a directory without a name");
	c_start(&c);
	c_link(&c, 1, 1, "x");
	c_end(&c);
	refused(c_write(&c, "first.img"), -EINVAL,
	        "record 1 (link): the first record must be the root's");
	/* numbers must count up */
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 2, 0, "", NULL);
	c_inode(&c, 3, 1, S_IFREG | 0644, 1, 0, "a", NULL);
	c_end(&c);
	refused(c_write(&c, "numbers.img"), -EINVAL,
	        "record 2 (inode 3): inode numbers must count up from 1: expected 2");
	/* bad names, modes, owners */
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 2, 0, "", NULL);
	c_inode(&c, 2, 1, S_IFREG | 0644, 1, 0, "a/b", NULL);
	c_end(&c);
	refused(c_write(&c, "slash.img"), -EINVAL, "record 2 (inode 2): bad name");
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 2, 0, "", NULL);
	c_inode(&c, 2, 1, S_IFREG | 0644, 1, 0, "..", NULL);
	c_end(&c);
	refused(c_write(&c, "dotdot.img"), -EINVAL, "record 2 (inode 2): bad name");
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 2, 0, "", NULL);
	c_inode(&c, 2, 1, 0170644, 1, 0, "a", NULL);
	c_end(&c);
	refused(c_write(&c, "mode.img"), -EINVAL, "record 2 (inode 2): bad mode 0170644");
	/* data: beyond the size, overlapping, after xattrs, on a non-file */
	c_small(&c);
	c_inode(&c, 3, 2, S_IFREG | 0644, 1, 10, "f", NULL);
	c_data(&c, 3, 5, "0123456789", 10);
	c_end(&c);
	refused(c_write(&c, "beyond.img"), -EINVAL,
	        "record 4 (data of inode 3): data at 5+10 beyond the file size 10");
	c_small(&c);
	c_inode(&c, 3, 2, S_IFREG | 0644, 1, 100, "f", NULL);
	c_data(&c, 3, 10, "0123456789", 10);
	c_data(&c, 3, 15, "0123456789", 10);
	c_end(&c);
	refused(c_write(&c, "overlap.img"), -EINVAL,
	        "record 5 (data of inode 3): data at 15 overlaps or precedes the run before it "
	        "(ending at 20)");
	c_small(&c);
	c_inode(&c, 3, 2, S_IFREG | 0644, 1, 100, "f", NULL);
	c_xattr(&c, 3, "user.a", "b", 1);
	c_data(&c, 3, 10, "0123456789", 10);
	c_end(&c);
	refused(c_write(&c, "late.img"), -EINVAL,
	        "record 5 (data of inode 3): data after the inode's xattrs");
	c_small(&c);
	c_data(&c, 2, 0, "x", 1);
	c_end(&c);
	refused(c_write(&c, "dirdata.img"), -EINVAL,
	        "record 3 (data of inode 2): data for an inode that is not a regular file");
	c_small(&c);
	c_inode(&c, 3, 2, S_IFREG | 0644, 1, 100, "f", NULL);
	c_data(&c, 2, 0, "x", 1);
	c_end(&c);
	refused(c_write(&c, "other.img"), -EINVAL,
	        "record 4 (data of inode 2): not after its inode's record");
	/* xattrs the core would refuse */
	c_small(&c);
	c_xattr(&c, 2, "os2.thing", "x", 1);
	c_end(&c);
	refused(c_write(&c, "ns.img"), -EINVAL,
	        "record 3 (xattr of inode 2): an attribute in an unknown namespace "
	        "(\"os2.thing\")");
	c_small(&c);
	c_xattr(&c, 2, "system.posix_acl_access", "\x02\0\0\0\x01\0\x07\0", 8);
	c_end(&c);
	refused(c_write(&c, "acl.img"), -EINVAL,
	        "record 3 (xattr of inode 2): a malformed ACL (\"system.posix_acl_access\")");
	c_small(&c);
	c_xattr(&c, 2, "user.x", "1", 1);
	c_xattr(&c, 2, "user.x", "2", 1);
	c_end(&c);
	refused(c_write(&c, "dupx.img"), -EINVAL,
	        "record 4 (xattr of inode 2): duplicate attribute \"user.x\"");
	/* the end: missing, wrong, followed by more */
	c_small(&c);
	refused(c_write(&c, "noend.img"), -EINVAL, "no end record");
	c_small(&c);
	c.c[C_DIR] = 7;
	c_end(&c);
	refused(c_write(&c, "endcount.img"), -EINVAL,
	        "record 3 (end): says 7 directories, the image has 2");
	c_small(&c);
	c_end(&c);
	c_link(&c, 2, 1, "late");
	refused(c_write(&c, "after.img"), -EINVAL, "record 4 comes after the end record");
	/* records swapped: the sequence numbers say so */
	c_start(&c);
	c_inode(&c, 1, 0, S_IFDIR | 0755, 3, 0, "", NULL);
	c.records++; /* record 2 carries the number 3, as if one were missing */
	c_inode(&c, 2, 1, S_IFDIR | 0700, 2, 0, "d", NULL);
	c_end(&c);
	refused(c_write(&c, "seq.img"), -EINVAL,
	        "record 2 (inode 2): sequence number 3, expected 2 (records missing, repeated or "
	        "reordered)");
	/* the header's totals */
	c_small(&c);
	c_end(&c);
	c.c[C_XATTR] = 3;
	refused(c_write(&c, "totals.img"), -EINVAL, "the header's totals do not match the records");
	printf("crafted images: refused, each with its message\n");
}

/* ---- shared data (format 1.1) ---- */

static void c_share(struct craft *c, uint64_t ino, uint64_t off, uint64_t len, uint64_t from,
                    uint64_t from_off)
{
	uint8_t p[40];
	le(p, ino, 8);
	le(p + 8, off, 8);
	le(p + 16, len, 8);
	le(p + 24, from, 8);
	le(p + 32, from_off, 8);
	c_rec(c, 6, 0, p, sizeof p);
}

/* An image with shares declared: /, /d, /a (8 KiB of data), /b (8 KiB,
 * its records next). */
static void shared_start(struct craft *c)
{
	c_start(c);
	c->flags = 1;
	c_inode(c, 1, 0, S_IFDIR | 0755, 3, 0, "", NULL);
	c_inode(c, 2, 1, S_IFDIR | 0700, 2, 0, "d", NULL);
	c_inode(c, 3, 1, S_IFREG | 0644, 1, 8192, "a", NULL);
	c_data(c, 3, 0, big, 8192);
	c_inode(c, 4, 1, S_IFREG | 0644, 1, 8192, "b", NULL);
}

/* Copy len bytes of file `from` at fo into `to` at to_off. */
static void copy_range(struct sfs_fs *fs, sfs_ino_t from, off_t fo, sfs_ino_t to, off_t to_off,
                       size_t len)
{
	struct sfs_file *a, *b;
	CHECK_EQ(sfs_open(fs, &kern, from, O_RDONLY, &a), 0);
	CHECK_EQ(sfs_open(fs, &kern, to, O_RDWR, &b), 0);
	CHECK_EQ(sfs_copy_file_range(fs, &kern, a, fo, b, to_off, len, 0), (ssize_t)len);
	CHECK_EQ(sfs_release(fs, a), 0);
	CHECK_EQ(sfs_release(fs, b), 0);
}

static void test_shared(void)
{
	struct sfs_fs *a = new_fs(0, 0);
	sfs_ino_t d = mk(a, SFS_ROOT_INO, "d", S_IFDIR | 0755, 0);
	/* 1 MiB + 100 bytes, a hole in the middle */
	sfs_ino_t f = mkfile(a, d, "f", big, 512 << 10, 0);
	struct sfs_file *fh;
	CHECK_EQ(sfs_open(a, &kern, f, O_RDWR, &fh), 0);
	CHECK_EQ(sfs_write(a, &kern, fh, big + 7, (256 << 10) + 100, 768 << 10), (256 << 10) + 100);
	CHECK_EQ(sfs_release(a, fh), 0);
	sfs_ino_t g = mkfile(a, d, "g", NULL, 0, 0);
	copy_range(a, f, 0, g, 0, (1 << 20) + 100);              /* all of f */
	sfs_ino_t h = mkfile(a, SFS_ROOT_INO, "h", "head", 4, 0);
	copy_range(a, f, 12288, h, 4096 + 12288, 200000);        /* part of it, elsewhere */
	mkfile(a, SFS_ROOT_INO, "x", big + 3, 9000, 0);
	char err[1024];
	CHECK_EQ(sfs_path_clone(a, &kern, "/d", "/e", err, sizeof err), 0);
	/* a change breaks the share of one sector */
	sfs_ino_t eg;
	{
		struct sfs_entry e;
		CHECK_EQ(sfs_path_lookup(a, &kern, "/e/g", false, &e), 0);
		eg = e.ino;
		CHECK_EQ(sfs_forget(a, e.ino, 1), 0);
	}
	CHECK_EQ(sfs_open(a, &kern, eg, O_RDWR, &fh), 0);
	CHECK_EQ(sfs_write(a, &kern, fh, "changed", 7, 5000), 7);
	CHECK_EQ(sfs_release(a, fh), 0);
	consistent(a);
	struct sfs_stats sa;
	sfs_get_stats(a, &sa);
	CHECK(sa.saved_sectors > 0);

	const char *img = path_in("shared.img"), *img2 = path_in("shared2.img");
	struct sfs_image_info info, ci;
	save_ok(a, img, &info);
	CHECK_EQ(info.version_minor, 1);
	CHECK_EQ(info.flags & 1, 1);
	printf("shared: %llu bytes of data, %llu shared, %llu sectors in use\n",
	       (unsigned long long)info.data_bytes, (unsigned long long)info.shared_bytes,
	       (unsigned long long)sa.sectors);
	CHECK(info.shared_bytes > 5 * (1 << 19));
	/* Stored once: the data records hold what the filesystem holds. */
	CHECK(info.data_bytes <= sa.sectors * 4096);
	CHECK_EQ(sfs_image_check(img, &ci, err, sizeof err), 0);
	CHECK_EQ(ci.shared_bytes, info.shared_bytes);
	CHECK_EQ(ci.data_bytes, info.data_bytes);

	struct sfs_fs *b = new_fs(0, 0);
	load_ok(b, img);
	consistent(b);
	/* It saves to the same bytes (before anything reads it: atimes). */
	same_save(b, img, img2);
	CHECK_EQ(compare(a, b), 9);
	struct sfs_stats sb;
	sfs_get_stats(b, &sb);
	CHECK_EQ(sb.sectors, sa.sectors);
	CHECK_EQ(sb.saved_sectors, sa.saved_sectors);
	/* An image that shares fits a size= its logical data would not. */
	struct sfs_fs *small = new_fs((uint64_t)sa.reserved + (1 << 20), 0);
	load_ok(small, img);
	consistent(small);
	sfs_fs_destroy(small);
	sfs_fs_destroy(a);
	sfs_fs_destroy(b);

	/* Crafted: the rules of share records (b shares with a, 8 KiB each). */
	struct craft c;
	shared_start(&c);
	c_share(&c, 4, 0, 8192, 3, 0);
	c_end(&c);
	accepted(c_write(&c, "share-ok.img"));
	shared_start(&c);
	c_share(&c, 4, 0, 4096, 3, 0);
	c_share(&c, 4, 4096, 4096, 4, 0); /* its own, before */
	c_end(&c);
	accepted(c_write(&c, "share-own.img"));
	static const struct {
		uint64_t ino, off, len, from, from_off;
		const char *msg;
	} bad[] = {
	        {4, 0, 4096, 4, 4096, "shares bytes 4096+4096 of its own, not all before 0"},
	        {4, 0, 4096, 9, 0, "shares the data of inode 9, which is not an earlier inode"},
	        {4, 0, 4096, 2, 0, "shares the data of inode 2, which is not a regular file"},
	        {4, 4096, 4096, 3, 4097, "shares bytes 4097+4096 of inode 3, beyond its size 8192"},
	        {4, 4097, 4096, 3, 0, "shared data at 4097+4096 beyond the file size 8192"},
	        {4, 0, 0, 3, 0, "shares no bytes"},
	        {3, 0, 10, 3, 0, "not after its inode's record"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		shared_start(&c);
		c_share(&c, bad[i].ino, bad[i].off, bad[i].len, bad[i].from, bad[i].from_off);
		c_end(&c);
		char msg[512], name[32];
		snprintf(msg, sizeof msg, "record 6 (share of inode %llu): %s",
		         (unsigned long long)bad[i].ino, bad[i].msg);
		snprintf(name, sizeof name, "share-bad%zu.img", i);
		refused(c_write(&c, name), -EINVAL, msg);
	}
	shared_start(&c);
	c_share(&c, 4, 0, 8192, 3, 0);
	c_end(&c);
	c.flags = 0;
	refused(c_write(&c, "share-noflag.img"), -EINVAL,
	        "record 6 (share of inode 4): shared data in an image whose header does not "
	        "declare any");
	shared_start(&c);
	c_data(&c, 4, 0, big, 5000);
	c_share(&c, 4, 4096, 4096, 3, 4096);
	c_end(&c);
	refused(c_write(&c, "share-overlap.img"), -EINVAL,
	        "record 7 (share of inode 4): shared data at 4096 overlaps or precedes the run "
	        "before it (ending at 5000)");
	shared_start(&c);
	c_xattr(&c, 4, "user.a", "b", 1);
	c_share(&c, 4, 0, 10, 3, 0);
	c_end(&c);
	refused(c_write(&c, "share-late.img"), -EINVAL,
	        "record 7 (share of inode 4): shared data after the inode's xattrs");
	/* A flag no version knows is refused still. */
	shared_start(&c);
	c_end(&c);
	c.flags = 3;
	refused(c_write(&c, "share-flags.img"), -EINVAL,
	        "needs features 0x0002 that this sectorfs does not have");
	printf("shared data: stored once, loaded shared, crafted shares refused\n");
}

/* ---- damage to a real image: every truncation, a flipped bit everywhere ---- */

static void test_damage(void)
{
	struct sfs_fs *a = new_fs(0, 0);
	sfs_ino_t d = mk(a, SFS_ROOT_INO, "d", S_IFDIR | 0755, 0);
	sfs_ino_t f = mkfile(a, d, "f", big, 3000, 0);
	CHECK_EQ(sfs_link(a, &kern, f, SFS_ROOT_INO, "g", NULL), 0);
	xset(a, f, "user.x", "yz", 2);
	mksym(a, d, "s", "f");
	mk(a, d, "p", S_IFIFO | 0600, 0);
	char err[1024];
	const char *img = path_in("damage.img"), *bad = path_in("bad.img");
	CHECK_EQ(sfs_image_save(a, img, NULL, err, sizeof err), 0);
	size_t len;
	uint8_t *orig = read_file(img, &len);
	uint8_t *copy = malloc(len);
	CHECK(copy);
	int loads = 0, cuts = 0, flips = 0;
	/* Every truncation (the empty file and the whole one apart; every
	 * STRIDE-th under TSan). */
	for (size_t cut = 1; cut < len; cut += STRIDE) {
		cuts++;
		write_file(bad, orig, cut);
		CHECK_EQ(sfs_image_check(bad, NULL, err, sizeof err), -EINVAL);
		CHECK(strstr(err, bad) == err && !strchr(err, '\n'));
		if (cuts % 61 == 0 || cut < 100) {
			struct sfs_fs *fs = new_fs(0, 0);
			CHECK_EQ(sfs_image_load(fs, bad, err, sizeof err), -EINVAL);
			check_empty(fs);
			sfs_fs_destroy(fs);
			loads++;
		}
	}
	snprintf(err, sizeof err, "%s", "");
	write_file(bad, orig, len - 1);
	char got[1024], want[1024];
	sfs_image_check(bad, NULL, got, sizeof got);
	snprintf(want, sizeof want, "%s: truncated: the image is %zu bytes, its header says %zu",
	         bad, len - 1, len);
	CHECK_STR(got, want);
	/* One bit flipped, at every byte (every STRIDE-th), a different bit
	 * each time. */
	for (size_t at = 0; at < len; at += STRIDE) {
		flips++;
		memcpy(copy, orig, len);
		copy[at] ^= (uint8_t)(1u << (at % 8));
		write_file(bad, copy, len);
		int rc = sfs_image_check(bad, NULL, err, sizeof err);
		if (rc == 0)
			fprintf(stderr, "a flipped bit at %zu was not noticed\n", at);
		CHECK(rc < 0);
		CHECK(strstr(err, bad) == err && !strchr(err, '\n'));
		if (flips % 29 == 1) {
			struct sfs_fs *fs = new_fs(0, 0);
			CHECK(sfs_image_load(fs, bad, err, sizeof err) < 0);
			check_empty(fs);
			sfs_fs_destroy(fs);
			loads++;
		}
	}
	/* Flipped bits in a record's payload: its checksum, by number. */
	memcpy(copy, orig, len);
	copy[len - 50] ^= 0x10;
	write_file(bad, copy, len);
	sfs_image_check(bad, NULL, got, sizeof got);
	CHECK(strstr(got, "(end): checksum mismatch"));
	memcpy(copy, orig, len);
	copy[96 + 16 + 30] ^= 1;
	write_file(bad, copy, len);
	sfs_image_check(bad, NULL, got, sizeof got);
	snprintf(want, sizeof want, "%s: record 1 (inode 1): checksum mismatch", bad);
	CHECK_STR(got, want);
	memcpy(copy, orig, len);
	copy[40] ^= 4;
	write_file(bad, copy, len);
	sfs_image_check(bad, NULL, got, sizeof got);
	snprintf(want, sizeof want, "%s: header checksum mismatch", bad);
	CHECK_STR(got, want);
	free(orig);
	free(copy);
	sfs_fs_destroy(a);
	printf("damage: %d truncations and %d flipped bits refused "
	       "(%d loads left the fs empty)\n",
	       cuts, flips, loads);
}

/* ---- limits ---- */

static void test_limits(void)
{
	char err[1024], want[1024];
	/* data that cannot fit size= is refused before anything is built */
	struct sfs_fs *a = new_fs(0, 0);
	mkfile(a, SFS_ROOT_INO, "big", big, sizeof big, 0);
	mkfile(a, SFS_ROOT_INO, "big2", big, sizeof big, 5 << 20);
	const char *img = path_in("limit.img");
	CHECK_EQ(sfs_image_save(a, img, NULL, err, sizeof err), 0);
	struct sfs_fs *b = new_fs(4 << 20, 0);
	struct statvfs sv;
	CHECK_EQ(sfs_statfs(b, &sv), 0);
	snprintf(want, sizeof want, "%s: image needs %.1f MiB, size= allows %.1f MiB", img,
	         2.0 * sizeof big / 1048576.0, (double)sv.f_bfree * sv.f_frsize / 1048576.0);
	CHECK_EQ(sfs_image_load(b, img, err, sizeof err), -ENOSPC);
	CHECK_STR(err, want);
	check_empty(b);
	sfs_fs_destroy(b);
	sfs_fs_destroy(a);

	/* more inodes than nr_inodes= */
	a = new_fs(0, 0);
	for (int i = 0; i < 50; i++) {
		char name[16];
		snprintf(name, sizeof name, "f%d", i);
		mkfile(a, SFS_ROOT_INO, name, NULL, 0, 0);
	}
	CHECK_EQ(sfs_image_save(a, img, NULL, err, sizeof err), 0);
	b = new_fs(0, 20);
	CHECK_EQ(sfs_image_load(b, img, err, sizeof err), -ENOSPC);
	snprintf(want, sizeof want, "%s: image has 51 inodes, nr_inodes= allows 20", img);
	CHECK_STR(err, want);
	check_empty(b);
	sfs_fs_destroy(b);
	sfs_fs_destroy(a);

	/* ENOSPC in the middle of a build: no data to speak of, but the
	 * inodes and names do not fit.  The root had attributes of its own:
	 * they are as they were. */
	a = new_fs(0, 0);
	sfs_ino_t d = mk(a, SFS_ROOT_INO, "d", S_IFDIR | 0755, 0);
	for (int i = 0; i < 3000; i++) {
		char name[64];
		snprintf(name, sizeof name, "a-rather-long-name-to-take-room-%d", i);
		mkfile(a, d, name, "x", 1, 0);
	}
	xset(a, SFS_ROOT_INO, "user.from-image", "1", 1);
	chmod_(a, SFS_ROOT_INO, 0700);
	CHECK_EQ(sfs_image_save(a, img, NULL, err, sizeof err), 0);
	b = new_fs(256 << 10, 0);
	xset(b, SFS_ROOT_INO, "user.mine", "keep", 4);
	struct stat before, after;
	CHECK_EQ(sfs_getattr(b, SFS_ROOT_INO, &before), 0);
	int rc = sfs_image_load(b, img, err, sizeof err);
	CHECK_EQ(rc, -ENOSPC);
	CHECK(strstr(err, ": No space left on device") && strstr(err, img) == err);
	printf("limits: ENOSPC while building: %s\n", err);
	check_empty(b);
	CHECK_EQ(sfs_getattr(b, SFS_ROOT_INO, &after), 0);
	CHECK_EQ(after.st_mode, before.st_mode);
	CHECK_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	CHECK_EQ(after.st_ctim.tv_sec, before.st_ctim.tv_sec);
	CHECK_EQ(after.st_ctim.tv_nsec, before.st_ctim.tv_nsec);
	char list[256];
	ssize_t n = sfs_listxattr(b, &kern, SFS_ROOT_INO, list, sizeof list);
	CHECK_EQ(n, 10);
	CHECK(!memcmp(list, "user.mine", 10));
	/* ... and the same filesystem, with room, then takes it whole */
	CHECK_EQ(sfs_removexattr(b, &kern, SFS_ROOT_INO, "user.mine"), 0);
	CHECK_EQ(sfs_fs_set_limits(b, 0, 0), 0);
	CHECK_EQ(sfs_image_load(b, img, err, sizeof err), 0);
	CHECK_EQ(compare(a, b), 3002);
	sfs_fs_destroy(b);
	sfs_fs_destroy(a);

	/* saving where it cannot */
	a = new_fs(0, 0);
	snprintf(want, sizeof want, "%s/no/such/dir/x.img", dir);
	CHECK_EQ(sfs_image_save(a, want, NULL, err, sizeof err), -ENOENT);
	CHECK(strstr(err, want) == err && strstr(err, ": cannot create "));
	CHECK(strstr(err, "No such file or directory"));
	sfs_fs_destroy(a);
	printf("limits: size=, nr_inodes=, ENOSPC while building: refused, left empty\n");
}

/* ---- allocation failures ---- */

/* The tree the fault loops save and load: a little of everything, and a
 * data run long enough to be written from the snapshot's buffer uncopied
 * (two buffers in one write, which a short write leaves part done). */
static struct sfs_fs *fault_tree(void)
{
	struct sfs_fs *a = new_fs(0, 0);
	sfs_ino_t d = mk(a, SFS_ROOT_INO, "d", S_IFDIR | 0755, 0);
	uint8_t ab[64];
	xset(a, d, "system.posix_acl_default", ab, acl(ab, acl_def, 5));
	sfs_ino_t f = mkfile(a, d, "f", big, 200000, 4096);
	CHECK_EQ(sfs_link(a, &kern, f, SFS_ROOT_INO, "f2", NULL), 0);
	xset(a, f, "user.x", big, 5000);
	mksym(a, SFS_ROOT_INO, "s", "d/f");
	mk(a, d, "sub", S_IFDIR | 0700, 0);
	for (int i = 0; i < 20; i++) {
		char name[16];
		snprintf(name, sizeof name, "n%d", i);
		mkfile(a, d, name, big, (size_t)i * 100, 0);
	}
	return a;
}

/* The image at `path` holds exactly `len` bytes `want`. */
static void same_file(const char *path, const uint8_t *want, size_t len)
{
	size_t l;
	uint8_t *now = read_file(path, &l);
	CHECK(l == len && !memcmp(now, want, l));
	free(now);
}

/* The image at `path` loads, and gives the tree `a`. */
static void loads_as(const char *path, struct sfs_fs *a)
{
	struct sfs_fs *b = new_fs(0, 0);
	load_ok(b, path);
	consistent(b);
	compare(a, b);
	sfs_fs_destroy(b);
}

/* One line, naming the image first. */
static void one_line(const char *err, const char *path)
{
	size_t n = strlen(path);
	CHECK(!strncmp(err, path, n) && !strncmp(err + n, ": ", 2) && !strchr(err, '\n'));
}

static void test_faults(void)
{
	/* The tree is compared many times: reading directories must not
	 * move their atimes meanwhile. */
	atime_mode = SFS_ATIME_NEVER;
	struct sfs_fs *a = fault_tree();
	char err[1024];
	const char *img = path_in("fault.img"), *good = path_in("fault-good.img");
	CHECK_EQ(sfs_image_save(a, good, NULL, err, sizeof err), 0);
	struct sfs_fs *ref = new_fs(0, 0); /* the tree as it was, to compare with */
	load_ok(ref, good);
	size_t glen;
	uint8_t *gbytes = read_file(good, &glen);

	/* load: fail the n-th allocation, for every n (every STRIDE-th) */
	int failures = 0, n;
	for (n = 1;; n += STRIDE) {
		struct sfs_fs *b = new_fs(0, 0);
		sfs_fault_arm(n, false);
		int rc = sfs_image_load(b, good, err, sizeof err);
		bool hit = sfs_fault_disarm();
		if (rc) {
			CHECK(hit);
			CHECK(rc == -ENOMEM || rc == -ENOSPC);
			CHECK(strstr(err, good) == err && !strchr(err, '\n'));
			check_empty(b);
			failures++;
		} else {
			consistent(b);
			compare(a, b);
		}
		sfs_fs_destroy(b);
		if (!hit)
			break;
	}
	printf("faults: load, %d allocation points%s, %d failed cleanly\n", n - 1,
	       STRIDE > 1 ? " (every 5th made to fail)" : "", failures);

	/* save: a failure leaves the image that was there, and no litter */
	failures = 0;
	for (n = 1;; n += STRIDE) {
		write_file(img, gbytes, glen);
		sfs_fault_arm(n, false);
		int rc = sfs_image_save(a, img, NULL, err, sizeof err);
		bool hit = sfs_fault_disarm();
		no_leftovers();
		if (rc) {
			CHECK(hit);
			CHECK_EQ(rc, -ENOMEM);
			one_line(err, img);
			same_file(img, gbytes, glen);
			failures++;
		}
		CHECK_EQ(sfs_image_check(img, NULL, err, sizeof err), 0);
		consistent(a);
		compare(a, ref);
		if (!hit)
			break;
	}
	loads_as(img, a);
	sfs_fs_destroy(ref);
	sfs_fs_destroy(a);
	free(gbytes);
	atime_mode = SFS_ATIME_RELATIME;
	printf("faults: save, %d allocation points%s, %d failed cleanly\n", n - 1,
	       STRIDE > 1 ? " (every 5th made to fail)" : "", failures);
}

/* ---- I/O failures ---- */

/* The calls a fault was delivered to, by name. */
struct calls {
	char v[32][16];
	int n;
};

static void saw(struct calls *c, const char *call)
{
	CHECK(call != NULL);
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->v[i], call))
			return;
	CHECK(c->n < 32);
	snprintf(c->v[c->n++], sizeof c->v[0], "%s", call);
}

static void must_have_seen(const struct calls *c, const char *const *want)
{
	for (; *want; want++) {
		bool found = false;
		for (int i = 0; i < c->n && !found; i++)
			found = !strcmp(c->v[i], *want);
		if (!found)
			fprintf(stderr, "no I/O fault reached the call %s\n", *want);
		CHECK(found);
	}
}

static const char *err_name(int e)
{
	return e == SFS_FAULT_SHORT ? "short" : e == EIO ? "EIO" : "ENOSPC";
}

/* Every file I/O call of a save and of a load, failing with ENOSPC, with
 * EIO, and coming up short, one at a time.  A failed save leaves the old
 * image byte for byte, the live tree as it was and no temporary file, and
 * says so in one line that names the image and the error; a save that
 * succeeds (short writes are continued) wrote an image that loads as the
 * tree.  The one failure after the rename (the directory's sync) leaves
 * the new image in place and says that.  A failed load leaves the
 * filesystem empty; a short read is continued. */
static void test_io_faults(void)
{
	atime_mode = SFS_ATIME_NEVER;
	struct sfs_fs *a = fault_tree();
	char err[1024], want[1200];
	const char *img = path_in("iofault.img"), *good = path_in("iofault-good.img");
	save_ok(a, good, NULL);
	struct sfs_fs *ref = new_fs(0, 0);
	load_ok(ref, good);
	size_t glen;
	uint8_t *gbytes = read_file(good, &glen);
	const int errs[] = {ENOSPC, EIO, SFS_FAULT_SHORT};

	/* save */
	write_file(img, gbytes, glen);
	sfs_fault_io_arm(0, 0);
	save_ok(a, img, NULL);
	sfs_fault_io_disarm();
	long points = sfs_fault_io_points();
	CHECK(points >= 8);
	struct calls hit_calls = {0};
	int failures = 0, after_rename = 0;
	for (int k = 0; k < 3; k++) {
		for (long n = 1; n <= points; n++) {
			write_file(img, gbytes, glen);
			CHECK_EQ(chmod(img, 0640), 0); /* a save keeps it */
			sfs_fault_io_arm(n, errs[k]);
			int rc = sfs_image_save(a, img, NULL, err, sizeof err);
			bool hit = sfs_fault_io_disarm();
			const char *call = sfs_fault_io_call();
			no_leftovers();
			consistent(a);
			compare(a, ref); /* the live tree as it was */
			if (hit)
				saw(&hit_calls, call);
			struct stat st;
			CHECK_EQ(stat(img, &st), 0);
			CHECK_EQ(st.st_mode & 07777, 0640);
			if (rc == 0) {
				loads_as(img, a);
				continue;
			}
			if (!hit || errs[k] == SFS_FAULT_SHORT)
				fprintf(stderr, "save, %s at I/O call %ld (%s): %s\n", err_name(errs[k]),
				        n, call ? call : "none", err);
			CHECK(hit && errs[k] != SFS_FAULT_SHORT);
			CHECK_EQ(rc, -errs[k]);
			one_line(err, img);
			CHECK(strstr(err, strerror(errs[k])));
			failures++;
			if (!strcmp(call, "fsync_dir")) {
				/* The rename is done: the new image is there. */
				snprintf(want, sizeof want,
				         "%s: the new image is in place, but syncing the directory %s "
				         "failed: %s (after a crash the old image may be back)",
				         img, dir, strerror(errs[k]));
				CHECK_STR(err, want);
				loads_as(img, a);
				after_rename++;
				continue;
			}
			same_file(img, gbytes, glen);
			if (!strcmp(call, "fsync") || !strcmp(call, "close")) {
				snprintf(want, sizeof want, "%s: %s: %s", img, call, strerror(errs[k]));
				CHECK_STR(err, want);
			} else if (!strcmp(call, "rename")) {
				CHECK(strstr(err, ": rename from ") && strstr(err, ".iofault.img.tmp."));
			} else if (!strcmp(call, "pwritev")) {
				CHECK(strstr(err, ": writing: ") || strstr(err, ": writing the header: "));
			} else if (!strcmp(call, "mkostemp")) {
				snprintf(want, sizeof want, "%s: cannot create %s/.iofault.img.tmp.XXXXXX: %s",
				         img, dir, strerror(errs[k]));
				CHECK_STR(err, want);
			}
		}
	}
	static const char *const save_calls[] = {"mkostemp", "stat", "fchmod", "pwritev", "fsync",
	                                         "close", "rename", "fsync_dir", NULL};
	must_have_seen(&hit_calls, save_calls);
	CHECK_EQ(after_rename, 2);
	printf("I/O faults: save, %ld calls x ENOSPC, EIO, short: %d failed cleanly "
	       "(%d after the rename)\n",
	       points, failures, after_rename);

	/* load */
	write_file(img, gbytes, glen);
	struct sfs_fs *b = new_fs(0, 0);
	sfs_fault_io_arm(0, 0);
	load_ok(b, img);
	sfs_fault_io_disarm();
	sfs_fs_destroy(b);
	points = sfs_fault_io_points();
	CHECK(points >= 5);
	hit_calls.n = 0;
	failures = 0;
	for (int k = 0; k < 3; k++) {
		for (long n = 1; n <= points; n++) {
			b = new_fs(0, 0);
			sfs_fault_io_arm(n, errs[k]);
			int rc = sfs_image_load(b, img, err, sizeof err);
			bool hit = sfs_fault_io_disarm();
			const char *call = sfs_fault_io_call();
			if (hit)
				saw(&hit_calls, call);
			if (rc == 0) {
				consistent(b);
				compare(a, b);
			} else {
				if (!hit || errs[k] == SFS_FAULT_SHORT)
					fprintf(stderr, "load, %s at I/O call %ld (%s): %s\n",
					        err_name(errs[k]), n, call ? call : "none", err);
				CHECK(hit && errs[k] != SFS_FAULT_SHORT);
				CHECK_EQ(rc, -errs[k]);
				one_line(err, img);
				if (!strcmp(call, "pread"))
					snprintf(want, sizeof want, "%s: read: %s", img, strerror(errs[k]));
				else
					snprintf(want, sizeof want, "%s: %s", img, strerror(errs[k]));
				CHECK_STR(err, want);
				check_empty(b);
				failures++;
			}
			sfs_fs_destroy(b);
			same_file(img, gbytes, glen);
		}
	}
	static const char *const load_calls[] = {"open", "fstat", "pread", "getrandom", NULL};
	must_have_seen(&hit_calls, load_calls);
	printf("I/O faults: load, %ld calls x ENOSPC, EIO, short: %d failed cleanly\n", points,
	       failures);
	sfs_fs_destroy(ref);
	sfs_fs_destroy(a);
	free(gbytes);
	atime_mode = SFS_ATIME_RELATIME;
}

/* ---- writers during a save ---- */

#define WRITERS 4
#define REC 64
/* Records a writer writes at most: under TSan, enough to last several
 * saves; the CPU they cost, and the images' size, stay bounded. */
#define WRITES_MAX (UNDER_TSAN ? 3000 : 1000000)

struct wstate {
	struct sfs_fs *fs;
	_Atomic uint64_t done[WRITERS]; /* records each writer has completed */
	_Atomic bool stop;
	_Atomic bool hold;              /* writers wait while an image is checked */
	sfs_ino_t ino[WRITERS];
};

struct warg {
	struct wstate *w;
	int id;
};

/* A record: the writer, its sequence number, and how many records every
 * writer had completed when it began; then a checksum. */
static void *writer(void *p)
{
	struct warg *a = p;
	struct wstate *w = a->w;
	struct sfs_file *fh;
	CHECK_EQ(sfs_open(w->fs, &kern, w->ino[a->id], O_WRONLY | O_APPEND, &fh), 0);
	for (uint64_t seq = 0; !atomic_load(&w->stop) && seq < WRITES_MAX; seq++) {
		/* Paced, and held while an image is checked, so that the files
		 * stay small and the writing happens while saves run. */
		if (seq % 4 == 3)
			usleep(50);
		while (atomic_load(&w->hold) && !atomic_load(&w->stop))
			usleep(200);
		uint8_t r[REC] = {0};
		le(r, (uint64_t)a->id, 8);
		le(r + 8, seq, 8);
		for (int j = 0; j < WRITERS; j++)
			le(r + 16 + 8 * j, atomic_load(&w->done[j]), 8);
		le(r + 56, crc_ref(0, r, 56), 4);
		CHECK_EQ(sfs_write(w->fs, &kern, fh, r, REC, 0), REC);
		atomic_store(&w->done[a->id], seq + 1);
	}
	CHECK_EQ(sfs_release(w->fs, fh), 0);
	return NULL;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The loaded files are a consistent cut: each a prefix of its sequence,
 * and no record whose writer had seen another's record k while the
 * image lacks that record. */
static uint64_t check_cut(struct sfs_fs *fs)
{
	uint64_t count[WRITERS];
	uint8_t *data[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		char name[16];
		snprintf(name, sizeof name, "/w%d", i);
		struct stat st;
		CHECK_EQ(sfs_path_stat(fs, &kern, name, &st, false), 0);
		CHECK_EQ(st.st_size % REC, 0);
		count[i] = (uint64_t)st.st_size / REC;
		data[i] = malloc((size_t)st.st_size + 1);
		CHECK_EQ(sfs_path_read_file(fs, &kern, name, data[i], (size_t)st.st_size),
		         st.st_size);
	}
	uint64_t total = 0;
	for (int i = 0; i < WRITERS; i++) {
		for (uint64_t s = 0; s < count[i]; s++) {
			const uint8_t *r = data[i] + s * REC;
			CHECK_EQ(crc_ref(0, r, 56), (uint32_t)rd64(r + 56) & 0xffffffffu);
			CHECK_EQ(rd64(r), (uint64_t)i);
			CHECK_EQ(rd64(r + 8), s);
			for (int j = 0; j < WRITERS; j++)
				CHECK(rd64(r + 16 + 8 * j) <= count[j]);
		}
		total += count[i];
		free(data[i]);
	}
	return total;
}

static void test_writers(bool quick)
{
	static struct wstate w;
	w.fs = new_fs(0, 0);
	atomic_store(&w.stop, false);
	atomic_store(&w.hold, false);
	for (int i = 0; i < WRITERS; i++) {
		char name[16];
		snprintf(name, sizeof name, "w%d", i);
		w.ino[i] = mkfile(w.fs, SFS_ROOT_INO, name, NULL, 0, 0);
		atomic_store(&w.done[i], 0);
	}
	mkfile(w.fs, SFS_ROOT_INO, "ballast", big, sizeof big, 0);
	pthread_t t[WRITERS];
	struct warg args[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		args[i] = (struct warg){&w, i};
		CHECK_EQ(pthread_create(&t[i], NULL, writer, &args[i]), 0);
	}
	char err[1024];
	const char *img = path_in("writers.img");
	uint64_t seen = 0;
	int saves = quick ? 3 : UNDER_TSAN ? 6 : 12;
	for (int k = 0; k < saves; k++) {
		usleep(2000 + (useconds_t)rng_below(&rng, 20000));
		CHECK_EQ(sfs_image_save(w.fs, img, NULL, err, sizeof err), 0);
		atomic_store(&w.hold, true);
		struct sfs_fs *b = new_fs(0, 0);
		CHECK_EQ(sfs_image_load(b, img, err, sizeof err), 0);
		seen += check_cut(b);
		consistent(b);
		sfs_fs_destroy(b);
		atomic_store(&w.hold, false);
	}
	atomic_store(&w.stop, true);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	consistent(w.fs);
	sfs_fs_destroy(w.fs);
	printf("writers: %d saves during %d appending threads, %llu records, every image a "
	       "consistent cut\n",
	       saves, WRITERS, (unsigned long long)seen);
}

/* ---- random trees: changes, save, load, compare, again ---- */

struct tree {
	sfs_ino_t dirs[256], files[1024];
	int ndirs, nfiles;
};

static void collect_tree(struct sfs_fs *fs, struct tree *t)
{
	static sfs_ino_t inos[8192];
	int n = all_inodes(fs, inos, 8192);
	t->ndirs = t->nfiles = 0;
	for (int i = 0; i < n; i++) {
		struct stat st;
		CHECK_EQ(sfs_getattr(fs, inos[i], &st), 0);
		if (S_ISDIR(st.st_mode) && t->ndirs < 256)
			t->dirs[t->ndirs++] = inos[i];
		else if (S_ISREG(st.st_mode) && t->nfiles < 1024)
			t->files[t->nfiles++] = inos[i];
	}
}

/* A name of `ino` in directory `dir`, if it has one there. */
struct find_name {
	sfs_ino_t ino;
	char name[SFS_NAME_MAX + 1];
};

static int find_one(void *ctx, const char *name, const struct stat *st, off_t next)
{
	(void)next;
	struct find_name *f = ctx;
	if (st->st_ino == f->ino && strcmp(name, ".") && strcmp(name, "..")) {
		snprintf(f->name, sizeof f->name, "%s", name);
		return 1;
	}
	return 0;
}

static void random_changes(struct sfs_fs *fs, int steps)
{
	for (int k = 0; k < steps; k++) {
		struct tree t;
		collect_tree(fs, &t);
		sfs_ino_t d = t.dirs[rng_below(&rng, (uint64_t)t.ndirs)];
		char name[32];
		snprintf(name, sizeof name, "n%d", (int)rng_below(&rng, 60));
		int op = (int)rng_below(&rng, 11);
		if (op <= 2 || t.nfiles == 0) {
			struct sfs_entry e;
			struct sfs_file *fh;
			if (sfs_create(fs, &kern, d, name, 0644, O_RDWR | O_CREAT, &e, &fh) == 0) {
				size_t len = (size_t)rng_below(&rng, 70000);
				off_t at = rng_below(&rng, 4) == 0 ? (off_t)rng_below(&rng, 1 << 24) : 0;
				sfs_write(fs, &kern, fh, big + rng_below(&rng, 1000), len, at);
				sfs_release(fs, fh);
				sfs_forget(fs, e.ino, 1);
			}
			continue;
		}
		sfs_ino_t f = t.files[rng_below(&rng, (uint64_t)t.nfiles)];
		struct sfs_file *fh;
		struct stat st = {0};
		switch (op) {
		case 3: /* append, or write in a hole */
			if (sfs_open(fs, &kern, f, O_RDWR, &fh) == 0) {
				sfs_getattr(fs, f, &st);
				sfs_write(fs, &kern, fh, big + 5, (size_t)rng_below(&rng, 9000),
				          st.st_size + (off_t)rng_below(&rng, 10000));
				sfs_release(fs, fh);
			}
			break;
		case 4:
			st.st_size = (off_t)rng_below(&rng, 100000);
			sfs_setattr(fs, &kern, f, &st, SFS_SET_SIZE, NULL, NULL);
			break;
		case 5:
		case 6: { /* unlink or rename one of its names */
			struct find_name fn = {.ino = f};
			for (int i = 0; i < t.ndirs && !fn.name[0]; i++) {
				struct sfs_file *dh;
				if (sfs_opendir(fs, &kern, t.dirs[i], &dh))
					continue;
				sfs_readdir(fs, dh, 0, false, find_one, &fn);
				sfs_releasedir(fs, dh);
				if (fn.name[0]) {
					if (op == 5)
						sfs_unlink(fs, &kern, t.dirs[i], fn.name);
					else
						sfs_rename(fs, &kern, t.dirs[i], fn.name, d, name, 0);
				}
			}
			break;
		}
		case 7:
			if (t.ndirs < 200)
				sfs_mkdir(fs, &kern, d, name, 0755, NULL);
			break;
		case 8:
			st.st_mode = (mode_t)rng_below(&rng, 010000);
			sfs_setattr(fs, &kern, f, &st, SFS_SET_MODE, NULL, NULL);
			sfs_setxattr(fs, &kern, f, "user.x", big, (size_t)rng_below(&rng, 100), 0);
			break;
		case 9:
			sfs_link(fs, &kern, f, d, name, NULL);
			break;
		default:
			if (sfs_open(fs, &kern, f, O_RDWR, &fh) == 0) {
				sfs_fallocate(fs, &kern, fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				              (off_t)rng_below(&rng, 50000), (off_t)rng_below(&rng, 50000) + 1);
				sfs_release(fs, fh);
			}
			break;
		}
	}
}

static void test_random(bool quick)
{
	atime_mode = SFS_ATIME_NEVER; /* comparing reads directories */
	compare_blocks = false;
	struct sfs_fs *a = new_fs(0, 0);
	const char *img = path_in("random.img");
	int rounds = quick ? 10 : UNDER_TSAN ? 8 : 60, total = 0;
	for (int r = 0; r < rounds; r++) {
		random_changes(a, 40);
		save_ok(a, img, NULL);
		struct sfs_fs *b = new_fs(0, 0);
		load_ok(b, img);
		consistent(b);
		total += compare(a, b);
		sfs_fs_destroy(b);
	}
	consistent(a);
	sfs_fs_destroy(a);
	atime_mode = SFS_ATIME_RELATIME;
	compare_blocks = true;
	printf("random trees: %d rounds of changes, %d inodes compared\n", rounds, total);
}

/* ---- the fuzzer's seed corpus (test_image --write-corpus DIR) ---- */

static void save_as(struct sfs_fs *fs, const char *out, const char *name)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", out, name);
	save_ok(fs, path, NULL);
	struct stat st;
	CHECK_EQ(stat(path, &st), 0);
	CHECK(st.st_size < 65536);
	printf("%s: %lld bytes\n", path, (long long)st.st_size);
}

static void write_corpus(const char *out)
{
	struct sfs_fs *fs = new_fs(0, 0);
	save_as(fs, out, "empty.img");
	/* one of everything, small */
	uint8_t a[128];
	sfs_ino_t d = mk(fs, SFS_ROOT_INO, "dir", S_IFDIR | 0750, 0);
	xset(fs, d, "system.posix_acl_access", a, acl(a, acl_dir, 6));
	xset(fs, d, "system.posix_acl_default", a, acl(a, acl_def, 5));
	sfs_ino_t f = mkfile(fs, d, "file", "hello, world\n", 13, 0);
	own(fs, f, 1000, 100);
	xset(fs, f, "user.note", "seed", 4);
	xset(fs, f, "trusted.t", "x", 1);
	uint8_t cap[20] = {0, 0, 0, 2, 1};
	xset(fs, f, "security.capability", cap, sizeof cap);
	chmod_(fs, f, 04711);
	CHECK_EQ(sfs_link(fs, &kern, f, SFS_ROOT_INO, "hardlink", NULL), 0);
	mksym(fs, SFS_ROOT_INO, "symlink", "dir/file");
	mk(fs, d, "fifo", S_IFIFO | 0600, 0);
	mk(fs, d, "socket", S_IFSOCK | 0755, 0);
	mk(fs, d, "null", S_IFCHR | 0666, makedev(1, 3));
	mk(fs, d, "disk", S_IFBLK | 0660, makedev(8, 0));
	sfs_ino_t sp = mkfile(fs, SFS_ROOT_INO, "sparse", "head", 4, 0);
	{
		struct sfs_file *fh;
		CHECK_EQ(sfs_open(fs, &kern, sp, O_RDWR, &fh), 0);
		CHECK_EQ(sfs_write(fs, &kern, fh, "tail", 4, (5ll << 30)), 4);
		CHECK_EQ(sfs_write(fs, &kern, fh, big, 9000, 20000), 9000);
		CHECK_EQ(sfs_release(fs, fh), 0);
	}
	mk(fs, mk(fs, d, "sub", S_IFDIR | 0700, 0), "deeper", S_IFDIR | 0700, 0);
	save_as(fs, out, "everything.img");
	sfs_fs_destroy(fs);
	/* many names in one directory */
	fs = new_fs(0, 0);
	for (int i = 0; i < 200; i++) {
		char name[32];
		snprintf(name, sizeof name, "n%03d", i);
		mkfile(fs, SFS_ROOT_INO, name, name, (size_t)(i % 5), 0);
	}
	save_as(fs, out, "names.img");
	sfs_fs_destroy(fs);
	/* shared data (1.1): whole copies, a part elsewhere, a file with itself */
	fs = new_fs(0, 0);
	sfs_ino_t s1 = mkfile(fs, SFS_ROOT_INO, "a", big, 5 * 4096 + 10, 0);
	sfs_ino_t s2 = mkfile(fs, SFS_ROOT_INO, "b", NULL, 0, 0);
	copy_range(fs, s1, 0, s2, 0, 5 * 4096 + 10);
	copy_range(fs, s1, 4096, s2, 8 * 4096, 3 * 4096);
	save_as(fs, out, "shares.img");
	sfs_fs_destroy(fs);
	/* crafted: a skippable record of a future type */
	struct craft c;
	c_small(&c);
	c_rec(&c, 0x7777, 1, (const uint8_t *)"future stuff", 12);
	c_small_rest(&c);
	c_end(&c);
	size_t len;
	const char *p = c_write(&c, "skip.img");
	uint8_t *bytes = read_file(p, &len);
	char path[1024];
	snprintf(path, sizeof path, "%s/skip.img", out);
	write_file(path, bytes, len);
	free(bytes);
	printf("%s: %zu bytes\n", path, len);
}

static void step_crc(bool quick)
{
	(void)quick;
	test_crc();
}

static void step_roundtrip(bool quick)
{
	test_roundtrip(false);
	if (!quick && !UNDER_TSAN)
		test_roundtrip(true);
}

static void step_empty(bool quick)
{
	(void)quick;
	test_empty();
}

static void step_crafted(bool quick)
{
	(void)quick;
	test_crafted();
}

static void step_shared(bool quick)
{
	(void)quick;
	test_shared();
}

static void step_damage(bool quick)
{
	(void)quick;
	test_damage();
}

static void step_limits(bool quick)
{
	(void)quick;
	test_limits();
}

static void step_faults(bool quick)
{
	(void)quick;
	test_faults();
	test_io_faults();
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	bool quick = test_quick(argc, argv);
	uint64_t seed = 0x5eed1a9e;
	rng.s = seed;
	/* Images go to a tmpfs where there is one: every save syncs its file
	 * and its directory, which on a busy disk costs more than all the
	 * rest, and proves nothing about sectorfs (the mount tests save to a
	 * real disk). */
	snprintf(dir, sizeof dir, "/dev/shm/test_image.XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof dir, "/tmp/test_image.XXXXXX");
		CHECK(mkdtemp(dir));
	}
	if (argc == 3 && !strcmp(argv[1], "--write-corpus")) {
		for (size_t i = 0; i < sizeof big; i++)
			big[i] = (uint8_t)rng_next(&rng);
		write_corpus(argv[2]);
		unlink(path_in("skip.img"));
		CHECK_EQ(rmdir(dir), 0);
		return 0;
	}
	printf("seed %llu, directory %s\n", (unsigned long long)seed, dir);
	struct {
		const char *name;
		void (*fn)(bool);
	} steps[] = {{"crc", step_crc},         {"round trip", step_roundtrip},
	             {"empty", step_empty},     {"crafted", step_crafted},
	             {"shared", step_shared},
	             {"damage", step_damage},   {"limits", step_limits},
	             {"faults", step_faults},   {"random", test_random},
	             {"writers", test_writers}};
	/* test_image [--quick] [STEP...]: only the steps named, if any. */
	int named = 0;
	for (int i = 1; i < argc; i++)
		named += strcmp(argv[i], "--quick") != 0;
	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
		bool run = named == 0;
		for (int k = 1; k < argc && !run; k++)
			run = !strcmp(argv[k], steps[i].name);
		if (!run)
			continue;
		struct timespec t0, t1, c0, c1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
		steps[i].fn(quick);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
		printf("  (%s: %.2f s, %.2f s of CPU)\n", steps[i].name,
		       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
		       (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9);
	}
	/* Clean up: only what this test made. */
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			unlink(path_in(de->d_name));
	if (d)
		closedir(d);
	CHECK_EQ(rmdir(dir), 0);
	return 0;
}
