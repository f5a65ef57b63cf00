/* SPDX-License-Identifier: MIT */
/* test_clone.c - sfs_clone / sfs_path_clone: a copy of a tree as cp -a
 * makes it, sharing every file's sectors.
 *
 * A tree with everything cp -a keeps (directories, files with holes and
 * unwritten space, symlinks, fifos, sockets, a device, hard links inside
 * and outside the tree, user/trusted/security xattrs, ACLs, set-id bits,
 * several owners, set times) is cloned as root and compared path by path
 * with its source: type, mode, owner, size, device, atime and mtime,
 * xattrs, contents and holes, readdir order, and which names are links of
 * one inode.  The clone must cost no sector (only metadata), share every
 * one, and diverge sector by sector when either side is written.  As an
 * ordinary user the copies are the user's, keep the groups the user may
 * chown to, lose set-id bits and the xattrs a user cannot set.  Every
 * refusal -- no read or search permission, no write on the destination, a
 * device node, an existing name, a directory into itself, nr_inodes, the
 * size limit -- gives cp's errno and a one-line message and leaves the
 * filesystem exactly as it was.  A clone taken while a writer runs is one
 * instant of it.  sfs_check() after every step.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/sysmacros.h>

#include "check.h"
#include "sectorfs.h"

static struct sfs_fs *fs;
static const struct sfs_cred root = {.uid = 0, .gid = 0};
static const gid_t user_groups[] = {1000, 50};
static const struct sfs_cred user = {.uid = 1000, .gid = 1000, .groups = user_groups, .ngroups = 2};

static void consistent(void)
{
	CHECK_CLEAN(sfs_check, fs);
}

static sfs_ino_t ino_of(const char *path)
{
	struct stat st;
	CHECK_EQ(sfs_path_stat(fs, &root, path, &st, false), 0);
	return st.st_ino;
}

static void write_at(const char *path, const void *buf, size_t len, off_t off)
{
	struct sfs_file *fh;
	CHECK_EQ(sfs_path_open(fs, &root, path, O_WRONLY | O_CREAT, 0644, &fh), 0);
	CHECK_EQ(sfs_write(fs, &root, fh, buf, len, off), (long long)len);
	CHECK_EQ(sfs_release(fs, fh), 0);
}

static void set_owner_mode(const char *path, uid_t uid, gid_t gid, mode_t mode)
{
	struct stat a = {.st_uid = uid, .st_gid = gid, .st_mode = mode};
	unsigned valid = SFS_SET_UID | SFS_SET_GID;
	if (mode)
		valid |= SFS_SET_MODE;
	CHECK_EQ(sfs_setattr(fs, &root, ino_of(path), &a, valid, NULL, NULL), 0);
}

static void set_times(const char *path, time_t a, time_t m)
{
	struct stat st = {.st_atim = {a, 111}, .st_mtim = {m, 222}};
	CHECK_EQ(sfs_setattr(fs, &root, ino_of(path), &st, SFS_SET_ATIME | SFS_SET_MTIME, NULL, NULL),
	         0);
}

static void xattr(const char *path, const char *name, const void *value, size_t len)
{
	CHECK_EQ(sfs_setxattr(fs, &root, ino_of(path), name, value, len, 0), 0);
}

/* An ACL in the kernel's format: user::rwx, user 1001 r-x, group::r-x,
 * mask::r-x, other::--- */
static const unsigned char acl[] = {2, 0, 0, 0,
                                    1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff,
                                    2, 0, 5, 0, 0xe9, 3, 0, 0,
                                    4, 0, 5, 0, 0xff, 0xff, 0xff, 0xff,
                                    0x10, 0, 5, 0, 0xff, 0xff, 0xff, 0xff,
                                    0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};

static char big[300 << 10];

/* /src: everything cp -a keeps. */
static void build_source(void)
{
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/src/a/b", 0755, true), 0);
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/src/sgid", 02775, false), 0);
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/src/empty", 0700, false), 0);
	write_at("/src/big", big, sizeof big, 0);
	write_at("/src/big", "tail", 4, 1 << 20);          /* a hole between */
	CHECK_EQ(sfs_path_write_file(fs, &root, "/src/small", "hello", 5, 0640), 0);
	CHECK_EQ(sfs_path_write_file(fs, &root, "/src/a/b/deep", big + 7, 9000, 0600), 0);
	CHECK_EQ(sfs_path_write_file(fs, &root, "/src/suid", "x", 1, 04755), 0);
	CHECK_EQ(sfs_path_write_file(fs, &root, "/src/mine", big + 9, 5000, 02755), 0);
	CHECK_EQ(sfs_path_write_file(fs, &root, "/src/empty-file", "", 0, 0644), 0);
	struct sfs_file *fh;
	CHECK_EQ(sfs_path_open(fs, &root, "/src/falloc", O_RDWR | O_CREAT, 0644, &fh), 0);
	CHECK_EQ(sfs_fallocate(fs, &root, fh, 0, 0, 5 << 12), 0);
	CHECK_EQ(sfs_write(fs, &root, fh, "w", 1, 4096), 1);
	CHECK_EQ(sfs_release(fs, fh), 0);
	CHECK_EQ(sfs_path_symlink(fs, &root, "a/b/deep", "/src/link"), 0);
	CHECK_EQ(sfs_path_symlink(fs, &root, "/nowhere", "/src/a/dangling"), 0);
	CHECK_EQ(sfs_path_mknod(fs, &root, "/src/fifo", S_IFIFO | 0620, 0), 0);
	CHECK_EQ(sfs_path_mknod(fs, &root, "/src/a/sock", S_IFSOCK | 0755, 0), 0);
	CHECK_EQ(sfs_path_mknod(fs, &root, "/src/dev", S_IFCHR | 0666, makedev(1, 3)), 0);
	CHECK_EQ(sfs_path_link(fs, &root, "/src/small", "/src/a/small-again", false), 0);
	CHECK_EQ(sfs_path_link(fs, &root, "/src/small", "/src/a/b/small-3", false), 0);
	CHECK_EQ(sfs_path_write_file(fs, &root, "/src/outside", "o", 1, 0644), 0);
	CHECK_EQ(sfs_path_link(fs, &root, "/src/outside", "/elsewhere", false), 0);
	xattr("/src/small", "user.colour", "blue", 4);
	xattr("/src/small", "trusted.secret", "t", 1);
	xattr("/src/a", "user.dir", "d", 1);
	xattr("/src/link", "security.label", "l", 1);
	xattr("/src/big", "system.posix_acl_access", acl, sizeof acl);
	xattr("/src/a", "system.posix_acl_default", acl, sizeof acl);
	set_owner_mode("/src/small", 1000, 50, 0);
	set_owner_mode("/src/mine", 1000, 1000, 02755);
	set_owner_mode("/src/sgid", 1000, 50, 02775);
	set_owner_mode("/src/suid", 1001, 1001, 04755);
	set_owner_mode("/src/a/b/deep", 1001, 1000, 0);
	/* Times last: every change above moved some. */
	const char *timed[] = {"/src/big", "/src/small", "/src/a/b/deep", "/src/a/b", "/src/a",
	                       "/src/link", "/src/fifo", "/src/sgid", "/src"};
	for (size_t i = 0; i < sizeof timed / sizeof *timed; i++)
		set_times(timed[i], 1000000 + (time_t)i, 2000000 + (time_t)i);
}

/* ---- comparing two trees ---- */

struct names {
	char n[64][SFS_NAME_MAX + 1];
	int c;
};

static int collect(void *ctx, const char *name, const struct stat *st)
{
	struct names *ns = ctx;
	(void)st;
	CHECK(ns->c < 64);
	snprintf(ns->n[ns->c++], sizeof ns->n[0], "%s", name);
	return 0;
}

/* Inode numbers of the source, and of the copy, by position in the walk:
 * the link structure must be the same. */
static sfs_ino_t seen_a[256], seen_b[256];
static int nseen;

enum owners { SAME, AS_USER };

static void expect_xattrs(const char *a, const char *b, enum owners how)
{
	char la[1024], lb[1024];
	ssize_t na = sfs_listxattr(fs, &root, ino_of(a), la, sizeof la);
	ssize_t nb = sfs_listxattr(fs, &root, ino_of(b), lb, sizeof lb);
	CHECK(na >= 0 && nb >= 0);
	/* Every attribute of the copy is the source's, with its value; the
	 * source's are all there, but those a user could not set. */
	char *want = la;
	ssize_t nwant = 0;
	for (ssize_t o = 0; o < na; o += (ssize_t)strlen(la + o) + 1) {
		const char *name = la + o;
		bool kept = how == SAME || !strncmp(name, "user.", 5) ||
		            !strncmp(name, "system.posix_acl_", 17);
		if (kept) {
			memmove(want + nwant, name, strlen(name) + 1);
			nwant += (ssize_t)strlen(name) + 1;
		}
	}
	CHECK_EQ(nwant, nb);
	CHECK(memcmp(want, lb, (size_t)nb) == 0);
	for (ssize_t o = 0; o < nb; o += (ssize_t)strlen(lb + o) + 1) {
		char va[256], vb[256];
		ssize_t x = sfs_getxattr(fs, &root, ino_of(a), lb + o, va, sizeof va);
		ssize_t y = sfs_getxattr(fs, &root, ino_of(b), lb + o, vb, sizeof vb);
		CHECK_EQ(x, y);
		CHECK(x >= 0 && memcmp(va, vb, (size_t)x) == 0);
	}
}

static void expect_data(const char *a, const char *b, off_t size)
{
	struct sfs_file *fa, *fb;
	CHECK_EQ(sfs_path_open(fs, &root, a, O_RDONLY, 0, &fa), 0);
	CHECK_EQ(sfs_path_open(fs, &root, b, O_RDONLY, 0, &fb), 0);
	static char ba[2 << 20], bb[2 << 20];
	CHECK(size <= (off_t)sizeof ba);
	CHECK_EQ(sfs_read(fs, fa, ba, sizeof ba, 0), size);
	CHECK_EQ(sfs_read(fs, fb, bb, sizeof bb, 0), size);
	CHECK(memcmp(ba, bb, (size_t)size) == 0);
	for (off_t off = 0; off < size; off += 4096) {
		CHECK_EQ(sfs_lseek(fs, fa, off, SEEK_DATA), sfs_lseek(fs, fb, off, SEEK_DATA));
		CHECK_EQ(sfs_lseek(fs, fa, off, SEEK_HOLE), sfs_lseek(fs, fb, off, SEEK_HOLE));
	}
	CHECK_EQ(sfs_release(fs, fa), 0);
	CHECK_EQ(sfs_release(fs, fb), 0);
}

static void expect_same_one(const char *a, const char *b, enum owners how)
{
	struct stat sa, sb;
	CHECK_EQ(sfs_path_stat(fs, &root, a, &sa, false), 0);
	CHECK_EQ(sfs_path_stat(fs, &root, b, &sb, false), 0);
	mode_t mode = sa.st_mode;
	if (how == AS_USER) {
		CHECK_EQ(sb.st_uid, user.uid);
		bool group = sa.st_gid == user.gid || sa.st_gid == 1000 || sa.st_gid == 50;
		CHECK_EQ(sb.st_gid, group ? sa.st_gid : user.gid);
		if (sa.st_uid != user.uid || !group)
			mode &= ~(mode_t)(S_ISUID | S_ISGID | S_ISVTX);
	} else {
		CHECK_EQ(sb.st_uid, sa.st_uid);
		CHECK_EQ(sb.st_gid, sa.st_gid);
	}
	CHECK_EQ(sb.st_mode, mode);
	CHECK_EQ(sb.st_size, sa.st_size);
	CHECK_EQ(sb.st_rdev, sa.st_rdev);
	CHECK_EQ(sb.st_blocks, sa.st_blocks);
	CHECK_EQ(sb.st_mtim.tv_sec, sa.st_mtim.tv_sec);
	CHECK_EQ(sb.st_mtim.tv_nsec, sa.st_mtim.tv_nsec);
	CHECK_EQ(sb.st_atim.tv_sec, sa.st_atim.tv_sec);
	CHECK_EQ(sb.st_atim.tv_nsec, sa.st_atim.tv_nsec);
	expect_xattrs(a, b, how);
	if (S_ISREG(sa.st_mode))
		expect_data(a, b, sa.st_size);
	if (S_ISLNK(sa.st_mode)) {
		char ta[256], tb[256];
		CHECK_EQ(sfs_readlink(fs, sa.st_ino, ta, sizeof ta), sfs_readlink(fs, sb.st_ino, tb, sizeof tb));
		CHECK(strcmp(ta, tb) == 0);
	}
	/* The same link structure: an inode met before in one tree is the
	 * one met at the same place in the other. */
	int at_a = -1, at_b = -1;
	for (int i = 0; i < nseen; i++) {
		if (seen_a[i] == sa.st_ino)
			at_a = i;
		if (seen_b[i] == sb.st_ino)
			at_b = i;
	}
	CHECK_EQ(at_a, at_b);
	if (at_a < 0) {
		CHECK(nseen < 256);
		seen_a[nseen] = sa.st_ino, seen_b[nseen] = sb.st_ino, nseen++;
	}
	if (!S_ISDIR(sa.st_mode))
		return;
	static struct names na[8], nb[8];
	static int depth;
	CHECK(depth < 8);
	struct names *xa = &na[depth], *xb = &nb[depth];
	xa->c = xb->c = 0;
	CHECK_EQ(sfs_path_list(fs, &root, a, collect, xa), 0);
	CHECK_EQ(sfs_path_list(fs, &root, b, collect, xb), 0);
	CHECK_EQ(xa->c, xb->c);
	depth++;
	for (int i = 0; i < xa->c; i++) {
		CHECK(strcmp(xa->n[i], xb->n[i]) == 0); /* readdir order too */
		char pa[512], pb[512];
		snprintf(pa, sizeof pa, "%s/%s", a, xa->n[i]);
		snprintf(pb, sizeof pb, "%s/%s", b, xb->n[i]);
		expect_same_one(pa, pb, how);
	}
	depth--;
}

static void expect_same_tree(const char *a, const char *b, enum owners how)
{
	nseen = 0;
	expect_same_one(a, b, how);
}

/* ---- what a failed clone must leave ---- */

struct state {
	struct sfs_stats st;
	struct statvfs vfs;
};

static struct state state_now(void)
{
	struct state s;
	sfs_get_stats(fs, &s.st);
	CHECK_EQ(sfs_statfs(fs, &s.vfs), 0);
	return s;
}

static void expect_unchanged(const struct state *before, const char *dst)
{
	struct state now = state_now();
	CHECK_EQ(now.st.inodes, before->st.inodes);
	CHECK_EQ(now.st.sectors, before->st.sectors);
	CHECK_EQ(now.st.saved_sectors, before->st.saved_sectors);
	CHECK_EQ(now.st.small_bytes, before->st.small_bytes);
	CHECK_EQ(now.st.reserved, before->st.reserved);
	CHECK_EQ(now.vfs.f_ffree, before->vfs.f_ffree);
	struct stat st;
	if (dst)
		CHECK_EQ(sfs_path_stat(fs, &root, dst, &st, false), -ENOENT);
	consistent();
}

static void expect_refusal(const struct sfs_cred *cr, const char *from, const char *to, int rc,
                           const char *words)
{
	struct state before = state_now();
	char err[256] = "unset";
	CHECK_EQ(sfs_path_clone(fs, cr, from, to, err, sizeof err), rc);
	if (!strstr(err, words) || strchr(err, '\n')) {
		fprintf(stderr, "clone %s %s: message \"%s\" lacks \"%s\"\n", from, to, err, words);
		CHECK(0);
	}
	expect_unchanged(&before, rc == -EEXIST ? NULL : to);
}

/* ---- the tests ---- */

static void test_as_root(void)
{
	struct state before = state_now();
	char err[256] = "";
	CHECK_EQ(sfs_path_clone(fs, &root, "/src", "/copy", err, sizeof err), 0);
	CHECK_EQ(err[0], 0);
	consistent();
	expect_same_tree("/src", "/copy", SAME);
	/* Metadata only: not one sector more, every one shared. */
	struct state after = state_now();
	CHECK_EQ(after.st.sectors, before.st.sectors);
	CHECK(after.st.saved_sectors >= (sizeof big + 9000 + 5000) / 4096);
	CHECK_EQ(after.st.saved_sectors - before.st.saved_sectors, before.st.sectors);
	CHECK(after.st.reserved - before.st.reserved < 64 << 10);
	/* The link that leaves the tree is not followed out of it. */
	struct stat st;
	CHECK_EQ(sfs_path_stat(fs, &root, "/copy/outside", &st, false), 0);
	CHECK_EQ(st.st_nlink, 1);
	CHECK_EQ(sfs_path_stat(fs, &root, "/copy/a/small-again", &st, false), 0);
	CHECK_EQ(st.st_nlink, 3);

	/* Writes on either side diverge, one sector at a time. */
	write_at("/copy/big", "CHANGED", 7, 5000);
	write_at("/src/a/b/deep", "changed", 7, 100);
	char buf[16];
	CHECK_EQ(sfs_path_read_file(fs, &root, "/src/big", buf, 16), 16);
	CHECK(memcmp(buf, big, 16) == 0);
	struct sfs_file *fh;
	CHECK_EQ(sfs_path_open(fs, &root, "/copy/big", O_RDONLY, 0, &fh), 0);
	CHECK_EQ(sfs_read(fs, fh, buf, 7, 5000), 7);
	CHECK(memcmp(buf, "CHANGED", 7) == 0);
	CHECK_EQ(sfs_release(fs, fh), 0);
	CHECK_EQ(sfs_path_open(fs, &root, "/copy/a/b/deep", O_RDONLY, 0, &fh), 0);
	CHECK_EQ(sfs_read(fs, fh, buf, 7, 100), 7);
	CHECK(memcmp(buf, big + 107, 7) == 0);
	CHECK_EQ(sfs_release(fs, fh), 0);
	struct state diverged = state_now();
	CHECK_EQ(diverged.st.sectors, after.st.sectors + 2);
	consistent();
	CHECK_EQ(sfs_path_remove_all(fs, &root, "/copy"), 0);
	struct state gone = state_now();
	CHECK_EQ(gone.st.saved_sectors, before.st.saved_sectors);
	consistent();
}

static void test_as_user(void)
{
	/* What the user can read: everything but the device and the files
	 * only others may read. */
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/u", 0777, false), 0);
	CHECK_EQ(sfs_path_clone(fs, &root, "/src", "/u/src", NULL, 0), 0);
	CHECK_EQ(sfs_path_unlink(fs, &root, "/u/src/dev"), 0);
	set_owner_mode("/u/src/a/b/deep", 1001, 1000, 0644);
	set_owner_mode("/u/src/empty", 0, 0, 0755);
	set_owner_mode("/u/src/big", 0, 0, 0754); /* the ACL's other entry too */
	char err[256] = "";
	int rc = sfs_path_clone(fs, &user, "/u/src", "/u/mine", err, sizeof err);
	if (rc)
		fprintf(stderr, "%s\n", err);
	CHECK_EQ(rc, 0);
	consistent();
	expect_same_tree("/u/src", "/u/mine", AS_USER);
	CHECK_EQ(sfs_path_remove_all(fs, &root, "/u/mine"), 0);
	consistent();
}

static void test_refusals(void)
{
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/r", 0777, false), 0);
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/r/ro", 0555, false), 0);
	/* A device: only a privileged caller makes one. */
	expect_refusal(&user, "/src/dev", "/r/x", -EPERM, "cannot create special file .");
	/* No read permission on a file... */
	set_owner_mode("/u/src/a/b/deep", 1001, 1001, 0600);
	expect_refusal(&user, "/u/src", "/r/x", -EACCES, "cannot read a/b/deep");
	/* ... a directory it cannot list or search. */
	set_owner_mode("/u/src/a/b/deep", 1001, 1001, 0644);
	set_owner_mode("/u/src/a/b", 1001, 1001, 0311);
	expect_refusal(&user, "/u/src", "/r/x", -EACCES, "cannot open directory a/b");
	set_owner_mode("/u/src/a/b", 1001, 1001, 0755);
	/* The destination: not writable, taken, missing, inside the source. */
	expect_refusal(&user, "/u/src", "/r/ro/x", -EACCES, "cannot create x");
	expect_refusal(&root, "/src", "/r", -EEXIST, "cannot create r");
	expect_refusal(&root, "/src", "/nowhere/x", -ENOENT, "/nowhere/x");
	expect_refusal(&root, "/missing", "/r/x", -ENOENT, "/missing");
	expect_refusal(&root, "/src", "/src/a/inside", -EINVAL, "into itself");
	expect_refusal(&root, "/src", "/src/inside", -EINVAL, "into itself");
	/* nr_inodes: the copy's names, counted before anything is made. */
	struct sfs_stats st;
	sfs_get_stats(fs, &st);
	struct statvfs vfs;
	CHECK_EQ(sfs_statfs(fs, &vfs), 0);
	uint64_t used = 1000000 - vfs.f_ffree;
	CHECK_EQ(sfs_fs_set_limits(fs, 0, used + 10), 0);
	expect_refusal(&root, "/src", "/r/x", -ENOSPC, "not enough inodes");
	/* The size limit, reached half way through: everything undone. */
	CHECK_EQ(sfs_fs_set_limits(fs, 0, 1000000), 0);
	sfs_get_stats(fs, &st);
	bool made = false;
	int failures = 0;
	for (uint64_t room = 0; !made && room < 64 << 10; room += 1536) {
		CHECK_EQ(sfs_fs_set_limits(fs, st.reserved + room, 1000000), 0);
		struct state before = state_now();
		char err[256];
		int rc = sfs_path_clone(fs, &root, "/src", "/r/x", err, sizeof err);
		if (rc == 0) {
			CHECK_EQ(sfs_path_remove_all(fs, &root, "/r/x"), 0);
			made = true;
			continue;
		}
		CHECK_EQ(rc, -ENOSPC);
		expect_unchanged(&before, "/r/x");
		failures++;
	}
	CHECK(made);
	printf("size limit: %d clones refused part way, all undone\n", failures);
	CHECK_EQ(sfs_fs_set_limits(fs, 0, 1000000), 0);
	/* A file alone, a symlink alone (not followed). */
	char err[256];
	CHECK_EQ(sfs_path_clone(fs, &root, "/src/big", "/r/big", err, sizeof err), 0);
	CHECK_EQ(sfs_path_clone(fs, &root, "/src/link", "/r/link", err, sizeof err), 0);
	expect_same_one("/src/big", "/r/big", SAME);
	struct stat lst;
	CHECK_EQ(sfs_path_stat(fs, &root, "/r/link", &lst, false), 0);
	CHECK(S_ISLNK(lst.st_mode));
	consistent();
}

/* A writer keeps two files equal, one write after the other; a clone
 * taken meanwhile holds them equal or the first one step ahead. */
static _Atomic int stop;
static void *writer(void *arg)
{
	(void)arg;
	struct sfs_file *a, *b;
	CHECK_EQ(sfs_path_open(fs, &root, "/w/a", O_WRONLY, 0, &a), 0);
	CHECK_EQ(sfs_path_open(fs, &root, "/w/b", O_WRONLY, 0, &b), 0);
	for (uint32_t n = 1; !atomic_load(&stop); n++) {
		CHECK_EQ(sfs_write(fs, &root, a, &n, sizeof n, 8192), sizeof n);
		CHECK_EQ(sfs_write(fs, &root, b, &n, sizeof n, 8192), sizeof n);
	}
	CHECK_EQ(sfs_release(fs, a), 0);
	CHECK_EQ(sfs_release(fs, b), 0);
	return NULL;
}

static uint32_t counter(const char *path)
{
	uint32_t n = 0;
	struct sfs_file *fh;
	CHECK_EQ(sfs_path_open(fs, &root, path, O_RDONLY, 0, &fh), 0);
	CHECK_EQ(sfs_read(fs, fh, &n, sizeof n, 8192), sizeof n);
	CHECK_EQ(sfs_release(fs, fh), 0);
	return n;
}

static void test_instant(void)
{
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/w", 0755, false), 0);
	uint32_t zero = 0;
	write_at("/w/a", &zero, sizeof zero, 8192);
	write_at("/w/b", &zero, sizeof zero, 8192);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, writer, NULL), 0);
	for (int i = 0; i < 40; i++) {
		char to[32];
		snprintf(to, sizeof to, "/w%d", i);
		CHECK_EQ(sfs_path_clone(fs, &root, "/w", to, NULL, 0), 0);
		char pa[40], pb[40];
		snprintf(pa, sizeof pa, "%s/a", to);
		snprintf(pb, sizeof pb, "%s/b", to);
		uint32_t x = counter(pa), y = counter(pb);
		CHECK(x == y || x == y + 1);
		CHECK_EQ(sfs_path_remove_all(fs, &root, to), 0);
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	consistent();
}

int main(void)
{
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 13 + (i >> 12) + 1);
	/* noatime: the comparisons read both trees, which must not move times. */
	struct sfs_config cfg = {.max_inodes = 1000000, .atime = SFS_ATIME_NEVER};
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
	build_source();
	consistent();
	test_as_root();
	test_as_user();
	test_refusals();
	test_instant();
	sfs_fs_destroy(fs);
	printf("ok\n");
	return 0;
}
