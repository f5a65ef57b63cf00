/* SPDX-License-Identifier: MIT */
/* bench_engine.c - the sector engine's figures, each a ratio measured in
 * the same run (timings on shared machines are noisy; ratios are not).
 *
 *   build/bench_engine            full run (~1-2 minutes, needs ~5 GiB RAM)
 *   build/bench_engine --quick    smaller sizes
 *
 * 1. vector write/read in 4 KiB and 1 MiB chunks vs memcpy of the same;
 * 2. sector alloc+free vs glibc malloc+free of the same size, 1/2/4 threads;
 * 3. RSS / data after 1 GiB in one vector;
 * 4. RSS per vector for 100,000 vectors of 100 bytes;
 * 5. RSS after 4 GiB written into vectors and all freed, and after freeing
 *    every other vector of many (fragmentation);
 * 6. the sector-size sweep behind the default.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "sectorfs/engine.h"

static int quick;

static double now(void)
{
	return (double)os_monotonic_ns() / 1e9;
}

static double mib(uint64_t b)
{
	return (double)b / 1048576.0;
}

static struct sp_pool *make(size_t S)
{
	struct sp_config cfg = {.sector_size = S, .limit = SP_UNLIMITED};
	struct sp_pool *p;
	if (sp_create(&cfg, &p) != 0) {
		fprintf(stderr, "sp_create failed\n");
		exit(1);
	}
	return p;
}

/* ---- 1. copy speed ---- */

struct speed {
	double write, read; /* GB/s */
};

/* Write then read `total` bytes through a vector in `chunk` pieces, best of
 * `rounds`; the first round also allocates, later rounds overwrite. */
static struct speed vector_speed(size_t S, size_t chunk, size_t total, int rounds)
{
	struct sp_pool *p = make(S);
	struct sv_vector v = SV_INIT;
	char *buf = malloc(chunk);
	memset(buf, 7, chunk);
	struct speed best = {0, 0};
	for (int r = 0; r < rounds; r++) {
		double t0 = now();
		for (size_t off = 0; off < total; off += chunk)
			sv_write(p, &v, buf, chunk, (int64_t)off);
		double t1 = now();
		for (size_t off = 0; off < total; off += chunk)
			sv_read(p, &v, buf, chunk, (int64_t)off);
		double t2 = now();
		if (r == 0)
			continue; /* warm-up: page faults of fresh memory */
		double w = (double)total / (t1 - t0) / 1e9, rd = (double)total / (t2 - t1) / 1e9;
		if (w > best.write)
			best.write = w;
		if (rd > best.read)
			best.read = rd;
	}
	sv_clear(p, &v);
	sp_destroy(p);
	free(buf);
	return best;
}

static struct speed memcpy_speed(size_t chunk, size_t total, int rounds)
{
	char *flat = malloc(total), *buf = malloc(chunk);
	memset(flat, 1, total);
	memset(buf, 7, chunk);
	struct speed best = {0, 0};
	for (int r = 0; r < rounds; r++) {
		double t0 = now();
		for (size_t off = 0; off < total; off += chunk)
			memcpy(flat + off, buf, chunk);
		double t1 = now();
		for (size_t off = 0; off < total; off += chunk)
			memcpy(buf, flat + off, chunk);
		double t2 = now();
		__asm__ __volatile__("" : : "r"(flat), "r"(buf) : "memory");
		if (r == 0)
			continue;
		double w = (double)total / (t1 - t0) / 1e9, rd = (double)total / (t2 - t1) / 1e9;
		if (w > best.write)
			best.write = w;
		if (rd > best.read)
			best.read = rd;
	}
	free(flat), free(buf);
	return best;
}

/* ---- 2. alloc/free throughput ---- */

struct af_arg {
	struct sp_pool *p; /* NULL: malloc */
	size_t S;
	long iters;
	double secs;
};

static void *af_worker(void *a)
{
	struct af_arg *x = a;
	enum { BATCH = 64 };
	void *held[BATCH];
	double t0 = now();
	for (long i = 0; i < x->iters; i++) {
		/* Allocate a batch one by one, touch, free one by one: the
		 * pattern of files growing and being deleted. */
		for (int j = 0; j < BATCH; j++) {
			if (x->p)
				sp_alloc_sectors(x->p, 1, &held[j], false);
			else
				held[j] = malloc(x->S);
			*(volatile char *)held[j] = 1;
		}
		for (int j = 0; j < BATCH; j++) {
			if (x->p)
				sp_free_sectors(x->p, 1, &held[j]);
			else
				free(held[j]);
		}
	}
	x->secs = now() - t0;
	return NULL;
}

/* Million alloc+free pairs per second over all threads. */
static double alloc_free_rate(struct sp_pool *p, size_t S, int threads, long iters)
{
	pthread_t th[8];
	struct af_arg a[8];
	for (int i = 0; i < threads; i++) {
		a[i] = (struct af_arg){.p = p, .S = S, .iters = iters};
		pthread_create(&th[i], NULL, af_worker, &a[i]);
	}
	double worst = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		if (a[i].secs > worst)
			worst = a[i].secs;
	}
	return (double)threads * (double)iters * 64 / worst / 1e6;
}

/* ---- 3-5. memory ---- */

static uint64_t rss(void)
{
	return os_rss();
}

static void report_one_vector(size_t S, uint64_t total)
{
	struct sp_pool *p = make(S);
	struct sv_vector v = SV_INIT;
	size_t chunk = 1 << 20;
	char *buf = malloc(chunk);
	memset(buf, 3, chunk);
	uint64_t base = rss();
	for (uint64_t off = 0; off < total; off += chunk)
		sv_write(p, &v, buf, chunk, (int64_t)off);
	uint64_t full = rss();
	sv_clear(p, &v);
	uint64_t after = rss();
	struct sp_stats st;
	sp_get_stats(p, &st);
	printf("  S=%-6zu %5.0f MiB in one vector: RSS/data %.4f; after freeing it: baseline %+.1f MiB\n", S,
	       mib(total), (double)(full - base) / (double)total, mib(after) - mib(base));
	sp_destroy(p);
	free(buf);
}

static void report_small_vectors(size_t S, int n)
{
	struct sp_pool *p = make(S);
	uint64_t base = rss();
	struct sv_vector *v = malloc((size_t)n * sizeof(*v));
	char data[100];
	memset(data, 5, sizeof data);
	for (int i = 0; i < n; i++) {
		sv_init(&v[i]);
		sv_write(p, &v[i], data, sizeof data, 0);
	}
	uint64_t full = rss();
	for (int i = 0; i < n; i++)
		sv_clear(p, &v[i]);
	free(v);
	uint64_t after = rss();
	printf("  S=%-6zu %d vectors of 100 bytes: %.0f bytes per vector (sector and vector included);"
	       " after freeing: baseline %+.1f MiB\n",
	       S, n, (double)(full - base) / n, mib(after) - mib(base));
	sp_destroy(p);
}

/* Many files written, then every other freed, then the rest. */
static void report_churn(size_t S, uint64_t total, size_t file)
{
	struct sp_pool *p = make(S);
	size_t n = (size_t)(total / file);
	struct sv_vector *v = calloc(n, sizeof(*v));
	char *buf = malloc(file);
	memset(buf, 9, file);
	uint64_t base = rss();
	double t0 = now();
	for (size_t i = 0; i < n; i++)
		sv_write(p, &v[i], buf, file, 0);
	double t1 = now();
	uint64_t full = rss();
	for (size_t i = 0; i < n; i += 2)
		sv_clear(p, &v[i]);
	uint64_t half = rss();
	for (size_t i = 1; i < n; i += 2)
		sv_clear(p, &v[i]);
	double t2 = now();
	uint64_t after = rss();
	printf("  S=%-6zu %.0f MiB in %zu vectors of %zu KiB (%.1f GB/s): RSS %+.0f MiB; every other "
	       "freed: %+.0f MiB (%.3f of the live data); all freed: %+.1f MiB (%.1f s to free)\n",
	       S, mib(total), n, file >> 10, (double)total / (t1 - t0) / 1e9, mib(full) - mib(base),
	       mib(half) - mib(base), (double)(half - base) / (double)(total / 2),
	       mib(after) - mib(base), t2 - t1);
	sp_destroy(p);
	free(v), free(buf);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		quick |= !strcmp(argv[i], "--quick");
	const size_t S = SP_SECTOR_DEFAULT;
	const size_t total = quick ? (64u << 20) : (512u << 20);
	const int rounds = quick ? 3 : 5;

	printf("1. copy speed, vector vs memcpy (GB/s, best of %d; S=%zu)\n", rounds - 1, S);
	const size_t chunks[] = {4096, 1 << 20};
	for (int c = 0; c < 2; c++) {
		struct speed m = memcpy_speed(chunks[c], total, rounds);
		struct speed v = vector_speed(S, chunks[c], total, rounds);
		printf("  %4zu KiB chunks: write %5.2f vs %5.2f = %.2f   read %5.2f vs %5.2f = %.2f\n",
		       chunks[c] >> 10, v.write, m.write, v.write / m.write, v.read, m.read,
		       v.read / m.read);
	}

	printf("2. alloc+free, sectors vs malloc (million pairs/s)\n");
	const long iters = quick ? 20000 : 200000;
	const size_t asz[] = {4096, 65536};
	for (int k = 0; k < 2; k++) {
		for (int t = 1; t <= 4; t *= 2) {
			struct sp_pool *p = make(asz[k]);
			double ours = alloc_free_rate(p, asz[k], t, iters);
			sp_destroy(p);
			double theirs = alloc_free_rate(NULL, asz[k], t, iters);
			printf("  %5zu B, %d thread%s: %7.1f vs %7.1f = %.2fx\n", asz[k], t, t > 1 ? "s" : " ",
			       ours, theirs, ours / theirs);
		}
	}

	printf("3. memory of one large vector\n");
	report_one_vector(S, quick ? (256u << 20) : (1u << 30));

	printf("4. memory of small vectors\n");
	report_small_vectors(512, 100000);
	report_small_vectors(S, 100000);

	printf("5. memory given back (fragmentation: every other vector freed first)\n");
	report_churn(S, quick ? (512u << 20) : ((uint64_t)4 << 30), 1 << 20);
	report_churn(S, quick ? (256u << 20) : ((uint64_t)1 << 30), 64 << 10);
	report_churn(512, quick ? (64u << 20) : (256u << 20), 4 << 10);

	printf("6. sector size sweep (1 MiB chunks, GB/s; 4 KiB random writes, Mops/s)\n");
	for (size_t s = SP_SECTOR_MIN; s <= SP_SECTOR_MAX; s *= 4) {
		struct speed big = vector_speed(s, 1 << 20, total / 2, rounds);
		struct speed small = vector_speed(s, 4096, total / 4, rounds);
		printf("  S=%-6zu 1 MiB: write %5.2f read %5.2f   4 KiB: write %5.2f read %5.2f\n", s,
		       big.write, big.read, small.write, small.read);
	}
	return 0;
}
