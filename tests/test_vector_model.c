/* SPDX-License-Identifier: MIT */
/* test_vector_model.c - random operations against a vector and a flat model.
 *
 * The model is a plain byte array with a size and one "allocated" flag per
 * sector, following the engine's documented rules.  After every step the
 * vector's size, allocated-sector count, full contents and the pool's
 * counters must equal the model's.  Seeds: a fixed set, plus one fresh seed
 * printed first so that a failure can be replayed with `--seed N`.
 * Occasionally the limit is lowered to just above the current reservation,
 * so that operations fail with ENOSPC, and the model checks that they left
 * everything as it was.
 */
#include <errno.h>

#include "check.h"
#include "sectorfs/engine.h"
#include "vector_check.h"

struct model {
	size_t S;
	uint64_t max;          /* bytes the model can hold */
	unsigned char *data;   /* bytes at and past size are zero */
	unsigned char *alloc;  /* one flag per sector: 0 hole, 1 data, 2 unwritten */
	uint64_t size;
	bool inl;              /* the vector keeps its bytes inline */
};

static uint64_t inline_max(const struct model *m)
{
	return m->S / 2 < SP_SMALL_MAX ? m->S / 2 : SP_SMALL_MAX;
}

static struct sp_pool *pool;

static uint64_t model_sectors(const struct model *m)
{
	uint64_t n = 0;
	if (m->inl)
		return 0;
	for (uint64_t i = 0; i < m->max / m->S; i++)
		n += m->alloc[i] != 0;
	return n;
}

/* Sectors a write touches hold data; sectors an allocation gives are
 * unwritten (they read as zero and seek as holes) until written or
 * allocated again. */
static void model_touch(struct model *m, uint64_t off, uint64_t end, bool write)
{
	/* Allocating over unwritten space makes it data (as tmpfs). */
	for (uint64_t i = off / m->S; end > off && i <= (end - 1) / m->S; i++)
		m->alloc[i] = write || m->alloc[i] ? 1 : 2;
}

/* The engine's rule: a vector already inline keeps its bytes inline while
 * they fit, and so does one without sectors for a write (an allocation
 * gives it an unwritten sector); past that, they move to sector 0. */
static void model_fill(struct model *m, uint64_t off, uint64_t end, bool write)
{
	uint64_t n = end > m->size ? end : m->size;
	bool empty = !m->inl && model_sectors(m) == 0;
	if ((m->inl || (empty && write)) && n <= inline_max(m)) {
		m->inl = true;
		return;
	}
	if (m->inl) {
		/* Inline bytes move to sector 0: data, unless there were none. */
		m->inl = false;
		m->alloc[0] = m->size ? 1 : 2;
	}
	model_touch(m, off, end, write);
}

static void compare(struct model *m, struct sv_vector *v, unsigned char *buf)
{
	CHECK_EQ(sv_size(v), m->size);
	CHECK_EQ(sv_sectors(v), model_sectors(m));
	CHECK_EQ(sv_read(pool, v, buf, m->max, 0), (long long)m->size);
	CHECK(memcmp(buf, m->data, m->size) == 0);
	CHECK_EQ(sp_sector_size(pool), m->S);
	check_vector(pool, v, 1);
	CHECK_EQ(sv_inline_bytes(v) != 0, m->inl);
}

/* An offset biased towards sector boundaries and the start. */
static uint64_t pick_off(struct rng *r, const struct model *m)
{
	switch (rng_below(r, 4)) {
	case 0:
		return rng_below(r, 3 * m->S);
	case 1: {
		uint64_t b = rng_below(r, m->max / m->S) * m->S;
		uint64_t d = rng_below(r, 3);
		return b + d > 0 ? b + d - 1 : 0;
	}
	default:
		return rng_below(r, m->max);
	}
}

static uint64_t pick_len(struct rng *r, const struct model *m, uint64_t off)
{
	uint64_t room = m->max - off;
	uint64_t len;
	switch (rng_below(r, 4)) {
	case 0:
		len = rng_below(r, 16);
		break;
	case 1:
		len = m->S * rng_below(r, 4) + rng_below(r, 3) - 1;
		break;
	case 2:
		len = rng_below(r, 64 * m->S);
		break;
	default:
		len = rng_below(r, room + 1);
		break;
	}
	return len > room ? room : len;
}

static int64_t model_seek(const struct model *m, uint64_t off, bool data)
{
	if (off >= m->size)
		return -ENXIO;
	if (m->inl)
		return data ? (int64_t)off : (int64_t)m->size;
	for (uint64_t i = off / m->S; i * m->S < m->size; i++) {
		if ((m->alloc[i] == 1) == data) {
			uint64_t pos = i * m->S > off ? i * m->S : off;
			return pos < m->size ? (int64_t)pos : (data ? -ENXIO : (int64_t)m->size);
		}
	}
	return data ? -ENXIO : (int64_t)m->size;
}

static void run(size_t S, uint64_t max, uint64_t seed, int steps)
{
	struct sp_config cfg = {.sector_size = S, .limit = SP_UNLIMITED};
	CHECK_EQ(sp_create(&cfg, &pool), 0);
	struct model m = {.S = S, .max = max};
	m.data = calloc(max, 1);
	m.alloc = calloc(max / S, 1);
	unsigned char *buf = malloc(max), *src = malloc(max);
	struct sv_vector v = SV_INIT;
	struct rng r = {seed};
	int enospc = 0;
	for (int step = 0; step < steps; step++) {
		/* Now and then, leave only a little room so operations fail. */
		bool tight = rng_below(&r, 8) == 0;
		if (tight) {
			struct sp_stats st;
			sp_get_stats(pool, &st);
			CHECK_EQ(sp_set_limit(pool, st.bytes_reserved + rng_below(&r, 4) * SP_NODE_SIZE +
			                                    rng_below(&r, 3) * S),
			         0);
		}
		uint64_t off = pick_off(&r, &m);
		uint64_t len = pick_len(&r, &m, off);
		int op = (int)rng_below(&r, 9);
		switch (op) {
		case 0:
		case 1: { /* write */
			rng_fill(&r, src, len);
			ssize_t rc = sv_write(pool, &v, src, len, (int64_t)off);
			if (rc == -ENOSPC) {
				enospc++;
				break;
			}
			CHECK_EQ(rc, (long long)len);
			if (len) {
				memcpy(m.data + off, src, len);
				model_fill(&m, off, off + len, true);
				if (off + len > m.size)
					m.size = off + len;
			}
			break;
		}
		case 2: { /* append */
			if (len > m.max - m.size)
				len = m.max - m.size;
			rng_fill(&r, src, len);
			int64_t where = -1;
			ssize_t rc = sv_append(pool, &v, src, len, &where);
			if (rc == -ENOSPC) {
				enospc++;
				break;
			}
			CHECK_EQ(rc, (long long)len);
			CHECK_EQ(where, m.size);
			memcpy(m.data + m.size, src, len);
			if (len)
				model_fill(&m, m.size, m.size + len, true);
			m.size += len;
			break;
		}
		case 3: { /* resize */
			int rc = sv_resize(pool, &v, (int64_t)off);
			if (rc == -ENOSPC) {
				enospc++;
				break;
			}
			CHECK_EQ(rc, 0);
			if (off > m.size) {
				if (m.inl && off > inline_max(&m)) {
					m.inl = false;
					m.alloc[0] = m.size ? 1 : 2;
				}
				m.size = off;
			} else {
				if (off == 0)
					m.inl = false;
				memset(m.data + off, 0, m.max - off);
				for (uint64_t i = (off + S - 1) / S; i < m.max / S; i++)
					m.alloc[i] = 0;
				m.size = off;
			}
			break;
		}
		case 4: { /* punch */
			CHECK_EQ(sv_punch(pool, &v, (int64_t)off, (int64_t)len), 0);
			memset(m.data + off, 0, len);
			if (m.inl && off == 0 && len >= S)
				m.inl = false; /* sector 0 punched whole: a hole */
			for (uint64_t i = (off + S - 1) / S; !m.inl && (i + 1) * S <= off + len; i++)
				m.alloc[i] = 0;
			break;
		}
		case 5: { /* allocate */
			bool keep = rng_below(&r, 2);
			int rc = sv_allocate(pool, &v, (int64_t)off, (int64_t)len, keep);
			if (len == 0) {
				CHECK_EQ(rc, -EINVAL);
				break;
			}
			if (rc == -ENOSPC) {
				enospc++;
				break;
			}
			CHECK_EQ(rc, 0);
			model_fill(&m, off, off + len, false);
			if (!keep && off + len > m.size)
				m.size = off + len;
			break;
		}
		case 6: { /* seek */
			bool data = rng_below(&r, 2);
			CHECK_EQ(sv_seek(pool, &v, (int64_t)off, data), model_seek(&m, off, data));
			break;
		}
		case 7: { /* view */
			struct iovec iov[8];
			size_t bytes;
			sv_read_lock(&v);
			int n = sv_view(pool, &v, (int64_t)off, len, iov, 1 + (int)rng_below(&r, 8), &bytes);
			CHECK(n >= 0);
			uint64_t want = off < m.size ? (m.size - off < len ? m.size - off : len) : 0;
			CHECK(bytes <= want);
			if (n == 8 || bytes < want)
				CHECK(n >= 1);
			uint64_t pos = off;
			for (int i = 0; i < n; i++) {
				CHECK(memcmp(iov[i].iov_base, m.data + pos, iov[i].iov_len) == 0);
				pos += iov[i].iov_len;
			}
			CHECK_EQ(pos - off, bytes);
			sv_read_unlock(&v);
			break;
		}
		default: { /* read a piece */
			uint64_t want = off < m.size ? (m.size - off < len ? m.size - off : len) : 0;
			CHECK_EQ(sv_read(pool, &v, buf, len, (int64_t)off), (long long)want);
			CHECK(memcmp(buf, m.data + off, want) == 0);
			break;
		}
		}
		if (tight)
			CHECK_EQ(sp_set_limit(pool, SP_UNLIMITED), 0);
		compare(&m, &v, buf);
	}
	sv_clear(pool, &v);
	struct sp_stats st;
	sp_get_stats(pool, &st);
	CHECK_EQ(st.bytes_reserved, 0);
	CHECK_EQ(st.sectors_in_use, 0);
	CHECK_EQ(st.small_objects, 0);
	sp_destroy(pool);
	printf("S=%zu seed=%llu: %d steps, %d ENOSPC\n", S, (unsigned long long)seed, steps, enospc);
	CHECK(enospc > 0);
	free(m.data), free(m.alloc), free(buf), free(src);
}

int main(int argc, char **argv)
{
	uint64_t fresh = test_fresh_seed();
	int steps = 3000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			fresh = strtoull(argv[++i], NULL, 0);
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
	}
	printf("fresh seed: %llu (replay with --seed %llu)\n", (unsigned long long)fresh,
	       (unsigned long long)fresh);
	fflush(stdout);
	const uint64_t seeds[] = {1, 2, 0xdeadbeef, fresh};
	for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
		/* 512-byte sectors over 3 MiB reach tree height 3. */
		run(512, 3 << 20, seeds[i], steps);
		run(4096, 2 << 20, seeds[i] + 100, steps);
	}
	return 0;
}
