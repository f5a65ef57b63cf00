/* SPDX-License-Identifier: MIT */
/* clone.c - sfs_clone(): a copy of a tree as `cp -a` makes it, at one
 * instant, every file sharing its sectors with the original.
 *
 * The whole clone runs under the freeze that snapshots use (freeze_all):
 * no change is in flight meanwhile, so the source is one point in time
 * and stays so, and readers go on.  Writers wait for the clone, which
 * costs metadata only -- an inode, a name and a copy of the attributes per
 * file, the tree nodes of its data (sv_clone) -- so the pause grows with
 * the number of files, not with their size.  We chose that over copying
 * the source's metadata aside and building after the freeze: a second
 * representation of a tree, for a pause of the same order as a snapshot's.
 *
 * Three passes, the first two changing nothing:
 *   1. the destination as mkdir would judge it (search and write
 *      permission, a free name, a live directory), and a directory that
 *      would be copied into itself (EINVAL, as cp refuses);
 *   2. the walk: every inode below the source, breadth first, with what
 *      cp -a needs of the caller (read and search on directories, read on
 *      files, the privilege to make device nodes), hard links found by
 *      their inode (several names in the tree stay one inode), and the
 *      names counted: the clone's charge against nr_inodes (one per name,
 *      as tmpfs counts them) is taken at once, or ENOSPC;
 *   3. the build: each inode's copy is made, with the owner, group and
 *      mode cp -a would leave, the xattrs it copies, its data shared, and
 *      is linked into its directory's copy.  The new tree is detached
 *      until its top is linked into the destination, last, so it appears
 *      whole or not at all; a failure (out of space or memory) frees
 *      everything made and gives back every charge, leaving the
 *      filesystem exactly as it was.
 *
 * What cp -a leaves (coreutils 9.1): modes, atime and mtime (ctime is the
 * clone's), xattrs and ACLs as they are, symlinks and special files as
 * such, hard links inside the tree as links.  A privileged caller keeps
 * every owner.  Anyone else owns the copies; each keeps its group if the
 * caller may chown to it, and loses its set-id and sticky bits unless
 * both owner and group came through (cp's set_owner); only user.* xattrs
 * and ACLs are copied (trusted.* is not visible to them, security.* not
 * settable).
 */
#include <assert.h>
#include <stdio.h>

#include "core.h"
#include "os.h"

struct cnode {
	struct sfs_inode *src;        /* referenced while the clone runs */
	struct sfs_inode *copy;       /* made in pass 3 (referenced) */
	uint32_t parent;              /* the directory it was first found in */
	const struct sfs_dirent *de;  /* that name (NULL for the top) */
};

struct cname {                        /* one entry of a directory below the top */
	uint32_t dir, node;
	const struct sfs_dirent *de;
};

struct clone {
	struct sfs_fs *fs;
	const struct sfs_cred *cr;
	struct cnode *nodes;
	size_t n, cap;
	struct cname *names;
	size_t nnames, capnames;
	size_t *linked;               /* hard-link map: inode -> node index + 1 */
	size_t linkcap, nlinked;
	uint64_t charged;             /* taken against max_inodes, not yet an inode's */
	uint32_t dflt_gid;            /* the group a copy gets if not its own */
	char *err;
	size_t errlen;
};

/* ---- messages ---- */

/* The path of node i below the source ("." for the source itself). */
static void path_of(const struct clone *c, uint32_t i, char *buf, size_t size)
{
	const struct cnode *chain[64];
	int depth = 0;
	for (uint32_t k = i; c->nodes[k].de && depth < 64; k = c->nodes[k].parent)
		chain[depth++] = &c->nodes[k];
	size_t used = 0;
	buf[0] = '\0';
	if (depth == 0)
		snprintf(buf, size, ".");
	while (depth-- > 0 && used < size) {
		int w = snprintf(buf + used, size - used, "%s%s", used ? "/" : "",
		                 chain[depth]->de->name);
		used += w > 0 ? (size_t)w : 0;
	}
}

static int refuse(struct clone *c, int rc, const char *what, uint32_t node)
{
	if (c->err && c->errlen) {
		char path[512];
		path_of(c, node, path, sizeof path);
		snprintf(c->err, c->errlen, "%s %s: %s", what, path, strerror(-rc));
	}
	return rc;
}

/* ---- pass 2: the walk ---- */

static int grow(void **arr, size_t *cap, size_t want, size_t size)
{
	if (want <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 256;
	while (n < want)
		n *= 2;
	void *p = os_realloc(*arr, n * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

static size_t link_slot(const struct clone *c, const struct sfs_inode *ip)
{
	size_t h = (size_t)(((uintptr_t)ip >> 7) * 0x9e3779b97f4a7c15ull) & (c->linkcap - 1);
	while (c->linked[h] && c->nodes[c->linked[h] - 1].src != ip)
		h = (h + 1) & (c->linkcap - 1);
	return h;
}

/* The node of a file with several names, if the walk met it already. */
static size_t link_find(const struct clone *c, const struct sfs_inode *ip)
{
	if (!c->linkcap)
		return 0;
	return c->linked[link_slot(c, ip)];
}

static int link_note(struct clone *c, size_t node)
{
	if (2 * (c->nlinked + 1) > c->linkcap) {
		struct clone bigger = {.nodes = c->nodes, .linkcap = c->linkcap ? 2 * c->linkcap : 256};
		bigger.linked = os_calloc(bigger.linkcap, sizeof(size_t));
		if (!bigger.linked)
			return -ENOMEM;
		for (size_t i = 0; i < c->linkcap; i++)
			if (c->linked[i])
				bigger.linked[link_slot(&bigger, c->nodes[c->linked[i] - 1].src)] =
				        c->linked[i];
		os_free(c->linked);
		c->linked = bigger.linked;
		c->linkcap = bigger.linkcap;
	}
	c->linked[link_slot(c, c->nodes[node].src)] = node + 1;
	c->nlinked++;
	return 0;
}

/* What cp -a needs of the caller to copy node i. */
static int may_copy(struct clone *c, uint32_t i)
{
	struct sfs_inode *ip = c->nodes[i].src;
	uint32_t type = ip->mode & S_IFMT;
	int rc = 0;
	if ((type == S_IFCHR || type == S_IFBLK) && !(type == S_IFCHR && ip->u.rdev == 0) &&
	    !cred_privileged(c->cr))
		return refuse(c, -EPERM, "cannot create special file", i);
	if (cred_trusted(c->cr) || (type != S_IFREG && type != S_IFDIR))
		return 0;
	rc = perm_check(c->fs, c->cr, ip, type == S_IFDIR ? MAY_READ | MAY_EXEC : MAY_READ);
	if (rc)
		return refuse(c, rc, type == S_IFDIR ? "cannot open directory" : "cannot read", i);
	return 0;
}

static int add_node(struct clone *c, struct sfs_inode *ip, uint32_t parent,
                    const struct sfs_dirent *de)
{
	if (grow((void **)&c->nodes, &c->cap, c->n + 1, sizeof *c->nodes))
		return -ENOMEM;
	inode_hold(ip);
	c->nodes[c->n] = (struct cnode){.src = ip, .parent = parent, .de = de};
	c->n++;
	lk_rdlock(&ip->lock);
	int rc = may_copy(c, (uint32_t)(c->n - 1));
	lk_rdunlock(&ip->lock);
	if (rc == 0 && !is_dir(ip) && atomic_load(&ip->nlink) > 1)
		rc = link_note(c, c->n - 1);
	return rc;
}

/* Every entry of directory node d: its names, new nodes for new inodes. */
static int walk_dir(struct clone *c, uint32_t d)
{
	struct sfs_inode *dir = c->nodes[d].src;
	int rc = 0;
	lk_rdlock(&dir->lock);
	for (struct sfs_dirent *de = dir_next(dir->u.dir, 0); de && rc == 0;
	     de = dir_next(dir->u.dir, de->cookie + 1)) {
		size_t node = is_dir(de->inode) ? 0 : link_find(c, de->inode);
		if (node == 0) {
			rc = add_node(c, de->inode, d, de);
			node = c->n;
		}
		if (rc == 0 && grow((void **)&c->names, &c->capnames, c->nnames + 1, sizeof *c->names))
			rc = -ENOMEM;
		if (rc == 0)
			c->names[c->nnames++] = (struct cname){d, (uint32_t)(node - 1), de};
	}
	lk_rdunlock(&dir->lock);
	return rc;
}

static int walk(struct clone *c, struct sfs_inode *src)
{
	int rc = add_node(c, src, 0, NULL);
	for (size_t d = 0; rc == 0 && d < c->n; d++) {
		if (c->n > UINT32_MAX - 1)
			return -ENOSPC;
		if (is_dir(c->nodes[d].src))
			rc = walk_dir(c, (uint32_t)d);
	}
	return rc;
}

/* ---- pass 3: the build ---- */

/* Owner, group and mode of a copy (see the top of the file). */
static void copy_owner(const struct clone *c, const struct sfs_inode *src, uint32_t *uid,
                       uint32_t *gid, uint32_t *mode)
{
	*mode = src->mode;
	if (cred_privileged(c->cr)) {
		*uid = src->uid, *gid = src->gid;
		return;
	}
	*uid = c->cr->uid;
	bool group = src->gid == c->dflt_gid || cred_in_group(c->cr, src->gid);
	*gid = group ? src->gid : c->dflt_gid;
	if (src->uid != c->cr->uid || !group)
		*mode &= ~(uint32_t)(S_ISUID | S_ISGID | S_ISVTX);
	else if ((*mode & S_ISGID) && !cred_in_group(c->cr, *gid))
		*mode &= ~(uint32_t)S_ISGID; /* as chmod by its owner */
}

static bool xattr_copied(const struct clone *c, const char *name)
{
	if (cred_privileged(c->cr))
		return true;
	return !strncmp(name, "user.", 5) || !strncmp(name, "system.posix_acl_", 17);
}

/* The copy's xattrs; both inodes locked. */
static int copy_xattrs(struct clone *c, struct sfs_inode *src, struct sfs_inode *copy, char *buf)
{
	ssize_t n = xattr_list(src, NULL, 0);
	if (n <= 0)
		return (int)n;
	char *names = os_malloc((size_t)n);
	if (!names)
		return -ENOMEM;
	n = xattr_list(src, names, (size_t)n);
	int rc = n < 0 ? (int)n : 0;
	for (ssize_t off = 0; rc == 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
		if (!xattr_copied(c, names + off))
			continue;
		ssize_t len = xattr_get(src, names + off, buf, SFS_XATTR_SIZE_MAX);
		rc = len < 0 ? (int)len : xattr_set(c->fs, copy, names + off, buf, (size_t)len, 0);
	}
	os_free(names);
	return rc;
}

static void copy_times(struct sfs_inode *src, struct sfs_inode *copy, struct timespec now)
{
	atomic_store(&copy->atime_s, atomic_load(&src->atime_s));
	atomic_store(&copy->atime_ns, atomic_load(&src->atime_ns));
	atomic_store(&copy->mtime_s, atomic_load(&src->mtime_s));
	atomic_store(&copy->mtime_ns, atomic_load(&src->mtime_ns));
	inode_set_time(&copy->ctime_s, &copy->ctime_ns, now);
}

/* Make node i's copy, unlinked, with everything but its names. */
static int make_copy(struct clone *c, uint32_t i, char *buf)
{
	struct cnode *nd = &c->nodes[i];
	struct sfs_inode *src = nd->src, *copy;
	uint32_t uid, gid, mode;
	lk_rdlock(&src->lock);
	copy_owner(c, src, &uid, &gid, &mode);
	int rc = inode_new_charged(c->fs, mode, uid, gid, &copy);
	if (rc) {
		lk_rdunlock(&src->lock);
		return rc;
	}
	c->charged--; /* the inode's now */
	nd->copy = copy;
	lk_wrlock(&copy->lock);
	if (S_ISCHR(mode) || S_ISBLK(mode))
		copy->u.rdev = src->u.rdev;
	if (has_data(src))
		rc = sv_clone(c->fs->pool, &copy->u.data, &src->u.data);
	if (rc == 0)
		rc = copy_xattrs(c, src, copy, buf);
	lk_wrunlock(&copy->lock);
	lk_rdunlock(&src->lock);
	return rc;
}

/* A name for node `node`'s copy in directory node `dir`'s copy. */
static int add_name(struct clone *c, struct sfs_inode *dir, const char *name, size_t len,
                    struct sfs_inode *copy)
{
	int rc = dir_add(c->fs, dir, name, len, copy);
	if (rc)
		return rc;
	if (is_dir(copy)) {
		set_dir_parent(copy, dir);
		atomic_store(&copy->nlink, 2 + copy->u.dir->subdirs);
	} else if (atomic_fetch_add(&copy->nlink, 1) > 0) {
		c->charged--; /* an extra name: its charge is the name's now */
	}
	atomic_store(&dir->nlink, 2 + dir->u.dir->subdirs);
	return 0;
}

static int build(struct clone *c, struct timespec now)
{
	char *buf = os_malloc(SFS_XATTR_SIZE_MAX);
	if (!buf)
		return -ENOMEM;
	int rc = make_copy(c, 0, buf);
	for (size_t k = 0; rc == 0 && k < c->nnames; k++) {
		const struct cname *e = &c->names[k];
		if (!c->nodes[e->node].copy)
			rc = make_copy(c, e->node, buf);
		if (rc == 0)
			rc = add_name(c, c->nodes[e->dir].copy, e->de->name, e->de->len,
			              c->nodes[e->node].copy);
	}
	os_free(buf);
	/* Times last: adding names moves none, but a directory's are its
	 * source's only once it is complete. */
	for (size_t i = 0; rc == 0 && i < c->n; i++)
		copy_times(c->nodes[i].src, c->nodes[i].copy, now);
	return rc;
}

/* Free every copy made (the tree is detached: nobody else sees it). */
static void unbuild(struct clone *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct sfs_inode *copy = c->nodes[i].copy;
		struct sfs_dirent *de;
		if (copy && is_dir(copy))
			while ((de = dir_next(copy->u.dir, 0)) != NULL)
				dir_remove(c->fs, copy, de);
	}
	for (size_t i = 0; i < c->n; i++) {
		struct sfs_inode *copy = c->nodes[i].copy;
		if (!copy)
			continue;
		uint32_t names = atomic_load(&copy->nlink);
		if (!is_dir(copy) && names > 1)
			c->charged += names - 1; /* given back below */
		inode_abort(c->fs, copy);
		c->nodes[i].copy = NULL;
	}
}

/* ---- the whole ---- */

/* Pass 1: may cr create `name` in dir?  mkdir's checks, in its order. */
static int may_create(struct clone *c, struct sfs_inode *dir, const char *name, size_t len)
{
	int rc = perm_check(c->fs, c->cr, dir, MAY_EXEC);
	if (rc == 0 && dir_find(c->fs, dir->u.dir, name, len))
		rc = -EEXIST;
	if (rc == 0 && atomic_load(&dir->nlink) == 0)
		rc = -ENOENT;
	if (rc == 0)
		rc = perm_check(c->fs, c->cr, dir, MAY_WRITE | MAY_EXEC);
	return rc;
}

/* Is a the directory d or one of its ancestors?  (Nothing moves: frozen.) */
static bool contains(struct sfs_inode *a, struct sfs_inode *d)
{
	for (struct sfs_inode *p = d; p; p = dir_parent(p)) {
		if (p == a)
			return true;
		if (dir_parent(p) == p)
			break;
	}
	return false;
}

static int clone_frozen(struct clone *c, struct sfs_inode *src, struct sfs_inode *dir,
                        const char *name, size_t len)
{
	lk_rdlock(&dir->lock);
	int rc = may_create(c, dir, name, len);
	c->dflt_gid = (dir->mode & S_ISGID) ? dir->gid : c->cr->gid;
	lk_rdunlock(&dir->lock);
	if (rc) {
		if (c->err && c->errlen)
			snprintf(c->err, c->errlen, "cannot create %s: %s", name, strerror(-rc));
		return rc;
	}
	if (is_dir(src) && contains(src, dir)) {
		if (c->err && c->errlen)
			snprintf(c->err, c->errlen, "cannot copy a directory into itself");
		return -EINVAL;
	}
	rc = walk(c, src);
	if (rc == -ENOMEM && c->err && c->errlen && !c->err[0])
		snprintf(c->err, c->errlen, "out of memory");
	if (rc)
		return rc;
	/* One charge per name, the top's included, before anything is made. */
	rc = link_charge_many(c->fs, c->nnames + 1);
	if (rc) {
		uint64_t max = atomic_load(&c->fs->max_inodes), used = atomic_load(&c->fs->charged);
		if (c->err && c->errlen)
			snprintf(c->err, c->errlen, "not enough inodes: the copy needs %zu, %llu are free",
			         c->nnames + 1, (unsigned long long)(max > used ? max - used : 0));
		return rc;
	}
	c->charged = c->nnames + 1;
	struct timespec now = os_now();
	rc = build(c, now);
	if (rc == 0) {
		lk_wrlock(&dir->lock);
		rc = add_name(c, dir, name, len, c->nodes[0].copy);
		if (rc == 0)
			inode_touch(dir, false, true, true);
		lk_wrunlock(&dir->lock);
	}
	if (rc) {
		if (c->err && c->errlen)
			snprintf(c->err, c->errlen, "cannot copy: %s", strerror(-rc));
		unbuild(c);
	}
	assert(rc != 0 || c->charged == 0);
	link_refund_many(c->fs, c->charged);
	c->charged = 0;
	return rc;
}

int sfs_clone(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t src, sfs_ino_t newparent,
              const char *newname, char *err, size_t errlen)
{
	static const struct sfs_cred trusted_root = {.flags = SFS_CRED_TRUSTED};
	struct clone c = {.fs = fs, .cr = cr ? cr : &trusted_root, .err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	size_t len;
	int rc = name_check(newname, &len);
	if (rc == 0 && ((len == 1 && newname[0] == '.') ||
	                (len == 2 && newname[0] == '.' && newname[1] == '.')))
		rc = -EEXIST;
	if (rc) {
		if (err && errlen)
			snprintf(err, errlen, "cannot create %s: %s", newname ? newname : "(null)",
			         strerror(-rc));
		return rc;
	}
	struct sfs_inode *from = inode_get(fs, src), *dir = inode_get(fs, newparent);
	if (!from || !dir || !is_dir(dir)) {
		rc = !from || !dir ? -ENOENT : -ENOTDIR;
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", !from ? "the source" : "the destination",
			         strerror(-rc));
	} else {
		freeze_all(fs);
		freeze_count_change(fs); /* as freeze_enter() counts every change */
		rc = clone_frozen(&c, from, dir, newname, len);
		thaw_all(fs);
	}
	for (size_t i = 0; i < c.n; i++) {
		if (c.nodes[i].copy)
			inode_put(fs, c.nodes[i].copy);
		inode_put(fs, c.nodes[i].src);
	}
	os_free(c.nodes);
	os_free(c.names);
	os_free(c.linked);
	if (dir)
		inode_put(fs, dir);
	if (from)
		inode_put(fs, from);
	return rc;
}
