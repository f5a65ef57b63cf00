/* SPDX-License-Identifier: MIT */
/* sectorfs/engine.h - the sector engine: where file data lives.
 *
 * The engine stores byte arrays ("vectors") in fixed-size sectors taken from
 * a private pool.  It knows nothing of files, directories or FUSE; the
 * filesystem core (sectorfs.h) gives each regular file one vector.
 *
 * ---------------------------------------------------------------------------
 * The pool (pool.c)
 *
 *   A pool hands out sectors of one size S, a power of two from 512 B to
 *   64 KiB fixed at creation, plus 512-byte nodes for the vectors' trees.
 *   Memory comes from 32 MiB regions mapped with mmap and aligned to 32 MiB,
 *   so the region of any sector is found by masking its address:
 *
 *     region (32 MiB, aligned)
 *     +--------+--------+--------+--------+-- ... --+
 *     | header | slot 1 | slot 2 | slot 3 |         |
 *     +--------+--------+--------+--------+-- ... --+
 *     header: free bitmap (1 bit per slot), clean bitmap (1 bit per group)
 *
 *   A "group" is the unit in which memory goes back to the kernel: one page,
 *   or one slot when slots are larger than a page.  When a group becomes
 *   entirely free it is queued; once the queued groups exceed a few MiB they
 *   are returned with madvise(MADV_DONTNEED) in coalesced ranges, so memory
 *   is given back at page granularity without waiting for a region to empty,
 *   and no single call does much of it.  Returned ("clean") groups read as
 *   zero, and the pool remembers that, so asking for zeroed sectors costs no
 *   memset (and no RSS) when they come from clean groups.
 *
 *   The hot path never takes the pool lock: each thread is bound to one of
 *   16 shards, a small cache of free slots behind a lock that only threads of
 *   the same shard share.  A shard refills from, or spills to, the regions
 *   in batches under the pool lock.
 *
 *   Every byte of sector and node memory is paid for in advance: callers
 *   reserve bytes against the pool's limit (one atomic compare-and-swap that
 *   cannot overshoot), then allocate.  A reservation that does not fit fails
 *   with ENOSPC before anything is allocated.  The filesystem core reserves
 *   its metadata from the same limit.
 *
 * The vector (vector.c)
 *
 *   A vector is the seed's SectorNode: a size, a reader/writer lock and the
 *   sector pointers of a byte array.  The pointers live in a radix tree of
 *   64-way nodes (a height-0 tree is a single sector pointer, so a small file
 *   needs no node at all).  A flat array would cost 8 bytes per sector of the
 *   file's *size*; the tree costs them only for the file's *data*, so a
 *   sparse 1 TiB file with one byte written holds one sector and a few nodes.
 *
 *     struct sv_vector (32 bytes)
 *       lock | height | size | sectors | root
 *                                          |
 *                                 node: [64 pointers]       (level 2)
 *                                     /          \
 *                     node: [64 sectors]   node: [64 sectors]  (level 1)
 *
 *   A NULL pointer is a hole: it reads as zeros and costs nothing.
 *   While all of a vector's bytes fit in half a sector (2 KiB at most) they
 *   live "inline" in one small object of the pool instead (a 100-byte file
 *   costs a 128-byte object, not a 4 KiB sector); writes past that move
 *   them into sector 0 as part of the same all-or-nothing step.  Only
 *   written bytes go inline: they seek as data, while sv_allocate() on an
 *   empty vector gives an unwritten sector, a hole to SEEK_DATA.
 *   Sharing (share.c): a sector, or a whole subtree, may belong to several
 *   vectors at once (copy_file_range, clones), the pool counting the
 *   owners of each sector and node: the slots that point at it.  A shared
 *   node is never changed: before a change goes under one, the vector
 *   copies it (the copy's children gain an owner), down the path to what
 *   changes, so a copy costs one owner of a root and a change costs the
 *   nodes on its path.  Before a change touches the bytes of a shared
 *   sector (one shared itself, or under a shared node) -- a write, a
 *   zeroing, the partial sector a truncate or punch zeroes -- the vector
 *   gets a private copy ("breaks" the share); the node and sector copies
 *   are planned and reserved with the rest of the change, so a full pool
 *   refuses it with ENOSPC before anything moved.  Dropping a shared
 *   sector or a shared subtree drops this vector's ownership only.  A
 *   vector's `sectors` counts every sector it references, shared or not (a
 *   file's blocks as if it owned them), while the pool reserves and counts
 *   each sector and node once.  An inline buffer of SP_SHARED_SMALL_MIN
 *   bytes or more is shared the same way by a clone, and made the
 *   vector's own before its bytes change.
 *   Invariants, checked by sv_check():
 *     - every byte past the size, inside an allocated sector, is zero (so
 *       extending a file never reveals old data);
 *     - no tree node is empty, and the height is the smallest that covers
 *       the highest allocated sector (so shrinking gives memory back);
 *     - `sectors` counts the allocated sectors, shared ones included; the
 *       pool holds one reservation for every sector and node (whoever
 *       owns it), and counts each shared sector's and node's owners.
 *
 *   Operations that change a vector plan first (count the holes to fill and
 *   the nodes to add), reserve, allocate everything, and only then modify
 *   the tree, which cannot fail.  A failed operation therefore leaves the
 *   contents, size, counters and reservation exactly as they were.
 *
 * Concurrency
 *
 *   Pool functions are thread-safe.  A vector's operations lock it
 *   themselves: reads, seeks and views share the lock; write, resize, punch
 *   and allocate hold it exclusively.  So a reader racing a writer on the
 *   same bytes sees each write either entirely or not at all, never a torn
 *   sector; concurrent writes to one vector are serialized.  size and
 *   sectors may be read at any time without the lock (sv_size, sv_sectors)
 *   and give a value that was current at some moment during the call.
 *
 * Errors: functions return 0 (or a count) on success and a negative errno on
 * failure: -ENOSPC (limit), -ENOMEM (the system refused memory), -EFBIG
 * (offset + length beyond SV_MAX_SIZE), -EINVAL (negative offset or length),
 * -ENXIO (seek past the end, or to a negative offset, as lseek).
 */
#ifndef SECTORFS_ENGINE_H
#define SECTORFS_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- locks (lock.c): 4-byte futex locks, small enough for every file ---- */

struct lk_mutex {
	_Atomic uint32_t state; /* 0 free, 1 held, 2 held with sleepers */
};
struct lk_rwlock {
	_Atomic uint32_t state; /* reader count | writer bits, see lock.c */
};
#define LK_INIT {0}

void lk_lock(struct lk_mutex *m);
bool lk_trylock(struct lk_mutex *m);
void lk_unlock(struct lk_mutex *m);
void lk_rdlock(struct lk_rwlock *l);
void lk_rdunlock(struct lk_rwlock *l);
void lk_wrlock(struct lk_rwlock *l);
void lk_wrunlock(struct lk_rwlock *l);

/* ---- the pool (pool.c) ---- */

#define SP_SECTOR_MIN 512u
#define SP_SECTOR_MAX 65536u
#define SP_SECTOR_DEFAULT 4096u
#define SP_NODE_SIZE 512u
#define SP_SMALL_MIN 32u
#define SP_SMALL_MAX 2048u
#define SP_SMALL_CLASSES 7
#define SP_SHARED_SMALL_MIN 128u /* small objects this big or more can be shared */
#define SP_UNLIMITED UINT64_MAX

struct sp_pool;

struct sp_config {
	size_t sector_size; /* power of two in [SP_SECTOR_MIN, SP_SECTOR_MAX] */
	uint64_t limit;     /* bytes that may be reserved; SP_UNLIMITED for none */
	bool locked;        /* keep sector memory locked in RAM (never swapped) */
};

struct sp_stats {
	uint64_t sector_size;
	uint64_t sectors_in_use;  /* sectors handed out and not freed */
	uint64_t small_objects;   /* small objects handed out and not freed */
	uint64_t small_bytes;     /* their size, rounded up to their classes */
	uint64_t bytes_reserved;  /* sum of live reservations */
	uint64_t peak_reserved;   /* highest bytes_reserved ever seen */
	uint64_t limit;
	uint64_t bytes_mapped;    /* pool memory that may be resident */
	uint64_t overhead;        /* bytes_mapped - bytes handed out */
	uint64_t regions;
	uint64_t purged_bytes;    /* total ever given back to the kernel */
	uint64_t warmed_bytes;    /* total ever faulted in ahead (sp_warm) */
	uint64_t warm_rounds;     /* times the faulting-in thread finished */
	uint64_t sectors_saved;   /* what sharing saves: the sectors vectors reference
	                           * beyond the ones they hold (sp_note_sectors) */
};

/* Create a pool.  Returns 0, -EINVAL (bad sector size) or -ENOMEM. */
int sp_create(const struct sp_config *cfg, struct sp_pool **out);
/* Destroy a pool and unmap all its memory; every vector must be cleared. */
void sp_destroy(struct sp_pool *pool);

size_t sp_sector_size(const struct sp_pool *pool);

/* Reserve `bytes` against the limit: 0 or -ENOSPC.  Never overshoots, even
 * with many threads reserving at once. */
int sp_reserve(struct sp_pool *pool, uint64_t bytes);
void sp_release(struct sp_pool *pool, uint64_t bytes);
/* Change the limit.  -EBUSY if more than `limit` is already reserved.  No
 * reservation racing a lowered limit is granted above it (one that read
 * the old limit may count for an instant, then judges itself again). */
int sp_set_limit(struct sp_pool *pool, uint64_t limit);

/* Allocate n sectors into out[] (all or nothing): 0 or -ENOMEM.  With
 * `zeroed`, every sector reads as zero (clean memory is not cleared twice).
 * Sectors are not reserved by this call: reserve first. */
int sp_alloc_sectors(struct sp_pool *pool, size_t n, void **out, bool zeroed);
void sp_free_sectors(struct sp_pool *pool, size_t n, void *const *sectors);

/* Sharing.  A sector, or a small object of SP_SHARED_SMALL_MIN bytes or
 * more (a tree node, an inline buffer), may have several owners (the
 * slots that point at it in vectors and nodes that share it
 * copy-on-write); it is reserved once and freed by its last owner.  sp_share() adds an owner (the caller must be one, and
 * keep it meanwhile: an owner's lock guards the count against its own
 * drop); sp_unshare() removes one and returns true when the caller was
 * the only owner, who must then free the object and release its
 * reservation.  sp_shared(): more than one owner now (a count of one seen
 * by an owner stays one while that owner shares nothing).  sp_owners():
 * for checks. */
void sp_share(struct sp_pool *pool, void *obj);
/* sp_share() of each of n objects (one may come several times, adding an
 * owner each time). */
void sp_share_many(struct sp_pool *pool, void *const *objs, size_t n);
bool sp_unshare(struct sp_pool *pool, void *obj);
bool sp_shared(const struct sp_pool *pool, const void *obj);
uint64_t sp_owners(const struct sp_pool *pool, const void *obj);
/* The vectors tell the pool how many sectors they reference (a shared one
 * once per vector that has it) and how many distinct ones they hold, as
 * those change; sp_stats' sectors_saved is the difference. */
void sp_note_sectors(struct sp_pool *pool, int64_t referenced, int64_t held);

/* Small objects, 1 to SP_SMALL_MAX bytes, rounded up to a power of two of
 * at least SP_SMALL_MIN (sp_small_size tells the rounded size, 0 if too
 * big).  NULL on failure.  Not reserved by these calls: reserve first. */
size_t sp_small_size(size_t size);
void *sp_alloc_small(struct sp_pool *pool, size_t size, bool zeroed);
void sp_free_small(struct sp_pool *pool, void *obj);

/* A read-only area of at least one sector (1 MiB or more) that reads as
 * zero; views point holes at it. */
const void *sp_zero_area(const struct sp_pool *pool, size_t *len);

/* Return every free byte the pool can to the kernel now (thread caches
 * included).  Normally not needed: the pool does this incrementally. */
void sp_trim(struct sp_pool *pool);

/* Counters, read without a lock. */
void sp_get_stats(const struct sp_pool *pool, struct sp_stats *st);

/* Faulting in ahead of a writer.  Off by default.  When on, sp_warm()
 * (called by the vector after a write that took many new sectors) asks a
 * background thread of the pool to fault in the sectors the next
 * allocations will get, up to 2 MiB (one huge page where a free one is
 * found, see pool.c), so that the kernel zeroes fresh
 * pages on another CPU instead of in the writer's path.  The thread
 * starts with sp_set_prefault(pool, true), sleeps while there is nothing
 * to do, and sp_set_prefault(pool, false) stops and joins it (so does
 * sp_destroy).  A forked child does not inherit the thread: turn it off
 * before fork() and on again after.  0, or -errno if the thread cannot
 * start (the pool works on without it). */
int sp_set_prefault(struct sp_pool *pool, bool on);
void sp_warm(struct sp_pool *pool);

/* Fault n sectors in now, a call per run of neighbours rather than a page
 * fault per page as they are first written (sorts the array); a run that
 * covers whole huge pages gets huge pages, where the kernel has them.  For
 * sectors just allocated: what they hold may read as zeros afterwards. */
void sp_populate(struct sp_pool *pool, void **sectors, size_t n);

/* ---- the vector (vector.c) ---- */

#define SV_MAX_SIZE INT64_MAX

struct sv_vector {
	struct lk_rwlock lock;      /* guards everything below against writers */
	uint8_t height;             /* tree height; 0: root is sector 0 or NULL */
	uint8_t flags;              /* internal: a frozen view exists */
	_Atomic uint16_t inl_cap;   /* non-zero: root is an inline buffer this big */
	_Atomic uint64_t size;      /* logical size in bytes */
	_Atomic uint64_t sectors;   /* allocated sectors (0 while inline) */
	void *root;                 /* sector (height 0), node, or inline buffer */
};
#define SV_INIT {LK_INIT, 0, 0, 0, 0, 0, NULL}

void sv_init(struct sv_vector *v);
/* Free all sectors and nodes; the vector is empty (size 0) afterwards. */
void sv_clear(struct sp_pool *pool, struct sv_vector *v);

static inline uint64_t sv_size(const struct sv_vector *v)
{
	return atomic_load_explicit(&v->size, memory_order_relaxed);
}
static inline uint64_t sv_sectors(const struct sv_vector *v)
{
	return atomic_load_explicit(&v->sectors, memory_order_relaxed);
}

/* Read up to len bytes at off; short at the end.  Returns bytes or -errno. */
ssize_t sv_read(struct sp_pool *pool, struct sv_vector *v, void *buf, size_t len, int64_t off);
/* Write len bytes at off, extending the size.  All or nothing. */
ssize_t sv_write(struct sp_pool *pool, struct sv_vector *v, const void *buf, size_t len,
                 int64_t off);
/* Write at the end of the vector, atomically; *off receives where. */
ssize_t sv_append(struct sp_pool *pool, struct sv_vector *v, const void *buf, size_t len,
                  int64_t *off);
/* Set the size.  Shrinking (or keeping the size) frees every sector past it
 * and zeroes the tail of the last one; growing adds a hole.  Shrinking
 * fails (-ENOSPC, -ENOMEM, nothing changed) only when the cut goes through
 * shared data (that last sector, or a tree node over it, shared) which
 * must first be copied. */
int sv_resize(struct sp_pool *pool, struct sv_vector *v, int64_t size);
/* Deallocate [off, off+len): free whole sectors, zero partial edges.  The
 * size is unchanged.  Fails as sv_resize does, when an edge cuts through
 * shared data. */
int sv_punch(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len);
/* Give [off, off+len) sectors, as sv_allocate does, and zero it
 * (FALLOC_FL_ZERO_RANGE), in one all-or-nothing step. */
int sv_zero(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len,
            bool keep_size);
/* Give [off, off+len) sectors (zeroed where they were holes); with
 * !keep_size extend the size to off+len.  All or nothing. */
int sv_allocate(struct sp_pool *pool, struct sv_vector *v, int64_t off, int64_t len,
                bool keep_size);
/* The most bytes (whole sectors) a new vector can be given from offset 0
 * within `room` bytes of the pool's limit: its sectors and the tree nodes
 * that hold them (about 8 bytes a sector). */
uint64_t sv_fitting(const struct sp_pool *pool, uint64_t room);
/* Sharing (share.c).  sv_share() makes [dst_off, dst_off+len) of dst a
 * copy of [src_off, src_off+len) of src, len clipped at src's size
 * (copy_file_range), all or nothing, and returns the bytes copied.  Where
 * both offsets lie the same distance into a sector, every sector the
 * destination range covers whole takes src's sector itself, shared (a hole
 * or unwritten space in src becomes a shared sector of zeros: data, as a
 * copy makes it), a whole subtree of src's tree at a time where the range
 * covers it and all its sectors are written; only partial sectors at the
 * edges are copied (not a last one that ends src and, after the copy,
 * dst, two vectors: it is shared too); otherwise every byte is copied.
 * src and dst may be one vector if the ranges do not overlap.
 * sv_clone() makes an empty dst a copy of src -- size, data, holes,
 * unwritten space -- sharing src's whole tree, or its inline buffer
 * (copied if smaller than SP_SHARED_SMALL_MIN).
 * 0, -ENOSPC or -ENOMEM. */
ssize_t sv_share(struct sp_pool *pool, struct sv_vector *dst, int64_t dst_off,
                 struct sv_vector *src, int64_t src_off, uint64_t len);
int sv_clone(struct sp_pool *pool, struct sv_vector *dst, struct sv_vector *src);

/* Offset of the next data (data=true) or hole at or after off, as lseek's
 * SEEK_DATA/SEEK_HOLE; the end of the vector counts as a hole.  -ENXIO when
 * off >= size. */
int64_t sv_seek(struct sp_pool *pool, struct sv_vector *v, int64_t off, bool data);

/* Zero-copy view.  With the read lock held (sv_read_lock), fill iov[] with at
 * most max entries pointing straight into the sectors of [off, off+len)
 * (clipped to the size); holes point into the pool's zero area.  Adjacent
 * sectors that are adjacent in memory share one entry.  Returns the number of
 * entries and sets *bytes to what they cover (less than asked only if max was
 * too small or the range crosses the end).  The memory stays valid and
 * unchanged until sv_read_unlock. */
void sv_read_lock(struct sv_vector *v);
void sv_read_unlock(struct sv_vector *v);
int sv_view(struct sp_pool *pool, struct sv_vector *v, int64_t off, size_t len,
            struct iovec *iov, int max, size_t *bytes);

/* Inline bytes of a vector (0 when its data is in sectors): what it holds
 * in a small object instead of sectors. */
static inline size_t sv_inline_bytes(const struct sv_vector *v)
{
	return atomic_load_explicit(&v->inl_cap, memory_order_relaxed);
}

/* Frozen views (frozen.c): the bytes of a vector as they are at
 * sv_freeze(), readable while writers go on changing the vector; writers
 * keep a copy of each sector they change before the reader has read it
 * (copy-on-write).  For saving a filesystem without stopping it.
 *   - sv_frozen_runs(): the runs of data at the freeze, as pairs of
 *     [start, end) offsets (holes need not be read);
 *   - sv_frozen_read(): must be called in increasing offsets;
 *   - sv_frozen_broken(): memory for a copy could not be had: the view is
 *     incomplete and must not be used (writers are never refused for it).
 * Kept copies are not counted against the pool's limit. */
struct sv_frozen;
int sv_freeze(struct sp_pool *pool, struct sv_vector *v, struct sv_frozen **out);
uint64_t sv_frozen_size(const struct sv_frozen *f);
size_t sv_frozen_runs(const struct sv_frozen *f, const uint64_t **runs);
ssize_t sv_frozen_read(struct sp_pool *pool, struct sv_vector *v, struct sv_frozen *f, void *buf,
                       size_t len, int64_t off);
bool sv_frozen_broken(const struct sv_frozen *f);
void sv_unfreeze(struct sp_pool *pool, struct sv_vector *v, struct sv_frozen *f);
/* The sectors of the view's data that were shared at the freeze, in
 * increasing index, each with an identity: in views frozen at one instant
 * (with no change between the freezes, as a snapshot takes them), equal
 * identities mean the same bytes. */
struct sv_frozen_share {
	uint64_t index; /* the sector's index in the vector */
	uint64_t id;
};
size_t sv_frozen_shares(const struct sv_frozen *f, const struct sv_frozen_share **list);

/* Verify the invariants above (vector_check.c); returns 0 or -EUCLEAN with
 * a message in msg (if not NULL).  Adds the vector's small-object bytes
 * (nodes and inline data) to *small_bytes and its sectors to *sectors, so
 * that a caller can check a pool's counters: all of them with a NULL
 * census; with one, only those it owns alone, the shared sectors, nodes
 * and inline buffers (and what lies under a shared node) being noted in
 * the census.  After every vector of a pool was checked, sv_census_end()
 * verifies that each was seen once per owner the pool counts, adds each
 * shared sector once to *sectors and each shared node and inline buffer
 * once to *small_bytes, and frees the census (0, -EUCLEAN with a
 * message).
 * sv_census_new: 0 or -ENOMEM. */
struct sv_census;
int sv_census_new(struct sv_census **out);
int sv_check(struct sp_pool *pool, struct sv_vector *v, struct sv_census *census,
             uint64_t *sectors, uint64_t *small_bytes, char *msg, size_t msglen);
int sv_census_end(struct sp_pool *pool, struct sv_census *census, uint64_t *sectors,
                  uint64_t *small_bytes, char *msg, size_t msglen);

/* ---- the sparse map (map.c): 64-bit keys to pointers, ordered ---- */

/* A radix tree of pool nodes; not locked (its owner locks it). */
struct sm_map {
	void *root;
	uint8_t height;
	uint64_t count; /* keys present */
};
#define SM_INIT {NULL, 0, 0}

/* Insert a non-NULL value under an absent key: 0, -EEXIST, -ENOSPC or
 * -ENOMEM (the map is unchanged on failure). */
int sm_insert(struct sp_pool *pool, struct sm_map *m, uint64_t key, void *val);
void *sm_get(const struct sm_map *m, uint64_t key);
/* Remove a key; returns its value, or NULL if absent. */
void *sm_remove(struct sp_pool *pool, struct sm_map *m, uint64_t key);
/* The value of the smallest key >= key (stored in *found), or NULL. */
void *sm_next(const struct sm_map *m, uint64_t key, uint64_t *found);
/* Remove everything (the values are the caller's). */
void sm_clear(struct sp_pool *pool, struct sm_map *m);
/* Nodes the map holds (for consistency checks). */
uint64_t sm_nodes(const struct sm_map *m);

#ifdef __cplusplus
}
#endif
#endif
