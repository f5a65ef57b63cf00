/* SPDX-License-Identifier: MIT */
/* test_engine_stress.c - many threads on shared vectors at once.
 *
 * Each of T threads owns one partition of every vector and is the only one
 * that writes, punches or preallocates there, so it can check every read of
 * its partition against its own model while the others work on theirs.
 * All threads also resize the shared tail past the partitions, which nobody
 * writes: it must read as zero at every moment, however sizes race.  At the
 * end every partition equals its owner's model and the vectors and the pool
 * are consistent to the byte.  Runs clean under ThreadSanitizer.
 */
#include <errno.h>
#include <pthread.h>

#include "check.h"
#include "sectorfs/engine.h"

enum { T = 4, V = 3 };

static struct sp_pool *pool;
static struct sv_vector vecs[V];
static size_t S, R; /* sector size, partition size */
static int iters;

struct worker {
	int id;
	uint64_t seed;
	unsigned char *model[V]; /* this thread's partition of each vector */
	long ops, enospc;
};

static int all_zero(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static void check_partition(struct worker *w, int k, unsigned char *buf)
{
	int64_t base = (int64_t)(w->id * R);
	ssize_t n = sv_read(pool, &vecs[k], buf, R, base);
	CHECK(n >= 0 && (size_t)n <= R);
	memset(buf + n, 0, R - (size_t)n); /* past the size reads as zero */
	CHECK(memcmp(buf, w->model[k], R) == 0);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct rng r = {w->seed};
	unsigned char *buf = malloc(R + 4 * S), *src = malloc(R);
	const int64_t base = (int64_t)(w->id * R);
	const int64_t tail = (int64_t)(T * R);
	for (int i = 0; i < iters; i++, w->ops++) {
		int k = (int)rng_below(&r, V);
		struct sv_vector *v = &vecs[k];
		uint64_t off = rng_below(&r, R), len = rng_below(&r, R - off + 1);
		switch (rng_below(&r, 8)) {
		case 0:
		case 1: /* write */
			rng_fill(&r, src, len);
			ssize_t rc = sv_write(pool, v, src, len, base + (int64_t)off);
			if (rc == -ENOSPC) {
				w->enospc++;
				break;
			}
			CHECK_EQ(rc, (long long)len);
			memcpy(w->model[k] + off, src, len);
			break;
		case 2: /* punch */
			CHECK_EQ(sv_punch(pool, v, base + (int64_t)off, (int64_t)len), 0);
			memset(w->model[k] + off, 0, len);
			break;
		case 3: /* preallocate, never past our partition */
			if (len) {
				int a = sv_allocate(pool, v, base + (int64_t)off, (int64_t)len, true);
				CHECK(a == 0 || a == -ENOSPC);
			}
			break;
		case 4: { /* resize the shared tail; it must read as zero */
			int64_t size = tail + (int64_t)rng_below(&r, 4 * S);
			CHECK_EQ(sv_resize(pool, v, size), 0);
			ssize_t n = sv_read(pool, v, buf, 4 * S, tail);
			CHECK(n >= 0);
			CHECK(all_zero(buf, (size_t)n));
			break;
		}
		case 5: { /* zero-copy view of the partition */
			struct iovec iov[16];
			size_t bytes;
			sv_read_lock(v);
			int n = sv_view(pool, v, base + (int64_t)off, len, iov, 16, &bytes);
			CHECK(n >= 0);
			uint64_t pos = off;
			for (int j = 0; j < n; j++) {
				CHECK(memcmp(iov[j].iov_base, w->model[k] + pos, iov[j].iov_len) == 0);
				pos += iov[j].iov_len;
			}
			sv_read_unlock(v);
			break;
		}
		case 6: { /* seek from inside the partition */
			int64_t d = sv_seek(pool, v, base + (int64_t)off, true);
			CHECK(d == -ENXIO || d >= base + (int64_t)off);
			int64_t h = sv_seek(pool, v, base + (int64_t)off, false);
			CHECK(h == -ENXIO || h >= base + (int64_t)off);
			break;
		}
		default:
			check_partition(w, k, buf);
			break;
		}
	}
	free(buf), free(src);
	return NULL;
}

static void run(size_t sector, uint64_t seed)
{
	S = sector;
	R = 24 * S;
	/* A limit that the threads run into now and then. */
	struct sp_config cfg = {.sector_size = S, .limit = (uint64_t)(T * V) * R * 3 / 4};
	CHECK_EQ(sp_create(&cfg, &pool), 0);
	/* Large writes wake the pool's faulting-in thread: it takes and puts
	 * back free sectors while the workers allocate. */
	CHECK_EQ(sp_set_prefault(pool, true), 0);
	for (int k = 0; k < V; k++)
		sv_init(&vecs[k]);
	pthread_t th[T];
	struct worker ws[T];
	for (int t = 0; t < T; t++) {
		ws[t] = (struct worker){.id = t, .seed = seed * 31 + (uint64_t)t};
		for (int k = 0; k < V; k++)
			ws[t].model[k] = calloc(R, 1);
		CHECK_EQ(pthread_create(&th[t], NULL, work, &ws[t]), 0);
	}
	long ops = 0, enospc = 0;
	for (int t = 0; t < T; t++) {
		pthread_join(th[t], NULL);
		ops += ws[t].ops;
		enospc += ws[t].enospc;
	}
	/* Final state: each partition equals its owner's model, the tail is
	 * zero, and the accounts balance. */
	unsigned char *buf = malloc(R + 4 * S);
	uint64_t sectors = 0, small = 0;
	for (int k = 0; k < V; k++) {
		for (int t = 0; t < T; t++)
			check_partition(&ws[t], k, buf);
		ssize_t n = sv_read(pool, &vecs[k], buf, 4 * S, (int64_t)(T * R));
		CHECK(n >= 0 && all_zero(buf, (size_t)n));
		CHECK_CLEAN(sv_check, pool, &vecs[k], NULL, &sectors, &small);
	}
	struct sp_stats st;
	sp_get_stats(pool, &st);
	CHECK_EQ(st.sectors_in_use, sectors);
	CHECK_EQ(st.small_bytes, small);
	CHECK_EQ(st.bytes_reserved, sectors * S + small);
	CHECK(st.peak_reserved <= st.limit);
	for (int k = 0; k < V; k++)
		sv_clear(pool, &vecs[k]);
	sp_get_stats(pool, &st);
	CHECK_EQ(st.bytes_reserved, 0);
	CHECK_EQ(st.sectors_in_use, 0);
	sp_destroy(pool);
	for (int t = 0; t < T; t++)
		for (int k = 0; k < V; k++)
			free(ws[t].model[k]);
	free(buf);
	printf("S=%zu seed=%llu: %ld operations by %d threads, %ld ENOSPC, %llu KiB faulted in "
	       "ahead\n", S, (unsigned long long)seed, ops, T, enospc,
	       (unsigned long long)(st.warmed_bytes >> 10));
}

int main(int argc, char **argv)
{
	iters = test_quick(argc, argv) ? 300 : 8000;
	uint64_t fresh = test_seed(argc, argv);
	run(512, 1);
	run(4096, 2);
	run(512, fresh);
	run(4096, fresh + 1);
	return 0;
}
