/* SPDX-License-Identifier: MIT */
/* vector_internal.h - what vector.c shares with frozen.c, share.c and
 * vector_check.c (internal). */
#ifndef SECTORFS_VECTOR_INTERNAL_H
#define SECTORFS_VECTOR_INTERNAL_H

#include "sectorfs/engine.h"

/* A sector that was allocated (fallocate) but never written carries this
 * tag in its leaf pointer: it reads as zero without being touched, and
 * seeks count it as a hole, as tmpfs does with pages it preallocated.  The
 * first write into it clears the tag.  The tag belongs to the slot, not the
 * sector: two vectors sharing a sector may see it one tagged, one not. */
#define UNWRITTEN ((uintptr_t)1)

/* vector->flags */
#define SV_FROZEN 1u /* a frozen view exists (frozen.c's registry has it) */

#define FAN_SHIFT 6u
#define FAN 64u
#define MAX_HEIGHT 10u

struct node {
	void *slot[FAN];
};
_Static_assert(sizeof(struct node) == SP_NODE_SIZE, "a node fills a node slot");

static inline char *sec_of(const void *p)
{
	return (char *)((uintptr_t)p & ~UNWRITTEN);
}

static inline bool unwritten(const void *p)
{
	return (uintptr_t)p & UNWRITTEN;
}

static inline bool is_inline(const struct sv_vector *v)
{
	return sv_inline_bytes(v) != 0;
}

static inline unsigned sshift(const struct sp_pool *pool)
{
	return (unsigned)__builtin_ctzl(sp_sector_size(pool));
}

/* Sectors covered by a subtree of height h (h <= 10, so no overflow). */
static inline uint64_t cap(unsigned h)
{
	return UINT64_C(1) << (FAN_SHIFT * h);
}

/* Smallest height whose tree covers sector index i. */
static inline unsigned height_for(uint64_t i)
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

static inline uint64_t inline_max(const struct sp_pool *pool)
{
	size_t half = sp_sector_size(pool) / 2;
	return half < SP_SMALL_MAX ? half : SP_SMALL_MAX;
}

/* Make root an inline buffer of cap bytes (0: not inline any more). */
static inline void set_inline(struct sv_vector *v, void *root, size_t bytes)
{
	v->root = root;
	atomic_store_explicit(&v->inl_cap, (uint16_t)bytes, memory_order_relaxed);
}

/* ---- vector.c ---- */

/* Let go of an inline buffer of `bytes`: freed, and its reservation
 * released, unless others share it. */
void inline_put(struct sp_pool *pool, void *buf, size_t bytes);

/* Argument checks shared by every operation on a byte range: negative
 * numbers are EINVAL, a range past SV_MAX_SIZE EFBIG. */
int check_range(int64_t off, uint64_t len);

/* The slot of sector i (NULL: no leaf holds it), with the number of
 * indices from i that share it in *span; and seeking, lock held. */
void **vec_slot(struct sv_vector *v, uint64_t i, uint64_t *span);
int64_t vec_seek_locked(struct sp_pool *pool, struct sv_vector *v, int64_t off, bool data);

/* Move len bytes between buf and the vector at off (lock held; when
 * writing, every sector of the range exists and is the vector's own). */
void vec_copy(struct sp_pool *pool, struct sv_vector *v, char *buf, size_t len, uint64_t off,
              bool to_vector);

/* What a change needs: holes to fill and nodes to add in a range of
 * sectors, and the height after it (vec_plan); plus what the caller adds. */
struct plan {
	uint64_t holes;  /* sectors to allocate */
	uint64_t nodes;  /* nodes to allocate */
	unsigned height; /* height after the change */
};
void vec_plan(struct sv_vector *v, uint64_t first, uint64_t last, struct plan *pl);
/* Sectors of [first, last] that are shared, directly or under a shared
 * node; the nodes over the range that a change must copy (shared, or
 * under a shared one) are added to pl->nodes. */
uint64_t vec_count_shared(struct sp_pool *pool, struct sv_vector *v, uint64_t first, uint64_t last,
                          struct plan *pl);
/* The slot of sector i (NULL: no leaf holds it); *shared tells whether a
 * node on the way is shared (so the sector is, whatever its own count). */
void **vec_slot_path(struct sp_pool *pool, struct sv_vector *v, uint64_t i, bool *shared);
/* v->sectors += delta, and the pool told (sp_note_sectors). */
void vec_add_sectors(struct sp_pool *pool, struct sv_vector *v, int64_t delta);

/* Memory for a change, reserved and allocated before anything changes. */
struct stash {
	void **sectors;
	uint64_t nsectors, used_sectors;
	void **node_list;
	uint64_t nnodes, used_nodes;
	void *heap;           /* os_malloc'd arrays, if `small` does not fit */
	void *small[2 * FAN]; /* last: not cleared by stash_take */
};
/* Reserve and allocate n sectors and m nodes: 0, -ENOSPC or -ENOMEM; on
 * failure nothing is held. */
int stash_take(struct sp_pool *pool, uint64_t n, uint64_t m, bool zeroed, struct stash *st);
static inline void *stash_sector(struct stash *st)
{
	return st->sectors[st->used_sectors++];
}
static inline void *stash_node(struct stash *st)
{
	return st->node_list[st->used_nodes++];
}
/* Free and release what was not used. */
void stash_done(struct sp_pool *pool, struct stash *st);
/* Raise the tree to `height` (new levels from the stash). */
void tree_grow(struct sv_vector *v, unsigned height, struct stash *st);
/* Replace the shared node *ref by a copy of the vector's own from the
 * stash; its children gain the copy as an owner. */
void node_copy(struct sp_pool *pool, void **ref, struct stash *st);
/* The slot of sector i, with every node on the way made the vector's own
 * (shared ones copied; missing ones made from the stash if `create`, else
 * NULL), stopping (NULL) at a node that dropping [lo, hi] leaves alone: one
 * wholly inside it, or with no child in it (lo > hi: no drop).
 * path_plan() adds to pl->nodes the copies path_make will make, counting
 * no tree position twice across calls that share `seen` (room: MAX_HEIGHT
 * each). */
void **path_make(struct sp_pool *pool, struct sv_vector *v, uint64_t i, struct stash *st,
                 uint64_t lo, uint64_t hi, bool create);
void path_plan(struct sp_pool *pool, struct sv_vector *v, uint64_t i, uint64_t lo, uint64_t hi,
               uint64_t *seen, unsigned *nseen, struct plan *pl);
/* The slot array of the leaf holding sector i, creating missing nodes from
 * the stash and copying shared ones.  At height 0 it is the root itself
 * (one slot). */
void **leaf_make(struct sp_pool *pool, struct sv_vector *v, uint64_t i, struct stash *st);

/* Give the shared sector in *ref (sector i of v) up for the private copy
 * `fresh`, which gets the old bytes outside [keep_from, keep_to) (vector
 * offsets; an empty range: all of them), zeros if it was unwritten. */
void break_share(struct sp_pool *pool, struct sv_vector *v, struct sv_frozen *frozen, uint64_t i,
                 void **ref, char *fresh, uint64_t keep_from, uint64_t keep_to);

/* Emptying slots.  drop_slot() removes one owner of the sector in *ref
 * (sector i) and empties the slot; the sector is freed (in batches) when
 * that was its last owner, or given to a frozen view that needs it.
 * drop_end() frees the batch and settles the vector's count and the
 * pool's reservation. */
struct dropper {
	struct sp_pool *pool;
	struct sv_frozen *frozen; /* takes the sectors it still needs */
	uint64_t sectors;         /* slots emptied */
	uint64_t freed;           /* sectors whose last owner we were */
	uint64_t nodes;           /* nodes freed */
	unsigned n;
	void *batch[FAN];
};
void drop_slot(struct dropper *d, uint64_t i, void **ref);
void drop_end(struct sv_vector *v, struct dropper *d);
/* drop_slot() of every slot of the subtree *ref (height k >= 1, first
 * sector `base`), which is emptied: a shared one loses an owner, whole. */
void drop_subtree(struct dropper *d, void **ref, unsigned k, uint64_t base);

/* How vec_fill_any treats the range (see vector.c). */
enum fill { FILL_WRITE, FILL_ALLOCATE, FILL_ZERO };
int vec_fill_any(struct sp_pool *pool, struct sv_vector *v, uint64_t off, uint64_t end,
                 uint64_t keep_from, uint64_t keep_to, enum fill how);
/* Make [off, end) ready for a write of exactly those bytes: inline if they
 * fit, else sectors of the vector's own (vec_fill_any, FILL_WRITE). */
int vec_make_room(struct sp_pool *pool, struct sv_vector *v, uint64_t off, uint64_t end);

/* ---- frozen.c: hooks for writers (vector write lock held) ----
 * frozen_find() returns the frozen view of v, if any.  frozen_keep() is
 * told that sector i, whose slot holds `slot`, is about to change (give =
 * false: keep a copy) or to be freed (give = true: returns true if the
 * view took the sector itself, which the caller must then not free). */
struct sv_frozen *frozen_find(const struct sv_vector *v);
bool frozen_keep(struct sp_pool *pool, struct sv_frozen *f, uint64_t i, void *slot, bool give);

#endif
