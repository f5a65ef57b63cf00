/* SPDX-License-Identifier: MIT */
/* map.c - a sparse map from 64-bit keys to pointers (radix tree).
 *
 * The same 64-way tree as the vector's, for keys instead of sector indices:
 * the filesystem core uses it for its inode table (key: inode number) and
 * for the order of directory entries (key: a cookie that only grows), where
 * "the next key at or after k" is what readdir needs.
 *
 * Why a tree and not a hash table: no rehash, ever, so no call stalls on a
 * table of millions; memory follows the live keys (empty nodes are freed at
 * once); ordered iteration comes for free.  Keys that grow (inode numbers,
 * cookies) fill nodes densely.
 *
 * Nodes are 512-byte small objects of the pool, reserved against its limit
 * before they are allocated, so an insert that cannot be paid for fails
 * with ENOSPC (or ENOMEM) and leaves the map unchanged.
 */
#include <errno.h>
#include <string.h>

#include "sectorfs/engine.h"

#define FAN_SHIFT 6u
#define FAN 64u
#define MAX_HEIGHT 11u

struct mnode {
	void *slot[FAN];
};
_Static_assert(sizeof(struct mnode) == SP_NODE_SIZE, "a map node is a pool node");

static inline uint64_t span_of(unsigned h)
{
	return h * FAN_SHIFT >= 64 ? 0 : UINT64_C(1) << (FAN_SHIFT * h); /* 0: everything */
}

static inline bool covers(unsigned h, uint64_t key)
{
	uint64_t s = span_of(h);
	return s == 0 || key < s;
}

static inline unsigned child(uint64_t key, unsigned level)
{
	return (unsigned)(key >> (FAN_SHIFT * (level - 1))) & (FAN - 1);
}

void *sm_get(const struct sm_map *m, uint64_t key)
{
	if (!covers(m->height, key))
		return NULL;
	void *p = m->root;
	for (unsigned k = m->height; k >= 1 && p; k--)
		p = ((struct mnode *)p)->slot[child(key, k)];
	return p;
}

static void free_node(struct sp_pool *pool, void *n)
{
	sp_free_small(pool, n);
	sp_release(pool, SP_NODE_SIZE);
}

int sm_insert(struct sp_pool *pool, struct sm_map *m, uint64_t key, void *val)
{
	if (!val)
		return -EINVAL;
	unsigned h = m->height;
	unsigned nh = h;
	while (!covers(nh, key))
		nh++;
	/* Count the nodes this needs: new levels on top, then missing nodes
	 * on the path down. */
	unsigned need = (m->root && nh > h) ? nh - h : 0;
	if (!m->root) {
		need = nh;
	} else {
		void *p = m->root;
		unsigned k = nh;
		for (; k > h; k--) {
			if (child(key, k) != 0) /* off the old root's path */
				break;
		}
		if (k > h) {
			need += k - 1; /* levels k-1 .. 1 below a new top node */
		} else {
			for (; k >= 1; k--) {
				void *c = ((struct mnode *)p)->slot[child(key, k)];
				if (k == 1) {
					if (c)
						return -EEXIST;
					break;
				}
				if (!c) {
					need += k - 1;
					break;
				}
				p = c;
			}
			if (h == 0)
				return -EEXIST; /* key 0 at height 0 is the root itself */
		}
	}
	void *fresh[2 * MAX_HEIGHT]; /* a new chain on top plus a new path */
	if (need) {
		int rc = sp_reserve(pool, (uint64_t)need * SP_NODE_SIZE);
		if (rc)
			return rc;
		for (unsigned i = 0; i < need; i++) {
			fresh[i] = sp_alloc_small(pool, SP_NODE_SIZE, true);
			if (!fresh[i]) {
				while (i > 0)
					sp_free_small(pool, fresh[--i]);
				sp_release(pool, (uint64_t)need * SP_NODE_SIZE);
				return -ENOMEM;
			}
		}
	}
	unsigned used = 0;
	if (nh == 0) {
		m->root = val;
	} else {
		if (m->root && nh > h) {
			for (unsigned k = h + 1; k <= nh; k++) {
				struct mnode *n = fresh[used++];
				n->slot[0] = m->root;
				m->root = n;
			}
		}
		m->height = (uint8_t)nh;
		void **ref = &m->root;
		for (unsigned k = nh; k >= 1; k--) {
			if (!*ref)
				*ref = fresh[used++];
			ref = &((struct mnode *)*ref)->slot[child(key, k)];
		}
		*ref = val;
	}
	m->count++;
	return used == need ? 0 : -EUCLEAN; /* cannot happen: the count was exact */
}

static bool node_empty(const struct mnode *n)
{
	for (unsigned c = 0; c < FAN; c++)
		if (n->slot[c])
			return false;
	return true;
}

void *sm_remove(struct sp_pool *pool, struct sm_map *m, uint64_t key)
{
	if (!covers(m->height, key) || !m->root)
		return NULL;
	void **path[MAX_HEIGHT + 1];
	void **ref = &m->root;
	for (unsigned k = m->height; k >= 1; k--) {
		path[k] = ref;
		if (!*ref)
			return NULL;
		ref = &((struct mnode *)*ref)->slot[child(key, k)];
	}
	void *val = *ref;
	if (!val)
		return NULL;
	*ref = NULL;
	m->count--;
	/* Prune nodes left empty, bottom up. */
	for (unsigned k = 1; k <= m->height; k++) {
		if (!node_empty(*path[k]))
			break;
		free_node(pool, *path[k]);
		*path[k] = NULL;
	}
	/* Lower the height while the root only has its first child. */
	while (m->height > 0 && m->root) {
		struct mnode *r = m->root;
		bool more = false;
		for (unsigned c = 1; c < FAN && !more; c++)
			more = r->slot[c] != NULL;
		if (more)
			break;
		m->root = r->slot[0];
		free_node(pool, r);
		m->height--;
	}
	if (!m->root)
		m->height = 0;
	return val;
}

/* First value with key >= `key` in the subtree p of level k whose first key
 * is base. */
static void *next_in(void *p, unsigned k, uint64_t base, uint64_t key, uint64_t *found)
{
	if (k == 0) {
		*found = base;
		return p;
	}
	struct mnode *n = p;
	uint64_t span = span_of(k - 1);
	unsigned c0 = key > base ? child(key, k) : 0;
	for (unsigned c = c0; c < FAN; c++) {
		if (!n->slot[c])
			continue;
		uint64_t b = base + c * span;
		void *v = next_in(n->slot[c], k - 1, b, c == c0 && key > b ? key : b, found);
		if (v)
			return v;
	}
	return NULL;
}

void *sm_next(const struct sm_map *m, uint64_t key, uint64_t *found)
{
	if (!m->root || !covers(m->height, key))
		return NULL;
	return next_in(m->root, m->height, 0, key, found);
}

static void clear_in(struct sp_pool *pool, void *p, unsigned k)
{
	if (k == 0)
		return;
	struct mnode *n = p;
	for (unsigned c = 0; c < FAN; c++)
		if (n->slot[c])
			clear_in(pool, n->slot[c], k - 1);
	free_node(pool, n);
}

void sm_clear(struct sp_pool *pool, struct sm_map *m)
{
	if (m->root)
		clear_in(pool, m->root, m->height);
	memset(m, 0, sizeof(*m));
}

static uint64_t nodes_in(void *p, unsigned k)
{
	if (k == 0)
		return 0;
	uint64_t n = 1;
	for (unsigned c = 0; c < FAN; c++)
		if (((struct mnode *)p)->slot[c])
			n += nodes_in(((struct mnode *)p)->slot[c], k - 1);
	return n;
}

uint64_t sm_nodes(const struct sm_map *m)
{
	return m->root ? nodes_in(m->root, m->height) : 0;
}
