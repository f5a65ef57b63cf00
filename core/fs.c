/* SPDX-License-Identifier: MIT */
/* fs.c - a filesystem's life, its inode table, and the lives of inodes.
 *
 * The inode table maps inode numbers to inodes.  It is split in 64 shards
 * by the low bits of the number, each a sparse map under its own rwlock, so
 * that lookups by number (every FUSE request starts with one) rarely meet.
 * Numbers come from one counter and are never reused; the sparse map keeps
 * the table as small as the live inodes even so.
 *
 * Lifetime: an inode is alive while it has links, lookups or references.
 * inode_get() takes a reference under the shard's read lock, and refuses an
 * inode that is dead (no link, no lookup) with no reference left.  The
 * other way to a reference is through a link (a directory entry, under its
 * directory's lock) or an existing reference.  inode_put() drops the last
 * reference under the shard's write lock and frees the inode if it is dead
 * then.  Links and lookups only change while their changer holds a
 * reference, so that check sees their final values, and no other thread
 * can free the inode meanwhile.
 */
#include <stdlib.h>
#include <time.h>

#include "core.h"
#include "os.h"

_Static_assert(sizeof(struct sfs_inode) == 128, "an inode is one 128-byte object");

/* ---- metadata accounting ---- */

void *meta_alloc(struct sfs_fs *fs, size_t size)
{
	size_t cls = sp_small_size(size);
	if (cls == 0) {
		errno = ENOMEM;
		return NULL;
	}
	if (sp_reserve(fs->pool, cls) != 0) {
		errno = ENOSPC;
		return NULL;
	}
	void *p = sp_alloc_small(fs->pool, cls, true);
	if (!p) {
		sp_release(fs->pool, cls);
		errno = ENOMEM;
	}
	return p;
}

void meta_free(struct sfs_fs *fs, void *obj, size_t size)
{
	if (!obj)
		return;
	sp_free_small(fs->pool, obj);
	sp_release(fs->pool, sp_small_size(size));
}

/* ---- the table ---- */

static inline struct table_shard *shard_of(struct sfs_fs *fs, uint64_t ino)
{
	return &fs->shards[ino % TABLE_SHARDS];
}

static inline bool dead(struct sfs_inode *ip)
{
	return atomic_load(&ip->nlink) == 0 && atomic_load(&ip->nlookup) == 0;
}

struct sfs_inode *inode_get(struct sfs_fs *fs, sfs_ino_t ino)
{
	struct table_shard *sh = shard_of(fs, ino);
	lk_rdlock(&sh->lock);
	struct sfs_inode *ip = sm_get(&sh->map, ino / TABLE_SHARDS);
	if (ip) {
		uint32_t r = atomic_load(&ip->refs);
		do {
			if (r == 0 && dead(ip)) {
				ip = NULL; /* being freed, or about to be */
				break;
			}
		} while (!atomic_compare_exchange_weak(&ip->refs, &r, r + 1));
	}
	lk_rdunlock(&sh->lock);
	return ip;
}

void inode_hold(struct sfs_inode *ip)
{
	atomic_fetch_add(&ip->refs, 1);
}

static void inode_free(struct sfs_fs *fs, struct sfs_inode *ip)
{
	uint32_t type = ip->mode & S_IFMT;
	if (type == S_IFREG || type == S_IFLNK) {
		sv_clear(fs->pool, &ip->u.data);
	} else if (type == S_IFDIR) {
		dir_free(fs, ip);
	}
	xattr_free_all(fs, ip);
	switch (type) {
	case S_IFREG:
		atomic_fetch_sub(&fs->nfiles, 1);
		break;
	case S_IFDIR:
		atomic_fetch_sub(&fs->ndirs, 1);
		break;
	case S_IFLNK:
		atomic_fetch_sub(&fs->nsymlinks, 1);
		break;
	default:
		atomic_fetch_sub(&fs->nothers, 1);
	}
	meta_free(fs, ip, sizeof(*ip));
	atomic_fetch_sub(&fs->inodes, 1);
	atomic_fetch_sub(&fs->charged, 1);
}

/* The last reference is dropped under the shard's write lock (the kernel's
 * atomic_dec_and_lock): once the count is zero another thread may take a
 * reference through a directory entry, drop it and free the inode, so the
 * decision to free must be made where nobody else can make it. */
void inode_put(struct sfs_fs *fs, struct sfs_inode *ip)
{
	uint32_t r = atomic_load(&ip->refs);
	while (r > 1)
		if (atomic_compare_exchange_weak(&ip->refs, &r, r - 1))
			return;
	struct table_shard *sh = shard_of(fs, ip->ino);
	lk_wrlock(&sh->lock);
	bool last = atomic_fetch_sub(&ip->refs, 1) == 1;
	bool gone = last && dead(ip);
	/* Unlinked and no longer open, but still looked up (FUSE forgets
	 * later, and asynchronously): its data goes now, as tmpfs frees a
	 * file's pages at its last close.  Under a reference of our own, so
	 * nobody can free the inode meanwhile. */
	bool drop_data = last && !gone && atomic_load(&ip->nlink) == 0 && is_reg(ip) &&
	                 !(atomic_load(&ip->flags) & I_DATA_GONE);
	if (gone)
		sm_remove(fs->pool, &sh->map, ip->ino / TABLE_SHARDS);
	if (drop_data) {
		atomic_fetch_or(&ip->flags, I_DATA_GONE);
		atomic_fetch_add(&ip->refs, 1);
	}
	lk_wrunlock(&sh->lock);
	if (gone) {
		inode_free(fs, ip);
	} else if (drop_data) {
		sv_clear(fs->pool, &ip->u.data);
		inode_put(fs, ip);
	}
}

int link_charge_many(struct sfs_fs *fs, uint64_t count)
{
	uint64_t max = atomic_load(&fs->max_inodes);
	uint64_t n = atomic_load(&fs->charged);
	do {
		if (max && (n >= max || count > max - n))
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak(&fs->charged, &n, n + count));
	return 0;
}

int link_charge(struct sfs_fs *fs)
{
	return link_charge_many(fs, 1);
}

void link_refund_many(struct sfs_fs *fs, uint64_t count)
{
	atomic_fetch_sub(&fs->charged, count);
}

void link_refund(struct sfs_fs *fs)
{
	link_refund_many(fs, 1);
}

int inode_new(struct sfs_fs *fs, uint32_t mode, uint32_t uid, uint32_t gid,
              struct sfs_inode **out)
{
	int rc = link_charge(fs);
	if (rc)
		return rc;
	rc = inode_new_charged(fs, mode, uid, gid, out);
	if (rc)
		link_refund(fs);
	return rc;
}

int inode_new_charged(struct sfs_fs *fs, uint32_t mode, uint32_t uid, uint32_t gid,
                      struct sfs_inode **out)
{
	int rc;
	atomic_fetch_add(&fs->inodes, 1);
	struct sfs_inode *ip = meta_alloc(fs, sizeof(*ip));
	if (!ip) {
		rc = -errno;
		goto fail_alloc;
	}
	ip->ino = atomic_fetch_add(&fs->next_ino, 1);
	ip->mode = mode;
	ip->uid = uid;
	ip->gid = gid;
	atomic_init(&ip->refs, 1);
	struct timespec now = os_now();
	ip->btime_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	inode_set_time(&ip->atime_s, &ip->atime_ns, now);
	inode_set_time(&ip->mtime_s, &ip->mtime_ns, now);
	inode_set_time(&ip->ctime_s, &ip->ctime_ns, now);
	if ((mode & S_IFMT) == S_IFDIR) {
		rc = dir_new(fs, ip, NULL);
		if (rc)
			goto fail_dir;
	}
	struct table_shard *sh = shard_of(fs, ip->ino);
	lk_wrlock(&sh->lock);
	rc = sm_insert(fs->pool, &sh->map, ip->ino / TABLE_SHARDS, ip);
	lk_wrunlock(&sh->lock);
	if (rc)
		goto fail_table;
	switch (mode & S_IFMT) {
	case S_IFREG:
		atomic_fetch_add(&fs->nfiles, 1);
		break;
	case S_IFDIR:
		atomic_fetch_add(&fs->ndirs, 1);
		break;
	case S_IFLNK:
		atomic_fetch_add(&fs->nsymlinks, 1);
		break;
	default:
		atomic_fetch_add(&fs->nothers, 1);
	}
	*out = ip;
	return 0;

fail_table:
	if ((mode & S_IFMT) == S_IFDIR)
		dir_free(fs, ip);
fail_dir:
	meta_free(fs, ip, sizeof(*ip));
fail_alloc:
	atomic_fetch_sub(&fs->inodes, 1);
	return rc;
}

void inode_abort(struct sfs_fs *fs, struct sfs_inode *ip)
{
	/* Never linked, never looked up: the last put frees it. */
	atomic_store(&ip->nlink, 0);
	atomic_store(&ip->nlookup, 0);
	inode_put(fs, ip);
}

/* ---- the filesystem ---- */

int sfs_fs_create(const struct sfs_config *cfg, struct sfs_fs **out)
{
	struct sfs_config def = {0};
	if (!cfg)
		cfg = &def;
	if (cfg->atime > SFS_ATIME_NEVER)
		return -EINVAL;
	struct sfs_fs *fs = os_calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	struct sp_config pc = {
	        .sector_size = cfg->sector_size,
	        .limit = cfg->size_limit ? cfg->size_limit : SP_UNLIMITED,
	        .locked = cfg->noswap,
	};
	int rc = sp_create(&pc, &fs->pool);
	if (rc)
		goto fail_pool;
	atomic_init(&fs->next_ino, SFS_ROOT_INO);
	atomic_init(&fs->max_inodes, cfg->max_inodes);
	fs->atime = cfg->atime;
	fs->attrs_changed = cfg->attrs_changed;
	fs->attrs_changed_arg = cfg->attrs_changed_arg;
	uint32_t seed[5];
	if (os_random(seed, sizeof seed, true) != 0) {
		struct timespec t = os_now();
		seed[0] = (uint32_t)t.tv_nsec, seed[1] = (uint32_t)t.tv_sec;
		seed[2] = (uint32_t)(uintptr_t)fs, seed[3] = seed[0] * 2654435761u, seed[4] = 1;
	}
	fs->generation = seed[0] | 1;
	fs->sip_key[0] = (uint64_t)seed[1] << 32 | seed[2];
	fs->sip_key[1] = (uint64_t)seed[3] << 32 | seed[4];

	mode_t mode = cfg->root_mode ? (cfg->root_mode & 07777) : 01777;
	rc = inode_new(fs, S_IFDIR | mode, cfg->root_uid, cfg->root_gid, &fs->root);
	if (rc)
		goto fail_root;
	set_dir_parent(fs->root, fs->root);
	atomic_store(&fs->root->nlink, 2);
	*out = fs;
	return 0;

fail_root:
	sp_destroy(fs->pool);
fail_pool:
	os_free(fs);
	return rc;
}

/* Free every inode still in the table, whatever its counts. */
void sfs_fs_destroy(struct sfs_fs *fs)
{
	if (!fs)
		return;
	for (int s = 0; s < TABLE_SHARDS; s++) {
		struct table_shard *sh = &fs->shards[s];
		uint64_t key;
		struct sfs_inode *ip;
		while ((ip = sm_next(&sh->map, 0, &key)) != NULL) {
			sm_remove(fs->pool, &sh->map, key);
			if (is_dir(ip)) {
				/* Entries point at inodes freed on their own. */
				struct sfs_dirent *de;
				while ((de = dir_next(ip->u.dir, 0)) != NULL)
					dir_remove(fs, ip, de);
			}
			inode_free(fs, ip);
		}
	}
	sp_destroy(fs->pool);
	os_free(fs);
}

uint64_t sfs_fs_generation(const struct sfs_fs *fs)
{
	return fs->generation;
}

int sfs_fs_set_limits(struct sfs_fs *fs, uint64_t size_limit, uint64_t max_inodes)
{
	/* With no change in flight, none can have judged a create against
	 * the old inode limit and charge after this check.  (Bytes are
	 * reserved outside changes too: the pool guards its own limit.) */
	freeze_all(fs);
	int rc = 0;
	if (max_inodes && atomic_load(&fs->charged) > max_inodes)
		rc = -EBUSY;
	if (rc == 0)
		rc = sp_set_limit(fs->pool, size_limit ? size_limit : SP_UNLIMITED);
	if (rc == 0)
		atomic_store(&fs->max_inodes, max_inodes);
	thaw_all(fs);
	return rc;
}

int sfs_fs_set_prefault(struct sfs_fs *fs, bool on)
{
	return sp_set_prefault(fs->pool, on);
}

int sfs_statfs(struct sfs_fs *fs, struct statvfs *st)
{
	struct sp_stats ps;
	sp_get_stats(fs->pool, &ps);
	memset(st, 0, sizeof(*st));
	uint64_t bsize = ps.sector_size;
	st->f_bsize = bsize;
	st->f_frsize = bsize;
	if (ps.limit != SP_UNLIMITED) {
		st->f_blocks = ps.limit / bsize;
		uint64_t room = ps.limit > ps.bytes_reserved ? ps.limit - ps.bytes_reserved : 0;
		st->f_bfree = room / bsize;
		/* Available: what one new file can hold (df's word: all of it
		 * can be allocated in one file), once the tables of its sectors
		 * are paid, and its inode, its name, an open handle, a new node
		 * in the inode table and in its directory's order, and its
		 * directory's table of names growing to its largest small size
		 * (a directory of up to 256 names; a larger one's may need more). */
		uint64_t file = sp_small_size(sizeof(struct sfs_inode)) +
		                sp_small_size(sizeof(struct sfs_dirent) + SFS_NAME_MAX + 1) +
		                sp_small_size(sizeof(struct sfs_file)) + 2 * SP_NODE_SIZE +
		                SP_SMALL_MAX;
		st->f_bavail = room > file ? sv_fitting(fs->pool, room - file) / bsize : 0;
	}
	uint64_t max = atomic_load(&fs->max_inodes), n = atomic_load(&fs->charged);
	if (max) {
		st->f_files = max;
		st->f_ffree = max > n ? max - n : 0;
		st->f_favail = st->f_ffree;
	}
	st->f_namemax = SFS_NAME_MAX;
	st->f_fsid = fs->generation;
	return 0;
}

uint64_t sfs_fs_changes(struct sfs_fs *fs)
{
	return freeze_changes(fs);
}

void fs_progress(struct sfs_fs *fs, unsigned phase, uint64_t done, uint64_t total)
{
	lk_lock(&fs->progress.lock);
	fs->progress.phase = phase;
	fs->progress.done = done < total ? done : total;
	fs->progress.total = total;
	lk_unlock(&fs->progress.lock);
}

void sfs_image_progress(struct sfs_fs *fs, struct sfs_image_progress *out)
{
	lk_lock(&fs->progress.lock);
	out->phase = (enum sfs_image_phase)fs->progress.phase;
	out->done = fs->progress.done;
	out->total = fs->progress.total;
	lk_unlock(&fs->progress.lock);
}

void sfs_get_stats(struct sfs_fs *fs, struct sfs_stats *st)
{
	struct sp_stats ps;
	sp_get_stats(fs->pool, &ps);
	memset(st, 0, sizeof(*st));
	st->inodes = atomic_load(&fs->inodes);
	st->max_inodes = atomic_load(&fs->max_inodes);
	st->files = atomic_load(&fs->nfiles);
	st->dirs = atomic_load(&fs->ndirs);
	st->symlinks = atomic_load(&fs->nsymlinks);
	st->others = atomic_load(&fs->nothers);
	st->sector_size = ps.sector_size;
	st->sectors = ps.sectors_in_use;
	st->saved_sectors = ps.sectors_saved;
	st->small_bytes = ps.small_bytes;
	st->reserved = ps.bytes_reserved;
	st->limit = ps.limit == SP_UNLIMITED ? 0 : ps.limit;
	st->mapped = ps.bytes_mapped;
	st->overhead = ps.overhead;
	for (int s = 0; s < TABLE_SHARDS; s++) {
		struct table_shard *sh = &fs->shards[s];
		lk_rdlock(&sh->lock);
		uint64_t key = 0;
		struct sfs_inode *ip;
		while ((ip = sm_next(&sh->map, key, &key)) != NULL) {
			if (is_reg(ip))
				st->data_bytes += sv_size(&ip->u.data);
			key++;
		}
		lk_rdunlock(&sh->lock);
	}
}
