/* SPDX-License-Identifier: MIT */
/* vector_check.h - the engine tests' checks of vectors against their pool. */
#ifndef SECTORFS_TEST_VECTOR_CHECK_H
#define SECTORFS_TEST_VECTOR_CHECK_H

#include "check.h"
#include "sectorfs/engine.h"

/* The vector is internally consistent (sv_check) and the pool holds
 * exactly what it does: its sectors in use, its reservation (sectors and
 * small objects), and with `small_too` no small objects but its own. */
static inline void check_vector(struct sp_pool *pool, struct sv_vector *v, int small_too)
{
	uint64_t sectors = 0, small = 0;
	CHECK_CLEAN(sv_check, pool, v, NULL, &sectors, &small);
	struct sp_stats st;
	sp_get_stats(pool, &st);
	CHECK_EQ(st.bytes_reserved, sectors * sp_sector_size(pool) + small);
	CHECK_EQ(st.sectors_in_use, sectors);
	if (small_too)
		CHECK_EQ(st.small_bytes, small);
}

/* Vectors of one pool that may share sectors: each consistent, the census
 * of their shared sectors right, and the pool holding exactly what they
 * hold together (each shared sector once). */
static inline void check_vectors(struct sp_pool *pool, struct sv_vector *const *v, int n)
{
	uint64_t sectors = 0, small = 0;
	struct sv_census *census;
	CHECK_EQ(sv_census_new(&census), 0);
	for (int i = 0; i < n; i++)
		CHECK_CLEAN(sv_check, pool, v[i], census, &sectors, &small);
	CHECK_CLEAN(sv_census_end, pool, census, &sectors, &small);
	struct sp_stats st;
	sp_get_stats(pool, &st);
	CHECK_EQ(st.bytes_reserved, sectors * sp_sector_size(pool) + small);
	CHECK_EQ(st.sectors_in_use, sectors);
	CHECK_EQ(st.small_bytes, small);
}

#endif
