/* SPDX-License-Identifier: MIT */
/* share.c - copies that share sectors: sv_share (copy_file_range) and
 * sv_clone (a whole vector, for cloning a tree).
 *
 * A copy here costs pointers, not bytes: the destination takes the
 * source's sectors, or whole subtrees of its tree, and the pool counts one
 * more owner for each (pool.c).  Nothing else changes for the source,
 * whose readers never notice.  From then on a shared node is never
 * changed: a change under one first copies it (vector.c, path_make), and
 * every change to a shared sector first gives the changing vector a copy
 * of its own (break_share), so copies diverge node by node and sector by
 * sector, and memory is spent only for what changes.
 *
 * sv_share() follows vector.c's four steps.  With both offsets the same
 * distance into a sector, the destination sectors that the range covers
 * whole are "middle" sectors: each takes the source's sector at the same
 * place, or, where the source has a hole or unwritten space, one shared
 * sector of zeros (copy_file_range makes data of them, as on tmpfs, so
 * SEEK_DATA and st_blocks agree with a copy; one zero sector serves a
 * whole call, 4 KiB however large the hole).  Where the middle covers a
 * whole subtree of the destination and the source has, at the same
 * place, a node of that level whose sectors are all written, the
 * destination takes that node itself: a copy of a whole file costs about
 * one owner count per 64^k sectors, not one per sector.  (Sharing a node
 * that holds holes would leave holes where a copy puts data.)  The partial
 * sectors at the edges are copied byte by byte, like a write -- but for a
 * last partial sector that ends both the source and, after the copy, the
 * destination (two vectors): past their sizes both read zeros, so that
 * sector is shared too.
 *
 * The walk over the destination's tree (share_walk) runs twice: a dry run
 * counts the nodes to make or copy, the edge sectors to fill or make
 * private, and the zero sector; all of it is reserved and taken before the
 * second run changes the first slot, so the call is all or nothing.  What
 * the destination had in the middle is dropped (a shared sector or subtree
 * loses an owner, a private one is freed).  Any other copy -- offsets
 * that do not line up, an inline source, less than a whole sector -- is a
 * plain copy, sector to sector without a buffer.  While a frozen view of
 * the destination exists (an image being saved), it takes sectors only,
 * so that the view can keep what each slot held.
 *
 * Both vectors are locked for the whole call, the source for reading and
 * the destination for writing, in address order so that two copies in
 * opposite directions cannot deadlock (one write lock when they are the
 * same vector).  Readers of the source go on meanwhile; the destination
 * changes at once for its readers, as a write does.
 *
 * sv_clone() shares the source's root, or its inline buffer: one owner
 * count, whatever the size (an inline buffer under SP_SHARED_SMALL_MIN
 * bytes, which has no owner count, is copied).
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

/* A subtree of height k >= 1 with every sector written: it can be shared
 * whole (a hole would have to become a sector of zeros). */
static bool subtree_full(const void *p, unsigned k)
{
	const struct node *n = p;
	for (unsigned c = 0; c < FAN; c++) {
		const void *kid = n->slot[c];
		if (!kid || (k == 1 ? unwritten(kid) : !subtree_full(kid, k - 1)))
			return false;
	}
	return true;
}

/* src's node of level k >= 1 whose first sector is i, if it has one. */
static void *node_at(struct sv_vector *src, uint64_t i, unsigned k)
{
	if (i & (cap(k) - 1) || src->height < k || i >= cap(src->height))
		return NULL;
	void *p = src->root;
	for (unsigned j = src->height; j > k && p; j--)
		p = ((struct node *)p)->slot[child(i, j)];
	return p;
}

/* One aligned copy (see the top of the file), walked over dst's tree
 * twice: a dry run that counts what it needs (st == NULL), then the run
 * that applies it from the stash. */
struct sharer {
	struct sp_pool *pool;
	struct sv_vector *dst, *src;
	uint64_t first, last; /* dst sectors the copy touches */
	uint64_t a, b;        /* the middle [a, b): shared whole */
	uint64_t sa;          /* src's sector for a */
	uint64_t doff, dend;  /* the copy's bytes in dst */
	struct sv_frozen *frozen;
	struct stash *st;     /* NULL: the dry run */
	struct dropper *d;
	uint64_t nodes, sectors; /* dry run: what the stash must hold */
	bool zero_needed;        /* dry run: a hole or unwritten sector in the middle */
	char *zero;              /* the one sector of zeros for them */
	uint64_t added;          /* edge sectors filled */
};

/* Slots [lo, hi] of one leaf (slots[j] is sector base + j; a height-0
 * tree's root is a leaf of one slot), dst's own leaf when applying; under
 * a shared node in the dry run if `inherited`. */
static void share_leaf(struct sharer *s, void **slots, uint64_t base, uint64_t lo, uint64_t hi,
                       bool inherited)
{
	const unsigned sh = sshift(s->pool);
	const uint64_t S = UINT64_C(1) << sh;
	for (uint64_t i = lo; i <= hi;) {
		if (i < s->a || i >= s->b) { /* an edge: filled or made ours, then copied */
			void *old = slots ? slots[i - base] : NULL;
			if (!s->st) {
				s->sectors += !old || inherited || sp_shared(s->pool, sec_of(old));
			} else if (!old) {
				if (s->frozen)
					frozen_keep(s->pool, s->frozen, i, NULL, false);
				slots[i - base] = stash_sector(s->st);
				s->added++;
			} else if (sp_shared(s->pool, sec_of(old))) {
				uint64_t s0 = i << sh, k0 = s->doff > s0 ? s->doff : s0;
				uint64_t k1 = s->dend < s0 + S ? s->dend : s0 + S;
				break_share(s->pool, s->dst, s->frozen, i, &slots[i - base],
				            stash_sector(s->st), k0, k1);
			}
			i++;
			continue;
		}
		/* A run of middle slots facing one source leaf (or hole). */
		uint64_t n = hi - i + 1, span;
		if (n > s->b - i)
			n = s->b - i;
		void **sref = vec_slot(s->src, s->sa + (i - s->a), &span);
		if (n > span)
			n = span;
		if (!s->st) {
			s->zero_needed |= count_zeros(s->src, s->sa + (i - s->a), n) != 0;
			i += n;
			continue;
		}
		void *val[FAN], *taken[FAN];
		size_t ntaken = 0;
		for (uint64_t j = 0; j < n; j++) {
			void *from = sref ? sref[j] : NULL;
			if (from && !unwritten(from))
				val[j] = taken[ntaken++] = sec_of(from);
			else if (s->zero)
				val[j] = taken[ntaken++] = s->zero;
			else
				val[j] = s->zero = stash_sector(s->st); /* zeroed by stash_take */
		}
		/* The new owners first: dropping the old ones cannot then free
		 * a sector a slot keeps (a copy of what it already held). */
		sp_share_many(s->pool, taken, ntaken);
		for (uint64_t j = 0; j < n; j++) {
			void **ref = &slots[i + j - base];
			if (*ref)
				drop_slot(s->d, i + j, ref);
			else if (s->frozen)
				frozen_keep(s->pool, s->frozen, i + j, NULL, false); /* it was a hole */
			*ref = val[j];
		}
		i += n;
	}
}

/* The subtree *ref of dst, height k, first sector `base`, which the copy
 * touches.  Where it lies wholly in the middle and the source has a full
 * node there, it becomes that node, shared; otherwise it is made dst's own
 * (created or copied) and walked down to the leaves. */
static void share_walk(struct sharer *s, void **ref, unsigned k, uint64_t base, bool inherited)
{
	const uint64_t end = base + (cap(k) - 1);
	const uint64_t lo = base > s->first ? base : s->first, hi = end < s->last ? end : s->last;
	if (k == 0) {
		share_leaf(s, ref, base, lo, hi, inherited);
		return;
	}
	if (s->a <= base && end < s->b && !s->frozen) {
		void *whole = node_at(s->src, s->sa + (base - s->a), k);
		if (whole && subtree_full(whole, k)) {
			if (s->st) {
				sp_share(s->pool, whole);
				if (*ref)
					drop_subtree(s->d, ref, k, base);
				*ref = whole;
			}
			return;
		}
	}
	void *none = NULL;
	struct node *n = *ref;
	if (!s->st) {
		bool copy = n && (inherited || sp_shared(s->pool, n));
		s->nodes += !n || copy;
		inherited = copy;
	} else {
		if (!n)
			*ref = stash_node(s->st);
		else if (sp_shared(s->pool, n))
			node_copy(s->pool, ref, s->st);
		n = *ref;
	}
	if (k == 1) {
		share_leaf(s, n ? n->slot : NULL, base, lo, hi, inherited);
		return;
	}
	const uint64_t span = cap(k - 1);
	for (uint64_t c = (lo - base) / span; c <= (hi - base) / span; c++)
		share_walk(s, n ? &n->slot[c] : &none, k - 1, base + c * span, inherited);
}

/* The dry run over dst as it will be once grown to `height`: the new
 * levels' first slots lead down to the old root, the others are empty. */
static void share_count(struct sharer *s, unsigned height)
{
	struct sv_vector *dst = s->dst;
	void *none = NULL;
	if (!dst->root) {
		share_walk(s, &none, height, 0, false);
		return;
	}
	if (s->first < cap(dst->height))
		share_walk(s, &dst->root, dst->height, 0, false);
	for (unsigned k = dst->height + 1; k <= height; k++) {
		const uint64_t span = cap(k - 1);
		if (s->last < span)
			break;
		uint64_t c0 = s->first / span > 1 ? s->first / span : 1;
		uint64_t c1 = s->last / span < FAN - 1 ? s->last / span : FAN - 1;
		for (uint64_t c = c0; c <= c1; c++)
			share_walk(s, &none, k - 1, c * span, false);
	}
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
	struct sharer s = {
	        .pool = pool,
	        .dst = dst,
	        .src = src,
	        .first = doff >> sh,
	        .last = (dend - 1) >> sh,
	        .a = a,
	        .b = b,
	        .sa = (soff + S - 1) >> sh, /* the middle's source */
	        .doff = doff,
	        .dend = dend,
	        .frozen = frozen_find(dst),
	};
	if (tail)
		s.last = b - 1; /* the partial last sector is shared, not an edge */

	/* Inline bytes all lie in sector 0, which the middle replaces. */
	char *ibuf = is_inline(dst) ? dst->root : NULL;
	size_t ibytes = sv_inline_bytes(dst);
	if (ibuf)
		set_inline(dst, NULL, 0);

	unsigned height = height_for(s.last);
	if (height < dst->height)
		height = dst->height;
	uint64_t chain = dst->root ? height - dst->height : 0; /* new levels on top */
	share_count(&s, height);
	struct stash st;
	int rc = stash_take(pool, s.sectors + s.zero_needed, s.nodes + chain, true, &st);
	if (rc != 0) {
		if (ibuf)
			set_inline(dst, ibuf, ibytes);
		return rc;
	}
	/* Nothing can fail from here on. */
	if (ibuf)
		inline_put(pool, ibuf, ibytes);
	tree_grow(dst, height, &st);
	struct dropper d = {.pool = pool, .frozen = s.frozen};
	s.st = &st;
	s.d = &d;
	share_walk(&s, &dst->root, dst->height, 0, false);
	drop_end(dst, &d);
	vec_add_sectors(pool, dst, (int64_t)(s.added + (b - a)));
	copy_bytes(pool, dst, doff, src, soff, (a << sh) - doff);
	if (!tail)
		copy_bytes(pool, dst, b << sh, src, soff + ((b << sh) - doff), dend - (b << sh));
	if (dend > sv_size(dst))
		atomic_store_explicit(&dst->size, dend, memory_order_relaxed);
	assert(st.used_nodes <= st.nnodes && st.used_sectors <= st.nsectors);
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

int sv_clone(struct sp_pool *pool, struct sv_vector *dst, struct sv_vector *src)
{
	if (dst == src)
		return -EINVAL;
	lock_pair(dst, src);
	int rc = 0;
	if (sv_size(dst) || dst->root) {
		rc = -EINVAL; /* not empty */
	} else if (sv_inline_bytes(src) >= SP_SHARED_SMALL_MIN) {
		sp_share(pool, src->root);
		set_inline(dst, src->root, sv_inline_bytes(src));
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
		/* The root, shared: a node or, at height 0, sector 0 (the
		 * slot keeps its unwritten tag). */
		sp_share(pool, sec_of(src->root));
		dst->root = src->root;
		dst->height = src->height;
		vec_add_sectors(pool, dst, (int64_t)sv_sectors(src));
	}
	if (rc == 0)
		atomic_store_explicit(&dst->size, sv_size(src), memory_order_relaxed);
	unlock_pair(dst, src);
	return rc;
}
