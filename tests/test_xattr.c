/* SPDX-License-Identifier: MIT */
/* test_xattr.c - extended attributes and POSIX ACLs, through the public API.
 *
 * The expected results are Linux tmpfs's (6.x): the errno of every rule
 * in the kernel's order, the ACL <-> mode interplay (setting, chmod,
 * inheritance with the umask ignored), the permission decisions an access
 * ACL makes for named users and groups under the mask, and the
 * all-or-nothing behaviour of every change when the size limit is reached
 * or an allocation fails.  Every test ends with sfs_check().
 */
#include <errno.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "sectorfs.h"
#include "sectorfs/fault.h"

static gid_t owner_groups[] = {2000};
static gid_t g2000[] = {2000};
static const struct sfs_cred root = {.uid = 0, .gid = 0};
static const struct sfs_cred owner = {
    .uid = 1000, .gid = 1000, .groups = owner_groups, .ngroups = 1};
static const struct sfs_cred other = {.uid = 1001, .gid = 1001};
static const struct sfs_cred member = {.uid = 1002, .gid = 1002, .groups = g2000, .ngroups = 1};
static const struct sfs_cred stranger = {.uid = 1003, .gid = 1003};
static const struct sfs_cred grouped = {.uid = 1004, .gid = 1000}; /* in the file's group */
static const struct sfs_cred kernel = {.uid = 1001, .gid = 1001, .flags = SFS_CRED_TRUSTED};

static struct sfs_fs *fs;

static void consistent(void)
{
	CHECK_CLEAN(sfs_check, fs);
}

static void fresh(uint64_t size_limit)
{
	struct sfs_config cfg = {.size_limit = size_limit};
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
}

static void done(void)
{
	consistent();
	sfs_fs_destroy(fs);
	fs = NULL;
}

/* An object made by `cr` in `parent`, one lookup kept (freed with the fs). */
static sfs_ino_t mk_as(const struct sfs_cred *cr, sfs_ino_t parent, const char *name, mode_t mode)
{
	struct sfs_entry e;
	int rc = S_ISDIR(mode) ? sfs_mkdir(fs, cr, parent, name, mode & 07777, &e)
	                       : sfs_mknod(fs, cr, parent, name, mode, 0, &e);
	CHECK_EQ(rc, 0);
	return e.ino;
}

static sfs_ino_t mk(sfs_ino_t parent, const char *name, mode_t mode)
{
	return mk_as(&owner, parent, name, mode);
}

static sfs_ino_t mklink(sfs_ino_t parent, const char *name)
{
	struct sfs_entry e;
	CHECK_EQ(sfs_symlink(fs, &owner, parent, name, "target", &e), 0);
	return e.ino;
}

static struct stat stat_of(sfs_ino_t ino)
{
	struct stat st;
	CHECK_EQ(sfs_getattr(fs, ino, &st), 0);
	return st;
}

static mode_t mode_of(sfs_ino_t ino)
{
	return stat_of(ino).st_mode;
}

static void chmod_as(const struct sfs_cred *cr, sfs_ino_t ino, mode_t mode)
{
	struct stat st = {.st_mode = mode};
	CHECK_EQ(sfs_setattr(fs, cr, ino, &st, SFS_SET_MODE, NULL, NULL), 0);
}

static void chown_to(sfs_ino_t ino, uid_t uid, gid_t gid)
{
	struct stat st = {.st_uid = uid, .st_gid = gid};
	CHECK_EQ(sfs_setattr(fs, &root, ino, &st, SFS_SET_UID | SFS_SET_GID, NULL, NULL), 0);
}

/* Set ctime far in the past, to see whether a call moves it. */
static void old_ctime(sfs_ino_t ino)
{
	struct stat st = {.st_ctim = {.tv_sec = 1}};
	CHECK_EQ(sfs_setattr(fs, &kernel, ino, &st, SFS_SET_CTIME, NULL, NULL), 0);
}

static bool ctime_moved(sfs_ino_t ino)
{
	return stat_of(ino).st_ctim.tv_sec != 1;
}

static int setx(const struct sfs_cred *cr, sfs_ino_t ino, const char *name, const char *value,
                int flags)
{
	return sfs_setxattr(fs, cr, ino, name, value, value ? strlen(value) : 0, flags);
}

/* getxattr into a static buffer, NUL-terminated; returns the size or -errno. */
static char got[SFS_XATTR_SIZE_MAX + 1];
static ssize_t getx(const struct sfs_cred *cr, sfs_ino_t ino, const char *name)
{
	ssize_t n = sfs_getxattr(fs, cr, ino, name, got, sizeof got - 1);
	got[n > 0 ? n : 0] = 0;
	return n;
}

/* listxattr as one string with '|' between the names. */
static char listed[1 << 18];
static ssize_t listx(const struct sfs_cred *cr, sfs_ino_t ino)
{
	static char raw[1 << 18];
	ssize_t n = sfs_listxattr(fs, cr, ino, raw, sizeof raw);
	listed[0] = 0;
	if (n < 0)
		return n;
	CHECK_EQ(sfs_listxattr(fs, cr, ino, NULL, 0), n);
	size_t o = 0;
	for (ssize_t i = 0; i < n; i++)
		listed[o++] = raw[i] ? raw[i] : '|';
	listed[o] = 0;
	return n;
}

/* ---- ACLs in the kernel's xattr format ---- */

#define A_USER_OBJ 0x01
#define A_USER 0x02
#define A_GROUP_OBJ 0x04
#define A_GROUP 0x08
#define A_MASK 0x10
#define A_OTHER 0x20
#define NOID 0xffffffffu

struct ae {
	uint16_t tag, perm;
	uint32_t id;
};

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	put16(p, v & 0xffff);
	put16(p + 2, v >> 16);
}

static size_t acl_encode(unsigned char *buf, const struct ae *e, size_t n)
{
	put32(buf, 2);
	for (size_t i = 0; i < n; i++) {
		unsigned char *p = buf + 4 + 8 * i;
		put16(p, e[i].tag);
		put16(p + 2, e[i].perm);
		put32(p + 4, e[i].id);
	}
	return 4 + 8 * n;
}

static unsigned char aclbuf[SFS_XATTR_SIZE_MAX];
static int set_acl(const struct sfs_cred *cr, sfs_ino_t ino, const char *name, const struct ae *e,
                   size_t n)
{
	size_t len = acl_encode(aclbuf, e, n);
	return sfs_setxattr(fs, cr, ino, name, aclbuf, len, 0);
}

#define ACCESS "system.posix_acl_access"
#define DEFAULT "system.posix_acl_default"
#define AES(...)                                                                                   \
	(const struct ae[]){__VA_ARGS__},                                                          \
	    sizeof((const struct ae[]){__VA_ARGS__}) / sizeof(struct ae)

/* The stored ACL must read back as these entries. */
static void expect_acl(sfs_ino_t ino, const char *name, const struct ae *e, size_t n)
{
	static unsigned char want[SFS_XATTR_SIZE_MAX];
	CHECK(4 + 8 * n <= sizeof want);
	size_t len = acl_encode(want, e, n);
	CHECK_EQ(getx(&root, ino, name), len);
	CHECK(memcmp(got, want, len) == 0);
}

/* ---- plain attributes ---- */

static void test_basic(void)
{
	fresh(0);
	sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644);

	CHECK_EQ(setx(&owner, f, "user.a", "hello", 0), 0);
	CHECK_EQ(getx(&owner, f, "user.a"), 5);
	CHECK(!strcmp(got, "hello"));
	CHECK_EQ(sfs_getxattr(fs, &owner, f, "user.a", NULL, 0), 5);
	CHECK_EQ(sfs_getxattr(fs, &owner, f, "user.a", got, 0), 5);
	CHECK_EQ(sfs_getxattr(fs, &owner, f, "user.a", got, 4), -ERANGE);
	CHECK_EQ(sfs_getxattr(fs, &owner, f, "user.a", got, 5), 5);
	CHECK_EQ(getx(&owner, f, "user.b"), -ENODATA);

	/* flags */
	CHECK_EQ(setx(&owner, f, "user.a", "x", XATTR_CREATE), -EEXIST);
	CHECK_EQ(setx(&owner, f, "user.b", "x", XATTR_REPLACE), -ENODATA);
	CHECK_EQ(setx(&owner, f, "user.a", "bye", XATTR_REPLACE), 0);
	CHECK_EQ(getx(&owner, f, "user.a"), 3);
	CHECK(!strcmp(got, "bye"));
	CHECK_EQ(setx(&owner, f, "user.b", "", XATTR_CREATE), 0);
	CHECK_EQ(getx(&owner, f, "user.b"), 0); /* an empty value exists */
	CHECK_EQ(setx(&owner, f, "user.c", "x", 4), -EINVAL);
	CHECK_EQ(setx(&owner, f, "user.c", "x", XATTR_CREATE | XATTR_REPLACE), -ENODATA);

	/* names */
	char name[300] = "user.";
	memset(name + 5, 'n', 250);
	name[255] = 0;
	CHECK_EQ(setx(&owner, f, name, "v", 0), 0);
	CHECK_EQ(getx(&owner, f, name), 1);
	name[255] = 'n';
	name[256] = 0;
	CHECK_EQ(setx(&owner, f, name, "v", 0), -ERANGE);
	CHECK_EQ(getx(&owner, f, name), -ERANGE);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, name), -ERANGE);
	CHECK_EQ(setx(&owner, f, "", "v", 0), -ERANGE);
	CHECK_EQ(getx(&owner, f, ""), -ERANGE);
	CHECK_EQ(setx(&owner, f, "user.", "v", 0), -EINVAL);
	CHECK_EQ(getx(&owner, f, "user."), -EINVAL);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "user."), -EINVAL);
	name[255] = 0;
	CHECK_EQ(sfs_removexattr(fs, &owner, f, name), 0);

	/* the argument checks come before the lookup */
	CHECK_EQ(setx(&owner, 999, "user.a", "v", 0), -ENOENT);
	CHECK_EQ(setx(&owner, 999, "", "v", 0), -ERANGE);
	CHECK_EQ(getx(&owner, 999, "user.a"), -ENOENT);
	CHECK_EQ(sfs_listxattr(fs, &owner, 999, NULL, 0), -ENOENT);
	CHECK_EQ(sfs_removexattr(fs, &owner, 999, "user.a"), -ENOENT);

	/* listing: sorted by name, size 0 tells the size, too small is ERANGE */
	CHECK_EQ(setx(&owner, f, "user.0", "z", 0), 0);
	CHECK_EQ(listx(&owner, f), 21);
	CHECK(!strcmp(listed, "user.0|user.a|user.b|"));
	char small[21];
	CHECK_EQ(sfs_listxattr(fs, &owner, f, small, 20), -ERANGE);
	CHECK_EQ(sfs_listxattr(fs, &owner, f, small, 21), 21);
	CHECK(!memcmp(small, "user.0\0user.a\0user.b\0", 21));

	/* remove */
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "user.a"), 0);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "user.a"), -ENODATA);
	CHECK_EQ(getx(&owner, f, "user.a"), -ENODATA);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "user.0"), 0);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "user.b"), 0);
	CHECK_EQ(listx(&owner, f), 0);

	/* ctime moves on a successful change only */
	old_ctime(f);
	CHECK_EQ(setx(&owner, f, "user.a", "x", XATTR_REPLACE), -ENODATA);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "user.a"), -ENODATA);
	CHECK_EQ(getx(&owner, f, "user.a"), -ENODATA);
	CHECK(!ctime_moved(f));
	CHECK_EQ(setx(&owner, f, "user.a", "x", 0), 0);
	CHECK(ctime_moved(f));
	old_ctime(f);
	CHECK_EQ(getx(&owner, f, "user.a"), 1);
	CHECK_EQ(listx(&owner, f), 7);
	CHECK(!ctime_moved(f));
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "user.a"), 0);
	CHECK(ctime_moved(f));
	done();
}

static void test_sizes(void)
{
	fresh(0);
	sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644);
	static unsigned char big[SFS_XATTR_SIZE_MAX + 8];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7 + i / 251);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, "user.big", big, SFS_XATTR_SIZE_MAX + 1, 0), -E2BIG);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, "user.x", NULL, 3, 0), -EFAULT);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, "user.x", NULL, 0, 0), 0);
	CHECK_EQ(getx(&owner, f, "user.x"), 0);
	/* around the inline limit and the chunk boundaries */
	size_t sizes[] = {0,    1,    2000, 2020,  2021,  2048, 2049,
	                  4095, 4096, 4097, 10000, 65535, 65536};
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t n = sizes[k];
		for (int round = 0; round < 2; round++) {
			const unsigned char *v = big + round * 3;
			CHECK_EQ(sfs_setxattr(fs, &owner, f, "user.big", v, n, 0), 0);
			CHECK_EQ(sfs_getxattr(fs, &owner, f, "user.big", NULL, 0), n);
			if (n > 1) /* (a size of 0 asks for the size) */
				CHECK_EQ(sfs_getxattr(fs, &owner, f, "user.big", got, n - 1),
				         -ERANGE);
			CHECK_EQ(sfs_getxattr(fs, &owner, f, "user.big", got, sizeof got), n);
			CHECK(memcmp(got, v, n) == 0);
			consistent();
		}
	}
	/* a long name with a value just over what fits beside it */
	char name[256] = "user.";
	memset(name + 5, 'q', 250);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, name, big, 1800, 0), 0);
	CHECK_EQ(sfs_getxattr(fs, &owner, f, name, got, sizeof got), 1800);
	CHECK(memcmp(got, big, 1800) == 0);
	consistent();
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "user.big"), 0);
	consistent();
	/* freeing the inode frees its attributes */
	CHECK_EQ(sfs_unlink(fs, &owner, SFS_ROOT_INO, "f"), 0);
	CHECK_EQ(sfs_forget(fs, f, 1), 0);
	struct sfs_stats st;
	sfs_get_stats(fs, &st);
	CHECK_EQ(st.files, 0);
	done();
}

/* Four decimal digits and a NUL. */
static void num4(char *p, int i)
{
	for (int k = 3; k >= 0; k--, i /= 10)
		p[k] = (char)('0' + i % 10);
	p[4] = 0;
}

static void test_list_limits(void)
{
	fresh(0);
	sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644);
	char name[256] = "user.";
	memset(name + 5, 'l', 246);
	size_t total = 0;
	for (int i = 0; i < 300; i++) {
		num4(name + 251, i);
		CHECK_EQ(setx(&owner, f, name, "", 0), 0);
		total += 256;
	}
	CHECK(total > SFS_XATTR_LIST_MAX);
	CHECK_EQ(sfs_listxattr(fs, &owner, f, NULL, 0), total);
	static char buf[1 << 17];
	CHECK_EQ(sfs_listxattr(fs, &owner, f, buf, 1000), -ERANGE);
	CHECK_EQ(sfs_listxattr(fs, &owner, f, buf, SFS_XATTR_LIST_MAX), -E2BIG);
	CHECK_EQ(sfs_listxattr(fs, &owner, f, buf, sizeof buf), -E2BIG);
	/* the names come sorted */
	for (int i = 0; i < 200; i++) {
		num4(name + 251, i);
		CHECK_EQ(sfs_removexattr(fs, &owner, f, name), 0);
	}
	CHECK_EQ(sfs_listxattr(fs, &owner, f, buf, sizeof buf), 100 * 256);
	for (int i = 0; i < 100; i++) {
		num4(name + 251, 200 + i);
		CHECK(!strcmp(buf + 256 * i, name));
	}
	done();
}

static void test_namespaces(void)
{
	fresh(0);
	sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644);
	sfs_ino_t priv = mk(SFS_ROOT_INO, "priv", S_IFREG | 0600);
	sfs_ino_t fifo = mk(SFS_ROOT_INO, "fifo", S_IFIFO | 0666);
	sfs_ino_t lnk = mklink(SFS_ROOT_INO, "lnk");
	sfs_ino_t d = mk(SFS_ROOT_INO, "d", S_IFDIR | 0777);
	sfs_ino_t sticky = mk(SFS_ROOT_INO, "sticky", S_IFDIR | 01777);

	/* user.*: read permission to get, write permission to set */
	CHECK_EQ(setx(&owner, f, "user.a", "1", 0), 0);
	CHECK_EQ(getx(&other, f, "user.a"), 1);
	CHECK_EQ(setx(&other, f, "user.a", "2", 0), -EACCES);
	CHECK_EQ(sfs_removexattr(fs, &other, f, "user.a"), -EACCES);
	CHECK_EQ(setx(&other, f, "user.", "2", 0), -EACCES); /* permission before the name */
	CHECK_EQ(setx(&owner, priv, "user.p", "1", 0), 0);
	CHECK_EQ(getx(&other, priv, "user.p"), -EACCES);
	CHECK_EQ(getx(&other, priv, "user.none"), -EACCES);
	/* listxattr checks no permission */
	CHECK_EQ(listx(&other, priv), 7);
	CHECK(!strcmp(listed, "user.p|"));
	/* root may do anything; a trusted caller was checked by the kernel */
	CHECK_EQ(setx(&root, priv, "user.r", "1", 0), 0);
	CHECK_EQ(getx(&root, priv, "user.p"), 1);
	CHECK_EQ(setx(&kernel, priv, "user.k", "1", 0), 0);
	CHECK_EQ(getx(&kernel, priv, "user.k"), 1);
	CHECK_EQ(sfs_removexattr(fs, &kernel, priv, "user.k"), 0);
	CHECK_EQ(setx(&kernel, priv, "user.", "1", 0), -EINVAL);

	/* user.* only on files and directories */
	CHECK_EQ(setx(&owner, d, "user.d", "1", 0), 0);
	CHECK_EQ(setx(&root, fifo, "user.a", "1", 0), -EPERM);
	CHECK_EQ(setx(&kernel, fifo, "user.a", "1", 0), -EPERM);
	CHECK_EQ(getx(&root, fifo, "user.a"), -ENODATA);
	CHECK_EQ(sfs_removexattr(fs, &root, fifo, "user.a"), -EPERM);
	CHECK_EQ(setx(&root, lnk, "user.a", "1", 0), -EPERM);
	CHECK_EQ(getx(&root, lnk, "user.a"), -ENODATA);
	CHECK_EQ(setx(&root, lnk, "user.", "1", 0), -EPERM);

	/* sticky directory: only the owner (or root) writes user.* */
	CHECK_EQ(setx(&other, sticky, "user.s", "1", 0), -EPERM);
	CHECK_EQ(setx(&owner, sticky, "user.s", "1", 0), 0);
	CHECK_EQ(setx(&root, sticky, "user.t", "1", 0), 0);
	CHECK_EQ(sfs_removexattr(fs, &other, sticky, "user.s"), -EPERM);
	CHECK_EQ(getx(&other, sticky, "user.s"), 1);
	CHECK_EQ(setx(&other, d, "user.s", "1", 0), 0); /* not sticky: write permission is enough */

	/* trusted.*: root only, and hidden from others' lists */
	CHECK_EQ(setx(&owner, f, "trusted.t", "1", 0), -EPERM);
	CHECK_EQ(setx(&owner, f, "trusted.", "1", 0), -EPERM);
	CHECK_EQ(setx(&root, f, "trusted.", "1", 0), -EINVAL);
	CHECK_EQ(setx(&root, f, "trusted.t", "1", 0), 0);
	CHECK_EQ(getx(&owner, f, "trusted.t"), -ENODATA);
	CHECK_EQ(getx(&root, f, "trusted.t"), 1);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "trusted.t"), -EPERM);
	CHECK_EQ(setx(&root, lnk, "trusted.t", "1", 0), 0);
	CHECK_EQ(setx(&root, fifo, "trusted.t", "1", 0), 0);
	CHECK_EQ(getx(&root, lnk, "trusted.t"), 1);
	CHECK_EQ(setx(&kernel, f, "trusted.k", "1", 0), 0);

	/* security.*: anyone reads, root writes */
	CHECK_EQ(setx(&owner, f, "security.s", "1", 0), -EPERM);
	CHECK_EQ(setx(&owner, f, "security.", "1", 0), -EPERM);
	CHECK_EQ(setx(&root, f, "security.", "1", 0), -EINVAL);
	CHECK_EQ(setx(&root, f, "security.s", "1", 0), 0);
	CHECK_EQ(getx(&other, priv, "security.s"), -ENODATA); /* no read permission needed */
	CHECK_EQ(getx(&other, f, "security.s"), 1);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "security.s"), -EPERM);
	CHECK_EQ(setx(&root, lnk, "security.s", "1", 0), 0);

	/* security.capability: a v2 or v3 header, and root */
	unsigned char cap[24] = {0};
	put32(cap, 0x02000000);
	CHECK_EQ(sfs_setxattr(fs, &root, f, "security.capability", cap, 20, 0), 0);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, "security.capability", cap, 20, 0), -EPERM);
	CHECK_EQ(sfs_setxattr(fs, &root, f, "security.capability", cap, 24, 0), -EINVAL);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, "security.capability", cap, 24, 0), -EINVAL);
	CHECK_EQ(sfs_setxattr(fs, &root, f, "security.capability", cap, 3, 0), -EINVAL);
	put32(cap, 0x03000001);
	CHECK_EQ(sfs_setxattr(fs, &root, f, "security.capability", cap, 24, 0), 0);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, "security.capability"), -EPERM);
	CHECK_EQ(sfs_removexattr(fs, &root, f, "security.capability"), 0);

	/* system.* other than the ACLs, and unknown prefixes */
	CHECK_EQ(setx(&root, f, "system.foo", "1", 0), -EOPNOTSUPP);
	CHECK_EQ(setx(&other, f, "system.foo", "1", 0), -EOPNOTSUPP);
	CHECK_EQ(getx(&other, f, "system.foo"), -EOPNOTSUPP);
	CHECK_EQ(sfs_removexattr(fs, &other, f, "system.foo"), -EOPNOTSUPP);
	CHECK_EQ(setx(&root, f, "system.", "1", 0), -EOPNOTSUPP);
	CHECK_EQ(setx(&owner, f, "foo.bar", "1", 0), -EOPNOTSUPP);
	CHECK_EQ(setx(&owner, f, "user", "1", 0), -EOPNOTSUPP);
	CHECK_EQ(setx(&other, f, "foo.bar", "1", 0), -EACCES); /* permission first */
	CHECK_EQ(getx(&other, f, "foo.bar"), -EOPNOTSUPP);
	CHECK_EQ(getx(&other, priv, "foo.bar"), -EACCES);

	/* the lists: trusted.* for root only; sorted by name */
	CHECK_EQ(listx(&root, f), 38);
	CHECK(!strcmp(listed, "security.s|trusted.k|trusted.t|user.a|"));
	CHECK_EQ(listx(&owner, f), 18);
	CHECK(!strcmp(listed, "security.s|user.a|"));
	CHECK_EQ(listx(&kernel, f), 18); /* trusted, but not uid 0 */
	CHECK_EQ(listx(&root, lnk), 21);
	CHECK(!strcmp(listed, "security.s|trusted.t|"));
	CHECK_EQ(listx(&other, lnk), 11);
	done();
}

/* ---- ACLs ---- */

static void test_acl_set(void)
{
	fresh(0);
	sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644);
	sfs_ino_t d = mk(SFS_ROOT_INO, "d", S_IFDIR | 0755);
	sfs_ino_t fifo = mk(SFS_ROOT_INO, "fifo", S_IFIFO | 0644);
	sfs_ino_t lnk = mklink(SFS_ROOT_INO, "lnk");

	/* An extended ACL: the mode follows it (group bits from the mask),
	 * and the ids of unnamed entries read back undefined. */
	old_ctime(f);
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 6, 12345}, {A_USER, 4, 1001}, {A_GROUP_OBJ, 4, 7},
	                     {A_MASK, 6, 0}, {A_OTHER, 0, 0})),
	         0);
	CHECK(ctime_moved(f));
	CHECK_EQ(mode_of(f), S_IFREG | 0660);
	expect_acl(f, ACCESS,
	           AES({A_USER_OBJ, 6, NOID}, {A_USER, 4, 1001}, {A_GROUP_OBJ, 4, NOID},
	               {A_MASK, 6, NOID}, {A_OTHER, 0, NOID}));
	CHECK_EQ(listx(&other, f), 24);
	CHECK(!strcmp(listed, ACCESS "|"));
	CHECK_EQ(getx(&other, f, ACCESS), 44); /* reading needs no permission */
	CHECK_EQ(sfs_getxattr(fs, &other, f, ACCESS, got, 43), -ERANGE);
	CHECK_EQ(getx(&other, f, DEFAULT), -ENODATA);

	/* only the owner or root */
	CHECK_EQ(set_acl(&other, f, ACCESS,
	                 AES({A_USER_OBJ, 7, 0}, {A_GROUP_OBJ, 0, 0}, {A_OTHER, 0, 0})),
	         -EPERM);
	CHECK_EQ(sfs_removexattr(fs, &other, f, ACCESS), -EPERM);
	CHECK_EQ(set_acl(&kernel, f, ACCESS,
	                 AES({A_USER_OBJ, 6, 0}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 4, 0},
	                     {A_MASK, 4, 0}, {A_OTHER, 4, 0})),
	         0);
	CHECK_EQ(mode_of(f), S_IFREG | 0644);

	/* XATTR_CREATE / XATTR_REPLACE are ignored for ACLs */
	CHECK_EQ(sfs_setxattr(fs, &owner, f, ACCESS, aclbuf, 44, XATTR_CREATE), 0);
	CHECK_EQ(sfs_setxattr(fs, &owner, d, DEFAULT, aclbuf, 44, XATTR_REPLACE), 0);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, ACCESS, aclbuf, 44, 8), -EINVAL);

	/* an ACL the mode can say is not kept, but sets the mode */
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 7, 0}, {A_GROUP_OBJ, 5, 0}, {A_OTHER, 1, 0})),
	         0);
	CHECK_EQ(mode_of(f), S_IFREG | 0751);
	CHECK_EQ(getx(&owner, f, ACCESS), -ENODATA);
	CHECK_EQ(listx(&owner, f), 0);

	/* removing: the mode stays; removing a missing ACL succeeds */
	CHECK_EQ(
	    set_acl(&owner, f, ACCESS,
	            AES({A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}, {A_MASK, 0, 0}, {A_OTHER, 4, 0})),
	    0);
	CHECK_EQ(mode_of(f), S_IFREG | 0604);
	CHECK_EQ(getx(&owner, f, ACCESS), 36); /* a mask makes it extended */
	old_ctime(f);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, ACCESS), 0);
	CHECK(ctime_moved(f));
	CHECK_EQ(mode_of(f), S_IFREG | 0604);
	CHECK_EQ(getx(&owner, f, ACCESS), -ENODATA);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, ACCESS), 0);
	/* an empty value or a bare header removes too */
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 6, 0}, {A_USER, 6, 5}, {A_GROUP_OBJ, 4, 0},
	                     {A_MASK, 4, 0}, {A_OTHER, 4, 0})),
	         0);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, ACCESS, "", 0, 0), 0);
	CHECK_EQ(getx(&owner, f, ACCESS), -ENODATA);
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 6, 0}, {A_USER, 6, 5}, {A_GROUP_OBJ, 4, 0},
	                     {A_MASK, 4, 0}, {A_OTHER, 4, 0})),
	         0);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, ACCESS, aclbuf, 4, 0), 0);
	CHECK_EQ(getx(&owner, f, ACCESS), -ENODATA);
	CHECK_EQ(mode_of(f), S_IFREG | 0644);

	/* validation */
	unsigned char v[64];
	acl_encode(v, AES({A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0}));
	CHECK_EQ(sfs_setxattr(fs, &owner, f, ACCESS, v, 3, 0), -EINVAL);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, ACCESS, v, 27, 0), -EINVAL);
	put32(v, 1);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, ACCESS, v, 28, 0), -EOPNOTSUPP);
	CHECK_EQ(sfs_setxattr(fs, &owner, f, ACCESS, v, 27, 0), -EOPNOTSUPP);
	struct {
		struct ae e[6];
		size_t n;
	} bad[] = {
	    {{{A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}}, 2}, /* no other */
	    {{{A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0}}, 2},    /* no user */
	    {{{A_USER_OBJ, 6, 0}, {A_OTHER, 4, 0}}, 2},     /* no group */
	    {{{A_USER_OBJ, 6, 0}, {A_USER, 6, 5}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0}}, 4},
	    {{{A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}, {A_GROUP, 4, 9}, {A_OTHER, 4, 0}}, 4},
	    {{{A_USER_OBJ, 8, 0}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0}}, 3}, /* perm */
	    {{{A_USER_OBJ, 6, 0}, {A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0}}, 4},
	    {{{A_USER_OBJ, 6, 0},
	      {A_GROUP_OBJ, 4, 0},
	      {A_USER, 4, 5},
	      {A_MASK, 4, 0},
	      {A_OTHER, 4, 0}},
	     5}, /* order */
	    {{{A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0}, {A_MASK, 4, 0}}, 4},
	    {{{A_USER_OBJ, 6, 0},
	      {A_GROUP_OBJ, 4, 0},
	      {A_MASK, 4, 0},
	      {A_MASK, 4, 0},
	      {A_OTHER, 4, 0}},
	     5},
	    {{{A_USER_OBJ, 6, 0}, {0x40, 4, 0}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0}}, 4},
	    {{{A_USER_OBJ, 6, 0},
	      {A_USER, 4, NOID},
	      {A_GROUP_OBJ, 4, 0},
	      {A_MASK, 4, 0},
	      {A_OTHER, 4, 0}},
	     5}, /* bad uid */
	    {{{A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0}, {A_OTHER, 4, 0}}, 4},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ(set_acl(&owner, f, ACCESS, bad[i].e, bad[i].n), -EINVAL);
		CHECK_EQ(set_acl(&owner, d, DEFAULT, bad[i].e, bad[i].n), -EINVAL);
	}
	CHECK_EQ(mode_of(f), S_IFREG | 0644);
	/* a bad tag or id fails before the ownership check; a bad structure after */
	CHECK_EQ(set_acl(&other, f, ACCESS, bad[10].e, bad[10].n), -EINVAL);
	CHECK_EQ(set_acl(&other, f, ACCESS, bad[0].e, bad[0].n), -EPERM);
	/* the kernel checks neither the order nor the uniqueness of ids */
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 6, 0}, {A_USER, 4, 9}, {A_USER, 6, 5}, {A_USER, 0, 5},
	                     {A_GROUP_OBJ, 4, 0}, {A_GROUP, 4, 3}, {A_GROUP, 4, 3}, {A_MASK, 6, 0},
	                     {A_OTHER, 4, 0})),
	         0);

	/* default ACLs: directories only */
	CHECK_EQ(set_acl(&owner, f, DEFAULT,
	                 AES({A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0})),
	         -EACCES);
	CHECK_EQ(set_acl(&other, f, DEFAULT,
	                 AES({A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0})),
	         -EACCES);
	old_ctime(f);
	CHECK_EQ(sfs_removexattr(fs, &other, f, DEFAULT), 0);
	CHECK_EQ(sfs_setxattr(fs, &other, f, DEFAULT, "", 0, 0), 0);
	CHECK(!ctime_moved(f));
	CHECK_EQ(set_acl(&owner, d, DEFAULT,
	                 AES({A_USER_OBJ, 7, 0}, {A_GROUP_OBJ, 5, 0}, {A_OTHER, 0, 0})),
	         0);
	CHECK_EQ(mode_of(d), S_IFDIR | 0755); /* a default ACL does not touch the mode */
	expect_acl(d, DEFAULT,
	           AES({A_USER_OBJ, 7, NOID}, {A_GROUP_OBJ, 5, NOID}, {A_OTHER, 0, NOID}));
	CHECK_EQ(set_acl(&other, d, DEFAULT,
	                 AES({A_USER_OBJ, 7, 0}, {A_GROUP_OBJ, 5, 0}, {A_OTHER, 0, 0})),
	         -EPERM);
	CHECK_EQ(sfs_removexattr(fs, &other, d, DEFAULT), -EPERM);
	CHECK_EQ(set_acl(&owner, d, ACCESS,
	                 AES({A_USER_OBJ, 7, 0}, {A_GROUP, 7, 50}, {A_GROUP_OBJ, 5, 0},
	                     {A_MASK, 7, 0}, {A_OTHER, 0, 0})),
	         -EINVAL); /* GROUP before GROUP_OBJ */
	CHECK_EQ(set_acl(&owner, d, ACCESS,
	                 AES({A_USER_OBJ, 7, 0}, {A_GROUP_OBJ, 5, 0}, {A_GROUP, 7, 50},
	                     {A_MASK, 7, 0}, {A_OTHER, 0, 0})),
	         0);
	CHECK_EQ(listx(&owner, d), 49);
	CHECK(!strcmp(listed, ACCESS "|" DEFAULT "|"));
	CHECK_EQ(sfs_setxattr(fs, &owner, d, DEFAULT, "", 0, 0), 0);
	CHECK_EQ(getx(&owner, d, DEFAULT), -ENODATA);
	CHECK_EQ(sfs_removexattr(fs, &owner, d, DEFAULT), 0);

	/* devices and fifos take ACLs; symlinks do not */
	CHECK_EQ(set_acl(&owner, fifo, ACCESS,
	                 AES({A_USER_OBJ, 6, 0}, {A_USER, 6, 5}, {A_GROUP_OBJ, 4, 0},
	                     {A_MASK, 4, 0}, {A_OTHER, 4, 0})),
	         0);
	CHECK_EQ(set_acl(&owner, lnk, ACCESS,
	                 AES({A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0})),
	         -EOPNOTSUPP);
	CHECK_EQ(set_acl(&owner, lnk, DEFAULT,
	                 AES({A_USER_OBJ, 6, 0}, {A_GROUP_OBJ, 4, 0}, {A_OTHER, 4, 0})),
	         -EOPNOTSUPP);
	CHECK_EQ(sfs_removexattr(fs, &owner, lnk, ACCESS), -EOPNOTSUPP);
	CHECK_EQ(sfs_removexattr(fs, &owner, lnk, DEFAULT), -EOPNOTSUPP);
	CHECK_EQ(getx(&owner, lnk, ACCESS), -EOPNOTSUPP);
	CHECK_EQ(getx(&owner, lnk, DEFAULT), -EOPNOTSUPP);
	/* parsing comes first */
	CHECK_EQ(sfs_setxattr(fs, &owner, lnk, ACCESS, v, 3, 0), -EINVAL);
	done();
}

static void test_acl_sgid(void)
{
	fresh(0);
	/* the owner is in group 1000 (its gid) and 2000, not in 5000 */
	sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644);
	chmod_as(&owner, f, 02770);
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 7, 0}, {A_GROUP_OBJ, 7, 0}, {A_OTHER, 0, 0})),
	         0);
	CHECK_EQ(mode_of(f), S_IFREG | 02770);
	chown_to(f, 1000, 5000);
	chmod_as(&root, f, 02770);
	CHECK_EQ(mode_of(f), S_IFREG | 02770);
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 7, 0}, {A_GROUP_OBJ, 7, 0}, {A_OTHER, 0, 0})),
	         0);
	CHECK_EQ(mode_of(f), S_IFREG | 0770);
	/* removing an ACL clears it as well */
	chmod_as(&root, f, 02770);
	CHECK_EQ(sfs_removexattr(fs, &owner, f, ACCESS), 0);
	CHECK_EQ(mode_of(f), S_IFREG | 0770);
	/* root keeps it */
	chmod_as(&root, f, 02770);
	CHECK_EQ(sfs_removexattr(fs, &root, f, ACCESS), 0);
	CHECK_EQ(mode_of(f), S_IFREG | 02770);
	done();
}

static void test_acl_chmod(void)
{
	fresh(0);
	sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644);
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 6, 0}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 4, 0},
	                     {A_GROUP, 2, 2000}, {A_MASK, 6, 0}, {A_OTHER, 4, 0})),
	         0);
	CHECK_EQ(mode_of(f), S_IFREG | 0664);
	chmod_as(&owner, f, 0751);
	expect_acl(f, ACCESS,
	           AES({A_USER_OBJ, 7, NOID}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 4, NOID},
	               {A_GROUP, 2, 2000}, {A_MASK, 5, NOID}, {A_OTHER, 1, NOID}));
	chmod_as(&owner, f, 04000);
	expect_acl(f, ACCESS,
	           AES({A_USER_OBJ, 0, NOID}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 4, NOID},
	               {A_GROUP, 2, 2000}, {A_MASK, 0, NOID}, {A_OTHER, 0, NOID}));
	CHECK_EQ(mode_of(f), S_IFREG | 04000);
	done();
}

static void test_acl_permission(void)
{
	fresh(0);
	sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644); /* owner 1000, group 1000 */
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 6, 0}, {A_USER, 6, 1001}, {A_GROUP_OBJ, 4, 0},
	                     {A_GROUP, 6, 2000}, {A_MASK, 4, 0}, {A_OTHER, 0, 0})),
	         0);
	CHECK_EQ(mode_of(f), S_IFREG | 0640);
	/* a named user, under the mask */
	CHECK_EQ(sfs_access(fs, &other, f, R_OK), 0);
	CHECK_EQ(sfs_access(fs, &other, f, W_OK), -EACCES);
	/* a named group, under the mask */
	CHECK_EQ(sfs_access(fs, &member, f, R_OK), 0);
	CHECK_EQ(sfs_access(fs, &member, f, W_OK), -EACCES);
	/* the owning group */
	CHECK_EQ(sfs_access(fs, &grouped, f, R_OK), 0);
	CHECK_EQ(sfs_access(fs, &grouped, f, W_OK), -EACCES);
	/* everyone else */
	CHECK_EQ(sfs_access(fs, &stranger, f, R_OK), -EACCES);
	/* the owner goes by the mode only */
	CHECK_EQ(sfs_access(fs, &owner, f, R_OK | W_OK), 0);

	/* widen the mask with chmod */
	chmod_as(&owner, f, 0660);
	CHECK_EQ(sfs_access(fs, &other, f, R_OK | W_OK), 0);
	CHECK_EQ(sfs_access(fs, &member, f, R_OK | W_OK), 0);
	CHECK_EQ(sfs_access(fs, &grouped, f, W_OK), -EACCES); /* GROUP_OBJ is r-- */
	CHECK_EQ(sfs_access(fs, &stranger, f, R_OK), -EACCES);
	CHECK_EQ(sfs_access(fs, &other, f, X_OK), -EACCES);
	/* the write permission the ACL gives is real */
	CHECK_EQ(setx(&other, f, "user.w", "1", 0), 0);
	CHECK_EQ(setx(&stranger, f, "user.w", "1", 0), -EACCES);

	/* a group entry matched but not granting: EACCES, not OTHER */
	chmod_as(&owner, f, 0667);
	CHECK_EQ(sfs_access(fs, &grouped, f, W_OK), -EACCES);
	CHECK_EQ(sfs_access(fs, &stranger, f, W_OK), 0);
	/* named user entries win over groups: 1001 in group 2000 too */
	static gid_t g[] = {2000};
	struct sfs_cred other_in_2000 = other;
	other_in_2000.groups = g;
	other_in_2000.ngroups = 1;
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 6, 0}, {A_USER, 0, 1001}, {A_GROUP_OBJ, 4, 0},
	                     {A_GROUP, 6, 2000}, {A_MASK, 6, 0}, {A_OTHER, 6, 0})),
	         0);
	CHECK_EQ(sfs_access(fs, &other_in_2000, f, R_OK), -EACCES);
	CHECK_EQ(sfs_access(fs, &member, f, W_OK), 0);

	/* with no group bits in the mode the kernel skips the ACL: a named
	 * user with a --- mask falls back to the other bits */
	chmod_as(&owner, f, 0604);
	CHECK_EQ(sfs_access(fs, &member, f, R_OK), 0);
	CHECK_EQ(sfs_access(fs, &grouped, f, R_OK), -EACCES); /* the group bits */
	CHECK_EQ(sfs_access(fs, &other, f, R_OK), 0);
	done();
}

static void test_acl_inherit(void)
{
	fresh(0);
	struct sfs_cred masked = owner;
	masked.umask = 077;
	sfs_ino_t d = mk(SFS_ROOT_INO, "d", S_IFDIR | 0777);
	CHECK_EQ(set_acl(&owner, d, DEFAULT,
	                 AES({A_USER_OBJ, 7, 0}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 5, 0},
	                     {A_MASK, 7, 0}, {A_OTHER, 1, 0})),
	         0);
	/* a file: the umask is ignored, the ACL masks the mode */
	sfs_ino_t f = mk_as(&masked, d, "f", S_IFREG | 0666);
	CHECK_EQ(mode_of(f), S_IFREG | 0660);
	expect_acl(f, ACCESS,
	           AES({A_USER_OBJ, 6, NOID}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 5, NOID},
	               {A_MASK, 6, NOID}, {A_OTHER, 0, NOID}));
	CHECK_EQ(getx(&owner, f, DEFAULT), -ENODATA);
	CHECK_EQ(sfs_access(fs, &other, f, R_OK | W_OK), 0);
	CHECK_EQ(sfs_access(fs, &other, f, X_OK), -EACCES);
	/* a directory also gets the default ACL */
	sfs_ino_t sub = mk_as(&masked, d, "sub", S_IFDIR | 0777);
	CHECK_EQ(mode_of(sub), S_IFDIR | 0771);
	expect_acl(sub, ACCESS,
	           AES({A_USER_OBJ, 7, NOID}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 5, NOID},
	               {A_MASK, 7, NOID}, {A_OTHER, 1, NOID}));
	expect_acl(sub, DEFAULT,
	           AES({A_USER_OBJ, 7, NOID}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 5, NOID},
	               {A_MASK, 7, NOID}, {A_OTHER, 1, NOID}));
	/* and passes it on */
	sfs_ino_t subf = mk_as(&masked, sub, "f", S_IFREG | 0640);
	CHECK_EQ(mode_of(subf), S_IFREG | 0640);
	CHECK_EQ(getx(&owner, subf, ACCESS), 44);
	/* a fifo too; a symlink gets nothing */
	sfs_ino_t fifo = mk_as(&masked, d, "fifo", S_IFIFO | 0644);
	CHECK_EQ(mode_of(fifo), S_IFIFO | 0640);
	CHECK_EQ(getx(&owner, fifo, ACCESS), 44);
	sfs_ino_t lnk = mklink(d, "lnk");
	CHECK_EQ(mode_of(lnk), S_IFLNK | 0777);
	CHECK_EQ(listx(&root, lnk), 0);

	/* a default ACL of three entries: only the mode, no access ACL */
	sfs_ino_t d3 = mk(SFS_ROOT_INO, "d3", S_IFDIR | 0777);
	CHECK_EQ(set_acl(&owner, d3, DEFAULT,
	                 AES({A_USER_OBJ, 7, 0}, {A_GROUP_OBJ, 5, 0}, {A_OTHER, 0, 0})),
	         0);
	sfs_ino_t f3 = mk_as(&masked, d3, "f", S_IFREG | 0666);
	CHECK_EQ(mode_of(f3), S_IFREG | 0640);
	CHECK_EQ(listx(&root, f3), 0);
	sfs_ino_t s3 = mk_as(&masked, d3, "s", S_IFDIR | 0777);
	CHECK_EQ(mode_of(s3), S_IFDIR | 0750);
	CHECK_EQ(listx(&root, s3), 25);
	CHECK(!strcmp(listed, DEFAULT "|"));

	/* no default ACL: the umask applies */
	sfs_ino_t plain = mk_as(&masked, SFS_ROOT_INO, "plain", S_IFREG | 0666);
	CHECK_EQ(mode_of(plain), S_IFREG | 0600);
	done();
}

/* ACLs larger than one 2 KiB piece, and than one read batch. */
static void test_acl_large(void)
{
	fresh(0);
	enum { NAMED = 600 };
	static struct ae e[NAMED + 4];
	size_t n = 0;
	e[n++] = (struct ae){A_USER_OBJ, 7, NOID};
	for (uint32_t i = 0; i < NAMED; i++)
		e[n++] = (struct ae){A_USER, i % 2 ? 6 : 4, 5000 + i};
	e[n++] = (struct ae){A_GROUP_OBJ, 5, NOID};
	e[n++] = (struct ae){A_MASK, 7, NOID};
	e[n++] = (struct ae){A_OTHER, 0, NOID};
	sfs_ino_t d = mk(SFS_ROOT_INO, "d", S_IFDIR | 0777);
	CHECK_EQ(set_acl(&owner, d, DEFAULT, e, n), 0);
	CHECK_EQ(set_acl(&owner, d, ACCESS, e, n), 0);
	CHECK_EQ(getx(&owner, d, ACCESS), 4 + 8 * n);
	CHECK(memcmp(got, aclbuf, 4 + 8 * n) == 0);
	consistent();
	/* the last named user is past several batches and chunks */
	struct sfs_cred u = {.uid = 5000 + NAMED - 1, .gid = 9};
	struct sfs_cred u2 = {.uid = 5000 + NAMED - 2, .gid = 9};
	CHECK_EQ(sfs_access(fs, &u, d, R_OK | W_OK), 0);
	CHECK_EQ(sfs_access(fs, &u2, d, W_OK), -EACCES);
	chmod_as(&owner, d, 0740);
	CHECK_EQ(sfs_access(fs, &u, d, W_OK), -EACCES);
	CHECK_EQ(sfs_access(fs, &u, d, R_OK), 0);
	e[n - 2].perm = 4;
	e[n - 1].perm = 0;
	expect_acl(d, ACCESS, e, n);
	/* inherited through the scratch buffer */
	sfs_ino_t f = mk(d, "f", S_IFREG | 0600);
	CHECK_EQ(mode_of(f), S_IFREG | 0600);
	CHECK_EQ(getx(&owner, f, ACCESS), 4 + 8 * n);
	CHECK_EQ(getx(&owner, f, DEFAULT), -ENODATA);
	CHECK_EQ(sfs_access(fs, &u, f, R_OK), -EACCES); /* mask --- from the mode's group bits */
	done();
}

/* ---- all or nothing ---- */

struct snapshot {
	uint64_t reserved, small, sectors, inodes;
	char list[4096];
	ssize_t listlen;
	mode_t mode;
};

static void snap(sfs_ino_t ino, struct snapshot *s)
{
	struct sfs_stats st;
	sfs_get_stats(fs, &st);
	s->reserved = st.reserved;
	s->small = st.small_bytes;
	s->sectors = st.sectors;
	s->inodes = st.inodes;
	s->listlen = sfs_listxattr(fs, &root, ino, s->list, sizeof s->list);
	s->mode = mode_of(ino);
}

static void same(sfs_ino_t ino, const struct snapshot *a)
{
	struct snapshot b;
	snap(ino, &b);
	CHECK_EQ(a->reserved, b.reserved);
	CHECK_EQ(a->small, b.small);
	CHECK_EQ(a->sectors, b.sectors);
	CHECK_EQ(a->inodes, b.inodes);
	CHECK_EQ(a->listlen, b.listlen);
	CHECK(a->listlen < 0 || !memcmp(a->list, b.list, (size_t)a->listlen));
	CHECK_EQ(a->mode, b.mode);
}

static unsigned char pattern[SFS_XATTR_SIZE_MAX];

static void check_value(sfs_ino_t ino, const char *name, size_t size, unsigned salt)
{
	CHECK_EQ(getx(&root, ino, name), size);
	for (size_t i = 0; i < size; i++)
		CHECK_EQ((unsigned char)got[i], (unsigned char)(pattern[i] ^ salt));
}

static int set_pattern(sfs_ino_t ino, const char *name, size_t size, unsigned salt)
{
	static unsigned char v[SFS_XATTR_SIZE_MAX];
	for (size_t i = 0; i < size; i++)
		v[i] = (unsigned char)(pattern[i] ^ salt);
	return sfs_setxattr(fs, &root, ino, name, v, size, 0);
}

static void test_size_limit(void)
{
	for (size_t i = 0; i < sizeof pattern; i++)
		pattern[i] = (unsigned char)(i * 131 + 7);
	fresh(1 << 20);
	sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644);
	sfs_ino_t d = mk(SFS_ROOT_INO, "d", S_IFDIR | 0777);
	CHECK_EQ(set_pattern(f, "user.keep", 40000, 1), 0);
	CHECK_EQ(set_acl(&owner, d, DEFAULT,
	                 AES({A_USER_OBJ, 7, 0}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 5, 0},
	                     {A_MASK, 7, 0}, {A_OTHER, 1, 0})),
	         0);
	/* fill with 64 KiB values until the limit says no */
	char name[32];
	int i, rc;
	for (i = 0;; i++) {
		snprintf(name, sizeof name, "user.fill%d", i);
		struct snapshot s;
		snap(f, &s);
		rc = set_pattern(f, name, SFS_XATTR_SIZE_MAX, 2);
		if (rc) {
			CHECK_EQ(rc, -ENOSPC);
			same(f, &s);
			break;
		}
		CHECK(i < 100);
	}
	consistent();
	/* now every growing change fails cleanly */
	struct snapshot s;
	snap(f, &s);
	CHECK_EQ(set_pattern(f, "user.keep", SFS_XATTR_SIZE_MAX, 3), -ENOSPC);
	same(f, &s);
	check_value(f, "user.keep", 40000, 1);
	/* (replacing needs room for both values for a moment, as in tmpfs) */
	CHECK_EQ(set_pattern(f, "user.fill0", SFS_XATTR_SIZE_MAX, 4), -ENOSPC);
	same(f, &s);
	check_value(f, "user.fill0", SFS_XATTR_SIZE_MAX, 2);
	/* take the small-object room too, then try ACLs and inheritance */
	for (i = 0;; i++) {
		snprintf(name, sizeof name, "user.s%d", i);
		if (set_pattern(f, name, 1000, 5))
			break;
		CHECK(i < 100000);
	}
	for (i = 0;; i++) {
		snprintf(name, sizeof name, "user.t%d", i);
		if (set_pattern(f, name, 0, 5))
			break;
		CHECK(i < 100000);
	}
	consistent();
	snap(f, &s);
	CHECK_EQ(set_acl(&owner, f, ACCESS,
	                 AES({A_USER_OBJ, 6, 0}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 5, 0},
	                     {A_MASK, 7, 0}, {A_OTHER, 1, 0})),
	         -ENOSPC);
	same(f, &s);
	struct snapshot sd;
	snap(d, &sd);
	struct sfs_entry e;
	rc = sfs_mkdir(fs, &owner, d, "sub", 0777, &e);
	CHECK(rc == -ENOSPC);
	same(d, &sd);
	/* freeing makes room again */
	CHECK_EQ(sfs_removexattr(fs, &root, f, "user.fill0"), 0);
	CHECK_EQ(sfs_mkdir(fs, &owner, d, "sub", 0777, &e), 0);
	CHECK_EQ(getx(&owner, e.ino, DEFAULT), 44);
	CHECK_EQ(set_pattern(f, "user.keep", 20000, 6), 0);
	check_value(f, "user.keep", 20000, 6);
	done();
}

/* Make each allocation of an operation fail in turn: the operation fails
 * with ENOMEM and changes nothing, until it succeeds. */
typedef int (*op_fn)(sfs_ino_t ino);

static sfs_ino_t fault_dir;

static int op_new_small(sfs_ino_t ino)
{
	return set_pattern(ino, "user.new", 100, 9);
}
static int op_new_big(sfs_ino_t ino)
{
	return set_pattern(ino, "user.big", 20000, 9);
}
static int op_replace(sfs_ino_t ino)
{
	return set_pattern(ino, "user.keep", 9000, 10);
}
static int op_acl(sfs_ino_t ino)
{
	return set_acl(&root, ino, ACCESS,
	               AES({A_USER_OBJ, 6, 0}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 5, 0},
	                   {A_MASK, 7, 0}, {A_OTHER, 1, 0}));
}
static int op_mkdir(sfs_ino_t ino)
{
	(void)ino;
	struct sfs_entry e;
	return sfs_mkdir(fs, &root, fault_dir, "sub", 0777, &e);
}
static int op_mknod(sfs_ino_t ino)
{
	(void)ino;
	struct sfs_entry e;
	return sfs_mknod(fs, &root, fault_dir, "file", S_IFREG | 0666, 0, &e);
}

static void fault_walk(const char *what, op_fn op, bool on_fresh_inode, sfs_ino_t target)
{
	int failures = 0;
	for (long n = 1;; n++) {
		fresh(0);
		sfs_ino_t f = mk(SFS_ROOT_INO, "f", S_IFREG | 0644);
		fault_dir = mk(SFS_ROOT_INO, "d", S_IFDIR | 0777);
		CHECK_EQ(set_acl(&root, fault_dir, DEFAULT,
		                 AES({A_USER_OBJ, 7, 0}, {A_USER, 7, 1001}, {A_GROUP_OBJ, 5, 0},
		                     {A_MASK, 7, 0}, {A_OTHER, 1, 0})),
		         0);
		if (!on_fresh_inode)
			CHECK_EQ(set_pattern(f, "user.keep", 5000, 1), 0);
		sfs_ino_t ino = target ? fault_dir : f;
		struct snapshot s;
		snap(ino, &s);
		sfs_fault_arm(n, false);
		int rc = op(f);
		bool hit = sfs_fault_disarm();
		if (rc == 0) {
			CHECK(!hit);
			consistent();
			sfs_fs_destroy(fs);
			fs = NULL;
			break;
		}
		CHECK(hit);
		CHECK_EQ(rc, -ENOMEM);
		failures++;
		same(ino, &s);
		if (!on_fresh_inode)
			check_value(f, "user.keep", 5000, 1);
		done();
		CHECK(n < 1000);
	}
	printf("  %s: %d failure paths\n", what, failures);
}

static void test_faults(void)
{
	fault_walk("first attribute", op_new_small, true, 0);
	fault_walk("chunked value", op_new_big, false, 0);
	fault_walk("replace", op_replace, false, 0);
	fault_walk("access ACL", op_acl, true, 0);
	fault_walk("mkdir with inheritance", op_mkdir, true, 1);
	fault_walk("mknod with inheritance", op_mknod, true, 1);
}

int main(void)
{
	struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
	    {"basic", test_basic},
	    {"sizes", test_sizes},
	    {"list_limits", test_list_limits},
	    {"namespaces", test_namespaces},
	    {"acl_set", test_acl_set},
	    {"acl_sgid", test_acl_sgid},
	    {"acl_chmod", test_acl_chmod},
	    {"acl_permission", test_acl_permission},
	    {"acl_inherit", test_acl_inherit},
	    {"acl_large", test_acl_large},
	    {"size_limit", test_size_limit},
	    {"faults", test_faults},
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		printf("%s\n", tests[i].name);
		fflush(stdout);
		tests[i].fn();
	}
	printf("ok\n");
	return 0;
}
