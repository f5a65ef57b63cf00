/* SPDX-License-Identifier: MIT */
/* vector_check.c - sv_check(): every invariant of a vector, and the census
 * of the sectors vectors share.
 *
 * The walk visits every node and sector of the tree and checks what
 * engine.h promises: zeros past the size and in unwritten sectors, no
 * empty node, the smallest height, the sector count.  Shared sectors,
 * nodes and inline buffers are the one thing a single vector cannot
 * judge: the census, a hash table of their addresses filled by the checks
 * of every vector of a pool, counts the slots that reference each, and
 * sv_census_end() compares that with the owners the pool counts.  A shared node is walked on every visit
 * (each vector's bytes are checked against its own size), but what lies
 * under it is noted and counted on its first visit only, so that every
 * object is noted once per slot that points at it.  Meant for tests: it
 * reads every byte.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "os.h"
#include "vector_internal.h"

/* ---- the census ---- */

struct sv_census {
	const void **keys;  /* sector and node addresses (NULL: empty) */
	uint64_t *seen;     /* slots found referencing each */
	uint32_t *small;    /* a small object's bytes (a node, an inline buffer); 0: a sector */
	size_t cap, n;
	int rc;             /* -ENOMEM once a note could not be kept */
};

int sv_census_new(struct sv_census **out)
{
	struct sv_census *c = os_calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*out = c;
	return 0;
}

static size_t census_pos(const struct sv_census *c, const void *key)
{
	size_t h = (size_t)(((uintptr_t)key >> 9) * 0x9e3779b97f4a7c15ull) & (c->cap - 1);
	while (c->keys[h] && c->keys[h] != key)
		h = (h + 1) & (c->cap - 1);
	return h;
}

/* Note one more slot referencing obj, a sector (small == 0) or a small
 * object of `small` bytes; returns how many have so far. */
static uint64_t census_note(struct sv_census *c, const void *obj, uint32_t small)
{
	if (c->rc)
		return 1;
	if (2 * (c->n + 1) > c->cap) {
		struct sv_census bigger = {.cap = c->cap ? 2 * c->cap : 1024};
		bigger.keys = os_calloc(bigger.cap, sizeof(*bigger.keys));
		bigger.seen = os_calloc(bigger.cap, sizeof(*bigger.seen));
		bigger.small = os_calloc(bigger.cap, sizeof(*bigger.small));
		if (!bigger.keys || !bigger.seen || !bigger.small) {
			os_free(bigger.keys), os_free(bigger.seen), os_free(bigger.small);
			c->rc = -ENOMEM;
			return 1;
		}
		for (size_t i = 0; i < c->cap; i++) {
			if (!c->keys[i])
				continue;
			size_t h = census_pos(&bigger, c->keys[i]);
			bigger.keys[h] = c->keys[i];
			bigger.seen[h] = c->seen[i];
			bigger.small[h] = c->small[i];
		}
		os_free(c->keys), os_free(c->seen), os_free(c->small);
		c->keys = bigger.keys, c->seen = bigger.seen, c->small = bigger.small;
		c->cap = bigger.cap;
	}
	size_t h = census_pos(c, obj);
	if (!c->keys[h]) {
		c->keys[h] = obj;
		c->small[h] = small;
		c->n++;
	}
	return ++c->seen[h];
}

int sv_census_end(struct sp_pool *pool, struct sv_census *c, uint64_t *sectors,
                  uint64_t *small_bytes, char *msg, size_t msglen)
{
	int rc = c->rc;
	uint64_t nsectors = 0, nsmall = 0;
	for (size_t i = 0; rc == 0 && i < c->cap; i++) {
		if (!c->keys[i])
			continue;
		uint64_t owners = sp_owners(pool, c->keys[i]);
		if (owners != c->seen[i]) {
			if (msg)
				snprintf(msg, msglen, "a shared %s has %llu owners but %llu slots",
				         c->small[i] ? "small object" : "sector", (unsigned long long)owners,
				         (unsigned long long)c->seen[i]);
			rc = -EUCLEAN;
		}
		nsmall += c->small[i];
		nsectors += !c->small[i];
	}
	if (rc == 0 && sectors)
		*sectors += nsectors;
	if (rc == 0 && small_bytes)
		*small_bytes += nsmall;
	os_free(c->keys);
	os_free(c->seen);
	os_free(c->small);
	os_free(c);
	return rc;
}

/* ---- one vector ---- */

static bool node_empty(const struct node *n)
{
	for (unsigned c = 0; c < FAN; c++)
		if (n->slot[c])
			return false;
	return true;
}

struct checker {
	struct sp_pool *pool;
	struct sv_vector *v;
	struct sv_census *census;
	uint64_t sectors, alone, nodes, inline_bytes;
	char *msg;
	size_t msglen;
	int rc;
};

static void check_fail(struct checker *c, const char *what, uint64_t where)
{
	if (c->rc == 0 && c->msg)
		snprintf(c->msg, c->msglen, "%s (sector %llu)", what, (unsigned long long)where);
	c->rc = -EUCLEAN;
}

/* `counted`: this visit notes and counts what it finds (see the top). */
static void check_sector(struct checker *c, const void *p, uint64_t i, bool counted)
{
	const unsigned sh = sshift(c->pool);
	const uint64_t S = UINT64_C(1) << sh, size = sv_size(c->v);
	const char *sec = sec_of(p);
	c->sectors++;
	if (!counted)
		; /* a shared node's sector, noted on that node's first visit */
	else if (c->census && sp_shared(c->pool, sec))
		census_note(c->census, sec, 0);
	else
		c->alone++;
	uint64_t start = i << sh;
	/* Past the end, or anywhere in an unwritten sector: zeros only. */
	uint64_t from = unwritten(p) ? 0 : size > start ? size - start : 0;
	for (uint64_t b = from; b < S; b++)
		if (sec[b]) {
			check_fail(c, unwritten(p) ? "non-zero byte in an unwritten sector"
			                           : "non-zero byte past the end of the vector",
			           i);
			return;
		}
}

static void check_tree(struct checker *c, void *p, unsigned k, uint64_t base, bool counted)
{
	if (k == 0) {
		check_sector(c, p, base, counted);
		return;
	}
	struct node *n = p;
	if (!counted)
		; /* under a shared node seen before */
	else if (c->census && sp_shared(c->pool, n))
		counted = census_note(c->census, n, SP_NODE_SIZE) == 1;
	else
		c->nodes++;
	if (node_empty(n))
		check_fail(c, "empty node", base);
	for (unsigned ch = 0; ch < FAN; ch++)
		if (n->slot[ch])
			check_tree(c, n->slot[ch], k - 1, base + ch * cap(k - 1), counted);
}

int sv_check(struct sp_pool *pool, struct sv_vector *v, struct sv_census *census,
             uint64_t *sectors, uint64_t *small_bytes, char *msg, size_t msglen)
{
	struct checker c = {.pool = pool, .v = v, .census = census, .msg = msg, .msglen = msglen};
	lk_rdlock(&v->lock);
	if (is_inline(v)) {
		uint64_t size = sv_size(v);
		size_t bytes = sv_inline_bytes(v);
		if (!v->root || v->height || bytes != sp_small_size(bytes) || bytes > inline_max(pool) ||
		    size > bytes)
			check_fail(&c, "malformed inline vector", 0);
		else if (sv_sectors(v))
			check_fail(&c, "inline vector counts sectors", 0);
		else
			for (uint64_t b = size; b < bytes; b++)
				if (((char *)v->root)[b]) {
					check_fail(&c, "non-zero inline byte past the end", 0);
					break;
				}
		if (census && bytes >= SP_SHARED_SMALL_MIN && sp_shared(pool, v->root))
			census_note(census, v->root, (uint32_t)bytes);
		else
			c.inline_bytes = bytes;
	} else if (v->height > MAX_HEIGHT)
		check_fail(&c, "height out of range", v->height);
	else if (!v->root && v->height)
		check_fail(&c, "empty tree with a height", 0);
	else if (v->root)
		check_tree(&c, v->root, v->height, 0, true);
	if (!is_inline(v) && v->height > 0 && v->root) {
		struct node *r = v->root;
		bool beyond_first = false;
		for (unsigned ch = 1; ch < FAN; ch++)
			beyond_first |= r->slot[ch] != NULL;
		if (!beyond_first)
			check_fail(&c, "tree taller than needed", 0);
	}
	if (c.sectors != sv_sectors(v))
		check_fail(&c, "sector count differs from the tree", c.sectors);
	lk_rdunlock(&v->lock);
	if (sectors)
		*sectors += c.alone;
	if (small_bytes)
		*small_bytes += c.nodes * SP_NODE_SIZE + c.inline_bytes;
	return c.rc;
}
