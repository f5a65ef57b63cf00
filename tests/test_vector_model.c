/* SPDX-License-Identifier: MIT */
/* test_vector_model.c - random operations against vectors and flat models.
 *
 * The model of a vector is a plain byte array with a size, one "allocated"
 * flag per sector and, per sector, the identity of the sector that holds
 * it, following the engine's documented rules.  A run works on a group of
 * vectors in one pool that copy ranges into each other (sv_share, which
 * shares whole sectors) and clone each other (sv_clone), so that their
 * sectors are shared, and that write, punch, zero, truncate and allocate
 * over the shared sectors, which breaks the sharing of just the sectors
 * touched.  After every step the vector that changed must equal its model
 * (size, allocated-sector count, full contents) and the pool's counters
 * must equal the models': sectors in use (distinct identities), sectors
 * shared and the owners beyond the first, and the reservation (each
 * sector once, plus the vectors' nodes and inline bytes), with every
 * vector and the census of shared sectors consistent (sv_check).  Every
 * vector is compared in full every 64 steps.  Seeds: a fixed set, plus
 * one fresh seed printed first so that a failure can be replayed with
 * `--seed N`.  Occasionally the limit is lowered to just above the
 * current reservation, so that operations fail with ENOSPC, and the model
 * checks that they left everything as it was.
 */
#include <errno.h>

#include "check.h"
#include "sectorfs/engine.h"

#define NV_MAX 3

struct model {
	size_t S;
	uint64_t max;          /* bytes the model can hold */
	unsigned char *data;   /* bytes at and past size are zero */
	unsigned char *alloc;  /* one flag per sector: 0 hole, 1 data, 2 unwritten */
	uint32_t *id;          /* per allocated sector: which sector holds it */
	uint64_t size;
	bool inl;              /* the vector keeps its bytes inline */
};

static struct sp_pool *pool;
static bool verbose; /* --verbose: print every step */

#define TRACE(...)                                                                     \
	do {                                                                           \
		if (verbose)                                                           \
			printf(__VA_ARGS__);                                           \
	} while (0)

/* ---- sector identities: who shares what ---- */

static uint32_t *refs;      /* slots holding each identity */
static uint32_t *free_ids;  /* identities no slot holds, for reuse */
static size_t nfree, cap_ids, next_id = 1;
static uint64_t live, shared, extra; /* what the pool should count */

static uint32_t new_id(void)
{
	uint32_t id = nfree ? free_ids[--nfree] : (uint32_t)next_id++;
	if (id >= cap_ids) {
		size_t cap = cap_ids ? 2 * cap_ids : 1024;
		refs = realloc(refs, cap * sizeof *refs);
		free_ids = realloc(free_ids, cap * sizeof *free_ids);
		memset(refs + cap_ids, 0, (cap - cap_ids) * sizeof *refs);
		cap_ids = cap;
	}
	return id;
}

static void id_ref(uint32_t id)
{
	if (refs[id]++ == 0)
		live++;
	else
		extra++, shared += refs[id] == 2;
}

static void id_unref(uint32_t id)
{
	if (--refs[id] == 0) {
		live--;
		free_ids[nfree++] = id;
	} else {
		extra--, shared -= refs[id] == 1;
	}
}

/* Point sector i of m at identity id (0: none). */
static void slot_set(struct model *m, uint64_t i, uint32_t id)
{
	if (id)
		id_ref(id);
	if (m->id[i])
		id_unref(m->id[i]);
	m->id[i] = id;
}

static bool slot_shared(const struct model *m, uint64_t i)
{
	return m->id[i] && refs[m->id[i]] > 1;
}

/* A change is about to touch sector i's bytes: a private copy if shared. */
static void slot_own(struct model *m, uint64_t i)
{
	if (slot_shared(m, i))
		slot_set(m, i, new_id());
}

static void slot_clear(struct model *m, uint64_t i)
{
	m->alloc[i] = 0;
	slot_set(m, i, 0);
}

static uint64_t inline_max(const struct model *m)
{
	return m->S / 2 < SP_SMALL_MAX ? m->S / 2 : SP_SMALL_MAX;
}

static uint64_t model_sectors(const struct model *m)
{
	uint64_t n = 0;
	if (m->inl)
		return 0;
	for (uint64_t i = 0; i < m->max / m->S; i++)
		n += m->alloc[i] != 0;
	return n;
}

/* Sectors a write touches hold data, copies of their own; sectors an
 * allocation gives are unwritten (they read as zero and seek as holes)
 * until written or allocated again; an allocation copies nothing, unless
 * it is a zeroing (own). */
static void model_touch(struct model *m, uint64_t off, uint64_t end, bool write, bool own)
{
	for (uint64_t i = off / m->S; end > off && i <= (end - 1) / m->S; i++) {
		if (!m->alloc[i])
			slot_set(m, i, new_id());
		else if (write || own)
			slot_own(m, i);
		/* Allocating over unwritten space makes it data (as tmpfs). */
		m->alloc[i] = write || m->alloc[i] ? 1 : 2;
	}
}

/* The engine's rule: a vector already inline keeps its bytes inline while
 * they fit, and so does one without sectors for a write (an allocation
 * gives it an unwritten sector); past that, they move to sector 0. */
static void model_fill(struct model *m, uint64_t off, uint64_t end, bool write, bool own)
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
		slot_set(m, 0, new_id());
	}
	model_touch(m, off, end, write, own);
}

/* Shrink to size: sectors past it go, the tail is zeroed (a copy of its own
 * if it is shared and has bytes to zero). */
static void model_truncate(struct model *m, uint64_t size)
{
	uint64_t t = size / m->S;
	if (!m->inl && size % m->S && size < m->size && m->alloc[t] == 1)
		slot_own(m, t);
	if (size == 0)
		m->inl = false;
	memset(m->data + size, 0, m->max - size);
	for (uint64_t i = (size + m->S - 1) / m->S; i < m->max / m->S; i++)
		slot_clear(m, i);
	m->size = size;
}

/* The edge sectors a punch zeroes below the size become copies of their own. */
static void model_punch(struct model *m, uint64_t off, uint64_t len)
{
	uint64_t S = m->S, end = off + len, a = (off + S - 1) / S, b = end / S;
	if (!m->inl) {
		uint64_t head_end = a > b ? end : a * S, tail_start = a > b ? end : b * S;
		if (head_end > m->size)
			head_end = m->size;
		uint64_t tail_end = end < m->size ? end : m->size;
		if (off < head_end && m->alloc[off / S] == 1)
			slot_own(m, off / S);
		if (tail_start < tail_end && m->alloc[tail_start / S] == 1)
			slot_own(m, tail_start / S);
	}
	if (off < m->size)
		memset(m->data + off, 0, (end < m->size ? end : m->size) - off);
	if (m->inl && off == 0 && len >= S)
		m->inl = false; /* sector 0 punched whole: a hole */
	for (uint64_t i = a; !m->inl && (i + 1) * S <= end; i++)
		slot_clear(m, i);
}

/* sv_share: whole sectors take the source's (a hole or unwritten space
 * one shared sector of zeros) when the offsets line up; else a write. */
static void model_share(struct model *d, uint64_t doff, const struct model *s, uint64_t soff,
                        uint64_t len)
{
	uint64_t S = d->S, dend = doff + len, a = (doff + S - 1) / S, b = dend / S;
	if (len == 0)
		return;
	/* A partial last sector that ends both files (two vectors) is shared too. */
	bool tail = d != s && doff % S == soff % S && dend % S && soff + len == s->size &&
	            d->size <= dend;
	b += tail;
	if (doff % S == soff % S && !s->inl && a < b && (!d->inl || a == 0)) {
		d->inl = false; /* inline bytes all lay in sector 0, replaced */
		uint32_t zero = 0;
		uint64_t sa = (soff + S - 1) / S;
		for (uint64_t i = a; i < b; i++) {
			uint64_t j = sa + (i - a);
			uint32_t id = s->alloc[j] == 1 ? s->id[j] : zero ? zero : (zero = new_id());
			slot_set(d, i, id);
			d->alloc[i] = 1;
		}
		if (doff % S)
			model_touch(d, doff, doff + 1, true, true);
		if (dend % S && !tail)
			model_touch(d, dend - 1, dend, true, true);
	} else {
		model_fill(d, doff, dend, true, true);
	}
	memmove(d->data + doff, s->data + soff, len);
	if (dend > d->size)
		d->size = dend;
}

/* ---- comparing ---- */

static void compare(struct model *m, struct sv_vector *v, unsigned char *buf)
{
	CHECK_EQ(sv_size(v), m->size);
	CHECK_EQ(sv_sectors(v), model_sectors(m));
	CHECK_EQ(sv_read(pool, v, buf, m->max, 0), (long long)m->size);
	CHECK(memcmp(buf, m->data, m->size) == 0);
	CHECK_EQ(sv_inline_bytes(v) != 0, m->inl);
}

/* Every vector consistent, and the pool holding exactly what they do. */
static void check_pool(struct sv_vector *v, int nv, size_t S)
{
	uint64_t sectors = 0, small = 0;
	struct sv_census *census;
	CHECK_EQ(sv_census_new(&census), 0);
	for (int k = 0; k < nv; k++)
		CHECK_CLEAN(sv_check, pool, &v[k], census, &sectors, &small);
	CHECK_CLEAN(sv_census_end, pool, census, &sectors, &small);
	struct sp_stats st;
	sp_get_stats(pool, &st);
	CHECK_EQ(st.sectors_in_use, sectors);
	CHECK_EQ(st.sectors_in_use, live);
	CHECK_EQ(st.sectors_saved, extra);
	CHECK_EQ(st.bytes_reserved, sectors * S + small);
	CHECK_EQ(st.small_bytes, small);
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

struct counts {
	int enospc, shares, shared_whole;
};

/* One step on vector k of the group (the only one that changes). */
static void step(struct rng *r, struct model *ms, struct sv_vector *vs, int nv, int k,
                 unsigned char *buf, unsigned char *src, struct counts *n)
{
	struct model *m = &ms[k];
	struct sv_vector *v = &vs[k];
	const size_t S = m->S;
	uint64_t off = pick_off(r, m);
	uint64_t len = pick_len(r, m, off);
	unsigned op = (unsigned)rng_below(r, 12);
	TRACE("v%d op %u off %llu len %llu (size %llu)\n", k, op, (unsigned long long)off,
	      (unsigned long long)len, (unsigned long long)m->size);
	switch (op) {
	case 0:
	case 1: { /* write */
		rng_fill(r, src, len);
		ssize_t rc = sv_write(pool, v, src, len, (int64_t)off);
		if (rc == -ENOSPC) {
			n->enospc++;
			break;
		}
		CHECK_EQ(rc, (long long)len);
		if (len) {
			memcpy(m->data + off, src, len);
			model_fill(m, off, off + len, true, true);
			if (off + len > m->size)
				m->size = off + len;
		}
		break;
	}
	case 2: { /* append */
		if (len > m->max - m->size)
			len = m->max - m->size;
		rng_fill(r, src, len);
		int64_t where = -1;
		ssize_t rc = sv_append(pool, v, src, len, &where);
		if (rc == -ENOSPC) {
			n->enospc++;
			break;
		}
		CHECK_EQ(rc, (long long)len);
		CHECK_EQ(where, m->size);
		memcpy(m->data + m->size, src, len);
		if (len)
			model_fill(m, m->size, m->size + len, true, true);
		m->size += len;
		break;
	}
	case 3: { /* resize */
		int rc = sv_resize(pool, v, (int64_t)off);
		if (rc == -ENOSPC) {
			n->enospc++;
			break;
		}
		CHECK_EQ(rc, 0);
		if (off > m->size) {
			if (m->inl && off > inline_max(m)) {
				m->inl = false;
				m->alloc[0] = m->size ? 1 : 2;
				slot_set(m, 0, new_id());
			}
			m->size = off;
		} else {
			model_truncate(m, off);
		}
		break;
	}
	case 4: { /* punch */
		int rc = sv_punch(pool, v, (int64_t)off, (int64_t)len);
		if (rc == -ENOSPC) {
			n->enospc++;
			break;
		}
		CHECK_EQ(rc, 0);
		model_punch(m, off, len);
		break;
	}
	case 5: /* allocate, or allocate and zero */
	case 6: {
		bool keep = rng_below(r, 2), zero = rng_below(r, 2);
		int rc = zero ? sv_zero(pool, v, (int64_t)off, (int64_t)len, keep)
		              : sv_allocate(pool, v, (int64_t)off, (int64_t)len, keep);
		if (len == 0) {
			CHECK_EQ(rc, -EINVAL);
			break;
		}
		if (rc == -ENOSPC) {
			n->enospc++;
			break;
		}
		CHECK_EQ(rc, 0);
		if (zero) {
			bool stays = m->inl && (off + len > m->size ? off + len : m->size) <= inline_max(m);
			if (!stays)
				model_fill(m, off, off + len, false, true);
			if (off < m->size)
				memset(m->data + off, 0, (off + len < m->size ? off + len : m->size) - off);
		} else {
			model_fill(m, off, off + len, false, false);
		}
		if (!keep && off + len > m->size)
			m->size = off + len;
		break;
	}
	case 7: { /* seek */
		bool data = rng_below(r, 2);
		CHECK_EQ(sv_seek(pool, v, (int64_t)off, data), model_seek(m, off, data));
		break;
	}
	case 8: { /* view */
		struct iovec iov[8];
		size_t bytes;
		sv_read_lock(v);
		int cnt = sv_view(pool, v, (int64_t)off, len, iov, 1 + (int)rng_below(r, 8), &bytes);
		CHECK(cnt >= 0);
		uint64_t want = off < m->size ? (m->size - off < len ? m->size - off : len) : 0;
		CHECK(bytes <= want);
		if (cnt == 8 || bytes < want)
			CHECK(cnt >= 1);
		uint64_t pos = off;
		for (int i = 0; i < cnt; i++) {
			CHECK(memcmp(iov[i].iov_base, m->data + pos, iov[i].iov_len) == 0);
			pos += iov[i].iov_len;
		}
		CHECK_EQ(pos - off, bytes);
		sv_read_unlock(v);
		break;
	}
	case 9:
	case 10: { /* copy a range from another vector (or this one), often aligned */
		int j = (int)rng_below(r, (uint64_t)nv);
		struct model *s = &ms[j];
		uint64_t soff = rng_below(r, 2) ? off : rng_below(r, s->size + 1);
		if (rng_below(r, 2))
			soff = soff / S * S + off % S; /* the same distance into a sector */
		if (soff > s->max)
			soff = s->max;
		uint64_t clip = soff < s->size ? s->size - soff : 0;
		if (len > clip)
			len = clip;
		/* Past the source's end, the engine clips the length. */
		uint64_t ask = len == clip ? len + rng_below(r, 2) : len;
		TRACE("  share from v%d@%llu len %llu\n", j, (unsigned long long)soff,
		      (unsigned long long)ask);
		ssize_t rc = sv_share(pool, v, (int64_t)off, &vs[j], (int64_t)soff, ask);
		if (j == k && len && off < soff + len && soff < off + len) {
			CHECK_EQ(rc, -EINVAL);
			break;
		}
		if (rc == -ENOSPC) {
			n->enospc++;
			break;
		}
		CHECK_EQ(rc, (long long)len);
		uint64_t before = shared;
		model_share(m, off, s, soff, len);
		n->shares++;
		n->shared_whole += shared > before;
		break;
	}
	case 11: { /* clone another vector over this one */
		int j = (int)rng_below(r, (uint64_t)nv);
		if (j == k) {
			CHECK_EQ(sv_clone(pool, v, v), -EINVAL);
			break;
		}
		sv_clear(pool, v);
		model_truncate(m, 0);
		int rc = sv_clone(pool, v, &vs[j]);
		if (rc == -ENOSPC) {
			n->enospc++;
			break;
		}
		CHECK_EQ(rc, 0);
		const struct model *s = &ms[j];
		memcpy(m->data, s->data, m->max);
		memcpy(m->alloc, s->alloc, m->max / S);
		for (uint64_t i = 0; i < m->max / S; i++)
			slot_set(m, i, s->id[i]);
		m->size = s->size;
		m->inl = s->inl;
		break;
	}
	default: { /* read a piece */
		uint64_t want = off < m->size ? (m->size - off < len ? m->size - off : len) : 0;
		CHECK_EQ(sv_read(pool, v, buf, len, (int64_t)off), (long long)want);
		CHECK(memcmp(buf, m->data + off, want) == 0);
		break;
	}
	}
}

static void run(size_t S, uint64_t max, uint64_t seed, int steps, int nv)
{
	struct sp_config cfg = {.sector_size = S, .limit = SP_UNLIMITED};
	CHECK_EQ(sp_create(&cfg, &pool), 0);
	struct model ms[NV_MAX];
	struct sv_vector vs[NV_MAX];
	for (int k = 0; k < nv; k++) {
		ms[k] = (struct model){.S = S, .max = max};
		ms[k].data = calloc(max, 1);
		ms[k].alloc = calloc(max / S, 1);
		ms[k].id = calloc(max / S, sizeof(uint32_t));
		sv_init(&vs[k]);
	}
	unsigned char *buf = malloc(max), *src = malloc(max);
	struct rng r = {seed};
	struct counts n = {0};
	for (int i = 0; i < steps; i++) {
		/* Now and then, leave only a little room so operations fail. */
		bool tight = rng_below(&r, 8) == 0;
		if (tight) {
			struct sp_stats st;
			sp_get_stats(pool, &st);
			CHECK_EQ(sp_set_limit(pool, st.bytes_reserved + rng_below(&r, 4) * SP_NODE_SIZE +
			                                    rng_below(&r, 3) * S),
			         0);
		}
		int k = (int)rng_below(&r, (uint64_t)nv);
		step(&r, ms, vs, nv, k, buf, src, &n);
		if (tight)
			CHECK_EQ(sp_set_limit(pool, SP_UNLIMITED), 0);
		compare(&ms[k], &vs[k], buf);
		if (i % 64 == 63)
			for (int j = 0; j < nv; j++)
				compare(&ms[j], &vs[j], buf);
		check_pool(vs, nv, S);
	}
	for (int k = 0; k < nv; k++) {
		sv_clear(pool, &vs[k]);
		model_truncate(&ms[k], 0);
		free(ms[k].data), free(ms[k].alloc), free(ms[k].id);
	}
	CHECK_EQ(live, 0);
	struct sp_stats st;
	sp_get_stats(pool, &st);
	CHECK_EQ(st.bytes_reserved, 0);
	CHECK_EQ(st.sectors_in_use, 0);
	CHECK_EQ(st.small_objects, 0);
	CHECK_EQ(st.sectors_saved, 0);
	sp_destroy(pool);
	printf("S=%zu seed=%llu, %d vector%s: %d steps, %d ENOSPC, %d copies (%d sharing)\n", S,
	       (unsigned long long)seed, nv, nv > 1 ? "s" : "", steps, n.enospc, n.shares,
	       n.shared_whole);
	CHECK(n.enospc > 0);
	CHECK(n.shared_whole > 0);
	free(buf), free(src);
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
		if (!strcmp(argv[i], "--verbose"))
			verbose = true;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("fresh seed: %llu (replay with --seed %llu)\n", (unsigned long long)fresh,
	       (unsigned long long)fresh);
	fflush(stdout);
	const uint64_t seeds[] = {1, 2, 0xdeadbeef, fresh};
	for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
		/* 512-byte sectors over 3 MiB reach tree height 3. */
		run(512, 3 << 20, seeds[i], steps, 1);
		run(4096, 2 << 20, seeds[i] + 100, steps, 1);
		/* Three vectors sharing sectors. */
		run(512, 3 << 20, seeds[i] + 200, steps / 3, 3);
		run(4096, 2 << 20, seeds[i] + 300, steps / 3, 3);
	}
	free(refs);
	free(free_ids);
	return 0;
}
