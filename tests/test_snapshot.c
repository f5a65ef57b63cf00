/* SPDX-License-Identifier: MIT */
/* test_snapshot.c - a snapshot is the tree as it was when it was taken.
 *
 * Dump a tree through the public API (every path with its type, mode,
 * links, owner, size, device, mtime, ctime, xattrs and a hash of its
 * contents), take a snapshot, change the tree in every way (write,
 * truncate, punch, rename, unlink, rmdir, chmod, chown, setxattr, create),
 * then rebuild the dump from the snapshot alone: it must be identical.  A
 * second round does the changes from threads while the snapshot is being
 * read (ThreadSanitizer), and checks the same thing.
 *
 * The change count (sfs_fs_changes()) is held to its promise: after each
 * of hundreds of random changes, if the dump differs, the count differs
 * (no change escapes it); reads move it only when they move an access
 * time; a snapshot and an image save report the count of the tree they
 * hold.  And a save and a load report their progress to a thread that
 * watches: phases in order, done never going back or past total, idle
 * again at the end.
 */
#include <errno.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "check.h"
#include "sectorfs.h"
#include "snapshot.h"

static const struct sfs_cred root = {.uid = 0, .gid = 0, .umask = 022};

struct text {
	char *p;
	size_t len, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		t->cap = t->cap ? 2 * t->cap : 1 << 16;
		t->p = realloc(t->p, t->cap);
	}
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ull;
	return h;
}

/* A digest of contents that ignores how they are read: the sum over the
 * non-zero bytes of byte x a hash of its offset (so holes and zeros cost
 * nothing, and any order and chunking give the same value). */
static uint64_t mix(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void digest(uint64_t *d, uint64_t off, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	for (size_t i = 0; i < n; i++)
		if (p[i])
			*d += p[i] * mix(off + i + 1);
}

static void attrs(struct text *t, const char *path, uint32_t mode, uint32_t nlink, uint32_t uid,
                  uint32_t gid, uint64_t size, uint64_t rdev, struct timespec mt,
                  struct timespec ct)
{
	put(t, "%s %o %u %u %u %llu %llu m%lld.%09ld c%lld.%09ld", path, mode, nlink, uid, gid,
	    (unsigned long long)size, (unsigned long long)rdev, (long long)mt.tv_sec, mt.tv_nsec,
	    (long long)ct.tv_sec, ct.tv_nsec);
}

/* ---- the live tree, through the public API ---- */

struct names {
	char (*n)[SFS_NAME_MAX + 1];
	int c, cap;
};

static int add_name(void *ctx, const char *name, const struct stat *st, off_t next)
{
	struct names *ns = ctx;
	(void)st, (void)next;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if (ns->c == ns->cap) {
		ns->cap = ns->cap ? 2 * ns->cap : 64;
		ns->n = realloc(ns->n, (size_t)ns->cap * sizeof(*ns->n));
	}
	snprintf(ns->n[ns->c++], sizeof ns->n[0], "%s", name);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void dump_live(struct sfs_fs *fs, sfs_ino_t ino, const char *path, struct text *t)
{
	struct stat st;
	CHECK_EQ(sfs_getattr(fs, ino, &st), 0);
	attrs(t, path, st.st_mode, (uint32_t)st.st_nlink, st.st_uid, st.st_gid,
	      S_ISDIR(st.st_mode) ? 0 : (uint64_t)st.st_size, st.st_rdev, st.st_mtim, st.st_ctim);
	char list[4096];
	ssize_t ln = sfs_listxattr(fs, NULL, ino, list, sizeof list);
	CHECK(ln >= 0);
	static char val[SFS_XATTR_SIZE_MAX];
	for (ssize_t o = 0; o < ln; o += (ssize_t)strlen(list + o) + 1) {
		ssize_t vn = sfs_getxattr(fs, NULL, ino, list + o, val, sizeof val);
		put(t, " x:%s=%zd:%llx", list + o, vn, (unsigned long long)fnv(0, val, (size_t)vn));
	}
	if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
		uint64_t h = 0;
		static char buf[1 << 16];
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = sfs_readlink(fs, ino, buf, sizeof buf);
			digest(&h, 0, buf, (size_t)n);
		} else {
			struct sfs_file *fh;
			CHECK_EQ(sfs_open(fs, NULL, ino, O_RDONLY | O_NOATIME, &fh), 0);
			for (off_t off = 0;;) {
				off = sfs_lseek(fs, fh, off, SEEK_DATA);
				if (off < 0)
					break; /* only holes from here on */
				ssize_t n = sfs_read(fs, fh, buf, sizeof buf, off);
				CHECK(n > 0);
				digest(&h, (uint64_t)off, buf, (size_t)n);
				off += n;
			}
			sfs_release(fs, fh);
		}
		put(t, " data:%llx", (unsigned long long)h);
	}
	put(t, "\n");
	if (!S_ISDIR(st.st_mode))
		return;
	struct names ns = {0};
	struct sfs_file *dh;
	CHECK_EQ(sfs_opendir(fs, NULL, ino, &dh), 0);
	CHECK_EQ(sfs_readdir(fs, dh, 0, false, add_name, &ns), 0);
	sfs_releasedir(fs, dh);
	if (ns.c)
		qsort(ns.n, (size_t)ns.c, sizeof(*ns.n), cmp_names);
	for (int i = 0; i < ns.c; i++) {
		struct sfs_entry e;
		CHECK_EQ(sfs_lookup(fs, NULL, ino, ns.n[i], &e), 0);
		char sub[1024];
		snprintf(sub, sizeof sub, "%s/%s", path, ns.n[i]);
		dump_live(fs, e.ino, sub, t);
		sfs_forget(fs, e.ino, 1);
	}
	free(ns.n);
}

/* ---- the snapshot ---- */

struct entries {
	struct {
		char name[SFS_NAME_MAX + 1];
		uint64_t ino;
	} *e;
	int c, cap;
};

static int add_entry(void *ctx, const char *name, uint64_t ino)
{
	struct entries *es = ctx;
	if (es->c == es->cap) {
		es->cap = es->cap ? 2 * es->cap : 64;
		es->e = realloc(es->e, (size_t)es->cap * sizeof(*es->e));
	}
	snprintf(es->e[es->c].name, sizeof es->e[0].name, "%s", name);
	es->e[es->c++].ino = ino;
	return 0;
}

static int cmp_entries(const void *a, const void *b)
{
	return strcmp(a, b); /* name comes first */
}

static int add_xattr(void *ctx, const char *name, const void *value, size_t len)
{
	put(ctx, " x:%s=%zu:%llx", name, len, (unsigned long long)fnv(0, value, len));
	return 0;
}

static int hash_run(void *ctx, uint64_t off, const void *buf, size_t len)
{
	digest(ctx, off, buf, len);
	return 0;
}

static size_t index_of(struct snap *s, uint64_t ino)
{
	size_t lo = 0, hi = snap_count(s);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct snap_inode a;
		snap_inode(s, mid, &a);
		if (a.ino == ino)
			return mid;
		if (a.ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	CHECK(!"inode named but not in the snapshot");
	return 0;
}

static void dump_snap(struct snap *s, size_t i, const char *path, struct text *t)
{
	struct snap_inode a;
	snap_inode(s, i, &a);
	attrs(t, path, a.mode, a.nlink, a.uid, a.gid, S_ISDIR(a.mode) ? 0 : a.size, a.rdev, a.mtime,
	      a.ctime);
	CHECK_EQ(snap_xattrs(s, i, add_xattr, t), 0);
	if (S_ISREG(a.mode) || S_ISLNK(a.mode)) {
		uint64_t h = 0;
		CHECK_EQ(snap_data(s, i, hash_run, &h), 0);
		put(t, " data:%llx", (unsigned long long)h);
	}
	put(t, "\n");
	if (!S_ISDIR(a.mode))
		return;
	struct entries es = {0};
	CHECK_EQ(snap_dir(s, i, add_entry, &es), 0);
	if (es.c)
		qsort(es.e, (size_t)es.c, sizeof(*es.e), cmp_entries);
	for (int k = 0; k < es.c; k++) {
		char sub[1024];
		snprintf(sub, sizeof sub, "%s/%s", path, es.e[k].name);
		dump_snap(s, index_of(s, es.e[k].ino), sub, t);
	}
	free(es.e);
}

/* ---- the changes ---- */

static void build(struct sfs_fs *fs, struct rng *r)
{
	static char big[300000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)rng_next(r);
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/a/b/c", 0755, true), 0);
	CHECK_EQ(sfs_path_mkdir(fs, &root, "/x", 0700, false), 0);
	for (int i = 0; i < 30; i++) {
		char p[64];
		snprintf(p, sizeof p, "/a/f%d", i);
		size_t n = (size_t)rng_below(r, i % 3 ? 1000 : sizeof big);
		CHECK_EQ(sfs_path_write_file(fs, &root, p, big + i, n, 0644), 0);
	}
	CHECK_EQ(sfs_path_symlink(fs, &root, "../a/f1", "/x/ln"), 0);
	CHECK_EQ(sfs_path_link(fs, &root, "/a/f2", "/a/b/hard", false), 0);
	CHECK_EQ(sfs_path_mknod(fs, &root, "/x/fifo", S_IFIFO | 0600, 0), 0);
	struct sfs_entry e;
	CHECK_EQ(sfs_path_lookup(fs, &root, "/a/f3", true, &e), 0);
	CHECK_EQ(sfs_setxattr(fs, &root, e.ino, "user.k", "value", 5, 0), 0);
	struct sfs_file *fh;
	CHECK_EQ(sfs_open(fs, &root, e.ino, O_RDWR, &fh), 0);
	CHECK(sfs_write(fs, &root, fh, "far", 3, (off_t)5 << 30) == 3); /* sparse */
	sfs_release(fs, fh);
	sfs_forget(fs, e.ino, 1);
}

static void change(struct sfs_fs *fs, struct rng *r)
{
	char p[64], q[64];
	snprintf(p, sizeof p, "/a/f%d", (int)rng_below(r, 30));
	snprintf(q, sizeof q, "/a/b/f%d", (int)rng_below(r, 30));
	struct sfs_entry e;
	struct sfs_file *fh;
	static _Thread_local char buf[20000];
	memset(buf, (int)rng_below(r, 256), sizeof buf);
	switch (rng_below(r, 9)) {
	case 0:
	case 1:
		if (sfs_path_lookup(fs, &root, p, true, &e) == 0) {
			if (sfs_open(fs, &root, e.ino, O_RDWR, &fh) == 0) {
				sfs_write(fs, &root, fh, buf, (size_t)rng_below(r, sizeof buf),
				          (off_t)rng_below(r, 400000));
				if (rng_below(r, 3) == 0)
					sfs_fallocate(fs, &root, fh,
					              FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					              (off_t)rng_below(r, 100000), 50000);
				sfs_release(fs, fh);
			}
			sfs_forget(fs, e.ino, 1);
		}
		break;
	case 2:
		if (sfs_path_lookup(fs, &root, p, true, &e) == 0) {
			struct stat a = {.st_size = (off_t)rng_below(r, 200000), .st_mode = 0600};
			sfs_setattr(fs, &root, e.ino, &a, SFS_SET_SIZE | SFS_SET_MODE, NULL, NULL);
			sfs_setxattr(fs, &root, e.ino, "user.k", "changed", 7, 0);
			sfs_forget(fs, e.ino, 1);
		}
		break;
	case 3:
		sfs_path_rename(fs, &root, p, q, 0);
		break;
	case 4:
		sfs_path_unlink(fs, &root, p);
		break;
	case 5:
		sfs_path_remove_all(fs, &root, "/a/b/c");
		break;
	case 6:
		sfs_path_write_file(fs, &root, q, buf, 100, 0600);
		break;
	case 7:
		sfs_path_rename(fs, &root, "/x", "/a/b/x", SFS_RENAME_NOREPLACE);
		break;
	default:
		sfs_path_unlink(fs, &root, "/a/b/hard");
		break;
	}
}

struct changer {
	struct sfs_fs *fs;
	uint64_t seed;
	_Atomic int *stop;
};

static void *changer_thread(void *arg)
{
	struct changer *c = arg;
	struct rng r = {c->seed};
	while (!atomic_load(c->stop))
		change(c->fs, &r);
	return NULL;
}

static void run(uint64_t seed, bool threads)
{
	struct sfs_fs *fs;
	struct sfs_config cfg = {.size_limit = 1u << 30};
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
	struct rng r = {seed};
	build(fs, &r);
	struct text before = {0}, after = {0};
	dump_live(fs, SFS_ROOT_INO, "", &before);
	struct snap *s;
	CHECK_EQ(snap_begin(fs, &s), 0);
	_Atomic int stop = 0;
	pthread_t th[2];
	struct changer ch[2];
	if (threads) {
		for (int i = 0; i < 2; i++) {
			ch[i] = (struct changer){fs, seed * 3 + (uint64_t)i, &stop};
			CHECK_EQ(pthread_create(&th[i], NULL, changer_thread, &ch[i]), 0);
		}
	} else {
		for (int i = 0; i < 300; i++)
			change(fs, &r);
	}
	dump_snap(s, index_of(s, SFS_ROOT_INO), "", &after);
	if (threads) {
		atomic_store(&stop, 1);
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
	}
	snap_end(s);
	if (before.len != after.len || memcmp(before.p, after.p, before.len)) {
		fprintf(stderr, "before:\n%.*s\nsnapshot:\n%.*s\n", (int)before.len, before.p,
		        (int)after.len, after.p);
		abort();
	}
	CHECK_CLEAN(sfs_check, fs);
	free(before.p), free(after.p);
	sfs_fs_destroy(fs);
}

static bool same_text(const struct text *a, const struct text *b)
{
	return a->len == b->len && !memcmp(a->p, b->p, a->len);
}

static void test_changes(int steps)
{
	struct sfs_fs *fs;
	struct sfs_config cfg = {.size_limit = 1u << 30, .atime = SFS_ATIME_NEVER};
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
	struct rng r = {99};
	build(fs, &r);
	int moved = 0;
	for (int i = 0; i < steps; i++) {
		struct text d0 = {0}, d1 = {0};
		dump_live(fs, SFS_ROOT_INO, "", &d0);
		uint64_t c0 = sfs_fs_changes(fs);
		change(fs, &r);
		uint64_t c1 = sfs_fs_changes(fs);
		dump_live(fs, SFS_ROOT_INO, "", &d1);
		CHECK_EQ(sfs_fs_changes(fs), c1); /* reading (noatime) is no change */
		if (!same_text(&d0, &d1)) {
			CHECK(c1 != c0);
			moved++;
		}
		free(d0.p), free(d1.p);
	}
	CHECK(moved > steps / 4); /* the walk really changed things */

	/* A snapshot and a save hold the count of the tree they hold. */
	uint64_t c = sfs_fs_changes(fs);
	struct snap *s;
	CHECK_EQ(snap_begin(fs, &s), 0);
	CHECK_EQ(snap_changes(s), c);
	snap_end(s);
	char dir[] = "/tmp/test_snapshot.XXXXXX", img[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(img, sizeof img, "%s/x.img", dir);
	struct sfs_image_info info;
	CHECK_EQ(sfs_image_save(fs, img, &info, NULL, 0), 0);
	CHECK_EQ(info.changes, c);
	CHECK_EQ(sfs_fs_changes(fs), c); /* saving is no change */
	CHECK_EQ(sfs_path_write_file(fs, &root, "/new", "x", 1, 0644), 0);
	CHECK(sfs_fs_changes(fs) != c);
	unlink(img);
	rmdir(dir);
	sfs_fs_destroy(fs);

	/* Access times: a read that moves one counts, one that does not,
	 * does not. */
	cfg.atime = SFS_ATIME_STRICT;
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
	CHECK_EQ(sfs_path_write_file(fs, &root, "/f", "data", 4, 0644), 0);
	char buf[8];
	c = sfs_fs_changes(fs);
	CHECK_EQ(sfs_path_read_file(fs, &root, "/f", buf, sizeof buf), 4);
	CHECK(sfs_fs_changes(fs) != c);
	sfs_fs_destroy(fs);
	cfg.atime = SFS_ATIME_RELATIME;
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
	CHECK_EQ(sfs_path_write_file(fs, &root, "/f", "data", 4, 0644), 0);
	CHECK_EQ(sfs_path_read_file(fs, &root, "/f", buf, sizeof buf), 4); /* atime moves once */
	c = sfs_fs_changes(fs);
	CHECK_EQ(sfs_path_read_file(fs, &root, "/f", buf, sizeof buf), 4); /* then not */
	CHECK_EQ(sfs_fs_changes(fs), c);
	sfs_fs_destroy(fs);
	printf("changes: %d random steps, every change counted; reads counted only with an "
	       "access time\n", steps);
}

/* ---- progress of a save and a load, watched from another thread ---- */

struct image_job {
	struct sfs_fs *fs;
	const char *path;
	bool load;
	int rc;
	_Atomic int done;
};

static void *image_job(void *arg)
{
	struct image_job *j = arg;
	j->rc = j->load ? sfs_image_load(j->fs, j->path, NULL, 0)
	                : sfs_image_save(j->fs, j->path, NULL, NULL, 0);
	atomic_store(&j->done, 1);
	return NULL;
}

/* Run the job, sampling its progress all along: phases only move forward,
 * done never goes back or past total; returns how many samples were not
 * idle. */
static int watch(struct image_job *j, uint64_t want_total)
{
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, image_job, j), 0);
	int busy = 0;
	struct sfs_image_progress last = {SFS_IMAGE_IDLE, 0, 0};
	while (!atomic_load(&j->done)) {
		struct sfs_image_progress p;
		sfs_image_progress(j->fs, &p);
		sched_yield();
		if (p.phase == SFS_IMAGE_IDLE)
			continue;
		busy++;
		CHECK(p.phase == (j->load ? SFS_IMAGE_VERIFYING : SFS_IMAGE_SAVING) ||
		      (j->load && p.phase == SFS_IMAGE_LOADING));
		CHECK(p.done <= p.total);
		if (want_total)
			CHECK_EQ(p.total, want_total);
		CHECK(p.phase >= last.phase);
		if (p.phase == last.phase)
			CHECK(p.done >= last.done);
		last = p;
	}
	pthread_join(t, NULL);
	CHECK_EQ(j->rc, 0);
	struct sfs_image_progress p;
	sfs_image_progress(j->fs, &p);
	CHECK_EQ(p.phase, SFS_IMAGE_IDLE);
	return busy;
}

static void test_progress(void)
{
	struct sfs_fs *fs, *fs2;
	struct sfs_config cfg = {.size_limit = 1u << 30};
	CHECK_EQ(sfs_fs_create(&cfg, &fs), 0);
	static char chunk[1 << 20];
	struct rng r = {5};
	for (size_t i = 0; i < sizeof chunk; i++)
		chunk[i] = (char)rng_next(&r);
	const uint64_t files = 3, mib = 8;
	for (uint64_t f = 0; f < files; f++) {
		char p[32];
		snprintf(p, sizeof p, "/f%llu", (unsigned long long)f);
		struct sfs_entry e;
		struct sfs_file *fh;
		CHECK_EQ(sfs_path_write_file(fs, &root, p, "", 0, 0644), 0);
		CHECK_EQ(sfs_path_lookup(fs, &root, p, true, &e), 0);
		CHECK_EQ(sfs_open(fs, &root, e.ino, O_WRONLY, &fh), 0);
		for (uint64_t m = 0; m < mib; m++)
			CHECK(sfs_write(fs, &root, fh, chunk, sizeof chunk, (off_t)(m << 20)) ==
			      (ssize_t)sizeof chunk);
		sfs_release(fs, fh);
		sfs_forget(fs, e.ino, 1);
	}
	char dir[] = "/tmp/test_snapshot.XXXXXX", img[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(img, sizeof img, "%s/p.img", dir);
	/* A save or a load can be quicker than the watcher is scheduled:
	 * a few tries to see one at work. */
	int saw_save = 0, saw_load = 0;
	for (int round = 0; round < 8 && (!saw_save || !saw_load); round++) {
		struct image_job save = {.fs = fs, .path = img};
		saw_save += watch(&save, files * mib << 20);
		CHECK_EQ(sfs_fs_create(&cfg, &fs2), 0);
		struct stat st;
		CHECK_EQ(stat(img, &st), 0);
		struct image_job load = {.fs = fs2, .path = img, .load = true};
		saw_load += watch(&load, (uint64_t)st.st_size);
		sfs_fs_destroy(fs2);
	}
	CHECK(saw_save > 0);
	CHECK(saw_load > 0);
	unlink(img);
	rmdir(dir);
	sfs_fs_destroy(fs);
	printf("progress: %d samples of saves and %d of loads, each in order\n", saw_save, saw_load);
}

int main(int argc, char **argv)
{
	int rounds = test_quick(argc, argv) ? 3 : 20;
	uint64_t fresh = test_fresh_seed();
	printf("fresh seed %llu\n", (unsigned long long)fresh);
	for (int i = 0; i < rounds; i++) {
		run((uint64_t)i + 1, false);
		run((uint64_t)i + 1000, true);
	}
	run(fresh, false);
	run(fresh, true);
#ifdef __SANITIZE_THREAD__
	const bool tsan = true; /* 5-15 times as slow: fewer steps, same checks */
#else
	const bool tsan = false;
#endif
	test_changes(test_quick(argc, argv) || tsan ? 60 : 300);
	test_progress();
	printf("%d rounds: every snapshot equals the tree when it was taken\n", 2 * rounds + 2);
	return 0;
}
