/* SPDX-License-Identifier: MIT */
/* vector.c - a byte array stored in sectors (the seed's SectorNode).
 *
 * Layout: a radix tree of 64-way nodes over sector indices (see
 * sectorfs/engine.h).  A node at level k covers 64^k sectors; level-1 nodes
 * ("leaves") point at sectors; a height-0 tree's root is sector 0 itself.
 *
 * Every change that needs memory runs in four steps:
 *   1. plan:    walk the range, count the holes to fill and the nodes to add
 *               (exactly, including new levels on top of the tree);
 *   2. reserve: holes * S + nodes * 512 bytes against the pool's limit;
 *   3. take:    allocate all sectors and nodes into a stash;
 *   4. apply:   grow the tree and insert from the stash, which cannot fail.
 * A failure in 2 or 3 gives back what 3 took and what 2 reserved, before
 * the tree is touched: nothing to roll back, nothing visible.  Operations
 * that only free memory (shrink, punch, clear) cannot fail at all.
 *
 * Small data lives inline: while a vector's bytes fit in half a sector (at
 * most 2 KiB), they sit in one small object from the pool, sized to a power
 * of two, instead of a whole sector.  The first write past that limit moves
 * them into sector 0 of a tree; the move is part of the same all-or-nothing
 * step as the write.  Inline bytes are data: space allocated to an empty
 * vector takes an unwritten sector instead, and punching sector 0 whole
 * frees the inline object, so that SEEK_HOLE finds what tmpfs would.
 *
 * One routine, vec_copy, moves bytes in both directions, as in the seed.
 * The trade-off of the tree against a flat array: a read walks `height`
 * pointers per 64 sectors instead of one, in exchange for sparse files that
 * cost only what they hold and no reallocation of a huge array on growth.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "os.h"
#include "sectorfs/engine.h"
#include "vector_internal.h"

#define FAN_SHIFT 6u
#define FAN 64u
#define MAX_HEIGHT 10u

struct node {
	void *slot[FAN];
};
_Static_assert(sizeof(struct node) == SP_NODE_SIZE, "a node fills a node slot");

/* Sectors covered by a subtree of height h (h <= 10, so no overflow). */
static inline uint64_t cap(unsigned h)
{
	return UINT64_C(1) << (FAN_SHIFT * h);
}

/* Smallest height whose tree covers sector index i. */
static unsigned height_for(uint64_t i)
{
	unsigned h = 0;
	while (i >= cap(h))
		h++;
	return h;
}

/* Child index, inside a node of level k, of the subtree holding sector i. */
static inline unsigned child(uint64_t i, unsigned k)
{
	return (unsigned)(i >> (FAN_SHIFT * (k - 1))) & (FAN - 1);
}

/* Make root an inline buffer of cap bytes (0: not inline any more). */
static inline void set_inline(struct sv_vector *v, void *root, size_t cap)
{
	v->root = root;
	atomic_store_explicit(&v->inl_cap, (uint16_t)cap, memory_order_relaxed);
}

void sv_init(struct sv_vector *v)
{
	memset(v, 0, sizeof(*v));
}

/* Argument checks shared by every operation on a byte range.  A length that
 * would carry the range past SV_MAX_SIZE is EFBIG; negative numbers are
 * EINVAL. */
static int check_range(int64_t off, uint64_t len)
{
	if (off < 0 || len > (uint64_t)SV_MAX_SIZE)
		return -EINVAL;
	if (len > (uint64_t)(SV_MAX_SIZE - off))
		return -EFBIG;
	return 0;
}

/* ---- lookup ---- */

/* The slot of sector i, or NULL if no leaf holds it.  *span is the number of
 * sector indices from i on that share this leaf (or this missing subtree), so
 * callers can step over large holes at once. */
static void **slot_ref(struct sv_vector *v, uint64_t i, uint64_t *span)
{
	unsigned h = v->height;
	if (i >= cap(h)) {
		*span = UINT64_MAX - i;
		return NULL;
	}
	if (h == 0) {
		*span = 1;
		return &v->root;
	}
	void **ref = &v->root;
	for (unsigned k = h; k >= 1; k--) {
		struct node *n = *ref;
		if (!n) {
			*span = cap(k) - (i & (cap(k) - 1));
			return NULL;
		}
		ref = &n->slot[child(i, k)];
	}
	*span = FAN - (i & (FAN - 1));
	return ref;
}

void **vec_slot(struct sv_vector *v, uint64_t i, uint64_t *span)
{
	return slot_ref(v, i, span);
}

/* ---- the one copy routine ---- */

/* Move len bytes between buf and the vector at off: into the vector when
 * `to_vector`, else out of it.  Holes read as zero; when writing, every
 * sector of the range exists (vec_fill made them). */
static void vec_copy(struct sp_pool *pool, struct sv_vector *v, char *buf, size_t len, uint64_t off,
                     bool to_vector)
{
	const unsigned sh = sshift(pool);
	const size_t S = (size_t)1 << sh;
	if (is_inline(v)) {
		if (to_vector)
			memcpy((char *)v->root + off, buf, len);
		else
			memcpy(buf, (char *)v->root + off, len);
		return;
	}
	struct sv_frozen *frozen = to_vector ? frozen_find(v) : NULL;
	while (len) {
		uint64_t i = off >> sh;
		size_t in = (size_t)(off & (S - 1));
		uint64_t span;
		void **ref = slot_ref(v, i, &span);
		if (!ref) {
			/* A missing subtree: span sectors of zeros. */
			uint64_t hole = span > (len >> sh) + 1 ? len : span * S - in;
			size_t n = hole < len ? (size_t)hole : len;
			memset(buf, 0, n);
			buf += n, len -= n, off += n;
			continue;
		}
		for (uint64_t j = 0; j < span && len; j++) {
			char *sec = sec_of(ref[j]);
			size_t n = S - in < len ? S - in : len;
			if (to_vector) {
				if (frozen)
					frozen_keep(pool, frozen, i + j, ref[j], false);
				memcpy(sec + in, buf, n);
				ref[j] = sec; /* written now */
			} else if (sec && !unwritten(ref[j])) {
				memcpy(buf, sec + in, n);
			} else {
				memset(buf, 0, n);
			}
			buf += n, len -= n, off += n;
			in = 0;
		}
	}
}

/* ---- planning ---- */

struct plan {
	uint64_t holes;  /* sectors to allocate */
	uint64_t nodes;  /* nodes to allocate */
	unsigned height; /* height after the change */
};

/* Count what filling sectors [first, last] needs.  Two parts: sectors under
 * the current root are looked up; sectors past it (after the tree grows) are
 * all holes, under nodes that are all new except the "chain" of index-0
 * nodes that growth adds above the old root. */
static void vec_plan(struct sv_vector *v, uint64_t first, uint64_t last, struct plan *pl)
{
	const unsigned h = v->height;
	const bool empty = v->root == NULL;
	unsigned nh = height_for(last);
	if (nh < h)
		nh = h;
	pl->height = nh;
	pl->holes = 0;
	pl->nodes = (!empty && nh > h) ? nh - h : 0; /* the chain */

	uint64_t a2 = first;
	if (h >= 1) {
		uint64_t end1 = last < cap(h) - 1 ? last : cap(h) - 1;
		uint64_t seen[MAX_HEIGHT + 1];
		for (unsigned j = 0; j <= MAX_HEIGHT; j++)
			seen[j] = UINT64_MAX;
		for (uint64_t leaf = first >> FAN_SHIFT; first <= end1 && leaf <= end1 >> FAN_SHIFT; leaf++) {
			uint64_t i = leaf << FAN_SHIFT;
			uint64_t lo = i > first ? i : first;
			uint64_t hi = i + FAN - 1 < end1 ? i + FAN - 1 : end1;
			/* Walk down to the leaf; m = highest missing level. */
			struct node *n = v->root;
			unsigned m = 0;
			for (unsigned k = h; k >= 2; k--) {
				struct node *c = n->slot[child(i, k)];
				if (!c) {
					m = k - 1;
					break;
				}
				n = c;
			}
			if (m == 0) {
				for (uint64_t s = lo; s <= hi; s++)
					pl->holes += n->slot[s & (FAN - 1)] == NULL;
				continue;
			}
			pl->holes += hi - lo + 1;
			for (unsigned j = 1; j <= m; j++) {
				uint64_t idx = i >> (FAN_SHIFT * j);
				if (seen[j] != idx) {
					seen[j] = idx;
					pl->nodes++;
				}
			}
		}
		a2 = first > cap(h) - 1 ? first : cap(h);
	}
	if (a2 > last)
		return;
	pl->holes += last - a2 + 1;
	if (h == 0 && !empty && a2 == 0)
		pl->holes--; /* sector 0 is the old root */
	for (unsigned j = 1; j <= nh; j++) {
		uint64_t cnt = (last >> (FAN_SHIFT * j)) - (a2 >> (FAN_SHIFT * j)) + 1;
		if (!empty && j > h && (a2 >> (FAN_SHIFT * j)) == 0)
			cnt--; /* a chain node */
		pl->nodes += cnt;
	}
}

/* Bytes of the pool's limit that sectors [0, n) of a new vector take: the
 * sectors and the nodes above them. */
static uint64_t new_vector_cost(const struct sp_pool *pool, uint64_t n)
{
	if (n == 0)
		return 0;
	struct sv_vector empty;
	sv_init(&empty);
	struct plan pl;
	vec_plan(&empty, 0, n - 1, &pl);
	return pl.holes * sp_sector_size(pool) + pl.nodes * SP_NODE_SIZE;
}

uint64_t sv_fitting(const struct sp_pool *pool, uint64_t room)
{
	uint64_t lo = 0, hi = room / sp_sector_size(pool); /* lo fits, hi + 1 does not */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;
		if (new_vector_cost(pool, mid) <= room)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo * sp_sector_size(pool);
}

/* ---- taking memory ---- */

struct stash {
	void **sectors;
	uint64_t nsectors, used_sectors;
	void **node_list;
	uint64_t nnodes, used_nodes;
	void *heap;           /* os_malloc'd arrays, if `small` does not fit */
	void *small[2 * FAN]; /* last: not cleared by stash_take */
};

static void stash_give_back(struct sp_pool *pool, struct stash *st)
{
	sp_free_sectors(pool, st->nsectors - st->used_sectors, st->sectors + st->used_sectors);
	for (uint64_t i = st->used_nodes; i < st->nnodes; i++)
		sp_free_small(pool, st->node_list[i]);
	os_free(st->heap);
}

/* A write or allocation of this many new sectors or more faults them in
 * first (one call per run instead of a fault per page, huge pages where a
 * run covers them) and wakes the pool's faulting-in thread, if any, for
 * the writes that may follow.  An allocation (fallocate) so holds its
 * memory at once, as tmpfs's does, and later writes into it fault no more. */
#define POPULATE_MIN 16

/* Reserve and allocate what the plan needs.  0, -ENOSPC or -ENOMEM; on
 * failure nothing is held. */
static int stash_take(struct sp_pool *pool, const struct plan *pl, bool zeroed, struct stash *st)
{
	const uint64_t S = sp_sector_size(pool);
	memset(st, 0, offsetof(struct stash, small));
	if (pl->holes > (SIZE_MAX / sizeof(void *)) - pl->nodes ||
	    pl->holes > UINT64_MAX / S - pl->nodes)
		return -ENOSPC;
	const uint64_t bytes = pl->holes * S + pl->nodes * SP_NODE_SIZE;
	int rc = sp_reserve(pool, bytes);
	if (rc != 0)
		return rc;
	/* More than the machine has can never be allocated; say so before
	 * asking malloc for a stash to match. */
	rc = -ENOMEM;
	if (os_physical_memory() && bytes > os_physical_memory())
		goto fail_stash;
	uint64_t total = pl->holes + pl->nodes;
	if (total <= 2 * FAN) {
		st->sectors = st->small;
	} else {
		st->heap = os_malloc((size_t)total * sizeof(void *));
		if (!st->heap)
			goto fail_stash;
		st->sectors = st->heap;
	}
	st->node_list = st->sectors + pl->holes;
	rc = sp_alloc_sectors(pool, (size_t)pl->holes, st->sectors, zeroed);
	if (rc != 0)
		goto fail_sectors;
	st->nsectors = pl->holes;
	if (pl->holes >= POPULATE_MIN) {
		sp_populate(pool, st->sectors, (size_t)pl->holes);
		sp_warm(pool);
	}
	for (; st->nnodes < pl->nodes; st->nnodes++) {
		st->node_list[st->nnodes] = sp_alloc_small(pool, SP_NODE_SIZE, true);
		if (!st->node_list[st->nnodes]) {
			rc = -ENOMEM;
			goto fail_nodes;
		}
	}
	return 0;

fail_nodes:
	for (uint64_t i = 0; i < st->nnodes; i++)
		sp_free_small(pool, st->node_list[i]);
	sp_free_sectors(pool, (size_t)st->nsectors, st->sectors);
fail_sectors:
	os_free(st->heap);
fail_stash:
	sp_release(pool, bytes);
	return rc;
}

static inline void *stash_node(struct stash *st)
{
	return st->node_list[st->used_nodes++];
}

/* ---- applying ---- */

/* The slot array of the leaf holding sector i, creating missing nodes from
 * the stash.  At height 0 it is the root itself (one slot). */
static void **leaf_make(struct sv_vector *v, uint64_t i, struct stash *st)
{
	if (v->height == 0)
		return &v->root;
	void **ref = &v->root;
	for (unsigned k = v->height; k >= 1; k--) {
		if (!*ref)
			*ref = stash_node(st);
		ref = &((struct node *)*ref)->slot[child(i, k)];
	}
	return ref - (i & (FAN - 1));
}

/* Give sectors [off, end) backing (byte range; partial sectors included).
 * New sectors read as zero outside [zero_from, zero_to) -- the bytes the
 * caller is about to write; pass an empty range to zero them entirely.
 * Locked exclusively by the caller.  All or nothing. */
static int vec_fill(struct sp_pool *pool, struct sv_vector *v, uint64_t off, uint64_t end,
                    uint64_t keep_from, uint64_t keep_to)
{
	const unsigned sh = sshift(pool);
	const size_t S = (size_t)1 << sh;
	if (end <= off)
		return 0;
	uint64_t first = off >> sh, last = (end - 1) >> sh;
	struct plan pl;
	vec_plan(v, first, last, &pl);
	const bool allocating = keep_from >= keep_to;
	if (pl.holes == 0 && pl.nodes == 0 && !allocating)
		return 0;
	/* For a write, only the uncovered parts of new sectors are zeroed,
	 * below; otherwise the pool zeroes them, free of charge when their
	 * memory is clean. */
	struct stash st;
	int rc = stash_take(pool, &pl, allocating, &st);
	if (rc != 0)
		return rc;

	if (pl.height > v->height) {
		if (v->root) {
			for (unsigned k = v->height + 1; k <= pl.height; k++) {
				struct node *n = stash_node(&st);
				n->slot[0] = v->root;
				v->root = n;
			}
		}
		v->height = (uint8_t)pl.height;
	}
	struct sv_frozen *frozen = frozen_find(v);
	for (uint64_t i = first; i <= last;) {
		void **leaf = leaf_make(v, i, &st);
		uint64_t stop = v->height == 0 ? i : (i | (FAN - 1));
		if (stop > last)
			stop = last;
		for (; i <= stop; i++) {
			void **ref = v->height == 0 ? leaf : &leaf[i & (FAN - 1)];
			if (*ref) {
				/* Allocating again over unwritten space makes it
				 * data (zeros), as tmpfs initializes a folio it
				 * preallocated before. */
				if (allocating)
					*ref = sec_of(*ref);
				continue;
			}
			if (frozen)
				frozen_keep(pool, frozen, i, NULL, false); /* it was a hole */
			char *sec = st.sectors[st.used_sectors++];
			if (keep_from < keep_to) {
				/* Zero what the caller's write will not cover. */
				uint64_t s0 = i << sh, s1 = s0 + S;
				uint64_t k0 = keep_from > s0 ? keep_from : s0;
				uint64_t k1 = keep_to < s1 ? keep_to : s1;
				if (k0 > s0)
					memset(sec, 0, (size_t)(k0 - s0));
				if (k1 < s1)
					memset(sec + (k1 - s0), 0, (size_t)(s1 - k1));
			}
			/* Space given without data (allocate) is unwritten. */
			*ref = allocating ? (void *)((uintptr_t)sec | UNWRITTEN) : sec;
		}
	}
	/* The plan was exact: the stash is empty now. */
	assert(st.used_sectors == st.nsectors && st.used_nodes == st.nnodes);
	atomic_store_explicit(&v->sectors, sv_sectors(v) + st.used_sectors, memory_order_relaxed);
	stash_give_back(pool, &st);
	return 0;
}

/* ---- inline data ---- */

static inline uint64_t inline_max(const struct sp_pool *pool)
{
	size_t half = sp_sector_size(pool) / 2;
	return half < SP_SMALL_MAX ? half : SP_SMALL_MAX;
}

/* Can the bytes [0, n) of v live inline? */
static inline bool inline_fits(const struct sp_pool *pool, const struct sv_vector *v, uint64_t n)
{
	return (is_inline(v) || (!v->root && v->height == 0)) && n <= inline_max(pool);
}

/* Give the inline buffer room for n bytes (all or nothing); an empty tree
 * becomes inline. */
static int inline_reserve(struct sp_pool *pool, struct sv_vector *v, uint64_t n)
{
	size_t cap = sp_small_size(n ? n : 1);
	if (is_inline(v) && cap <= sv_inline_bytes(v))
		return 0;
	int rc = sp_reserve(pool, cap);
	if (rc != 0)
		return rc;
	char *buf = sp_alloc_small(pool, cap, true);
	if (!buf) {
		sp_release(pool, cap);
		return -ENOMEM;
	}
	if (is_inline(v)) {
		memcpy(buf, v->root, sv_size(v));
		sp_free_small(pool, v->root);
		sp_release(pool, sv_inline_bytes(v));
	}
	set_inline(v, buf, cap);
	return 0;
}

static void inline_free(struct sp_pool *pool, struct sv_vector *v)
{
	sp_free_small(pool, v->root);
	sp_release(pool, sv_inline_bytes(v));
	set_inline(v, NULL, 0);
}

static void vec_drop(struct sp_pool *pool, struct sv_vector *v, uint64_t a, uint64_t b);

/* vec_fill for a vector in either form: an inline vector first becomes a
 * tree whose sector 0 holds its bytes.  All or nothing, like vec_fill; the
 * inline buffer is only freed once everything else has succeeded. */
static int vec_fill_any(struct sp_pool *pool, struct sv_vector *v, uint64_t off, uint64_t end,
                        uint64_t keep_from, uint64_t keep_to)
{
	if (!is_inline(v))
		return vec_fill(pool, v, off, end, keep_from, keep_to);
	char *buf = v->root;
	size_t cap = sv_inline_bytes(v);
	uint64_t size = sv_size(v);
	set_inline(v, NULL, 0);
	int rc = vec_fill(pool, v, 0, size ? size : 1, 0, size);
	if (rc == 0) {
		rc = vec_fill(pool, v, off, end, keep_from, keep_to);
		if (rc != 0)
			vec_drop(pool, v, 0, UINT64_MAX); /* back to an empty tree */
	}
	if (rc != 0) {
		set_inline(v, buf, cap);
		return rc;
	}
	uint64_t span;
	void **sector0 = slot_ref(v, 0, &span);
	memcpy(sec_of(*sector0), buf, size);
	sp_free_small(pool, buf);
	sp_release(pool, cap);
	return 0;
}

/* ---- freeing ---- */

struct dropper {
	struct sp_pool *pool;
	struct sv_frozen *frozen; /* takes the sectors it still needs */
	uint64_t sectors, nodes;
	unsigned n;
	void *batch[FAN];
};

static void drop_flush(struct dropper *d)
{
	sp_free_sectors(d->pool, d->n, d->batch);
	d->n = 0;
}

static bool node_empty(const struct node *n)
{
	for (unsigned c = 0; c < FAN; c++)
		if (n->slot[c])
			return false;
	return true;
}

/* Free every sector with index in [a, b] in the subtree *ref of height k
 * whose first sector is `base`; free nodes that end up empty. */
static void drop_range(struct dropper *d, void **ref, unsigned k, uint64_t base, uint64_t a,
                       uint64_t b)
{
	if (!*ref)
		return;
	if (k == 0) {
		if (!d->frozen || !frozen_keep(d->pool, d->frozen, base, *ref, true))
			d->batch[d->n++] = sec_of(*ref);
		*ref = NULL;
		d->sectors++;
		if (d->n == FAN)
			drop_flush(d);
		return;
	}
	struct node *n = *ref;
	uint64_t span = cap(k - 1);
	uint64_t c0 = a > base ? (a - base) / span : 0;
	uint64_t c1 = (b - base) / span;
	if (c1 > FAN - 1)
		c1 = FAN - 1;
	for (uint64_t c = c0; c <= c1; c++)
		drop_range(d, &n->slot[c], k - 1, base + c * span, a, b);
	if (node_empty(n)) {
		sp_free_small(d->pool, n);
		*ref = NULL;
		d->nodes++;
	}
}

/* Lower the height while the root only has its first child. */
static void collapse(struct sp_pool *pool, struct sv_vector *v, struct dropper *d)
{
	while (v->height > 0) {
		struct node *n = v->root;
		if (n) {
			for (unsigned c = 1; c < FAN; c++)
				if (n->slot[c])
					return;
			v->root = n->slot[0];
			sp_free_small(pool, n);
			d->nodes++;
		}
		v->height--;
		if (!v->root)
			v->height = 0;
	}
}

/* Free sectors [a, b] (indices), prune, collapse and settle the accounts. */
static void vec_drop(struct sp_pool *pool, struct sv_vector *v, uint64_t a, uint64_t b)
{
	struct dropper d = {.pool = pool, .frozen = frozen_find(v)};
	if (a < cap(v->height) && a <= b)
		drop_range(&d, &v->root, v->height, 0, a, b);
	drop_flush(&d);
	collapse(pool, v, &d);
	atomic_store_explicit(&v->sectors, sv_sectors(v) - d.sectors, memory_order_relaxed);
	sp_release(pool, d.sectors * sp_sector_size(pool) + d.nodes * SP_NODE_SIZE);
}

/* Zero bytes [from, to) of the sector holding `from`, if it exists. */
static void zero_within(struct sp_pool *pool, struct sv_vector *v, uint64_t from, uint64_t to)
{
	if (from >= to)
		return;
	const unsigned sh = sshift(pool);
	uint64_t span;
	void **ref = slot_ref(v, from >> sh, &span);
	if (ref && *ref && !unwritten(*ref)) {
		struct sv_frozen *frozen = frozen_find(v);
		if (frozen)
			frozen_keep(pool, frozen, from >> sh, *ref, false);
		memset(sec_of(*ref) + (from & ((UINT64_C(1) << sh) - 1)), 0, (size_t)(to - from));
	}
}

/* Shrink to `size`: free sectors past it, zero the tail of the last one. */
static void vec_truncate(struct sp_pool *pool, struct sv_vector *v, uint64_t size)
{
	if (is_inline(v)) {
		memset((char *)v->root + size, 0, sv_size(v) - size);
		if (size == 0)
			inline_free(pool, v);
		atomic_store_explicit(&v->size, size, memory_order_relaxed);
		return;
	}
	const unsigned sh = sshift(pool);
	const uint64_t S = UINT64_C(1) << sh;
	vec_drop(pool, v, (size + S - 1) >> sh, UINT64_MAX);
	if (size & (S - 1))
		zero_within(pool, v, size, (size | (S - 1)) + 1);
	atomic_store_explicit(&v->size, size, memory_order_relaxed);
}

/* ---- the API ---- */

void sv_clear(struct sp_pool *pool, struct sv_vector *v)
{
	lk_wrlock(&v->lock);
	vec_truncate(pool, v, 0);
	lk_wrunlock(&v->lock);
}

ssize_t sv_read(struct sp_pool *pool, struct sv_vector *v, void *buf, size_t len, int64_t off)
{
	if (off < 0)
		return -EINVAL;
	if (len > (size_t)SSIZE_MAX)
		len = (size_t)SSIZE_MAX;
	lk_rdlock(&v->lock);
	uint64_t size = sv_size(v);
	size_t n = 0;
	if ((uint64_t)off < size) {
		n = size - (uint64_t)off < len ? (size_t)(size - (uint64_t)off) : len;
		vec_copy(pool, v, buf, n, (uint64_t)off, false);
	}
	lk_rdunlock(&v->lock);
	return (ssize_t)n;
}

/* Write at off, or at the end when off < 0 (append); *where gets the offset. */
static ssize_t vec_write(struct sp_pool *pool, struct sv_vector *v, const void *buf, size_t len,
                         int64_t off, int64_t *where)
{
	if (len > (size_t)SSIZE_MAX)
		return -EINVAL;
	lk_wrlock(&v->lock);
	uint64_t size = sv_size(v);
	if (off < 0)
		off = (int64_t)size;
	int rc = check_range(off, len);
	if (rc == 0 && len) {
		uint64_t end = (uint64_t)off + len;
		if (inline_fits(pool, v, end > size ? end : size))
			rc = inline_reserve(pool, v, end > size ? end : size);
		else
			rc = vec_fill_any(pool, v, (uint64_t)off, end, (uint64_t)off, end);
		if (rc == 0) {
			vec_copy(pool, v, (char *)buf, len, (uint64_t)off, true);
			if (end > size)
				atomic_store_explicit(&v->size, end, memory_order_relaxed);
		}
	}
	lk_wrunlock(&v->lock);
	if (where)
		*where = off;
	return rc != 0 ? rc : (ssize_t)len;
}

ssize_t sv_write(struct sp_pool *pool, struct sv_vector *v, const void *buf, size_t len,
                 int64_t off)
{
	if (off < 0)
		return -EINVAL;
	return vec_write(pool, v, buf, len, off, NULL);
}

ssize_t sv_append(struct sp_pool *pool, struct sv_vector *v, const void *buf, size_t len,
                  int64_t *off)
{
	return vec_write(pool, v, buf, len, -1, off);
}

int sv_resize(struct sp_pool *pool, struct sv_vector *v, int64_t size)
{
	int rc = check_range(size, 0);
	if (rc != 0)
		return rc;
	lk_wrlock(&v->lock);
	if ((uint64_t)size <= sv_size(v)) {
		vec_truncate(pool, v, (uint64_t)size);
	} else if (is_inline(v)) {
		/* Grow inline while it fits, else move into sectors. */
		if ((uint64_t)size <= inline_max(pool))
			rc = inline_reserve(pool, v, (uint64_t)size);
		else
			rc = vec_fill_any(pool, v, 0, 0, 0, 0);
	}
	if (rc == 0 && (uint64_t)size > sv_size(v))
		atomic_store_explicit(&v->size, (uint64_t)size, memory_order_relaxed);
	lk_wrunlock(&v->lock);
	return rc;
}

/* Zero [off, off+len); free the sectors it covers wholly when `dealloc`. */
static int vec_zero(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len,
                    bool dealloc);

int sv_punch(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len)
{
	return vec_zero(pool, v, off, len, true);
}

int sv_zero(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len)
{
	return vec_zero(pool, v, off, len, false);
}

static int vec_zero(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len,
                    bool dealloc)
{
	if (off < 0 || len < 0)
		return -EINVAL;
	if (len == 0)
		return 0;
	const unsigned sh = sshift(pool);
	const uint64_t S = UINT64_C(1) << sh;
	uint64_t end = (uint64_t)len > (uint64_t)(SV_MAX_SIZE - off) ? (uint64_t)SV_MAX_SIZE
	                                                             : (uint64_t)(off + len);
	uint64_t a = ((uint64_t)off + S - 1) >> sh; /* first whole sector */
	uint64_t b = end >> sh;                     /* one past the last whole one */
	if (end == (uint64_t)SV_MAX_SIZE)
		b = (end + S - 1) >> sh; /* no byte can live past the maximum */
	lk_wrlock(&v->lock);
	if (is_inline(v)) {
		uint64_t size = sv_size(v);
		if (dealloc && a == 0 && b > 0)
			inline_free(pool, v); /* sector 0 punched whole: a hole now */
		else if ((uint64_t)off < size)
			memset((char *)v->root + off, 0, (end < size ? end : size) - (uint64_t)off);
	} else if (a < b) {
		zero_within(pool, v, (uint64_t)off, a << sh);
		zero_within(pool, v, b << sh, end);
		if (dealloc) {
			vec_drop(pool, v, a, b - 1);
		} else {
			struct sv_frozen *frozen = frozen_find(v);
			uint64_t i = a;
			while (i < b) {
				uint64_t span;
				void **ref = slot_ref(v, i, &span);
				for (uint64_t j = 0; ref && j < span && i + j < b; j++) {
					if (!ref[j] || unwritten(ref[j]))
						continue;
					if (frozen)
						frozen_keep(pool, frozen, i + j, ref[j], false);
					memset(ref[j], 0, (size_t)S);
				}
				i = span > b - i ? b : i + span;
			}
		}
	} else {
		/* Inside one sector (or straddling two without a whole one). */
		uint64_t mid = ((uint64_t)off | (S - 1)) + 1;
		zero_within(pool, v, (uint64_t)off, end < mid ? end : mid);
		if (end > mid)
			zero_within(pool, v, mid, end);
	}
	lk_wrunlock(&v->lock);
	return 0;
}

int sv_allocate(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len,
                bool keep_size)
{
	if (len <= 0)
		return -EINVAL;
	int rc = check_range(off, (uint64_t)len);
	if (rc != 0)
		return rc;
	uint64_t end = (uint64_t)off + (uint64_t)len;
	lk_wrlock(&v->lock);
	uint64_t size = sv_size(v);
	/* Only bytes already inline (written data) stay inline: space given
	 * to an empty vector is an unwritten sector, which seeks as a hole
	 * until written, as a page tmpfs preallocated. */
	if (is_inline(v) && (end > size ? end : size) <= inline_max(pool))
		rc = inline_reserve(pool, v, end > size ? end : size);
	else
		rc = vec_fill_any(pool, v, (uint64_t)off, end, 0, 0);
	if (rc == 0 && !keep_size && end > sv_size(v))
		atomic_store_explicit(&v->size, end, memory_order_relaxed);
	lk_wrunlock(&v->lock);
	return rc;
}

int64_t sv_seek(struct sp_pool *pool, struct sv_vector *v, int64_t off, bool data)
{
	if (off < 0)
		return -ENXIO;
	lk_rdlock(&v->lock);
	int64_t result = vec_seek_locked(pool, v, off, data);
	lk_rdunlock(&v->lock);
	return result;
}

int64_t vec_seek_locked(struct sp_pool *pool, struct sv_vector *v, int64_t off, bool data)
{
	const unsigned sh = sshift(pool);
	const uint64_t size = sv_size(v);
	const uint64_t nsec = (size + (UINT64_C(1) << sh) - 1) >> sh;
	int64_t result = data ? -ENXIO : (int64_t)size;
	uint64_t i = (uint64_t)off >> sh;
	if ((uint64_t)off >= size) {
		result = -ENXIO;
		goto out;
	}
	if (is_inline(v)) {
		result = data ? off : (int64_t)size;
		goto out;
	}
	while (i < nsec) {
		uint64_t span;
		void **ref = slot_ref(v, i, &span);
		if (span > nsec - i)
			span = nsec - i;
		if (!ref && !data)
			goto found;
		for (uint64_t j = 0; ref && j < span; j++) {
			if ((ref[j] != NULL && !unwritten(ref[j])) == data) {
				i += j;
				goto found;
			}
		}
		i += span;
	}
	goto out;
found:
	result = (int64_t)(i << sh) > off ? (int64_t)(i << sh) : off;
	if ((uint64_t)result >= size)
		result = data ? -ENXIO : (int64_t)size;
out:
	return result;
}

void sv_read_lock(struct sv_vector *v)
{
	lk_rdlock(&v->lock);
}

void sv_read_unlock(struct sv_vector *v)
{
	lk_rdunlock(&v->lock);
}

struct view {
	struct iovec *iov;
	int n, max;
	const char *zero;
	size_t zero_len;
};

/* Append [base, base+len) to the view, merging with the previous entry when
 * the memory continues it.  False when the array is full. */
static bool view_add(struct view *w, const char *base, size_t len)
{
	if (w->n > 0) {
		struct iovec *last = &w->iov[w->n - 1];
		if (base == w->zero) {
			if (last->iov_base == w->zero && last->iov_len + len <= w->zero_len) {
				last->iov_len += len;
				return true;
			}
		} else if (last->iov_base != w->zero && (char *)last->iov_base + last->iov_len == base) {
			last->iov_len += len;
			return true;
		}
	}
	if (w->n == w->max)
		return false;
	w->iov[w->n].iov_base = (void *)base;
	w->iov[w->n].iov_len = len;
	w->n++;
	return true;
}

/* Zeros: as many zero-area entries as the length needs. */
static size_t view_zero(struct view *w, size_t len)
{
	size_t done = 0;
	while (done < len) {
		size_t n = len - done < w->zero_len ? len - done : w->zero_len;
		if (!view_add(w, w->zero, n))
			break;
		done += n;
	}
	return done;
}

int sv_view(struct sp_pool *pool, struct sv_vector *v, int64_t off, size_t len,
            struct iovec *iov, int max, size_t *bytes)
{
	*bytes = 0;
	if (off < 0 || max < 0)
		return -EINVAL;
	const unsigned sh = sshift(pool);
	const size_t S = (size_t)1 << sh;
	uint64_t size = sv_size(v);
	if ((uint64_t)off >= size)
		return 0;
	if (len > size - (uint64_t)off)
		len = (size_t)(size - (uint64_t)off);
	if (is_inline(v)) {
		if (max == 0 || len == 0)
			return 0;
		iov[0].iov_base = (char *)v->root + off;
		iov[0].iov_len = len;
		*bytes = len;
		return 1;
	}
	struct view w = {.iov = iov, .max = max};
	w.zero = sp_zero_area(pool, &w.zero_len);
	uint64_t pos = (uint64_t)off;
	size_t left = len;
	while (left) {
		uint64_t i = pos >> sh, span;
		size_t in = (size_t)(pos & (S - 1));
		void **ref = slot_ref(v, i, &span);
		if (!ref) {
			uint64_t hole = span > (left >> sh) + 1 ? left : span * S - in;
			size_t n = hole < left ? (size_t)hole : left;
			size_t done = view_zero(&w, n);
			pos += done, left -= done;
			if (done < n)
				break;
			continue;
		}
		for (uint64_t j = 0; j < span && left; j++) {
			size_t n = S - in < left ? S - in : left;
			size_t done = ref[j] && !unwritten(ref[j])
			                      ? (view_add(&w, (char *)ref[j] + in, n) ? n : 0)
			                      : view_zero(&w, n);
			pos += done, left -= done;
			if (done < n)
				goto full;
			in = 0;
		}
	}
full:
	*bytes = len - left;
	return w.n;
}

/* ---- checking ---- */

struct checker {
	struct sp_pool *pool;
	struct sv_vector *v;
	uint64_t sectors, nodes, inline_bytes;
	char *msg;
	size_t msglen;
	int rc;
};

static void check_fail(struct checker *c, const char *what, uint64_t where)
{
	if (c->rc == 0 && c->msg)
		snprintf(c->msg, c->msglen, "%s (sector %llu)", what, (unsigned long long)where);
	c->rc = -EUCLEAN;
}

static void check_sector(struct checker *c, const void *p, uint64_t i)
{
	const unsigned sh = sshift(c->pool);
	const uint64_t S = UINT64_C(1) << sh, size = sv_size(c->v);
	const char *sec = sec_of(p);
	c->sectors++;
	uint64_t start = i << sh;
	/* Past the end, or anywhere in an unwritten sector: zeros only. */
	uint64_t from = unwritten(p) ? 0 : size > start ? size - start : 0;
	for (uint64_t b = from; b < S; b++)
		if (sec[b]) {
			check_fail(c, unwritten(p) ? "non-zero byte in an unwritten sector"
			                           : "non-zero byte past the end of the vector",
			           i);
			return;
		}
}

static void check_tree(struct checker *c, void *p, unsigned k, uint64_t base)
{
	if (k == 0) {
		check_sector(c, p, base);
		return;
	}
	struct node *n = p;
	c->nodes++;
	if (node_empty(n))
		check_fail(c, "empty node", base);
	for (unsigned ch = 0; ch < FAN; ch++)
		if (n->slot[ch])
			check_tree(c, n->slot[ch], k - 1, base + ch * cap(k - 1));
}

int sv_check(struct sp_pool *pool, struct sv_vector *v, uint64_t *sectors, uint64_t *small_bytes,
             char *msg, size_t msglen)
{
	struct checker c = {.pool = pool, .v = v, .msg = msg, .msglen = msglen};
	lk_rdlock(&v->lock);
	if (is_inline(v)) {
		uint64_t size = sv_size(v);
		size_t cap = sv_inline_bytes(v);
		if (!v->root || v->height || cap != sp_small_size(cap) || cap > inline_max(pool) ||
		    size > cap)
			check_fail(&c, "malformed inline vector", 0);
		else if (sv_sectors(v))
			check_fail(&c, "inline vector counts sectors", 0);
		else
			for (uint64_t b = size; b < cap; b++)
				if (((char *)v->root)[b]) {
					check_fail(&c, "non-zero inline byte past the end", 0);
					break;
				}
		c.inline_bytes = cap;
	} else if (v->height > MAX_HEIGHT)
		check_fail(&c, "height out of range", v->height);
	else if (!v->root && v->height)
		check_fail(&c, "empty tree with a height", 0);
	else if (v->root)
		check_tree(&c, v->root, v->height, 0);
	if (!is_inline(v) && v->height > 0 && v->root) {
		struct node *r = v->root;
		bool beyond_first = false;
		for (unsigned ch = 1; ch < FAN; ch++)
			beyond_first |= r->slot[ch] != NULL;
		if (!beyond_first)
			check_fail(&c, "tree taller than needed", 0);
	}
	if (c.sectors != sv_sectors(v))
		check_fail(&c, "sector count differs from the tree", c.sectors);
	lk_rdunlock(&v->lock);
	if (sectors)
		*sectors += c.sectors;
	if (small_bytes)
		*small_bytes += c.nodes * SP_NODE_SIZE + c.inline_bytes;
	return c.rc;
}
