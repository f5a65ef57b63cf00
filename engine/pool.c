/* SPDX-License-Identifier: MIT */
/* pool.c - the sector pool: fixed-size slots carved from mmapped regions.
 *
 * Design (the picture is in sectorfs/engine.h):
 *
 * - Slot classes: one for sectors, and seven "small" classes of 32 B to
 *   2 KiB for everything else that lives as long as a file: tree nodes
 *   (512 B), inline file data, and the filesystem core's inodes and
 *   directory entries.  All of it is returned to the kernel page by page,
 *   which malloc would not do.  A class owns 32 MiB regions, each aligned to its size so that
 *   free() finds the region header by masking the address.  The header holds
 *   one "free" bit per slot and one "clean" bit per group (the unit of
 *   memory given back to the kernel: a page, or a slot if larger).
 *
 * - Hot path: 16 shards per class, each a small LIFO cache of free slots
 *   behind a 4-byte lock.  A thread is bound to one shard for life (round
 *   robin), so up to 16 threads never share one; refills and spills move
 *   half a cache at a time under the class lock.  Slots in a cache keep a tag
 *   in bit 0 when they are known to read as zero.
 *
 * - Memory goes back at page granularity: when a free makes a group
 *   entirely free, the group is queued.  Refills take queued groups first,
 *   newest first, so memory that is freed and soon needed again is reused
 *   while it is still resident.  When the queue is full (4 MiB of sectors,
 *   1 MiB of nodes) its older half still free goes back with madvise,
 *   neighbours coalesced into one call.  The lock is held meanwhile (2 MiB,
 *   tens of microseconds); in exchange no slot can be reused half-purged.
 *   A group counts as clean (reads as zero, handed out without a memset)
 *   only once the kernel has said it dropped it: one it refused stays dirty.
 *   So free memory that has not gone back is bounded by the shard caches
 *   plus the queue: a few MiB, whatever was allocated before.
 *
 * - Trade-offs: a LIFO cache reuses the hottest slots first (good for the
 *   CPU cache) but spreads a file across regions; the regions hand out the
 *   lowest free slot first, which keeps the footprint compact under churn.
 *   Slots smaller than a page can only go back when all slots of their page
 *   are free (fragmentation); sv_check and the benchmark report it.
 *
 * - Faulting in ahead (optional, sp_set_prefault): a write into fresh
 *   memory pays for the kernel zeroing each new page, about as long as the
 *   copy itself.  A background thread can take that off the writer's path:
 *   woken by sp_warm() after a large allocation, it takes the free, clean
 *   groups the next allocations would get, faults them in with the class
 *   lock dropped, and puts them back as free dirty groups in the queue,
 *   where class_take looks first.  It keeps at most half a queue (2 MiB)
 *   warm, so queuing them never purges them, and what a writer does not
 *   use goes back like any freed memory.
 *
 * - Huge pages: a run of sectors faulted in that covers whole 2 MiB huge
 *   pages (a large fallocate, or the thread above finding a huge page's
 *   worth of free clean slots) gets transparent huge pages, asked for on
 *   that range only for the call (os_populate_huge).  One page-table entry
 *   instead of 512 makes fresh memory several times as fast to get, and on
 *   a virtual machine with shadow page tables some fifteen times (measured
 *   with bench/touchmem.c's method: 0.5 against 8 GB/s).  Everything else
 *   stays 4 KiB: the kernel is told never to build huge pages in the
 *   regions on its own, which would make free slots resident.  Freeing
 *   part of a huge page splits it; its freed part leaves the process
 *   (RSS) at once, and the kernel's memory when it splits the page, which
 *   it does as soon as memory is short.
 *
 * - Accounting: reservations (bytes promised against the limit) are one
 *   atomic in the pool; "in use" counts live per shard and are summed when
 *   read, so no counter is shared by every allocation.
 *
 * - Sharing: a sector, a tree node or an inline buffer may have several
 *   owners (the slots that point at it, in vectors and nodes that share it
 *   copy-on-write).  The region headers of the sector class and of the
 *   small classes from SP_SHARED_SMALL_MIN up (tree nodes among them) end
 *   with one 64-bit counter per slot: the owners beyond the first, so
 *   an object nobody shares has 0 there, as does every free slot.  The
 *   counters sit after the bitmaps, on pages of their own that stay
 *   untouched (no memory) until an object of theirs is looked at or
 *   shared; 8 bytes per slot, 0.2% of a 4 KiB sector, lets a count never
 *   saturate.  Taking an owner is one atomic add; dropping one is a
 *   compare-and-swap that tells the last owner it is the last, so exactly
 *   one caller frees the object.  Only an owner can add owners (it holds
 *   its vector's lock meanwhile), so a count of 0 seen by an owner stays 0
 *   until it shares the object itself.  What sharing saves is counted from
 *   the vectors' side (sp_note_sectors): the sectors they reference minus
 *   the sectors they hold.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fault_point.h"
#include "os.h"
#include "sectorfs/engine.h"

/* Under AddressSanitizer, free slots are poisoned so that a use after free
 * of a sector or a small object is reported like one of malloc's. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define asan_poison(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define asan_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define asan_poison(p, n) ((void)(p), (void)(n))
#define asan_unpoison(p, n) ((void)(p), (void)(n))
#endif

#define REGION_SHIFT 25
#define REGION_SIZE ((size_t)1 << REGION_SHIFT)
#define NSHARDS 16
#define SHARD_CAP 128
#define SECTOR_CACHE_BYTES ((size_t)512 << 10)
#define SECTOR_QUEUE_BYTES ((size_t)4 << 20)
#define SMALL_CACHE_BYTES ((size_t)16 << 10)
#define SMALL_QUEUE_BYTES ((size_t)512 << 10)
#define ZERO_AREA ((size_t)1 << 20)
#define TAG_CLEAN ((uintptr_t)1)

struct region {
	struct sp_class *cls; /* the class whose slots these are */
	uint32_t index;    /* position in class->regions */
	uint32_t nfree;    /* free slots                 [class lock] */
	uint32_t hint;     /* no free bit before this word [class lock] */
	char *slots;       /* first slot */
	uint64_t *free_bits;  /* 1 = slot free            [class lock] */
	uint64_t *clean_bits; /* 1 = group reads as zero  [class lock] */
	_Atomic uint64_t *owners; /* sectors, small objects of SP_SHARED_SMALL_MIN up:
	                           * owners beyond the first, per slot [atomic]; else NULL */
};

struct shard {
	struct lk_mutex lock;
	uint32_t count;           /* slots cached           [lock] */
	_Atomic int64_t taken;    /* allocs - frees through this shard */
	void *slots[SHARD_CAP];   /* tagged pointers        [lock] */
} __attribute__((aligned(64)));

struct sp_class {
	struct shard shards[NSHARDS];
	size_t slot;           /* slot size */
	unsigned shift;        /* log2(slot) */
	size_t group;          /* bytes per purge group */
	unsigned per_group;    /* slots per group (power of two, <= 8) */
	uint32_t nslots;       /* slots per region */
	uint32_t words;        /* free-bitmap words per region */
	size_t header;         /* bytes before the first slot */
	size_t header_resident; /* header bytes that become resident */
	size_t owners_off;     /* where the owner counters start (0: none) */
	unsigned cache_max;    /* shard capacity in slots */
	bool locked;

	/* Mutable shared state on its own cache lines, away from the read-only
	 * fields above that every allocation reads. */
	struct lk_mutex lock __attribute__((aligned(64))); /* guards the fields below */
	struct region **regions; /* [lock] */
	uint32_t nregions, cap_regions; /* [lock] */
	uint32_t first_free;     /* no region below has a free slot [lock] */
	void **queue;            /* fully free dirty groups [lock] */
	uint32_t nqueue, cap_queue; /* [lock] */
	_Atomic uint64_t dirty_groups; /* written under lock, read anywhere */
	_Atomic uint64_t purged;
	_Atomic uint32_t nregions_seen;
	char pad[64];
};

/* The faulting-in thread of a pool (see the top of this file). */
struct warmer {
	pthread_mutex_t toggle;  /* serializes sp_set_prefault */
	pthread_mutex_t lock;    /* guards the fields below */
	pthread_cond_t wake;
	pthread_t thread;
	bool running;            /* a thread exists            [lock] */
	bool stop;               /* it is asked to end         [lock] */
	_Atomic bool wanted;     /* sp_warm since its last look: written under lock */
	_Atomic bool on;         /* = running, read without the lock */
	_Atomic bool unsupported; /* the kernel cannot populate: stop asking */
	_Atomic uint64_t warmed; /* bytes faulted in, ever */
	_Atomic uint64_t rounds; /* times the thread went back to sleep */
};

/* The vectors' sector counts, one set per shard (summed when read). */
struct sector_count {
	_Atomic int64_t referenced; /* sectors the vectors reference, shared ones per slot */
	_Atomic int64_t held;       /* sectors the vectors hold, each once */
} __attribute__((aligned(64)));

struct sp_pool {
	struct sp_class sectors;
	struct sector_count counts[NSHARDS];
	struct sp_class small[SP_SMALL_CLASSES]; /* 32 B .. 2 KiB */
	_Atomic uint64_t reserved;
	_Atomic uint64_t peak;
	_Atomic uint64_t limit;
	void *zero;
	size_t zero_len;
	struct warmer warm;
};

/* Small classes: 32 << i bytes. */
_Static_assert((SP_SMALL_MIN << (SP_SMALL_CLASSES - 1)) == SP_SMALL_MAX, "small classes");

static _Atomic unsigned next_shard;
static _Thread_local unsigned my_shard; /* 0: not bound yet; else index + 1 */

static inline unsigned my_shard_index(void)
{
	if (__builtin_expect(my_shard == 0, 0))
		my_shard = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % NSHARDS + 1;
	return my_shard - 1;
}

static inline struct shard *my_shard_of(struct sp_class *c)
{
	return &c->shards[my_shard_index()];
}

static inline struct region *region_of(const void *p)
{
	return (struct region *)((uintptr_t)p & ~(uintptr_t)(REGION_SIZE - 1));
}

static inline size_t round_up(size_t x, size_t a)
{
	return (x + a - 1) & ~(a - 1);
}

/* ---- class setup ---- */

static int class_init(struct sp_class *c, size_t slot, size_t cache_bytes, size_t purge_bytes,
                      bool locked, bool counted)
{
	size_t page = os_page_size();
	memset(c, 0, sizeof(*c));
	c->slot = slot;
	c->shift = (unsigned)__builtin_ctzl(slot);
	c->group = slot > page ? slot : page;
	c->per_group = (unsigned)(c->group / slot);
	c->locked = locked;
	size_t max_slots = REGION_SIZE / slot;
	c->words = (uint32_t)((max_slots + 63) / 64);
	size_t groups = REGION_SIZE / c->group;
	size_t meta = round_up(sizeof(struct region), 8) + (size_t)c->words * 8 + (groups + 63) / 64 * 8;
	c->header_resident = round_up(meta, page);
	if (counted) {
		/* On pages of their own, which only sharing makes resident. */
		c->owners_off = c->header_resident;
		meta = c->owners_off + max_slots * sizeof(uint64_t);
	}
	c->header = round_up(meta, c->group);
	c->nslots = (uint32_t)((REGION_SIZE - c->header) / slot);
	size_t cache = cache_bytes / slot;
	c->cache_max = (unsigned)(cache > SHARD_CAP ? SHARD_CAP : cache < 4 ? 4 : cache);
	size_t q = purge_bytes / c->group;
	c->cap_queue = (uint32_t)(q < 16 ? 16 : q);
	c->queue = os_malloc(c->cap_queue * sizeof(void *));
	return c->queue ? 0 : -ENOMEM;
}

static void class_fini(struct sp_class *c)
{
	for (uint32_t i = 0; i < c->nregions; i++) {
		asan_unpoison(c->regions[i], REGION_SIZE);
		os_unmap(c->regions[i], REGION_SIZE);
	}
	os_free(c->regions);
	os_free(c->queue);
}

/* Map and initialise a region: all slots free, all groups clean. */
static struct region *region_new(struct sp_class *c)
{
	if (c->nregions == c->cap_regions) {
		uint32_t cap = c->cap_regions ? c->cap_regions * 2 : 8;
		struct region **r = os_realloc(c->regions, cap * sizeof(*r));
		if (!r)
			return NULL;
		c->regions = r;
		c->cap_regions = cap;
	}
	struct region *r = os_map(REGION_SIZE, REGION_SIZE, c->locked);
	if (!r)
		return NULL;
	/* The address may have held another pool's poisoned slots. */
	asan_unpoison(r, REGION_SIZE);
	r->cls = c;
	r->index = c->nregions;
	r->nfree = c->nslots;
	r->hint = 0;
	r->slots = (char *)r + c->header;
	r->free_bits = (uint64_t *)((char *)r + round_up(sizeof(*r), 8));
	r->clean_bits = r->free_bits + c->words;
	r->owners = c->owners_off ? (_Atomic uint64_t *)((char *)r + c->owners_off) : NULL;
	uint32_t full = c->nslots / 64;
	memset(r->free_bits, 0xff, (size_t)full * 8);
	if (c->nslots % 64)
		r->free_bits[full] = (UINT64_C(1) << (c->nslots % 64)) - 1;
	size_t groups = REGION_SIZE / c->group;
	memset(r->clean_bits, 0xff, (groups + 63) / 64 * 8);
	asan_poison(r->slots, (size_t)c->nslots << c->shift);
	c->regions[c->nregions++] = r;
	atomic_store_explicit(&c->nregions_seen, c->nregions, memory_order_relaxed);
	return r;
}

static inline bool bit_get(const uint64_t *bits, size_t i)
{
	return (bits[i / 64] >> (i % 64)) & 1;
}
static inline void bit_set(uint64_t *bits, size_t i)
{
	bits[i / 64] |= UINT64_C(1) << (i % 64);
}
static inline void bit_clear(uint64_t *bits, size_t i)
{
	bits[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

/* Is the group of `slot` entirely free?  A group is at most 8 slots of one
 * bitmap word, or (slots of 32 and 64 bytes) one or two whole words. */
static inline bool group_free(const struct sp_class *c, const struct region *r, size_t slot)
{
	size_t first = slot & ~(size_t)(c->per_group - 1);
	if (c->per_group >= 64) {
		for (size_t w = first / 64; w < (first + c->per_group) / 64; w++)
			if (r->free_bits[w] != ~UINT64_C(0))
				return false;
		return true;
	}
	uint64_t m = ((UINT64_C(1) << c->per_group) - 1) << (first % 64);
	return (r->free_bits[first / 64] & m) == m;
}

/* Does the group of `slot` still have a free slot? */
static inline bool group_any_free(const struct sp_class *c, const struct region *r, size_t slot)
{
	size_t first = slot & ~(size_t)(c->per_group - 1);
	for (size_t i = first; i < first + c->per_group; i++)
		if (bit_get(r->free_bits, i))
			return true;
	return false;
}

/* ---- purging ---- */

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
	return x < y ? -1 : x > y;
}

/* Give [run, run+len), whole groups of one region, back to the kernel,
 * and only if it took them mark them clean: the group count made clean.
 * A range the kernel kept (os_purge failed, e.g. munlock refused in noswap
 * mode before anything was dropped) may still hold a freed file's bytes,
 * so it stays dirty, and whoever takes its slots zeroes them if asked. */
static uint64_t purge_run(struct sp_class *c, char *run, size_t len)
{
	if (os_purge(run, len, c->locked) != 0)
		return 0;
	struct region *r = region_of(run);
	size_t g0 = ((size_t)(run - r->slots) >> c->shift) / c->per_group;
	for (size_t g = 0; g < len / c->group; g++)
		bit_set(r->clean_bits, g0 + g);
	return len / c->group;
}

/* Give the first `count` queued groups that are still free and dirty back
 * to the kernel, then drop them from the queue.  A group the kernel would
 * not take leaves the queue dirty: allocations still reuse it (zeroing it
 * when asked), and sp_trim tries again.  Class lock held. */
static void class_purge(struct sp_class *c, uint32_t count)
{
	if (count == 0)
		return;
	qsort(c->queue, count, sizeof(void *), cmp_ptr);
	char *run = NULL;
	size_t run_len = 0;
	uint64_t cleaned = 0;
	for (uint32_t i = 0; i < count; i++) {
		char *g = c->queue[i];
		if (i > 0 && g == c->queue[i - 1])
			continue;
		struct region *r = region_of(g);
		size_t slot = (size_t)(g - r->slots) >> c->shift;
		if (!group_free(c, r, slot) || bit_get(r->clean_bits, slot / c->per_group))
			continue; /* reused since, or already clean */
		/* A run never crosses a region: each starts with its header. */
		if (run && run + run_len == g) {
			run_len += c->group;
		} else {
			if (run)
				cleaned += purge_run(c, run, run_len);
			run = g;
			run_len = c->group;
		}
	}
	if (run)
		cleaned += purge_run(c, run, run_len);
	memmove(c->queue, c->queue + count, (c->nqueue - count) * sizeof(void *));
	c->nqueue -= count;
	atomic_fetch_sub_explicit(&c->dirty_groups, cleaned, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->purged, cleaned * c->group, memory_order_relaxed);
}

/* Queue a group that just became entirely free.  When the queue is full,
 * its older half goes back to the kernel: the newer half is what the next
 * allocations reuse (class_take looks here first). */
static void queue_free_group(struct sp_class *c, char *group)
{
	c->queue[c->nqueue++] = group;
	if (c->nqueue == c->cap_queue)
		class_purge(c, c->cap_queue / 2);
}

/* ---- moving slots between the regions and the shards (class lock held) ---- */

/* Return n slots to their regions. */
static void class_put(struct sp_class *c, size_t n, void *const *slots)
{
	for (size_t i = 0; i < n; i++) {
		char *p = (char *)((uintptr_t)slots[i] & ~TAG_CLEAN);
		struct region *r = region_of(p);
		size_t slot = (size_t)(p - r->slots) >> c->shift;
		bit_set(r->free_bits, slot);
		r->nfree++;
		if (slot / 64 < r->hint)
			r->hint = (uint32_t)(slot / 64);
		if (r->index < c->first_free)
			c->first_free = r->index;
		if (group_free(c, r, slot)) {
			size_t gi = slot / c->per_group;
			if (!bit_get(r->clean_bits, gi))
				queue_free_group(c, r->slots + gi * c->group);
		}
	}
}

/* Take exactly n slots into out[] (tagged), or none: 0 or -ENOMEM.  Clean
 * bits are only cleared once the whole batch is taken, so a failure puts
 * back exactly the state it found. */
static int class_take(struct sp_class *c, size_t n, void **out)
{
	size_t got = 0;
	/* Reuse recently freed (resident) groups first, newest first: no page
	 * fault, and no purge of memory that is about to be needed again. */
	while (got < n && c->nqueue > 0) {
		char *g = c->queue[--c->nqueue];
		struct region *r = region_of(g);
		size_t first = (size_t)(g - r->slots) >> c->shift;
		uintptr_t tag = bit_get(r->clean_bits, first / c->per_group) ? TAG_CLEAN : 0;
		for (size_t slot = first; slot < first + c->per_group && got < n; slot++) {
			if (!bit_get(r->free_bits, slot))
				continue;
			bit_clear(r->free_bits, slot);
			r->nfree--;
			out[got++] = (void *)((uintptr_t)(r->slots + (slot << c->shift)) | tag);
		}
		if (got == n && group_any_free(c, r, first))
			c->nqueue++; /* slots of this group are left: keep it queued */
	}
	uint32_t ri = c->first_free;
	while (got < n) {
		struct region *r;
		if (ri < c->nregions) {
			r = c->regions[ri];
			if (r->nfree == 0) {
				if (ri == c->first_free)
					c->first_free = ri + 1;
				ri++;
				continue;
			}
		} else {
			r = region_new(c);
			if (!r) {
				class_put(c, got, out);
				return -ENOMEM;
			}
		}
		uint32_t w = r->hint;
		size_t before = got;
		for (; w < c->words && got < n; w++) {
			uint64_t bits = r->free_bits[w];
			while (bits && got < n) {
				size_t slot = (size_t)w * 64 + (unsigned)__builtin_ctzll(bits);
				bits &= bits - 1;
				uintptr_t tag = bit_get(r->clean_bits, slot / c->per_group) ? TAG_CLEAN : 0;
				out[got++] = (void *)((uintptr_t)(r->slots + (slot << c->shift)) | tag);
			}
			r->free_bits[w] = bits;
			if (bits)
				break;
		}
		r->hint = w;
		r->nfree -= (uint32_t)(got - before);
		ri = r->index + 1;
	}
	uint64_t dirtied = 0;
	for (size_t i = 0; i < n; i++) {
		if (!((uintptr_t)out[i] & TAG_CLEAN))
			continue;
		char *p = (char *)((uintptr_t)out[i] & ~TAG_CLEAN);
		struct region *r = region_of(p);
		size_t gi = ((size_t)(p - r->slots) >> c->shift) / c->per_group;
		if (bit_get(r->clean_bits, gi)) {
			bit_clear(r->clean_bits, gi);
			dirtied++;
		}
	}
	atomic_fetch_add_explicit(&c->dirty_groups, dirtied, memory_order_relaxed);
	return 0;
}

/* ---- the hot path ---- */

/* Shard lock held: only readers race with this, so no atomic add needed. */
static inline void shard_count(struct shard *s, int64_t delta)
{
	int64_t t = atomic_load_explicit(&s->taken, memory_order_relaxed);
	atomic_store_explicit(&s->taken, t + delta, memory_order_relaxed);
}

/* Fill out[] with n slots, tagged.  0 or -ENOMEM. */
static int class_alloc(struct sp_class *c, size_t n, void **out)
{
	struct shard *s = my_shard_of(c);
	lk_lock(&s->lock);
	size_t have = s->count < n ? s->count : n;
	s->count -= (uint32_t)have;
	memcpy(out, s->slots + s->count, have * sizeof(void *));
	if (have < n) {
		/* Refill: what is missing, plus half a cache for next time. */
		size_t need = n - have;
		size_t extra = need < c->cache_max ? c->cache_max / 2 : 0;
		void *tmp[SHARD_CAP];
		lk_lock(&c->lock);
		int rc = class_take(c, need, out + have);
		if (rc == 0 && extra && class_take(c, extra, tmp) != 0)
			extra = 0; /* the cache stays empty; the caller got its slots */
		lk_unlock(&c->lock);
		if (rc != 0) {
			memcpy(s->slots + s->count, out, have * sizeof(void *));
			s->count += (uint32_t)have;
			lk_unlock(&s->lock);
			return rc;
		}
		memcpy(s->slots + s->count, tmp, extra * sizeof(void *));
		s->count += (uint32_t)extra;
	}
	shard_count(s, (int64_t)n);
	lk_unlock(&s->lock);
	return 0;
}

static void class_free(struct sp_class *c, size_t n, void *const *slots)
{
	struct shard *s = my_shard_of(c);
	lk_lock(&s->lock);
	size_t room = c->cache_max - s->count;
	size_t put = n < room ? n : room;
	memcpy(s->slots + s->count, slots, put * sizeof(void *));
	s->count += (uint32_t)put;
	if (put < n || s->count == c->cache_max) {
		/* Spill the overflow and the older half of the cache. */
		size_t keep = c->cache_max / 2;
		lk_lock(&c->lock);
		class_put(c, n - put, slots + put);
		class_put(c, s->count - keep, s->slots);
		lk_unlock(&c->lock);
		memmove(s->slots, s->slots + (s->count - keep), keep * sizeof(void *));
		s->count = (uint32_t)keep;
	}
	shard_count(s, -(int64_t)n);
	lk_unlock(&s->lock);
}

/* Flush every shard, then queue and purge every free dirty group. */
static void class_trim(struct sp_class *c)
{
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *s = &c->shards[i];
		lk_lock(&s->lock);
		lk_lock(&c->lock);
		class_put(c, s->count, s->slots);
		lk_unlock(&c->lock);
		s->count = 0;
		lk_unlock(&s->lock);
	}
	lk_lock(&c->lock);
	for (uint32_t ri = 0; ri < c->nregions; ri++) {
		struct region *r = c->regions[ri];
		for (size_t slot = 0; slot + c->per_group <= c->nslots; slot += c->per_group) {
			size_t gi = slot / c->per_group;
			if (group_free(c, r, slot) && !bit_get(r->clean_bits, gi))
				queue_free_group(c, r->slots + gi * c->group);
		}
	}
	class_purge(c, c->nqueue);
	lk_unlock(&c->lock);
}

static uint64_t class_in_use(const struct sp_class *c)
{
	int64_t sum = 0;
	for (int i = 0; i < NSHARDS; i++)
		sum += atomic_load_explicit(&c->shards[i].taken, memory_order_relaxed);
	return sum > 0 ? (uint64_t)sum : 0;
}

static uint64_t class_mapped(const struct sp_class *c)
{
	return atomic_load_explicit(&c->dirty_groups, memory_order_relaxed) * c->group +
	       (uint64_t)atomic_load_explicit(&c->nregions_seen, memory_order_relaxed) *
	               c->header_resident;
}

/* ---- the pool ---- */

static unsigned small_index(size_t size)
{
	unsigned i = 0;
	while ((size_t)SP_SMALL_MIN << i < size)
		i++;
	return i;
}

size_t sp_small_size(size_t size)
{
	if (size == 0 || size > SP_SMALL_MAX)
		return 0;
	return (size_t)SP_SMALL_MIN << small_index(size);
}

int sp_create(const struct sp_config *cfg, struct sp_pool **out)
{
	size_t s = cfg->sector_size ? cfg->sector_size : SP_SECTOR_DEFAULT;
	if (s < SP_SECTOR_MIN || s > SP_SECTOR_MAX || (s & (s - 1)))
		return -EINVAL;
	struct sp_pool *p = os_calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	int made = 0;
	if (class_init(&p->sectors, s, SECTOR_CACHE_BYTES, SECTOR_QUEUE_BYTES, cfg->locked, true) != 0)
		goto fail;
	for (; made < SP_SMALL_CLASSES; made++)
		if (class_init(&p->small[made], (size_t)SP_SMALL_MIN << made, SMALL_CACHE_BYTES,
		               SMALL_QUEUE_BYTES, cfg->locked,
		               (size_t)SP_SMALL_MIN << made >= SP_SHARED_SMALL_MIN) != 0)
			goto fail_small;
	p->zero_len = s > ZERO_AREA ? s : ZERO_AREA;
	p->zero = os_map_zero(p->zero_len);
	if (!p->zero)
		goto fail_small;
	if (pthread_mutex_init(&p->warm.toggle, NULL) != 0)
		goto fail_zero;
	if (pthread_mutex_init(&p->warm.lock, NULL) != 0)
		goto fail_toggle;
	if (pthread_cond_init(&p->warm.wake, NULL) != 0)
		goto fail_lock;
	atomic_init(&p->limit, cfg->limit);
	*out = p;
	return 0;

fail_lock:
	pthread_mutex_destroy(&p->warm.lock);
fail_toggle:
	pthread_mutex_destroy(&p->warm.toggle);
fail_zero:
	os_unmap(p->zero, p->zero_len);
fail_small:
	while (made > 0)
		class_fini(&p->small[--made]);
	class_fini(&p->sectors);
fail:
	os_free(p);
	return -ENOMEM;
}

void sp_destroy(struct sp_pool *p)
{
	if (!p)
		return;
	sp_set_prefault(p, false);
	pthread_cond_destroy(&p->warm.wake);
	pthread_mutex_destroy(&p->warm.lock);
	pthread_mutex_destroy(&p->warm.toggle);
	class_fini(&p->sectors);
	for (int i = 0; i < SP_SMALL_CLASSES; i++)
		class_fini(&p->small[i]);
	os_unmap(p->zero, p->zero_len);
	os_free(p);
}

size_t sp_sector_size(const struct sp_pool *p)
{
	return p->sectors.slot;
}

int sp_reserve(struct sp_pool *p, uint64_t bytes)
{
	uint64_t limit, cur;
	for (;;) {
		limit = atomic_load(&p->limit);
		cur = atomic_load_explicit(&p->reserved, memory_order_relaxed);
		do {
			if (bytes > limit || cur > limit - bytes)
				return -ENOSPC;
		} while (!atomic_compare_exchange_weak_explicit(&p->reserved, &cur, cur + bytes,
		                                                memory_order_seq_cst,
		                                                memory_order_relaxed));
		/* Judged against the limit read above: if sp_set_limit lowered
		 * it since, this may have come in after it let go of the
		 * difference it held, so judge again.  (Its store comes before
		 * that release, which comes before this reservation.) */
		if (atomic_load(&p->limit) == limit)
			break;
		atomic_fetch_sub(&p->reserved, bytes);
	}
	uint64_t now = cur + bytes;
	uint64_t peak = atomic_load_explicit(&p->peak, memory_order_relaxed);
	while (now > peak && !atomic_compare_exchange_weak_explicit(&p->peak, &peak, now,
	                                                            memory_order_relaxed,
	                                                            memory_order_relaxed))
		;
	return 0;
}

void sp_release(struct sp_pool *p, uint64_t bytes)
{
	atomic_fetch_sub_explicit(&p->reserved, bytes, memory_order_relaxed);
}

int sp_set_limit(struct sp_pool *p, uint64_t limit)
{
	uint64_t old = atomic_load(&p->limit);
	if (limit >= old) {
		atomic_store(&p->limit, limit);
		return 0;
	}
	/* Lowering: hold the difference as a reservation while the limit
	 * changes, so no concurrent reservation can end up above it (one
	 * that read the old limit judges itself again: sp_reserve). */
	if (sp_reserve(p, old - limit) != 0)
		return -EBUSY;
	atomic_store(&p->limit, limit);
	atomic_fetch_sub(&p->reserved, old - limit); /* ordered after the store */
	return 0;
}

/* Strip the clean tags and zero what must read as zero.  `touch`: a
 * clean slot asked for zeroed gets one byte written, for small objects,
 * which their callers read before they fill them (a tree node's slots are
 * looked at first): a write maps a fresh zeroed page at once, where a read
 * maps the shared zero page, and the first write after it copies that and
 * flushes the old mapping from every CPU the process runs on, an
 * interrupt to each (dear under a hypervisor).  Sectors are not touched:
 * an unwritten one must cost no memory until it is written. */
static void strip_and_zero(struct sp_class *c, size_t n, void **out, bool zeroed, bool touch)
{
	for (size_t i = 0; i < n; i++) {
		uintptr_t v = (uintptr_t)out[i];
		out[i] = (void *)(v & ~TAG_CLEAN);
		asan_unpoison(out[i], c->slot);
		if (zeroed && !(v & TAG_CLEAN))
			memset(out[i], 0, c->slot);
		else if (zeroed && touch)
			*(volatile char *)out[i] = 0;
	}
}

int sp_alloc_sectors(struct sp_pool *p, size_t n, void **out, bool zeroed)
{
	if (n == 0)
		return 0;
	if (os_fault())
		return -ENOMEM;
	int rc = class_alloc(&p->sectors, n, out);
	if (rc == 0)
		strip_and_zero(&p->sectors, n, out, zeroed, false);
	return rc;
}

/* The owner counter of a sector or node. */
static inline _Atomic uint64_t *owners_of(const void *obj)
{
	struct region *r = region_of(obj);
	size_t slot = (size_t)((const char *)obj - r->slots) >> r->cls->shift;
	return &r->owners[slot];
}

void sp_free_sectors(struct sp_pool *p, size_t n, void *const *sectors)
{
	for (size_t i = 0; i < n; i++) {
		/* Freed by its last owner only. */
		assert(atomic_load_explicit(owners_of(sectors[i]), memory_order_relaxed) == 0);
		asan_poison(sectors[i], p->sectors.slot);
	}
	if (n)
		class_free(&p->sectors, n, sectors);
}

/* ---- sharing ---- */

void sp_share_many(struct sp_pool *p, void *const *objs, size_t n)
{
	(void)p;
	for (size_t i = 0; i < n; i++)
		atomic_fetch_add_explicit(owners_of(objs[i]), 1, memory_order_relaxed);
}

void sp_share(struct sp_pool *p, void *obj)
{
	sp_share_many(p, &obj, 1);
}

bool sp_shared(const struct sp_pool *p, const void *obj)
{
	(void)p;
	return atomic_load_explicit(owners_of(obj), memory_order_acquire) != 0;
}

uint64_t sp_owners(const struct sp_pool *p, const void *obj)
{
	(void)p;
	return atomic_load_explicit(owners_of(obj), memory_order_acquire) + 1;
}

bool sp_unshare(struct sp_pool *p, void *obj)
{
	(void)p;
	_Atomic uint64_t *o = owners_of(obj);
	uint64_t n = atomic_load_explicit(o, memory_order_acquire);
	do {
		if (n == 0)
			return true; /* the only owner: the caller frees it */
	} while (!atomic_compare_exchange_weak_explicit(o, &n, n - 1, memory_order_acq_rel,
	                                                memory_order_acquire));
	return false;
}

void sp_note_sectors(struct sp_pool *p, int64_t referenced, int64_t held)
{
	struct sector_count *c = &p->counts[my_shard_index()];
	if (referenced)
		atomic_fetch_add_explicit(&c->referenced, referenced, memory_order_relaxed);
	if (held)
		atomic_fetch_add_explicit(&c->held, held, memory_order_relaxed);
}

void *sp_alloc_small(struct sp_pool *p, size_t size, bool zeroed)
{
	if (size == 0 || size > SP_SMALL_MAX || os_fault())
		return NULL;
	struct sp_class *c = &p->small[small_index(size)];
	void *obj;
	if (class_alloc(c, 1, &obj) != 0)
		return NULL;
	strip_and_zero(c, 1, &obj, zeroed, true);
	return obj;
}

void sp_free_small(struct sp_pool *p, void *obj)
{
	(void)p;
	if (!obj)
		return;
	struct region *r = region_of(obj);
	struct sp_class *c = r->cls;
	/* A shared object is freed by its last owner only. */
	assert(!r->owners || atomic_load_explicit(owners_of(obj), memory_order_relaxed) == 0);
	asan_poison(obj, c->slot);
	class_free(c, 1, &obj);
}

const void *sp_zero_area(const struct sp_pool *p, size_t *len)
{
	*len = p->zero_len;
	return p->zero;
}

void sp_trim(struct sp_pool *p)
{
	class_trim(&p->sectors);
	for (int i = 0; i < SP_SMALL_CLASSES; i++)
		class_trim(&p->small[i]);
}

void sp_get_stats(const struct sp_pool *p, struct sp_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->sector_size = p->sectors.slot;
	st->sectors_in_use = class_in_use(&p->sectors);
	st->bytes_reserved = atomic_load_explicit(&p->reserved, memory_order_relaxed);
	st->peak_reserved = atomic_load_explicit(&p->peak, memory_order_relaxed);
	st->limit = atomic_load_explicit(&p->limit, memory_order_relaxed);
	st->bytes_mapped = class_mapped(&p->sectors);
	st->regions = atomic_load_explicit(&p->sectors.nregions_seen, memory_order_relaxed);
	st->purged_bytes = atomic_load_explicit(&p->sectors.purged, memory_order_relaxed);
	st->warmed_bytes = atomic_load_explicit(&p->warm.warmed, memory_order_relaxed);
	st->warm_rounds = atomic_load_explicit(&p->warm.rounds, memory_order_relaxed);
	int64_t referenced = 0, held = 0;
	for (int i = 0; i < NSHARDS; i++) {
		referenced += atomic_load_explicit(&p->counts[i].referenced, memory_order_relaxed);
		held += atomic_load_explicit(&p->counts[i].held, memory_order_relaxed);
	}
	st->sectors_saved = referenced > held ? (uint64_t)(referenced - held) : 0;
	for (int i = 0; i < SP_SMALL_CLASSES; i++) {
		const struct sp_class *c = &p->small[i];
		uint64_t n = class_in_use(c);
		st->small_objects += n;
		st->small_bytes += n * c->slot;
		st->bytes_mapped += class_mapped(c);
		st->regions += atomic_load_explicit(&c->nregions_seen, memory_order_relaxed);
		st->purged_bytes += atomic_load_explicit(&c->purged, memory_order_relaxed);
	}
	uint64_t used = st->sectors_in_use * st->sector_size + st->small_bytes;
	st->overhead = st->bytes_mapped > used ? st->bytes_mapped - used : 0;
}

/* ---- faulting in ahead of a writer ---- */

#define WARM_BYTES (SECTOR_QUEUE_BYTES / 2)
#define WARM_BATCH 256    /* slots per pass */
#define WARM_SCAN 4096    /* groups looked at per pass, at most: the lock stays short */
#define WARM_HUGE_SCAN 64 /* huge pages looked at per pass, at most */

/* Take up to max slots, in whole groups that are free and clean, from the
 * regions class_take would use next; lowest addresses first, as it does.
 * Class lock held. */
static size_t take_clean(struct sp_class *c, size_t max, void **out)
{
	size_t got = 0, scanned = 0;
	for (uint32_t ri = c->first_free; ri < c->nregions && scanned < WARM_SCAN; ri++) {
		struct region *r = c->regions[ri];
		if (r->nfree < c->per_group)
			continue;
		/* The hint counts 64-slot words, and a group can be larger
		 * (512 B sectors on 64 KiB pages): start at its group. */
		size_t slot = ((size_t)r->hint * 64) & ~(size_t)(c->per_group - 1);
		for (; slot + c->per_group <= c->nslots && scanned < WARM_SCAN;
		     slot += c->per_group, scanned++) {
			if (got + c->per_group > max)
				return got;
			if (!bit_get(r->clean_bits, slot / c->per_group) || !group_free(c, r, slot))
				continue;
			for (size_t i = slot; i < slot + c->per_group; i++) {
				bit_clear(r->free_bits, i);
				out[got++] = r->slots + (i << c->shift);
			}
			r->nfree -= c->per_group;
		}
	}
	return got;
}

/* Take every slot of a huge page (os_huge_page_size) whose slots are all
 * free and clean, the first at or after where class_take would look next;
 * NULL if none is found within a short scan.  Class lock held. */
static char *take_huge(struct sp_class *c, size_t huge)
{
	const size_t per = huge >> c->shift, groups = huge / c->group;
	size_t scanned = 0;
	for (uint32_t ri = c->first_free; ri < c->nregions && scanned < WARM_HUGE_SCAN; ri++) {
		struct region *r = c->regions[ri];
		if (r->nfree < per)
			continue;
		uintptr_t from = (uintptr_t)r->slots + (((size_t)r->hint * 64) << c->shift);
		uintptr_t end = (uintptr_t)r->slots + ((size_t)c->nslots << c->shift);
		for (uintptr_t a = round_up(from, huge); a + huge <= end && scanned < WARM_HUGE_SCAN;
		     a += huge, scanned++) {
			size_t first = (size_t)(a - (uintptr_t)r->slots) >> c->shift;
			size_t g0 = first / c->per_group, i;
			for (i = 0; i < groups; i++)
				if (!bit_get(r->clean_bits, g0 + i) || !group_free(c, r, first + i * c->per_group))
					break;
			if (i < groups)
				continue;
			for (i = first; i < first + per; i++)
				bit_clear(r->free_bits, i);
			r->nfree -= (uint32_t)per;
			return (char *)a;
		}
	}
	return NULL;
}

/* Warm one huge page, if one is free and clean and the queue has room for
 * it without purging: how much was warmed (0: none).  Class lock held on
 * entry and exit, dropped while faulting in. */
static size_t warm_huge(struct sp_pool *p, struct sp_class *c)
{
	size_t huge = os_huge_page_size();
	size_t queued = (size_t)c->nqueue * c->group;
	if (huge == 0 || c->locked || huge % c->group || huge > REGION_SIZE / 4 ||
	    queued + huge >= (size_t)c->cap_queue * c->group)
		return 0;
	char *h = take_huge(c, huge);
	if (!h)
		return 0;
	lk_unlock(&c->lock);
	int rc = os_populate_huge(h, huge);
	if (rc == -EINVAL) /* no MADV_POPULATE_WRITE (Linux < 5.14) */
		atomic_store(&p->warm.unsupported, true);
	lk_lock(&c->lock);
	struct region *r = region_of(h);
	size_t first = (size_t)(h - r->slots) >> c->shift, per = huge >> c->shift;
	if (rc == 0) {
		for (size_t g = first / c->per_group; g < (first + per) / c->per_group; g++)
			bit_clear(r->clean_bits, g);
		atomic_fetch_add_explicit(&c->dirty_groups, huge / c->group, memory_order_relaxed);
	}
	/* Back to the region; if now dirty, each group joins the queue (a
	 * failure leaves them clean, as they were: what was faulted in of
	 * them reads as zero all the same). */
	for (size_t i = first; i < first + per; i++) {
		void *slot = r->slots + (i << c->shift);
		class_put(c, 1, &slot);
	}
	return rc == 0 ? huge : 0;
}

/* Fault in [lo, hi), which the caller owns: the whole huge pages it
 * covers as huge pages (nothing outside the range becomes resident), the
 * edges page by page.  0 or the first error. */
static int populate_range(const struct sp_class *c, char *lo, char *hi)
{
	size_t huge = os_huge_page_size();
	if (huge == 0 || c->locked)
		return os_populate(lo, (size_t)(hi - lo));
	uintptr_t a = round_up((uintptr_t)lo, huge), b = (uintptr_t)hi & ~(uintptr_t)(huge - 1);
	if (a >= b)
		return os_populate(lo, (size_t)(hi - lo));
	int rc = (char *)a > lo ? os_populate(lo, (size_t)((char *)a - lo)) : 0;
	int rc2 = os_populate_huge((void *)a, b - a);
	int rc3 = (char *)b < hi ? os_populate((void *)b, (size_t)(hi - (char *)b)) : 0;
	return rc ? rc : rc2 ? rc2 : rc3;
}

/* Sort s[] and fault in each run of neighbours at least min_run long;
 * done[] (if given) tells, slot by slot, which were.  The first error. */
static int populate_runs(const struct sp_class *c, void **s, size_t n, size_t min_run,
                         bool *done)
{
	int err = 0;
	qsort(s, n, sizeof *s, cmp_ptr);
	for (size_t i = 0; i < n;) {
		char *lo = s[i], *hi = lo + c->slot;
		size_t j = i + 1;
		while (j < n && (char *)s[j] == hi) {
			hi += c->slot;
			j++;
		}
		int rc = j - i >= min_run ? populate_range(c, lo, hi) : -EAGAIN;
		if (rc && !err)
			err = rc;
		for (size_t k = i; done && k < j; k++)
			done[k] = rc == 0;
		i = j;
	}
	return err;
}

/* Runs shorter than this are left to fault on first touch: a call costs
 * more than a few faults. */
#define POPULATE_RUN 8

void sp_populate(struct sp_pool *p, void **sectors, size_t n)
{
	(void)populate_runs(&p->sectors, sectors, n, POPULATE_RUN, NULL);
}

/* One pass: 0 when nothing more is worth doing. */
static size_t warm_pass(struct sp_pool *p)
{
	struct sp_class *c = &p->sectors;
	void *slots[WARM_BATCH];
	bool done[WARM_BATCH];
	size_t n = 0;
	lk_lock(&c->lock);
	/* A whole huge page at once where one is free: far fewer faults. */
	size_t huge = warm_huge(p, c);
	if (huge) {
		lk_unlock(&c->lock);
		atomic_fetch_add_explicit(&p->warm.warmed, huge, memory_order_relaxed);
		return huge >> c->shift;
	}
	size_t queued = (size_t)c->nqueue * c->group;
	if (queued < WARM_BYTES) {
		size_t max = (WARM_BYTES - queued) >> c->shift;
		n = take_clean(c, max < WARM_BATCH ? max : WARM_BATCH, slots);
	}
	lk_unlock(&c->lock);
	if (n == 0)
		return 0;
	/* Nobody else can have these slots now: fault them in, lock dropped.
	 * Every run, however short: this is not the writer's time. */
	int rc = populate_runs(c, slots, n, 1, done);
	if (rc == -EINVAL) /* no MADV_POPULATE_WRITE (Linux < 5.14) */
		atomic_store(&p->warm.unsupported, true);
	lk_lock(&c->lock);
	uint64_t dirtied = 0, warmed = 0;
	/* Sorted, a group's slots are neighbours and share their done[]. */
	for (size_t i = 0; i < n; i += c->per_group) {
		if (!done[i])
			continue; /* still clean: back to its region as it was */
		struct region *r = region_of(slots[i]);
		size_t gi = ((size_t)((char *)slots[i] - r->slots) >> c->shift) / c->per_group;
		if (bit_get(r->clean_bits, gi)) {
			bit_clear(r->clean_bits, gi);
			dirtied++;
		}
		warmed += c->group;
	}
	atomic_fetch_add_explicit(&c->dirty_groups, dirtied, memory_order_relaxed);
	class_put(c, n, slots); /* the dirty ones are queued */
	lk_unlock(&c->lock);
	atomic_fetch_add_explicit(&p->warm.warmed, warmed, memory_order_relaxed);
	/* Nothing faulted in (out of memory, or no kernel support): taking
	 * the same clean slots again would only spin. */
	return warmed ? n : 0;
}

static void *warmer_main(void *arg)
{
	struct sp_pool *p = arg;
	struct warmer *w = &p->warm;
	os_name_thread("sfs-prefault");
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		if (!atomic_load(&w->wanted)) {
			pthread_cond_wait(&w->wake, &w->lock);
			continue;
		}
		atomic_store(&w->wanted, false);
		pthread_mutex_unlock(&w->lock);
		while (atomic_load(&w->on) && warm_pass(p) != 0)
			;
		atomic_fetch_add(&w->rounds, 1);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

void sp_warm(struct sp_pool *p)
{
	struct warmer *w = &p->warm;
	/* Hints read without the lock: most large writes find the thread
	 * already asked, and pay one load. */
	if (!atomic_load_explicit(&w->on, memory_order_relaxed) ||
	    atomic_load_explicit(&w->wanted, memory_order_relaxed) ||
	    atomic_load_explicit(&w->unsupported, memory_order_relaxed))
		return;
	pthread_mutex_lock(&w->lock);
	if (w->running && !atomic_load(&w->wanted)) {
		atomic_store(&w->wanted, true);
		pthread_cond_signal(&w->wake);
	}
	pthread_mutex_unlock(&w->lock);
}

int sp_set_prefault(struct sp_pool *p, bool on)
{
	struct warmer *w = &p->warm;
	int rc = 0;
	pthread_mutex_lock(&w->toggle);
	if (on && !w->running) {
		/* The thread takes no signals: they are the process's to handle. */
		pthread_mutex_lock(&w->lock);
		w->stop = false;
		atomic_store(&w->wanted, false);
		rc = os_thread_start(&w->thread, warmer_main, p);
		w->running = rc == 0;
		atomic_store(&w->on, w->running);
		pthread_mutex_unlock(&w->lock);
	} else if (!on && w->running) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		w->running = false;
		atomic_store(&w->on, false);
		pthread_cond_signal(&w->wake);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	pthread_mutex_unlock(&w->toggle);
	return rc;
}
