/* SPDX-License-Identifier: MIT */
/* restore.c - building a whole tree so that every attribute ends as given
 * (sfs_restore_*, sectorfs.h).
 *
 * Two callers build trees from outside: the image loader (image_load.c),
 * from records, and `sectorfs image create` (daemon/image_cmd.c), from a
 * directory on disk.  Both must end with every object exactly as their
 * source says, and that is harder than setting each attribute once,
 * because in the core (as in the kernel) changing one attribute changes
 * others:
 *
 *   - a chown clears the setuid and setgid bits and file capabilities;
 *   - a write or a truncate clears file capabilities;
 *   - setting an access ACL sets the mode, and a chmod rewrites the ACL's
 *     mask;
 *   - every change moves ctime, adding a name moves the directory's mtime
 *     and ctime and the file's ctime;
 *   - a directory's default ACL is inherited by what is created in it.
 *
 * So each object gets, in this order: created (owner root, mode 0600 or
 * 0700, inheriting nothing yet), chown (nothing it would clear is set
 * yet), its data written, its size set (the truncate before any xattr, as
 * it would clear a capability), xattrs (ACLs included), chmod, and last
 * its times, ctime given explicitly.  What later steps would still disturb is held back to
 * sfs_restore_end(): the times of directories (their entries are yet to
 * come) and of objects with several names (each link moves ctime), and
 * directories' default ACLs (their children must get exactly their own
 * ACLs, not inherit).
 *
 * A restore runs as a trusted root, and goes through the public API (the
 * same sfs_mkdir, sfs_write, sfs_setattr any caller has), so it cannot
 * break an invariant the core keeps.  It holds, per object waiting for
 * the end, 56 bytes of times, plus the default ACLs' bytes; nothing per
 * object otherwise: the caller maps its own numbering to inode numbers.
 * Trade-off: a tree of many directories holds all their times to the end,
 * rather than setting each when its last entry is in, which would need
 * the caller to say when that is (a directory on disk can grow meanwhile).
 *
 * Undoing: sfs_restore_begin() remembers the root's attributes and xattrs;
 * sfs_restore_free(r, true) removes every entry of the root and puts those
 * back, so the filesystem is as empty as it was.  That is why a restore
 * must start from an empty filesystem.
 *
 * Failures: each call returns -errno, and sfs_restore_failed() says what
 * it was doing ("mkdir", "chown", "setxattr", "default ACL", "times", ...)
 * and to which inode, so that each caller words its own message (the
 * loader's name image records, the copier's name paths).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "image.h" /* growable arrays (image_format.c), little-endian fields */
#include "os.h"
#include "sectorfs.h"

static const struct sfs_cred trusted_root = {.uid = 0, .gid = 0, .umask = 0,
                                             .flags = SFS_CRED_TRUSTED};

struct held_times {
	sfs_ino_t ino;
	struct timespec atime, mtime, ctime;
};

/* The root as it was, to put back if the restore is undone. */
struct root_state {
	struct stat st;
	struct arena xattrs;       /* {u32 name length + 1, u32 value length, name, NUL, value} */
};

struct sfs_restore {
	struct sfs_fs *fs;
	const struct sfs_cred *cr;
	/* the current object */
	bool open;
	sfs_ino_t ino;
	struct stat st;            /* as the caller gave it */
	struct sfs_file *fh;       /* a regular file being written */
	uint64_t written_end;
	bool data_done, later;
	/* held back to the end */
	struct held_times *times;
	size_t ntimes, timescap;
	struct arena acls;         /* {u64 ino, u32 len, value} default ACLs */
	struct root_state root;
	/* the last failure */
	const char *step;          /* NULL: the restore's own memory ran out */
	sfs_ino_t failed_ino;
};

static int failed(struct sfs_restore *r, int rc, const char *step, sfs_ino_t ino)
{
	r->step = step;
	r->failed_ino = ino;
	return rc;
}

static int set_times(struct sfs_restore *r, sfs_ino_t ino, struct timespec a, struct timespec m,
                     struct timespec c)
{
	struct stat st = {.st_atim = a, .st_mtim = m, .st_ctim = c};
	return sfs_setattr(r->fs, r->cr, ino, &st, SFS_SET_ATIME | SFS_SET_MTIME | SFS_SET_CTIME,
	                   NULL, NULL);
}

/* ---- the root, remembered and put back ---- */

static int root_save(struct sfs_fs *fs, struct root_state *rs)
{
	int rc = sfs_getattr(fs, SFS_ROOT_INO, &rs->st);
	if (rc)
		return rc;
	ssize_t n = sfs_listxattr(fs, &trusted_root, SFS_ROOT_INO, NULL, 0);
	if (n <= 0)
		return (int)n;
	char *list = os_malloc((size_t)n), *value = os_malloc(SFS_XATTR_SIZE_MAX);
	if (!list || !value) {
		rc = -ENOMEM;
		goto out;
	}
	n = sfs_listxattr(fs, &trusted_root, SFS_ROOT_INO, list, (size_t)n);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1) {
		ssize_t v = sfs_getxattr(fs, &trusted_root, SFS_ROOT_INO, list + off, value,
		                         SFS_XATTR_SIZE_MAX);
		if (v < 0) {
			rc = (int)v;
			goto out;
		}
		uint8_t h[8];
		uint32_t nl = (uint32_t)strlen(list + off) + 1;
		put32(h, nl);
		put32(h + 4, (uint32_t)v);
		if (img_arena_add(&rs->xattrs, h, 8) || img_arena_add(&rs->xattrs, list + off, nl) ||
		    img_arena_add(&rs->xattrs, value, (size_t)v)) {
			rc = -ENOMEM;
			goto out;
		}
	}
out:
	os_free(list);
	os_free(value);
	return rc;
}

struct namelist {
	struct arena a;
	int rc;
};

static int collect_name(void *ctx, const char *name, const struct stat *st, off_t next)
{
	struct namelist *nl = ctx;
	(void)st, (void)next;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if (img_arena_add(&nl->a, "/", 1) || img_arena_add(&nl->a, name, strlen(name) + 1)) {
		nl->rc = -ENOMEM;
		return 1;
	}
	return 0;
}

/* Everything under the root, then the root's own attributes.  Best
 * effort: it runs after a failure already reported. */
static void rollback(struct sfs_fs *fs, struct root_state *rs)
{
	const struct sfs_cred *cr = &trusted_root;
	for (int attempt = 0; attempt < 3; attempt++) {
		struct namelist nl = {0};
		struct sfs_file *dh;
		if (sfs_opendir(fs, cr, SFS_ROOT_INO, &dh) == 0) {
			sfs_readdir(fs, dh, 0, false, collect_name, &nl);
			sfs_releasedir(fs, dh);
		}
		for (size_t off = 0; off < nl.a.len; off += strlen((char *)nl.a.p + off) + 1)
			sfs_path_remove_all(fs, cr, (char *)nl.a.p + off);
		bool done = nl.a.len == 0 && nl.rc == 0;
		img_arena_free(&nl.a);
		if (done)
			break;
	}
	ssize_t n = sfs_listxattr(fs, cr, SFS_ROOT_INO, NULL, 0);
	char *list = n > 0 ? os_malloc((size_t)n) : NULL;
	if (list && (n = sfs_listxattr(fs, cr, SFS_ROOT_INO, list, (size_t)n)) > 0)
		for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1)
			sfs_removexattr(fs, cr, SFS_ROOT_INO, list + off);
	os_free(list);
	for (size_t off = 0; off + 8 <= rs->xattrs.len;) {
		uint32_t nl = get32(rs->xattrs.p + off), vl = get32(rs->xattrs.p + off + 4);
		const char *name = (const char *)rs->xattrs.p + off + 8;
		sfs_setxattr(fs, cr, SFS_ROOT_INO, name, name + nl, vl, 0);
		off += 8 + nl + vl;
	}
	struct stat st = rs->st;
	sfs_setattr(fs, cr, SFS_ROOT_INO, &st, SFS_SET_UID | SFS_SET_GID, NULL, NULL);
	sfs_setattr(fs, cr, SFS_ROOT_INO, &st,
	            SFS_SET_MODE | SFS_SET_ATIME | SFS_SET_MTIME | SFS_SET_CTIME, NULL, NULL);
}

/* ---- the API ---- */

int sfs_restore_begin(struct sfs_fs *fs, struct sfs_restore **out)
{
	struct sfs_stats st;
	sfs_get_stats(fs, &st);
	if (st.inodes != 1)
		return -ENOTEMPTY;
	struct sfs_restore *r = os_calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->fs = fs;
	r->cr = &trusted_root;
	int rc = root_save(fs, &r->root);
	if (rc) {
		img_arena_free(&r->root.xattrs);
		os_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

int sfs_restore_inode(struct sfs_restore *r, sfs_ino_t parent, const char *name,
                      const struct stat *st, const char *target, sfs_ino_t *ino)
{
	uint32_t type = st->st_mode & S_IFMT;
	if (r->open || (parent == 0 && type != S_IFDIR))
		return failed(r, -EINVAL, "restore", 0);
	r->st = *st;
	r->open = true;
	r->data_done = false;
	r->written_end = 0;
	struct sfs_entry ent;
	const char *op;
	int rc;
	switch (type) {
	case S_IFDIR:
		if (parent == 0) {
			op = "getattr";
			ent.ino = SFS_ROOT_INO;
			rc = sfs_getattr(r->fs, SFS_ROOT_INO, &ent.attr);
		} else {
			op = "mkdir";
			rc = sfs_mkdir(r->fs, r->cr, parent, name, 0700, &ent);
		}
		break;
	case S_IFREG:
		op = "create";
		rc = sfs_create(r->fs, r->cr, parent, name, 0600, O_WRONLY | O_CREAT | O_EXCL, &ent,
		                &r->fh);
		break;
	case S_IFLNK:
		op = "symlink";
		rc = sfs_symlink(r->fs, r->cr, parent, name, target, &ent);
		break;
	default:
		op = "mknod";
		rc = sfs_mknod(r->fs, r->cr, parent, name, type | 0600, st->st_rdev, &ent);
		break;
	}
	if (rc) {
		r->open = false;
		return failed(r, rc, op, 0);
	}
	r->ino = ent.ino;
	*ino = ent.ino;
	if (parent != 0)
		sfs_forget(r->fs, ent.ino, 1);
	/* The owner first: a chown clears suid/sgid and capabilities, which
	 * the xattrs and the mode set later bring back. */
	if (ent.attr.st_uid != st->st_uid || ent.attr.st_gid != st->st_gid) {
		struct stat o = {.st_uid = st->st_uid, .st_gid = st->st_gid};
		rc = sfs_setattr(r->fs, r->cr, r->ino, &o, SFS_SET_UID | SFS_SET_GID, NULL, NULL);
		if (rc)
			return failed(r, rc, "chown", r->ino);
	}
	/* Directories gain entries, and files with several names gain links
	 * (each moving ctime) until the end: their times wait till then. */
	r->later = type == S_IFDIR || st->st_nlink > 1;
	if (r->later) {
		if (img_grow((void **)&r->times, &r->timescap, r->ntimes + 1, sizeof *r->times))
			return failed(r, -ENOMEM, NULL, r->ino);
		r->times[r->ntimes++] =
		        (struct held_times){r->ino, st->st_atim, st->st_mtim, st->st_ctim};
	}
	return 0;
}

int sfs_restore_write(struct sfs_restore *r, const void *buf, size_t len, off_t off)
{
	if (!r->open || !r->fh || r->data_done || off < 0)
		return failed(r, -EINVAL, "write", r->ino);
	for (size_t done = 0; done < len;) {
		ssize_t n = sfs_write(r->fs, r->cr, r->fh, (const char *)buf + done, len - done,
		                      off + (off_t)done);
		if (n <= 0)
			return failed(r, n < 0 ? (int)n : -EIO, "write", r->ino);
		done += (size_t)n;
	}
	if ((uint64_t)off + len > r->written_end)
		r->written_end = (uint64_t)off + len;
	return 0;
}

int sfs_restore_share(struct sfs_restore *r, sfs_ino_t from, off_t from_off, off_t off,
                      uint64_t len)
{
	if (!r->open || !r->fh || r->data_done || off < 0 || from_off < 0)
		return failed(r, -EINVAL, "share data", r->ino);
	struct sfs_file *src;
	int rc = sfs_open(r->fs, r->cr, from, O_RDONLY | O_NOATIME, &src);
	if (rc)
		return failed(r, rc, "open the file it shares data with", r->ino);
	for (uint64_t done = 0; rc == 0 && done < len;) {
		ssize_t n = sfs_copy_file_range(r->fs, r->cr, src, from_off + (off_t)done, r->fh,
		                                off + (off_t)done, len - done, 0);
		rc = n < 0 ? (int)n : n == 0 ? -EIO : 0;
		done += n > 0 ? (uint64_t)n : 0;
	}
	int rc2 = sfs_release(r->fs, src);
	if (rc || rc2)
		return failed(r, rc ? rc : rc2, "share data", r->ino);
	if ((uint64_t)off + len > r->written_end)
		r->written_end = (uint64_t)off + len;
	return 0;
}

/* A regular file's contents are complete: give it its size.  Before any
 * xattr, as a truncate clears file capabilities. */
static int finish_data(struct sfs_restore *r)
{
	if (r->data_done || !r->fh)
		return 0;
	r->data_done = true;
	if ((uint64_t)r->st.st_size > r->written_end) {
		struct stat st = {.st_size = r->st.st_size};
		int rc = sfs_setattr(r->fs, r->cr, r->ino, &st, SFS_SET_SIZE, r->fh, NULL);
		if (rc)
			return failed(r, rc, "truncate", r->ino);
	}
	return 0;
}

int sfs_restore_xattr(struct sfs_restore *r, const char *name, const void *value, size_t len)
{
	if (!r->open)
		return failed(r, -EINVAL, "setxattr", r->ino);
	int rc = finish_data(r);
	if (rc)
		return rc;
	if (S_ISDIR(r->st.st_mode) && !strcmp(name, "system.posix_acl_default")) {
		/* Set at the end: the children must not inherit it. */
		uint8_t h[12];
		put64(h, r->ino);
		put32(h + 8, (uint32_t)len);
		if (img_arena_add(&r->acls, h, sizeof h) || img_arena_add(&r->acls, value, len))
			return failed(r, -ENOMEM, NULL, r->ino);
		return 0;
	}
	rc = sfs_setxattr(r->fs, r->cr, r->ino, name, value, len, 0);
	return rc ? failed(r, rc, "setxattr", r->ino) : 0;
}

int sfs_restore_done(struct sfs_restore *r)
{
	if (!r->open)
		return 0;
	int rc = finish_data(r);
	if (r->fh) {
		int rc2 = sfs_release(r->fs, r->fh);
		r->fh = NULL;
		if (!rc && rc2)
			rc = failed(r, rc2, "release", r->ino);
	}
	r->open = false;
	if (rc)
		return rc;
	struct stat st = {.st_mode = r->st.st_mode & 07777, .st_atim = r->st.st_atim,
	                  .st_mtim = r->st.st_mtim, .st_ctim = r->st.st_ctim};
	unsigned valid = S_ISLNK(r->st.st_mode) ? 0 : SFS_SET_MODE;
	if (!r->later)
		valid |= SFS_SET_ATIME | SFS_SET_MTIME | SFS_SET_CTIME;
	if (valid) {
		rc = sfs_setattr(r->fs, r->cr, r->ino, &st, valid, NULL, NULL);
		if (rc)
			return failed(r, rc, "setattr", r->ino);
	}
	return 0;
}

int sfs_restore_link(struct sfs_restore *r, sfs_ino_t ino, sfs_ino_t parent, const char *name)
{
	int rc = sfs_link(r->fs, r->cr, ino, parent, name, NULL);
	return rc ? failed(r, rc, "link", ino) : 0;
}

int sfs_restore_end(struct sfs_restore *r)
{
	int rc = sfs_restore_done(r);
	for (size_t off = 0; rc == 0 && off < r->acls.len;) {
		sfs_ino_t ino = get64(r->acls.p + off);
		uint32_t len = get32(r->acls.p + off + 8);
		rc = sfs_setxattr(r->fs, r->cr, ino, "system.posix_acl_default", r->acls.p + off + 12,
		                  len, 0);
		if (rc)
			rc = failed(r, rc, "default ACL", ino);
		off += 12 + len;
	}
	for (size_t i = 0; rc == 0 && i < r->ntimes; i++) {
		const struct held_times *t = &r->times[i];
		rc = set_times(r, t->ino, t->atime, t->mtime, t->ctime);
		if (rc)
			rc = failed(r, rc, "times", t->ino);
	}
	return rc;
}

const char *sfs_restore_failed(const struct sfs_restore *r, sfs_ino_t *ino)
{
	if (ino)
		*ino = r->failed_ino;
	return r->step;
}

void sfs_restore_free(struct sfs_restore *r, bool undo)
{
	if (!r)
		return;
	if (r->fh)
		sfs_release(r->fs, r->fh);
	r->fh = NULL;
	if (undo)
		rollback(r->fs, &r->root);
	os_free(r->times);
	img_arena_free(&r->acls);
	img_arena_free(&r->root.xattrs);
	os_free(r);
}
