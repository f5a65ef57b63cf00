/* SPDX-License-Identifier: MIT */
/* namei.c - the namespace: lookup, create, link, unlink, rmdir, rename.
 *
 * LOCK ORDER (every lock the core takes, outermost first):
 *
 *   1. fs->rename_lock      only renames between two directories take it; it
 *                           keeps the shape of the directory tree still while
 *                           they find which directory is an ancestor of which
 *   2. directory locks      an ancestor before its descendants; two unrelated
 *                           directories (only a cross-directory rename, under
 *                           rename_lock, holds two) by inode number
 *   3. other inode locks    after every directory lock; two of them (rename's
 *                           source and target) by inode number
 *   4. a file's data lock   its vector's rwlock (engine), after its inode lock
 *   5. table shard locks, pool locks: leaves, nothing is taken under them
 *
 * A directory's lock guards its entries; an operation holds the directory
 * exclusively from its checks to its last change, so a concurrent lookup
 * sees the namespace either before or after, never half renamed.  Lookups
 * share the lock and run in parallel.
 *
 * Errors come in the order the kernel finds them (search permission on the
 * parent, then the name, then write permission, the sticky bit, the type),
 * because that order is visible to callers: tmpfs is the reference.
 *
 * Every operation that allocates does so before its first change, or only
 * where nothing has been changed yet; renames reuse existing entries where
 * they can, so most of them allocate nothing at all.
 */
#include <dirent.h>
#include <linux/fs.h>

#include "core.h"
#include "os.h"


int name_check(const char *name, size_t *len)
{
	if (!name)
		return -EFAULT;
	size_t n = strnlen(name, SFS_NAME_MAX + 1);
	if (n == 0)
		return -ENOENT;
	if (n > SFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(name, '/', n))
		return -EINVAL;
	*len = n;
	return 0;
}

static bool is_dot(const char *name, size_t len)
{
	return (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.');
}

/* A directory that was removed: nothing can be created in it. */
static bool dir_dead(struct sfs_inode *dir)
{
	return atomic_load(&dir->nlink) == 0;
}

static void update_dir_nlink(struct sfs_inode *dir)
{
	atomic_store(&dir->nlink, 2 + dir->u.dir->subdirs);
}

/* Fill an entry for a caller, who gets a new lookup on ip with it (no
 * entry asked for, no lookup given). */
static void entry_out(struct sfs_fs *fs, struct sfs_inode *ip, struct sfs_entry *out)
{
	if (!out)
		return;
	atomic_fetch_add(&ip->nlookup, 1);
	lk_rdlock(&ip->lock);
	out->ino = ip->ino;
	out->generation = ip == fs->root ? 0 : fs->generation; /* FUSE's rule for the root */
	inode_stat(fs, ip, &out->attr);
	lk_rdunlock(&ip->lock);
}

/* The parent directory of a call, referenced: ENOENT or ENOTDIR. */
static int get_dir(struct sfs_fs *fs, sfs_ino_t ino, struct sfs_inode **out)
{
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	if (!is_dir(ip)) {
		inode_put(fs, ip);
		return -ENOTDIR;
	}
	*out = ip;
	return 0;
}

/* ---- lookup and forget ---- */

/* "." of something that is not a directory: the inode itself, as long as
 * it has a name.  FUSE asks this way for an inode its cache dropped when a
 * file handle (open_by_handle_at, NFS) names it. */
static int lookup_self(struct sfs_fs *fs, sfs_ino_t ino, struct sfs_entry *out)
{
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	int rc = atomic_load(&ip->nlink) ? 0 : -ENOENT;
	if (rc == 0)
		entry_out(fs, ip, out);
	inode_put(fs, ip);
	return rc;
}

int sfs_lookup(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
               struct sfs_entry *out)
{
	size_t len;
	int rc = name_check(name, &len);
	if (rc)
		return rc;
	struct sfs_inode *dir;
	rc = get_dir(fs, parent, &dir);
	if (rc == -ENOTDIR && len == 1 && name[0] == '.')
		return lookup_self(fs, parent, out);
	if (rc)
		return rc;
	lk_rdlock(&dir->lock);
	struct sfs_inode *ip = NULL;
	rc = perm_check(fs, cr, dir, MAY_EXEC);
	if (rc == 0) {
		if (len == 1 && name[0] == '.') {
			ip = dir;
		} else if (len == 2 && name[0] == '.' && name[1] == '.') {
			ip = dir_parent(dir);
		} else {
			struct sfs_dirent *de = dir_find(fs, dir->u.dir, name, len);
			ip = de ? de->inode : NULL;
		}
		if (ip && !dir_dead(dir))
			inode_hold(ip);
		else
			rc = -ENOENT, ip = NULL;
	}
	lk_rdunlock(&dir->lock);
	if (ip) {
		entry_out(fs, ip, out);
		inode_put(fs, ip);
	}
	inode_put(fs, dir);
	return rc;
}

int sfs_forget(struct sfs_fs *fs, sfs_ino_t ino, uint64_t nlookup)
{
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	uint64_t n = atomic_load(&ip->nlookup);
	int rc = 0;
	do {
		if (n < nlookup) {
			rc = -EINVAL;
			break;
		}
	} while (!atomic_compare_exchange_weak(&ip->nlookup, &n, n - nlookup));
	inode_put(fs, ip);
	return rc;
}

/* ---- creating ---- */

struct make_args {
	uint32_t mode;           /* type and requested permission bits */
	dev_t rdev;
	const char *target;      /* symlink */
	bool named;              /* false: O_TMPFILE */
};

/* Owner, group and mode of a new inode in `dir`, as inode_init_owner() and
 * the setgid-directory rules decide. */
static void new_owner(const struct sfs_cred *cr, struct sfs_inode *dir, uint32_t *mode,
                      uint32_t *uid, uint32_t *gid)
{
	*uid = cr ? cr->uid : 0;
	*gid = cr ? cr->gid : 0;
	if (dir->mode & S_ISGID) {
		*gid = dir->gid;
		if (S_ISDIR(*mode))
			*mode |= S_ISGID;
	}
	if (!S_ISDIR(*mode) && (*mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && cr &&
	    !cred_privileged(cr) && !cred_in_group(cr, *gid))
		*mode &= ~(uint32_t)S_ISGID;
}

/* Create an object in dir (referenced by the caller).  Returns the new
 * inode referenced, with one lookup for the caller. */
static int make_node(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *dir,
                     const char *name, size_t len, const struct make_args *a,
                     struct sfs_inode **out)
{
	lk_wrlock(&dir->lock);
	int rc = perm_check(fs, cr, dir, MAY_EXEC);
	if (rc)
		goto out;
	if (a->named && dir_find(fs, dir->u.dir, name, len)) {
		rc = -EEXIST;
		goto out;
	}
	if (dir_dead(dir)) {
		rc = -ENOENT;
		goto out;
	}
	rc = perm_check(fs, cr, dir, MAY_WRITE | MAY_EXEC);
	if (rc)
		goto out;
	/* Devices need CAP_MKNOD, except a whiteout (char 0:0), since 5.8. */
	bool whiteout = S_ISCHR(a->mode) && a->rdev == 0;
	if ((S_ISCHR(a->mode) || S_ISBLK(a->mode)) && !whiteout && !cred_privileged(cr)) {
		rc = -EPERM;
		goto out;
	}
	uint32_t mode = a->mode, uid, gid;
	new_owner(cr, dir, &mode, &uid, &gid);
	struct sfs_inode *ip;
	rc = inode_new(fs, mode, uid, gid, &ip);
	if (rc)
		goto out;
	atomic_fetch_or(&ip->flags, atomic_load(&dir->flags) & I_INHERITED);
	lk_wrlock(&ip->lock);
	if (!S_ISLNK(mode)) {
		uint32_t perm = mode & 07777;
		rc = acl_inherit(fs, dir, ip, &perm);
		if (rc == 0)
			perm &= ~(uint32_t)(cr ? cr->umask : 0) | ~0777u;
		if (rc >= 0) {
			ip->mode = (mode & S_IFMT) | perm;
			rc = 0;
		}
	}
	if (rc == 0 && S_ISLNK(mode)) {
		size_t tlen = strlen(a->target);
		ssize_t w = sv_write(fs->pool, &ip->u.data, a->target, tlen, 0);
		rc = w < 0 ? (int)w : 0;
	}
	if (rc == 0 && (S_ISCHR(mode) || S_ISBLK(mode)))
		ip->u.rdev = a->rdev;
	if (rc == 0 && a->named)
		rc = dir_add(fs, dir, name, len, ip);
	if (rc) {
		lk_wrunlock(&ip->lock);
		inode_abort(fs, ip);
		goto out;
	}
	if (S_ISDIR(mode)) {
		set_dir_parent(ip, dir);
		atomic_store(&ip->nlink, 2);
	} else if (a->named) {
		atomic_store(&ip->nlink, 1);
	} else {
		atomic_fetch_or(&ip->flags, I_LINKABLE);
	}
	lk_wrunlock(&ip->lock);
	if (a->named) {
		update_dir_nlink(dir);
		inode_touch(dir, false, true, true);
	}
	*out = ip;
out:
	lk_wrunlock(&dir->lock);
	return rc;
}

static int create_named(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent,
                        const char *name, const struct make_args *a, struct sfs_entry *out,
                        struct sfs_inode **keep)
{
	size_t len;
	int rc = name_check(name, &len);
	if (rc == 0 && is_dot(name, len))
		rc = -EEXIST;
	if (rc)
		return rc;
	struct sfs_inode *dir, *ip;
	rc = get_dir(fs, parent, &dir);
	if (rc)
		return rc;
	rc = make_node(fs, cr, dir, name, len, a, &ip);
	inode_put(fs, dir);
	if (rc)
		return rc;
	entry_out(fs, ip, out);
	if (keep)
		*keep = ip;
	else
		inode_put(fs, ip);
	return 0;
}

static int do_mknod(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
              mode_t mode, dev_t rdev, struct sfs_entry *out)
{
	switch (mode & S_IFMT) {
	case 0:
		mode |= S_IFREG;
		break;
	case S_IFREG:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		break;
	case S_IFDIR:
		return -EPERM;
	default:
		return -EINVAL;
	}
	struct make_args a = {.mode = mode & (S_IFMT | 07777), .rdev = rdev, .named = true};
	return create_named(fs, cr, parent, name, &a, out, NULL);
}

static int do_mkdir(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
              mode_t mode, struct sfs_entry *out)
{
	/* As vfs_mkdir(): suid and sgid in the request are ignored (sgid may
	 * still come from a setgid parent). */
	struct make_args a = {.mode = S_IFDIR | (mode & (0777 | S_ISVTX)), .named = true};
	return create_named(fs, cr, parent, name, &a, out, NULL);
}

static int do_symlink(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
                const char *target, struct sfs_entry *out)
{
	if (!target)
		return -EFAULT;
	size_t tlen = strnlen(target, SFS_SYMLINK_MAX + 1);
	if (tlen == 0)
		return -ENOENT;
	if (tlen > SFS_SYMLINK_MAX)
		return -ENAMETOOLONG;
	struct make_args a = {.mode = S_IFLNK | 0777, .target = target, .named = true};
	return create_named(fs, cr, parent, name, &a, out, NULL);
}

int sfs_create(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
               mode_t mode, int flags, struct sfs_entry *out, struct sfs_file **fh)
{
	struct make_args a = {.mode = S_IFREG | (mode & 07777), .named = true};
	if ((flags & O_ACCMODE) == O_ACCMODE)
		return -EINVAL;
	for (;;) {
		/* The handle first: once the file exists nothing may fail. */
		struct sfs_file *nfh = file_new(fs);
		if (!nfh)
			return -errno;
		struct sfs_inode *ip = NULL;
		freeze_enter(fs);
		int rc = create_named(fs, cr, parent, name, &a, out, &ip);
		freeze_exit(fs);
		if (rc == 0) {
			/* Created: it is ours, opened without a permission check. */
			*fh = file_init(fs, nfh, ip, flags & ~O_TRUNC);
			inode_put(fs, ip);
			return 0;
		}
		file_discard(fs, nfh);
		if (rc != -EEXIST || (flags & O_EXCL))
			return rc;
		/* It exists: open it, unless it disappears meanwhile. */
		struct sfs_entry e;
		rc = sfs_lookup(fs, cr, parent, name, &e);
		if (rc == -ENOENT)
			continue;
		if (rc)
			return rc;
		/* open(O_CREAT) of a directory is EISDIR, whatever the access */
		rc = S_ISDIR(e.attr.st_mode) ? -EISDIR : sfs_open(fs, cr, e.ino, flags, fh);
		if (rc == 0 && out) {
			rc = sfs_getattr(fs, e.ino, &e.attr);
			*out = e;
			if (rc == 0)
				return 0; /* the lookup goes with *out */
			sfs_release(fs, *fh);
		}
		sfs_forget(fs, e.ino, 1);
		return rc;
	}
}

static int do_tmpfile(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, mode_t mode,
                int flags, struct sfs_entry *out, struct sfs_file **fh)
{
	if ((flags & O_ACCMODE) == O_RDONLY || (flags & O_ACCMODE) == O_ACCMODE)
		return -EINVAL;
	struct sfs_inode *dir, *ip;
	int rc = get_dir(fs, parent, &dir);
	if (rc)
		return rc;
	struct sfs_file *nfh = file_new(fs);
	if (!nfh) {
		inode_put(fs, dir);
		return -errno;
	}
	struct make_args a = {.mode = S_IFREG | (mode & 07777), .named = false};
	rc = make_node(fs, cr, dir, NULL, 0, &a, &ip);
	inode_put(fs, dir);
	if (rc) {
		file_discard(fs, nfh);
		return rc;
	}
	if (flags & O_EXCL)
		atomic_fetch_and(&ip->flags, ~I_LINKABLE);
	entry_out(fs, ip, out);
	*fh = file_init(fs, nfh, ip, flags & ~O_TRUNC);
	inode_put(fs, ip);
	return 0;
}

ssize_t sfs_readlink(struct sfs_fs *fs, sfs_ino_t ino, char *buf, size_t size)
{
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	ssize_t n = -EINVAL;
	if (is_lnk(ip)) {
		uint64_t len = sv_size(&ip->u.data);
		n = sv_read(fs->pool, &ip->u.data, buf, size, 0);
		if (n >= 0) {
			if ((size_t)n < size)
				buf[n] = '\0';
			n = (ssize_t)len;
			inode_accessed(fs, ip);
		}
	}
	inode_put(fs, ip);
	return n;
}

/* ---- link ---- */

/* protected_hardlinks: a caller who does not own a file may link to it
 * only if it is a plain regular file they can read and write. */
static int may_link(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip)
{
	if (cred_trusted(cr) || perm_owner(cr, ip))
		return 0;
	if (is_reg(ip) && !(ip->mode & S_ISUID) &&
	    (ip->mode & (S_ISGID | S_IXGRP)) != (S_ISGID | S_IXGRP)) {
		int rc = perm_check(fs, cr, ip, MAY_READ | MAY_WRITE);
		if (rc != -EACCES)
			return rc; /* 0, or -ENOMEM */
	}
	return -EPERM;
}

static int do_link(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, sfs_ino_t newparent,
             const char *newname, struct sfs_entry *out)
{
	size_t len;
	int rc = name_check(newname, &len);
	if (rc == 0 && is_dot(newname, len))
		rc = -EEXIST;
	if (rc)
		return rc;
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	struct sfs_inode *dir;
	rc = get_dir(fs, newparent, &dir);
	if (rc) {
		inode_put(fs, ip);
		return rc;
	}
	/* A directory is never linked, and its lock may not be taken under
	 * dir's (it could be dir's ancestor): judge may_linkat() for it
	 * before taking any lock. */
	int dir_source = 0;
	if (is_dir(ip)) {
		lk_rdlock(&ip->lock);
		dir_source = may_link(fs, cr, ip);
		lk_rdunlock(&ip->lock);
	}
	lk_wrlock(&dir->lock);
	rc = perm_check(fs, cr, dir, MAY_EXEC);
	if (rc)
		goto unlock_dir;
	if (dir_find(fs, dir->u.dir, newname, len)) {
		rc = -EEXIST;
		goto unlock_dir;
	}
	if (dir_dead(dir)) {
		rc = -ENOENT;
		goto unlock_dir;
	}
	/* The kernel's order: may_linkat(), then may_create(), then the type,
	 * then a dead source. */
	if (is_dir(ip)) {
		rc = dir_source ? dir_source : perm_check(fs, cr, dir, MAY_WRITE | MAY_EXEC);
		rc = rc ? rc : -EPERM;
		goto unlock_dir;
	}
	lk_wrlock(&ip->lock);
	rc = may_link(fs, cr, ip);
	if (rc == 0)
		rc = perm_check(fs, cr, dir, MAY_WRITE | MAY_EXEC);
	if (rc == 0 && has_flag(ip, SFS_FL_APPEND | SFS_FL_IMMUTABLE))
		rc = -EPERM; /* vfs_link(): no new name for those */
	bool extra = atomic_load(&ip->nlink) > 0; /* else an O_TMPFILE's first name */
	if (rc == 0 && !extra && !(atomic_load(&ip->flags) & I_LINKABLE))
		rc = -ENOENT;
	if (rc == 0 && extra)
		rc = link_charge(fs);
	if (rc == 0) {
		rc = dir_add(fs, dir, newname, len, ip);
		if (rc && extra)
			link_refund(fs);
	}
	if (rc == 0) {
		atomic_fetch_add(&ip->nlink, 1);
		atomic_fetch_and(&ip->flags, ~I_LINKABLE);
		inode_touch(ip, false, false, true);
		inode_touch(dir, false, true, true);
	}
	lk_wrunlock(&ip->lock);
unlock_dir:
	lk_wrunlock(&dir->lock);
	if (rc == 0)
		entry_out(fs, ip, out);
	inode_put(fs, dir);
	inode_put(fs, ip);
	return rc;
}

/* ---- unlink and rmdir ---- */

static int remove_name(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent,
                       const char *name, bool want_dir)
{
	size_t len;
	int rc = name_check(name, &len);
	if (rc == 0 && is_dot(name, len)) {
		if (!want_dir)
			rc = -EISDIR;
		else
			rc = len == 1 ? -EINVAL : -ENOTEMPTY;
	}
	if (rc)
		return rc;
	struct sfs_inode *dir;
	rc = get_dir(fs, parent, &dir);
	if (rc)
		return rc;
	struct sfs_inode *victim = NULL;
	lk_wrlock(&dir->lock);
	rc = perm_check(fs, cr, dir, MAY_EXEC);
	if (rc)
		goto out;
	struct sfs_dirent *de = dir_find(fs, dir->u.dir, name, len);
	if (!de) {
		rc = -ENOENT;
		goto out;
	}
	victim = de->inode;
	inode_hold(victim);
	rc = perm_check(fs, cr, dir, MAY_WRITE | MAY_EXEC);
	if (rc == 0)
		rc = perm_delete(cr, dir, victim);
	if (rc == 0 && want_dir != is_dir(victim))
		rc = want_dir ? -ENOTDIR : -EISDIR;
	if (rc)
		goto out;
	lk_wrlock(&victim->lock);
	if (want_dir && victim->u.dir->count > 0) {
		rc = -ENOTEMPTY;
	} else {
		if (want_dir) {
			atomic_store(&victim->nlink, 0);
			set_dir_parent(victim, NULL);
		} else if (atomic_fetch_sub(&victim->nlink, 1) > 1) {
			link_refund(fs);
		}
		inode_touch(victim, false, false, true);
		dir_remove(fs, dir, de);
		update_dir_nlink(dir);
		inode_touch(dir, false, true, true);
	}
	lk_wrunlock(&victim->lock);
out:
	lk_wrunlock(&dir->lock);
	if (victim)
		inode_put(fs, victim);
	inode_put(fs, dir);
	return rc;
}

static int do_unlink(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name)
{
	return remove_name(fs, cr, parent, name, false);
}

static int do_rmdir(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name)
{
	return remove_name(fs, cr, parent, name, true);
}

/* ---- rename ---- */

/* Is `a` an ancestor of (or the same directory as) `d`?  Under rename_lock
 * (or with only one directory involved) the parents cannot move. */
static bool ancestor_of(struct sfs_inode *a, struct sfs_inode *d)
{
	for (struct sfs_inode *p = d; p; p = dir_parent(p)) {
		if (p == a)
			return true;
		if (dir_parent(p) == p)
			break; /* the root */
	}
	return false;
}

/* Point an existing entry at another inode (no allocation). */
static void retarget(struct sfs_inode *dir, struct sfs_dirent *de, struct sfs_inode *ip)
{
	struct sfs_dir *d = dir->u.dir;
	if (de->type == DT_DIR)
		d->subdirs--;
	de->inode = ip;
	de->type = dt_of(ip->mode);
	if (de->type == DT_DIR)
		d->subdirs++;
}

struct rename_ctx {
	struct sfs_inode *op, *np;       /* parents */
	struct sfs_inode *src, *dst;     /* dst: NULL if the new name is free */
	struct sfs_dirent *old, *new;
	struct sfs_inode *whiteout;
};

/* Everything the kernel checks once both parents are locked. */
static int rename_checks(struct sfs_fs *fs, const struct sfs_cred *cr, struct rename_ctx *r,
                         const char *name, size_t len, const char *newname, size_t newlen,
                         unsigned flags)
{
	int rc = perm_check(fs, cr, r->op, MAY_EXEC);
	if (rc == 0)
		rc = perm_check(fs, cr, r->np, MAY_EXEC);
	if (rc)
		return rc;
	r->old = dir_find(fs, r->op->u.dir, name, len);
	if (!r->old)
		return -ENOENT;
	r->new = dir_find(fs, r->np->u.dir, newname, newlen);
	if ((flags & SFS_RENAME_NOREPLACE) && r->new)
		return -EEXIST;
	if ((flags & SFS_RENAME_EXCHANGE) && !r->new)
		return -ENOENT;
	if (dir_dead(r->np))
		return -ENOENT;
	r->src = r->old->inode;
	r->dst = r->new ? r->new->inode : NULL;
	bool src_dir = is_dir(r->src), dst_dir = r->dst && is_dir(r->dst);
	if (src_dir && r->op != r->np && ancestor_of(r->src, r->np))
		return -EINVAL;
	if (dst_dir && r->op != r->np && ancestor_of(r->dst, r->op))
		return (flags & SFS_RENAME_EXCHANGE) ? -EINVAL : -ENOTEMPTY;
	if (r->src == r->dst)
		return 1; /* the same file: nothing to do */
	rc = perm_check(fs, cr, r->op, MAY_WRITE | MAY_EXEC);
	if (rc == 0)
		rc = perm_delete(cr, r->op, r->src);
	if (rc)
		return rc;
	if (r->dst) {
		rc = perm_check(fs, cr, r->np, MAY_WRITE | MAY_EXEC);
		if (rc == 0)
			rc = perm_delete(cr, r->np, r->dst);
		if (rc)
			return rc;
		if (!(flags & SFS_RENAME_EXCHANGE) && src_dir != dst_dir)
			return src_dir ? -ENOTDIR : -EISDIR;
	} else {
		rc = perm_check(fs, cr, r->np, MAY_WRITE | MAY_EXEC);
		if (rc)
			return rc;
	}
	if (r->op != r->np) {
		/* A directory that changes parent gets a new "..". */
		if (src_dir && (rc = perm_check(fs, cr, r->src, MAY_WRITE)))
			return rc;
		if ((flags & SFS_RENAME_EXCHANGE) && dst_dir &&
		    (rc = perm_check(fs, cr, r->dst, MAY_WRITE)))
			return rc;
	}
	return 0;
}

/* Lock the two children (by inode number). */
static void lock_pair(struct sfs_inode *a, struct sfs_inode *b)
{
	if (b && b->ino < a->ino) {
		struct sfs_inode *t = a;
		a = b, b = t;
	}
	lk_wrlock(&a->lock);
	if (b)
		lk_wrlock(&b->lock);
}

static void unlock_pair(struct sfs_inode *a, struct sfs_inode *b)
{
	lk_wrunlock(&a->lock);
	if (b)
		lk_wrunlock(&b->lock);
}

/* Change the tree: cannot fail (everything was checked and allocated). */
static void rename_apply(struct sfs_fs *fs, struct rename_ctx *r, const char *newname,
                         size_t newlen, unsigned flags, int *rc)
{
	struct sfs_inode *src = r->src, *dst = r->dst;
	bool cross = r->op != r->np;
	if (flags & SFS_RENAME_EXCHANGE) {
		retarget(r->op, r->old, dst);
		retarget(r->np, r->new, src);
		if (cross && is_dir(src))
			set_dir_parent(src, r->np);
		if (cross && is_dir(dst))
			set_dir_parent(dst, r->op);
	} else {
		if (r->new) {
			retarget(r->np, r->new, src);
		} else {
			*rc = dir_add(fs, r->np, newname, newlen, src);
			if (*rc)
				return;
		}
		if (r->whiteout) {
			retarget(r->op, r->old, r->whiteout);
			atomic_store(&r->whiteout->nlink, 1);
		} else {
			dir_remove(fs, r->op, r->old);
		}
		if (cross && is_dir(src))
			set_dir_parent(src, r->np);
		if (dst) {
			if (is_dir(dst)) {
				atomic_store(&dst->nlink, 0);
				set_dir_parent(dst, NULL);
			} else if (atomic_fetch_sub(&dst->nlink, 1) > 1) {
				link_refund(fs);
			}
		}
	}
	update_dir_nlink(r->op);
	update_dir_nlink(r->np);
	inode_touch(r->op, false, true, true);
	if (cross)
		inode_touch(r->np, false, true, true);
	inode_touch(src, false, false, true);
	if (dst)
		inode_touch(dst, false, false, true);
}

static int do_rename(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
               sfs_ino_t newparent, const char *newname, unsigned flags)
{
	const unsigned known = SFS_RENAME_NOREPLACE | SFS_RENAME_EXCHANGE | SFS_RENAME_WHITEOUT;
	if ((flags & ~known) || ((flags & SFS_RENAME_EXCHANGE) && (flags & ~SFS_RENAME_EXCHANGE)))
		return -EINVAL;
	size_t len, newlen;
	int rc = name_check(name, &len);
	if (rc == 0 && is_dot(name, len))
		rc = -EBUSY;
	if (rc)
		return rc;
	rc = name_check(newname, &newlen);
	if (rc == 0 && is_dot(newname, newlen))
		rc = (flags & SFS_RENAME_NOREPLACE) ? -EEXIST : -EBUSY;
	if (rc)
		return rc;
	struct rename_ctx r = {0};
	rc = get_dir(fs, parent, &r.op);
	if (rc)
		return rc;
	rc = get_dir(fs, newparent, &r.np);
	if (rc) {
		inode_put(fs, r.op);
		return rc;
	}
	if (flags & SFS_RENAME_WHITEOUT) {
		uint32_t mode = S_IFCHR, uid, gid;
		new_owner(cr, r.op, &mode, &uid, &gid);
		rc = inode_new(fs, mode, uid, gid, &r.whiteout);
		if (rc)
			goto out_put;
	}
	bool cross = r.op != r.np;
	struct sfs_inode *first = r.op, *second = cross ? r.np : NULL;
	if (cross) {
		lk_lock(&fs->rename_lock);
		if (ancestor_of(r.np, r.op) || (!ancestor_of(r.op, r.np) && r.np->ino < r.op->ino))
			first = r.np, second = r.op;
	}
	lk_wrlock(&first->lock);
	if (second)
		lk_wrlock(&second->lock);
	struct sfs_inode *src = NULL, *dst = NULL; /* referenced while in use */
	rc = rename_checks(fs, cr, &r, name, len, newname, newlen, flags);
	if (rc == 0) {
		src = r.src, dst = r.dst;
		inode_hold(src);
		if (dst)
			inode_hold(dst);
		lock_pair(src, dst);
		/* Emptiness only holds under the target directory's own lock. */
		if (!(flags & SFS_RENAME_EXCHANGE) && dst && is_dir(dst) && dst->u.dir->count > 0)
			rc = -ENOTEMPTY;
		else
			rename_apply(fs, &r, newname, newlen, flags, &rc);
		unlock_pair(src, dst);
	}
	if (second)
		lk_wrunlock(&second->lock);
	lk_wrunlock(&first->lock);
	if (cross)
		lk_unlock(&fs->rename_lock);
	if (rc == 1)
		rc = 0; /* the same file: nothing to do */
	/* The replaced inode may die here, outside every lock. */
	if (dst)
		inode_put(fs, dst);
	if (src)
		inode_put(fs, src);
out_put:
	if (r.whiteout) {
		if (atomic_load(&r.whiteout->nlink) == 0)
			inode_abort(fs, r.whiteout); /* not used */
		else
			inode_put(fs, r.whiteout);
	}
	inode_put(fs, r.np);
	inode_put(fs, r.op);
	return rc;
}

/* ---- entry points: changes wait while a snapshot is taken (snapshot.c) ---- */

int sfs_link(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, sfs_ino_t newparent,
             const char *newname, struct sfs_entry *out)
{
	freeze_enter(fs);
	int rc = do_link(fs, cr, ino, newparent, newname, out);
	freeze_exit(fs);
	return rc;
}

int sfs_mkdir(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
              mode_t mode, struct sfs_entry *out)
{
	freeze_enter(fs);
	int rc = do_mkdir(fs, cr, parent, name, mode, out);
	freeze_exit(fs);
	return rc;
}

int sfs_mknod(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
              mode_t mode, dev_t rdev, struct sfs_entry *out)
{
	freeze_enter(fs);
	int rc = do_mknod(fs, cr, parent, name, mode, rdev, out);
	freeze_exit(fs);
	return rc;
}

int sfs_rename(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
               sfs_ino_t newparent, const char *newname, unsigned flags)
{
	freeze_enter(fs);
	int rc = do_rename(fs, cr, parent, name, newparent, newname, flags);
	freeze_exit(fs);
	return rc;
}

int sfs_rmdir(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name)
{
	freeze_enter(fs);
	int rc = do_rmdir(fs, cr, parent, name);
	freeze_exit(fs);
	return rc;
}

int sfs_symlink(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
                const char *target, struct sfs_entry *out)
{
	freeze_enter(fs);
	int rc = do_symlink(fs, cr, parent, name, target, out);
	freeze_exit(fs);
	return rc;
}

int sfs_unlink(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name)
{
	freeze_enter(fs);
	int rc = do_unlink(fs, cr, parent, name);
	freeze_exit(fs);
	return rc;
}

int sfs_tmpfile(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, mode_t mode,
                int flags, struct sfs_entry *out, struct sfs_file **fh)
{
	freeze_enter(fs);
	int rc = do_tmpfile(fs, cr, parent, mode, flags, out, fh);
	freeze_exit(fs);
	return rc;
}
