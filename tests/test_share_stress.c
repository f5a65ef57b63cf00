/* SPDX-License-Identifier: MIT */
/* test_share_stress.c - threads writing on both sides of shared sectors.
 *
 * Two template vectors hold the same bytes P (data, holes and unwritten
 * space in the first leaf of sectors, then two leaves wholly written, whose
 * tree nodes copies share whole).  Each of W worker threads owns a vector and a model of it, and
 * fills it from the templates (sv_share of random ranges, often aligned so
 * that sectors are shared; sv_clone) and from itself, while it also
 * writes, punches, zeroes and truncates it -- so every worker's sectors are
 * shared with the templates and with the other workers, and each change
 * breaks shares (and copies shared tree nodes) that other threads are
 * breaking, copying or dropping at the same moment.  A keeper thread rewrites the templates with their own bytes,
 * which breaks their shares (and can leave a worker the last owner of a
 * sector it is about to copy), and a reader checks that the templates
 * always read as P, never half broken.  Workers also copy from each other
 * into a scratch vector (contents unknown, then dropped), so that sharing
 * from a vector races its writer.  Every read a worker makes of its own
 * vector must equal its model; at the end the vectors, the census of
 * shared sectors and the pool's counters must agree to the sector.
 * Bounded by counts of operations; clean under ThreadSanitizer.
 */
#include <errno.h>
#include <pthread.h>

#include "check.h"
#include "sectorfs/engine.h"
#include "vector_check.h"

enum { W = 3 };

static struct sp_pool *pool;
static struct sv_vector tpl[2], mine[W], scratch[W];
static unsigned char *P;   /* the templates' bytes */
static size_t S, PLEN, MAX; /* sector size, template size, a worker's room */
static int iters;
static _Atomic bool done;

struct worker {
	int id;
	uint64_t seed;
	unsigned char *model;
	uint64_t size;
	long ops, enospc, shares;
};

static uint64_t pick(struct rng *r, uint64_t below)
{
	return rng_below(r, below);
}

static void verify(struct worker *w, unsigned char *buf, uint64_t off, uint64_t len)
{
	ssize_t n = sv_read(pool, &mine[w->id], buf, len, (int64_t)off);
	uint64_t want = off < w->size ? (w->size - off < len ? w->size - off : len) : 0;
	CHECK_EQ(n, (long long)want);
	CHECK(memcmp(buf, w->model + off, want) == 0);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct rng r = {w->seed};
	struct sv_vector *v = &mine[w->id];
	unsigned char *buf = malloc(MAX), *src = malloc(MAX);
	for (int i = 0; i < iters; i++, w->ops++) {
		uint64_t off = pick(&r, MAX), len = pick(&r, MAX - off + 1);
		if (pick(&r, 2))
			len = len < 8 * S ? len : pick(&r, 8 * S);
		int rc = 0;
		switch (pick(&r, 10)) {
		case 0: { /* write */
			for (uint64_t j = 0; j < len; j++)
				src[j] = (unsigned char)rng_next(&r);
			ssize_t n = sv_write(pool, v, src, len, (int64_t)off);
			rc = n < 0 ? (int)n : 0;
			if (rc == 0) {
				memcpy(w->model + off, src, len);
				if (len && off + len > w->size)
					w->size = off + len;
			}
			break;
		}
		case 1: /* punch */
			rc = sv_punch(pool, v, (int64_t)off, (int64_t)len);
			if (rc == 0 && off < w->size)
				memset(w->model + off, 0, (off + len < w->size ? off + len : w->size) - off);
			break;
		case 2: /* truncate */
			rc = sv_resize(pool, v, (int64_t)off);
			if (rc == 0) {
				if (off < w->size)
					memset(w->model + off, 0, w->size - off);
				w->size = off;
			}
			break;
		case 3: /* zero */
			if (!len)
				break;
			rc = sv_zero(pool, v, (int64_t)off, (int64_t)len, true);
			if (rc == 0 && off < w->size)
				memset(w->model + off, 0, (off + len < w->size ? off + len : w->size) - off);
			break;
		case 4:
		case 5: { /* copy from a template, often aligned, often in place */
			uint64_t soff = pick(&r, PLEN);
			if (pick(&r, 4))
				soff = soff / S * S + off % S;
			if (pick(&r, 3) == 0)
				soff = off; /* whole leaves shared */
			if (soff > PLEN)
				soff = PLEN;
			uint64_t n = len < PLEN - soff ? len : PLEN - soff;
			ssize_t got = sv_share(pool, v, (int64_t)off, &tpl[pick(&r, 2)], (int64_t)soff, len);
			rc = got < 0 ? (int)got : 0;
			if (rc == 0) {
				CHECK_EQ(got, (long long)n);
				memcpy(w->model + off, P + soff, n);
				if (n && off + n > w->size)
					w->size = off + n;
				w->shares++;
			}
			break;
		}
		case 6: { /* copy within itself, ranges apart */
			uint64_t soff = pick(&r, w->size + 1);
			if (pick(&r, 2))
				soff = soff / S * S + off % S;
			if (soff > w->size)
				soff = w->size;
			uint64_t n = len < w->size - soff ? len : w->size - soff;
			ssize_t got = sv_share(pool, v, (int64_t)off, v, (int64_t)soff, len);
			if (n && off < soff + n && soff < off + n) {
				CHECK_EQ(got, -EINVAL);
				break;
			}
			rc = got < 0 ? (int)got : 0;
			if (rc == 0) {
				CHECK_EQ(got, (long long)n);
				memmove(w->model + off, w->model + soff, n);
				if (n && off + n > w->size)
					w->size = off + n;
			}
			break;
		}
		case 7: /* clone a template over it */
			sv_clear(pool, v);
			memset(w->model, 0, MAX);
			w->size = 0;
			rc = sv_clone(pool, v, &tpl[pick(&r, 2)]);
			if (rc == 0) {
				memcpy(w->model, P, PLEN);
				w->size = PLEN;
			}
			break;
		case 8: { /* share from another worker's vector, whatever it holds */
			int u = (int)pick(&r, W);
			ssize_t got = sv_share(pool, &scratch[w->id], (int64_t)(off % S), &mine[u],
			                       (int64_t)(off % S), len);
			CHECK(got >= 0 || got == -ENOSPC || (u == w->id && got == -EINVAL));
			sv_clear(pool, &scratch[w->id]);
			break;
		}
		default:
			verify(w, buf, off, len);
			break;
		}
		if (rc == -ENOSPC)
			w->enospc++;
		else
			CHECK_EQ(rc, 0);
		if (pick(&r, 16) == 0)
			verify(w, buf, 0, MAX);
	}
	free(buf), free(src);
	return NULL;
}

/* Rewrites the templates with their own bytes: their shares break while
 * the workers share from them, break and drop the same sectors. */
static void *keep(void *arg)
{
	struct rng r = {*(uint64_t *)arg};
	while (!atomic_load(&done)) {
		uint64_t off = rng_below(&r, PLEN), len = rng_below(&r, PLEN - off + 1);
		ssize_t n = sv_write(pool, &tpl[rng_below(&r, 2)], P + off, len, (int64_t)off);
		CHECK(n == (ssize_t)len || n == -ENOSPC);
	}
	return NULL;
}

/* The templates read as P at every moment. */
static void *read_templates(void *arg)
{
	(void)arg;
	unsigned char *buf = malloc(PLEN);
	for (int k = 0; !atomic_load(&done); k++) {
		CHECK_EQ(sv_read(pool, &tpl[k & 1], buf, PLEN, 0), (long long)PLEN);
		CHECK(memcmp(buf, P, PLEN) == 0);
	}
	free(buf);
	return NULL;
}

static void run(size_t sector, uint64_t seed)
{
	S = sector;
	PLEN = 200 * S + 123;
	MAX = 256 * S;
	/* Room for everything, and now and then not quite. */
	struct sp_config cfg = {.sector_size = S, .limit = 3 * MAX + 64 * SP_NODE_SIZE};
	CHECK_EQ(sp_create(&cfg, &pool), 0);
	P = calloc(PLEN, 1);
	struct rng r = {seed};
	/* Below sector 40: sectors 3, 10, 17, ... a hole (not written), 5,
	 * 16, 27 unwritten. */
	for (size_t i = 0; i < PLEN; i++) {
		bool gap = i / S < 40 && (i / S % 7 == 3 || i / S % 11 == 5);
		P[i] = gap ? 0 : (unsigned char)rng_next(&r);
	}
	sv_init(&tpl[0]);
	for (size_t i = 0; i < PLEN; i += S) {
		size_t n = PLEN - i < S ? PLEN - i : S;
		if (i / S < 40 && (i / S) % 7 == 3)
			continue;
		if (i / S < 40 && (i / S) % 11 == 5)
			CHECK_EQ(sv_allocate(pool, &tpl[0], (int64_t)i, (int64_t)n, false), 0);
		else
			CHECK_EQ(sv_write(pool, &tpl[0], P + i, n, (int64_t)i), (long long)n);
	}
	CHECK_EQ(sv_resize(pool, &tpl[0], (int64_t)PLEN), 0);
	sv_init(&tpl[1]);
	CHECK_EQ(sv_clone(pool, &tpl[1], &tpl[0]), 0);
	atomic_store(&done, false);
	pthread_t th[W], keeper, reader;
	struct worker ws[W];
	/* Every vector is made before any worker starts: a worker copies from
	 * the others' vectors from its first step on. */
	for (int t = 0; t < W; t++) {
		sv_init(&mine[t]);
		sv_init(&scratch[t]);
	}
	for (int t = 0; t < W; t++) {
		ws[t] = (struct worker){.id = t, .seed = seed * 31 + (uint64_t)t};
		ws[t].model = calloc(MAX, 1);
		CHECK_EQ(pthread_create(&th[t], NULL, work, &ws[t]), 0);
	}
	uint64_t kseed = seed ^ 0x5eed;
	CHECK_EQ(pthread_create(&keeper, NULL, keep, &kseed), 0);
	CHECK_EQ(pthread_create(&reader, NULL, read_templates, NULL), 0);
	long ops = 0, enospc = 0, shares = 0;
	for (int t = 0; t < W; t++) {
		pthread_join(th[t], NULL);
		ops += ws[t].ops, enospc += ws[t].enospc, shares += ws[t].shares;
	}
	atomic_store(&done, true);
	pthread_join(keeper, NULL);
	pthread_join(reader, NULL);

	unsigned char *buf = malloc(MAX);
	for (int t = 0; t < W; t++)
		verify(&ws[t], buf, 0, MAX);
	struct sv_vector *all[2 + 2 * W] = {&tpl[0], &tpl[1]};
	for (int t = 0; t < W; t++)
		all[2 + t] = &mine[t], all[2 + W + t] = &scratch[t];
	check_vectors(pool, all, 2 + 2 * W);
	struct sp_stats st;
	sp_get_stats(pool, &st);
	CHECK(st.peak_reserved <= st.limit);
	uint64_t saved_then = st.sectors_saved;
	for (int k = 0; k < 2 + 2 * W; k++)
		sv_clear(pool, all[k]);
	sp_get_stats(pool, &st);
	CHECK_EQ(st.bytes_reserved, 0);
	CHECK_EQ(st.sectors_in_use, 0);
	CHECK_EQ(st.sectors_saved, 0);
	sp_destroy(pool);
	for (int t = 0; t < W; t++)
		free(ws[t].model);
	free(buf);
	free(P);
	printf("S=%zu seed=%llu: %ld operations by %d workers, %ld copies from templates, "
	       "%ld ENOSPC, %llu sectors saved by sharing at the end\n",
	       S, (unsigned long long)seed, ops, W, shares, enospc, (unsigned long long)saved_then);
}

int main(int argc, char **argv)
{
	iters = test_quick(argc, argv) ? 300 : 3000;
	uint64_t fresh = test_seed(argc, argv);
	run(512, 1);
	run(4096, 2);
	run(512, fresh);
	run(4096, fresh + 1);
	return 0;
}
