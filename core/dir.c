/* SPDX-License-Identifier: MIT */
/* dir.c - a directory: names to entries, and entries in a stable order.
 *
 * Two structures share the entries:
 *
 * - A chained hash table for lookup by name, keyed with SipHash-1-3 under a
 *   per-filesystem random key (so that nobody can choose names that all
 *   collide).  It doubles when it holds as many entries as buckets and
 *   shrinks when it is under 1/8 full, incrementally as in Redis's dict.c:
 *   while a resize is in progress both tables are live, and every insert or
 *   remove moves a few buckets, so that no single call pays for a table of
 *   millions.
 *
 * - A sparse map from cookie to entry for readdir.  Each entry gets a
 *   cookie, from a counter that only grows, when it is added; readdir
 *   resumes "at the first cookie >= offset" and stops at the counter's
 *   value when the listing started (see struct sfs_file).  So an entry
 *   that exists for a whole listing is returned exactly once however the
 *   directory changes meanwhile (new entries come after the end, removed
 *   ones are simply gone, a renamed one is a new entry), and a listing
 *   ends, as tmpfs's do since Linux 6.13.  Cookies 0-2 are ".", ".." and
 *   the start.
 *
 * All functions are called with the directory inode's lock held (read for
 * dir_find/dir_next, write for the rest).  Entries and directories are small
 * objects charged to the pool; bucket arrays too, or, past 2 KiB, malloc'd
 * memory charged to the pool's limit by hand.
 */
#include "core.h"
#include "os.h"

#define FIRST_COOKIE 3
#define MIN_BUCKETS 8
#define REHASH_STEPS 16

/* ---- SipHash-1-3 (Aumasson and Bernstein), for names ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                   \
	do {                                                                       \
		v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);          \
		v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                             \
		v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                             \
		v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);          \
	} while (0)

static uint64_t siphash13(const uint64_t key[2], const unsigned char *p, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ull ^ key[0], v1 = 0x646f72616e646f6dull ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ull ^ key[0], v3 = 0x7465646279746573ull ^ key[1];
	uint64_t b = (uint64_t)len << 56;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t m;
		memcpy(&m, p + i, 8);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static uint32_t name_hash(struct sfs_fs *fs, const char *name, size_t len)
{
	return (uint32_t)siphash13(fs->sip_key, (const unsigned char *)name, len);
}

/* ---- bucket arrays ---- */

static uint64_t table_bytes(uint64_t size)
{
	uint64_t b = size * sizeof(struct sfs_dirent *);
	return b <= SP_SMALL_MAX ? sp_small_size(b) : b;
}

static struct sfs_dirent **buckets_alloc(struct sfs_fs *fs, uint64_t size)
{
	uint64_t b = size * sizeof(struct sfs_dirent *);
	if (b <= SP_SMALL_MAX)
		return meta_alloc(fs, b);
	if (sp_reserve(fs->pool, b) != 0)
		return NULL;
	struct sfs_dirent **t = os_calloc(size, sizeof(*t));
	if (!t)
		sp_release(fs->pool, b);
	return t;
}

static void buckets_free(struct sfs_fs *fs, struct dir_table *t)
{
	if (!t->b)
		return;
	uint64_t b = t->size * sizeof(struct sfs_dirent *);
	if (b <= SP_SMALL_MAX) {
		meta_free(fs, t->b, b);
	} else {
		os_free(t->b);
		sp_release(fs->pool, b);
	}
	memset(t, 0, sizeof(*t));
}

static inline bool rehashing(const struct sfs_dir *d)
{
	return d->t[1].b != NULL;
}

/* Move up to n buckets from the old table to the new one. */
static void rehash_step(struct sfs_fs *fs, struct sfs_dir *d, int n)
{
	if (!rehashing(d))
		return;
	struct dir_table *from = &d->t[0], *to = &d->t[1];
	int empty_visits = n * 10;
	while (n > 0 && d->rehash < from->size) {
		struct sfs_dirent *e = from->b[d->rehash];
		if (!e) {
			d->rehash++;
			if (--empty_visits == 0)
				return;
			continue;
		}
		while (e) {
			struct sfs_dirent *next = e->next;
			uint64_t i = e->hash & (to->size - 1);
			e->next = to->b[i];
			to->b[i] = e;
			from->used--;
			to->used++;
			e = next;
		}
		from->b[d->rehash++] = NULL;
		n--;
	}
	if (d->rehash == from->size) {
		buckets_free(fs, from);
		*from = *to;
		memset(to, 0, sizeof(*to));
		d->rehash = 0;
	}
}

/* Start a resize to `size` buckets if none is running.  A failure to get
 * the new table is not an error: the old one keeps working. */
static void resize(struct sfs_fs *fs, struct sfs_dir *d, uint64_t size)
{
	if (rehashing(d) || size == d->t[0].size)
		return;
	struct sfs_dirent **b = buckets_alloc(fs, size);
	if (!b)
		return;
	d->t[1].b = b;
	d->t[1].size = size;
	d->t[1].used = 0;
	d->rehash = 0;
}

/* ---- directories ---- */

int dir_new(struct sfs_fs *fs, struct sfs_inode *ip, struct sfs_inode *parent)
{
	struct sfs_dir *d = meta_alloc(fs, sizeof(*d));
	if (!d)
		return -errno;
	d->parent = parent;
	d->next_cookie = FIRST_COOKIE;
	ip->u.dir = d;
	return 0;
}

void dir_free(struct sfs_fs *fs, struct sfs_inode *ip)
{
	struct sfs_dir *d = ip->u.dir;
	if (!d)
		return;
	buckets_free(fs, &d->t[0]);
	buckets_free(fs, &d->t[1]);
	sm_clear(fs->pool, &d->order);
	meta_free(fs, d, sizeof(*d));
	ip->u.dir = NULL;
}

static size_t dirent_size(size_t len)
{
	return sizeof(struct sfs_dirent) + len + 1;
}

struct sfs_dirent *dir_find(struct sfs_fs *fs, struct sfs_dir *d, const char *name, size_t len)
{
	if (d->count == 0)
		return NULL;
	uint32_t h = name_hash(fs, name, len);
	for (int t = 0; t < 2; t++) {
		const struct dir_table *tab = &d->t[t];
		if (!tab->b)
			continue;
		for (struct sfs_dirent *e = tab->b[h & (tab->size - 1)]; e; e = e->next)
			if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
				return e;
	}
	return NULL;
}

int dir_add(struct sfs_fs *fs, struct sfs_inode *dir, const char *name, size_t len,
            struct sfs_inode *ip)
{
	struct sfs_dir *d = dir->u.dir;
	bool made_table = false;
	int rc;
	if (!d->t[0].b) {
		d->t[0].b = buckets_alloc(fs, MIN_BUCKETS);
		if (!d->t[0].b)
			return -errno;
		d->t[0].size = MIN_BUCKETS;
		made_table = true;
	}
	struct sfs_dirent *e = meta_alloc(fs, dirent_size(len));
	if (!e) {
		rc = -errno;
		goto fail_entry;
	}
	e->inode = ip;
	e->cookie = d->next_cookie;
	e->hash = name_hash(fs, name, len);
	e->len = (uint8_t)len;
	e->type = dt_of(ip->mode);
	memcpy(e->name, name, len);
	e->name[len] = '\0';
	rc = sm_insert(fs->pool, &d->order, e->cookie, e);
	if (rc)
		goto fail_order;
	d->next_cookie++;
	struct dir_table *tab = rehashing(d) ? &d->t[1] : &d->t[0];
	uint64_t i = e->hash & (tab->size - 1);
	e->next = tab->b[i];
	tab->b[i] = e;
	tab->used++;
	d->count++;
	if (e->type == DT_DIR)
		d->subdirs++;
	if (!rehashing(d) && d->t[0].used >= d->t[0].size)
		resize(fs, d, d->t[0].size * 2);
	rehash_step(fs, d, REHASH_STEPS);
	return 0;

fail_order:
	meta_free(fs, e, dirent_size(len));
fail_entry:
	if (made_table)
		buckets_free(fs, &d->t[0]);
	return rc;
}

void dir_remove(struct sfs_fs *fs, struct sfs_inode *dir, struct sfs_dirent *de)
{
	struct sfs_dir *d = dir->u.dir;
	for (int t = 0; t < 2; t++) {
		struct dir_table *tab = &d->t[t];
		if (!tab->b)
			continue;
		struct sfs_dirent **pp = &tab->b[de->hash & (tab->size - 1)];
		while (*pp && *pp != de)
			pp = &(*pp)->next;
		if (*pp) {
			*pp = de->next;
			tab->used--;
			break;
		}
	}
	sm_remove(fs->pool, &d->order, de->cookie);
	d->count--;
	if (de->type == DT_DIR)
		d->subdirs--;
	meta_free(fs, de, dirent_size(de->len));
	if (!rehashing(d) && d->t[0].size > MIN_BUCKETS && d->t[0].used < d->t[0].size / 8) {
		uint64_t size = MIN_BUCKETS;
		while (size < d->t[0].used * 2)
			size *= 2;
		resize(fs, d, size);
	}
	rehash_step(fs, d, REHASH_STEPS);
}

struct sfs_dirent *dir_next(struct sfs_dir *d, uint64_t from)
{
	uint64_t found;
	return sm_next(&d->order, from < FIRST_COOKIE ? FIRST_COOKIE : from, &found);
}

uint64_t dir_bytes(const struct sfs_dir *d)
{
	uint64_t n = sp_small_size(sizeof(*d)) + sm_nodes(&d->order) * SP_NODE_SIZE;
	for (int t = 0; t < 2; t++)
		if (d->t[t].b)
			n += table_bytes(d->t[t].size);
	uint64_t key = 0;
	struct sfs_dirent *e;
	while ((e = sm_next(&d->order, key, &key)) != NULL) {
		n += sp_small_size(dirent_size(e->len));
		key++;
	}
	return n;
}
