/* SPDX-License-Identifier: MIT */
/* path.c - the path API: whole paths on top of the inode API.
 *
 * This file uses nothing but the public API of sectorfs.h, so it is a thin
 * layer that any caller could have written; it gets no locks and no
 * shortcuts from the core.  The price is that a walk is a sequence of
 * separate sfs_lookup calls, so it sees each directory at a slightly
 * different moment (as the kernel's RCU-free walk does): a path that is
 * renamed during the walk resolves to the old or the new place, never to
 * freed memory, because inode numbers are never reused and every inode
 * we stand on carries one of our lookups.
 *
 * Resolution follows path_resolution(7) and Linux's namei.c:
 *
 *   - walk_parent() walks every component but the last, following symlinks
 *     always; the last is left in w->last with its kind (a name, ".",
 *     "..", or none at all for "/") and whether a slash followed it.
 *   - Each operation then decides what the last component means to it:
 *     lookup_final() follows it (open, stat), others act on the name in
 *     its directory (mkdir, unlink, rename, ...), as the kernel does.
 *   - A symlink is followed by splicing: the rest of the path becomes
 *     target + tail in a new heap buffer, and the walk goes on from the
 *     root (absolute target) or from the link's directory.  The 40-link
 *     limit bounds the buffer (at most 41 targets of 4095 bytes).
 *
 * Lookup counts: every sfs_lookup, sfs_mkdir, sfs_create, sfs_symlink and
 * readdirplus entry adds one; each is given back with sfs_forget exactly
 * once, on every path including errors.  The root needs no lookup (it
 * cannot die), so the walk stands on it without one.
 *
 * remove_all is iterative: an explicit stack of directories on the heap,
 * emptied in batches read with sfs_readdir (whose callback must not call
 * back into the filesystem, so entries are collected first and removed
 * after).  Sibling directories found in one batch are pushed together and
 * looked up only when they reach the top, so only the directories on the
 * current path hold lookups.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "os.h"
#include "sectorfs.h"

#define MAX_SYMLINKS 40 /* Linux's MAXSYMLINKS */
#define PATH_LEN_MAX 4095 /* PATH_MAX without its NUL */
#define BATCH 128 /* directory entries read per sfs_readdir call */
#define IO_CHUNK ((size_t)1 << 30) /* keeps each read/write's count well inside ssize_t */

/* O_TMPFILE is __O_TMPFILE | O_DIRECTORY; this is the bit that says "tmpfile". */
#define TMPFILE_BIT (O_TMPFILE & ~O_DIRECTORY)

enum last_kind { LAST_NORM, LAST_DOT, LAST_DOTDOT, LAST_ROOT };

struct walk {
	struct sfs_fs *fs;
	const struct sfs_cred *cr;
	const char *p;       /* what is left of the path */
	const char *end;     /* its terminating NUL */
	char *buf;           /* our copy once a symlink was spliced in, or NULL */
	sfs_ino_t dir;       /* the directory the walk stands in */
	bool held;           /* dir carries one of our lookups */
	int links;           /* symlinks followed so far */
	/* mkdir -p: create missing intermediate directories, but only those
	 * named in the caller's path (its last `create_tail` bytes), never
	 * those named inside a symlink's target, as mkdir -p through a
	 * dangling symlink fails rather than building its target. */
	bool mkdirs;
	mode_t mode;
	size_t create_tail;
	/* The last component, after walk_parent(). */
	char last[SFS_NAME_MAX + 1];
	enum last_kind kind;
	bool slash;          /* a slash followed it: it must be a directory */
};

/* What a path resolved to: an inode and, unless it is the root reached
 * without a lookup, one lookup of ours on it. */
struct target {
	sfs_ino_t ino;
	bool held;
	uint64_t generation; /* when found by name (not for LAST_ROOT) */
	struct stat st;
};

static void drop(struct sfs_fs *fs, sfs_ino_t ino)
{
	(void)sfs_forget(fs, ino, 1);
}

static void put_target(struct sfs_fs *fs, struct target *t)
{
	if (t->held)
		drop(fs, t->ino);
	t->held = false;
}

/* Stand in another directory, giving back the lookup on the old one. */
static void set_dir(struct walk *w, sfs_ino_t ino, bool held)
{
	if (w->held)
		drop(w->fs, w->dir);
	w->dir = ino;
	w->held = held;
}

/* Always leaves *w safe for walk_end(), even when the path is refused. */
static int walk_start(struct walk *w, struct sfs_fs *fs, const struct sfs_cred *cr,
                      const char *path)
{
	memset(w, 0, sizeof *w);
	w->fs = fs;
	w->cr = cr;
	w->dir = SFS_ROOT_INO;
	w->p = w->end = "";
	if (!fs || !path)
		return -EFAULT;
	size_t len = strnlen(path, PATH_LEN_MAX + 1);
	if (len == 0)
		return -ENOENT;
	if (len > PATH_LEN_MAX)
		return -ENAMETOOLONG;
	w->p = path;
	w->end = path + len;
	return 0;
}

static void walk_end(struct walk *w)
{
	set_dir(w, SFS_ROOT_INO, false);
	os_free(w->buf);
	w->buf = NULL;
}

/* Replace the path left by the target of the symlink `link` followed by
 * `tail` (the rest of the path from the slash after the link's name, or ""
 * for a final link).  `tail` may point into the buffer being replaced. */
static int follow(struct walk *w, sfs_ino_t link, const char *tail)
{
	if (++w->links > MAX_SYMLINKS)
		return -ELOOP;
	size_t tl = (size_t)(w->end - tail);
	char *nb = os_malloc(SFS_SYMLINK_MAX + 1 + tl + 1);
	if (!nb)
		return -ENOMEM;
	ssize_t n = sfs_readlink(w->fs, link, nb, SFS_SYMLINK_MAX + 1);
	if (n <= 0 || n > SFS_SYMLINK_MAX) {
		os_free(nb);
		return n < 0 ? (int)n : -EIO; /* the core never stores such a target */
	}
	memcpy(nb + n, tail, tl + 1);
	if (tl < w->create_tail)
		w->create_tail = tl;
	os_free(w->buf);
	w->buf = nb;
	w->p = nb;
	w->end = nb + n + tl;
	if (nb[0] == '/')
		set_dir(w, SFS_ROOT_INO, false);
	return 0;
}

static enum last_kind kind_of(const char *name, size_t len)
{
	if (len == 1 && name[0] == '.')
		return LAST_DOT;
	if (len == 2 && name[0] == '.' && name[1] == '.')
		return LAST_DOTDOT;
	return LAST_NORM;
}

/* One intermediate component, in w->last: step into it.  `tail` is the
 * slash after it, `next` the first character of the next component. */
static int step(struct walk *w, enum last_kind kind, const char *tail, const char *next)
{
	struct sfs_entry e;
	int rc = sfs_lookup(w->fs, w->cr, w->dir, w->last, &e);
	if (rc == -ENOENT && w->mkdirs && kind == LAST_NORM &&
	    (size_t)(w->end - w->p) <= w->create_tail) {
		rc = sfs_mkdir(w->fs, w->cr, w->dir, w->last, w->mode, &e);
		if (rc == -EEXIST) /* someone else made it first: fine */
			rc = sfs_lookup(w->fs, w->cr, w->dir, w->last, &e);
	}
	if (rc)
		return rc;
	if (S_ISLNK(e.attr.st_mode)) {
		rc = follow(w, e.ino, tail);
		drop(w->fs, e.ino);
		return rc;
	}
	if (!S_ISDIR(e.attr.st_mode)) {
		drop(w->fs, e.ino);
		return -ENOTDIR;
	}
	set_dir(w, e.ino, true);
	w->p = next;
	return 0;
}

/* Walk to the directory of the last component.  On return w->p points at
 * what follows the last name (its trailing slashes, or the end). */
static int walk_parent(struct walk *w)
{
	for (;;) {
		const char *s = w->p;
		while (*s == '/')
			s++;
		w->p = s;
		if (!*s) {
			/* Nothing but slashes: the path names the root itself. */
			w->kind = LAST_ROOT;
			w->slash = false;
			w->last[0] = '\0';
			return 0;
		}
		/* Search permission on the directory before anything about
		 * the name (even the last one, even "." or too long), as the
		 * kernel's link_path_walk() checks may_lookup() first. */
		int rc = sfs_access(w->fs, w->cr, w->dir, X_OK);
		if (rc)
			return rc;
		size_t len = strcspn(s, "/");
		if (len > SFS_NAME_MAX)
			return -ENAMETOOLONG;
		const char *tail = s + len, *next = tail;
		while (*next == '/')
			next++;
		memcpy(w->last, s, len);
		w->last[len] = '\0';
		enum last_kind kind = kind_of(s, len);
		if (!*next) {
			w->kind = kind;
			w->slash = *tail == '/';
			w->p = tail;
			return 0;
		}
		rc = step(w, kind, tail, next);
		if (rc)
			return rc;
	}
}

/* Resolve the last component (after walk_parent) to an inode, following a
 * final symlink if `follow` or if a slash follows it (as the kernel does). */
static int lookup_final(struct walk *w, bool follow_last, struct target *t)
{
	for (;;) {
		if (w->kind == LAST_ROOT) {
			t->ino = w->dir;
			t->held = w->held;
			w->held = false; /* handed over to t */
			int rc = sfs_getattr(w->fs, t->ino, &t->st);
			if (rc)
				put_target(w->fs, t);
			return rc;
		}
		struct sfs_entry e;
		int rc = sfs_lookup(w->fs, w->cr, w->dir, w->last, &e);
		if (rc)
			return rc;
		if (S_ISLNK(e.attr.st_mode) && (follow_last || w->slash)) {
			rc = follow(w, e.ino, w->p);
			drop(w->fs, e.ino);
			if (rc == 0)
				rc = walk_parent(w);
			if (rc)
				return rc;
			continue;
		}
		if (w->slash && !S_ISDIR(e.attr.st_mode)) {
			drop(w->fs, e.ino);
			return -ENOTDIR;
		}
		t->ino = e.ino;
		t->held = true;
		t->generation = e.generation;
		t->st = e.attr;
		return 0;
	}
}

/* walk_start + walk_parent + lookup_final, for the calls that only need
 * the object a path names. */
static int resolve(struct walk *w, struct sfs_fs *fs, const struct sfs_cred *cr,
                   const char *path, bool follow_last, struct target *t)
{
	int rc = walk_start(w, fs, cr, path);
	if (rc == 0)
		rc = walk_parent(w);
	if (rc == 0)
		rc = lookup_final(w, follow_last, t);
	return rc;
}

/* ---- open ---- */

static int open_existing(struct walk *w, int flags, struct sfs_file **out)
{
	struct target t;
	int rc = lookup_final(w, !(flags & O_NOFOLLOW), &t);
	if (rc)
		return rc;
	if (S_ISLNK(t.st.st_mode))
		/* O_NOFOLLOW on a symlink; O_DIRECTORY's ENOTDIR comes first */
		rc = (flags & O_DIRECTORY) ? -ENOTDIR : -ELOOP;
	else
		rc = sfs_open(w->fs, w->cr, t.ino, flags, out);
	put_target(w->fs, &t);
	return rc;
}

static int create_last(struct walk *w, int flags, mode_t mode, struct sfs_file **out)
{
	struct sfs_entry e;
	int rc = sfs_create(w->fs, w->cr, w->dir, w->last, mode, flags, &e, out);
	if (rc == 0)
		drop(w->fs, e.ino); /* the open handle keeps the inode alive */
	return rc;
}

/* The kernel's may_create_in_sticky(): O_CREAT that finds an existing
 * object in a sticky, world-writable directory may not open it unless the
 * caller or the directory's owner owns it.  For regular files and fifos
 * that depends on the protected_regular/protected_fifos sysctls, which this
 * library takes as 0 (their default); for the rest it always holds. */
static int may_create_in_sticky(struct walk *w, const struct stat *st)
{
	if (S_ISREG(st->st_mode) || S_ISFIFO(st->st_mode) || !w->cr ||
	    (w->cr->flags & SFS_CRED_TRUSTED))
		return 0;
	struct stat dir;
	if (sfs_getattr(w->fs, w->dir, &dir) != 0 || !(dir.st_mode & S_ISVTX) ||
	    !(dir.st_mode & S_IWOTH))
		return 0;
	if (st->st_uid == dir.st_uid || st->st_uid == w->cr->uid)
		return 0;
	return -EACCES;
}

static int open_create(struct walk *w, int flags, mode_t mode, struct sfs_file **out)
{
	for (;;) {
		if (w->kind != LAST_NORM) /* "/", "." or "..": an existing directory */
			return (flags & O_EXCL) ? -EEXIST : -EISDIR;
		if (w->slash)
			return -EISDIR;
		/* O_EXCL: the name must not exist, whatever it is (a symlink
		 * is not followed): sfs_create says EEXIST. */
		if (flags & O_EXCL)
			return create_last(w, flags, mode, out);
		struct sfs_entry e;
		int rc = sfs_lookup(w->fs, w->cr, w->dir, w->last, &e);
		if (rc == -ENOENT)
			return create_last(w, flags, mode, out);
		if (rc)
			return rc;
		if (S_ISLNK(e.attr.st_mode) && !(flags & O_NOFOLLOW)) {
			/* Follow it: a dangling link creates its target. */
			rc = follow(w, e.ino, w->p);
			drop(w->fs, e.ino);
			if (rc == 0)
				rc = walk_parent(w);
			if (rc)
				return rc;
			continue;
		}
		/* The kernel's order (do_open, then may_open): a directory,
		 * the sticky rule, and only then a symlink under O_NOFOLLOW. */
		if (S_ISDIR(e.attr.st_mode))
			rc = -EISDIR;
		else if ((rc = may_create_in_sticky(w, &e.attr)) != 0)
			;
		else if (S_ISLNK(e.attr.st_mode))
			rc = -ELOOP;
		else
			rc = sfs_open(w->fs, w->cr, e.ino, flags & ~(O_CREAT | O_EXCL), out);
		drop(w->fs, e.ino);
		return rc;
	}
}

/* O_TMPFILE: an unnamed file in the directory the path names. */
static int open_tmpfile(struct walk *w, int flags, mode_t mode, struct sfs_file **out)
{
	if ((flags & (O_TMPFILE | O_CREAT)) != O_TMPFILE)
		return -EINVAL;
	struct target t;
	int rc = lookup_final(w, true, &t);
	if (rc)
		return rc;
	if (!S_ISDIR(t.st.st_mode)) {
		rc = -ENOTDIR;
	} else {
		struct sfs_entry e;
		rc = sfs_tmpfile(w->fs, w->cr, t.ino, mode, flags & ~O_TMPFILE, &e, out);
		if (rc == 0)
			drop(w->fs, e.ino);
	}
	put_target(w->fs, &t);
	return rc;
}

int sfs_path_open(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path, int flags,
                  mode_t mode, struct sfs_file **out)
{
	if (!out)
		return -EFAULT;
	*out = NULL;
	/* Flags the kernel refuses before it looks at the path: O_CREAT never
	 * makes a directory (Linux 6.4 and later). */
	if ((flags & (O_CREAT | O_DIRECTORY)) == (O_CREAT | O_DIRECTORY) && !(flags & TMPFILE_BIT))
		return -EINVAL;
	struct walk w;
	int rc = walk_start(&w, fs, cr, path);
	if (rc == 0)
		rc = walk_parent(&w);
	if (rc == 0) {
		if (flags & TMPFILE_BIT)
			rc = open_tmpfile(&w, flags, mode, out);
		else if (flags & O_CREAT)
			rc = open_create(&w, flags, mode, out);
		else
			rc = open_existing(&w, flags, out);
	}
	walk_end(&w);
	return rc;
}

/* ---- attributes ---- */

int sfs_path_stat(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path,
                  struct stat *st, bool follow_last)
{
	if (!st)
		return -EFAULT;
	struct walk w;
	struct target t;
	int rc = resolve(&w, fs, cr, path, follow_last, &t);
	if (rc == 0) {
		/* The lookup's attributes are a consistent snapshot already. */
		*st = t.st;
		put_target(fs, &t);
	}
	walk_end(&w);
	return rc;
}

int sfs_path_lookup(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path,
                    bool follow_last, struct sfs_entry *out)
{
	if (!out)
		return -EFAULT;
	struct walk w;
	struct target t;
	int rc = resolve(&w, fs, cr, path, follow_last, &t);
	if (rc == 0) {
		if (w.kind == LAST_ROOT) {
			/* A directory reached by "/", "." or "..": take the
			 * caller's lookup (with its generation) afresh. */
			rc = sfs_lookup(fs, NULL, t.ino, ".", out);
			put_target(fs, &t);
		} else {
			out->ino = t.ino;
			out->generation = t.generation;
			out->attr = t.st;
			t.held = false; /* the lookup is the caller's now */
		}
	}
	walk_end(&w);
	return rc;
}

/* ---- creating and removing names ---- */

/* The last component of a path that names something new: "/", "." and
 * ".." exist already, and "name/" asks for a directory, so both are EEXIST
 * if the name is taken (ENOENT otherwise), as the kernel's
 * filename_create() says for link, mknod and symlink. */
static int new_name(struct walk *w)
{
	if (w->kind != LAST_NORM)
		return -EEXIST;
	if (!w->slash)
		return 0;
	struct sfs_entry e;
	int rc = sfs_lookup(w->fs, w->cr, w->dir, w->last, &e);
	if (rc == 0) {
		drop(w->fs, e.ino);
		rc = -EEXIST;
	}
	return rc;
}

/* An existing `from` (its last component followed if `follow`) and a new
 * name `to`, resolved as link(2) resolves them, for fn(the inode `from`
 * names, the directory of the new name, the name, ctx).  *which: the path
 * that failed (1 from, 2 to), or 0 when fn ran. */
typedef int (*pair_fn)(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, sfs_ino_t dir,
                       const char *name, void *ctx);
static int from_to(struct sfs_fs *fs, const struct sfs_cred *cr, const char *from, bool follow,
                   const char *to, pair_fn fn, void *ctx, int *which)
{
	struct walk a, b;
	struct target t;
	int rc = resolve(&a, fs, cr, from, follow, &t);
	int rc2 = walk_start(&b, fs, cr, to);
	*which = 1;
	if (rc == 0) {
		*which = 2;
		rc = rc2 ? rc2 : walk_parent(&b);
		if (rc == 0)
			rc = new_name(&b);
		if (rc == 0) {
			*which = 0;
			rc = fn(fs, cr, t.ino, b.dir, b.last, ctx);
		}
		put_target(fs, &t);
	}
	walk_end(&a);
	walk_end(&b);
	return rc;
}

static int do_link(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, sfs_ino_t dir,
                   const char *name, void *ctx)
{
	(void)ctx;
	return sfs_link(fs, cr, ino, dir, name, NULL);
}

int sfs_path_link(struct sfs_fs *fs, const struct sfs_cred *cr, const char *from, const char *to,
                  bool follow)
{
	int which;
	return from_to(fs, cr, from, follow, to, do_link, NULL, &which);
}

struct message {
	char *buf;
	size_t len;
};

static int do_clone(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, sfs_ino_t dir,
                    const char *name, void *ctx)
{
	struct message *m = ctx;
	return sfs_clone(fs, cr, ino, dir, name, m->buf, m->len);
}

int sfs_path_clone(struct sfs_fs *fs, const struct sfs_cred *cr, const char *from, const char *to,
                   char *err, size_t errlen)
{
	struct message m = {err, errlen};
	int which;
	if (err && errlen)
		err[0] = '\0';
	int rc = from_to(fs, cr, from, false, to, do_clone, &m, &which);
	if (rc && which && err && errlen)
		snprintf(err, errlen, "%s: %s", which == 1 ? from : to, strerror(-rc));
	return rc;
}

int sfs_path_mknod(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path, mode_t mode,
                   dev_t rdev)
{
	/* The type is refused before the path is even looked at, as mknod(2). */
	if ((mode & S_IFMT) == S_IFDIR)
		return -EPERM;
	struct walk w;
	int rc = walk_start(&w, fs, cr, path);
	if (rc == 0)
		rc = walk_parent(&w);
	if (rc == 0)
		rc = new_name(&w);
	if (rc == 0)
		rc = sfs_mknod(fs, cr, w.dir, w.last, mode, rdev, NULL);
	walk_end(&w);
	return rc;
}


int sfs_path_mkdir(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path, mode_t mode,
                   bool parents)
{
	struct walk w;
	int rc = walk_start(&w, fs, cr, path);
	w.mkdirs = parents;
	w.mode = mode;
	w.create_tail = (size_t)(w.end - w.p);
	if (rc == 0)
		rc = walk_parent(&w);
	if (rc)
		goto out;
	if (w.kind != LAST_NORM) {
		/* "/", "." or "..": a directory that exists. */
		rc = parents ? 0 : -EEXIST;
		goto out;
	}
	struct sfs_entry e;
	rc = sfs_mkdir(fs, cr, w.dir, w.last, mode, &e);
	if (rc == 0) {
		drop(fs, e.ino);
	} else if (rc == -EEXIST && parents) {
		/* Fine if it is a directory, or a symlink to one (as mkdir -p,
		 * which checks with stat); anything else keeps the EEXIST. */
		struct target t;
		w.mkdirs = false;
		if (lookup_final(&w, true, &t) == 0) {
			if (S_ISDIR(t.st.st_mode))
				rc = 0;
			put_target(fs, &t);
		}
	}
out:
	walk_end(&w);
	return rc;
}

int sfs_path_unlink(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path)
{
	struct walk w;
	int rc = walk_start(&w, fs, cr, path);
	if (rc == 0)
		rc = walk_parent(&w);
	if (rc == 0) {
		if (w.kind != LAST_NORM) {
			rc = -EISDIR;
		} else if (w.slash) {
			/* "name/" can only name a directory, which unlink refuses. */
			struct sfs_entry e;
			rc = sfs_lookup(fs, cr, w.dir, w.last, &e);
			if (rc == 0) {
				rc = S_ISDIR(e.attr.st_mode) ? -EISDIR : -ENOTDIR;
				drop(fs, e.ino);
			}
		} else {
			rc = sfs_unlink(fs, cr, w.dir, w.last);
		}
	}
	walk_end(&w);
	return rc;
}

int sfs_path_rmdir(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path)
{
	struct walk w;
	int rc = walk_start(&w, fs, cr, path);
	if (rc == 0)
		rc = walk_parent(&w);
	if (rc == 0) {
		switch (w.kind) {
		case LAST_DOT:
			rc = -EINVAL;
			break;
		case LAST_DOTDOT:
			rc = -ENOTEMPTY;
			break;
		case LAST_ROOT:
			rc = -EBUSY;
			break;
		case LAST_NORM:
			/* A trailing slash changes nothing: rmdir wants a
			 * directory anyway, and a symlink is not followed. */
			rc = sfs_rmdir(fs, cr, w.dir, w.last);
			break;
		}
	}
	walk_end(&w);
	return rc;
}

int sfs_path_rename(struct sfs_fs *fs, const struct sfs_cred *cr, const char *from,
                    const char *to, unsigned flags)
{
	struct walk a, b;
	int rc = walk_start(&a, fs, cr, from);
	int rc2 = walk_start(&b, fs, cr, to);
	if (rc == 0)
		rc = rc2;
	if (rc == 0)
		rc = walk_parent(&a);
	if (rc == 0)
		rc = walk_parent(&b);
	if (rc)
		goto out;
	if (a.kind != LAST_NORM) {
		rc = -EBUSY;
		goto out;
	}
	if (b.kind != LAST_NORM) {
		rc = (flags & SFS_RENAME_NOREPLACE) ? -EEXIST : -EBUSY;
		goto out;
	}
	/* Trailing slashes, in do_renameat2()'s order: the source must exist,
	 * then NOREPLACE and EXCHANGE have their say about the new name ("new/"
	 * with EXCHANGE must be a directory), then a source that is not a
	 * directory may have no slash, nor may the new name unless EXCHANGE. */
	if (a.slash || b.slash) {
		struct sfs_entry oe, ne;
		rc = sfs_lookup(fs, cr, a.dir, a.last, &oe);
		if (rc)
			goto out;
		int nrc = sfs_lookup(fs, cr, b.dir, b.last, &ne);
		bool old_dir = S_ISDIR(oe.attr.st_mode), new_dir = nrc == 0 && S_ISDIR(ne.attr.st_mode);
		drop(fs, oe.ino);
		if (nrc == 0)
			drop(fs, ne.ino);
		if ((flags & SFS_RENAME_NOREPLACE) && nrc == 0)
			rc = -EEXIST;
		else if ((flags & SFS_RENAME_EXCHANGE) && nrc == -ENOENT)
			rc = -ENOENT;
		else if ((flags & SFS_RENAME_EXCHANGE) && nrc == 0 && !new_dir && b.slash)
			rc = -ENOTDIR;
		else if (!old_dir && (a.slash || (!(flags & SFS_RENAME_EXCHANGE) && b.slash)))
			rc = -ENOTDIR;
		if (rc)
			goto out;
	}
	rc = sfs_rename(fs, cr, a.dir, a.last, b.dir, b.last, flags);
out:
	walk_end(&a);
	walk_end(&b);
	return rc;
}

int sfs_path_symlink(struct sfs_fs *fs, const struct sfs_cred *cr, const char *target,
                     const char *path)
{
	if (!target)
		return -EFAULT;
	struct walk w;
	int rc = walk_start(&w, fs, cr, path);
	if (rc == 0)
		rc = walk_parent(&w);
	if (rc == 0)
		rc = new_name(&w);
	if (rc == 0)
		rc = sfs_symlink(fs, cr, w.dir, w.last, target, NULL);
	walk_end(&w);
	return rc;
}

/* ---- reading directories in batches ---- */

struct batch_ent {
	char name[SFS_NAME_MAX + 1];
	struct stat st;
};

struct batch {
	struct batch_ent *v; /* BATCH entries */
	size_t n;
	off_t next;          /* where to go on reading */
	bool full;           /* stopped for room, not at the end */
};

/* sfs_readdir's callback: copy, and nothing else (it runs under the
 * directory's lock).  "." and ".." are taken but not kept. */
static int collect(void *ctx, const char *name, const struct stat *attr, off_t next)
{
	struct batch *b = ctx;
	if (!strcmp(name, ".") || !strcmp(name, "..")) {
		b->next = next;
		return 0;
	}
	if (b->n == BATCH) {
		b->full = true;
		return 1;
	}
	struct batch_ent *be = &b->v[b->n++];
	size_t len = strnlen(name, SFS_NAME_MAX);
	memcpy(be->name, name, len);
	be->name[len] = '\0';
	be->st = *attr;
	b->next = next;
	return 0;
}

/* The next batch of a directory from `off`.  With plus, each entry in the
 * batch carries a lookup the caller must give back. */
static int read_batch(struct sfs_fs *fs, struct sfs_file *dh, off_t off, bool plus,
                      struct batch *b)
{
	b->n = 0;
	b->next = off;
	b->full = false;
	return sfs_readdir(fs, dh, off, plus, collect, b);
}

int sfs_path_list(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path,
                  int (*fn)(void *ctx, const char *name, const struct stat *st), void *ctx)
{
	if (!fn)
		return -EFAULT;
	struct walk w;
	struct target t;
	struct sfs_file *dh = NULL;
	struct batch b = {0};
	int rc = resolve(&w, fs, cr, path, true, &t);
	if (rc)
		goto out;
	rc = sfs_opendir(fs, cr, t.ino, &dh);
	put_target(fs, &t);
	if (rc)
		goto out;
	b.v = os_malloc(BATCH * sizeof *b.v);
	if (!b.v) {
		rc = -ENOMEM;
		goto out;
	}
	off_t off = 0;
	for (;;) {
		rc = read_batch(fs, dh, off, true, &b);
		/* Give the lookups back first, so stopping early leaks none:
		 * the caller gets attributes, not inodes. */
		for (size_t i = 0; i < b.n; i++)
			drop(fs, b.v[i].st.st_ino);
		if (rc)
			break;
		for (size_t i = 0; i < b.n && rc == 0; i++)
			rc = fn(ctx, b.v[i].name, &b.v[i].st);
		if (rc || !b.full)
			break;
		off = b.next;
	}
out:
	if (dh)
		sfs_releasedir(fs, dh);
	os_free(b.v);
	walk_end(&w);
	return rc;
}

/* ---- rm -r ---- */

/* A directory being emptied.  Its parent is held by the frame below it
 * (or by the walk, for the first), so `parent` stays valid. */
struct rm_frame {
	sfs_ino_t parent;
	sfs_ino_t ino;       /* 0 until it reaches the top; then one lookup of ours */
	off_t off;           /* where to go on reading it */
	char *name;          /* its name in parent */
};

struct rm_stack {
	struct rm_frame *f;
	size_t n, cap;
};

static int rm_push(struct rm_stack *s, sfs_ino_t parent, sfs_ino_t ino, const char *name)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		struct rm_frame *f = os_realloc(s->f, cap * sizeof *f);
		if (!f)
			return -ENOMEM;
		s->f = f;
		s->cap = cap;
	}
	char *copy = os_strdup(name);
	if (!copy)
		return -ENOMEM;
	s->f[s->n++] = (struct rm_frame){.parent = parent, .ino = ino, .name = copy};
	return 0;
}

static void rm_pop(struct sfs_fs *fs, struct rm_stack *s)
{
	struct rm_frame *f = &s->f[--s->n];
	if (f->ino)
		drop(fs, f->ino);
	os_free(f->name);
}

/* Read one batch of the top directory: open, read, close, so no handle is
 * held while its entries are removed. */
static int rm_read(struct sfs_fs *fs, const struct sfs_cred *cr, struct rm_frame *f,
                   struct batch *b)
{
	struct sfs_file *dh;
	int rc = sfs_opendir(fs, cr, f->ino, &dh);
	if (rc)
		return rc;
	rc = read_batch(fs, dh, f->off, false, b);
	sfs_releasedir(fs, dh);
	return rc;
}

/* Remove the directory `name` in `parent`, whose lookup (on `ino`) this
 * takes over, and everything below it, depth first. */
static int rm_tree(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent,
                   const char *name, sfs_ino_t ino)
{
	struct rm_stack s = {0};
	struct batch b = {0};
	int rc = -ENOMEM;
	b.v = os_malloc(BATCH * sizeof *b.v);
	if (!b.v || rm_push(&s, parent, ino, name)) {
		drop(fs, ino);
		goto out;
	}
	rc = 0;
	while (s.n && rc == 0) {
		struct rm_frame *f = &s.f[s.n - 1];
		if (!f->ino) {
			struct sfs_entry e;
			rc = sfs_lookup(fs, cr, f->parent, f->name, &e);
			if (rc == -ENOENT) { /* gone meanwhile: nothing to do */
				rc = 0;
				rm_pop(fs, &s);
				continue;
			}
			if (rc)
				break;
			if (!S_ISDIR(e.attr.st_mode)) { /* replaced meanwhile */
				drop(fs, e.ino);
				rc = sfs_unlink(fs, cr, f->parent, f->name);
				if (rc == -ENOENT)
					rc = 0;
				rm_pop(fs, &s);
				continue;
			}
			f->ino = e.ino;
		}
		rc = rm_read(fs, cr, f, &b);
		if (rc)
			break;
		if (b.n == 0) {
			/* Empty (new entries would have come after f->off:
			 * cookies only grow). */
			rc = sfs_rmdir(fs, cr, f->parent, f->name);
			if (rc == -ENOENT)
				rc = 0;
			rm_pop(fs, &s);
			continue;
		}
		f->off = b.next;
		sfs_ino_t dir = f->ino; /* f moves if the stack grows */
		for (size_t i = 0; i < b.n && rc == 0; i++) {
			const char *n = b.v[i].name;
			if (S_ISDIR(b.v[i].st.st_mode)) {
				rc = rm_push(&s, dir, 0, n);
				continue;
			}
			rc = sfs_unlink(fs, cr, dir, n);
			if (rc == -ENOENT)
				rc = 0;
			else if (rc == -EISDIR) /* became a directory meanwhile */
				rc = rm_push(&s, dir, 0, n);
		}
	}
out:
	while (s.n)
		rm_pop(fs, &s);
	os_free(s.f);
	os_free(b.v);
	return rc;
}

int sfs_path_remove_all(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path)
{
	struct walk w;
	int rc = walk_start(&w, fs, cr, path);
	if (rc == 0)
		rc = walk_parent(&w);
	if (rc)
		goto out;
	if (w.kind != LAST_NORM) {
		/* As rm: refuse "." and ".."; and the root cannot be removed. */
		rc = w.kind == LAST_ROOT ? -EBUSY : -EINVAL;
		goto out;
	}
	struct sfs_entry e;
	rc = sfs_lookup(fs, cr, w.dir, w.last, &e);
	if (rc)
		goto out;
	if (S_ISDIR(e.attr.st_mode)) {
		rc = rm_tree(fs, cr, w.dir, w.last, e.ino);
	} else {
		drop(fs, e.ino);
		/* Not followed, even with a trailing slash: removing what a
		 * link points to is never what "rm -r link/" should risk. */
		rc = w.slash ? -ENOTDIR : sfs_unlink(fs, cr, w.dir, w.last);
	}
out:
	walk_end(&w);
	return rc;
}

/* ---- whole files ---- */

int sfs_path_write_file(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path,
                        const void *data, size_t size, mode_t mode)
{
	if (!data && size)
		return -EFAULT;
	struct sfs_file *fh;
	int rc = sfs_path_open(fs, cr, path, O_WRONLY | O_CREAT | O_TRUNC, mode, &fh);
	if (rc)
		return rc;
	size_t done = 0;
	while (done < size) {
		size_t n = size - done < IO_CHUNK ? size - done : IO_CHUNK;
		ssize_t w = sfs_write(fs, cr, fh, (const char *)data + done, n, (off_t)done);
		if (w <= 0) {
			rc = w < 0 ? (int)w : -EIO; /* no progress: never spin */
			break;
		}
		done += (size_t)w;
	}
	sfs_release(fs, fh);
	return rc;
}

ssize_t sfs_path_read_file(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path,
                           void *buf, size_t size)
{
	if (!buf && size)
		return -EFAULT;
	if (size > SSIZE_MAX)
		size = SSIZE_MAX;
	struct sfs_file *fh;
	int rc = sfs_path_open(fs, cr, path, O_RDONLY, 0, &fh);
	if (rc)
		return rc;
	size_t done = 0;
	ssize_t ret = 0;
	while (done < size) {
		size_t n = size - done < IO_CHUNK ? size - done : IO_CHUNK;
		ssize_t r = sfs_read(fs, fh, (char *)buf + done, n, (off_t)done);
		if (r < 0) {
			ret = r;
			break;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	sfs_release(fs, fh);
	return ret < 0 ? ret : (ssize_t)done;
}
