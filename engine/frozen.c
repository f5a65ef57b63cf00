/* SPDX-License-Identifier: MIT */
/* frozen.c - a vector's bytes as they were at one moment, while writers go
 * on (copy-on-write, for saving a filesystem without stopping it).
 *
 * sv_freeze() notes the size and the runs of data, and flags the vector.
 * From then on, a writer about to change a sector, fill a hole or free a
 * sector first calls frozen_keep(): the view keeps the old contents (a copy
 * of a sector about to be overwritten, the sector itself when it is being
 * freed, a mark when a hole is being filled).  The reader (the saver)
 * reads in increasing order through sv_frozen_read(): a kept sector if
 * there is one, else the live one.  Sectors below the reader's cursor are
 * never read again, so writers stop keeping them: a save costs writers at
 * most one sector copy per sector they change ahead of the reader.
 *
 * The view also notes, at the freeze, which of its data sectors are shared
 * with other vectors (their address is their identity), so that a saver
 * can store shared data once.
 *
 * Trade-offs: kept sectors are not counted against the filesystem's limit
 * (they live only for the length of a save); if memory for one cannot be
 * had, the view is marked broken and the save fails, rather than the write.
 * Inline vectors are small: their bytes are simply copied at the freeze.
 *
 * The registry maps a vector to its view; writers look there only when the
 * vector's SV_FROZEN flag is set, so a vector not being saved pays nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "vector_internal.h"

#define HOLE ((void *)(uintptr_t)2) /* kept: "this sector was a hole" */
#define REG_BUCKETS 256

struct kept { /* an open-addressing map: sector index -> kept sector */
	uint64_t *keys;
	void **vals;
	size_t cap, n;
};

struct sv_frozen {
	struct sv_vector *v;
	struct sv_frozen *next;   /* registry chain */
	uint64_t size;            /* bytes at the freeze */
	uint64_t nsec;            /* sectors at the freeze */
	_Atomic uint64_t cursor;  /* the reader is done below this sector */
	_Atomic bool broken;      /* a sector could not be kept */
	struct kept kept;         /* [vector write lock] */
	uint64_t *runs;           /* data runs [start, end) at the freeze */
	size_t nruns;
	struct sv_frozen_share *shares; /* shared data sectors at the freeze */
	size_t nshares;
	uint64_t whole[2];        /* the one run of an inline vector */
	char *inline_bytes;       /* the bytes of an inline vector */
};

static struct {
	struct lk_mutex lock;
	struct sv_frozen *b[REG_BUCKETS];
} reg;

static size_t bucket(const struct sv_vector *v)
{
	return ((uintptr_t)v >> 5) % REG_BUCKETS;
}

struct sv_frozen *frozen_find(const struct sv_vector *v)
{
	if (!(v->flags & SV_FROZEN))
		return NULL;
	lk_lock(&reg.lock);
	struct sv_frozen *f = reg.b[bucket(v)];
	while (f && f->v != v)
		f = f->next;
	lk_unlock(&reg.lock);
	return f;
}

/* ---- the map of kept sectors ---- */

static void **kept_slot(struct kept *k, uint64_t i)
{
	size_t h = (size_t)(i * 0x9e3779b97f4a7c15ull) & (k->cap - 1);
	while (k->vals[h] && k->keys[h] != i)
		h = (h + 1) & (k->cap - 1);
	k->keys[h] = i;
	return &k->vals[h];
}

static void *kept_get(const struct kept *k, uint64_t i)
{
	if (!k->cap)
		return NULL;
	size_t h = (size_t)(i * 0x9e3779b97f4a7c15ull) & (k->cap - 1);
	while (k->vals[h]) {
		if (k->keys[h] == i)
			return k->vals[h];
		h = (h + 1) & (k->cap - 1);
	}
	return NULL;
}

static int kept_put(struct kept *k, uint64_t i, void *val)
{
	if (2 * (k->n + 1) > k->cap) {
		struct kept bigger = {.cap = k->cap ? k->cap * 2 : 64};
		bigger.keys = os_malloc(bigger.cap * sizeof(uint64_t));
		bigger.vals = os_calloc(bigger.cap, sizeof(void *));
		if (!bigger.keys || !bigger.vals) {
			os_free(bigger.keys), os_free(bigger.vals);
			return -ENOMEM;
		}
		for (size_t j = 0; j < k->cap; j++)
			if (k->vals[j])
				*kept_slot(&bigger, k->keys[j]) = k->vals[j];
		bigger.n = k->n;
		os_free(k->keys), os_free(k->vals);
		*k = bigger;
	}
	*kept_slot(k, i) = val;
	k->n++;
	return 0;
}

bool frozen_keep(struct sp_pool *pool, struct sv_frozen *f, uint64_t i, void *slot, bool give)
{
	if (i >= f->nsec || i < atomic_load(&f->cursor) || kept_get(&f->kept, i) ||
	    atomic_load(&f->broken))
		return false;
	void *val;
	bool took = false;
	if (!slot || unwritten(slot)) {
		val = HOLE;
	} else if (give) {
		val = sec_of(slot);
		took = true;
	} else if (sp_alloc_sectors(pool, 1, &val, false) == 0) {
		memcpy(val, sec_of(slot), sp_sector_size(pool));
	} else {
		atomic_store(&f->broken, true);
		return false;
	}
	if (kept_put(&f->kept, i, val) != 0) {
		if (val != HOLE && !took)
			sp_free_sectors(pool, 1, &val);
		atomic_store(&f->broken, true);
		return false;
	}
	return took;
}

/* ---- the view ---- */

/* The shared sectors of the runs (lock held): 0 or -ENOMEM. */
static int note_shares(struct sp_pool *pool, struct sv_vector *v, struct sv_frozen *f)
{
	const unsigned sh = sshift(pool);
	size_t room = 0;
	for (size_t r = 0; r < f->nruns; r++) {
		for (uint64_t i = f->runs[2 * r] >> sh; i << sh < f->runs[2 * r + 1]; i++) {
			bool shared;
			void **ref = vec_slot_path(pool, v, i, &shared);
			if (!ref || !*ref || unwritten(*ref) || !(shared || sp_shared(pool, sec_of(*ref))))
				continue;
			if (f->nshares == room) {
				room = room ? 2 * room : 16;
				void *more = os_realloc(f->shares, room * sizeof *f->shares);
				if (!more) {
					os_free(f->shares);
					return -ENOMEM;
				}
				f->shares = more;
			}
			f->shares[f->nshares++] = (struct sv_frozen_share){i, (uintptr_t)sec_of(*ref)};
		}
	}
	return 0;
}

int sv_freeze(struct sp_pool *pool, struct sv_vector *v, struct sv_frozen **out)
{
	lk_wrlock(&v->lock);
	uint64_t size = sv_size(v);
	size_t inl = is_inline(v) ? size : 0;
	struct sv_frozen *f = os_calloc(1, sizeof(*f) + inl);
	int rc = -ENOMEM;
	if (!f)
		goto out;
	f->v = v;
	f->size = size;
	f->nsec = (size + sp_sector_size(pool) - 1) >> sshift(pool);
	if (is_inline(v)) {
		f->inline_bytes = (char *)(f + 1);
		memcpy(f->inline_bytes, v->root, inl);
		f->whole[1] = size;
		f->runs = f->whole;
		f->nruns = size ? 1 : 0;
	} else {
		/* The runs of data, found once: the reader skips the holes. */
		size_t room = 0;
		for (int64_t off = 0; (uint64_t)off < size;) {
			int64_t data = vec_seek_locked(pool, v, off, true);
			if (data < 0)
				break;
			int64_t hole = vec_seek_locked(pool, v, data, false);
			if (f->nruns == room) {
				room = room ? room * 2 : 4;
				uint64_t *r = os_realloc(f->runs, room * 2 * sizeof(uint64_t));
				if (!r) {
					os_free(f->runs);
					os_free(f);
					goto out;
				}
				f->runs = r;
			}
			f->runs[2 * f->nruns] = (uint64_t)data;
			f->runs[2 * f->nruns + 1] = (uint64_t)hole;
			f->nruns++;
			off = hole;
		}
		if (note_shares(pool, v, f) != 0) {
			os_free(f->runs);
			os_free(f);
			goto out;
		}
		lk_lock(&reg.lock);
		f->next = reg.b[bucket(v)];
		reg.b[bucket(v)] = f;
		lk_unlock(&reg.lock);
		v->flags |= SV_FROZEN;
	}
	*out = f;
	rc = 0;
out:
	lk_wrunlock(&v->lock);
	return rc;
}

size_t sv_frozen_shares(const struct sv_frozen *f, const struct sv_frozen_share **list)
{
	*list = f->shares;
	return f->nshares;
}

uint64_t sv_frozen_size(const struct sv_frozen *f)
{
	return f->size;
}

size_t sv_frozen_runs(const struct sv_frozen *f, const uint64_t **runs)
{
	*runs = f->runs;
	return f->nruns;
}

bool sv_frozen_broken(const struct sv_frozen *f)
{
	return atomic_load(&f->broken);
}

ssize_t sv_frozen_read(struct sp_pool *pool, struct sv_vector *v, struct sv_frozen *f, void *buf,
                       size_t len, int64_t off)
{
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= f->size)
		return 0;
	if (len > f->size - (uint64_t)off)
		len = (size_t)(f->size - (uint64_t)off);
	if (f->inline_bytes) {
		memcpy(buf, f->inline_bytes + off, len);
		return (ssize_t)len;
	}
	const unsigned sh = sshift(pool);
	const size_t S = (size_t)1 << sh;
	char *out = buf;
	uint64_t pos = (uint64_t)off, end = pos + len;
	lk_rdlock(&v->lock);
	while (pos < end) {
		uint64_t i = pos >> sh, span;
		size_t in = (size_t)(pos & (S - 1));
		size_t n = S - in < end - pos ? S - in : (size_t)(end - pos);
		void *k = kept_get(&f->kept, i);
		const char *src = NULL;
		if (k) {
			src = k == HOLE ? NULL : k;
		} else {
			void **ref = vec_slot(v, i, &span);
			src = ref && *ref && !unwritten(*ref) ? sec_of(*ref) : NULL;
		}
		if (src)
			memcpy(out, src + in, n);
		else
			memset(out, 0, n);
		out += n, pos += n;
	}
	/* Everything before this sector is read: writers may stop keeping. */
	uint64_t done = end >> sh;
	if (done > atomic_load(&f->cursor))
		atomic_store(&f->cursor, done);
	lk_rdunlock(&v->lock);
	return (ssize_t)len;
}

void sv_unfreeze(struct sp_pool *pool, struct sv_vector *v, struct sv_frozen *f)
{
	if (!f)
		return;
	if (!f->inline_bytes) {
		lk_wrlock(&v->lock);
		v->flags &= (uint8_t)~SV_FROZEN;
		lk_lock(&reg.lock);
		struct sv_frozen **pp = &reg.b[bucket(v)];
		while (*pp && *pp != f)
			pp = &(*pp)->next;
		if (*pp)
			*pp = f->next;
		lk_unlock(&reg.lock);
		lk_wrunlock(&v->lock);
		for (size_t j = 0; j < f->kept.cap; j++)
			if (f->kept.vals[j] && f->kept.vals[j] != HOLE)
				sp_free_sectors(pool, 1, &f->kept.vals[j]);
		os_free(f->kept.keys);
		os_free(f->kept.vals);
		os_free(f->runs);
		os_free(f->shares);
	}
	os_free(f);
}
