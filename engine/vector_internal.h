/* SPDX-License-Identifier: MIT */
/* vector_internal.h - what vector.c shares with frozen.c (internal). */
#ifndef SECTORFS_VECTOR_INTERNAL_H
#define SECTORFS_VECTOR_INTERNAL_H

#include "sectorfs/engine.h"

/* A sector that was allocated (fallocate) but never written carries this
 * tag in its leaf pointer: it reads as zero without being touched, and
 * seeks count it as a hole, as tmpfs does with pages it preallocated.  The
 * first write into it clears the tag. */
#define UNWRITTEN ((uintptr_t)1)

/* vector->flags */
#define SV_FROZEN 1u /* a frozen view exists (frozen.c's registry has it) */

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

/* vector.c: the slot of sector i (NULL: no leaf holds it), with the number
 * of indices from i that share it in *span; and seeking, lock held. */
void **vec_slot(struct sv_vector *v, uint64_t i, uint64_t *span);
int64_t vec_seek_locked(struct sp_pool *pool, struct sv_vector *v, int64_t off, bool data);

/* frozen.c: hooks for writers (vector write lock held).  frozen_find()
 * returns the frozen view of v, if any.  frozen_keep() is told that sector
 * i, whose slot holds `slot`, is about to change (give = false: keep a
 * copy) or to be freed (give = true: returns true if the view took the
 * sector itself, which the caller must then not free). */
struct sv_frozen *frozen_find(const struct sv_vector *v);
bool frozen_keep(struct sp_pool *pool, struct sv_frozen *f, uint64_t i, void *slot, bool give);

#endif
