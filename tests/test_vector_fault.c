/* SPDX-License-Identifier: MIT */
/* test_vector_fault.c - every allocation failure point of every vector
 * operation, in the manner of SQLite's malloc tests.
 *
 * For each scenario and each n = 1, 2, 3, ...: build the starting state in a
 * fresh pool, snapshot it, make the n-th allocation from now fail (once, or
 * for good), run the operation.  If it failed, it must say ENOMEM and leave
 * the vector and the pool exactly as the snapshot; if it succeeded, the
 * result must equal the same operation run without faults.  The loop ends
 * when the operation succeeds without reaching the armed point.  Leaks are
 * the sanitizers' and valgrind's to find; the pool's counters must return to
 * zero after every round.
 */
#include <errno.h>

#include "check.h"
#include "sectorfs/engine.h"
#include "vector_check.h"
#include "sectorfs/fault.h"

#define MAXB (8u << 20)

struct state {
	uint64_t size, sectors, other_sectors, other_size;
	struct sp_stats st;
	unsigned char *bytes, *other_bytes;
};

struct scenario {
	const char *name;
	size_t S;
	void (*setup)(struct sp_pool *, struct sv_vector *);
	int (*op)(struct sp_pool *, struct sv_vector *);
};

static unsigned char pattern[MAXB];

/* A second vector of the pool, which scenarios of sharing copy from (its
 * contents never change). */
static struct sv_vector other;

static void consistent(struct sp_pool *pool, struct sv_vector *v)
{
	struct sv_vector *both[2] = {v, &other};
	check_vectors(pool, both, 2);
}

static void snap(struct sp_pool *pool, struct sv_vector *v, struct state *s)
{
	s->size = sv_size(v);
	s->sectors = sv_sectors(v);
	s->other_sectors = sv_sectors(&other);
	sp_get_stats(pool, &s->st);
	uint64_t n = s->size < MAXB ? s->size : MAXB;
	s->bytes = malloc(n + 1);
	CHECK_EQ(sv_read(pool, v, s->bytes, n, 0), (long long)n);
	s->other_size = sv_size(&other);
	n = s->other_size < MAXB ? s->other_size : MAXB;
	s->other_bytes = malloc(n + 1);
	CHECK_EQ(sv_read(pool, &other, s->other_bytes, n, 0), (long long)n);
}

/* The vector copies come from never changes, whatever happens to v. */
static void same_other(const struct state *a, const struct state *b)
{
	CHECK_EQ(a->other_size, b->other_size);
	uint64_t n = a->other_size < MAXB ? a->other_size : MAXB;
	CHECK(memcmp(a->other_bytes, b->other_bytes, n) == 0);
}

static void same(const struct state *a, const struct state *b)
{
	CHECK_EQ(a->size, b->size);
	CHECK_EQ(a->sectors, b->sectors);
	CHECK_EQ(a->st.sectors_in_use, b->st.sectors_in_use);
	CHECK_EQ(a->st.small_bytes, b->st.small_bytes);
	CHECK_EQ(a->st.bytes_reserved, b->st.bytes_reserved);
	CHECK_EQ(a->st.sectors_saved, b->st.sectors_saved);
	CHECK_EQ(a->other_sectors, b->other_sectors);
	uint64_t n = a->size < MAXB ? a->size : MAXB;
	CHECK(memcmp(a->bytes, b->bytes, n) == 0);
	same_other(a, b);
}

/* ---- scenarios ---- */

static void setup_empty(struct sp_pool *p, struct sv_vector *v)
{
	(void)p, (void)v;
}

/* Data in sectors 0-2 and 70, a hole between. */
static void setup_holes(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	CHECK_EQ(sv_write(p, v, pattern, 3 * S - 7, 0), (long long)(3 * S - 7));
	CHECK_EQ(sv_write(p, v, pattern + 5, S, (int64_t)(70 * S)), (long long)S);
}

static int op_write_byte(struct sp_pool *p, struct sv_vector *v)
{
	return (int)sv_write(p, v, "x", 1, 17);
}

static int op_write_span(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	return (int)sv_write(p, v, pattern + 1, 3 * S, (int64_t)(62 * S + 3));
}

/* Fills holes, overwrites data, and needs a stash larger than the stack's. */
static int op_write_big(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	return (int)sv_write(p, v, pattern + 2, 300 * S + 11, (int64_t)S + 1);
}

/* Grows the tree by several levels at once. */
static int op_write_far(struct sp_pool *p, struct sv_vector *v)
{
	(void)p;
	return (int)sv_write(p, v, "far", 3, (int64_t)1 << 36);
}

static int op_append(struct sp_pool *p, struct sv_vector *v)
{
	int64_t where;
	return (int)sv_append(p, v, pattern + 3, 2 * sp_sector_size(p) + 1, &where);
}

static int op_allocate(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	return sv_allocate(p, v, (int64_t)S / 2, (int64_t)(200 * S), false);
}

static int op_allocate_keep(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	return sv_allocate(p, v, 0, (int64_t)(130 * S), true);
}

/* A small file, inline. */
static void setup_inline(struct sp_pool *p, struct sv_vector *v)
{
	CHECK_EQ(sv_write(p, v, pattern, 100, 0), 100);
}

static int op_inline_grow(struct sp_pool *p, struct sv_vector *v)
{
	return (int)sv_write(p, v, pattern, 200, 50);
}

/* Out of inline into a tree with nodes, in one step. */
static int op_inline_spill(struct sp_pool *p, struct sv_vector *v)
{
	return (int)sv_write(p, v, pattern + 9, 10, (int64_t)(100 * sp_sector_size(p)));
}

static int op_inline_resize(struct sp_pool *p, struct sv_vector *v)
{
	return sv_resize(p, v, (int64_t)(3 * sp_sector_size(p)));
}

/* Operations that only free must succeed whatever the injector says. */
static int op_shrink(struct sp_pool *p, struct sv_vector *v)
{
	return sv_resize(p, v, (int64_t)sp_sector_size(p) + 3);
}

static int op_punch(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	return sv_punch(p, v, 5, (int64_t)(70 * S));
}

static int op_grow(struct sp_pool *p, struct sv_vector *v)
{
	(void)p;
	return sv_resize(p, v, (int64_t)1 << 40);
}

/* ---- sharing ---- */

/* The other vector: data in sectors 0-2 and 40-41, a hole between, and
 * an unwritten stretch at 60-69; then the scenario's own setup. */
static void setup_other(struct sp_pool *p)
{
	size_t S = sp_sector_size(p);
	CHECK_EQ(sv_write(p, &other, pattern + 7, 3 * S, 0), (long long)(3 * S));
	CHECK_EQ(sv_write(p, &other, pattern + 9, 2 * S, (int64_t)(40 * S)), (long long)(2 * S));
	CHECK_EQ(sv_allocate(p, &other, (int64_t)(60 * S), (int64_t)(10 * S), false), 0);
	CHECK_EQ(sv_write(p, &other, "end", 3, (int64_t)(70 * S) + 5), 3);
}

/* v shares all of the other vector's sectors (its whole tree). */
static void setup_clone(struct sp_pool *p, struct sv_vector *v)
{
	CHECK_EQ(sv_clone(p, v, &other), 0);
}

/* The other vector small (300 bytes, inline), v sharing its buffer. */
static void setup_clone_inline(struct sp_pool *p, struct sv_vector *v)
{
	sv_clear(p, &other);
	CHECK_EQ(sv_write(p, &other, pattern + 11, 300, 0), 300);
	CHECK_EQ(sv_clone(p, v, &other), 0);
}

static int op_inline_shrink(struct sp_pool *p, struct sv_vector *v)
{
	return sv_resize(p, v, 100);
}

static int op_inline_punch(struct sp_pool *p, struct sv_vector *v)
{
	return sv_punch(p, v, 10, 20);
}

static int op_inline_clear(struct sp_pool *p, struct sv_vector *v)
{
	return sv_resize(p, v, 0);
}

/* Whole sectors shared (a hole and unwritten space become a zero sector),
 * edges filled or made private, old sectors of v dropped. */
static int op_share_aligned(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	ssize_t n = sv_share(p, v, (int64_t)S + 9, &other, 9, 65 * S);
	return n < 0 ? (int)n : 0;
}

/* Into a vector that shares already: the same sectors again, and edges
 * that must be made private. */
static int op_share_again(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	ssize_t n = sv_share(p, v, 5, &other, 5, 45 * S);
	return n < 0 ? (int)n : 0;
}

/* Offsets that do not line up: a plain copy. */
/* From the start: an inline vector's bytes are replaced with the rest. */
static int op_share_start(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	ssize_t n = sv_share(p, v, 0, &other, 0, 45 * S + 3);
	return n < 0 ? (int)n : 0;
}

static int op_share_plain(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	ssize_t n = sv_share(p, v, 3, &other, 1, 42 * S);
	return n < 0 ? (int)n : 0;
}

static int op_clone(struct sp_pool *p, struct sv_vector *v)
{
	return sv_clone(p, v, &other);
}

/* Breaking shares: a write across shared, unwritten and missing sectors;
 * a shrink, a punch and a zeroing with shared partial sectors. */
static int op_write_shared(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	ssize_t n = sv_write(p, v, pattern + 4, 64 * S, (int64_t)S + 100);
	return n < 0 ? (int)n : 0;
}

static int op_shrink_shared(struct sp_pool *p, struct sv_vector *v)
{
	return sv_resize(p, v, (int64_t)(40 * sp_sector_size(p)) + 17);
}

static int op_punch_shared(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	return sv_punch(p, v, (int64_t)S + 1, (int64_t)(40 * S));
}

static int op_zero_shared(struct sp_pool *p, struct sv_vector *v)
{
	size_t S = sp_sector_size(p);
	return sv_zero(p, v, 7, (int64_t)(64 * S), false);
}

/* ---- the driver ---- */

static struct sp_pool *new_pool(size_t S)
{
	struct sp_config cfg = {.sector_size = S, .limit = SP_UNLIMITED};
	struct sp_pool *p;
	CHECK_EQ(sp_create(&cfg, &p), 0);
	return p;
}

static void drop(struct sp_pool *p, struct sv_vector *v)
{
	sv_clear(p, v);
	sv_clear(p, &other);
	struct sp_stats st;
	sp_get_stats(p, &st);
	CHECK_EQ(st.sectors_in_use, 0);
	CHECK_EQ(st.small_objects, 0);
	CHECK_EQ(st.bytes_reserved, 0);
	sp_destroy(p);
}

static void run(const struct scenario *sc, bool persist)
{
	/* The expected outcome, without faults. */
	struct sp_pool *rp = new_pool(sc->S);
	struct sv_vector ref = SV_INIT;
	setup_other(rp);
	sc->setup(rp, &ref);
	int want = sc->op(rp, &ref);
	CHECK(want >= 0);
	struct state expect;
	snap(rp, &ref, &expect);
	drop(rp, &ref); /* and the other vector, which each pool has its own of */

	int failures = 0;
	for (long n = 1;; n++) {
		CHECK(n < 10000);
		struct sp_pool *p = new_pool(sc->S);
		struct sv_vector v = SV_INIT;
		setup_other(p);
		sc->setup(p, &v);
		struct state before, after;
		snap(p, &v, &before);
		sfs_fault_arm(n, persist);
		int rc = sc->op(p, &v);
		bool hit = sfs_fault_disarm();
		consistent(p, &v);
		snap(p, &v, &after);
		if (rc < 0) {
			CHECK_EQ(rc, -ENOMEM);
			CHECK(hit);
			same(&before, &after);
			failures++;
		} else {
			CHECK_EQ(rc, want);
			CHECK_EQ(after.size, expect.size);
			CHECK_EQ(after.sectors, expect.sectors);
			CHECK_EQ(after.st.bytes_reserved, expect.st.bytes_reserved);
			uint64_t len = after.size < MAXB ? after.size : MAXB;
			CHECK(memcmp(after.bytes, expect.bytes, len) == 0);
			same_other(&before, &after);
		}
		free(before.bytes), free(after.bytes);
		free(before.other_bytes), free(after.other_bytes);
		drop(p, &v);
		if (rc >= 0 && !hit) {
			printf("%-20s S=%-5zu %s: %ld fault points, %d clean failures\n", sc->name, sc->S,
			       persist ? "persistent" : "once      ", n - 1, failures);
			break;
		}
	}
	free(expect.bytes), free(expect.other_bytes);
}

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	for (size_t i = 0; i < MAXB; i++)
		pattern[i] = (unsigned char)(i * 131 + (i >> 9) + 1);
	const size_t sizes[] = {512, 4096};
	for (size_t k = 0; k < 2; k++) {
		size_t S = sizes[k];
		const struct scenario scs[] = {
		        {"write-byte", S, setup_empty, op_write_byte},
		        {"write-span", S, setup_empty, op_write_span},
		        {"write-big", S, setup_holes, op_write_big},
		        {"write-far", S, setup_holes, op_write_far},
		        {"append", S, setup_holes, op_append},
		        {"allocate", S, setup_holes, op_allocate},
		        {"allocate-keep", S, setup_empty, op_allocate_keep},
		        {"shrink", S, setup_holes, op_shrink},
		        {"punch", S, setup_holes, op_punch},
		        {"grow", S, setup_holes, op_grow},
		        {"inline-grow", S, setup_inline, op_inline_grow},
		        {"inline-spill", S, setup_inline, op_inline_spill},
		        {"inline-resize", S, setup_inline, op_inline_resize},
		        {"share-aligned", S, setup_holes, op_share_aligned},
		        {"share-empty", S, setup_empty, op_share_aligned},
		        {"share-inline", S, setup_inline, op_share_start},
		        {"share-inline-plain", S, setup_inline, op_share_again},
		        {"share-again", S, setup_clone, op_share_again},
		        {"share-plain", S, setup_holes, op_share_plain},
		        {"clone", S, setup_empty, op_clone},
		        {"write-shared", S, setup_clone, op_write_shared},
		        {"shrink-shared", S, setup_clone, op_shrink_shared},
		        {"punch-shared", S, setup_clone, op_punch_shared},
		        {"zero-shared", S, setup_clone, op_zero_shared},
		        {"inline-shared-write", S, setup_clone_inline, op_inline_grow},
		        {"inline-shared-spill", S, setup_clone_inline, op_inline_spill},
		        {"inline-shared-grow", S, setup_clone_inline, op_inline_resize},
		        {"inline-shared-shrink", S, setup_clone_inline, op_inline_shrink},
		        {"inline-shared-punch", S, setup_clone_inline, op_inline_punch},
		        {"inline-shared-clear", S, setup_clone_inline, op_inline_clear},
		        {"inline-shared-share", S, setup_clone_inline, op_share_start},
		};
		for (size_t i = 0; i < sizeof scs / sizeof *scs; i++) {
			run(&scs[i], false);
			run(&scs[i], true);
		}
	}
	/* Creating a pool fails cleanly at each of its allocations. */
	for (long n = 1;; n++) {
		struct sp_pool *p = NULL;
		struct sp_config cfg = {.sector_size = 4096, .limit = SP_UNLIMITED};
		sfs_fault_arm(n, false);
		int rc = sp_create(&cfg, &p);
		bool hit = sfs_fault_disarm();
		if (rc == 0) {
			sp_destroy(p);
			if (!hit) {
				printf("sp_create: %ld fault points\n", n - 1);
				break;
			}
		} else {
			CHECK_EQ(rc, -ENOMEM);
		}
	}
	return 0;
}
