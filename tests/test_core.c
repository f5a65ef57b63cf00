/* SPDX-License-Identifier: MIT */
/* test_core.c - the filesystem core, operation by operation.
 *
 * Each test builds a small tree through the inode API and checks the
 * results the kernel's tmpfs would give: attributes, link counts, errors in
 * the kernel's order, timestamps, permissions for an ordinary user, the
 * life of unlinked-but-open files, limits, and readdir offsets that survive
 * changes.  Every test ends with sfs_check() on the whole filesystem.
 */
#include <errno.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "check.h"
#include "sectorfs.h"

static const struct sfs_cred root = {.uid = 0, .gid = 0, .umask = 022};
static gid_t user_groups[] = {2000, 3000};
static const struct sfs_cred user = {.uid = 1000, .gid = 1000, .groups = user_groups,
                                     .ngroups = 2, .umask = 022};
static const struct sfs_cred other = {.uid = 1001, .gid = 1001, .umask = 022};

static struct sfs_fs *fs;

static void consistent(void)
{
	CHECK_CLEAN(sfs_check, fs);
}

static void fresh(uint64_t size_limit, uint64_t max_inodes)
{
	struct sfs_config cfg = {.size_limit = size_limit, .max_inodes = max_inodes};
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
}

static void done(void)
{
	consistent();
	sfs_fs_destroy(fs);
	fs = NULL;
}

static sfs_ino_t mk(sfs_ino_t parent, const char *name, mode_t mode)
{
	struct sfs_entry e;
	int rc = S_ISDIR(mode) ? sfs_mkdir(fs, &root, parent, name, mode & 07777, &e)
	                       : sfs_mknod(fs, &root, parent, name, mode, 0, &e);
	CHECK_EQ(rc, 0);
	return e.ino;
}

static void forget(sfs_ino_t ino)
{
	CHECK_EQ(sfs_forget(fs, ino, 1), 0);
}

static struct stat st_of(sfs_ino_t ino)
{
	struct stat st;
	CHECK_EQ(sfs_getattr(fs, ino, &st), 0);
	return st;
}

static int ts_after(struct timespec a, struct timespec b) /* a > b */
{
	return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

static void pause_clock(void)
{
	struct timespec t = {0, 2000000};
	nanosleep(&t, NULL);
}

/* ---- creation and attributes ---- */

static void test_create(void)
{
	fresh(0, 0);
	struct stat r = st_of(SFS_ROOT_INO);
	CHECK_EQ(r.st_mode, S_IFDIR | 01777);
	CHECK_EQ(r.st_nlink, 2);
	CHECK_EQ(r.st_size, 40);
	pause_clock();
	sfs_ino_t d = mk(SFS_ROOT_INO, "dir", S_IFDIR | 0755);
	struct stat r2 = st_of(SFS_ROOT_INO);
	CHECK_EQ(r2.st_nlink, 3);
	CHECK_EQ(r2.st_size, 60);
	CHECK(ts_after(r2.st_mtim, r.st_mtim) && ts_after(r2.st_ctim, r.st_ctim));
	struct stat ds = st_of(d);
	CHECK_EQ(ds.st_mode, S_IFDIR | 0755);
	CHECK_EQ(ds.st_nlink, 2);
	/* umask applies to mknod/mkdir through the cred */
	struct sfs_entry e;
	CHECK_EQ(sfs_mknod(fs, &root, d, "fifo", S_IFIFO | 0666, 0, &e), 0);
	CHECK_EQ(e.attr.st_mode, S_IFIFO | 0644);
	forget(e.ino);
	CHECK_EQ(sfs_mknod(fs, &root, d, "plain", 0644, 0, &e), 0); /* type 0: regular */
	CHECK_EQ(e.attr.st_mode, S_IFREG | 0644);
	forget(e.ino);
	CHECK_EQ(sfs_mknod(fs, &root, d, "chr", S_IFCHR | 0600, makedev(1, 3), &e), 0);
	CHECK_EQ(e.attr.st_rdev, makedev(1, 3));
	forget(e.ino);
	CHECK_EQ(sfs_mknod(fs, &user, d, "chr2", S_IFCHR | 0600, 0, &e), -EACCES); /* 0755 dir */
	CHECK_EQ(sfs_mknod(fs, &root, d, "bad", S_IFDIR | 0600, 0, &e), -EPERM);
	CHECK_EQ(sfs_mknod(fs, &root, d, "bad", 0170000, 0, &e), -EINVAL);
	CHECK_EQ(sfs_symlink(fs, &root, d, "ln", "target/path", &e), 0);
	CHECK_EQ(e.attr.st_mode, S_IFLNK | 0777);
	CHECK_EQ(e.attr.st_size, 11);
	char buf[64];
	CHECK_EQ(sfs_readlink(fs, e.ino, buf, sizeof buf), 11);
	CHECK(strcmp(buf, "target/path") == 0);
	CHECK_EQ(sfs_readlink(fs, d, buf, sizeof buf), -EINVAL);
	forget(e.ino);
	/* Name errors, in the kernel's order. */
	char longname[300];
	memset(longname, 'x', 256);
	longname[256] = '\0';
	CHECK_EQ(sfs_mkdir(fs, &root, d, longname, 0755, &e), -ENAMETOOLONG);
	longname[255] = '\0';
	CHECK_EQ(sfs_mkdir(fs, &root, d, longname, 0755, &e), 0);
	forget(e.ino);
	CHECK_EQ(sfs_mkdir(fs, &root, d, "", 0755, &e), -ENOENT);
	CHECK_EQ(sfs_mkdir(fs, &root, d, "a/b", 0755, &e), -EINVAL);
	CHECK_EQ(sfs_mkdir(fs, &root, d, ".", 0755, &e), -EEXIST);
	CHECK_EQ(sfs_mkdir(fs, &root, d, "fifo", 0755, &e), -EEXIST);
	CHECK_EQ(sfs_mkdir(fs, &root, 999999, "x", 0755, &e), -ENOENT);
	sfs_ino_t f = mk(d, "file", S_IFREG | 0644);
	CHECK_EQ(sfs_mkdir(fs, &root, f, "x", 0755, &e), -ENOTDIR);
	CHECK_EQ(sfs_lookup(fs, &root, f, "x", &e), -ENOTDIR);
	CHECK_EQ(sfs_lookup(fs, &root, d, "nope", &e), -ENOENT);
	CHECK_EQ(sfs_lookup(fs, &root, d, ".", &e), 0);
	CHECK_EQ(e.ino, d);
	forget(d);
	CHECK_EQ(sfs_lookup(fs, &root, d, "..", &e), 0);
	CHECK_EQ(e.ino, SFS_ROOT_INO);
	forget(SFS_ROOT_INO);
	CHECK_EQ(sfs_symlink(fs, &root, d, "l2", "", &e), -ENOENT);
	CHECK_EQ(sfs_forget(fs, f, 2), -EINVAL); /* more than it has */
	forget(f);
	forget(d);
	done();
}

/* ---- names: every call that takes one, every kind of bad name ---- */

/* Each call that takes a name, on one name: its result. */
static int name_op(int op, sfs_ino_t d, sfs_ino_t f, const char *name)
{
	struct sfs_entry e;
	struct sfs_file *fh = NULL;
	int rc;
	switch (op) {
	case 0: rc = sfs_lookup(fs, &root, d, name, &e); break;
	case 1: rc = sfs_mknod(fs, &root, d, name, S_IFREG | 0644, 0, &e); break;
	case 2: rc = sfs_mkdir(fs, &root, d, name, 0755, &e); break;
	case 3: rc = sfs_symlink(fs, &root, d, name, "t", &e); break;
	case 4: rc = sfs_create(fs, &root, d, name, 0644, O_RDWR | O_EXCL, &e, &fh); break;
	case 5: rc = sfs_create(fs, &root, d, name, 0644, O_RDWR, &e, &fh); break;
	case 6: rc = sfs_link(fs, &root, f, d, name, &e); break;
	case 7: return sfs_unlink(fs, &root, d, name);
	case 8: return sfs_rmdir(fs, &root, d, name);
	case 9: return sfs_rename(fs, &root, d, name, d, "new", 0);
	case 10: return sfs_rename(fs, &root, d, "f", d, name, 0);
	case 11: return sfs_rename(fs, &root, d, "f", d, name, SFS_RENAME_NOREPLACE);
	case 12: return sfs_rename(fs, &root, d, "f", d, name, SFS_RENAME_EXCHANGE);
	default: abort();
	}
	if (rc == 0)
		forget(e.ino);
	if (fh)
		CHECK_EQ(sfs_release(fs, fh), 0);
	return rc;
}

/* The errno the kernel gives for each call, on "." and ".." (which it
 * never passes to a filesystem: libsectorfs answers as the kernel would
 * before it), and on names no path component can be. */
static void test_names(void)
{
	fresh(0, 0);
	sfs_ino_t d = mk(SFS_ROOT_INO, "d", S_IFDIR | 0755);
	sfs_ino_t f = mk(d, "f", S_IFREG | 0644);
	char too_long[SFS_NAME_MAX + 2];
	memset(too_long, 'x', SFS_NAME_MAX + 1);
	too_long[SFS_NAME_MAX + 1] = '\0';
	const char *names[] = {".", "..", "", "a/b", too_long};
	/* lookup mknod mkdir symlink create(excl) create link unlink rmdir
	 * rename-from rename-to rename-to(noreplace) rename-to(exchange) */
	const int want[][13] = {
	        {0, -EEXIST, -EEXIST, -EEXIST, -EEXIST, -EISDIR, -EEXIST, -EISDIR, -EINVAL,
	         -EBUSY, -EBUSY, -EEXIST, -EBUSY},
	        {0, -EEXIST, -EEXIST, -EEXIST, -EEXIST, -EISDIR, -EEXIST, -EISDIR, -ENOTEMPTY,
	         -EBUSY, -EBUSY, -EEXIST, -EBUSY},
	        {-ENOENT, -ENOENT, -ENOENT, -ENOENT, -ENOENT, -ENOENT, -ENOENT, -ENOENT, -ENOENT,
	         -ENOENT, -ENOENT, -ENOENT, -ENOENT},
	        {-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL,
	         -EINVAL, -EINVAL, -EINVAL, -EINVAL},
	        {-ENAMETOOLONG, -ENAMETOOLONG, -ENAMETOOLONG, -ENAMETOOLONG, -ENAMETOOLONG,
	         -ENAMETOOLONG, -ENAMETOOLONG, -ENAMETOOLONG, -ENAMETOOLONG, -ENAMETOOLONG,
	         -ENAMETOOLONG, -ENAMETOOLONG, -ENAMETOOLONG},
	};
	for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
		for (int op = 0; op < 13; op++) {
			int rc = name_op(op, d, f, names[n]);
			if (rc != want[n][op])
				fprintf(stderr, "name \"%.8s\", call %d: %d, want %d\n", names[n], op,
				        rc, want[n][op]);
			CHECK_EQ(rc, want[n][op]);
		}
	}
	/* Nothing was made, removed or moved. */
	CHECK_EQ(st_of(d).st_nlink, 2);
	CHECK_EQ(st_of(f).st_nlink, 1);
	struct sfs_entry e;
	CHECK_EQ(sfs_lookup(fs, &root, d, "f", &e), 0);
	CHECK_EQ(e.ino, f);
	forget(f);
	CHECK_EQ(sfs_lookup(fs, &root, d, "new", &e), -ENOENT);
	CHECK_EQ(name_op(0, d, f, NULL), -EFAULT);
	forget(f);
	forget(d);
	done();
}

/* ---- links, unlink, rmdir ---- */

static void test_links(void)
{
	fresh(0, 0);
	sfs_ino_t d = mk(SFS_ROOT_INO, "d", S_IFDIR | 0755);
	sfs_ino_t f = mk(d, "f", S_IFREG | 0644);
	struct sfs_entry e;
	pause_clock();
	CHECK_EQ(sfs_link(fs, &root, f, SFS_ROOT_INO, "g", &e), 0);
	CHECK_EQ(e.attr.st_nlink, 2);
	CHECK(ts_after(e.attr.st_ctim, e.attr.st_mtim));
	forget(f);
	CHECK_EQ(sfs_link(fs, &root, f, SFS_ROOT_INO, "g", &e), -EEXIST);
	CHECK_EQ(sfs_link(fs, &root, d, SFS_ROOT_INO, "d2", &e), -EPERM);
	CHECK_EQ(sfs_link(fs, &root, 123456, SFS_ROOT_INO, "zz", &e), -ENOENT);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "d"), -EISDIR);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "."), -EISDIR);
	CHECK_EQ(sfs_rmdir(fs, &root, SFS_ROOT_INO, "g"), -ENOTDIR);
	CHECK_EQ(sfs_rmdir(fs, &root, SFS_ROOT_INO, "d"), -ENOTEMPTY);
	CHECK_EQ(sfs_rmdir(fs, &root, SFS_ROOT_INO, "."), -EINVAL);
	CHECK_EQ(sfs_rmdir(fs, &root, SFS_ROOT_INO, ".."), -ENOTEMPTY);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "missing"), -ENOENT);
	CHECK_EQ(sfs_unlink(fs, &root, d, "f"), 0);
	CHECK_EQ(st_of(f).st_nlink, 1);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "g"), 0);
	/* Still looked up: alive with no link, then freed on forget. */
	CHECK_EQ(st_of(f).st_nlink, 0);
	consistent();
	struct sfs_stats s0;
	sfs_get_stats(fs, &s0);
	forget(f);
	struct stat st;
	CHECK_EQ(sfs_getattr(fs, f, &st), -ENOENT);
	struct sfs_stats s1;
	sfs_get_stats(fs, &s1);
	CHECK_EQ(s1.inodes, s0.inodes - 1);
	CHECK_EQ(sfs_rmdir(fs, &root, SFS_ROOT_INO, "d"), 0);
	CHECK_EQ(st_of(SFS_ROOT_INO).st_nlink, 2);
	/* Nothing can be created in a removed directory. */
	CHECK_EQ(sfs_mkdir(fs, &root, d, "x", 0755, &e), -ENOENT);
	CHECK_EQ(sfs_lookup(fs, &root, d, "x", &e), -ENOENT);
	forget(d);
	done();
}

/* ---- unlinked but open ---- */

static void test_open_unlinked(void)
{
	fresh(0, 0);
	struct sfs_entry e;
	struct sfs_file *fh;
	CHECK_EQ(sfs_create(fs, &root, SFS_ROOT_INO, "f", 0644, O_RDWR, &e, &fh), 0);
	forget(e.ino);
	CHECK_EQ(sfs_write(fs, &root, fh, "hello", 5, 0), 5);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "f"), 0);
	char buf[8] = "";
	CHECK_EQ(sfs_write(fs, &root, fh, " world", 6, 5), 6);
	CHECK_EQ(sfs_read(fs, fh, buf, 8, 3), 8);
	CHECK(memcmp(buf, "lo world", 8) == 0);
	CHECK_EQ(st_of(e.ino).st_nlink, 0);
	consistent();
	struct sfs_stats s;
	sfs_get_stats(fs, &s);
	CHECK_EQ(s.inodes, 2);
	CHECK_EQ(sfs_release(fs, fh), 0);
	sfs_get_stats(fs, &s);
	CHECK_EQ(s.inodes, 1);
	CHECK_EQ(s.small_bytes > 0, 1);
	/* Still looked up (as by the kernel, which forgets later), but
	 * unlinked and closed: the data is freed at the last release. */
	CHECK_EQ(sfs_create(fs, &root, SFS_ROOT_INO, "g", 0644, O_RDWR, &e, &fh), 0);
	static char blob[100000];
	CHECK_EQ(sfs_write(fs, &root, fh, blob, sizeof blob, 0), (long long)sizeof blob);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "g"), 0);
	sfs_get_stats(fs, &s);
	CHECK(s.sectors >= sizeof blob / 4096);
	CHECK_EQ(sfs_release(fs, fh), 0);
	sfs_get_stats(fs, &s);
	CHECK_EQ(s.sectors, 0);
	CHECK_EQ(s.inodes, 2); /* the inode waits for its forget */
	consistent();
	forget(e.ino);
	sfs_get_stats(fs, &s);
	CHECK_EQ(s.inodes, 1);
	/* O_TMPFILE, then linked into the tree. */
	CHECK_EQ(sfs_tmpfile(fs, &root, SFS_ROOT_INO, 0600, O_RDWR, &e, &fh), 0);
	CHECK_EQ(e.attr.st_nlink, 0);
	CHECK_EQ(sfs_write(fs, &root, fh, "tmp", 3, 0), 3);
	CHECK_EQ(sfs_link(fs, &root, e.ino, SFS_ROOT_INO, "named", NULL), 0); /* no lookup */
	CHECK_EQ(st_of(e.ino).st_nlink, 1);
	forget(e.ino);
	CHECK_EQ(sfs_forget(fs, e.ino, 1), -EINVAL);
	CHECK_EQ(sfs_release(fs, fh), 0);
	CHECK_EQ(sfs_tmpfile(fs, &root, SFS_ROOT_INO, 0600, O_RDWR | O_EXCL, &e, &fh), 0);
	CHECK_EQ(sfs_link(fs, &root, e.ino, SFS_ROOT_INO, "named2", NULL), -ENOENT);
	CHECK_EQ(sfs_tmpfile(fs, &root, SFS_ROOT_INO, 0600, O_RDONLY, &e, NULL), -EINVAL);
	forget(e.ino);
	CHECK_EQ(sfs_release(fs, fh), 0);
	done();
}

/* A zero-copy read view outlives the handle it came from: the daemon
 * answers a read (the kernel may then release and forget an unlinked file)
 * before it ends the view.  The memory must stay until the view ends. */
static void test_view_outlives_handle(void)
{
	fresh(0, 0);
	struct sfs_entry e;
	struct sfs_file *fh;
	CHECK_EQ(sfs_create(fs, &root, SFS_ROOT_INO, "v", 0644, O_RDWR, &e, &fh), 0);
	static char blob[3 * 4096 + 100];
	memset(blob, 'v', sizeof blob);
	CHECK_EQ(sfs_write(fs, &root, fh, blob, sizeof blob, 0), (long long)sizeof blob);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "v"), 0);
	struct iovec iov[8];
	size_t bytes;
	struct sfs_view view;
	int n = sfs_read_view(fs, fh, 0, sizeof blob, iov, 8, &bytes, &view);
	CHECK(n > 0);
	CHECK_EQ(bytes, sizeof blob);
	CHECK_EQ(sfs_release(fs, fh), 0);
	forget(e.ino);
	struct sfs_stats s;
	sfs_get_stats(fs, &s);
	CHECK_EQ(s.inodes, 2); /* held by the view alone */
	size_t seen = 0;
	for (int i = 0; i < n; i++) {
		const char *p = iov[i].iov_base;
		for (size_t j = 0; j < iov[i].iov_len; j++)
			CHECK_EQ(p[j], 'v');
		seen += iov[i].iov_len;
	}
	CHECK_EQ(seen, sizeof blob);
	sfs_read_view_end(fs, &view);
	sfs_read_view_end(fs, &view); /* ending twice is harmless */
	sfs_get_stats(fs, &s);
	CHECK_EQ(s.inodes, 1);
	CHECK_EQ(s.sectors, 0);
	/* A failed view needs no end, but ending it is harmless too. */
	CHECK_EQ(sfs_create(fs, &root, SFS_ROOT_INO, "w", 0644, O_WRONLY, &e, &fh), 0);
	CHECK_EQ(sfs_read_view(fs, fh, 0, 10, iov, 8, &bytes, &view), -EBADF);
	sfs_read_view_end(fs, &view);
	CHECK_EQ(sfs_release(fs, fh), 0);
	forget(e.ino);
	done();
}

/* Set-id bits a write drops, as the kernel's setattr_should_drop_suidgid():
 * suid; sgid with group execute, or without it when the writer is not in
 * the file's group.  Supplementary groups may come late, from a callback;
 * the host hears of the change it did not ask for. */
static sfs_ino_t changed_ino;
static int changed_calls;

static void note_change(void *arg, sfs_ino_t ino)
{
	CHECK(arg == &changed_ino);
	changed_ino = ino;
	changed_calls++;
}

static int groups_3000(void *arg, gid_t *list, int max)
{
	int *calls = arg;
	++*calls;
	if (max >= 1)
		list[0] = 3000;
	return 1;
}

static void write_as(const struct sfs_cred *cr, sfs_ino_t f)
{
	struct sfs_file *fh;
	CHECK_EQ(sfs_open(fs, cr, f, O_WRONLY, &fh), 0);
	CHECK_EQ(sfs_write(fs, cr, fh, "x", 1, 0), 1);
	CHECK_EQ(sfs_release(fs, fh), 0);
}

static void test_setid_drop(void)
{
	struct sfs_config cfg = {.attrs_changed = note_change, .attrs_changed_arg = &changed_ino};
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
	struct sfs_entry e;
	struct sfs_file *fh;
	CHECK_EQ(sfs_create(fs, &root, SFS_ROOT_INO, "f", 0666, O_RDWR, &e, &fh), 0);
	CHECK_EQ(sfs_release(fs, fh), 0);
	sfs_ino_t f = e.ino;
	struct stat a = {.st_mode = 02766}; /* sgid, no group execute, group 0 */
	CHECK_EQ(sfs_setattr(fs, &root, f, &a, SFS_SET_MODE, NULL, NULL), 0);
	/* root writes: nothing dropped, nobody told */
	write_as(&root, f);
	CHECK_EQ(st_of(f).st_mode, S_IFREG | 02766);
	CHECK_EQ(changed_calls, 0);
	/* a member of group 3000, known only through the callback, keeps it */
	a.st_gid = 3000;
	CHECK_EQ(sfs_setattr(fs, &root, f, &a, SFS_SET_GID | SFS_SET_MODE, NULL, NULL), 0);
	int asked = 0;
	struct sfs_cred late = {.uid = 1000, .gid = 1000, .get_groups = groups_3000,
	                        .get_groups_arg = &asked};
	write_as(&late, f);
	CHECK_EQ(st_of(f).st_mode, S_IFREG | 02766);
	CHECK(asked > 0);
	CHECK_EQ(changed_calls, 0);
	/* a writer outside the group drops it, and the host hears of it */
	CHECK_EQ(sfs_open(fs, &other, f, O_WRONLY, &fh), 0);
	CHECK_EQ(sfs_write(fs, &other, fh, "x", 1, 0), 1);
	CHECK_EQ(st_of(f).st_mode, S_IFREG | 0766);
	CHECK_EQ(changed_calls, 1);
	CHECK_EQ(changed_ino, f);
	CHECK_EQ(sfs_write(fs, &other, fh, "x", 1, 0), 1); /* nothing left to drop */
	CHECK_EQ(changed_calls, 1);
	CHECK_EQ(sfs_release(fs, fh), 0);
	/* with group execute, even members lose it; suid goes for anyone */
	a.st_mode = 06776;
	CHECK_EQ(sfs_setattr(fs, &root, f, &a, SFS_SET_MODE, NULL, NULL), 0);
	write_as(&user, f);
	CHECK_EQ(st_of(f).st_mode, S_IFREG | 0776);
	CHECK_EQ(changed_calls, 2);
	/* truncate by a non-member drops sgid too (the caller gets the new
	 * attributes back, so no call) */
	a.st_mode = 02766;
	CHECK_EQ(sfs_setattr(fs, &root, f, &a, SFS_SET_MODE, NULL, NULL), 0);
	struct stat sz = {.st_size = 0}, out;
	CHECK_EQ(sfs_setattr(fs, &other, f, &sz, SFS_SET_SIZE, NULL, &out), 0);
	CHECK_EQ(out.st_mode, S_IFREG | 0766);
	CHECK_EQ(changed_calls, 2);
	/* chown by root: suid always goes, sgid without group execute stays */
	a.st_mode = 06766;
	CHECK_EQ(sfs_setattr(fs, &root, f, &a, SFS_SET_MODE, NULL, NULL), 0);
	a.st_uid = 1001;
	CHECK_EQ(sfs_setattr(fs, &root, f, &a, SFS_SET_UID, NULL, &out), 0);
	CHECK_EQ(out.st_mode, S_IFREG | 02766);
	forget(f);
	done();
}

/* ---- rename ---- */

static void test_rename(void)
{
	fresh(0, 0);
	sfs_ino_t a = mk(SFS_ROOT_INO, "a", S_IFDIR | 0755);
	sfs_ino_t b = mk(SFS_ROOT_INO, "b", S_IFDIR | 0755);
	sfs_ino_t sub = mk(a, "sub", S_IFDIR | 0755);
	sfs_ino_t f = mk(a, "f", S_IFREG | 0644);
	sfs_ino_t g = mk(b, "g", S_IFREG | 0644);
	/* file over file, across directories: g's inode loses its link */
	CHECK_EQ(sfs_rename(fs, &root, a, "f", b, "g", 0), 0);
	CHECK_EQ(st_of(g).st_nlink, 0);
	forget(g);
	struct sfs_entry e;
	CHECK_EQ(sfs_lookup(fs, &root, b, "g", &e), 0);
	CHECK_EQ(e.ino, f);
	forget(f);
	CHECK_EQ(sfs_lookup(fs, &root, a, "f", &e), -ENOENT);
	/* directory moves: link counts of both parents */
	CHECK_EQ(sfs_rename(fs, &root, a, "sub", b, "sub2", 0), 0);
	CHECK_EQ(st_of(a).st_nlink, 2);
	CHECK_EQ(st_of(b).st_nlink, 3);
	CHECK_EQ(sfs_lookup(fs, &root, sub, "..", &e), 0);
	CHECK_EQ(e.ino, b);
	forget(b);
	/* into its own subtree */
	CHECK_EQ(sfs_rename(fs, &root, SFS_ROOT_INO, "b", sub, "x", 0), -EINVAL);
	CHECK_EQ(sfs_rename(fs, &root, b, "sub2", sub, "x", 0), -EINVAL);
	/* over an ancestor */
	CHECK_EQ(sfs_rename(fs, &root, sub, "..", SFS_ROOT_INO, "x", 0), -EBUSY);
	sfs_ino_t deep = mk(sub, "deep", S_IFREG | 0644);
	/* b is an ancestor of sub: the kernel reports the ancestor as not empty */
	CHECK_EQ(sfs_rename(fs, &root, sub, "deep", SFS_ROOT_INO, "b", 0), -ENOTEMPTY);
	CHECK_EQ(sfs_rename(fs, &root, b, "sub2", SFS_ROOT_INO, "a", 0), 0); /* over empty dir */
	CHECK_EQ(st_of(a).st_nlink, 0);
	forget(a);
	CHECK_EQ(st_of(SFS_ROOT_INO).st_nlink, 4); /* "a" is sub now, "b" remains */
	sfs_ino_t c = mk(SFS_ROOT_INO, "c", S_IFDIR | 0755);
	mk(c, "cfile", S_IFREG | 0644);
	forget(c + 1);
	CHECK_EQ(sfs_rename(fs, &root, SFS_ROOT_INO, "a", SFS_ROOT_INO, "c", 0), -ENOTEMPTY);
	CHECK_EQ(sfs_rename(fs, &root, c, "cfile", SFS_ROOT_INO, "a", 0), -EISDIR);
	CHECK_EQ(sfs_rename(fs, &root, SFS_ROOT_INO, "a", c, "cfile", 0), -ENOTDIR);
	CHECK_EQ(sfs_rename(fs, &root, SFS_ROOT_INO, "a", SFS_ROOT_INO, "c", SFS_RENAME_NOREPLACE),
	         -EEXIST);
	CHECK_EQ(sfs_rename(fs, &root, SFS_ROOT_INO, "a", SFS_ROOT_INO, "none", SFS_RENAME_EXCHANGE),
	         -ENOENT);
	CHECK_EQ(sfs_rename(fs, &root, SFS_ROOT_INO, "a", SFS_ROOT_INO, "c",
	                    SFS_RENAME_EXCHANGE | SFS_RENAME_NOREPLACE),
	         -EINVAL);
	CHECK_EQ(sfs_rename(fs, &root, SFS_ROOT_INO, "a", SFS_ROOT_INO, "c", 64), -EINVAL);
	/* exchange a directory with a file across parents */
	CHECK_EQ(sfs_rename(fs, &root, SFS_ROOT_INO, "a", c, "cfile", SFS_RENAME_EXCHANGE), 0);
	CHECK_EQ(sfs_lookup(fs, &root, c, "cfile", &e), 0);
	CHECK_EQ(e.ino, sub);
	forget(sub);
	CHECK_EQ(st_of(c).st_nlink, 3);
	CHECK_EQ(sfs_lookup(fs, &root, sub, "..", &e), 0);
	CHECK_EQ(e.ino, c);
	forget(c);
	consistent();
	/* renaming onto itself (or a hard link of itself) does nothing */
	CHECK_EQ(sfs_link(fs, &root, deep, sub, "deep2", NULL), 0);
	CHECK_EQ(sfs_rename(fs, &root, sub, "deep", sub, "deep2", 0), 0);
	CHECK_EQ(st_of(deep).st_nlink, 2);
	CHECK_EQ(sfs_rename(fs, &root, sub, "deep", sub, "deep", 0), 0);
	/* whiteout: leaves a 0:0 character device (no privilege needed since
	 * Linux 5.8, but write permission on the directory) */
	CHECK_EQ(sfs_rename(fs, &user, sub, "deep", sub, "w", SFS_RENAME_WHITEOUT), -EACCES);
	CHECK_EQ(sfs_rename(fs, &root, sub, "deep", sub, "w", SFS_RENAME_WHITEOUT), 0);
	CHECK_EQ(sfs_lookup(fs, &root, sub, "deep", &e), 0);
	CHECK(S_ISCHR(e.attr.st_mode) && e.attr.st_rdev == 0);
	forget(e.ino);
	forget(deep);
	forget(sub);
	forget(b);
	forget(c);
	done();
}

/* ---- reading and writing ---- */

static void test_data(void)
{
	fresh(1 << 20, 0);
	struct sfs_entry e;
	struct sfs_file *fh, *ro;
	CHECK_EQ(sfs_create(fs, &root, SFS_ROOT_INO, "f", 0644, O_RDWR, &e, &fh), 0);
	CHECK_EQ(sfs_create(fs, &root, SFS_ROOT_INO, "f", 0644, O_RDWR | O_EXCL, &e, &ro), -EEXIST);
	CHECK_EQ(sfs_open(fs, &root, e.ino, O_RDONLY, &ro), 0);
	CHECK_EQ(sfs_write(fs, &root, ro, "x", 1, 0), -EBADF);
	char buf[16];
	CHECK_EQ(sfs_read(fs, ro, buf, 16, 0), 0);
	struct stat st0 = st_of(e.ino);
	pause_clock();
	CHECK_EQ(sfs_write(fs, &root, fh, "abc", 3, 10), 3);
	struct stat st1 = st_of(e.ino);
	CHECK_EQ(st1.st_size, 13);
	CHECK(ts_after(st1.st_mtim, st0.st_mtim) && ts_after(st1.st_ctim, st0.st_ctim));
	CHECK_EQ(sfs_write(fs, &root, fh, "", 0, 100), 0); /* no size, no time */
	CHECK_EQ(st_of(e.ino).st_size, 13);
	CHECK_EQ(sfs_read(fs, ro, buf, 16, 0), 13);
	CHECK(memcmp(buf, "\0\0\0\0\0\0\0\0\0\0abc", 13) == 0);
	/* relatime: the first read after a write moves atime */
	CHECK(ts_after(st_of(e.ino).st_atim, st1.st_atim));
	/* O_APPEND */
	struct sfs_file *ap;
	CHECK_EQ(sfs_open(fs, &root, e.ino, O_WRONLY | O_APPEND, &ap), 0);
	CHECK_EQ(sfs_write(fs, &root, ap, "zz", 2, 0), 2);
	CHECK_EQ(st_of(e.ino).st_size, 15);
	CHECK_EQ(sfs_copy_file_range(fs, &root, ro, 0, ap, 0, 5, 0), -EBADF);
	CHECK_EQ(sfs_release(fs, ap), 0);
	/* EFBIG at the largest offsets */
	CHECK_EQ(sfs_write(fs, &root, fh, "x", 1, INT64_MAX), -EFBIG);
	CHECK_EQ(sfs_write(fs, &root, fh, "xy", 2, INT64_MAX - 1), 1); /* short, as the kernel */
	CHECK_EQ(sfs_write(fs, &root, fh, "x", 1, -1), -EINVAL);
	struct stat big = {.st_size = 0};
	CHECK_EQ(sfs_setattr(fs, &root, e.ino, &big, SFS_SET_SIZE, NULL, NULL), 0);
	/* SEEK_DATA / SEEK_HOLE */
	CHECK_EQ(sfs_write(fs, &root, fh, "data", 4, 100000), 4);
	CHECK_EQ(sfs_lseek(fs, fh, 0, SEEK_DATA), 98304);
	CHECK_EQ(sfs_lseek(fs, fh, 0, SEEK_HOLE), 0);
	CHECK_EQ(sfs_lseek(fs, fh, 100003, SEEK_HOLE), 100004);
	CHECK_EQ(sfs_lseek(fs, fh, 100004, SEEK_DATA), -ENXIO);
	CHECK_EQ(sfs_lseek(fs, fh, 0, SEEK_END), 100004);
	/* fallocate modes */
	CHECK_EQ(sfs_fallocate(fs, &root, fh, FALLOC_FL_PUNCH_HOLE, 0, 10), -EOPNOTSUPP);
	CHECK_EQ(sfs_fallocate(fs, &root, fh, FALLOC_FL_COLLAPSE_RANGE, 0, 4096), -EOPNOTSUPP);
	CHECK_EQ(sfs_fallocate(fs, &root, fh, 0, 0, 0), -EINVAL);
	CHECK_EQ(sfs_fallocate(fs, &root, ro, 0, 0, 10), -EBADF);
	CHECK_EQ(sfs_fallocate(fs, &root, fh, FALLOC_FL_KEEP_SIZE, 200000, 8192), 0);
	CHECK_EQ(st_of(e.ino).st_size, 100004);
	CHECK_EQ(sfs_fallocate(fs, &root, fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 98304,
	                       4096),
	         0);
	CHECK_EQ(sfs_lseek(fs, fh, 0, SEEK_DATA), 98304 + 4096 > 100004 ? -ENXIO : 0);
	CHECK_EQ(sfs_write(fs, &root, fh, "1234", 4, 0), 4);
	CHECK_EQ(sfs_fallocate(fs, &root, fh, FALLOC_FL_ZERO_RANGE, 1, 2), 0);
	CHECK_EQ(sfs_read(fs, fh, buf, 4, 0), 4);
	CHECK(memcmp(buf, "1\0\0" "4", 4) == 0);
	/* ENOSPC leaves the file as it was */
	struct stat before = st_of(e.ino);
	static char chunk[2 << 20];
	CHECK_EQ(sfs_write(fs, &root, fh, chunk, sizeof chunk, 0), -ENOSPC);
	struct stat after = st_of(e.ino);
	CHECK_EQ(after.st_size, before.st_size);
	CHECK_EQ(after.st_blocks, before.st_blocks);
	CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
	CHECK_EQ(sfs_fallocate(fs, &root, fh, 0, 0, 4 << 20), -ENOSPC);
	CHECK_EQ(st_of(e.ino).st_size, before.st_size);
	struct statvfs sv;
	CHECK_EQ(sfs_statfs(fs, &sv), 0);
	CHECK_EQ(sv.f_blocks, (1 << 20) / 4096);
	CHECK(sv.f_bfree < sv.f_blocks);
	CHECK_EQ(sv.f_namemax, 255);
	consistent();
	CHECK_EQ(sfs_release(fs, ro), 0);
	CHECK_EQ(sfs_release(fs, fh), 0);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "f"), 0);
	forget(e.ino);
	CHECK_EQ(sfs_statfs(fs, &sv), 0);
	CHECK(sv.f_bfree >= sv.f_blocks - 2); /* everything back but the root */
	done();
}

/* ---- permissions for an ordinary user ---- */

static void test_permissions(void)
{
	fresh(0, 0);
	struct sfs_entry e;
	struct sfs_file *fh;
	sfs_ino_t priv = mk(SFS_ROOT_INO, "priv", S_IFDIR | 0700);
	CHECK_EQ(sfs_lookup(fs, &user, priv, "x", &e), -EACCES);
	CHECK_EQ(sfs_opendir(fs, &user, priv, &fh), -EACCES);
	CHECK_EQ(sfs_mkdir(fs, &user, priv, "x", 0755, &e), -EACCES);
	/* The user's own directory in the sticky root. */
	CHECK_EQ(sfs_mkdir(fs, &user, SFS_ROOT_INO, "home", 0755, &e), 0);
	sfs_ino_t home = e.ino;
	CHECK_EQ(e.attr.st_uid, 1000);
	CHECK_EQ(e.attr.st_gid, 1000);
	CHECK_EQ(sfs_create(fs, &user, home, "f", 0600, O_RDWR, &e, &fh), 0);
	sfs_ino_t f = e.ino;
	CHECK_EQ(sfs_release(fs, fh), 0);
	CHECK_EQ(sfs_open(fs, &other, f, O_RDONLY, &fh), -EACCES);
	CHECK_EQ(sfs_open(fs, &root, f, O_RDWR, &fh), 0); /* root reads anything */
	CHECK_EQ(sfs_release(fs, fh), 0);
	CHECK_EQ(sfs_access(fs, &other, f, R_OK), -EACCES);
	CHECK_EQ(sfs_access(fs, &user, f, R_OK | W_OK), 0);
	CHECK_EQ(sfs_access(fs, &root, f, X_OK), -EACCES); /* no x bit at all */
	/* A group known only through the callback (the daemon's credentials,
	 * op_access): it counts, and is asked for only when it decides. */
	struct stat g = {.st_gid = 3000, .st_mode = 0640};
	CHECK_EQ(sfs_setattr(fs, &root, f, &g, SFS_SET_GID | SFS_SET_MODE, NULL, NULL), 0);
	int asked = 0;
	struct sfs_cred late = {.uid = 1001, .gid = 1001, .get_groups = groups_3000,
	                        .get_groups_arg = &asked};
	CHECK_EQ(sfs_access(fs, &late, f, R_OK), 0);
	CHECK_EQ(sfs_access(fs, &late, f, W_OK), -EACCES);
	CHECK(asked > 0);
	asked = 0;
	late.uid = 1000; /* the owner: no group needed */
	CHECK_EQ(sfs_access(fs, &late, f, R_OK | W_OK), 0);
	CHECK_EQ(asked, 0);
	g.st_gid = 1000;
	g.st_mode = 0600;
	CHECK_EQ(sfs_setattr(fs, &root, f, &g, SFS_SET_GID | SFS_SET_MODE, NULL, NULL), 0);
	/* sticky root: other cannot remove the user's directory */
	CHECK_EQ(sfs_rmdir(fs, &other, SFS_ROOT_INO, "home"), -EPERM);
	CHECK_EQ(sfs_rename(fs, &other, SFS_ROOT_INO, "home", SFS_ROOT_INO, "h2", 0), -EPERM);
	/* chmod and chown rules */
	struct stat a = {.st_mode = 0644};
	CHECK_EQ(sfs_setattr(fs, &other, f, &a, SFS_SET_MODE, NULL, NULL), -EPERM);
	CHECK_EQ(sfs_setattr(fs, &user, f, &a, SFS_SET_MODE, NULL, NULL), 0);
	a.st_uid = 1001;
	CHECK_EQ(sfs_setattr(fs, &user, f, &a, SFS_SET_UID, NULL, NULL), -EPERM);
	a.st_gid = 3000; /* a supplementary group */
	CHECK_EQ(sfs_setattr(fs, &user, f, &a, SFS_SET_GID, NULL, NULL), 0);
	a.st_gid = 4000;
	CHECK_EQ(sfs_setattr(fs, &user, f, &a, SFS_SET_GID, NULL, NULL), -EPERM);
	/* setgid kept only for members of the group */
	a.st_mode = 02755;
	CHECK_EQ(sfs_setattr(fs, &user, f, &a, SFS_SET_MODE, NULL, NULL), 0);
	CHECK_EQ(st_of(f).st_mode, S_IFREG | 02755);
	a.st_gid = 0;
	CHECK_EQ(sfs_setattr(fs, &root, f, &a, SFS_SET_GID, NULL, NULL), 0);
	CHECK_EQ(st_of(f).st_mode, S_IFREG | 0755); /* chown cleared setgid (group exec) */
	a.st_mode = 06755;
	CHECK_EQ(sfs_setattr(fs, &user, f, &a, SFS_SET_MODE, NULL, NULL), 0);
	CHECK_EQ(st_of(f).st_mode, S_IFREG | 04755); /* not in group 0: sgid dropped */
	/* a write by the user clears suid */
	CHECK_EQ(sfs_open(fs, &user, f, O_WRONLY, &fh), 0);
	CHECK_EQ(sfs_write(fs, &user, fh, "x", 1, 0), 1);
	CHECK_EQ(st_of(f).st_mode, S_IFREG | 0755);
	CHECK_EQ(sfs_release(fs, fh), 0);
	/* utimes: a given time only by the owner; "now" by writers too */
	struct stat t = {.st_mtim = {12345, 678}};
	CHECK_EQ(sfs_setattr(fs, &other, f, &t, SFS_SET_MTIME, NULL, NULL), -EPERM);
	CHECK_EQ(sfs_setattr(fs, &other, f, &t, SFS_SET_MTIME_NOW, NULL, NULL), -EPERM);
	CHECK_EQ(sfs_setattr(fs, &other, f, &t, SFS_SET_MTIME_NOW | SFS_SET_ATIME_NOW, NULL, NULL),
	         -EACCES); /* a touch: write permission would do */
	CHECK_EQ(sfs_setattr(fs, &user, f, &t, SFS_SET_MTIME, NULL, NULL), 0);
	CHECK_EQ(st_of(f).st_mtim.tv_sec, 12345);
	CHECK_EQ(st_of(f).st_mtim.tv_nsec, 678);
	/* setgid directories pass their group, and the bit to subdirectories */
	struct stat sg = {.st_mode = 02777, .st_gid = 3000};
	CHECK_EQ(sfs_setattr(fs, &user, home, &sg, SFS_SET_MODE | SFS_SET_GID, NULL, NULL), 0);
	CHECK_EQ(sfs_mkdir(fs, &other, home, "sub", 0755, &e), 0);
	CHECK_EQ(e.attr.st_gid, 3000);
	CHECK_EQ(e.attr.st_mode, S_IFDIR | 02755);
	forget(e.ino);
	CHECK_EQ(sfs_mknod(fs, &other, home, "file", S_IFREG | 02755, 0, &e), 0);
	CHECK_EQ(e.attr.st_gid, 3000);
	CHECK_EQ(e.attr.st_mode, S_IFREG | 0755); /* other is not in 3000 */
	forget(e.ino);
	/* hard links to files one cannot read and write: EPERM */
	CHECK_EQ(sfs_link(fs, &other, f, home, "stolen", NULL), -EPERM);
	/* truncate needs write permission */
	struct stat sz = {.st_size = 0};
	CHECK_EQ(sfs_setattr(fs, &other, f, &sz, SFS_SET_SIZE, NULL, NULL), -EACCES);
	forget(f);
	forget(home);
	forget(priv);
	done();
}

/* ---- limits ---- */

static void test_limits(void)
{
	fresh(0, 5);
	struct sfs_entry e;
	for (int i = 0; i < 4; i++) {
		char n[8];
		snprintf(n, sizeof n, "f%d", i);
		CHECK_EQ(sfs_mknod(fs, &root, SFS_ROOT_INO, n, S_IFREG | 0644, 0, &e), 0);
		forget(e.ino);
	}
	CHECK_EQ(sfs_mknod(fs, &root, SFS_ROOT_INO, "f4", S_IFREG | 0644, 0, &e), -ENOSPC);
	CHECK_EQ(sfs_lookup(fs, &root, SFS_ROOT_INO, "f4", &e), -ENOENT);
	struct statvfs sv;
	CHECK_EQ(sfs_statfs(fs, &sv), 0);
	CHECK_EQ(sv.f_files, 5);
	CHECK_EQ(sv.f_ffree, 0);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "f0"), 0);
	CHECK_EQ(sfs_mknod(fs, &root, SFS_ROOT_INO, "f4", S_IFREG | 0644, 0, &e), 0);
	forget(e.ino);
	CHECK_EQ(sfs_fs_set_limits(fs, 0, 3), -EBUSY);
	/* Extra hard links cost an inode each, as in tmpfs; an O_TMPFILE's
	 * first name does not (the file was charged when it was made). */
	CHECK_EQ(sfs_link(fs, &root, e.ino, SFS_ROOT_INO, "f4b", NULL), -ENOSPC);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "f1"), 0);
	CHECK_EQ(sfs_link(fs, &root, e.ino, SFS_ROOT_INO, "f4b", NULL), 0);
	CHECK_EQ(sfs_statfs(fs, &sv), 0);
	CHECK_EQ(sv.f_ffree, 0);
	CHECK_EQ(sfs_mknod(fs, &root, SFS_ROOT_INO, "f5", S_IFREG | 0644, 0, &e), -ENOSPC);
	CHECK_EQ(sfs_rename(fs, &root, SFS_ROOT_INO, "f2", SFS_ROOT_INO, "f4b", 0), 0);
	CHECK_EQ(sfs_statfs(fs, &sv), 0);
	CHECK_EQ(sv.f_ffree, 1); /* f4 lost its second name */
	CHECK_EQ(sfs_link(fs, &root, e.ino, SFS_ROOT_INO, "f4c", NULL), 0);
	CHECK_EQ(sfs_unlink(fs, &root, SFS_ROOT_INO, "f4"), 0);
	CHECK_EQ(sfs_statfs(fs, &sv), 0);
	CHECK_EQ(sv.f_ffree, 1);
	consistent();
	struct sfs_file *tf;
	CHECK_EQ(sfs_tmpfile(fs, &root, SFS_ROOT_INO, 0600, O_RDWR, &e, &tf), 0);
	CHECK_EQ(sfs_link(fs, &root, e.ino, SFS_ROOT_INO, "t", NULL), 0);
	CHECK_EQ(sfs_release(fs, tf), 0);
	forget(e.ino);
	CHECK_EQ(sfs_statfs(fs, &sv), 0);
	CHECK_EQ(sv.f_ffree, 0);
	CHECK_EQ(sfs_fs_set_limits(fs, 0, 0), 0);
	done();

	/* A byte limit that metadata alone runs into. */
	fresh(64 << 10, 0);
	int made = 0;
	for (;; made++) {
		char n[32];
		snprintf(n, sizeof n, "file-number-%d", made);
		int rc = sfs_mknod(fs, &root, SFS_ROOT_INO, n, S_IFREG | 0644, 0, &e);
		if (rc) {
			CHECK_EQ(rc, -ENOSPC);
			CHECK_EQ(sfs_lookup(fs, &root, SFS_ROOT_INO, n, &e), -ENOENT);
			break;
		}
		forget(e.ino);
	}
	CHECK(made > 100);
	consistent();
	done();
}

/* df's word: what statfs says is available goes into one new file, by
 * fallocate (with its sector tables), at every sector size; then nothing
 * is left. */
static void test_statfs_fits(void)
{
	static const size_t sizes[] = {512, 4096, 65536};
	for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
		struct sfs_config cfg = {.size_limit = 16 << 20, .sector_size = sizes[k]};
		CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
		forget(mk(SFS_ROOT_INO, "other", S_IFREG | 0644));
		struct statvfs sv;
		CHECK_EQ(sfs_statfs(fs, &sv), 0);
		off_t avail = (off_t)(sv.f_bavail * sv.f_frsize);
		CHECK(avail > (16 << 20) / 2 && sv.f_bavail <= sv.f_bfree);
		struct sfs_entry e;
		struct sfs_file *fh;
		CHECK_EQ(sfs_create(fs, &root, SFS_ROOT_INO, "f", 0644, O_RDWR, &e, &fh), 0);
		CHECK_EQ(sfs_fallocate(fs, &root, fh, 0, 0, avail), 0);
		CHECK_EQ(sfs_statfs(fs, &sv), 0);
		CHECK_EQ(sv.f_bavail, 0);
		CHECK_EQ(sfs_release(fs, fh), 0);
		forget(e.ino);
		done();
	}
}

/* ---- readdir ---- */

struct listing {
	char names[4096][16];
	off_t next[4096];
	int n, max;
};

static int collect(void *ctx, const char *name, const struct stat *st, off_t next)
{
	struct listing *l = ctx;
	(void)st;
	if (l->n == l->max)
		return 1;
	snprintf(l->names[l->n], 16, "%s", name);
	l->next[l->n++] = next;
	return 0;
}

/* A fresh filesystem with a directory "d" of n files e0, e1, ... */
static sfs_ino_t fresh_dir_of(int n)
{
	fresh(0, 0);
	sfs_ino_t d = mk(SFS_ROOT_INO, "d", S_IFDIR | 0755);
	for (int i = 0; i < n; i++) {
		char name[16];
		snprintf(name, sizeof name, "e%d", i);
		forget(mk(d, name, S_IFREG | 0644));
	}
	return d;
}

static void test_readdir(void)
{
	enum { N = 1000 };
	sfs_ino_t d = fresh_dir_of(N);
	struct sfs_file *dh;
	CHECK_EQ(sfs_opendir(fs, &root, d, &dh), 0);
	static struct listing l;
	memset(&l, 0, sizeof l);
	/* Read the first 300 entries (+ . and ..), then change the directory:
	 * remove entries before and after the position, add new ones. */
	l.max = 302;
	CHECK_EQ(sfs_readdir(fs, dh, 0, false, collect, &l), 0);
	CHECK_EQ(l.n, 302);
	CHECK(strcmp(l.names[0], ".") == 0 && strcmp(l.names[1], "..") == 0);
	for (int i = 0; i < N; i += 3) {
		char n[16];
		snprintf(n, sizeof n, "e%d", i);
		CHECK_EQ(sfs_unlink(fs, &root, d, n), 0);
	}
	for (int i = 0; i < 200; i++) {
		char n[16];
		snprintf(n, sizeof n, "new%d", i);
		forget(mk(d, n, S_IFREG | 0644));
	}
	l.max = 4096;
	off_t resume = l.next[l.n - 1];
	CHECK_EQ(sfs_readdir(fs, dh, resume, false, collect, &l), 0);
	/* Every entry that existed throughout appears exactly once. */
	static int seen[N];
	memset(seen, 0, sizeof seen);
	for (int i = 2; i < l.n; i++) {
		int k;
		if (sscanf(l.names[i], "e%d", &k) == 1)
			seen[k]++;
	}
	for (int i = 0; i < N; i++)
		if (i % 3 != 0)
			CHECK_EQ(seen[i], 1);
		else
			CHECK(seen[i] <= 1);
	/* readdirplus adds a lookup for each entry taken, not . and .. */
	struct sfs_stats s0;
	sfs_get_stats(fs, &s0);
	memset(&l, 0, sizeof l);
	l.max = 12;
	CHECK_EQ(sfs_readdir(fs, dh, 0, true, collect, &l), 0);
	CHECK_EQ(l.n, 12);
	for (int i = 2; i < 12; i++) {
		struct sfs_entry e;
		CHECK_EQ(sfs_lookup(fs, &root, d, l.names[i], &e), 0);
		CHECK_EQ(sfs_forget(fs, e.ino, 2), 0); /* ours and readdirplus's */
		CHECK_EQ(sfs_forget(fs, e.ino, 1), -EINVAL);
	}
	CHECK_EQ(sfs_releasedir(fs, dh), 0);
	forget(d);
	done();
}

/* A listing ends although every name it returns is renamed at once (a
 * renamed entry is a new one: it does not come), and a rewind (a read from
 * offset 0) starts a new listing that has the new names. */
static void test_readdir_renames(void)
{
	enum { N = 1000 };
	sfs_ino_t d = fresh_dir_of(N);
	struct sfs_file *dh;
	CHECK_EQ(sfs_opendir(fs, &root, d, &dh), 0);
	static struct listing l;
	static int seen[N];
	memset(seen, 0, sizeof seen);
	forget(mk(d, "after-open", S_IFREG | 0644)); /* a listing starts at offset 0 */
	off_t off = 0;
	int got = 0, others = 0;
	for (int step = 0; step < 3 * N; step++) {
		memset(&l, 0, sizeof l);
		l.max = 1;
		CHECK_EQ(sfs_readdir(fs, dh, off, false, collect, &l), 0);
		if (l.n == 0)
			break;
		off = l.next[0];
		int k;
		char to[16];
		if (sscanf(l.names[0], "e%d", &k) == 1) {
			seen[k]++;
			got++;
			snprintf(to, sizeof to, "r%d", k);
			CHECK_EQ(sfs_rename(fs, &root, d, l.names[0], d, to, 0), 0);
		} else if (strcmp(l.names[0], ".") && strcmp(l.names[0], "..")) {
			CHECK(strcmp(l.names[0], "after-open") == 0);
			others++;
		}
	}
	CHECK_EQ(got, N);
	CHECK_EQ(others, 1);
	for (int i = 0; i < N; i++)
		CHECK_EQ(seen[i], 1);
	/* The rewind lists what is there now. */
	memset(&l, 0, sizeof l);
	l.max = 4096;
	CHECK_EQ(sfs_readdir(fs, dh, 0, false, collect, &l), 0);
	CHECK_EQ(l.n, N + 3);
	CHECK_EQ(sfs_releasedir(fs, dh), 0);
	forget(d);
	done();
}

/* ---- lookups by number, for file handles ---- */

/* The root's generation is 0 (FUSE's rule), every other inode's the
 * filesystem's; "." of a file is the file while it has a name (FUSE asks
 * that way when a handle names an inode its cache dropped). */
static void test_handles(void)
{
	fresh(0, 0);
	sfs_ino_t d = mk(SFS_ROOT_INO, "d", S_IFDIR | 0755);
	sfs_ino_t f = mk(d, "f", S_IFREG | 0644);
	struct sfs_entry e;
	CHECK_EQ(sfs_lookup(fs, &root, d, "..", &e), 0);
	CHECK_EQ(e.ino, SFS_ROOT_INO);
	CHECK_EQ(e.generation, 0);
	forget(SFS_ROOT_INO);
	CHECK_EQ(sfs_lookup(fs, &root, SFS_ROOT_INO, ".", &e), 0);
	CHECK_EQ(e.generation, 0);
	forget(SFS_ROOT_INO);
	CHECK_EQ(sfs_lookup(fs, &root, f, ".", &e), 0);
	CHECK_EQ(e.ino, f);
	CHECK(e.generation != 0 && e.generation == sfs_fs_generation(fs));
	CHECK_EQ(e.attr.st_ino, f);
	forget(f);
	CHECK_EQ(sfs_lookup(fs, &root, f, "..", &e), -ENOTDIR);
	CHECK_EQ(sfs_lookup(fs, &root, f, "x", &e), -ENOTDIR);
	CHECK_EQ(sfs_unlink(fs, &root, d, "f"), 0);
	CHECK_EQ(sfs_lookup(fs, &root, f, ".", &e), -ENOENT);
	forget(f);
	CHECK_EQ(sfs_lookup(fs, &root, f, ".", &e), -ENOENT);
	forget(d);
	done();
}

/* ---- xattrs (the basics; test_xattr covers the rest) ---- */

static void test_xattr_basics(void)
{
	fresh(0, 0);
	sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644);
	CHECK_EQ(sfs_setxattr(fs, &root, f, "user.a", "1", 1, 0), 0);
	char buf[64];
	CHECK_EQ(sfs_getxattr(fs, &root, f, "user.a", buf, sizeof buf), 1);
	CHECK_EQ(sfs_getxattr(fs, &root, f, "user.b", buf, sizeof buf), -ENODATA);
	CHECK_EQ(sfs_listxattr(fs, &root, f, buf, sizeof buf), 7);
	CHECK_EQ(sfs_removexattr(fs, &root, f, "user.a"), 0);
	forget(f);
	done();
}

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	test_create();
	test_names();
	test_links();
	test_open_unlinked();
	test_view_outlives_handle();
	test_setid_drop();
	test_rename();
	test_data();
	test_permissions();
	test_limits();
	test_statfs_fits();
	test_readdir();
	test_readdir_renames();
	test_handles();
	test_xattr_basics();
	printf("ok\n");
	return 0;
}
