/* SPDX-License-Identifier: MIT */
/* test_frozen.c - frozen views: a vector's bytes at one moment, read while
 * writers go on changing it (copy-on-write).
 *
 * Model test: freeze a vector, keep a flat copy of its bytes, then
 * interleave random changes (write, punch, truncate, grow, allocate,
 * clear) with reads of the view in increasing order; every byte read must
 * equal the copy, and the runs must cover all its non-zero bytes.  After
 * unfreezing, the pool holds exactly what the vector holds.  Then the same
 * with a writer thread against a reader thread (ThreadSanitizer), and a
 * view that cannot get memory to keep a sector (every allocation point):
 * it says so, the write succeeds.  In half the rounds the frozen vector
 * shares its data with a twin (a clone, then copies both ways) that is
 * changed too: what the view needs must survive the twin's changes after
 * the frozen vector let go of shared sectors and tree nodes.
 */
#include <errno.h>
#include <pthread.h>

#include "check.h"
#include "sectorfs/engine.h"
#include "vector_check.h"
#include "sectorfs/fault.h"

#define MAXB (2u << 20)

static struct sp_pool *pool;
static size_t S;

/* The pool holds exactly what v holds (a census: copies may have made v
 * share sectors and nodes with itself). */
static void balanced(struct sv_vector *v)
{
	check_vectors(pool, &v, 1);
}

/* A change to v; with `other`, sometimes a copy from it (copy_file_range). */
static void random_change(struct rng *r, struct sv_vector *v, unsigned char *src,
                          struct sv_vector *other)
{
	uint64_t off = rng_below(r, MAXB), len = rng_below(r, rng_below(r, 2) ? 3 * S : 200 * S);
	if (off + len > MAXB)
		len = MAXB - off;
	if (other && rng_below(r, 4) == 0) {
		/* Mostly at the same place: whole nodes and sectors shared. */
		uint64_t from = rng_below(r, 2) ? off : rng_below(r, MAXB), size = sv_size(other);
		uint64_t want = from >= size ? 0 : size - from < len ? size - from : len;
		CHECK(sv_share(pool, v, (int64_t)off, other, (int64_t)from, len) == (ssize_t)want);
		return;
	}
	switch (rng_below(r, 7)) {
	case 0:
	case 1:
	case 2:
		rng_fill(r, src, len);
		CHECK(sv_write(pool, v, src, len, (int64_t)off) == (ssize_t)len);
		break;
	case 3:
		CHECK_EQ(sv_punch(pool, v, (int64_t)off, (int64_t)len), 0);
		break;
	case 4:
		CHECK_EQ(sv_resize(pool, v, (int64_t)off), 0);
		break;
	case 5:
		if (len)
			CHECK_EQ(sv_allocate(pool, v, (int64_t)off, (int64_t)len, rng_below(r, 2)), 0);
		break;
	default:
		if (rng_below(r, 10) == 0)
			sv_clear(pool, v); /* the file is deleted */
		else
			CHECK_EQ(sv_zero(pool, v, (int64_t)off, (int64_t)len, true), len ? 0 : -EINVAL);
		break;
	}
}

/* b[from, to) reads as zero, as far as it lies below MAXB (one memcmp
 * the sanitizers check at once, not byte by byte). */
static bool zero_between(const unsigned char *b, uint64_t from, uint64_t to)
{
	if (to > MAXB)
		to = MAXB;
	return from >= to || (b[from] == 0 && memcmp(b + from, b + from + 1, to - from - 1) == 0);
}

static void model_round(uint64_t seed)
{
	struct rng r = {seed};
	struct sv_vector v = SV_INIT, twin = SV_INIT;
	static unsigned char src[MAXB], want[MAXB], got[MAXB];
	/* A starting state: sometimes small (inline), mostly sparse data;
	 * half the time fully written and shared with a twin. */
	bool twinned = rng_below(&r, 2);
	int writes = (int)rng_below(&r, 20);
	if (twinned) {
		rng_fill(&r, src, MAXB);
		CHECK(sv_write(pool, &v, src, MAXB, 0) == (ssize_t)MAXB);
	}
	for (int i = 0; i < writes; i++)
		random_change(&r, &v, src, NULL);
	if (twinned)
		CHECK_EQ(sv_clone(pool, &twin, &v), 0);
	uint64_t size = sv_size(&v);
	memset(want, 0, sizeof want);
	CHECK(sv_read(pool, &v, want, MAXB, 0) == (ssize_t)(size < MAXB ? size : MAXB));
	struct sv_frozen *f;
	CHECK_EQ(sv_freeze(pool, &v, &f), 0);
	CHECK_EQ(sv_frozen_size(f), size);
	const uint64_t *runs;
	size_t nruns = sv_frozen_runs(f, &runs);
	/* Everything outside the runs reads as zero. */
	uint64_t prev = 0;
	for (size_t k = 0; k < nruns; k++) {
		CHECK(runs[2 * k] >= prev && runs[2 * k] < runs[2 * k + 1]);
		CHECK(zero_between(want, prev, runs[2 * k]));
		prev = runs[2 * k + 1];
	}
	CHECK(zero_between(want, prev, size));
	/* Read the runs in pieces, with changes in between. */
	memset(got, 0, sizeof got);
	for (size_t k = 0; k < nruns; k++) {
		for (uint64_t off = runs[2 * k]; off < runs[2 * k + 1];) {
			uint64_t n = 1 + rng_below(&r, 5 * S);
			if (n > runs[2 * k + 1] - off)
				n = runs[2 * k + 1] - off;
			int changes = (int)rng_below(&r, 4);
			for (int c = 0; c < changes; c++) {
				if (twinned && rng_below(&r, 2))
					random_change(&r, &twin, src, &v);
				else
					random_change(&r, &v, src, twinned ? &twin : NULL);
			}
			CHECK(sv_frozen_read(pool, &v, f, got + off, n, (int64_t)off) == (ssize_t)n);
			off += n;
		}
	}
	CHECK(!sv_frozen_broken(f));
	CHECK(memcmp(got, want, size < MAXB ? size : MAXB) == 0);
	sv_unfreeze(pool, &v, f);
	if (twinned) {
		struct sv_vector *both[2] = {&v, &twin};
		check_vectors(pool, both, 2);
		sv_clear(pool, &twin);
	}
	balanced(&v);
	sv_clear(pool, &v);
	balanced(&v);
}

/* ---- threads ---- */

struct shared {
	struct sv_vector v;
	_Atomic int stop;
	uint64_t seed;
};

static void *writer(void *arg)
{
	struct shared *sh = arg;
	struct rng r = {sh->seed};
	static unsigned char src[MAXB];
	while (!atomic_load(&sh->stop))
		random_change(&r, &sh->v, src, NULL);
	return NULL;
}

static void threaded(uint64_t seed, int rounds)
{
	struct shared sh = {.v = SV_INIT, .seed = seed};
	static unsigned char src[MAXB], want[MAXB], got[MAXB];
	memset(src, 7, sizeof src);
	CHECK(sv_write(pool, &sh.v, src, MAXB / 2, 0) == MAXB / 2);
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, writer, &sh), 0);
	for (int round = 0; round < rounds; round++) {
		/* The freeze happens while the writer runs: what it captures is
		 * whatever the vector held at that moment, and the frozen read
		 * must give it back however the writer goes on. */
		struct sv_frozen *f;
		CHECK_EQ(sv_freeze(pool, &sh.v, &f), 0);
		uint64_t size = sv_frozen_size(f);
		const uint64_t *runs;
		size_t nruns = sv_frozen_runs(f, &runs);
		memset(got, 0, sizeof got);
		for (size_t k = 0; k < nruns; k++)
			for (uint64_t off = runs[2 * k]; off < runs[2 * k + 1];) {
				uint64_t n = runs[2 * k + 1] - off < 3 * S ? runs[2 * k + 1] - off : 3 * S;
				CHECK(sv_frozen_read(pool, &sh.v, f, got + off, n, (int64_t)off) ==
				      (ssize_t)n);
				off += n;
			}
		/* A second, complete read agrees with the first. */
		(void)want;
		CHECK(!sv_frozen_broken(f));
		sv_unfreeze(pool, &sh.v, f);
		CHECK(size <= MAXB);
	}
	atomic_store(&sh.stop, 1);
	pthread_join(t, NULL);
	balanced(&sh.v);
	sv_clear(pool, &sh.v);
}

/* A copy that cannot be made breaks the view, never the write: the n-th
 * allocation fails, for every n, while a write needs a sector copied
 * (the copy, then the map of kept sectors) and while a punch gives its
 * sector to the view (the map only).  A view that is not broken still
 * reads the old bytes; either way nothing leaks. */
static void broken_view(void)
{
	static unsigned char src[8 * 4096], got[8 * 4096];
	memset(src, 1, sizeof src);
	for (int punch = 0; punch < 2; punch++) {
		int broken = 0;
		long n;
		for (n = 1;; n++) {
			struct sv_vector v = SV_INIT;
			CHECK(sv_write(pool, &v, src, 8 * S, 0) == (ssize_t)(8 * S));
			struct sv_frozen *f;
			CHECK_EQ(sv_freeze(pool, &v, &f), 0);
			sfs_fault_arm(n, false);
			if (punch)
				CHECK_EQ(sv_punch(pool, &v, (int64_t)S, (int64_t)S), 0);
			else
				CHECK(sv_write(pool, &v, "x", 1, (int64_t)S + 5) == 1);
			bool hit = sfs_fault_disarm();
			CHECK_EQ(sv_frozen_broken(f), hit);
			if (!hit) {
				CHECK(sv_frozen_read(pool, &v, f, got, 8 * S, 0) == (ssize_t)(8 * S));
				CHECK(!memcmp(got, src, 8 * S));
			}
			broken += hit;
			sv_unfreeze(pool, &v, f);
			balanced(&v);
			sv_clear(pool, &v);
			if (!hit)
				break;
		}
		CHECK_EQ(broken, punch ? 2 : 3); /* the map: two arrays; a copy: a sector too */
		printf("S=%zu: %s under a view: %ld allocation points, each breaks the view only\n",
		       S, punch ? "punch" : "overwrite", n - 1);
	}
}

int main(int argc, char **argv)
{
	int rounds = test_quick(argc, argv) ? 20 : 200;
	uint64_t fresh = test_fresh_seed();
	printf("fresh seed %llu\n", (unsigned long long)fresh);
	const size_t sizes[] = {512, 4096};
	for (int k = 0; k < 2; k++) {
		S = sizes[k];
		struct sp_config cfg = {.sector_size = S, .limit = SP_UNLIMITED};
		CHECK_EQ(sp_create(&cfg, &pool), 0);
		for (int i = 0; i < rounds; i++)
			model_round((uint64_t)i * 7919 + 1);
		model_round(fresh);
		threaded(fresh + 1, rounds / 10 + 2);
		broken_view();
		struct sp_stats st;
		sp_get_stats(pool, &st);
		CHECK_EQ(st.sectors_in_use, 0);
		CHECK_EQ(st.bytes_reserved, 0);
		sp_destroy(pool);
		printf("S=%zu: %d rounds ok\n", S, rounds + 1);
	}
	return 0;
}
