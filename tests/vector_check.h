/* SPDX-License-Identifier: MIT */
/* vector_check.h - the engine tests' check of one vector against its pool. */
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

#endif
