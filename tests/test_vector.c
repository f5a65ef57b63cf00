/* SPDX-License-Identifier: MIT */
/* test_vector.c - unit tests of the sector vector at its edges.
 *
 * Every operation at offset 0, at sector boundaries +-1, with size 0, at the
 * largest offsets, and with holes at the start, middle and end; run for the
 * smallest, the default and the largest sector size.
 */
#include <errno.h>

#include "check.h"
#include "sectorfs/engine.h"
#include "vector_check.h"

static size_t S;
static struct sp_pool *pool;

static void setup(size_t sector)
{
	S = sector;
	struct sp_config cfg = {.sector_size = sector, .limit = SP_UNLIMITED};
	CHECK_EQ(sp_create(&cfg, &pool), 0);
}

static void teardown(void)
{
	struct sp_stats st;
	sp_get_stats(pool, &st);
	CHECK_EQ(st.sectors_in_use, 0);
	CHECK_EQ(st.small_objects, 0);
	CHECK_EQ(st.bytes_reserved, 0);
	sp_destroy(pool);
}

/* The vector is internally consistent and the pool's reservation matches
 * exactly what it holds. */
static void consistent(struct sv_vector *v)
{
	check_vector(pool, v, 1);
}

static size_t inline_max(void)
{
	return S / 2 < SP_SMALL_MAX ? S / 2 : SP_SMALL_MAX;
}

static void fill(char *b, size_t n, int seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (char)(seed + i * 7 + (i >> 8));
}

static int all_zero(const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static void expect_bytes(struct sv_vector *v, int64_t off, const char *want, size_t n)
{
	char *got = malloc(n + 1);
	CHECK_EQ(sv_read(pool, v, got, n, off), (long long)n);
	CHECK(memcmp(got, want, n) == 0);
	free(got);
}

static void expect_zero(struct sv_vector *v, int64_t off, size_t n)
{
	char *got = malloc(n + 1);
	CHECK_EQ(sv_read(pool, v, got, n, off), (long long)n);
	CHECK(all_zero(got, n));
	free(got);
}

static void test_empty(void)
{
	struct sv_vector v = SV_INIT;
	char b[16];
	CHECK_EQ(sv_read(pool, &v, b, sizeof b, 0), 0);
	CHECK_EQ(sv_read(pool, &v, b, 0, 0), 0);
	CHECK_EQ(sv_size(&v), 0);
	CHECK_EQ(sv_seek(pool, &v, 0, true), -ENXIO);
	CHECK_EQ(sv_seek(pool, &v, 0, false), -ENXIO);
	struct iovec iov[2];
	size_t bytes = 99;
	CHECK_EQ(sv_view(pool, &v, 0, 100, iov, 2, &bytes), 0);
	CHECK_EQ(bytes, 0);
	CHECK_EQ(sv_write(pool, &v, b, 0, 12345), 0); /* writes nothing, no size */
	CHECK_EQ(sv_size(&v), 0);
	CHECK_EQ(sv_punch(pool, &v, 0, 100), 0);
	CHECK_EQ(sv_resize(pool, &v, 0), 0);
	consistent(&v);
	sv_clear(pool, &v);
}

/* Writes and reads of every small length at every offset around a sector
 * boundary, each compared with a flat buffer. */
static void test_boundaries(void)
{
	const int64_t offs[] = {0, 1, (int64_t)S - 1, (int64_t)S, (int64_t)S + 1,
	                        2 * (int64_t)S - 1, 64 * (int64_t)S - 1, 64 * (int64_t)S,
	                        64 * 64 * (int64_t)S + 1};
	const size_t lens[] = {1, 2, S - 1, S, S + 1, 2 * S + 3};
	for (size_t o = 0; o < sizeof offs / sizeof *offs; o++) {
		for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
			struct sv_vector v = SV_INIT;
			size_t n = lens[l];
			char *buf = malloc(n);
			fill(buf, n, (int)(o * 31 + l));
			CHECK_EQ(sv_write(pool, &v, buf, n, offs[o]), (long long)n);
			CHECK_EQ(sv_size(&v), offs[o] + (int64_t)n);
			expect_bytes(&v, offs[o], buf, n);
			expect_zero(&v, 0, (size_t)offs[o] < 3 * S ? (size_t)offs[o] : 3 * S);
			/* Reads straddling the end are short; past it, empty. */
			char tail[8];
			CHECK_EQ(sv_read(pool, &v, tail, 8, offs[o] + (int64_t)n - 1), 1);
			CHECK_EQ(sv_read(pool, &v, tail, 8, offs[o] + (int64_t)n), 0);
			CHECK_EQ(sv_read(pool, &v, tail, 8, INT64_MAX), 0);
			/* Exactly the touched sectors are allocated, or none
			 * while the data fits inline. */
			uint64_t first = (uint64_t)offs[o] / S, last = ((uint64_t)offs[o] + n - 1) / S;
			if ((size_t)offs[o] + n <= inline_max())
				CHECK_EQ(sv_inline_bytes(&v), sp_small_size((size_t)offs[o] + n));
			else
				CHECK_EQ(sv_sectors(&v), last - first + 1);
			consistent(&v);
			sv_clear(pool, &v);
			CHECK_EQ(sv_size(&v), 0);
			consistent(&v);
			free(buf);
		}
	}
}

static void test_overflow(void)
{
	struct sv_vector v = SV_INIT;
	char b[4] = "abc";
	CHECK_EQ(sv_write(pool, &v, b, 1, -1), -EINVAL);
	CHECK_EQ(sv_read(pool, &v, b, 1, -1), -EINVAL);
	CHECK_EQ(sv_write(pool, &v, b, 2, INT64_MAX - 1), -EFBIG);
	CHECK_EQ(sv_write(pool, &v, b, 1, INT64_MAX), -EFBIG);
	CHECK_EQ(sv_write(pool, &v, b, (size_t)-1, 0), -EINVAL);
	CHECK_EQ(sv_size(&v), 0);
	/* The very last byte a vector can hold. */
	CHECK_EQ(sv_write(pool, &v, b, 1, INT64_MAX - 1), 1);
	CHECK_EQ(sv_size(&v), INT64_MAX);
	CHECK_EQ(sv_sectors(&v), 1);
	char c = 0;
	CHECK_EQ(sv_read(pool, &v, &c, 1, INT64_MAX - 1), 1);
	CHECK_EQ(c, 'a');
	CHECK_EQ(sv_read(pool, &v, &c, (size_t)-1 / 2, INT64_MAX - 1), 1);
	CHECK_EQ(sv_seek(pool, &v, 0, true), (INT64_MAX - 1) / (int64_t)S * (int64_t)S);
	CHECK_EQ(sv_seek(pool, &v, 0, false), 0);
	CHECK_EQ(sv_seek(pool, &v, INT64_MAX - 1, false), INT64_MAX);
	CHECK_EQ(sv_seek(pool, &v, -5, true), -ENXIO);
	consistent(&v);
	CHECK_EQ(sv_resize(pool, &v, -1), -EINVAL);
	CHECK_EQ(sv_resize(pool, &v, INT64_MAX), 0);
	/* A punch of the last byte zeroes it but keeps its (partial) sector;
	 * a punch from the sector's start to the maximum frees it. */
	CHECK_EQ(sv_punch(pool, &v, INT64_MAX - 1, INT64_MAX), 0);
	CHECK_EQ(sv_sectors(&v), 1);
	CHECK_EQ(sv_read(pool, &v, &c, 1, INT64_MAX - 1), 1);
	CHECK_EQ(c, 0);
	CHECK_EQ(sv_punch(pool, &v, (INT64_MAX - 1) / (int64_t)S * (int64_t)S, INT64_MAX), 0);
	CHECK_EQ(sv_sectors(&v), 0);
	CHECK_EQ(sv_punch(pool, &v, -1, 1), -EINVAL);
	CHECK_EQ(sv_punch(pool, &v, 0, -1), -EINVAL);
	CHECK_EQ(sv_allocate(pool, &v, 0, 0, false), -EINVAL);
	CHECK_EQ(sv_allocate(pool, &v, INT64_MAX, 1, false), -EFBIG);
	CHECK_EQ(sv_allocate(pool, &v, 1, INT64_MAX, false), -EFBIG);
	/* A whole-range allocation is more than the machine has (ENOMEM), or
	 * than the limit allows (ENOSPC); either way it changes nothing. */
	CHECK_EQ(sv_allocate(pool, &v, 0, INT64_MAX, true), -ENOMEM);
	CHECK_EQ(sp_set_limit(pool, (uint64_t)1 << 30), 0);
	CHECK_EQ(sv_allocate(pool, &v, 0, INT64_MAX, true), -ENOSPC);
	CHECK_EQ(sp_set_limit(pool, SP_UNLIMITED), 0);
	CHECK_EQ(sv_sectors(&v), 0);
	consistent(&v);
	sv_clear(pool, &v);
	consistent(&v);
}

/* Nothing an earlier vector held can be read through a new one, and nothing
 * a vector held before a shrink reappears when it grows again. */
static void test_extend_reads_zero(void)
{
	char *junk = malloc(8 * S);
	memset(junk, 0xA5, 8 * S);
	struct sv_vector a = SV_INIT, b = SV_INIT;
	for (int round = 0; round < 3; round++) {
		CHECK_EQ(sv_write(pool, &a, junk, 8 * S, 0), (long long)(8 * S));
		sv_clear(pool, &a);
	}
	/* b reuses a's sectors: a one-byte write in the middle of a sector. */
	CHECK_EQ(sv_write(pool, &b, "x", 1, (int64_t)S / 2), 1);
	CHECK_EQ(sv_resize(pool, &b, (int64_t)(2 * S)), 0);
	char *got = malloc(2 * S);
	CHECK_EQ(sv_read(pool, &b, got, 2 * S, 0), (long long)(2 * S));
	CHECK(all_zero(got, S / 2));
	CHECK_EQ(got[S / 2], 'x');
	CHECK(all_zero(got + S / 2 + 1, 2 * S - S / 2 - 1));

	/* Shrink into a sector, then grow: the old tail reads as zero. */
	CHECK_EQ(sv_write(pool, &b, junk, S, 0), (long long)S);
	CHECK_EQ(sv_resize(pool, &b, 10), 0);
	CHECK_EQ(sv_sectors(&b), 1);
	CHECK_EQ(sv_resize(pool, &b, (int64_t)(3 * S)), 0);
	CHECK_EQ(sv_read(pool, &b, got, 2 * S, 0), (long long)(2 * S));
	CHECK(memcmp(got, junk, 10) == 0);
	CHECK(all_zero(got + 10, 2 * S - 10));
	consistent(&b);

	/* Write past the end inside the last sector: the gap is zero. */
	CHECK_EQ(sv_resize(pool, &b, 5), 0);
	CHECK_EQ(sv_write(pool, &b, "yz", 2, 20), 2);
	CHECK_EQ(sv_read(pool, &b, got, 22, 0), 22);
	CHECK(memcmp(got, junk, 5) == 0);
	CHECK(all_zero(got + 5, 15));
	CHECK(memcmp(got + 20, "yz", 2) == 0);
	consistent(&b);

	/* Extending via allocate reveals zeros too. */
	CHECK_EQ(sv_resize(pool, &b, 3), 0);
	CHECK_EQ(sv_allocate(pool, &b, 0, (int64_t)(4 * S), false), 0);
	CHECK_EQ(sv_size(&b), 4 * S);
	CHECK_EQ(sv_sectors(&b), 4);
	CHECK_EQ(sv_read(pool, &b, got, 2 * S, 0), (long long)(2 * S));
	CHECK(memcmp(got, junk, 3) == 0);
	CHECK(all_zero(got + 3, 2 * S - 3));
	consistent(&b);
	sv_clear(pool, &b);
	free(got);
	free(junk);
}

/* Holes at the start, in the middle, and at the end; seek and view over
 * them. */
static void test_holes(void)
{
	struct sv_vector v = SV_INIT;
	char *buf = malloc(4 * S);
	fill(buf, 4 * S, 3);
	/* data in sectors 2-3 and 70; holes at 0-1, 4-69, and 71..end */
	CHECK_EQ(sv_write(pool, &v, buf, 2 * S, (int64_t)(2 * S)), (long long)(2 * S));
	CHECK_EQ(sv_write(pool, &v, buf, S, (int64_t)(70 * S)), (long long)S);
	CHECK_EQ(sv_resize(pool, &v, (int64_t)(100 * S)), 0);
	CHECK_EQ(sv_sectors(&v), 3);
	int64_t s = (int64_t)S;
	CHECK_EQ(sv_seek(pool, &v, 0, true), 2 * s);
	CHECK_EQ(sv_seek(pool, &v, 0, false), 0);
	CHECK_EQ(sv_seek(pool, &v, 2 * s + 5, true), 2 * s + 5);
	CHECK_EQ(sv_seek(pool, &v, 2 * s + 5, false), 4 * s);
	CHECK_EQ(sv_seek(pool, &v, 4 * s, true), 70 * s);
	CHECK_EQ(sv_seek(pool, &v, 70 * s, false), 71 * s);
	CHECK_EQ(sv_seek(pool, &v, 71 * s, true), -ENXIO);
	CHECK_EQ(sv_seek(pool, &v, 100 * s - 1, false), 100 * s - 1);
	CHECK_EQ(sv_seek(pool, &v, 100 * s, false), -ENXIO);
	expect_zero(&v, 0, 2 * S);
	expect_bytes(&v, 2 * s, buf, 2 * S);
	expect_zero(&v, 4 * s, 66 * S);
	expect_bytes(&v, 70 * s, buf, S);
	expect_zero(&v, 71 * s, 29 * S);

	/* The view covers holes with the zero area and data in place. */
	struct iovec iov[16];
	size_t bytes;
	sv_read_lock(&v);
	int n = sv_view(pool, &v, 0, 100 * S, iov, 16, &bytes);
	CHECK(n >= 4);
	CHECK_EQ(bytes, 100 * S);
	size_t zlen;
	const char *zero = sp_zero_area(pool, &zlen);
	size_t pos = 0;
	for (int i = 0; i < n; i++) {
		if (pos >= 2 * S && pos < 4 * S)
			CHECK(iov[i].iov_base != zero);
		if (iov[i].iov_base == zero)
			CHECK(all_zero(iov[i].iov_base, iov[i].iov_len));
		pos += iov[i].iov_len;
	}
	/* Too few entries: a partial view. */
	n = sv_view(pool, &v, 0, 100 * S, iov, 1, &bytes);
	CHECK_EQ(n, 1);
	CHECK_EQ(bytes, 2 * S);
	sv_read_unlock(&v);
	consistent(&v);

	/* Punch: partial edges are zeroed, whole sectors freed. */
	CHECK_EQ(sv_punch(pool, &v, 2 * s + 1, s), 0);
	CHECK_EQ(sv_sectors(&v), 3);
	char got[8];
	CHECK_EQ(sv_read(pool, &v, got, 1, 2 * s), 1);
	CHECK_EQ(got[0], buf[0]);
	expect_zero(&v, 2 * s + 1, S);
	CHECK_EQ(sv_read(pool, &v, got, 1, 3 * s + 1), 1);
	CHECK_EQ(got[0], buf[S + 1]);
	CHECK_EQ(sv_punch(pool, &v, 2 * s, 2 * s), 0);
	CHECK_EQ(sv_sectors(&v), 1);
	CHECK_EQ(sv_seek(pool, &v, 0, true), 70 * s);
	CHECK_EQ(sv_size(&v), 100 * S);
	consistent(&v);
	/* Punching the last sector collapses the tree back to nothing. */
	CHECK_EQ(sv_punch(pool, &v, 0, INT64_MAX), 0);
	CHECK_EQ(sv_sectors(&v), 0);
	CHECK_EQ(sv_seek(pool, &v, 0, true), -ENXIO);
	consistent(&v);
	sv_clear(pool, &v);
	free(buf);
}

/* A sparse vector far past 4 GiB holds only what was written. */
static void test_sparse_far(void)
{
	struct sv_vector v = SV_INIT;
	int64_t far = (int64_t)1 << 40;
	CHECK_EQ(sv_write(pool, &v, "end", 3, far), 3);
	CHECK_EQ(sv_write(pool, &v, "start", 5, 0), 5);
	CHECK_EQ(sv_sectors(&v), 2);
	CHECK_EQ(sv_seek(pool, &v, 5, true), 5); /* sector 0 is data */
	CHECK_EQ(sv_seek(pool, &v, (int64_t)S, true), far / (int64_t)S * (int64_t)S);
	CHECK_EQ(sv_seek(pool, &v, 0, false), (int64_t)S);
	expect_zero(&v, far - 4096, 4096);
	expect_bytes(&v, far, "end", 3);
	consistent(&v);
	/* Shrinking back below the far sector frees it and the nodes above it. */
	CHECK_EQ(sv_resize(pool, &v, 5), 0);
	CHECK_EQ(sv_sectors(&v), 1);
	consistent(&v);
	struct sp_stats st;
	sp_get_stats(pool, &st);
	CHECK_EQ(st.small_objects, 0);
	sv_clear(pool, &v);
}

static void test_append_and_keep_size(void)
{
	struct sv_vector v = SV_INIT;
	int64_t where = -1;
	CHECK_EQ(sv_append(pool, &v, "abc", 3, &where), 3);
	CHECK_EQ(where, 0);
	CHECK_EQ(sv_append(pool, &v, "de", 2, &where), 2);
	CHECK_EQ(where, 3);
	expect_bytes(&v, 0, "abcde", 5);
	/* Preallocate past the end without changing the size. */
	CHECK_EQ(sv_allocate(pool, &v, 0, (int64_t)(3 * S), true), 0);
	CHECK_EQ(sv_size(&v), 5);
	CHECK_EQ(sv_sectors(&v), 3);
	CHECK_EQ(sv_seek(pool, &v, 0, false), 5);
	CHECK_EQ(sv_seek(pool, &v, 5, true), -ENXIO);
	consistent(&v);
	/* Growing keeps the preallocated (zero) sectors; shrinking frees them. */
	CHECK_EQ(sv_resize(pool, &v, (int64_t)(2 * S)), 0);
	CHECK_EQ(sv_sectors(&v), 3);
	expect_zero(&v, 5, 2 * S - 5);
	CHECK_EQ(sv_resize(pool, &v, (int64_t)(2 * S)), 0); /* same size trims */
	CHECK_EQ(sv_sectors(&v), 2);
	consistent(&v);
	sv_clear(pool, &v);
}

/* The limit is exact: a write that needs one byte more than is left fails
 * with ENOSPC and changes nothing; with that byte it succeeds. */
static void test_limit(void)
{
	struct sv_vector v = SV_INIT;
	char *buf = malloc(200 * S);
	fill(buf, 200 * S, 9);
	CHECK_EQ(sv_write(pool, &v, buf, 3 * S, 0), (long long)(3 * S));
	struct sp_stats before;
	sp_get_stats(pool, &before);
	/* 130 sectors at 70: fills holes and adds height and leaves. */
	uint64_t need = 0;
	for (int attempt = 0;; attempt++) {
		CHECK_EQ(sp_set_limit(pool, before.bytes_reserved + need), 0);
		ssize_t rc = sv_write(pool, &v, buf, 130 * S, (int64_t)(70 * S));
		if (rc > 0)
			break;
		CHECK_EQ(rc, -ENOSPC);
		CHECK_EQ(sv_size(&v), 3 * S);
		CHECK_EQ(sv_sectors(&v), 3);
		consistent(&v);
		need += SP_NODE_SIZE;
		CHECK(attempt < 100000);
	}
	struct sp_stats after;
	sp_get_stats(pool, &after);
	CHECK_EQ(after.bytes_reserved - before.bytes_reserved, need);
	CHECK_EQ(after.bytes_reserved, after.limit);
	CHECK(after.peak_reserved >= after.bytes_reserved);
	CHECK_EQ(sp_set_limit(pool, after.bytes_reserved - 1), -EBUSY);
	CHECK_EQ(sp_set_limit(pool, SP_UNLIMITED), 0);
	expect_bytes(&v, 70 * (int64_t)S, buf, 130 * S);
	consistent(&v);
	sv_clear(pool, &v);
	free(buf);
}

/* Views merge sectors that are adjacent in memory and stay within bounds. */
static void test_view_bounds(void)
{
	struct sv_vector v = SV_INIT;
	char *buf = malloc(16 * S);
	fill(buf, 16 * S, 5);
	CHECK_EQ(sv_write(pool, &v, buf, 16 * S, 0), (long long)(16 * S));
	struct iovec iov[64];
	size_t bytes;
	sv_read_lock(&v);
	int n = sv_view(pool, &v, 3, 16 * S, iov, 64, &bytes);
	CHECK(n >= 1 && n <= 16);
	CHECK_EQ(bytes, 16 * S - 3);
	size_t pos = 3;
	for (int i = 0; i < n; i++) {
		CHECK(memcmp(iov[i].iov_base, buf + pos, iov[i].iov_len) == 0);
		pos += iov[i].iov_len;
	}
	CHECK_EQ(sv_view(pool, &v, (int64_t)(16 * S), 10, iov, 64, &bytes), 0);
	CHECK_EQ(bytes, 0);
	CHECK_EQ(sv_view(pool, &v, -1, 10, iov, 64, &bytes), -EINVAL);
	CHECK_EQ(sv_view(pool, &v, 0, 10, iov, 0, &bytes), 0);
	CHECK_EQ(bytes, 0);
	sv_read_unlock(&v);
	sv_clear(pool, &v);
	free(buf);
}

/* Small data lives inline, and moves to sectors, and back to nothing, with
 * the same contents whatever the path. */
static void test_inline(void)
{
	const size_t IM = inline_max();
	char *buf = malloc(4 * S);
	fill(buf, 4 * S, 11);
	struct sv_vector v = SV_INIT;
	CHECK_EQ(sv_write(pool, &v, buf, 100, 0), 100);
	CHECK_EQ(sv_inline_bytes(&v), 128);
	CHECK_EQ(sv_sectors(&v), 0);
	CHECK_EQ(sv_seek(pool, &v, 5, true), 5);
	CHECK_EQ(sv_seek(pool, &v, 5, false), 100);
	consistent(&v);
	/* Growing inline, then past the limit by a write far away. */
	CHECK_EQ(sv_write(pool, &v, buf + 100, IM - 100, 100), (long long)(IM - 100));
	CHECK_EQ(sv_inline_bytes(&v), IM);
	expect_bytes(&v, 0, buf, IM);
	CHECK_EQ(sv_write(pool, &v, "z", 1, (int64_t)(5 * S)), 1);
	CHECK_EQ(sv_inline_bytes(&v), 0);
	CHECK_EQ(sv_sectors(&v), 2);
	expect_bytes(&v, 0, buf, IM);
	expect_zero(&v, (int64_t)IM, 5 * S - IM);
	consistent(&v);
	/* Shrinking a tree keeps it a tree; emptying it allows inline again. */
	CHECK_EQ(sv_resize(pool, &v, 10), 0);
	CHECK_EQ(sv_sectors(&v), 1);
	CHECK_EQ(sv_resize(pool, &v, 0), 0);
	CHECK_EQ(sv_sectors(&v), 0);
	/* A sparse size with no sectors, then a small write: inline, zeros
	 * before it. */
	CHECK_EQ(sv_resize(pool, &v, 50), 0);
	CHECK_EQ(sv_write(pool, &v, "ab", 2, 60), 2);
	CHECK_EQ(sv_inline_bytes(&v), 64);
	expect_zero(&v, 0, 60);
	expect_bytes(&v, 60, "ab", 2);
	/* Punch, shrink and grow inside inline data. */
	CHECK_EQ(sv_punch(pool, &v, 61, 100), 0);
	expect_bytes(&v, 60, "a\0", 2);
	CHECK_EQ(sv_resize(pool, &v, 61), 0);
	CHECK_EQ(sv_resize(pool, &v, 62), 0);
	expect_bytes(&v, 60, "a\0", 2);
	/* A view of inline data is one piece. */
	struct iovec iov[2];
	size_t bytes;
	sv_read_lock(&v);
	CHECK_EQ(sv_view(pool, &v, 60, 10, iov, 2, &bytes), 1);
	CHECK_EQ(bytes, 2);
	sv_read_unlock(&v);
	consistent(&v);
	/* Growing past the limit by resize moves the bytes into sector 0. */
	CHECK_EQ(sv_resize(pool, &v, (int64_t)(3 * S)), 0);
	CHECK_EQ(sv_inline_bytes(&v), 0);
	CHECK_EQ(sv_sectors(&v), 1);
	expect_bytes(&v, 60, "a\0", 2);
	expect_zero(&v, 61, 3 * S - 61);
	consistent(&v);
	sv_clear(pool, &v);
	/* Preallocating an empty vector gives an unwritten sector (a hole to
	 * SEEK_DATA), not inline bytes, which are data. */
	CHECK_EQ(sv_allocate(pool, &v, 0, 10, false), 0);
	CHECK_EQ(sv_size(&v), 10);
	CHECK_EQ(sv_inline_bytes(&v), 0);
	CHECK_EQ(sv_sectors(&v), 1);
	CHECK_EQ(sv_seek(pool, &v, 0, true), -ENXIO);
	CHECK_EQ(sv_seek(pool, &v, 0, false), 0);
	CHECK_EQ(sv_allocate(pool, &v, 0, (int64_t)(2 * S), false), 0);
	CHECK_EQ(sv_sectors(&v), 2);
	expect_zero(&v, 0, 2 * S);
	consistent(&v);
	sv_clear(pool, &v);
	/* Inline bytes stay inline when preallocated within the limit, and
	 * are data; punching sector 0 whole frees them, leaving a hole. */
	CHECK_EQ(sv_write(pool, &v, "xy", 2, 0), 2);
	CHECK_EQ(sv_allocate(pool, &v, 0, 10, true), 0);
	CHECK_EQ(sv_size(&v), 2);
	CHECK_EQ(sv_inline_bytes(&v), 32);
	CHECK_EQ(sv_seek(pool, &v, 0, false), 2);
	CHECK_EQ(sv_punch(pool, &v, 0, 1), 0);
	CHECK_EQ(sv_inline_bytes(&v), 32);
	expect_bytes(&v, 0, "\0y", 2);
	CHECK_EQ(sv_punch(pool, &v, 0, (int64_t)S), 0);
	CHECK_EQ(sv_inline_bytes(&v), 0);
	CHECK_EQ(sv_size(&v), 2);
	CHECK_EQ(sv_seek(pool, &v, 0, true), -ENXIO);
	expect_zero(&v, 0, 2);
	consistent(&v);
	sv_clear(pool, &v);
	consistent(&v);
	free(buf);
}

/* Copies share whole subtrees: a copy of a large vector costs a few nodes,
 * a clone none; a change copies the nodes on its path and one sector; a
 * cut copies the nodes it goes through; a full pool refuses both and
 * changes nothing. */
static void test_node_sharing(void)
{
	if (S > 4096)
		return; /* the same code; smaller sectors make the tree taller */
	const uint64_t N = 64 * 64 + 64 + 3; /* a full level-2 node, a full leaf, 3 more */
	struct sv_vector a = SV_INIT, b = SV_INIT, c = SV_INIT;
	struct sv_vector *all[3] = {&a, &b, &c};
	char *data = malloc(N * S), *got = malloc(N * S);
	fill(data, N * S, 5);
	CHECK_EQ(sv_write(pool, &a, data, N * S, 0), (long long)(N * S));
	struct sp_stats st0, st;
	sp_get_stats(pool, &st0);

	/* copy_file_range of all of it: the root made, a level-2 node and a
	 * leaf taken whole, one leaf made for the last 3 sectors. */
	CHECK_EQ(sv_share(pool, &b, 0, &a, 0, N * S), (long long)(N * S));
	check_vectors(pool, all, 3);
	sp_get_stats(pool, &st);
	CHECK_EQ(st.small_bytes - st0.small_bytes, 3 * SP_NODE_SIZE);
	CHECK_EQ(st.sectors_in_use, st0.sectors_in_use);
	CHECK_EQ(st.sectors_saved, N);
	CHECK_EQ(sv_sectors(&b), N);
	CHECK_EQ(sv_read(pool, &b, got, N * S, 0), (long long)(N * S));
	CHECK(memcmp(got, data, N * S) == 0);

	/* A clone: the root, shared. */
	struct sp_stats st1 = st;
	CHECK_EQ(sv_clone(pool, &c, &a), 0);
	check_vectors(pool, all, 3);
	sp_get_stats(pool, &st);
	CHECK_EQ(st.small_bytes, st1.small_bytes);
	CHECK_EQ(st.sectors_saved, 2 * N);

	/* One byte written into the clone: root, level-2 node and leaf
	 * copied, one sector; the others unchanged. */
	CHECK_EQ(sv_write(pool, &c, "!", 1, (int64_t)(100 * S + 3)), 1);
	check_vectors(pool, all, 3);
	sp_get_stats(pool, &st);
	CHECK_EQ(st.small_bytes - st1.small_bytes, 3 * SP_NODE_SIZE);
	CHECK_EQ(st.sectors_in_use, st0.sectors_in_use + 1);
	CHECK_EQ(st.sectors_saved, 2 * N - 1);
	CHECK_EQ(sv_read(pool, &a, got, N * S, 0), (long long)(N * S));
	CHECK(memcmp(got, data, N * S) == 0);
	expect_bytes(&c, (int64_t)(100 * S + 3), "!", 1);
	expect_bytes(&c, (int64_t)(100 * S + 4), data + 100 * S + 4, S - 4);

	/* A full pool: a write under shared nodes and a cut through them fail
	 * with ENOSPC and change nothing. */
	sp_get_stats(pool, &st1);
	CHECK_EQ(sp_set_limit(pool, st1.bytes_reserved + SP_NODE_SIZE), 0);
	CHECK_EQ(sv_write(pool, &b, "x", 1, (int64_t)(3000 * S)), -ENOSPC);
	CHECK_EQ(sv_resize(pool, &a, (int64_t)(2000 * S + 7)), -ENOSPC);
	CHECK_EQ(sv_punch(pool, &b, (int64_t)(10 * S), (int64_t)S), -ENOSPC);
	CHECK_EQ(sp_set_limit(pool, SP_UNLIMITED), 0);
	check_vectors(pool, all, 3);
	sp_get_stats(pool, &st);
	CHECK_EQ(st.bytes_reserved, st1.bytes_reserved);
	CHECK_EQ(st.sectors_saved, st1.sectors_saved);
	CHECK_EQ(sv_size(&a), N * S);
	CHECK_EQ(sv_read(pool, &b, got, N * S, 0), (long long)(N * S));
	CHECK(memcmp(got, data, N * S) == 0);

	/* A cut through shared nodes: the level-2 node and the leaf it goes
	 * through are copied, its tail sector made private and zeroed past
	 * the size; the subtrees past it are let go whole. */
	CHECK_EQ(sv_resize(pool, &b, (int64_t)(2000 * S + 7)), 0);
	check_vectors(pool, all, 3);
	CHECK_EQ(sv_sectors(&b), 2001);
	CHECK_EQ(sv_read(pool, &b, got, N * S, 0), (long long)(2000 * S + 7));
	CHECK(memcmp(got, data, 2000 * S + 7) == 0);
	CHECK_EQ(sv_resize(pool, &b, (int64_t)(2001 * S)), 0);
	expect_zero(&b, (int64_t)(2000 * S + 7), S - 7);
	CHECK_EQ(sv_read(pool, &a, got, N * S, 0), (long long)(N * S));
	CHECK(memcmp(got, data, N * S) == 0);

	/* A punch through shared nodes of the clone, then every copy gone:
	 * nothing left. */
	CHECK_EQ(sv_punch(pool, &c, (int64_t)(70 * S + 1), (int64_t)(4090 * S)), 0);
	check_vectors(pool, all, 3);
	expect_zero(&c, (int64_t)(71 * S), 4000 * S);
	sv_clear(pool, &a);
	check_vectors(pool, all, 3);
	expect_bytes(&c, (int64_t)(70 * S), data + 70 * S, 1);
	expect_bytes(&c, (int64_t)(4161 * S), data + 4161 * S, 2 * S);
	sv_clear(pool, &b);
	sv_clear(pool, &c);
	sp_get_stats(pool, &st);
	CHECK_EQ(st.sectors_saved, 0);
	CHECK_EQ(st.sectors_in_use, 0);
	free(data);
	free(got);
}

/* One node at two places of one tree (a leaf copied into its own file
 * twice): a punch across both copies each, a clone on top; and a
 * truncate that cuts nothing copies nothing. */
static void test_node_twice(void)
{
	struct sv_vector a = SV_INIT, v = SV_INIT, c = SV_INIT;
	struct sv_vector *all[3] = {&a, &v, &c};
	char *data = malloc(128 * S), *got = malloc(128 * S);
	fill(data, 64 * S, 9);
	memcpy(data + 64 * S, data, 64 * S);
	CHECK_EQ(sv_write(pool, &a, data, 64 * S, 0), (long long)(64 * S));
	for (int clone = 0; clone < 2; clone++) {
		CHECK_EQ(sv_share(pool, &v, 0, &a, 0, 64 * S), (long long)(64 * S));
		CHECK_EQ(sv_share(pool, &v, (int64_t)(64 * S), &a, 0, 64 * S), (long long)(64 * S));
		if (clone)
			CHECK_EQ(sv_clone(pool, &c, &v), 0);
		check_vectors(pool, all, 3);
		struct sp_stats st0, st;
		sp_get_stats(pool, &st0);
		/* Cuts nothing: nothing copied. */
		CHECK_EQ(sv_resize(pool, &v, (int64_t)(128 * S)), 0);
		CHECK_EQ(sv_punch(pool, &v, (int64_t)(200 * S), (int64_t)S), 0);
		sp_get_stats(pool, &st);
		CHECK_EQ(st.bytes_reserved, st0.bytes_reserved);
		CHECK_EQ(sv_punch(pool, &v, (int64_t)(10 * S), (int64_t)(90 * S)), 0);
		check_vectors(pool, all, 3);
		CHECK_EQ(sv_read(pool, &v, got, 128 * S, 0), (long long)(128 * S));
		CHECK(memcmp(got, data, 10 * S) == 0);
		CHECK(all_zero(got + 10 * S, 90 * S));
		CHECK(memcmp(got + 100 * S, data + 100 * S, 28 * S) == 0);
		if (clone) {
			CHECK_EQ(sv_read(pool, &c, got, 128 * S, 0), (long long)(128 * S));
			CHECK(memcmp(got, data, 128 * S) == 0);
		}
		sv_clear(pool, &v);
		sv_clear(pool, &c);
	}
	sv_clear(pool, &a);
	check_vectors(pool, all, 3);
	free(data);
	free(got);
}

/* A clone of a small file shares its inline buffer (no memory), and the
 * first change to either side gives that side a buffer of its own. */
static void test_inline_sharing(void)
{
	struct sv_vector a = SV_INIT, b = SV_INIT;
	struct sv_vector *both[2] = {&a, &b};
	char data[200];
	fill(data, sizeof data, 3);
	CHECK_EQ(sv_write(pool, &a, data, sizeof data, 0), (long long)sizeof data);
	CHECK_EQ(sv_inline_bytes(&a), 256);
	struct sp_stats st0, st;
	sp_get_stats(pool, &st0);
	CHECK_EQ(sv_clone(pool, &b, &a), 0);
	check_vectors(pool, both, 2);
	sp_get_stats(pool, &st);
	CHECK_EQ(st.small_bytes, st0.small_bytes);
	CHECK_EQ(st.bytes_reserved, st0.bytes_reserved);
	CHECK_EQ(sv_write(pool, &b, "!", 1, 7), 1);
	check_vectors(pool, both, 2);
	sp_get_stats(pool, &st);
	CHECK_EQ(st.small_bytes, st0.small_bytes + 256);
	expect_bytes(&a, 0, data, sizeof data);
	expect_bytes(&b, 7, "!", 1);
	expect_bytes(&b, 8, data + 8, sizeof data - 8);
	sv_clear(pool, &a);
	sv_clear(pool, &b);
	check_vectors(pool, both, 2);
}

int main(int argc, char **argv)
{
	const size_t sizes[] = {SP_SECTOR_MIN, SP_SECTOR_DEFAULT, SP_SECTOR_MAX};
	(void)argc, (void)argv;
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		setup(sizes[i]);
		test_empty();
		test_boundaries();
		test_overflow();
		test_extend_reads_zero();
		test_holes();
		test_sparse_far();
		test_append_and_keep_size();
		test_limit();
		test_view_bounds();
		test_inline();
		test_node_sharing();
		test_node_twice();
		test_inline_sharing();
		teardown();
		printf("sector size %zu: ok\n", sizes[i]);
	}
	struct sp_pool *p;
	struct sp_config bad = {.sector_size = 1000, .limit = SP_UNLIMITED};
	CHECK_EQ(sp_create(&bad, &p), -EINVAL);
	bad.sector_size = 256;
	CHECK_EQ(sp_create(&bad, &p), -EINVAL);
	bad.sector_size = 131072;
	CHECK_EQ(sp_create(&bad, &p), -EINVAL);
	return 0;
}
