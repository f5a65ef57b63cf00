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
 * that only free memory cannot fail at all (clear; shrink and punch unless
 * they cut into shared data).
 *
 * Small data lives inline: while a vector's bytes fit in half a sector (at
 * most 2 KiB), they sit in one small object from the pool, sized to a power
 * of two, instead of a whole sector.  The first write past that limit moves
 * them into sector 0 of a tree; the move is part of the same all-or-nothing
 * step as the write.  Inline bytes are data: space allocated to an empty
 * vector takes an unwritten sector instead, and punching sector 0 whole
 * frees the inline object, so that SEEK_HOLE finds what tmpfs would.
 *
 * Shared sectors and nodes (share.c makes them): a shared node is never
 * changed.  The plan of a change also counts the shared nodes over its
 * range (and those under them) and the shared sectors whose bytes it
 * will touch (directly shared or under a shared node); the stash holds a
 * copy for each, and the apply step makes the path to every sector it
 * changes the vector's own, copying nodes top-down (path_make: a copied
 * node's children gain an owner, so they become shared in their turn),
 * then swaps in private sectors (break_share) before anything is written,
 * so a full pool refuses the whole change.  Freeing goes through
 * drop_range(), which gives a shared subtree up whole (one owner count)
 * and frees a sector or node only when this vector was its last owner;
 * a truncate or punch that cuts into a shared node copies the nodes the
 * cut goes through first, and so can fail with ENOSPC.  Zeroing and
 * writing never touch a shared sector's memory: bytes past the size are
 * zero already, so a truncate or punch zeroes only up to the size.
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

void sv_init(struct sv_vector *v)
{
	memset(v, 0, sizeof(*v));
}

int check_range(int64_t off, uint64_t len)
{
	if (off < 0 || len > (uint64_t)SV_MAX_SIZE)
		return -EINVAL;
	if (len > (uint64_t)(SV_MAX_SIZE - off))
		return -EFBIG;
	return 0;
}

void vec_add_sectors(struct sp_pool *pool, struct sv_vector *v, int64_t delta)
{
	atomic_store_explicit(&v->sectors, sv_sectors(v) + (uint64_t)delta, memory_order_relaxed);
	sp_note_sectors(pool, delta, 0);
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
 * sector of the range exists and is the vector's own (vec_fill). */
void vec_copy(struct sp_pool *pool, struct sv_vector *v, char *buf, size_t len, uint64_t off,
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

/* Count what filling sectors [first, last] needs.  Two parts: sectors under
 * the current root are looked up; sectors past it (after the tree grows) are
 * all holes, under nodes that are all new except the "chain" of index-0
 * nodes that growth adds above the old root. */
void vec_plan(struct sv_vector *v, uint64_t first, uint64_t last, struct plan *pl)
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

/* Count, in the subtree p of height k whose first sector is `base`, over
 * sectors [first, last]: the nodes a change must copy (those shared, or
 * under a shared one: copying a node shares its children) and the sectors
 * it must break (shared, or under a shared node). */
static void count_shared(struct sp_pool *pool, void *p, unsigned k, uint64_t base, uint64_t first,
                         uint64_t last, bool inherited, struct plan *pl, uint64_t *sectors)
{
	if (!p)
		return;
	if (k == 0) {
		if (inherited || sp_shared(pool, sec_of(p)))
			(*sectors)++;
		return;
	}
	bool shared = inherited || sp_shared(pool, p);
	pl->nodes += shared;
	const struct node *n = p;
	uint64_t span = cap(k - 1);
	uint64_t c0 = first > base ? (first - base) / span : 0, c1 = (last - base) / span;
	if (c1 > FAN - 1)
		c1 = FAN - 1;
	for (uint64_t c = c0; c <= c1; c++)
		count_shared(pool, n->slot[c], k - 1, base + c * span, first, last, shared, pl,
		             sectors);
}

uint64_t vec_count_shared(struct sp_pool *pool, struct sv_vector *v, uint64_t first, uint64_t last,
                          struct plan *pl)
{
	uint64_t sectors = 0;
	if (first < cap(v->height) && first <= last)
		count_shared(pool, v->root, v->height, 0, first, last, false, pl, &sectors);
	return sectors;
}

void **vec_slot_path(struct sp_pool *pool, struct sv_vector *v, uint64_t i, bool *shared)
{
	*shared = false;
	if (i >= cap(v->height))
		return NULL;
	void **ref = &v->root;
	for (unsigned k = v->height; k >= 1; k--) {
		if (!*ref)
			return NULL;
		*shared = *shared || sp_shared(pool, *ref);
		ref = &((struct node *)*ref)->slot[child(i, k)];
	}
	return ref;
}

/* ---- taking memory ---- */

void stash_done(struct sp_pool *pool, struct stash *st)
{
	uint64_t spare = st->nsectors - st->used_sectors;
	sp_note_sectors(pool, 0, (int64_t)st->used_sectors); /* now in trees */
	sp_free_sectors(pool, (size_t)spare, st->sectors + st->used_sectors);
	for (uint64_t i = st->used_nodes; i < st->nnodes; i++)
		sp_free_small(pool, st->node_list[i]);
	sp_release(pool, spare * sp_sector_size(pool) + (st->nnodes - st->used_nodes) * SP_NODE_SIZE);
	os_free(st->heap);
}

/* A write or allocation of this many new sectors or more faults them in
 * first (one call per run instead of a fault per page, huge pages where a
 * run covers them) and wakes the pool's faulting-in thread, if any, for
 * the writes that may follow.  An allocation (fallocate) so holds its
 * memory at once, as tmpfs's does, and later writes into it fault no more. */
#define POPULATE_MIN 16

int stash_take(struct sp_pool *pool, uint64_t nsec, uint64_t nnodes, bool zeroed, struct stash *st)
{
	const uint64_t S = sp_sector_size(pool);
	memset(st, 0, offsetof(struct stash, small));
	if (nsec > (SIZE_MAX / sizeof(void *)) - nnodes || nsec > UINT64_MAX / S - nnodes)
		return -ENOSPC;
	const uint64_t bytes = nsec * S + nnodes * SP_NODE_SIZE;
	int rc = sp_reserve(pool, bytes);
	if (rc != 0)
		return rc;
	/* More than the machine has can never be allocated; say so before
	 * asking malloc for a stash to match.  (Asking the kernel costs a
	 * system call: not for the sizes of everyday writes.) */
	rc = -ENOMEM;
	if (bytes >= (UINT64_C(1) << 30) && os_physical_memory() && bytes > os_physical_memory())
		goto fail_stash;
	uint64_t total = nsec + nnodes;
	if (total <= 2 * FAN) {
		st->sectors = st->small;
	} else {
		st->heap = os_malloc((size_t)total * sizeof(void *));
		if (!st->heap)
			goto fail_stash;
		st->sectors = st->heap;
	}
	st->node_list = st->sectors + nsec;
	rc = sp_alloc_sectors(pool, (size_t)nsec, st->sectors, zeroed);
	if (rc != 0)
		goto fail_sectors;
	st->nsectors = nsec;
	if (nsec >= POPULATE_MIN) {
		sp_populate(pool, st->sectors, (size_t)nsec);
		sp_warm(pool);
	}
	for (; st->nnodes < nnodes; st->nnodes++) {
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

/* ---- applying ---- */

void tree_grow(struct sv_vector *v, unsigned height, struct stash *st)
{
	if (height <= v->height)
		return;
	if (v->root) {
		for (unsigned k = v->height + 1; k <= height; k++) {
			struct node *n = stash_node(st);
			n->slot[0] = v->root;
			v->root = n;
		}
	}
	v->height = (uint8_t)height;
}

void node_copy(struct sp_pool *pool, void **ref, struct stash *st)
{
	struct node *old = *ref, *n = stash_node(st);
	memcpy(n, old, sizeof *n);
	void *kids[FAN];
	size_t nkids = 0;
	for (unsigned c = 0; c < FAN; c++)
		if (n->slot[c])
			kids[nkids++] = sec_of(n->slot[c]);
	sp_share_many(pool, kids, nkids); /* the copy's slots own them too */
	*ref = n;
	/* The other owners may have let go meanwhile: then it is ours to free,
	 * and with it its hold on the children. */
	if (sp_unshare(pool, old)) {
		for (size_t c = 0; c < nkids; c++)
			sp_unshare(pool, kids[c]); /* never the last: the copy holds it */
		sp_free_small(pool, old);
		sp_release(pool, SP_NODE_SIZE);
	}
}

/* Does a change of [lo, hi] (a drop; lo > hi: none) leave the node n of
 * level k whose first sector is `base` alone?  Yes when [lo, hi] holds it
 * whole (it is given up whole) or holds none of its children (nothing in
 * it changes). */
static bool drop_passes(const struct node *n, unsigned k, uint64_t base, uint64_t lo,
                        uint64_t hi)
{
	if (lo > hi)
		return false;
	const uint64_t end = base + (cap(k) - 1), span = cap(k - 1);
	if (lo <= base && end <= hi)
		return true;
	if (hi < base || lo > end)
		return true;
	uint64_t c0 = lo > base ? (lo - base) / span : 0;
	uint64_t c1 = hi < end ? (hi - base) / span : FAN - 1;
	for (uint64_t c = c0; c <= c1; c++)
		if (n->slot[c])
			return false;
	return true;
}

void **path_make(struct sp_pool *pool, struct sv_vector *v, uint64_t i, struct stash *st,
                 uint64_t lo, uint64_t hi, bool create)
{
	if (i >= cap(v->height))
		return NULL;
	void **ref = &v->root;
	uint64_t base = 0;
	for (unsigned k = v->height; k >= 1; k--) {
		if (!*ref) {
			if (!create)
				return NULL;
			*ref = stash_node(st);
		} else if (drop_passes(*ref, k, base, lo, hi)) {
			return NULL; /* not to be changed */
		} else if (sp_shared(pool, *ref)) {
			node_copy(pool, ref, st);
		}
		base += child(i, k) * cap(k - 1);
		ref = &((struct node *)*ref)->slot[child(i, k)];
	}
	return ref;
}

void path_plan(struct sp_pool *pool, struct sv_vector *v, uint64_t i, uint64_t lo, uint64_t hi,
               uint64_t *seen, unsigned *nseen, struct plan *pl)
{
	if (i >= cap(v->height))
		return;
	void *p = v->root;
	uint64_t base = 0;
	bool shared = false;
	for (unsigned k = v->height; k >= 1 && p; k--) {
		if (drop_passes(p, k, base, lo, hi))
			return;
		/* A position of the tree, not a node: one node may sit at two
		 * (copied into itself), and each is copied. */
		const uint64_t where = base | k;
		shared = shared || sp_shared(pool, p);
		bool counted = false;
		for (unsigned j = 0; j < *nseen; j++)
			counted |= seen[j] == where;
		if (shared && !counted) {
			seen[(*nseen)++] = where;
			pl->nodes++;
		}
		base += child(i, k) * cap(k - 1);
		p = ((struct node *)p)->slot[child(i, k)];
	}
}

void **leaf_make(struct sp_pool *pool, struct sv_vector *v, uint64_t i, struct stash *st)
{
	if (v->height == 0)
		return &v->root;
	return path_make(pool, v, i, st, 1, 0, true) - (i & (FAN - 1));
}

void break_share(struct sp_pool *pool, struct sv_vector *v, struct sv_frozen *frozen, uint64_t i,
                 void **ref, char *fresh, uint64_t keep_from, uint64_t keep_to)
{
	(void)v;
	const unsigned sh = sshift(pool);
	const uint64_t S = UINT64_C(1) << sh, s0 = i << sh, s1 = s0 + S;
	char *old = sec_of(*ref);
	if (frozen)
		frozen_keep(pool, frozen, i, *ref, false);
	uint64_t k0 = keep_from > s0 ? keep_from : s0, k1 = keep_to < s1 ? keep_to : s1;
	if (k0 >= k1)
		k0 = k1 = s1; /* nothing will be written over: copy it all */
	if (unwritten(*ref)) {
		memset(fresh, 0, (size_t)S);
	} else {
		memcpy(fresh, old, (size_t)(k0 - s0));
		memcpy(fresh + (k1 - s0), old + (k1 - s0), (size_t)(s1 - k1));
	}
	*ref = unwritten(*ref) ? (void *)((uintptr_t)fresh | UNWRITTEN) : fresh;
	/* The other owners may have let go meanwhile: then it is ours to free. */
	if (sp_unshare(pool, old)) {
		sp_free_sectors(pool, 1, (void **)&old);
		sp_release(pool, S);
		sp_note_sectors(pool, 0, -1);
	}
}

/* Give sectors [off, end) backing (byte range; partial sectors included),
 * and make the ones about to change the vector's own.  Locked exclusively
 * by the caller.  All or nothing.
 *   FILL_WRITE: the caller then writes [keep_from, keep_to); new sectors
 *     are zeroed outside it, shared ones copied outside it;
 *   FILL_ALLOCATE: new sectors are unwritten (zeroed, a hole to seeks),
 *     unwritten ones become data; no byte changes, nothing is copied;
 *   FILL_ZERO: as FILL_ALLOCATE, then the caller zeroes [keep_from,
 *     keep_to): shared sectors are copied outside it first. */
static int vec_fill(struct sp_pool *pool, struct sv_vector *v, uint64_t off, uint64_t end,
                    uint64_t keep_from, uint64_t keep_to, enum fill how)
{
	const unsigned sh = sshift(pool);
	const size_t S = (size_t)1 << sh;
	if (end <= off)
		return 0;
	uint64_t first = off >> sh, last = (end - 1) >> sh;
	struct plan pl;
	vec_plan(v, first, last, &pl);
	const bool allocating = how != FILL_WRITE;
	/* Shared nodes on the way are copied (leaf_make), which shares the
	 * sectors under them: those are broken like any shared sector. */
	uint64_t breaks = vec_count_shared(pool, v, first, last, &pl);
	if (how == FILL_ALLOCATE)
		breaks = 0; /* the bytes stay; only slots change */
	if (pl.holes == 0 && pl.nodes == 0 && breaks == 0 && !allocating)
		return 0;
	/* For a write, only the uncovered parts of new sectors are zeroed,
	 * below; otherwise the pool zeroes them, free of charge when their
	 * memory is clean. */
	struct stash st;
	int rc = stash_take(pool, pl.holes + breaks, pl.nodes, allocating, &st);
	if (rc != 0)
		return rc;

	tree_grow(v, pl.height, &st);
	struct sv_frozen *frozen = frozen_find(v);
	uint64_t filled = 0;
	for (uint64_t i = first; i <= last;) {
		void **leaf = leaf_make(pool, v, i, &st);
		uint64_t stop = v->height == 0 ? i : (i | (FAN - 1));
		if (stop > last)
			stop = last;
		for (; i <= stop; i++) {
			void **ref = v->height == 0 ? leaf : &leaf[i & (FAN - 1)];
			if (*ref) {
				/* Still shared (its other owners may have let go
				 * since the plan): a copy of our own. */
				if (how != FILL_ALLOCATE && sp_shared(pool, sec_of(*ref)))
					break_share(pool, v, frozen, i, ref, stash_sector(&st), keep_from,
					            keep_to);
				/* Allocating again over unwritten space makes it
				 * data (zeros), as tmpfs initializes a folio it
				 * preallocated before. */
				if (allocating)
					*ref = sec_of(*ref);
				continue;
			}
			if (frozen)
				frozen_keep(pool, frozen, i, NULL, false); /* it was a hole */
			char *sec = stash_sector(&st);
			filled++;
			if (!allocating) {
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
	/* The plan was exact, but for shares that ended meanwhile. */
	assert(filled == pl.holes && st.used_nodes <= st.nnodes);
	vec_add_sectors(pool, v, (int64_t)filled);
	stash_done(pool, &st);
	return 0;
}

/* ---- inline data ---- */

/* Can the bytes [0, n) of v live inline? */
static inline bool inline_fits(const struct sp_pool *pool, const struct sv_vector *v, uint64_t n)
{
	return (is_inline(v) || (!v->root && v->height == 0)) && n <= inline_max(pool);
}

void inline_put(struct sp_pool *pool, void *buf, size_t bytes)
{
	if (bytes >= SP_SHARED_SMALL_MIN && !sp_unshare(pool, buf))
		return; /* others keep it */
	sp_free_small(pool, buf);
	sp_release(pool, bytes);
}

/* Give the inline buffer room for n bytes, and make it the vector's own
 * (a shared one is copied), all or nothing; an empty tree becomes
 * inline. */
static int inline_reserve(struct sp_pool *pool, struct sv_vector *v, uint64_t n)
{
	size_t bytes = sp_small_size(n ? n : 1), had = sv_inline_bytes(v);
	bool shared = had >= SP_SHARED_SMALL_MIN && sp_shared(pool, v->root);
	if (had && bytes <= had && !shared)
		return 0;
	if (bytes < had)
		bytes = had;
	int rc = sp_reserve(pool, bytes);
	if (rc != 0)
		return rc;
	char *buf = sp_alloc_small(pool, bytes, true);
	if (!buf) {
		sp_release(pool, bytes);
		return -ENOMEM;
	}
	if (had) {
		memcpy(buf, v->root, sv_size(v));
		inline_put(pool, v->root, had);
	}
	set_inline(v, buf, bytes);
	return 0;
}

static void inline_free(struct sp_pool *pool, struct sv_vector *v)
{
	inline_put(pool, v->root, sv_inline_bytes(v));
	set_inline(v, NULL, 0);
}

static void vec_drop(struct sp_pool *pool, struct sv_vector *v, uint64_t a, uint64_t b);

/* vec_fill for a vector in either form: an inline vector first becomes a
 * tree whose sector 0 holds its bytes.  All or nothing, like vec_fill; the
 * inline buffer is only freed once everything else has succeeded. */
int vec_fill_any(struct sp_pool *pool, struct sv_vector *v, uint64_t off, uint64_t end,
                 uint64_t keep_from, uint64_t keep_to, enum fill how)
{
	if (!is_inline(v))
		return vec_fill(pool, v, off, end, keep_from, keep_to, how);
	char *buf = v->root;
	size_t bytes = sv_inline_bytes(v);
	uint64_t size = sv_size(v);
	set_inline(v, NULL, 0);
	int rc = vec_fill(pool, v, 0, size ? size : 1, 0, size, size ? FILL_WRITE : FILL_ALLOCATE);
	if (rc == 0) {
		rc = vec_fill(pool, v, off, end, keep_from, keep_to, how);
		if (rc != 0)
			vec_drop(pool, v, 0, UINT64_MAX); /* back to an empty tree */
	}
	if (rc != 0) {
		set_inline(v, buf, bytes);
		return rc;
	}
	uint64_t span;
	void **sector0 = slot_ref(v, 0, &span);
	memcpy(sec_of(*sector0), buf, size);
	inline_put(pool, buf, bytes);
	return 0;
}

/* ---- freeing ---- */

static void drop_flush(struct dropper *d)
{
	sp_free_sectors(d->pool, d->n, d->batch);
	d->n = 0;
}

void drop_slot(struct dropper *d, uint64_t i, void **ref)
{
	char *sec = sec_of(*ref);
	/* A frozen view needs a copy of a sector that others keep: they may
	 * change it once we let go. */
	if (d->frozen && sp_shared(d->pool, sec))
		frozen_keep(d->pool, d->frozen, i, *ref, false);
	if (sp_unshare(d->pool, sec)) {
		if (!d->frozen || !frozen_keep(d->pool, d->frozen, i, *ref, true))
			d->batch[d->n++] = sec;
		d->freed++;
	}
	*ref = NULL;
	d->sectors++;
	if (d->n == FAN)
		drop_flush(d);
}

void drop_end(struct sv_vector *v, struct dropper *d)
{
	drop_flush(d);
	vec_add_sectors(d->pool, v, -(int64_t)d->sectors);
	sp_note_sectors(d->pool, 0, -(int64_t)d->freed);
	sp_release(d->pool, d->freed * sp_sector_size(d->pool) + d->nodes * SP_NODE_SIZE);
}

static bool node_empty(const struct node *n)
{
	for (unsigned c = 0; c < FAN; c++)
		if (n->slot[c])
			return false;
	return true;
}

/* Sectors in the subtree p of height k. */
static uint64_t subtree_sectors(const void *p, unsigned k)
{
	if (!p)
		return 0;
	if (k == 0)
		return 1;
	const struct node *n = p;
	uint64_t count = 0;
	for (unsigned c = 0; c < FAN; c++)
		count += subtree_sectors(n->slot[c], k - 1);
	return count;
}

/* A frozen view keeps a copy of every sector of the shared subtree p
 * (height k, first sector `base`) that the vector is letting go of. */
static void keep_subtree(struct dropper *d, void *p, unsigned k, uint64_t base)
{
	if (!p)
		return;
	if (k == 0) {
		frozen_keep(d->pool, d->frozen, base, p, false);
		return;
	}
	struct node *n = p;
	for (unsigned c = 0; c < FAN; c++)
		keep_subtree(d, n->slot[c], k - 1, base + c * cap(k - 1));
}

/* Empty every slot with index in [a, b] in the subtree *ref of height k
 * whose first sector is `base`; free nodes that end up empty.  A shared
 * node inside [a, b] loses this vector as an owner, whole; one that [a, b]
 * only cuts into must be the vector's own (path_make). */
static void drop_range(struct dropper *d, void **ref, unsigned k, uint64_t base, uint64_t a,
                       uint64_t b)
{
	if (!*ref)
		return;
	if (k == 0) {
		drop_slot(d, base, ref);
		return;
	}
	struct node *n = *ref;
	bool whole = a <= base && base + (cap(k) - 1) <= b;
	if (whole && sp_shared(d->pool, n)) {
		if (d->frozen)
			keep_subtree(d, n, k, base); /* the others may change it later */
		uint64_t count = subtree_sectors(n, k);
		if (!sp_unshare(d->pool, n)) {
			*ref = NULL;
			d->sectors += count;
			return;
		}
		/* Its other owners let go meanwhile: it is ours, emptied below. */
	}
	if (!whole && drop_passes(n, k, base, a, b))
		return; /* nothing of it in [a, b] */
	assert(whole || !sp_shared(d->pool, n));
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

void drop_subtree(struct dropper *d, void **ref, unsigned k, uint64_t base)
{
	drop_range(d, ref, k, base, base, base + (cap(k) - 1));
}

/* Lower the height while the root only has its first child.  A shared
 * root (the shared child of a root collapsed before it) gives the vector
 * an owner of its child, and loses the vector as an owner. */
static void collapse(struct sp_pool *pool, struct sv_vector *v, struct dropper *d)
{
	while (v->height > 0) {
		struct node *n = v->root;
		if (n) {
			for (unsigned c = 1; c < FAN; c++)
				if (n->slot[c])
					return;
			void *kid = n->slot[0];
			bool free_it = true;
			if (sp_shared(pool, n)) {
				if (kid)
					sp_share(pool, sec_of(kid)); /* the vector's root now */
				free_it = sp_unshare(pool, n);
				if (free_it && kid)
					sp_unshare(pool, sec_of(kid)); /* n's hold: never the last */
			}
			if (free_it) {
				sp_free_small(pool, n);
				d->nodes++;
			}
			v->root = kid;
		}
		v->height--;
		if (!v->root)
			v->height = 0;
	}
}

/* Empty slots [a, b] (indices), prune, collapse and settle the accounts. */
static void vec_drop(struct sp_pool *pool, struct sv_vector *v, uint64_t a, uint64_t b)
{
	struct dropper d = {.pool = pool, .frozen = frozen_find(v)};
	if (a < cap(v->height) && a <= b)
		drop_range(&d, &v->root, v->height, 0, a, b);
	collapse(pool, v, &d);
	drop_end(v, &d);
}

/* Before sectors [lo, hi] are dropped and the written sectors at indices
 * idx[0..n) (ascending) have bytes zeroed: make those sectors and every
 * node on their paths, and every node that [lo, hi] only cuts into, the
 * vector's own (an inline vector: its buffer, if n).  All or nothing
 * (lo > hi: nothing is dropped). */
static int vec_own_edges(struct sp_pool *pool, struct sv_vector *v, const uint64_t *idx, int n,
                         uint64_t lo, uint64_t hi)
{
	if (is_inline(v)) /* an edge to zero: the buffer must be ours */
		return n ? inline_reserve(pool, v, sv_size(v)) : 0;
	struct plan pl = {0};
	uint64_t need = 0, seen[4 * MAX_HEIGHT];
	unsigned nseen = 0;
	for (int k = 0; k < n; k++) {
		bool shared;
		void **ref = vec_slot_path(pool, v, idx[k], &shared);
		if ((k > 0 && idx[k] == idx[k - 1]) || !ref || !*ref || unwritten(*ref))
			continue; /* nothing to zero there */
		path_plan(pool, v, idx[k], 1, 0, seen, &nseen, &pl);
		need += shared || sp_shared(pool, sec_of(*ref));
	}
	if (lo <= hi) {
		path_plan(pool, v, lo, lo, hi, seen, &nseen, &pl);
		path_plan(pool, v, hi, lo, hi, seen, &nseen, &pl);
	}
	if (need == 0 && pl.nodes == 0)
		return 0;
	struct stash st;
	int rc = stash_take(pool, need, pl.nodes, false, &st);
	if (rc != 0)
		return rc;
	struct sv_frozen *frozen = frozen_find(v);
	for (int k = 0; k < n; k++) {
		uint64_t span;
		void **ref = vec_slot(v, idx[k], &span);
		if (!ref || !*ref || unwritten(*ref))
			continue; /* as planned */
		ref = path_make(pool, v, idx[k], &st, 1, 0, false);
		if (sp_shared(pool, sec_of(*ref)))
			break_share(pool, v, frozen, idx[k], ref, stash_sector(&st), 0, 0);
	}
	if (lo <= hi) {
		path_make(pool, v, lo, &st, lo, hi, false);
		path_make(pool, v, hi, &st, lo, hi, false);
	}
	assert(st.used_nodes <= st.nnodes && st.used_sectors <= st.nsectors);
	stash_done(pool, &st);
	return 0;
}

/* Zero bytes [from, to) of the sector holding `from`, if it exists (it is
 * the vector's own). */
static void zero_within(struct sp_pool *pool, struct sv_vector *v, uint64_t from, uint64_t to)
{
	if (from >= to)
		return;
	const unsigned sh = sshift(pool);
	uint64_t span;
	void **ref = slot_ref(v, from >> sh, &span);
	if (ref && *ref && !unwritten(*ref)) {
		assert(!sp_shared(pool, sec_of(*ref)));
		struct sv_frozen *frozen = frozen_find(v);
		if (frozen)
			frozen_keep(pool, frozen, from >> sh, *ref, false);
		memset(sec_of(*ref) + (from & ((UINT64_C(1) << sh) - 1)), 0, (size_t)(to - from));
	}
}

/* Shrink to `size`: free sectors past it, zero the tail of the last one up
 * to the old size (past it, the bytes are zero).  A shared tail sector must
 * have been made the vector's own, with the nodes the cut goes through
 * (vec_own_edges), and so must a shared inline buffer not emptied. */
static void vec_truncate(struct sp_pool *pool, struct sv_vector *v, uint64_t size)
{
	uint64_t old = sv_size(v);
	if (is_inline(v)) {
		if (size == 0)
			inline_free(pool, v);
		else
			memset((char *)v->root + size, 0, old - size);
		atomic_store_explicit(&v->size, size, memory_order_relaxed);
		return;
	}
	const unsigned sh = sshift(pool);
	const uint64_t S = UINT64_C(1) << sh;
	vec_drop(pool, v, (size + S - 1) >> sh, UINT64_MAX);
	uint64_t tail = (size | (S - 1)) + 1;
	if (size & (S - 1))
		zero_within(pool, v, size, old < tail ? old : tail);
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

int vec_make_room(struct sp_pool *pool, struct sv_vector *v, uint64_t off, uint64_t end)
{
	uint64_t size = sv_size(v), top = end > size ? end : size;
	if (inline_fits(pool, v, top))
		return inline_reserve(pool, v, top);
	return vec_fill_any(pool, v, off, end, off, end, FILL_WRITE);
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
		rc = vec_make_room(pool, v, (uint64_t)off, end);
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
	const uint64_t S = sp_sector_size(pool);
	if ((uint64_t)size <= sv_size(v)) {
		/* The tail that will be zeroed must be ours, and so must every
		 * node the cut goes through. */
		uint64_t tail = (uint64_t)size / S;
		int n = (uint64_t)size % S && (uint64_t)size < sv_size(v);
		rc = vec_own_edges(pool, v, &tail, n, ((uint64_t)size + S - 1) / S, UINT64_MAX);
		if (rc == 0)
			vec_truncate(pool, v, (uint64_t)size);
	} else if (is_inline(v)) {
		/* Grow inline while it fits, else move into sectors. */
		if ((uint64_t)size <= inline_max(pool))
			rc = inline_reserve(pool, v, (uint64_t)size);
		else
			rc = vec_fill_any(pool, v, 0, 0, 0, 0, FILL_WRITE);
	}
	if (rc == 0 && (uint64_t)size > sv_size(v))
		atomic_store_explicit(&v->size, (uint64_t)size, memory_order_relaxed);
	lk_wrunlock(&v->lock);
	return rc;
}

/* Zero bytes [from, to), which lie below the size, in every written
 * sector (each the vector's own). */
static void zero_range(struct sp_pool *pool, struct sv_vector *v, uint64_t from, uint64_t to)
{
	const uint64_t S = sp_sector_size(pool);
	while (from < to) {
		uint64_t next = (from | (S - 1)) + 1;
		zero_within(pool, v, from, next < to ? next : to);
		from = next;
	}
}

int sv_punch(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len)
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
	int rc = 0;
	lk_wrlock(&v->lock);
	uint64_t size = sv_size(v);
	if (is_inline(v)) {
		if (a == 0 && b > 0) {
			inline_free(pool, v); /* sector 0 punched whole: a hole now */
		} else if ((uint64_t)off < size) {
			rc = inline_reserve(pool, v, size); /* ours, to zero */
			if (rc == 0)
				memset((char *)v->root + off, 0,
				       (end < size ? end : size) - (uint64_t)off);
		}
		goto out;
	}
	/* The partial sectors at the edges are zeroed below the size (past it
	 * they are zero): make them ours first. */
	uint64_t head_end = a > b ? end : a << sh, tail_start = a > b ? end : b << sh;
	if (head_end > size)
		head_end = size;
	uint64_t tail_end = end < size ? end : size;
	uint64_t idx[2];
	int n = 0;
	if ((uint64_t)off < head_end)
		idx[n++] = (uint64_t)off >> sh;
	if (tail_start < tail_end)
		idx[n++] = tail_start >> sh;
	rc = a < b ? vec_own_edges(pool, v, idx, n, a, b - 1) : vec_own_edges(pool, v, idx, n, 1, 0);
	if (rc != 0)
		goto out;
	zero_range(pool, v, (uint64_t)off, head_end);
	zero_range(pool, v, tail_start, tail_end);
	if (a < b)
		vec_drop(pool, v, a, b - 1);
out:
	lk_wrunlock(&v->lock);
	return rc;
}

/* Give [off, off+len) sectors (sv_allocate) and, with `zero`, zero it
 * (sv_zero), in one step. */
static int vec_allocate(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len,
                        bool keep_size, bool zero)
{
	if (len <= 0)
		return -EINVAL;
	int rc = check_range(off, (uint64_t)len);
	if (rc != 0)
		return rc;
	uint64_t end = (uint64_t)off + (uint64_t)len;
	lk_wrlock(&v->lock);
	uint64_t size = sv_size(v), top = end > size ? end : size;
	uint64_t zero_to = zero ? (end < size ? end : size) : 0; /* past the size: zeros */
	/* Only bytes already inline (written data) stay inline: space given
	 * to an empty vector is an unwritten sector, which seeks as a hole
	 * until written, as a page tmpfs preallocated. */
	if (is_inline(v) && top <= inline_max(pool)) {
		rc = inline_reserve(pool, v, top);
		if (rc == 0 && (uint64_t)off < zero_to)
			memset((char *)v->root + off, 0, zero_to - (uint64_t)off);
	} else {
		rc = vec_fill_any(pool, v, (uint64_t)off, end, (uint64_t)off, end,
		                  zero ? FILL_ZERO : FILL_ALLOCATE);
		if (rc == 0)
			zero_range(pool, v, (uint64_t)off, zero_to);
	}
	if (rc == 0 && !keep_size && end > size)
		atomic_store_explicit(&v->size, end, memory_order_relaxed);
	lk_wrunlock(&v->lock);
	return rc;
}

int sv_allocate(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len,
                bool keep_size)
{
	return vec_allocate(pool, v, off, len, keep_size, false);
}

int sv_zero(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len, bool keep_size)
{
	return vec_allocate(pool, v, off, len, keep_size, true);
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

