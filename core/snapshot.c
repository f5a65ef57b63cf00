/* SPDX-License-Identifier: MIT */
/* snapshot.c - freezing changes, and a point-in-time view for saving.
 *
 * The freeze.  Every call that changes the tree or a file's contents
 * enters the freeze shared (freeze_enter/freeze_exit); a snapshot, or a
 * change of limits (sfs_fs_set_limits), enters it exclusively.  Readers must not pay for this on every write, so the
 * shared side is 16 cache-line-padded counters, one per thread slot (the
 * kernel's percpu rw-semaphore in small): entering is one atomic add on a
 * line no other thread uses, then a look at the `frozen` flag.  The freezer
 * raises the flag and waits for the counters to drain; a writer that finds
 * the flag up steps back and sleeps on it.  Calls that change things never
 * enter twice (an inner call would wait for a freeze that waits for it).
 *
 * The change count.  Entering also adds one to a second counter of the
 * slot, on the same cache line, so counting every change costs nothing
 * more; their sum is sfs_fs_changes().  A change is counted when it
 * begins, so the sum a snapshot reads while everything is frozen covers
 * exactly the changes its view holds, and any change after it makes the
 * sum differ: equal sums mean the tree is as the snapshot saw it.
 *
 * The view.  snap_begin() freezes the filesystem only while it copies what
 * is small -- every linked inode's attributes, directory entries and
 * xattrs, into the snapshot's own arenas -- and freezes each file's data
 * vector (copy-on-write, engine/frozen.c).  Then writers go on: the saver
 * reads data through the frozen views, which keep any sector a writer
 * changes before the saver got to it.  The pause writers see is the
 * metadata copy, proportional to the number of inodes, not to the data.
 */
#include "snapshot.h"

#include <stdlib.h>

#include "core.h"
#include "os.h"

/* ---- the freeze ---- */

static _Atomic unsigned next_slot;
static _Thread_local unsigned my_slot; /* 0: unassigned; else slot + 1 */

static unsigned slot_of(void)
{
	if (my_slot == 0)
		my_slot = atomic_fetch_add(&next_slot, 1) % FREEZE_SLOTS + 1;
	return my_slot - 1;
}

void freeze_enter(struct sfs_fs *fs)
{
	unsigned s = slot_of();
	atomic_fetch_add_explicit(&fs->freeze.readers[s].changes, 1, memory_order_relaxed);
	for (;;) {
		atomic_fetch_add(&fs->freeze.readers[s].n, 1);
		if (!atomic_load(&fs->freeze.frozen))
			return;
		atomic_fetch_sub(&fs->freeze.readers[s].n, 1);
		while (atomic_load(&fs->freeze.frozen))
			os_futex_wait(&fs->freeze.frozen, 1);
	}
}

void freeze_exit(struct sfs_fs *fs)
{
	atomic_fetch_sub(&fs->freeze.readers[slot_of()].n, 1);
}

void freeze_count_change(struct sfs_fs *fs)
{
	atomic_fetch_add_explicit(&fs->freeze.readers[slot_of()].changes, 1, memory_order_relaxed);
}

uint64_t freeze_changes(struct sfs_fs *fs)
{
	uint64_t sum = 0;
	for (int i = 0; i < FREEZE_SLOTS; i++)
		sum += atomic_load(&fs->freeze.readers[i].changes);
	return sum;
}

void freeze_all(struct sfs_fs *fs)
{
	lk_lock(&fs->freeze.lock);
	atomic_store(&fs->freeze.frozen, 1);
	for (;;) {
		int64_t busy = 0;
		for (int i = 0; i < FREEZE_SLOTS; i++)
			busy += atomic_load(&fs->freeze.readers[i].n);
		if (busy == 0)
			return;
		os_yield();
	}
}

void thaw_all(struct sfs_fs *fs)
{
	atomic_store(&fs->freeze.frozen, 0);
	os_futex_wake_all(&fs->freeze.frozen);
	lk_unlock(&fs->freeze.lock);
}

/* ---- the view ---- */

#define SNAP_CHUNK ((size_t)1 << 20) /* file data is read in pieces this large */

struct snap_rec {
	struct snap_inode attr;
	struct sfs_inode *ip;      /* referenced until snap_end */
	struct sv_frozen *frozen;  /* its data, frozen (files and symlinks) */
	size_t dir_off, dir_len;   /* entries in s->dirs: u64 ino, u8 len, name */
	size_t x_off, x_len;       /* xattrs in s->xattrs: u8 len, name, u32 len, value */
};

struct arena {
	char *p;
	size_t len, cap;
};

struct snap {
	struct sfs_fs *fs;
	struct snap_rec *recs;     /* by inode number */
	size_t n;
	struct arena dirs, xattrs;
	char *buf;                 /* snap_data's, made on its first call */
	bool failed;
	uint64_t held_ns;          /* the freeze's length */
	uint64_t changes;          /* sfs_fs_changes() at the snapshot's instant */
};

static int arena_put(struct arena *a, const void *data, size_t len)
{
	if (a->len + len > a->cap) {
		size_t cap = a->cap ? a->cap : 4096;
		while (cap < a->len + len)
			cap *= 2;
		char *p = os_realloc(a->p, cap);
		if (!p)
			return -ENOMEM;
		a->p = p, a->cap = cap;
	}
	memcpy(a->p + a->len, data, len);
	a->len += len;
	return 0;
}

static int by_ino(const void *a, const void *b)
{
	uint64_t x = ((const struct snap_rec *)a)->ip->ino, y = ((const struct snap_rec *)b)->ip->ino;
	return x < y ? -1 : x > y;
}

static struct timespec time_of(_Atomic int64_t *sec, _Atomic uint32_t *nsec)
{
	return (struct timespec){.tv_sec = (time_t)atomic_load(sec), .tv_nsec = (long)atomic_load(nsec)};
}

/* Copy one inode's small state (the filesystem is frozen). */
static int capture(struct snap *s, struct snap_rec *r)
{
	struct sfs_inode *ip = r->ip;
	struct snap_inode *a = &r->attr;
	lk_rdlock(&ip->lock);
	a->ino = ip->ino;
	a->mode = ip->mode;
	a->uid = ip->uid;
	a->gid = ip->gid;
	a->nlink = atomic_load(&ip->nlink);
	a->size = has_data(ip) ? sv_size(&ip->u.data) : 0;
	a->rdev = (S_ISCHR(ip->mode) || S_ISBLK(ip->mode)) ? ip->u.rdev : 0;
	a->atime = time_of(&ip->atime_s, &ip->atime_ns);
	a->mtime = time_of(&ip->mtime_s, &ip->mtime_ns);
	a->ctime = time_of(&ip->ctime_s, &ip->ctime_ns);
	int rc = 0;
	r->dir_off = s->dirs.len;
	if (is_dir(ip)) {
		for (struct sfs_dirent *de = dir_next(ip->u.dir, 0); de && rc == 0;
		     de = dir_next(ip->u.dir, de->cookie + 1)) {
			uint64_t child = de->inode->ino;
			rc = arena_put(&s->dirs, &child, sizeof child);
			if (rc == 0)
				rc = arena_put(&s->dirs, &de->len, 1);
			if (rc == 0)
				rc = arena_put(&s->dirs, de->name, de->len);
		}
	}
	r->dir_len = s->dirs.len - r->dir_off;
	r->x_off = s->xattrs.len;
	ssize_t n = rc ? 0 : xattr_list(ip, NULL, 0);
	if (n > 0) {
		char *names = os_malloc((size_t)n), *value = os_malloc(SFS_XATTR_SIZE_MAX);
		if (!names || !value)
			rc = -ENOMEM;
		if (rc == 0)
			n = xattr_list(ip, names, (size_t)n);
		for (ssize_t off = 0; rc == 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
			ssize_t len = xattr_get(ip, names + off, value, SFS_XATTR_SIZE_MAX);
			uint8_t nl = (uint8_t)strlen(names + off);
			uint32_t vl = (uint32_t)(len < 0 ? 0 : len);
			rc = len < 0 ? (int)len : arena_put(&s->xattrs, &nl, 1);
			if (rc == 0)
				rc = arena_put(&s->xattrs, names + off, nl);
			if (rc == 0)
				rc = arena_put(&s->xattrs, &vl, sizeof vl);
			if (rc == 0)
				rc = arena_put(&s->xattrs, value, vl);
		}
		os_free(names);
		os_free(value);
	}
	r->x_len = s->xattrs.len - r->x_off;
	lk_rdunlock(&ip->lock);
	if (rc == 0 && has_data(ip))
		rc = sv_freeze(s->fs->pool, &ip->u.data, &r->frozen);
	return rc;
}

uint64_t snap_changes(const struct snap *s)
{
	return s->changes;
}

uint64_t snap_held_ns(const struct snap *s)
{
	return s->held_ns;
}

int snap_begin(struct sfs_fs *fs, struct snap **out)
{
	struct snap *s = os_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fs = fs;
	uint64_t t0 = os_monotonic_ns();
	freeze_all(fs);
	s->changes = freeze_changes(fs);
	int rc = 0;
	size_t cap = 0;
	for (int sh = 0; sh < TABLE_SHARDS && rc == 0; sh++) {
		struct table_shard *t = &fs->shards[sh];
		lk_rdlock(&t->lock);
		uint64_t key = 0;
		struct sfs_inode *ip;
		while (rc == 0 && (ip = sm_next(&t->map, key, &key)) != NULL) {
			key++;
			if (atomic_load(&ip->nlink) == 0)
				continue; /* unlinked: not part of an image */
			if (s->n == cap) {
				cap = cap ? cap * 2 : 1024;
				struct snap_rec *v = os_realloc(s->recs, cap * sizeof(*v));
				if (!v) {
					rc = -ENOMEM;
					break;
				}
				s->recs = v;
			}
			inode_hold(ip);
			s->recs[s->n++] = (struct snap_rec){.ip = ip};
		}
		lk_rdunlock(&t->lock);
	}
	if (rc == 0)
		qsort(s->recs, s->n, sizeof(*s->recs), by_ino);
	for (size_t i = 0; i < s->n && rc == 0; i++)
		rc = capture(s, &s->recs[i]);
	thaw_all(fs);
	s->held_ns = os_monotonic_ns() - t0;
	if (rc) {
		snap_end(s);
		return rc;
	}
	*out = s;
	return 0;
}

void snap_end(struct snap *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		struct snap_rec *r = &s->recs[i];
		if (r->frozen)
			sv_unfreeze(s->fs->pool, &r->ip->u.data, r->frozen);
		inode_put(s->fs, r->ip);
	}
	os_free(s->recs);
	os_free(s->buf);
	os_free(s->dirs.p);
	os_free(s->xattrs.p);
	os_free(s);
}

size_t snap_count(const struct snap *s)
{
	return s->n;
}

void snap_inode(const struct snap *s, size_t i, struct snap_inode *out)
{
	*out = s->recs[i].attr;
}

int snap_dir(struct snap *s, size_t i, int (*fn)(void *ctx, const char *name, uint64_t ino),
             void *ctx)
{
	const struct snap_rec *r = &s->recs[i];
	if (!S_ISDIR(r->attr.mode))
		return -ENOTDIR;
	const char *p = s->dirs.p + r->dir_off, *end = p + r->dir_len;
	char name[SFS_NAME_MAX + 1];
	int rc = 0;
	while (rc == 0 && p < end) {
		uint64_t ino;
		memcpy(&ino, p, sizeof ino);
		uint8_t len = (uint8_t)p[sizeof ino];
		memcpy(name, p + sizeof ino + 1, len);
		name[len] = '\0';
		p += sizeof ino + 1 + len;
		rc = fn(ctx, name, ino);
	}
	return rc;
}

int snap_xattrs(struct snap *s, size_t i,
                int (*fn)(void *ctx, const char *name, const void *value, size_t len),
                void *ctx)
{
	const struct snap_rec *r = &s->recs[i];
	const char *p = s->xattrs.p + r->x_off, *end = p + r->x_len;
	char name[SFS_NAME_MAX + 1];
	int rc = 0;
	while (rc == 0 && p < end) {
		uint8_t nl = (uint8_t)*p++;
		memcpy(name, p, nl);
		name[nl] = '\0';
		p += nl;
		uint32_t vl;
		memcpy(&vl, p, sizeof vl);
		p += sizeof vl;
		rc = fn(ctx, name, p, vl);
		p += vl;
	}
	return rc;
}

size_t snap_shares(const struct snap *s, size_t i, const struct sv_frozen_share **list,
                   uint64_t *sector_size)
{
	*sector_size = sp_sector_size(s->fs->pool);
	const struct snap_rec *r = &s->recs[i];
	if (!r->frozen) {
		*list = NULL;
		return 0;
	}
	return sv_frozen_shares(r->frozen, list);
}

int snap_data(struct snap *s, size_t i,
              int (*fn)(void *ctx, uint64_t off, const void *buf, size_t len), void *ctx)
{
	struct snap_rec *r = &s->recs[i];
	if (!r->frozen)
		return 0;
	struct sp_pool *pool = s->fs->pool;
	struct sv_vector *v = &r->ip->u.data;
	const uint64_t *runs;
	size_t nruns = sv_frozen_runs(r->frozen, &runs);
	/* One buffer for every file of the save: a megabyte each would be
	 * a mapping made and unmade per file. */
	const size_t chunk = SNAP_CHUNK;
	if (!s->buf && !(s->buf = os_malloc(chunk)))
		return -ENOMEM;
	char *buf = s->buf;
	int rc = 0;
	for (size_t k = 0; k < nruns && rc == 0; k++) {
		for (uint64_t off = runs[2 * k]; rc == 0 && off < runs[2 * k + 1];) {
			size_t want = runs[2 * k + 1] - off < chunk ? (size_t)(runs[2 * k + 1] - off) : chunk;
			ssize_t got = sv_frozen_read(pool, v, r->frozen, buf, want, (int64_t)off);
			if (got <= 0) {
				rc = got < 0 ? (int)got : 0;
				break;
			}
			rc = fn(ctx, off, buf, (size_t)got);
			off += (uint64_t)got;
		}
	}
	/* A copy a writer needed could not be made: this view is incomplete. */
	if (rc == 0 && sv_frozen_broken(r->frozen))
		rc = -ENOMEM;
	return rc;
}
