/* SPDX-License-Identifier: MIT */
/* test_pool.c - the sector pool: allocation, zeroing, memory given back,
 * and a limit that concurrent reservations can never overshoot.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#include "check.h"
#include "os.h"
#include "sectorfs/engine.h"
#include "sectorfs/fault.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

static int quick;
#ifdef SANITIZED
static const bool sanitized = true;
#else
static const bool sanitized = false;
#endif

static struct sp_pool *make(size_t S, uint64_t limit)
{
	struct sp_config cfg = {.sector_size = S, .limit = limit};
	struct sp_pool *p;
	CHECK_EQ(sp_create(&cfg, &p), 0);
	return p;
}

/* The first byte is zero and each byte equals the next: one memcmp,
 * which the sanitizers check in one go rather than byte by byte. */
static int all_zero(const char *b, size_t n)
{
	return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Sectors are distinct, aligned, writable; counters follow. */
static void test_basic(size_t S)
{
	struct sp_pool *p = make(S, SP_UNLIMITED);
	const int N = S > 8192 ? (int)((8u << 20) / S) : 1000; /* at most 8 MiB */
	void **v = malloc((size_t)N * sizeof(void *));
	CHECK_EQ(sp_alloc_sectors(p, N, v, true), 0);
	for (int i = 0; i < N; i++) {
		CHECK(((uintptr_t)v[i] & (S - 1)) == 0);
		CHECK(all_zero(v[i], S));
		memset(v[i], i & 0xff, S);
	}
	for (int i = 0; i < N; i++)
		CHECK(((unsigned char *)v[i])[S - 1] == (i & 0xff));
	struct sp_stats st;
	sp_get_stats(p, &st);
	CHECK_EQ(st.sectors_in_use, N);
	CHECK_EQ(st.sector_size, S);
	CHECK(st.bytes_mapped >= (uint64_t)N * S);
	/* Freed dirty sectors come back zeroed when asked. */
	sp_free_sectors(p, N, v);
	CHECK_EQ(sp_alloc_sectors(p, N, v, true), 0);
	for (int i = 0; i < N; i++)
		CHECK(all_zero(v[i], S));
	sp_free_sectors(p, N, v);
	/* Small objects of every class: rounded sizes, zeroed on request,
	 * counted, and poisoned after free under ASan. */
	for (size_t sz = 1; sz <= SP_SMALL_MAX; sz = sz * 2 + 1) {
		void *o = sp_alloc_small(p, sz, true);
		size_t cls = sp_small_size(sz);
		CHECK(o && cls >= sz && cls >= SP_SMALL_MIN && (cls & (cls - 1)) == 0);
		CHECK(((uintptr_t)o & (cls - 1)) == 0);
		CHECK(all_zero(o, cls));
		memset(o, 0xee, cls);
		sp_get_stats(p, &st);
		CHECK_EQ(st.small_objects, 1);
		CHECK_EQ(st.small_bytes, cls);
		sp_free_small(p, o);
	}
	CHECK(sp_alloc_small(p, 0, false) == NULL);
	CHECK(sp_alloc_small(p, SP_SMALL_MAX + 1, false) == NULL);
	CHECK_EQ(sp_small_size(SP_SMALL_MAX + 1), 0);
	sp_get_stats(p, &st);
	CHECK_EQ(st.sectors_in_use, 0);
	CHECK_EQ(st.small_objects, 0);
	sp_destroy(p);
	free(v);
}

/* Owners: sp_share_many() adds one per entry (a sector listed twice gets
 * two), the counters follow, and only the last sp_unshare() says so. */
static void test_owners(size_t S)
{
	struct sp_pool *p = make(S, SP_UNLIMITED);
	void *v[3];
	CHECK_EQ(sp_alloc_sectors(p, 3, v, false), 0);
	void *list[4] = {v[0], v[1], v[0], v[0]};
	sp_share_many(p, list, 0);
	sp_share_many(p, list, 4);
	sp_share(p, v[1]);
	CHECK_EQ(sp_owners(p, v[0]), 4);
	CHECK_EQ(sp_owners(p, v[1]), 3);
	CHECK_EQ(sp_owners(p, v[2]), 1);
	CHECK(sp_shared(p, v[0]) && sp_shared(p, v[1]) && !sp_shared(p, v[2]));
	for (int k = 0; k < 3; k++)
		CHECK(!sp_unshare(p, v[0]));
	CHECK(!sp_unshare(p, v[1]));
	CHECK_EQ(sp_owners(p, v[0]), 1);
	CHECK_EQ(sp_owners(p, v[1]), 2);
	CHECK(!sp_unshare(p, v[1]));
	for (int k = 0; k < 3; k++)
		CHECK(sp_unshare(p, v[k])); /* the last owner of each */
	sp_free_sectors(p, 3, v);
	/* Tree nodes have owners too; other small objects do not. */
	void *node = sp_alloc_small(p, SP_NODE_SIZE, true);
	CHECK(node != NULL);
	CHECK_EQ(sp_owners(p, node), 1);
	sp_share(p, node);
	CHECK(sp_shared(p, node));
	CHECK(!sp_unshare(p, node));
	CHECK(sp_unshare(p, node));
	sp_free_small(p, node);
	/* What sharing saves: referenced minus held. */
	struct sp_stats st;
	sp_note_sectors(p, 10, 4);
	sp_get_stats(p, &st);
	CHECK_EQ(st.sectors_saved, 6);
	sp_note_sectors(p, -10, -4);
	sp_get_stats(p, &st);
	CHECK_EQ(st.sectors_saved, 0);
	sp_destroy(p);
}

/* Memory goes back to the kernel as it is freed, without sp_trim, and at
 * page granularity: freeing every other sector of many returns half. */
static void test_give_back(size_t S)
{
	struct sp_pool *p = make(S, SP_UNLIMITED);
	size_t bytes = (quick || sanitized ? 16u : 64u) << 20;
	size_t n = bytes / S;
	void **v = malloc(n * sizeof(void *));
	uint64_t rss0 = os_rss();
	CHECK_EQ(sp_alloc_sectors(p, n, v, false), 0);
	for (size_t i = 0; i < n; i++)
		memset(v[i], 1, S);
	struct sp_stats st;
	sp_get_stats(p, &st);
	CHECK(st.bytes_mapped >= bytes);
	/* Every other one. */
	for (size_t i = 0; i < n; i += 2)
		sp_free_sectors(p, 1, &v[i]);
	sp_get_stats(p, &st);
	uint64_t live = (n / 2) * S;
	if (S >= os_page_size())
		CHECK(st.bytes_mapped <= live + (12u << 20));
	else
		CHECK(st.bytes_mapped >= bytes / 2); /* pages still half used */
	/* The rest. */
	for (size_t i = 1; i < n; i += 2)
		sp_free_sectors(p, 1, &v[i]);
	sp_get_stats(p, &st);
	CHECK_EQ(st.sectors_in_use, 0);
	CHECK(st.bytes_mapped < (12u << 20));
	CHECK(st.purged_bytes >= bytes - (12u << 20));
#ifndef SANITIZED
	uint64_t rss1 = os_rss();
	printf("  S=%zu: %zu MiB written and freed, RSS %+.1f MiB, pool still maps %.1f MiB\n", S,
	       bytes >> 20, ((double)rss1 - (double)rss0) / 1048576.0,
	       (double)st.bytes_mapped / 1048576.0);
	CHECK(rss1 < rss0 + (16u << 20));
#else
	(void)rss0;
#endif
	/* Purged memory reads as zero and is handed out as such. */
	sp_trim(p);
	sp_get_stats(p, &st);
	CHECK(st.bytes_mapped <= st.regions * 65536);
	CHECK_EQ(sp_alloc_sectors(p, n, v, true), 0);
	for (size_t i = 0; i < n; i += 97)
		CHECK(all_zero(v[i], S));
	sp_free_sectors(p, n, v);
	sp_destroy(p);
	free(v);
}

/* Small objects go back to the kernel page by page too. */
static void test_small_give_back(void)
{
	struct sp_pool *p = make(4096, SP_UNLIMITED);
	size_t n = (quick ? 16u : 32u) << 20 >> 7;
	void **v = malloc(n * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		v[i] = sp_alloc_small(p, 100, false);
		CHECK(v[i]);
		memset(v[i], 1, 128);
	}
	struct sp_stats st;
	sp_get_stats(p, &st);
	CHECK(st.bytes_mapped >= n * 128);
	for (size_t i = 0; i < n; i++)
		sp_free_small(p, v[i]);
	sp_get_stats(p, &st);
	CHECK_EQ(st.small_objects, 0);
	CHECK(st.bytes_mapped < (2u << 20));
	sp_destroy(p);
	free(v);
}

/* A purge the kernel refuses (injected at the fault point, as munlock
 * fails in noswap mode when the kernel cannot split the mapping) leaves
 * the memory as it was: it still holds the freed bytes, so it must be
 * zeroed when handed out as zeroed, never trusted to read as zero.  The
 * next trim the kernel accepts gives it back. */
static void test_purge_refused(size_t S, bool locked)
{
	struct sp_config cfg = {.sector_size = S, .limit = SP_UNLIMITED, .locked = locked};
	struct sp_pool *p;
	CHECK_EQ(sp_create(&cfg, &p), 0);
	size_t n = (2u << 20) / S, m = 512;
	void **v = malloc(n * sizeof(void *)), **o = malloc(m * sizeof(void *));
	int rc = sp_alloc_sectors(p, n, v, false);
	if (rc == -ENOMEM && locked) {
		/* Locking a region needs CAP_IPC_LOCK or RLIMIT_MEMLOCK. */
		printf("  purge refused, noswap: skipped (this process may not lock memory)\n");
		sp_destroy(p);
		free(v);
		free(o);
		return;
	}
	CHECK_EQ(rc, 0);
	sp_free_sectors(p, n, v);
	for (int round = 0; round < 2; round++) {
		CHECK_EQ(sp_alloc_sectors(p, n, v, false), 0);
		for (size_t i = 0; i < n; i++)
			memset(v[i], 0xa5, S);
		for (size_t i = 0; i < m; i++) {
			o[i] = sp_alloc_small(p, 200, false);
			CHECK(o[i]);
			memset(o[i], 0x5a, 200);
		}
		sp_free_sectors(p, n, v);
		for (size_t i = 0; i < m; i++)
			sp_free_small(p, o[i]);
		struct sp_stats before, after;
		sp_get_stats(p, &before);
		sfs_fault_arm(1, true); /* every purge fails, nothing else runs */
		sp_trim(p);
		CHECK(sfs_fault_disarm());
		sp_get_stats(p, &after);
		CHECK_EQ(after.purged_bytes, before.purged_bytes);
		CHECK_EQ(after.bytes_mapped, before.bytes_mapped);
		/* Asked for zeros, they get zeros, not the old bytes. */
		CHECK_EQ(sp_alloc_sectors(p, n, v, true), 0);
		for (size_t i = 0; i < n; i++)
			CHECK(all_zero(v[i], S));
		for (size_t i = 0; i < m; i++) {
			o[i] = sp_alloc_small(p, 200, true);
			CHECK(o[i] && all_zero(o[i], 200));
		}
		sp_free_sectors(p, n, v);
		for (size_t i = 0; i < m; i++)
			sp_free_small(p, o[i]);
		/* Now the kernel takes it all; except locked memory under the
		 * sanitizers, whose munlock does nothing, so that every purge
		 * is refused as above (madvise: EINVAL). */
		sp_trim(p);
		sp_get_stats(p, &after);
		if (!locked || !sanitized) {
			CHECK(after.purged_bytes >= before.purged_bytes + n * S);
			CHECK(after.bytes_mapped <= after.regions * 65536);
		}
	}
	sp_destroy(p);
	free(v);
	free(o);
}

/* ---- the limit under concurrency ---- */

struct limit_arg {
	struct sp_pool *p;
	_Atomic int *stop;
	uint64_t seed;
	long granted, refused;
};

static void *reserver(void *a)
{
	struct limit_arg *la = a;
	struct rng r = {la->seed};
	uint64_t held[16];
	int n = 0;
	for (int i = 0; i < 50000; i++) {
		if (n < 16 && rng_below(&r, 2)) {
			uint64_t want = 1 + rng_below(&r, 100000);
			if (sp_reserve(la->p, want) == 0) {
				held[n++] = want;
				la->granted++;
			} else {
				la->refused++;
			}
		} else if (n > 0) {
			sp_release(la->p, held[--n]);
		}
	}
	while (n > 0)
		sp_release(la->p, held[--n]);
	return NULL;
}

static void *watcher(void *a)
{
	struct limit_arg *la = a;
	while (!atomic_load(la->stop)) {
		struct sp_stats st;
		sp_get_stats(la->p, &st);
		CHECK(st.bytes_reserved <= st.limit);
	}
	return NULL;
}

static void test_limit_concurrent(void)
{
	const uint64_t limit = 1000000;
	struct sp_pool *p = make(4096, limit);
	_Atomic int stop = 0;
	enum { T = 4 };
	pthread_t th[T], w;
	struct limit_arg args[T + 1];
	for (int i = 0; i <= T; i++)
		args[i] = (struct limit_arg){.p = p, .stop = &stop, .seed = 77 + (uint64_t)i};
	CHECK_EQ(pthread_create(&w, NULL, watcher, &args[T]), 0);
	for (int i = 0; i < T; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, reserver, &args[i]), 0);
	long granted = 0, refused = 0;
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		granted += args[i].granted;
		refused += args[i].refused;
	}
	atomic_store(&stop, 1);
	pthread_join(w, NULL);
	struct sp_stats st;
	sp_get_stats(p, &st);
	CHECK_EQ(st.bytes_reserved, 0);
	CHECK(st.peak_reserved <= limit);
	CHECK(st.peak_reserved > limit / 2);
	CHECK(granted > 0 && refused > 0);
	printf("  limit: %ld granted, %ld refused, peak %llu of %llu\n", granted, refused,
	       (unsigned long long)st.peak_reserved, (unsigned long long)limit);
	CHECK_EQ(sp_reserve(p, limit + 1), -ENOSPC);
	CHECK_EQ(sp_reserve(p, UINT64_MAX), -ENOSPC);
	CHECK_EQ(sp_reserve(p, limit), 0);
	CHECK_EQ(sp_reserve(p, 1), -ENOSPC);
	sp_release(p, limit);
	sp_destroy(p);
}

/* ---- many threads allocating and freeing at once ---- */

struct churn_arg {
	struct sp_pool *p;
	int id;
};

static void *churner(void *a)
{
	struct churn_arg *ca = a;
	size_t S = sp_sector_size(ca->p);
	struct rng r = {(uint64_t)ca->id * 1000 + 1};
	void *held[256];
	int n = 0;
	/* The same bytes churned for every sector size: a large sector is
	 * page faults and purges, which a virtual machine makes dear. */
	int iters = (quick ? 500 : sanitized ? 1500 : 4000) / (S > 4096 ? (int)(S / 4096) : 1);
	for (int i = 0; i < iters; i++) {
		if (n < 200 && rng_below(&r, 3)) {
			int k = 1 + (int)rng_below(&r, 40);
			if (n + k > 256)
				k = 256 - n;
			CHECK_EQ(sp_alloc_sectors(ca->p, (size_t)k, held + n, rng_below(&r, 2)), 0);
			for (int j = n; j < n + k; j++) {
				((unsigned char *)held[j])[0] = (unsigned char)ca->id;
				((unsigned char *)held[j])[S / 2] = (unsigned char)ca->id;
				((unsigned char *)held[j])[S - 1] = (unsigned char)ca->id;
			}
			n += k;
			if (k > 30)
				sp_warm(ca->p); /* the warmer takes slots meanwhile */
		} else if (n > 0) {
			int k = 1 + (int)rng_below(&r, (uint64_t)n);
			for (int j = n - k; j < n; j++) {
				/* Nobody else wrote into our sectors. */
				CHECK(((unsigned char *)held[j])[0] == ca->id);
				CHECK(((unsigned char *)held[j])[S / 2] == ca->id);
				CHECK(((unsigned char *)held[j])[S - 1] == ca->id);
			}
			sp_free_sectors(ca->p, (size_t)k, held + n - k);
			n -= k;
		}
	}
	sp_free_sectors(ca->p, (size_t)n, held);
	return NULL;
}

static void test_churn(size_t S)
{
	struct sp_pool *p = make(S, SP_UNLIMITED);
	CHECK_EQ(sp_set_prefault(p, true), 0);
	enum { T = 6 };
	pthread_t th[T];
	struct churn_arg args[T];
	for (int i = 0; i < T; i++) {
		args[i] = (struct churn_arg){.p = p, .id = i + 1};
		CHECK_EQ(pthread_create(&th[i], NULL, churner, &args[i]), 0);
	}
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	struct sp_stats st;
	sp_get_stats(p, &st);
	CHECK_EQ(st.sectors_in_use, 0);
	sp_trim(p);
	sp_destroy(p);
}

/* sp_warm, then wait until the thread has done all it will (it counts its
 * rounds); the bytes faulted in so far. */
static uint64_t warm_and_wait(struct sp_pool *p)
{
	struct sp_stats st;
	sp_get_stats(p, &st);
	uint64_t rounds = st.warm_rounds;
	sp_warm(p);
	for (int i = 0; i < 30000 && st.warm_rounds == rounds; i++) {
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
		sp_get_stats(p, &st);
	}
	CHECK(st.warm_rounds > rounds);
	return st.warmed_bytes;
}

/* Faulting in ahead: after a large allocation, up to 2 MiB of the sectors
 * the next allocations get become resident, in the background; they are
 * handed out next (no new memory mapped), read as zero, and go back like
 * freed memory. */
static void test_prefault(size_t S)
{
	const size_t warm = 2u << 20;
	struct sp_pool *p = make(S, SP_UNLIMITED);
	struct sp_stats st;
	CHECK_EQ(sp_set_prefault(p, true), 0);
	CHECK_EQ(sp_set_prefault(p, true), 0);
	size_t n = (1u << 20) / S;
	void **v = malloc(2 * (n + warm / S) * sizeof(void *));
	CHECK_EQ(sp_alloc_sectors(p, n, v, false), 0);
	for (size_t i = 0; i < n; i++)
		memset(v[i], 7, S);
	sp_get_stats(p, &st);
	uint64_t mapped0 = st.bytes_mapped;
	nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
	sp_get_stats(p, &st);
	CHECK_EQ(st.warmed_bytes, 0); /* nothing happens without sp_warm */
	CHECK_EQ(st.warm_rounds, 0);
	uint64_t rss0 = os_rss();
	CHECK_EQ(warm_and_wait(p), warm);
	sp_get_stats(p, &st);
	CHECK_EQ(st.bytes_mapped, mapped0 + warm);
#ifndef SANITIZED
	CHECK(os_rss() >= rss0 + warm - (256u << 10));
#else
	(void)rss0;
#endif
	/* Again: the warm part is still there, so nothing more to do. */
	CHECK_EQ(warm_and_wait(p), warm);
	/* The next allocation gets those sectors: nothing newly mapped, and
	 * they read as zero without being cleared (zeroed = false). */
	size_t m = warm / S;
	CHECK_EQ(sp_alloc_sectors(p, m, v + n, false), 0);
	for (size_t i = n; i < n + m; i++)
		CHECK(all_zero(v[i], S));
	sp_get_stats(p, &st);
	CHECK_EQ(st.bytes_mapped, mapped0 + warm);
	/* Used up: the next sp_warm faults in the next 2 MiB. */
	CHECK_EQ(warm_and_wait(p), 2 * warm);
	/* Off: sp_warm does nothing; on again works. */
	CHECK_EQ(sp_set_prefault(p, false), 0);
	CHECK_EQ(sp_set_prefault(p, false), 0);
	sp_warm(p);
	sp_get_stats(p, &st);
	CHECK_EQ(st.warmed_bytes, 2 * warm);
	CHECK_EQ(sp_set_prefault(p, true), 0);
	/* Everything back: nothing stays resident. */
	sp_free_sectors(p, n + m, v);
	sp_trim(p);
	sp_get_stats(p, &st);
	CHECK_EQ(st.sectors_in_use, 0);
	CHECK(st.bytes_mapped <= st.regions * 65536);
	sp_destroy(p); /* stops the thread */
	free(v);
}

static int by_address(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
	return x < y ? -1 : x > y;
}

/* In a used pool the free clean memory is scattered holes, single pages
 * between live ones: each is faulted in (what is counted as warmed is
 * resident), and the live data around them is untouched. */
static void test_prefault_holes(size_t S)
{
	struct sp_pool *p = make(S, SP_UNLIMITED);
	struct sp_stats st;
	CHECK_EQ(sp_set_prefault(p, true), 0);
	size_t group = S > os_page_size() ? S : os_page_size();
	size_t n = (8u << 20) / S; /* holes: 4 MiB, twice what is warmed */
	void **v = malloc(n * sizeof(void *));
	CHECK_EQ(sp_alloc_sectors(p, n, v, false), 0);
	unsigned char *fill = malloc(n);
	qsort(v, n, sizeof *v, by_address);
	for (size_t i = 0; i < n; i++) {
		fill[i] = (unsigned char)(i % 251 + 1);
		memset(v[i], fill[i], S);
	}
	/* Free every other group, and give those back: clean holes. */
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (((uintptr_t)v[i] / group) % 2) {
			sp_free_sectors(p, 1, &v[i]);
		} else {
			fill[kept] = fill[i];
			v[kept++] = v[i];
		}
	}
	sp_trim(p);
	sp_get_stats(p, &st);
	uint64_t mapped0 = st.bytes_mapped, rss0 = os_rss();
	uint64_t warmed = warm_and_wait(p);
	CHECK(warmed > 0 && warmed <= (2u << 20));
	sp_get_stats(p, &st);
	CHECK_EQ(st.bytes_mapped, mapped0 + warmed);
#ifndef SANITIZED
	uint64_t grew = os_rss() - rss0;
	CHECK(grew + (256u << 10) >= warmed);
#else
	(void)rss0;
#endif
	for (size_t i = 0; i < kept; i++) {
		const unsigned char *b = v[i];
		CHECK(b[0] == fill[i] && b[S / 2] == fill[i] && b[S - 1] == fill[i]);
	}
	sp_free_sectors(p, kept, v);
	sp_destroy(p);
	free(fill);
	free(v);
}

/* Kilobytes of huge pages this process has mapped. */
static uint64_t anon_huge_kib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	unsigned long long kib = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "AnonHugePages: %llu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* Does the kernel give this process a huge page right now?  Asked the
 * way sectorfs asks (MADV_HUGEPAGE, then MADV_POPULATE_WRITE), on a
 * private mapping of the test's own: without a free huge page (memory
 * fragmented, or taken) the kernel quietly gives 4 KiB pages, which is
 * no fault of sectorfs. */
#ifndef SANITIZED
static bool kernel_gives_huge_page(size_t H)
{
	char *raw = mmap(NULL, 2 * H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return false;
	char *a = (char *)(((uintptr_t)raw + H - 1) & ~(uintptr_t)(H - 1));
	uint64_t before = anon_huge_kib();
	bool got = madvise(a, H, MADV_HUGEPAGE) == 0 && madvise(a, H, MADV_POPULATE_WRITE) == 0 &&
	           anon_huge_kib() >= before + H / 1024;
	munmap(raw, 2 * H);
	return got;
}
#endif

/* sp_populate of a run that covers whole huge pages: they become huge
 * pages, the run reads as asked (zeros), nothing outside it is touched or
 * made resident, and it all goes back when freed. */
static void test_populate_huge(size_t S)
{
	const size_t H = os_huge_page_size();
	struct sp_pool *p = make(S, SP_UNLIMITED);
	size_t na = (1u << 20) / S, nb = (8u << 20) / S;
	void **a = malloc(na * sizeof(void *)), **b = malloc(nb * sizeof(void *));
	CHECK_EQ(sp_alloc_sectors(p, na, a, false), 0);
	for (size_t i = 0; i < na; i++)
		memset(a[i], 0x5a, S);
	uint64_t rss0 = os_rss(), huge0 = anon_huge_kib();
	for (int round = 0; round < 2; round++) {
		CHECK_EQ(sp_alloc_sectors(p, nb, b, true), 0);
		sp_populate(p, b, nb);
		uint64_t rss1 = os_rss(), huge1 = anon_huge_kib();
		for (size_t i = 0; i < nb; i++)
			CHECK(all_zero(b[i], S));
		for (size_t i = 0; i < na; i++)
			CHECK(((unsigned char *)a[i])[0] == 0x5a && ((unsigned char *)a[i])[S - 1] == 0x5a);
#ifndef SANITIZED
		/* 8 MiB made resident, and no more than the run's pages. */
		CHECK(rss1 >= rss0 + (7u << 20) && rss1 <= rss0 + (9u << 20));
		/* Three of the four huge pages an 8 MiB run spans are whole
		 * (round 2: again, after the first were freed page by page);
		 * at least two must be huge pages, if the kernel has them. */
		if (H == (2u << 20) && huge1 < huge0 + 2 * 2048) {
			CHECK(!kernel_gives_huge_page(H));
			printf("  S=%zu round %d: huge pages not checked: the kernel has no free "
			       "huge page (a plain mapping got none either)\n", S, round);
		}
		printf("  S=%zu round %d: 8 MiB populated, RSS %+.1f MiB, huge pages %+.0f MiB\n", S,
		       round, ((double)rss1 - (double)rss0) / 1048576.0,
		       ((double)huge1 - (double)huge0) / 1024.0);
#else
		(void)rss1, (void)huge1;
#endif
		for (size_t i = 0; i < nb; i++)
			memset(b[i], 0x77, S);
		/* Freed in two interleaved halves: huge pages split, then go. */
		for (size_t i = 0; i < nb; i += 2)
			sp_free_sectors(p, 1, &b[i]);
		for (size_t i = 1; i < nb; i += 2)
			sp_free_sectors(p, 1, &b[i]);
		sp_trim(p);
	}
#ifndef SANITIZED
	CHECK(os_rss() <= rss0 + (1u << 20));
#else
	(void)H, (void)rss0, (void)huge0;
#endif
	sp_free_sectors(p, na, a);
	struct sp_stats st;
	sp_get_stats(p, &st);
	CHECK_EQ(st.sectors_in_use, 0);
	sp_destroy(p);
	free(a);
	free(b);
}

int main(int argc, char **argv)
{
	quick = test_quick(argc, argv);
	for (size_t S = SP_SECTOR_MIN; S <= SP_SECTOR_MAX; S *= 2) {
		test_basic(S);
		test_owners(S);
		test_churn(S);
	}
	test_give_back(512);
	test_give_back(4096);
	test_give_back(65536);
	test_small_give_back();
	for (size_t S = SP_SECTOR_MIN; S <= SP_SECTOR_MAX; S *= 8)
		test_purge_refused(S, false);
	test_purge_refused(4096, true); /* noswap: munlock, drop, relock */
	test_limit_concurrent();
	for (size_t S = SP_SECTOR_MIN; S <= SP_SECTOR_MAX; S *= 4)
		test_prefault(S);
	for (size_t S = SP_SECTOR_MIN; S <= SP_SECTOR_MAX; S *= 2)
		test_prefault_holes(S);
	for (size_t S = SP_SECTOR_MIN; S <= SP_SECTOR_MAX; S *= 8)
		test_populate_huge(S);
	printf("ok\n");
	return 0;
}
