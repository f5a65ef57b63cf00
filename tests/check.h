/* SPDX-License-Identifier: MIT */
/* check.h - the tests' assertions and helpers.
 *
 * A failed check prints where and what, then aborts, so ctest sees the test
 * fail and a core dump or sanitizer trace points at the line.
 */
#ifndef SECTORFS_TEST_CHECK_H
#define SECTORFS_TEST_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                       \
		}                                                                      \
	} while (0)

#define CHECK_EQ(a, b)                                                                 \
	do {                                                                           \
		long long a_ = (long long)(a), b_ = (long long)(b);                    \
		if (a_ != b_) {                                                        \
			fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", \
			        __FILE__, __LINE__, #a, #b, a_, b_);                   \
			abort();                                                       \
		}                                                                      \
	} while (0)

/* A checker that explains itself: `checker(args..., msg, sizeof msg)` must
 * return 0; otherwise its message is printed before the check fails. */
#define CHECK_CLEAN(checker, ...)                                                      \
	do {                                                                           \
		char msg_[512] = "";                                                   \
		int rc_ = checker(__VA_ARGS__, msg_, sizeof msg_);                      \
		if (rc_)                                                               \
			fprintf(stderr, "%s: %s\n", #checker, msg_);                   \
		CHECK_EQ(rc_, 0);                                                      \
	} while (0)

/* A small, fast, seedable generator (splitmix64): tests print their seeds so
 * any failure can be replayed exactly. */
struct rng {
	uint64_t s;
};
static inline uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}
/* n random bytes, 8 to a draw (a byte a draw is slow under TSan). */
static inline void rng_fill(struct rng *r, void *buf, size_t n)
{
	unsigned char *b = buf;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t x = rng_next(r);
		memcpy(b + i, &x, n - i < 8 ? n - i : 8);
	}
}

#include <time.h>
#include <unistd.h>

/* A fresh seed, from the clock and the pid. */
static inline uint64_t test_fresh_seed(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
}

/* The seed of a run: `--seed N` if given, else a fresh one; printed so
 * that a failure can be replayed. */
static inline uint64_t test_seed(int argc, char **argv)
{
	uint64_t seed = test_fresh_seed();
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
	printf("fresh seed: %llu (replay with --seed %llu)\n", (unsigned long long)seed,
	       (unsigned long long)seed);
	fflush(stdout);
	return seed;
}

/* True when the test was asked to run briefly (valgrind). */
static inline int test_quick(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--quick"))
			return 1;
	return 0;
}

#endif
