/* SPDX-License-Identifier: MIT */
/* test_map.c - the sparse map against a model, with exact reservations and
 * every allocation failure of every insert. */
#include <errno.h>

#include "check.h"
#include "sectorfs/engine.h"
#include "sectorfs/fault.h"

#define KEYS 4096

static struct sp_pool *pool;

static void balanced(const struct sm_map *m)
{
	struct sp_stats st;
	sp_get_stats(pool, &st);
	CHECK_EQ(st.bytes_reserved, sm_nodes(m) * SP_NODE_SIZE);
	CHECK_EQ(st.small_bytes, sm_nodes(m) * SP_NODE_SIZE);
}

/* Keys drawn from a few ranges: dense small ones, a sparse middle, and the
 * very top of the key space. */
static uint64_t key_of(unsigned i)
{
	if (i < KEYS / 2)
		return i;
	if (i < KEYS - 16)
		return (uint64_t)i * 1000003u;
	return UINT64_MAX - (KEYS - 1 - i) * 77;
}

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	struct sp_config cfg = {.sector_size = 4096, .limit = SP_UNLIMITED};
	CHECK_EQ(sp_create(&cfg, &pool), 0);
	static char present[KEYS];
	struct sm_map m = SM_INIT;
	struct rng r = {42};
	uint64_t found;
	CHECK(sm_next(&m, 0, &found) == NULL);
	CHECK(sm_get(&m, 5) == NULL);
	CHECK(sm_remove(pool, &m, 5) == NULL);
	CHECK_EQ(sm_insert(pool, &m, 5, NULL), -EINVAL);
	for (int step = 0; step < 40000; step++) {
		unsigned i = (unsigned)rng_below(&r, KEYS);
		uint64_t k = key_of(i);
		void *val = (void *)(uintptr_t)(i * 8 + 8);
		if (!present[i]) {
			/* Inserts fail cleanly at every allocation point. */
			if (step % 7 == 0) {
				for (long n = 1;; n++) {
					sfs_fault_arm(n, false);
					int rc = sm_insert(pool, &m, k, val);
					bool hit = sfs_fault_disarm();
					if (rc == 0)
						break;
					CHECK_EQ(rc, -ENOMEM);
					CHECK(hit);
					CHECK(sm_get(&m, k) == NULL);
					balanced(&m);
				}
			} else {
				CHECK_EQ(sm_insert(pool, &m, k, val), 0);
			}
			present[i] = 1;
			CHECK_EQ(sm_insert(pool, &m, k, val), -EEXIST);
		} else {
			CHECK(sm_remove(pool, &m, k) == val);
			present[i] = 0;
			CHECK(sm_get(&m, k) == NULL);
		}
		/* next() from a random key agrees with the model. */
		unsigned j = (unsigned)rng_below(&r, KEYS);
		uint64_t from = key_of(j) - (rng_below(&r, 2) && key_of(j) ? 1 : 0);
		uint64_t want = 0;
		bool any = false;
		for (unsigned q = 0; q < KEYS; q++)
			if (present[q] && key_of(q) >= from && (!any || key_of(q) < want)) {
				want = key_of(q);
				any = true;
			}
		void *got = sm_next(&m, from, &found);
		CHECK_EQ(got != NULL, any);
		if (any)
			CHECK_EQ(found, want);
		if (step % 1000 == 0)
			balanced(&m);
	}
	uint64_t count = 0;
	for (unsigned q = 0; q < KEYS; q++)
		count += (unsigned)present[q];
	CHECK_EQ(m.count, count);
	balanced(&m);
	/* The limit: an insert that needs nodes fails with ENOSPC, unchanged. */
	sm_clear(pool, &m);
	balanced(&m);
	CHECK_EQ(sp_set_limit(pool, SP_NODE_SIZE), 0);
	CHECK_EQ(sm_insert(pool, &m, 5, (void *)8), 0); /* one node */
	CHECK_EQ(sm_insert(pool, &m, 1u << 20, (void *)8), -ENOSPC);
	CHECK(sm_get(&m, 1u << 20) == NULL);
	balanced(&m);
	sm_clear(pool, &m);
	CHECK_EQ(sp_set_limit(pool, SP_UNLIMITED), 0);
	balanced(&m);
	sp_destroy(pool);
	printf("ok\n");
	return 0;
}
