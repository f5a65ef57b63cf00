/* SPDX-License-Identifier: MIT */
/* test_path.c - the path API (sfs_path_*), through the public API only.
 *
 * Resolution rules of path_resolution(7) (".", "..", repeated and trailing
 * slashes, relative and absolute symlinks, the 40-link limit, O_NOFOLLOW,
 * O_CREAT|O_EXCL), mkdir -p, rm -r of a deep and of a wide tree, listing,
 * whole-file helpers.
 *
 * Lookup counts are checked exactly, not just for leaks: after every
 * section each inode in the tree must hold no lookup at all, which
 * sfs_forget(ino, 1) == -EINVAL proves without changing anything (a leak
 * would make it succeed; an extra forget inside the path API would have
 * failed there and left a count we would see later as a freed inode).
 * At the end the root is emptied, the filesystem must hold exactly one
 * inode, and sfs_check must find nothing wrong.
 */
#include <errno.h>
#include <fcntl.h>

#include "check.h"
#include "sectorfs.h"

static struct sfs_fs *fs;
static const struct sfs_cred user = {.uid = 1000, .gid = 1000, .umask = 022};

/* ---- helpers ---- */

static sfs_ino_t ino_of(const char *path, bool follow)
{
	struct stat st;
	int rc = sfs_path_stat(fs, NULL, path, &st, follow);
	if (rc) {
		fprintf(stderr, "stat %s: %d\n", path, rc);
		CHECK_EQ(rc, 0);
	}
	return st.st_ino;
}

static int stat_rc(const char *path, bool follow)
{
	struct stat st;
	return sfs_path_stat(fs, NULL, path, &st, follow);
}

static void put(const char *path, const char *text)
{
	CHECK_EQ(sfs_path_write_file(fs, NULL, path, text, strlen(text), 0644), 0);
}

static void expect_text(const char *path, const char *text)
{
	char buf[256];
	ssize_t n = sfs_path_read_file(fs, NULL, path, buf, sizeof buf);
	CHECK_EQ(n, (ssize_t)strlen(text));
	CHECK(memcmp(buf, text, (size_t)n) == 0);
}

static void mkdir_ok(const char *path)
{
	CHECK_EQ(sfs_path_mkdir(fs, NULL, path, 0755, false), 0);
}

static void symlink_ok(const char *target, const char *path)
{
	CHECK_EQ(sfs_path_symlink(fs, NULL, target, path), 0);
}

static int open_rc(const char *path, int flags)
{
	struct sfs_file *fh;
	int rc = sfs_path_open(fs, NULL, path, flags, 0644, &fh);
	if (rc == 0)
		CHECK_EQ(sfs_release(fs, fh), 0);
	else
		CHECK(fh == NULL);
	return rc;
}

/* No inode under `path` (a directory), nor itself, holds a lookup. */
static int no_lookups_fn(void *ctx, const char *name, const struct stat *st)
{
	const char *dir = ctx;
	CHECK_EQ(sfs_forget(fs, st->st_ino, 1), -EINVAL);
	if (S_ISDIR(st->st_mode)) {
		char sub[4096];
		snprintf(sub, sizeof sub, "%s/%s", dir, name);
		CHECK_EQ(sfs_path_list(fs, NULL, sub, no_lookups_fn, sub), 0);
	}
	return 0;
}

static void check_no_lookups(void)
{
	CHECK_EQ(sfs_forget(fs, SFS_ROOT_INO, 1), -EINVAL);
	CHECK_EQ(sfs_path_list(fs, NULL, "/", no_lookups_fn, ""), 0);
}

static void check_fs(void)
{
	CHECK_CLEAN(sfs_check, fs);
	check_no_lookups();
}

/* ---- resolution ---- */

static void test_resolution(void)
{
	mkdir_ok("/a");
	mkdir_ok("a/b"); /* relative paths start at the root too */
	put("/a/b/f", "hello");
	sfs_ino_t f = ino_of("/a/b/f", true);
	sfs_ino_t a = ino_of("/a", true), b = ino_of("/a/b", true);
	CHECK_EQ(ino_of("a/b/f", true), f);
	CHECK_EQ(ino_of("//a///b//f", true), f);
	CHECK_EQ(ino_of("/a/./b/../b/./f", true), f);
	CHECK_EQ(ino_of("/../../a/b/f", true), f); /* ".." of the root is the root */
	CHECK_EQ(ino_of("/a/b/", true), b);
	CHECK_EQ(ino_of("/a/b/.", true), b);
	CHECK_EQ(ino_of("/a/b/..", true), a);
	CHECK_EQ(ino_of("/", true), SFS_ROOT_INO);
	CHECK_EQ(ino_of("///", false), SFS_ROOT_INO);
	CHECK_EQ(ino_of(".", true), SFS_ROOT_INO);
	CHECK_EQ(ino_of("..", true), SFS_ROOT_INO);
	CHECK_EQ(ino_of("a/..", true), SFS_ROOT_INO);

	/* A trailing slash wants a directory; a file is no directory. */
	CHECK_EQ(stat_rc("/a/b/f/", true), -ENOTDIR);
	CHECK_EQ(stat_rc("/a/b/f/", false), -ENOTDIR);
	CHECK_EQ(stat_rc("/a/b/f/.", true), -ENOTDIR);
	CHECK_EQ(stat_rc("/a/b/f/..", true), -ENOTDIR);
	CHECK_EQ(stat_rc("/a/b/f/x", true), -ENOTDIR);
	CHECK_EQ(stat_rc("/a/x", true), -ENOENT);
	CHECK_EQ(stat_rc("/a/x/y", true), -ENOENT);
	CHECK_EQ(stat_rc("", true), -ENOENT);
	struct stat st;
	CHECK_EQ(sfs_path_stat(fs, NULL, NULL, &st, true), -EFAULT);
	CHECK_EQ(sfs_path_stat(fs, NULL, "/a", NULL, true), -EFAULT);
	CHECK_EQ(sfs_path_stat(NULL, NULL, "/a", &st, true), -EFAULT);

	/* Name and path length limits. */
	char name[300];
	memset(name, 'n', sizeof name);
	name[0] = '/';
	name[256] = '\0'; /* "/" + 255 */
	put(name, "long");
	expect_text(name, "long");
	name[256] = 'n';
	name[257] = '\0'; /* "/" + 256 */
	CHECK_EQ(stat_rc(name, true), -ENAMETOOLONG);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, name, 0755, true), -ENAMETOOLONG);
	name[256] = '\0';
	CHECK_EQ(sfs_path_unlink(fs, NULL, name), 0);

	/* 2045 "./" and "a/b/f": 4095 bytes, the most a path may have. */
	static char longp[4100];
	for (int i = 0; i < 2045; i++)
		memcpy(longp + 2 * i, "./", 2);
	memcpy(longp + 4090, "a/b/f", 6);
	CHECK_EQ(strlen(longp), 4095);
	CHECK_EQ(ino_of(longp, true), f);
	memmove(longp + 1, longp, 4096);
	longp[0] = '/';
	CHECK_EQ(strlen(longp), 4096);
	CHECK_EQ(stat_rc(longp, true), -ENAMETOOLONG);

	/* Search permission is checked along the way. */
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/priv", 0700, false), 0);
	put("/priv/x", "secret");
	CHECK_EQ(sfs_path_stat(fs, &user, "/priv/x", &st, true), -EACCES);
	CHECK_EQ(sfs_path_stat(fs, &user, "/priv", &st, true), 0);
	CHECK_EQ(sfs_path_stat(fs, &user, "/priv/../a/b/f", &st, true), -EACCES);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/priv"), 0);
	check_fs();
}

/* ---- symlinks ---- */

static void test_symlinks(void)
{
	sfs_ino_t f = ino_of("/a/b/f", true), a = ino_of("/a", true), b = ino_of("/a/b", true);
	struct stat st;

	symlink_ok("b/f", "/a/rel");      /* relative: from the link's directory */
	symlink_ok("/a/b/f", "/a/abs");   /* absolute: from the root */
	symlink_ok("../b", "/a/b/up");    /* relative, climbing */
	symlink_ok("a/b", "/d");          /* to a directory */
	symlink_ok("nowhere", "/dang");   /* dangling */
	symlink_ok("a/b/f/", "/tsf");     /* a target with a trailing slash */
	symlink_ok("a/b/", "/tsd");
	symlink_ok("loop", "/loop");      /* itself */

	CHECK_EQ(ino_of("/a/rel", true), f);
	CHECK_EQ(ino_of("/a/abs", true), f);
	CHECK_EQ(ino_of("/a/b/up/f", true), f);
	CHECK_EQ(ino_of("/d/f", true), f);
	CHECK_EQ(ino_of("/d/up/up/up/f", true), f);
	CHECK_EQ(ino_of("/d", true), b);
	CHECK_EQ(ino_of("/d/..", true), a); /* physical: the parent of the target */
	CHECK_EQ(ino_of("/d/", false), b);  /* a trailing slash follows */
	CHECK_EQ(ino_of("/d/.", false), b);
	CHECK(ino_of("/d", false) != b);    /* lstat: the link itself */
	CHECK_EQ(sfs_path_stat(fs, NULL, "/a/rel", &st, false), 0);
	CHECK(S_ISLNK(st.st_mode));
	CHECK_EQ(st.st_size, 3);
	CHECK_EQ(stat_rc("/a/rel/", true), -ENOTDIR);
	CHECK_EQ(stat_rc("/a/rel/", false), -ENOTDIR);
	CHECK_EQ(stat_rc("/dang", true), -ENOENT);
	CHECK_EQ(stat_rc("/dang", false), 0);
	CHECK_EQ(stat_rc("/dang/x", false), -ENOENT);
	CHECK_EQ(stat_rc("/tsf", true), -ENOTDIR);
	CHECK_EQ(stat_rc("/tsf", false), 0);
	CHECK_EQ(ino_of("/tsd", true), b);
	CHECK_EQ(stat_rc("/loop", true), -ELOOP);
	CHECK_EQ(stat_rc("/loop", false), 0);
	CHECK_EQ(stat_rc("/loop/x", false), -ELOOP);
	CHECK_EQ(stat_rc("/loop/", false), -ELOOP);
	expect_text("/a/rel", "hello");
	expect_text("/d/f", "hello");

	/* Chains: 40 links are followed, the 41st is one too many.  Targets
	 * alternate between relative and absolute. */
	mkdir_ok("/c");
	mkdir_ok("/c/dir");
	put("/c/dir/x", "x");
	put("/c/t", "t");
	char path[64], target[64];
	for (int i = 1; i <= 41; i++) {
		snprintf(path, sizeof path, "/c/l%d", i);
		if (i == 1)
			snprintf(target, sizeof target, "t");
		else if (i % 2)
			snprintf(target, sizeof target, "l%d", i - 1);
		else
			snprintf(target, sizeof target, "/c/l%d", i - 1);
		symlink_ok(target, path);
		snprintf(path, sizeof path, "/c/k%d", i);
		if (i == 1)
			snprintf(target, sizeof target, "dir");
		else
			snprintf(target, sizeof target, "k%d", i - 1);
		symlink_ok(target, path);
	}
	sfs_ino_t t = ino_of("/c/t", true);
	CHECK_EQ(ino_of("/c/l40", true), t);
	CHECK_EQ(stat_rc("/c/l41", true), -ELOOP);
	CHECK_EQ(stat_rc("/c/l41", false), 0);
	CHECK_EQ(open_rc("/c/l40", O_RDONLY), 0);
	CHECK_EQ(open_rc("/c/l41", O_RDONLY), -ELOOP);
	CHECK_EQ(ino_of("/c/k40/x", true), ino_of("/c/dir/x", true));
	CHECK_EQ(stat_rc("/c/k41/x", true), -ELOOP);
	/* The limit is on the whole walk, not per link: 20 + 21 = 41. */
	symlink_ok("/c/k20/../l20", "/c/mix");
	CHECK_EQ(ino_of("/c/k20/../l20", true), t);
	CHECK_EQ(stat_rc("/c/mix", true), -ELOOP);

	/* Opening: O_NOFOLLOW concerns the last component only. */
	CHECK_EQ(open_rc("/a/rel", O_RDONLY | O_NOFOLLOW), -ELOOP);
	CHECK_EQ(open_rc("/d/f", O_RDONLY | O_NOFOLLOW), 0);
	CHECK_EQ(open_rc("/a/rel", O_RDONLY), 0);
	CHECK_EQ(open_rc("/loop", O_RDONLY), -ELOOP);
	/* O_CREAT|O_EXCL never follows: a symlink, even dangling, exists. */
	CHECK_EQ(open_rc("/a/rel", O_WRONLY | O_CREAT | O_EXCL), -EEXIST);
	CHECK_EQ(open_rc("/dang", O_WRONLY | O_CREAT | O_EXCL), -EEXIST);
	CHECK_EQ(stat_rc("/nowhere", false), -ENOENT);
	CHECK_EQ(open_rc("/dang", O_WRONLY | O_CREAT | O_NOFOLLOW), -ELOOP);
	CHECK_EQ(stat_rc("/nowhere", false), -ENOENT);
	/* O_CREAT alone follows, and a dangling link creates its target. */
	CHECK_EQ(open_rc("/dang", O_WRONLY | O_CREAT), 0);
	CHECK_EQ(sfs_path_stat(fs, NULL, "/nowhere", &st, false), 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(ino_of("/dang", true), st.st_ino);
	CHECK_EQ(open_rc("/a/rel", O_WRONLY | O_CREAT), 0);
	expect_text("/a/b/f", "hello"); /* no O_TRUNC: untouched */
	CHECK_EQ(open_rc("/loop", O_WRONLY | O_CREAT), -ELOOP);
	symlink_ok("/c/newdir/f", "/c/dangdir"); /* its directory is missing */
	CHECK_EQ(open_rc("/c/dangdir", O_WRONLY | O_CREAT), -ENOENT);
	symlink_ok("sub/", "/c/dangslash");
	CHECK_EQ(open_rc("/c/dangslash", O_WRONLY | O_CREAT), -EISDIR);

	/* Symlinks are not followed when removing or renaming them. */
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/c/dangslash"), 0);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/d", "/d2", 0), 0);
	CHECK_EQ(ino_of("/d2/f", true), f);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/d2", "/d", 0), 0);
	CHECK_EQ(sfs_path_rmdir(fs, NULL, "/d"), -ENOTDIR);
	CHECK_EQ(sfs_path_rmdir(fs, NULL, "/d/"), -ENOTDIR);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/d/"), -ENOTDIR); /* as Linux: the link is no dir */
	CHECK_EQ(ino_of("/a/b", true), b);
	check_fs();
}

/* ---- open ---- */

static void test_open(void)
{
	struct sfs_file *fh;
	struct stat st;
	CHECK_EQ(sfs_path_open(fs, NULL, "/a", O_RDONLY, 0, NULL), -EFAULT);
	CHECK_EQ(sfs_path_open(fs, NULL, NULL, O_RDONLY, 0, &fh), -EFAULT);
	CHECK_EQ(open_rc("", O_RDONLY), -ENOENT);
	CHECK_EQ(open_rc("/a/none", O_RDONLY), -ENOENT);
	CHECK_EQ(open_rc("/a", O_RDONLY), 0); /* a directory, read-only */
	CHECK_EQ(open_rc("/a", O_RDONLY | O_DIRECTORY), 0);
	CHECK_EQ(open_rc("/a", O_WRONLY), -EISDIR);
	CHECK_EQ(open_rc("/a/b/f", O_RDONLY | O_DIRECTORY), -ENOTDIR);
	CHECK_EQ(open_rc("/a/b/f/", O_RDONLY), -ENOTDIR);
	CHECK_EQ(open_rc("/a", O_RDONLY | O_CREAT), -EISDIR);
	CHECK_EQ(open_rc("/a/", O_RDONLY | O_CREAT), -EISDIR);
	CHECK_EQ(open_rc("/a/new/", O_WRONLY | O_CREAT), -EISDIR);
	CHECK_EQ(open_rc("/", O_RDONLY | O_CREAT), -EISDIR);
	CHECK_EQ(open_rc("/.", O_RDONLY | O_CREAT | O_EXCL), -EEXIST);
	CHECK_EQ(open_rc("/a/..", O_RDONLY | O_CREAT), -EISDIR);
	CHECK_EQ(open_rc("/a/new", O_RDWR | O_CREAT | O_DIRECTORY), -EINVAL);
	CHECK_EQ(open_rc("/a/none/new", O_WRONLY | O_CREAT), -ENOENT);
	CHECK_EQ(open_rc("/a/b/f/new", O_WRONLY | O_CREAT), -ENOTDIR);
	CHECK_EQ(stat_rc("/a/new", false), -ENOENT);

	/* Create, then open existing; O_EXCL; O_TRUNC. */
	CHECK_EQ(open_rc("/a/new", O_WRONLY | O_CREAT | O_EXCL), 0);
	CHECK_EQ(open_rc("/a/new", O_WRONLY | O_CREAT | O_EXCL), -EEXIST);
	put("/a/new", "content");
	CHECK_EQ(open_rc("/a/new", O_WRONLY | O_CREAT), 0);
	expect_text("/a/new", "content");
	CHECK_EQ(open_rc("/a/new", O_WRONLY | O_CREAT | O_TRUNC), 0);
	expect_text("/a/new", "");

	/* The umask of the cred applies; the owner is the caller. */
	CHECK_EQ(sfs_path_open(fs, &user, "/um", O_RDWR | O_CREAT, 0666, &fh), 0);
	CHECK_EQ(sfs_write(fs, &user, fh, "abc", 3, 0), 3);
	CHECK_EQ(sfs_release(fs, fh), 0);
	CHECK_EQ(sfs_path_stat(fs, NULL, "/um", &st, false), 0);
	CHECK_EQ(st.st_mode, S_IFREG | 0644);
	CHECK_EQ(st.st_uid, 1000);
	CHECK_EQ(st.st_size, 3);
	/* Permissions at open: a user may not write a root file 0644. */
	CHECK_EQ(sfs_path_open(fs, &user, "/a/new", O_WRONLY, 0, &fh), -EACCES);
	CHECK_EQ(sfs_path_open(fs, &user, "/a/new", O_RDONLY, 0, &fh), 0);
	CHECK_EQ(sfs_release(fs, fh), 0);
	CHECK_EQ(sfs_path_open(fs, &user, "/a/x", O_WRONLY | O_CREAT, 0644, &fh), -EACCES);

	/* O_TMPFILE: unnamed, gone at release. */
	struct sfs_stats s0, s1;
	sfs_get_stats(fs, &s0);
	CHECK_EQ(sfs_path_open(fs, NULL, "/a/b/f", O_TMPFILE | O_RDWR, 0600, &fh), -ENOTDIR);
	CHECK_EQ(sfs_path_open(fs, NULL, "/a", O_TMPFILE | O_RDONLY, 0600, &fh), -EINVAL);
	CHECK_EQ(sfs_path_open(fs, NULL, "/a", O_TMPFILE | O_RDWR | O_CREAT, 0600, &fh), -EINVAL);
	CHECK_EQ(sfs_path_open(fs, NULL, "/d", O_TMPFILE | O_RDWR, 0600, &fh), 0);
	CHECK_EQ(sfs_write(fs, NULL, fh, "tmp", 3, 0), 3);
	sfs_get_stats(fs, &s1);
	CHECK_EQ(s1.inodes, s0.inodes + 1);
	CHECK_EQ(sfs_release(fs, fh), 0);
	sfs_get_stats(fs, &s1);
	CHECK_EQ(s1.inodes, s0.inodes);

	CHECK_EQ(sfs_path_unlink(fs, NULL, "/um"), 0);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/new"), 0);
	check_fs();
}

/* ---- mkdir ---- */

static void test_mkdir(void)
{
	struct stat st;
	/* Plain mkdir. */
	mkdir_ok("/m");
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/m", 0755, false), -EEXIST);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/m/", 0755, false), -EEXIST);
	mkdir_ok("/m2/"); /* a trailing slash is fine for mkdir */
	mkdir_ok("/m2//sub//");
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/nope/x", 0755, false), -ENOENT);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/", 0755, false), -EEXIST);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, ".", 0755, false), -EEXIST);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/m/..", 0755, false), -EEXIST);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/d", 0755, false), -EEXIST); /* a symlink */
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "", 0755, false), -ENOENT);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, NULL, 0755, true), -EFAULT);

	/* mkdir -p: the mode applies to every directory it makes. */
	CHECK_EQ(sfs_path_mkdir(fs, &user, "/p/q/r", 0750, true), 0);
	CHECK_EQ(sfs_path_stat(fs, NULL, "/p", &st, false), 0);
	CHECK_EQ(st.st_mode, S_IFDIR | 0750);
	CHECK_EQ(st.st_uid, 1000);
	CHECK_EQ(sfs_path_stat(fs, NULL, "/p/q/r", &st, false), 0);
	CHECK_EQ(st.st_mode, S_IFDIR | 0750);
	CHECK_EQ(sfs_path_mkdir(fs, &user, "/p/q/r", 0750, true), 0); /* exists: fine */
	CHECK_EQ(sfs_path_mkdir(fs, &user, "/p/q/r/", 0750, true), 0);
	CHECK_EQ(sfs_path_mkdir(fs, &user, "/p//q/./r/../r2", 0777, true), 0);
	CHECK_EQ(sfs_path_stat(fs, NULL, "/p/q/r2", &st, false), 0);
	CHECK_EQ(st.st_mode, S_IFDIR | 0755); /* umask 022 */
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/pp/x/../y", 0755, true), 0);
	CHECK_EQ(stat_rc("/pp/x", false), 0);
	CHECK_EQ(stat_rc("/pp/y", false), 0);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/", 0755, true), 0);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/a/..", 0755, true), 0);
	/* Non-directories in the way: ENOTDIR in the middle, EEXIST at the end. */
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/a/b/f/x", 0755, true), -ENOTDIR);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/a/b/f/x/y", 0755, true), -ENOTDIR);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/a/b/f", 0755, true), -EEXIST);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/a/b/f/", 0755, true), -EEXIST);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/a/rel", 0755, true), -EEXIST); /* link to a file */
	/* Through symlinks to directories. */
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/d", 0755, true), 0);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/d/n1/n2", 0755, true), 0);
	CHECK_EQ(ino_of("/a/b/n1/n2", false), ino_of("/d/n1/n2", true));
	/* A dangling symlink is not a directory to build. */
	symlink_ok("ghost/sub", "/dang2");
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/dang2", 0755, true), -EEXIST);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/dang2/x", 0755, true), -ENOENT);
	CHECK_EQ(stat_rc("/ghost", false), -ENOENT);
	/* ... but what follows it in the caller's path is built. */
	mkdir_ok("/ghost");
	mkdir_ok("/ghost/sub");
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/dang2/x/y", 0755, true), 0);
	CHECK_EQ(stat_rc("/ghost/sub/x/y", false), 0);
	/* Permissions: a user cannot build under a root directory 0755. */
	CHECK_EQ(sfs_path_mkdir(fs, &user, "/a/u/v", 0755, true), -EACCES);
	CHECK_EQ(stat_rc("/a/u", false), -ENOENT);

	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/p"), 0);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/pp"), 0);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/ghost"), 0);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/dang2"), 0);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/a/b/n1"), 0);
	check_fs();
}

/* ---- unlink, rmdir, rename, symlink ---- */

static void test_names(void)
{
	put("/a/g", "g");
	/* unlink */
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/g/"), -ENOTDIR);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/b/"), -EISDIR);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/b"), -EISDIR);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/none/"), -ENOENT);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/"), -EISDIR);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/."), -EISDIR);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/.."), -EISDIR);
	CHECK_EQ(sfs_path_unlink(fs, NULL, ""), -ENOENT);
	CHECK_EQ(sfs_path_unlink(fs, NULL, NULL), -EFAULT);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/d/g"), -ENOENT);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/g"), 0);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/g"), -ENOENT);

	/* rmdir */
	mkdir_ok("/r");
	mkdir_ok("/r/s");
	CHECK_EQ(sfs_path_rmdir(fs, NULL, "/r/s/."), -EINVAL);
	CHECK_EQ(sfs_path_rmdir(fs, NULL, "/r/s/.."), -ENOTEMPTY);
	CHECK_EQ(sfs_path_rmdir(fs, NULL, "/"), -EBUSY);
	CHECK_EQ(sfs_path_rmdir(fs, NULL, "/r"), -ENOTEMPTY);
	CHECK_EQ(sfs_path_rmdir(fs, NULL, "/a/b/f"), -ENOTDIR);
	CHECK_EQ(sfs_path_rmdir(fs, NULL, "/r/s/"), 0);
	CHECK_EQ(sfs_path_rmdir(fs, NULL, "r"), 0);

	/* rename */
	put("/a/g", "g");
	mkdir_ok("/m3");
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/g", "/a/h", 0), 0);
	expect_text("/a/h", "g");
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/h/", "/a/g", 0), -ENOTDIR);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/h", "/a/g/", 0), -ENOTDIR);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/none/", "/a/g", 0), -ENOENT);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/m3/", "/m2/", 0), -ENOTEMPTY);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/m3/", "/m4/", 0), 0);
	CHECK_EQ(stat_rc("/m4", false), 0);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/", "/x", 0), -EBUSY);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/.", "/x", 0), -EBUSY);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/h", "/a/.", 0), -EBUSY);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/h", "/", SFS_RENAME_NOREPLACE), -EEXIST);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/h", "/a/b/f", SFS_RENAME_NOREPLACE), -EEXIST);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/h", NULL, 0), -EFAULT);
	CHECK_EQ(sfs_path_rename(fs, NULL, NULL, "/a/h", 0), -EFAULT);
	/* "new/" with EXCHANGE only asks the new name to be a directory
	 * (checked against Linux 6.18: a file and "dir/" exchange fine). */
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/h/", "/m4", SFS_RENAME_EXCHANGE), -ENOTDIR);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/h", "/m4/", SFS_RENAME_EXCHANGE), 0);
	CHECK_EQ(stat_rc("/a/h/", false), 0); /* now the directory */
	CHECK_EQ(stat_rc("/m4/", false), -ENOTDIR);
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/h/", "/m4", SFS_RENAME_EXCHANGE), 0);
	expect_text("/a/h", "g");
	/* Across directories, through a symlinked directory. */
	CHECK_EQ(sfs_path_rename(fs, NULL, "/a/h", "/d/h", 0), 0);
	expect_text("/a/b/h", "g");
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/d/h"), 0);
	CHECK_EQ(sfs_path_rmdir(fs, NULL, "/m4"), 0);

	/* symlink */
	symlink_ok("target", "/s");
	CHECK_EQ(sfs_path_symlink(fs, NULL, "target", "/s"), -EEXIST);
	CHECK_EQ(sfs_path_symlink(fs, NULL, "target", "/s/"), -EEXIST);
	CHECK_EQ(sfs_path_symlink(fs, NULL, "target", "/s2/"), -ENOENT);
	CHECK_EQ(sfs_path_symlink(fs, NULL, "target", "/."), -EEXIST);
	CHECK_EQ(sfs_path_symlink(fs, NULL, "target", "/"), -EEXIST);
	CHECK_EQ(sfs_path_symlink(fs, NULL, NULL, "/s3"), -EFAULT);
	CHECK_EQ(sfs_path_symlink(fs, NULL, "", "/s3"), -ENOENT);
	CHECK_EQ(sfs_path_symlink(fs, NULL, "t", "/none/s3"), -ENOENT);
	CHECK_EQ(sfs_path_symlink(fs, NULL, "t", "/d/s3"), 0); /* through a link */
	CHECK_EQ(stat_rc("/a/b/s3", false), 0);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/b/s3"), 0);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/s"), 0);
	check_fs();
}

/* ---- list ---- */

struct listing {
	int n, stop_at, dirs, files, links;
	uint64_t sizes;
	char seen[400];
};

static int list_fn(void *ctx, const char *name, const struct stat *st)
{
	struct listing *l = ctx;
	CHECK(strcmp(name, ".") && strcmp(name, ".."));
	l->n++;
	if (S_ISDIR(st->st_mode))
		l->dirs++;
	else if (S_ISLNK(st->st_mode))
		l->links++;
	else if (S_ISREG(st->st_mode))
		l->files++;
	l->sizes += (uint64_t)st->st_size;
	int i;
	if (sscanf(name, "e%d", &i) == 1 && i >= 0 && i < 400) {
		CHECK(!l->seen[i]);
		l->seen[i] = 1;
		/* Full attributes, the same as stat's. */
		char path[64];
		struct stat st2;
		snprintf(path, sizeof path, "/l/%s", name);
		CHECK_EQ(sfs_path_stat(fs, NULL, path, &st2, false), 0);
		CHECK_EQ(st2.st_ino, st->st_ino);
		CHECK_EQ(st2.st_mode, st->st_mode);
		CHECK_EQ(st2.st_size, st->st_size);
		CHECK_EQ(st2.st_nlink, st->st_nlink);
	}
	return l->n == l->stop_at ? 7 : 0;
}

static void test_list(void)
{
	mkdir_ok("/l");
	char path[64], text[64];
	for (int i = 0; i < 300; i++) {
		snprintf(path, sizeof path, "/l/e%d", i);
		if (i % 10 == 0) {
			mkdir_ok(path);
		} else if (i % 10 == 1) {
			symlink_ok("e0", path);
		} else {
			snprintf(text, sizeof text, "%d", i);
			put(path, text);
		}
	}
	struct listing l = {0};
	CHECK_EQ(sfs_path_list(fs, NULL, "/l", list_fn, &l), 0);
	CHECK_EQ(l.n, 300);
	CHECK_EQ(l.dirs, 30);
	CHECK_EQ(l.links, 30);
	CHECK_EQ(l.files, 240);
	for (int i = 0; i < 300; i++)
		CHECK(l.seen[i]);
	check_no_lookups();

	/* Stopping early: the callback's value comes back, nothing leaks. */
	for (int stop = 1; stop <= 300; stop += 37) {
		memset(&l, 0, sizeof l);
		l.stop_at = stop;
		CHECK_EQ(sfs_path_list(fs, NULL, "/l/", list_fn, &l), 7);
		CHECK_EQ(l.n, stop);
	}
	check_no_lookups();

	memset(&l, 0, sizeof l);
	CHECK_EQ(sfs_path_list(fs, NULL, "/l/e0", list_fn, &l), 0); /* empty */
	CHECK_EQ(l.n, 0);
	CHECK_EQ(sfs_path_list(fs, NULL, "/l/e1", list_fn, &l), 0); /* via a link */
	CHECK_EQ(sfs_path_list(fs, NULL, "/l/e2", list_fn, &l), -ENOTDIR);
	CHECK_EQ(sfs_path_list(fs, NULL, "/l/none", list_fn, &l), -ENOENT);
	CHECK_EQ(sfs_path_list(fs, NULL, "/l", NULL, &l), -EFAULT);
	CHECK_EQ(sfs_path_list(fs, NULL, NULL, list_fn, &l), -EFAULT);
	CHECK_EQ(l.n, 0);
	/* Reading a directory needs read permission. */
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/l/e0/noread", 0311, false), 0);
	CHECK_EQ(sfs_path_list(fs, &user, "/l/e0/noread", list_fn, &l), -EACCES);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/l"), 0);
	check_fs();
}

/* ---- whole files ---- */

static void test_files(void)
{
	size_t big = (1u << 20) + 12345;
	unsigned char *data = malloc(big), *back = malloc(big + 100);
	CHECK(data && back);
	for (size_t i = 0; i < big; i++)
		data[i] = (unsigned char)(i * 31 + (i >> 12));
	CHECK_EQ(sfs_path_write_file(fs, NULL, "/a/big", data, big, 0600), 0);
	CHECK_EQ(sfs_path_read_file(fs, NULL, "/a/big", back, big + 100), (ssize_t)big);
	CHECK(memcmp(data, back, big) == 0);
	memset(back, 0, big);
	CHECK_EQ(sfs_path_read_file(fs, NULL, "/a/big", back, 1000), 1000);
	CHECK(memcmp(data, back, 1000) == 0);
	CHECK_EQ(sfs_path_read_file(fs, NULL, "/a/big", back, 0), 0);
	CHECK_EQ(sfs_path_read_file(fs, NULL, "/a/big", NULL, 0), 0);
	struct stat st;
	CHECK_EQ(sfs_path_stat(fs, NULL, "/a/big", &st, true), 0);
	CHECK_EQ(st.st_mode, S_IFREG | 0600);
	CHECK_EQ(st.st_size, (off_t)big);
	/* Rewriting truncates. */
	CHECK_EQ(sfs_path_write_file(fs, NULL, "/a/big", "short", 5, 0600), 0);
	expect_text("/a/big", "short");
	CHECK_EQ(sfs_path_write_file(fs, NULL, "/a/big", NULL, 0, 0600), 0);
	expect_text("/a/big", "");
	/* Through a symlink, which is followed. */
	CHECK_EQ(sfs_path_write_file(fs, NULL, "/a/rel", "via link", 8, 0600), 0);
	expect_text("/a/b/f", "via link");
	put("/a/b/f", "hello");
	CHECK_EQ(sfs_path_write_file(fs, NULL, "/a/big", NULL, 1, 0600), -EFAULT);
	CHECK_EQ(sfs_path_read_file(fs, NULL, "/a/big", NULL, 1), -EFAULT);
	CHECK_EQ(sfs_path_write_file(fs, NULL, "/a", "x", 1, 0600), -EISDIR);
	CHECK_EQ(sfs_path_read_file(fs, NULL, "/a", back, 10), -EISDIR);
	CHECK_EQ(sfs_path_read_file(fs, NULL, "/a/none", back, 10), -ENOENT);
	CHECK_EQ(sfs_path_write_file(fs, NULL, "/a/none/x", "x", 1, 0600), -ENOENT);
	CHECK_EQ(sfs_path_unlink(fs, NULL, "/a/big"), 0);
	free(data);
	free(back);
	check_fs();
}

/* ---- rm -r ---- */

static void test_remove_all(bool quick)
{
	struct sfs_stats s0, s1;
	sfs_get_stats(fs, &s0);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/none"), -ENOENT);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/none/x"), -ENOENT);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, ""), -ENOENT);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, NULL), -EFAULT);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/"), -EBUSY);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/a/."), -EINVAL);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/a/.."), -EINVAL);
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/a/b/f/"), -ENOTDIR);
	sfs_get_stats(fs, &s1);
	CHECK_EQ(s1.inodes, s0.inodes);

	/* A file, a symlink (not its target), a tree with links out of it. */
	put("/rf", "x");
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/rf"), 0);
	CHECK_EQ(stat_rc("/rf", false), -ENOENT);
	symlink_ok("a", "/rl");
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/rl/"), -ENOTDIR); /* not followed */
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/rl"), 0);
	CHECK_EQ(stat_rc("/a/b/f", false), 0);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/t/u/v", 0755, true), 0);
	symlink_ok("/a", "/t/u/out");
	symlink_ok("../../a/b", "/t/u/v/out2");
	put("/t/u/v/f", "f");
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/t/"), 0);
	CHECK_EQ(stat_rc("/t", false), -ENOENT);
	expect_text("/a/b/f", "hello");
	sfs_get_stats(fs, &s1);
	CHECK_EQ(s1.inodes, s0.inodes);

	/* Deep: 2000 levels, a file at each (built with the inode API). */
	int depth = quick ? 300 : 2000;
	mkdir_ok("/deep");
	sfs_ino_t dir = ino_of("/deep", false);
	struct sfs_entry e, e2;
	CHECK_EQ(sfs_lookup(fs, NULL, SFS_ROOT_INO, "deep", &e), 0);
	for (int i = 0; i < depth; i++) {
		struct sfs_file *fh;
		CHECK_EQ(sfs_create(fs, NULL, dir, "file", 0644, O_WRONLY, &e2, &fh), 0);
		CHECK_EQ(sfs_release(fs, fh), 0);
		CHECK_EQ(sfs_forget(fs, e2.ino, 1), 0);
		CHECK_EQ(sfs_mkdir(fs, NULL, dir, "d", 0755, &e2), 0);
		CHECK_EQ(sfs_forget(fs, dir, 1), 0);
		dir = e2.ino;
	}
	CHECK_EQ(sfs_forget(fs, dir, 1), 0);
	sfs_get_stats(fs, &s1);
	CHECK_EQ(s1.inodes, s0.inodes + 1 + 2 * (uint64_t)depth);
	CHECK_CLEAN(sfs_check, fs); /* check_fs() would recurse 2000 deep */
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/deep"), 0);
	sfs_get_stats(fs, &s1);
	CHECK_EQ(s1.inodes, s0.inodes);

	/* Wide: 20000 files, and directories of directories side by side. */
	int wide = quick ? 3000 : 20000;
	mkdir_ok("/wide");
	char path[64];
	for (int i = 0; i < wide; i++) {
		snprintf(path, sizeof path, "/wide/f%d", i);
		put(path, "w");
	}
	for (int i = 0; i < 300; i++) {
		snprintf(path, sizeof path, "/wide/d%d/x/y", i);
		CHECK_EQ(sfs_path_mkdir(fs, NULL, path, 0755, true), 0);
		snprintf(path, sizeof path, "/wide/d%d/x/f", i);
		put(path, "f");
		snprintf(path, sizeof path, "/wide/d%d/l", i);
		symlink_ok("x", path);
	}
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/wide"), 0);
	sfs_get_stats(fs, &s1);
	CHECK_EQ(s1.inodes, s0.inodes);

	/* Without permission: fails cleanly, removes what it may, no loop. */
	CHECK_EQ(sfs_path_mkdir(fs, &user, "/ur", 0755, false), 0);
	CHECK_EQ(sfs_path_mkdir(fs, NULL, "/ur/rootdir", 0755, false), 0);
	put("/ur/rootdir/x", "x");
	put("/ur/rootdir/y", "y");
	CHECK_EQ(sfs_path_remove_all(fs, &user, "/ur"), -EACCES);
	CHECK_EQ(stat_rc("/ur/rootdir/x", false), 0);
	CHECK_EQ(sfs_path_remove_all(fs, &user, "/ur/rootdir/x"), -EACCES);
	check_no_lookups();
	CHECK_EQ(sfs_path_remove_all(fs, NULL, "/ur"), 0);
	sfs_get_stats(fs, &s1);
	CHECK_EQ(s1.inodes, s0.inodes);
	check_fs();
}

/* Remove everything in the root, with remove_all on each entry. */
static int collect_names(void *ctx, const char *name, const struct stat *st)
{
	(void)st;
	char (*names)[SFS_NAME_MAX + 2] = ctx;
	for (int i = 0; i < 64; i++) {
		if (!names[i][0]) {
			snprintf(names[i], sizeof names[i], "/%s", name);
			return 0;
		}
	}
	return 1;
}

static void empty_root(void)
{
	static char names[64][SFS_NAME_MAX + 2];
	for (;;) {
		memset(names, 0, sizeof names);
		int rc = sfs_path_list(fs, NULL, "/", collect_names, names);
		CHECK(rc == 0 || rc == 1);
		if (!names[0][0])
			break;
		for (int i = 0; i < 64 && names[i][0]; i++)
			CHECK_EQ(sfs_path_remove_all(fs, NULL, names[i]), 0);
	}
}

int main(int argc, char **argv)
{
	bool quick = test_quick(argc, argv);
	struct sfs_config cfg = {.size_limit = 256u << 20};
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);

	test_resolution();
	test_symlinks();
	test_open();
	test_mkdir();
	test_names();
	test_list();
	test_files();
	test_remove_all(quick);

	empty_root();
	struct sfs_stats st;
	sfs_get_stats(fs, &st);
	CHECK_EQ(st.inodes, 1);
	CHECK_EQ(st.files + st.symlinks + st.others, 0);
	check_fs();
	sfs_fs_destroy(fs);
	printf("test_path: ok\n");
	return 0;
}
