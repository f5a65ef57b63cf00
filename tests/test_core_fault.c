/* SPDX-License-Identifier: MIT */
/* test_core_fault.c - every allocation failure of every core operation.
 *
 * For each operation and each n = 1, 2, ...: build the same starting tree
 * in a fresh filesystem, take a snapshot of everything observable (every
 * path with its type, mode, links, owner, size, device, xattrs and
 * contents, plus the pool's accounts and the inode count), make the n-th
 * allocation fail, run the operation.  A failure must be ENOMEM (or ENOSPC)
 * and leave the snapshot identical and sfs_check() happy; a success must
 * give the same tree as the operation run without faults.  The loop ends
 * when the operation gets through without reaching the armed point.
 * (mkdir -p and rm -r are sequences of operations, each all-or-nothing;
 * they may stop part way, and are only held to consistency.)  Path walks
 * through symlinks, listings, a permission check that must read more
 * groups than fit on the stack, and sfs_check itself are run the same
 * way.
 */
#include <errno.h>
#include <stdarg.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/sysmacros.h>

#include "check.h"
#include "sectorfs.h"
#include "sectorfs/fault.h"

static const struct sfs_cred root = {.uid = 0, .gid = 0, .umask = 022};

/* ---- snapshots ---- */

struct snap {
	char *text;
	size_t len, cap;
};

static void put(struct snap *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct snap *s, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(s->text + s->len, s->cap - s->len, fmt, ap);
		va_end(ap);
		if ((size_t)n < s->cap - s->len) {
			s->len += (size_t)n;
			return;
		}
		s->cap = s->cap ? s->cap * 2 : 4096;
		s->text = realloc(s->text, s->cap);
	}
}

struct names {
	char n[64][SFS_NAME_MAX + 1];
	int c;
};

static int add(void *ctx, const char *name, const struct stat *st, off_t next)
{
	struct names *ns = ctx;
	(void)st, (void)next;
	if (strcmp(name, ".") && strcmp(name, "..") && ns->c < 64)
		snprintf(ns->n[ns->c++], sizeof ns->n[0], "%s", name);
	return 0;
}

static void snap_inode(struct sfs_fs *fs, struct snap *s, sfs_ino_t ino, const char *path)
{
	struct stat st;
	CHECK_EQ(sfs_getattr(fs, ino, &st), 0);
	put(s, "%s %o %lu %u %u %lld %lu", path, st.st_mode, (unsigned long)st.st_nlink, st.st_uid,
	    st.st_gid, (long long)st.st_size, (unsigned long)st.st_rdev);
	char list[1024];
	ssize_t ln = sfs_listxattr(fs, NULL, ino, list, sizeof list);
	for (ssize_t o = 0; ln > 0 && o < ln; o += (ssize_t)strlen(list + o) + 1) {
		char val[256];
		ssize_t vn = sfs_getxattr(fs, NULL, ino, list + o, val, sizeof val);
		put(s, " x:%s=%zd", list + o, vn);
	}
	if (S_ISREG(st.st_mode) && st.st_size < (1 << 20)) {
		struct sfs_file *fh;
		CHECK_EQ(sfs_open(fs, NULL, ino, O_RDONLY | O_NOATIME, &fh), 0);
		static char buf[1 << 20];
		ssize_t n = sfs_read(fs, fh, buf, sizeof buf, 0);
		uint64_t h = 1469598103934665603ull;
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
		put(s, " data:%zd:%llx", n, (unsigned long long)h);
		CHECK_EQ(sfs_release(fs, fh), 0);
	}
	if (S_ISLNK(st.st_mode)) {
		static char t[SFS_SYMLINK_MAX + 1];
		ssize_t n = sfs_readlink(fs, ino, t, sizeof t);
		put(s, " ->%zd:%.20s", n, t);
	}
	put(s, "\n");
	if (!S_ISDIR(st.st_mode))
		return;
	struct sfs_file *dh;
	CHECK_EQ(sfs_opendir(fs, NULL, ino, &dh), 0);
	static struct names ns[8];
	static int depth;
	struct names *mine = &ns[depth++];
	mine->c = 0;
	CHECK_EQ(sfs_readdir(fs, dh, 0, false, add, mine), 0);
	CHECK_EQ(sfs_releasedir(fs, dh), 0);
	for (int i = 0; i < mine->c; i++) {
		struct sfs_entry e;
		CHECK_EQ(sfs_lookup(fs, NULL, ino, mine->n[i], &e), 0);
		char sub[512];
		snprintf(sub, sizeof sub, "%s/%s", path, mine->n[i]);
		snap_inode(fs, s, e.ino, sub);
		CHECK_EQ(sfs_forget(fs, e.ino, 1), 0);
	}
	depth--;
}

static struct snap snapshot(struct sfs_fs *fs)
{
	struct snap s = {0};
	snap_inode(fs, &s, SFS_ROOT_INO, "");
	struct sfs_stats st;
	sfs_get_stats(fs, &st);
	put(&s, "inodes %llu files %llu dirs %llu links %llu sectors %llu small %llu reserved %llu "
	    "saved %llu\n",
	    (unsigned long long)st.inodes, (unsigned long long)st.files,
	    (unsigned long long)st.dirs, (unsigned long long)st.symlinks,
	    (unsigned long long)st.sectors, (unsigned long long)st.small_bytes,
	    (unsigned long long)st.reserved, (unsigned long long)st.saved_sectors);
	return s;
}

/* ---- the starting tree and the operations ---- */

static char big[64 << 10];
static char longlink[3000];

static sfs_ino_t ino_of(struct sfs_fs *fs, const char *path)
{
	struct sfs_entry e;
	CHECK_EQ(sfs_path_lookup(fs, &root, path, false, &e), 0);
	CHECK_EQ(sfs_forget(fs, e.ino, 1), 0);
	return e.ino;
}

static void setup(struct sfs_fs *fs)
{
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/d/e", 0755, true), 0);
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/full", 0755, false), 0);
	for (int i = 0; i < 8; i++) { /* exactly fills the first bucket table */
		char p[32];
		snprintf(p, sizeof p, "/full/f%d", i);
		CHECK_EQ(sfs_path_write_file(fs, &root, p, "x", 1, 0644), 0);
	}
	CHECK_EQ(sfs_path_write_file(fs, &root, "/d/small", "hello", 5, 0644), 0);
	CHECK_EQ(sfs_path_write_file(fs, &root, "/d/large", big, 20000, 0644), 0);
	CHECK_EQ(sfs_path_symlink(fs, &root, "small", "/d/ln"), 0);
	CHECK_EQ(sfs_setxattr(fs, &root, ino_of(fs, "/d/small"), "user.a", "v", 1, 0), 0);
	/* readable by its group only: the 40th of op_group_read's caller */
	CHECK_EQ(sfs_path_write_file(fs, &root, "/grp", "g", 1, 0040), 0);
	struct stat own = {.st_uid = 0, .st_gid = 2039};
	CHECK_EQ(sfs_setattr(fs, &root, ino_of(fs, "/grp"), &own, SFS_SET_GID, NULL, NULL), 0);
	/* readable through its access ACL's entry for that group */
	CHECK_EQ(sfs_path_write_file(fs, &root, "/acl", "a", 1, 0600), 0);
	static const unsigned ents[][3] = {{1, 6, 0}, {4, 0, 0}, {8, 4, 2039}, {0x10, 4, 0},
	                                   {0x20, 0, 0}}; /* user::rw- group::--- group:2039:r-- */
	uint8_t acl[4 + 5 * 8] = {2};
	for (int i = 0; i < 5; i++) {
		uint8_t *p = acl + 4 + 8 * i;
		p[0] = (uint8_t)ents[i][0], p[2] = (uint8_t)ents[i][1];
		p[4] = (uint8_t)ents[i][2], p[5] = (uint8_t)(ents[i][2] >> 8);
	}
	CHECK_EQ(sfs_setxattr(fs, &root, ino_of(fs, "/acl"), "system.posix_acl_access", acl,
	                      sizeof acl, 0), 0);
	/* /d/twin shares the sectors of /d/big: 40 KiB, a 16 KiB hole, 8 KiB. */
	CHECK_EQ(sfs_path_write_file(fs, &root, "/d/big", big, 40 << 10, 0644), 0);
	struct sfs_file *a, *b;
	CHECK_EQ(sfs_path_open(fs, &root, "/d/big", O_RDWR, 0, &a), 0);
	CHECK_EQ(sfs_write(fs, &root, a, big + 5, 8 << 10, 56 << 10), 8 << 10);
	CHECK_EQ(sfs_path_open(fs, &root, "/d/twin", O_RDWR | O_CREAT, 0644, &b), 0);
	CHECK_EQ(sfs_copy_file_range(fs, &root, a, 0, b, 0, 64 << 10, 0), 64 << 10);
	CHECK_EQ(sfs_release(fs, a), 0);
	CHECK_EQ(sfs_release(fs, b), 0);
}

/* The file a scenario works on, opened before the fault window (or NULL). */
static struct sfs_file *fh;

typedef int (*op_fn)(struct sfs_fs *fs);

static int op_mknod(struct sfs_fs *fs)
{
	return sfs_mknod(fs, &root, ino_of(fs, "/d"), "n", S_IFREG | 0644, 0, NULL);
}
static int op_mkdir(struct sfs_fs *fs)
{
	return sfs_mkdir(fs, &root, ino_of(fs, "/d/e"), "sub", 0755, NULL);
}
static int op_mkdir_full(struct sfs_fs *fs) /* grows the bucket table too */
{
	return sfs_mkdir(fs, &root, ino_of(fs, "/full"), "ninth", 0755, NULL);
}
static int op_symlink_long(struct sfs_fs *fs)
{
	return sfs_symlink(fs, &root, ino_of(fs, "/d"), "long", longlink, NULL);
}
static int op_create(struct sfs_fs *fs)
{
	struct sfs_file *c;
	int rc = sfs_create(fs, &root, ino_of(fs, "/d"), "c", 0600, O_RDWR, NULL, &c);
	if (rc == 0)
		fh = c; /* released after the fault window */
	return rc;
}
static int op_tmpfile(struct sfs_fs *fs)
{
	struct sfs_file *t;
	int rc = sfs_tmpfile(fs, &root, ino_of(fs, "/d"), 0600, O_RDWR, NULL, &t);
	if (rc == 0)
		fh = t;
	return rc;
}
static int op_link(struct sfs_fs *fs)
{
	return sfs_link(fs, &root, ino_of(fs, "/d/small"), ino_of(fs, "/d/e"), "l", NULL);
}
static int op_rename_new(struct sfs_fs *fs)
{
	return sfs_rename(fs, &root, ino_of(fs, "/d"), "small", ino_of(fs, "/d/e"), "moved", 0);
}
static int op_rename_whiteout(struct sfs_fs *fs)
{
	return sfs_rename(fs, &root, ino_of(fs, "/d"), "large", ino_of(fs, "/d"), "w",
	                  SFS_RENAME_WHITEOUT);
}
static int op_unlink(struct sfs_fs *fs)
{
	return sfs_unlink(fs, &root, ino_of(fs, "/d"), "large");
}
static int op_write_spill(struct sfs_fs *fs) /* inline to sectors */
{
	ssize_t n = sfs_write(fs, &root, fh, big, sizeof big, 3);
	return n < 0 ? (int)n : 0;
}
static int op_write_far(struct sfs_fs *fs)
{
	ssize_t n = sfs_write(fs, &root, fh, "far", 3, (off_t)1 << 33);
	return n < 0 ? (int)n : 0;
}
static int op_fallocate(struct sfs_fs *fs)
{
	return sfs_fallocate(fs, &root, fh, 0, 100, 300000);
}
static int op_truncate_up(struct sfs_fs *fs)
{
	struct stat a = {.st_size = 1 << 20};
	return sfs_setattr(fs, &root, ino_of(fs, "/d/small"), &a, SFS_SET_SIZE, NULL, NULL);
}
static int op_setxattr(struct sfs_fs *fs)
{
	return sfs_setxattr(fs, &root, ino_of(fs, "/d/large"), "user.big", big, 5000, 0);
}
static int op_open(struct sfs_fs *fs)
{
	struct sfs_file *o;
	int rc = sfs_open(fs, &root, ino_of(fs, "/d/large"), O_RDWR | O_TRUNC, &o);
	if (rc == 0)
		fh = o;
	return rc;
}
static struct sfs_file *copy_in;
static int op_copy(struct sfs_fs *fs)
{
	ssize_t n = sfs_copy_file_range(fs, &root, copy_in, 0, fh, 0, 20000, 0);
	return n < 0 ? (int)n : 0;
}
/* Copies that share, and changes that break shares. */
static int op_copy_share(struct sfs_fs *fs)
{
	ssize_t n = sfs_copy_file_range(fs, &root, copy_in, 4096, fh, 8192, 50 << 10, 0);
	return n < 0 ? (int)n : 0;
}
static int op_write_twin(struct sfs_fs *fs)
{
	ssize_t n = sfs_write(fs, &root, fh, big, 30000, 1000);
	return n < 0 ? (int)n : 0;
}
static int op_truncate_twin(struct sfs_fs *fs)
{
	struct stat a = {.st_size = 5000};
	return sfs_setattr(fs, &root, ino_of(fs, "/d/twin"), &a, SFS_SET_SIZE, NULL, NULL);
}
static int op_punch_twin(struct sfs_fs *fs)
{
	return sfs_fallocate(fs, &root, fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 9000);
}
static int op_zero_twin(struct sfs_fs *fs)
{
	return sfs_fallocate(fs, &root, fh, FALLOC_FL_ZERO_RANGE, 3000, 50000);
}
static int op_clone(struct sfs_fs *fs)
{
	char err[256];
	return sfs_path_clone(fs, &root, "/d", "/full/dcopy", err, sizeof err);
}
static int op_mkdir_p(struct sfs_fs *fs)
{
	return sfs_path_mkdir(fs, &root, "/d/e/x/y/z", 0700, true);
}
static int op_path_symlink(struct sfs_fs *fs) /* follows /d/ln */
{
	struct stat st;
	return sfs_path_stat(fs, &root, "/d/ln", &st, true);
}
static int count_entry(void *ctx, const char *name, const struct stat *st)
{
	(void)name, (void)st;
	++*(int *)ctx;
	return 0;
}
static int op_path_list(struct sfs_fs *fs)
{
	int n = 0;
	int rc = sfs_path_list(fs, &root, "/full", count_entry, &n);
	return rc ? rc : n == 8 ? 0 : -EIO;
}
static int op_remove_all(struct sfs_fs *fs)
{
	return sfs_path_remove_all(fs, &root, "/d");
}

/* A caller in 40 supplementary groups, more than the core reads at once:
 * deciding whether it may read a file of its 40th group needs memory. */
static int forty_groups(void *arg, gid_t *list, int max)
{
	(void)arg;
	for (int i = 0; i < 40 && i < max; i++)
		list[i] = (gid_t)(2000 + i);
	return 40;
}
static const struct sfs_cred member = {.uid = 1000, .gid = 1000, .umask = 022,
                                       .get_groups = forty_groups};
static int group_read(struct sfs_fs *fs, const char *path)
{
	struct sfs_file *o;
	int rc = sfs_open(fs, &member, ino_of(fs, path), O_RDONLY, &o);
	if (rc == 0)
		fh = o;
	return rc;
}
static int op_group_read(struct sfs_fs *fs)
{
	return group_read(fs, "/grp");
}
static int op_acl_group_read(struct sfs_fs *fs)
{
	return group_read(fs, "/acl");
}

struct scenario {
	const char *name;
	op_fn op;
	const char *file; /* opened O_RDWR as fh before the fault window */
	bool compound;    /* a sequence of operations: may stop part way */
	bool no_alloc;    /* allocates nothing: reaches no fault point */
};

static void prepare(struct sfs_fs *fs, const struct scenario *sc)
{
	fh = copy_in = NULL;
	if (sc->file)
		CHECK_EQ(sfs_open(fs, &root, ino_of(fs, sc->file), O_RDWR, &fh), 0);
	if (sc->op == op_copy)
		CHECK_EQ(sfs_open(fs, &root, ino_of(fs, "/d/large"), O_RDONLY, &copy_in), 0);
	if (sc->op == op_copy_share)
		CHECK_EQ(sfs_open(fs, &root, ino_of(fs, "/d/big"), O_RDONLY, &copy_in), 0);
}

static void finish(struct sfs_fs *fs)
{
	if (fh)
		CHECK_EQ(sfs_release(fs, fh), 0);
	if (copy_in)
		CHECK_EQ(sfs_release(fs, copy_in), 0);
	fh = copy_in = NULL;
}

static struct sfs_fs *fresh(void)
{
	struct sfs_fs *fs;
	CHECK_EQ(sfs_fs_create(NULL, &fs), 0);
	setup(fs);
	return fs;
}

static void done(struct sfs_fs *fs)
{
	CHECK_CLEAN(sfs_check, fs);
	sfs_fs_destroy(fs);
}

static void run(const struct scenario *sc)
{
	struct sfs_fs *ref = fresh();
	prepare(ref, sc);
	CHECK_EQ(sc->op(ref), 0);
	struct snap want = snapshot(ref);
	finish(ref);
	done(ref);
	int failures = 0;
	for (long n = 1;; n++) {
		CHECK(n < 1000);
		struct sfs_fs *fs = fresh();
		prepare(fs, sc);
		struct snap before = snapshot(fs);
		sfs_fault_arm(n, false);
		int rc = sc->op(fs);
		bool hit = sfs_fault_disarm();
		struct snap after = snapshot(fs);
		finish(fs);
		if (rc) {
			if (rc != -ENOMEM && rc != -ENOSPC)
				fprintf(stderr, "%s: fault %ld gave %d\n", sc->name, n, rc);
			CHECK(rc == -ENOMEM || rc == -ENOSPC);
			CHECK(hit);
			if (!sc->compound && strcmp(before.text, after.text)) {
				fprintf(stderr, "%s, fault %ld changed the tree:\nbefore:\n%s\nafter:\n%s\n",
				        sc->name, n, before.text, after.text);
				abort();
			}
			failures++;
		} else if (strcmp(want.text, after.text)) {
			fprintf(stderr, "%s, fault %ld: result differs:\nwant:\n%s\ngot:\n%s\n",
			        sc->name, n, want.text, after.text);
			abort();
		}
		free(before.text), free(after.text);
		done(fs);
		if (rc == 0 && !hit) {
			printf("%-16s %3ld fault points, %3d clean failures\n", sc->name, n - 1, failures);
			/* A scenario meant to reach a fault point must: else it proves nothing. */
			CHECK(n > 1 || sc->no_alloc);
			break;
		}
	}
	free(want.text);
}

/* sfs_check itself, short of memory: ENOMEM, and says so. */
static void check_faults(void)
{
	struct sfs_fs *fs = fresh();
	long n;
	for (n = 1;; n++) {
		char msg[256];
		sfs_fault_arm(n, false);
		int rc = sfs_check(fs, msg, sizeof msg);
		bool hit = sfs_fault_disarm();
		if (rc) {
			CHECK(hit);
			CHECK_EQ(rc, -ENOMEM);
			CHECK(!strcmp(msg, "out of memory: nothing was checked"));
		}
		if (!hit)
			break;
	}
	done(fs);
	printf("%-16s %3ld fault points\n", "sfs_check", n - 1);
	CHECK(n > 1);
}

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7 + 1);
	memset(longlink, 'L', sizeof longlink - 1);
	const struct scenario scs[] = {
	        {"mknod", op_mknod},
	        {"mkdir", op_mkdir},
	        {"mkdir-grow", op_mkdir_full},
	        {"symlink-long", op_symlink_long},
	        {"create", op_create},
	        {"tmpfile", op_tmpfile},
	        {"link", op_link},
	        {"rename", op_rename_new},
	        {"rename-whiteout", op_rename_whiteout},
	        {"unlink", op_unlink, NULL, false, true},
	        {"write-spill", op_write_spill, "/d/small"},
	        {"write-far", op_write_far, "/d/large"},
	        {"fallocate", op_fallocate, "/d/small"},
	        {"truncate-up", op_truncate_up},
	        {"setxattr", op_setxattr},
	        {"open-trunc", op_open},
	        {"copy-range", op_copy, "/d/small"},
	        {"copy-share", op_copy_share, "/d/twin"},
	        {"write-twin", op_write_twin, "/d/twin"},
	        {"truncate-twin", op_truncate_twin},
	        {"punch-twin", op_punch_twin, "/d/twin"},
	        {"zero-twin", op_zero_twin, "/d/twin"},
	        {"clone", op_clone},
	        {"mkdir-p", op_mkdir_p, NULL, true},
	        {"path-symlink", op_path_symlink},
	        {"path-list", op_path_list},
	        {"remove-all", op_remove_all, NULL, true},
	        {"group-read", op_group_read},
	        {"acl-group-read", op_acl_group_read},
	};
	for (size_t i = 0; i < sizeof scs / sizeof *scs; i++)
		run(&scs[i]);
	check_faults();
	return 0;
}
