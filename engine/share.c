/* SPDX-License-Identifier: MIT */
/* share.c - copies that share sectors: sv_share (copy_file_range) and
 * sv_clone (a whole vector, for cloning a tree).
 *
 * A copy here costs pointers, not bytes: the destination's slots take the
 * source's sectors, and the pool counts one more owner for each (pool.c).
 * Nothing else changes for the source, whose readers never notice.  From
 * then on every change to a shared sector first gives the changing vector
 * a copy of its own (vector.c, break_share), so copies diverge sector by
 * sector, and memory is spent only for what changes.
 *
 * sv_share() follows vector.c's four steps.  With both offsets the same
 * distance into a sector, the destination sectors that the range covers
 * whole are "middle" sectors: each takes the source's sector at the same
 * place, or, where the source has a hole or unwritten space, one shared
 * sector of zeros (copy_file_range makes data of them, as on tmpfs, so
 * SEEK_DATA and st_blocks agree with a copy; one zero sector serves a
 * whole call, 4 KiB however large the hole).  The partial sectors at the
 * edges are copied byte by byte, like a write -- but for a last partial
 * sector that ends both the source and, after the copy, the destination
 * (two vectors): past their sizes both read zeros, so that sector is
 * shared too (a copy or a clone of a whole file shares every sector).  The plan counts the
 * destination's missing nodes over the range, the edge sectors to fill or
 * to make private, and the zero sector; all of it is reserved and taken
 * before the first slot changes, so the call is all or nothing.  Middle
 * slots the destination had are dropped (drop_slot: a shared one loses an
 * owner, a private one is freed).  Any other copy -- offsets that do not
 * line up, an inline source, less than a whole sector -- is a plain copy,
 * sector to sector without a buffer.
 *
 * Both vectors are locked for the whole call, the source for reading and
 * the destination for writing, in address order so that two copies in
 * opposite directions cannot deadlock (one write lock when they are the
 * same vector).  Readers of the source go on meanwhile; the destination
 * changes at once for its readers, as a write does.
 *
 * sv_clone() copies the source's tree node for node (the nodes are the
 * clone's only cost) and shares every sector, unwritten ones with their
 * tag; inline bytes, at most 2 KiB, are copied.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "os.h"
#include "vector_internal.h"

/* ---- locking two vectors ---- */

static void lock_pair(struct sv_vector *dst, struct sv_vector *src)
{
	if (dst == src) {
		lk_wrlock(&dst->lock);
	} else if ((uintptr_t)dst < (uintptr_t)src) {
		lk_wrlock(&dst->lock);
		lk_rdlock(&src->lock);
	} else {
		lk_rdlock(&src->lock);
		lk_wrlock(&dst->lock);
	}
}

static void unlock_pair(struct sv_vector *dst, struct sv_vector *src)
{
	if (dst != src)
		lk_rdunlock(&src->lock);
	lk_wrunlock(&dst->lock);
}

/* ---- copying bytes ---- */

/* Copy n bytes of src at soff into dst at doff, whose range is ready for a
 * write (vec_make_room or an edge of share_aligned); locks held. */
static void copy_bytes(struct sp_pool *pool, struct sv_vector *dst, uint64_t doff,
                       struct sv_vector *src, uint64_t soff, uint64_t n)
{
	if (n == 0)
		return;
	if (is_inline(src)) {
		vec_copy(pool, dst, (char *)src->root + soff, (size_t)n, doff, true);
		return;
	}
	const unsigned sh = sshift(pool);
	const uint64_t S = UINT64_C(1) << sh;
	size_t zlen;
	const char *zeros = sp_zero_area(pool, &zlen);
	while (n) {
		uint64_t in = soff & (S - 1), k = S - in < n ? S - in : n, span;
		void **ref = vec_slot(src, soff >> sh, &span);
		const char *from = ref && *ref && !unwritten(*ref) ? sec_of(*ref) + in : zeros;
		/* vec_copy only reads the buffer when it writes the vector. */
		vec_copy(pool, dst, (char *)from, (size_t)k, doff, true);
		soff += k, doff += k, n -= k;
	}
}

/* Any copy, byte by byte: all or nothing. */
static int copy_plain(struct sp_pool *pool, struct sv_vector *dst, uint64_t doff,
                      struct sv_vector *src, uint64_t soff, uint64_t len)
{
	uint64_t end = doff + len;
	int rc = vec_make_room(pool, dst, doff, end);
	if (rc != 0)
		return rc;
	copy_bytes(pool, dst, doff, src, soff, len);
	if (end > sv_size(dst))
		atomic_store_explicit(&dst->size, end, memory_order_relaxed);
	return 0;
}

/* ---- sharing a range ---- */

/* The slot of sector i of dst, made (with its leaf) from the stash. */
static void **slot_make(struct sv_vector *dst, uint64_t i, struct stash *st)
{
	void **leaf = leaf_make(dst, i, st);
	return dst->height == 0 ? leaf : &leaf[i & (FAN - 1)];
}

/* Source slots of [first, first + n) that are holes or unwritten. */
static uint64_t count_zeros(struct sv_vector *src, uint64_t first, uint64_t n)
{
	uint64_t zeros = 0;
	for (uint64_t i = first; i < first + n;) {
		uint64_t span;
		void **ref = vec_slot(src, i, &span);
		if (span > first + n - i)
			span = first + n - i;
		for (uint64_t j = 0; j < span; j++)
			zeros += !ref || !ref[j] || unwritten(ref[j]);
		i += span;
	}
	return zeros;
}

/* The middle [a, b) of dst takes the sectors of src from sa on, a leaf
 * (or a missing subtree of src) at a time: one walk down each tree and
 * one settling of the pool's counters per 64 sectors.  `zero` is the
 * stash's zero sector (NULL if none is needed). */
static uint64_t share_middle(struct sp_pool *pool, struct sv_vector *dst, uint64_t a, uint64_t b,
                             struct sv_vector *src, uint64_t sa, struct stash *st,
                             struct sv_frozen *frozen, struct dropper *d)
{
	char *zero = NULL;
	for (uint64_t i = a; i < b;) {
		void **ref = slot_make(dst, i, st);
		uint64_t n = dst->height == 0 ? 1 : FAN - (i & (FAN - 1)), span;
		void **sref = vec_slot(src, sa + (i - a), &span);
		if (n > span)
			n = span;
		if (n > b - i)
			n = b - i;
		void *val[FAN], *taken[FAN];
		size_t ntaken = 0;
		for (uint64_t j = 0; j < n; j++) {
			void *from = sref ? sref[j] : NULL;
			if (from && !unwritten(from))
				val[j] = taken[ntaken++] = sec_of(from);
			else if (zero)
				val[j] = taken[ntaken++] = zero;
			else
				val[j] = zero = stash_sector(st); /* zeroed by stash_take */
		}
		/* The new owners first: dropping the old ones cannot then free
		 * a sector a slot keeps (a copy of what it already held). */
		sp_share_many(pool, taken, ntaken);
		for (uint64_t j = 0; j < n; j++) {
			if (ref[j])
				drop_slot(d, i + j, &ref[j]);
			else if (frozen)
				frozen_keep(pool, frozen, i + j, NULL, false); /* it was a hole */
			ref[j] = val[j];
		}
		i += n;
	}
	return b - a;
}

/* The aligned copy (see the top of the file) of sectors [a, b) whole, a
 * last one included if `tail`; locks held, dst not inline unless its
 * sector 0 is in the middle. */
static int share_aligned(struct sp_pool *pool, struct sv_vector *dst, uint64_t doff,
                         struct sv_vector *src, uint64_t soff, uint64_t len, uint64_t a,
                         uint64_t b, bool tail)
{
	const unsigned sh = sshift(pool);
	const uint64_t S = UINT64_C(1) << sh, dend = doff + len;
	const uint64_t sa = (soff + S - 1) >> sh;                /* their source */
	const uint64_t first = doff >> sh, last = (dend - 1) >> sh;

	/* Inline bytes all lie in sector 0, which the middle replaces. */
	char *ibuf = is_inline(dst) ? dst->root : NULL;
	size_t ibytes = sv_inline_bytes(dst);
	if (ibuf)
		set_inline(dst, NULL, 0);

	struct plan pl;
	vec_plan(dst, first, last, &pl);
	uint64_t edge[2];
	int nedges = 0;
	if (doff & (S - 1))
		edge[nedges++] = first;
	if ((dend & (S - 1)) && !tail)
		edge[nedges++] = last;
	uint64_t need = count_zeros(src, sa, b - a) ? 1 : 0;
	for (int k = 0; k < nedges; k++) {
		uint64_t span;
		void **ref = vec_slot(dst, edge[k], &span);
		need += !ref || !*ref || sp_shared(pool, sec_of(*ref));
	}
	struct stash st;
	int rc = stash_take(pool, need, pl.nodes, true, &st);
	if (rc != 0) {
		if (ibuf)
			set_inline(dst, ibuf, ibytes);
		return rc;
	}
	/* Nothing can fail from here on. */
	if (ibuf) {
		sp_free_small(pool, ibuf);
		sp_release(pool, ibytes);
	}
	tree_grow(dst, pl.height, &st);
	struct sv_frozen *frozen = frozen_find(dst);
	uint64_t added = 0;
	for (int k = 0; k < nedges; k++) {
		void **ref = slot_make(dst, edge[k], &st);
		uint64_t s0 = edge[k] << sh, k0 = doff > s0 ? doff : s0;
		uint64_t k1 = dend < s0 + S ? dend : s0 + S;
		if (!*ref) {
			if (frozen)
				frozen_keep(pool, frozen, edge[k], NULL, false);
			*ref = stash_sector(&st);
			added++;
		} else if (sp_shared(pool, sec_of(*ref))) {
			break_share(pool, dst, frozen, edge[k], ref, stash_sector(&st), k0, k1);
		}
	}
	struct dropper d = {.pool = pool, .frozen = frozen};
	added += share_middle(pool, dst, a, b, src, sa, &st, frozen, &d);
	drop_end(dst, &d);
	atomic_store_explicit(&dst->sectors, sv_sectors(dst) + added, memory_order_relaxed);
	copy_bytes(pool, dst, doff, src, soff, (a << sh) - doff);
	if (!tail)
		copy_bytes(pool, dst, b << sh, src, soff + ((b << sh) - doff), dend - (b << sh));
	if (dend > sv_size(dst))
		atomic_store_explicit(&dst->size, dend, memory_order_relaxed);
	assert(st.used_nodes == st.nnodes);
	stash_done(pool, &st);
	return 0;
}

ssize_t sv_share(struct sp_pool *pool, struct sv_vector *dst, int64_t dst_off,
                 struct sv_vector *src, int64_t src_off, uint64_t len)
{
	if (src_off < 0 || dst_off < 0)
		return -EINVAL;
	const uint64_t S = sp_sector_size(pool);
	uint64_t doff = (uint64_t)dst_off, soff = (uint64_t)src_off;
	lock_pair(dst, src);
	uint64_t size = sv_size(src);
	len = soff >= size ? 0 : size - soff < len ? size - soff : len;
	int rc = check_range(dst_off, len);
	if (rc != 0) {
		/* past the largest size */
	} else if (dst == src && len && doff < soff + len && soff < doff + len) {
		rc = -EINVAL; /* overlapping ranges of one vector */
	} else if (len) {
		uint64_t dend = doff + len, a = (doff + S - 1) / S, b = dend / S;
		bool same = (doff & (S - 1)) == (soff & (S - 1));
		/* A partial last sector that ends both files is shared too --
		 * not within one vector, where the rest of that sector may be
		 * the destination's first, partial sector, written after. */
		bool tail = same && dst != src && (dend & (S - 1)) && soff + len == size &&
		            sv_size(dst) <= dend;
		b += tail;
		bool aligned = same && !is_inline(src) && a < b && (!is_inline(dst) || a == 0);
		rc = aligned ? share_aligned(pool, dst, doff, src, soff, len, a, b, tail)
		             : copy_plain(pool, dst, doff, src, soff, len);
	}
	unlock_pair(dst, src);
	return rc != 0 ? rc : (ssize_t)len;
}

/* ---- cloning a whole vector ---- */

static uint64_t count_nodes(const void *p, unsigned k)
{
	if (k == 0 || !p)
		return 0;
	const struct node *n = p;
	uint64_t c = 1;
	for (unsigned i = 0; i < FAN; i++)
		c += count_nodes(n->slot[i], k - 1);
	return c;
}

static void *copy_tree(struct sp_pool *pool, void *p, unsigned k, struct stash *st)
{
	if (k == 0) {
		sp_share(pool, sec_of(p)); /* the slot keeps its unwritten tag */
		return p;
	}
	struct node *n = p, *m = stash_node(st);
	for (unsigned i = 0; i < FAN; i++)
		if (n->slot[i])
			m->slot[i] = copy_tree(pool, n->slot[i], k - 1, st);
	return m;
}

int sv_clone(struct sp_pool *pool, struct sv_vector *dst, struct sv_vector *src)
{
	if (dst == src)
		return -EINVAL;
	lock_pair(dst, src);
	int rc = 0;
	if (sv_size(dst) || dst->root) {
		rc = -EINVAL; /* not empty */
	} else if (is_inline(src)) {
		size_t bytes = sv_inline_bytes(src);
		rc = sp_reserve(pool, bytes);
		char *buf = rc == 0 ? sp_alloc_small(pool, bytes, false) : NULL;
		if (rc == 0 && !buf) {
			sp_release(pool, bytes);
			rc = -ENOMEM;
		}
		if (buf) {
			memcpy(buf, src->root, bytes);
			set_inline(dst, buf, bytes);
		}
	} else if (src->root) {
		struct stash st;
		uint64_t nodes = count_nodes(src->root, src->height);
		rc = nodes ? stash_take(pool, 0, nodes, false, &st) : 0;
		if (rc == 0) {
			dst->root = copy_tree(pool, src->root, src->height, &st);
			dst->height = src->height;
			atomic_store_explicit(&dst->sectors, sv_sectors(src), memory_order_relaxed);
			if (nodes) {
				assert(st.used_nodes == st.nnodes);
				stash_done(pool, &st);
			}
		}
	}
	if (rc == 0)
		atomic_store_explicit(&dst->size, sv_size(src), memory_order_relaxed);
	unlock_pair(dst, src);
	return rc;
}
