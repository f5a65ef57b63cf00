/* SPDX-License-Identifier: MIT */
/* check.c - sfs_check(): verify everything the core promises about its state.
 *
 * Walks the inode table and every directory and verifies: entries point at
 * live inodes of the type they record; link counts (a directory: 2 + its
 * subdirectories, and one entry naming it; anything else: its entries);
 * every linked inode is reachable from the root and every unlinked one is
 * still held (a lookup or an open handle), else it leaked; each vector's
 * own invariants; that every sector files share has as many owners as
 * slots name it (a census over all files); the per-type and inode
 * counters; and that the pool's reservation is exactly the sum of what
 * every object holds, a shared sector once, so that not one byte is
 * unaccounted for.
 *
 * Meant for tests: it expects no other thread to be using the filesystem,
 * and it costs time and memory proportional to the whole tree.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h> /* qsort */

#include "core.h"
#include "os.h"

struct node_info {
	struct sfs_inode *ip;
	uint64_t links;   /* entries naming it */
	bool reached;     /* from the root */
};

struct checker {
	struct sfs_fs *fs;
	struct node_info *nodes;
	size_t n, cap;
	char *msg;
	size_t msglen;
	int rc;
	struct sv_census *census; /* the sectors files share */
	uint64_t sectors, small, bytes;
};

static void fail(struct checker *c, const char *fmt, ...)
{
	if (c->rc == 0 && c->msg && c->msglen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->msg, c->msglen, fmt, ap);
		va_end(ap);
	}
	c->rc = -EUCLEAN;
}

static int by_ino(const void *a, const void *b)
{
	uint64_t x = ((const struct node_info *)a)->ip->ino, y = ((const struct node_info *)b)->ip->ino;
	return x < y ? -1 : x > y;
}

static struct node_info *find(struct checker *c, uint64_t ino)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		uint64_t m = c->nodes[mid].ip->ino;
		if (m == ino)
			return &c->nodes[mid];
		if (m < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int collect(struct checker *c)
{
	for (int s = 0; s < TABLE_SHARDS; s++) {
		struct table_shard *sh = &c->fs->shards[s];
		c->bytes += sm_nodes(&sh->map) * SP_NODE_SIZE;
		uint64_t key = 0;
		struct sfs_inode *ip;
		while ((ip = sm_next(&sh->map, key, &key)) != NULL) {
			if (c->n == c->cap) {
				size_t cap = c->cap ? c->cap * 2 : 1024;
				struct node_info *nn = os_realloc(c->nodes, cap * sizeof(*nn));
				if (!nn)
					return -ENOMEM;
				c->nodes = nn;
				c->cap = cap;
			}
			if (ip->ino % TABLE_SHARDS != (uint64_t)s || ip->ino / TABLE_SHARDS != key)
				fail(c, "inode %llu filed under the wrong key", (unsigned long long)ip->ino);
			c->nodes[c->n++] = (struct node_info){.ip = ip};
			key++;
		}
	}
	qsort(c->nodes, c->n, sizeof(*c->nodes), by_ino);
	return 0;
}

/* The memory one inode holds, and its own invariants. */
static void check_inode(struct checker *c, struct sfs_inode *ip)
{
	char vmsg[160] = "";
	c->bytes += sp_small_size(sizeof(*ip)) + xattr_bytes(ip);
	switch (ip->mode & S_IFMT) {
	case S_IFREG:
	case S_IFLNK: {
		uint64_t sectors = 0, small = 0;
		if (sv_check(c->fs->pool, &ip->u.data, c->census, &sectors, &small, vmsg, sizeof vmsg))
			fail(c, "inode %llu: %s", (unsigned long long)ip->ino, vmsg);
		c->sectors += sectors;
		c->small += small;
		c->bytes += sectors * sp_sector_size(c->fs->pool) + small;
		if (is_lnk(ip) && (sv_size(&ip->u.data) == 0 || sv_size(&ip->u.data) > SFS_SYMLINK_MAX))
			fail(c, "symlink %llu has a target of %llu bytes", (unsigned long long)ip->ino,
			     (unsigned long long)sv_size(&ip->u.data));
		break;
	}
	case S_IFDIR:
		if (!ip->u.dir)
			fail(c, "directory %llu has no directory", (unsigned long long)ip->ino);
		else
			c->bytes += dir_bytes(ip->u.dir);
		break;
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		break;
	default:
		fail(c, "inode %llu has type %o", (unsigned long long)ip->ino, ip->mode & S_IFMT);
	}
}

/* Entries of one directory: targets, types, counts, the hash table. */
static void check_dir(struct checker *c, struct sfs_inode *dir)
{
	struct sfs_dir *d = dir->u.dir;
	uint64_t count = 0, subdirs = 0;
	for (struct sfs_dirent *de = dir_next(d, 0); de; de = dir_next(d, de->cookie + 1)) {
		count++;
		struct node_info *ni = find(c, de->inode->ino);
		if (!ni || ni->ip != de->inode) {
			fail(c, "entry %s in %llu names a missing inode", de->name,
			     (unsigned long long)dir->ino);
			continue;
		}
		ni->links++;
		if (de->type != dt_of(de->inode->mode))
			fail(c, "entry %s records the wrong type", de->name);
		if (de->len != strlen(de->name) || de->cookie >= d->next_cookie)
			fail(c, "entry %s is malformed", de->name);
		if (dir_find(c->fs, d, de->name, de->len) != de)
			fail(c, "entry %s is not found by its name", de->name);
		if (is_dir(de->inode)) {
			subdirs++;
			if (dir_parent(de->inode) != dir)
				fail(c, "directory %s does not name %llu as its parent", de->name,
				     (unsigned long long)dir->ino);
		}
	}
	if (count != d->count || d->order.count != count)
		fail(c, "directory %llu counts %llu entries, has %llu", (unsigned long long)dir->ino,
		     (unsigned long long)d->count, (unsigned long long)count);
	if (subdirs != d->subdirs)
		fail(c, "directory %llu counts %u subdirectories, has %llu",
		     (unsigned long long)dir->ino, d->subdirs, (unsigned long long)subdirs);
	if (d->t[0].used + d->t[1].used != count)
		fail(c, "directory %llu hashes %llu entries of %llu", (unsigned long long)dir->ino,
		     (unsigned long long)(d->t[0].used + d->t[1].used), (unsigned long long)count);
}

/* Mark everything reachable from the root (breadth first, no recursion). */
static int reach(struct checker *c)
{
	size_t cap = 1024, head = 0, tail = 0;
	struct sfs_inode **queue = os_malloc(cap * sizeof(*queue));
	if (!queue)
		return -ENOMEM;
	queue[tail++] = c->fs->root;
	find(c, c->fs->root->ino)->reached = true;
	while (head < tail) {
		struct sfs_inode *dir = queue[head++];
		for (struct sfs_dirent *de = dir_next(dir->u.dir, 0); de;
		     de = dir_next(dir->u.dir, de->cookie + 1)) {
			struct node_info *ni = find(c, de->inode->ino);
			if (!ni || ni->reached)
				continue;
			ni->reached = true;
			if (!is_dir(de->inode))
				continue;
			if (tail == cap) {
				if (head > 0) {
					memmove(queue, queue + head, (tail - head) * sizeof(*queue));
					tail -= head, head = 0;
				}
				if (tail == cap) {
					struct sfs_inode **q = os_realloc(queue, cap * 2 * sizeof(*q));
					if (!q) {
						os_free(queue);
						return -ENOMEM;
					}
					queue = q, cap *= 2;
				}
			}
			queue[tail++] = de->inode;
		}
	}
	os_free(queue);
	return 0;
}

int sfs_check(struct sfs_fs *fs, char *msg, size_t msglen)
{
	struct checker c = {.fs = fs, .msg = msg, .msglen = msglen};
	if (msg && msglen)
		msg[0] = '\0';
	int rc = sv_census_new(&c.census);
	if (rc)
		goto out;
	rc = collect(&c);
	if (rc == 0 && !find(&c, fs->root->ino))
		fail(&c, "the root is not in the table");
	if (rc || c.rc)
		goto out;
	uint64_t types[4] = {0};
	for (size_t i = 0; i < c.n; i++) {
		struct sfs_inode *ip = c.nodes[i].ip;
		check_inode(&c, ip);
		if (is_dir(ip) && ip->u.dir)
			check_dir(&c, ip);
		types[is_reg(ip) ? 0 : is_dir(ip) ? 1 : is_lnk(ip) ? 2 : 3]++;
	}
	rc = reach(&c);
	if (rc)
		goto out;
	/* Each shared sector, node and inline buffer once, and with as many
	 * owners as slots. */
	uint64_t shared = 0, shared_small = 0;
	char smsg[160] = "";
	struct sv_census *census = c.census;
	c.census = NULL;
	rc = sv_census_end(fs->pool, census, &shared, &shared_small, smsg, sizeof smsg);
	if (rc == -EUCLEAN)
		fail(&c, "%s", smsg);
	if (rc)
		goto out;
	c.sectors += shared;
	c.bytes += shared * sp_sector_size(fs->pool) + shared_small;
	c.small += shared_small;
	uint64_t extra_links = 0;
	for (size_t i = 0; i < c.n && c.rc == 0; i++) {
		struct node_info *ni = &c.nodes[i];
		struct sfs_inode *ip = ni->ip;
		uint64_t nlink = atomic_load(&ip->nlink);
		unsigned long long ino = (unsigned long long)ip->ino;
		if (!is_dir(ip) && nlink > 1)
			extra_links += nlink - 1;
		if (is_dir(ip)) {
			bool alive = nlink > 0;
			if (alive && nlink != 2 + ip->u.dir->subdirs)
				fail(&c, "directory %llu has nlink %llu, not 2 + %u", ino,
				     (unsigned long long)nlink, ip->u.dir->subdirs);
			if (alive && ip != fs->root && ni->links != 1)
				fail(&c, "directory %llu is named %llu times", ino,
				     (unsigned long long)ni->links);
			if (!alive && (ni->links || ip->u.dir->count))
				fail(&c, "removed directory %llu is still named or not empty", ino);
		} else if (nlink != ni->links) {
			fail(&c, "inode %llu has nlink %llu but %llu names", ino,
			     (unsigned long long)nlink, (unsigned long long)ni->links);
		}
		if (nlink > 0 && !ni->reached)
			fail(&c, "inode %llu is linked but unreachable from the root", ino);
		if (nlink == 0 && atomic_load(&ip->nlookup) == 0 && atomic_load(&ip->refs) == 0)
			fail(&c, "inode %llu is dead but was never freed", ino);
	}
	if (c.rc)
		goto out;
	if (c.n != atomic_load(&fs->inodes))
		fail(&c, "%zu inodes in the table, %llu counted", c.n,
		     (unsigned long long)atomic_load(&fs->inodes));
	else if (c.n + extra_links != atomic_load(&fs->charged))
		fail(&c, "%zu inodes and %llu extra links, but %llu charged to max_inodes", c.n,
		     (unsigned long long)extra_links, (unsigned long long)atomic_load(&fs->charged));
	if (types[0] != atomic_load(&fs->nfiles) || types[1] != atomic_load(&fs->ndirs) ||
	    types[2] != atomic_load(&fs->nsymlinks) || types[3] != atomic_load(&fs->nothers))
		fail(&c, "per-type counts differ from the table");
	struct sp_stats ps;
	sp_get_stats(fs->pool, &ps);
	uint64_t handles = atomic_load(&fs->open_files);
	uint64_t expect = c.bytes + handles * sp_small_size(sizeof(struct sfs_file));
	if (ps.sectors_in_use != c.sectors)
		fail(&c, "the pool has %llu sectors in use, files hold %llu",
		     (unsigned long long)ps.sectors_in_use, (unsigned long long)c.sectors);
	else if (ps.bytes_reserved != expect)
		fail(&c, "the pool has %llu bytes reserved, objects hold %llu",
		     (unsigned long long)ps.bytes_reserved, (unsigned long long)expect);
out:
	if (c.census)
		sv_census_end(fs->pool, c.census, NULL, NULL, NULL, 0);
	os_free(c.nodes);
	if (rc && msg && msglen)
		snprintf(msg, msglen, "out of memory: nothing was checked");
	return rc ? rc : c.rc;
}
