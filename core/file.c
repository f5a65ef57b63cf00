/* SPDX-License-Identifier: MIT */
/* file.c - open files: read, write, views, fallocate, seek, copy, readdir.
 *
 * An open file is a reference on its inode plus its open flags; offsets
 * are the caller's (pread/pwrite style), so handles can be shared by
 * threads freely.  The data path takes only the file's data lock (its
 * vector's), never the inode lock: reads of one file run in parallel,
 * writes are serialized by the vector.  Times are atomics and the suid/sgid
 * bits are only touched (under the inode lock) when they are set.
 *
 * A write, a fallocate, a copy or a truncate that runs out of space fails
 * with ENOSPC and changes nothing, times included: the kernel updates
 * times before it writes, but a failed call here leaves no trace at all.
 *
 * chattr's flags are judged where the kernel judges them for tmpfs: at
 * open (no writing to an immutable file, only appending to an append-only
 * one), at fallocate and copy_file_range; a write through a descriptor
 * opened before the flag was set goes through, as on tmpfs.  A directory
 * handle remembers where its listing ends (see sfs_readdir).
 *
 * copy_file_range shares the sectors it can (engine/share.c): the copy
 * costs tree nodes, and memory is spent later, sector by sector, only
 * where either file changes.  It is all or nothing, like a write, and
 * reports what tmpfs reports: the same errors in the same order, and a
 * destination that reads and seeks as a copy (holes become data).
 */
#include <dirent.h>
#include <linux/falloc.h>

#include "core.h"
#include "os.h"

sfs_ino_t sfs_file_ino(const struct sfs_file *fh)
{
	return fh->ip->ino;
}

static bool readable(const struct sfs_file *fh)
{
	return (fh->flags & O_ACCMODE) != O_WRONLY;
}

static bool writable(const struct sfs_file *fh)
{
	return (fh->flags & O_ACCMODE) != O_RDONLY;
}

/* Writes go to the end (O_APPEND, unless the caller places them itself). */
static bool appends(const struct sfs_file *fh)
{
	return (fh->flags & (O_APPEND | SFS_O_PLACED)) == O_APPEND;
}

/* A mode the caller did not set changed (set-id bits dropped by a write or
 * a truncation): a cache of attributes must forget it.  No lock held. */
static void mode_changed(struct sfs_fs *fs, struct sfs_inode *ip, uint32_t before)
{
	if (atomic_load(&ip->mode) != before && fs->attrs_changed)
		fs->attrs_changed(fs->attrs_changed_arg, ip->ino);
}

/* Clear set-id bits (see perm_setid_to_drop) and capabilities when an
 * unprivileged caller changes a file's contents. */
static void kill_privs(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip)
{
	bool bits = (atomic_load(&ip->mode) & (S_ISUID | S_ISGID)) && !cred_privileged(cr);
	if (!bits && !(atomic_load(&ip->flags) & I_CAPS))
		return; /* the common case: one load of each, no lock */
	lk_wrlock(&ip->lock);
	uint32_t mode = ip->mode;
	contents_changed_by(fs, cr, ip);
	lk_wrunlock(&ip->lock);
	mode_changed(fs, ip, mode);
}

static void data_modified(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip)
{
	kill_privs(fs, cr, ip);
	inode_touch(ip, false, true, true);
}

/* ---- open and release ---- */

int file_open_inode(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip,
                    int flags, struct sfs_file **out)
{
	int acc = flags & O_ACCMODE;
	if (acc == O_ACCMODE)
		return -EINVAL;
	if ((flags & O_DIRECTORY) && !is_dir(ip))
		return -ENOTDIR;
	if (is_lnk(ip))
		return -ELOOP;
	if (is_dir(ip) && (acc != O_RDONLY || (flags & O_TRUNC)))
		return -EISDIR;
	lk_wrlock(&ip->lock);
	uint32_t mode = ip->mode;
	uint64_t dir_end = is_dir(ip) ? ip->u.dir->next_cookie : 0;
	/* may_open(): permissions (an immutable file for every caller), then
	 * an append-only file, which opens for writing only to append. */
	int mask = (acc != O_WRONLY ? MAY_READ : 0) | (acc != O_RDONLY ? MAY_WRITE : 0);
	if (flags & O_TRUNC)
		mask |= MAY_WRITE;
	int rc = perm_check(fs, cr, ip, mask);
	if (rc == 0 && has_flag(ip, SFS_FL_APPEND) &&
	    ((acc != O_RDONLY && !(flags & O_APPEND)) || (flags & O_TRUNC)))
		rc = -EPERM;
	if (rc == 0 && !cred_trusted(cr) && (flags & O_NOATIME) && !perm_owner(cr, ip))
		rc = -EPERM;
	if (rc == 0 && !is_reg(ip) && !is_dir(ip))
		rc = -ENXIO; /* a device, fifo or socket: nothing behind it here */
	/* The handle before the truncation: once that is done, nothing may
	 * fail (and truncating to 0 cannot). */
	struct sfs_file *fh = NULL;
	if (rc == 0) {
		fh = file_new(fs);
		if (!fh)
			rc = -errno;
	}
	if (rc == 0 && (flags & O_TRUNC) && is_reg(ip)) {
		rc = sv_resize(fs->pool, &ip->u.data, 0);
		if (rc == 0) {
			contents_changed_by(fs, cr, ip);
			inode_touch(ip, false, true, true);
		}
	}
	lk_wrunlock(&ip->lock);
	if (rc) {
		if (fh)
			file_discard(fs, fh);
		return rc;
	}
	/* O_TRUNC by an unprivileged caller drops set-id bits, which nothing
	 * in the open's answer tells a cache of attributes. */
	mode_changed(fs, ip, mode);
	*out = file_init(fs, fh, ip, flags);
	atomic_store(&fh->dir_end, dir_end);
	return 0;
}

struct sfs_file *file_new(struct sfs_fs *fs)
{
	return meta_alloc(fs, sizeof(struct sfs_file));
}

struct sfs_file *file_init(struct sfs_fs *fs, struct sfs_file *fh, struct sfs_inode *ip,
                           int flags)
{
	inode_hold(ip);
	atomic_fetch_add(&fs->open_files, 1);
	fh->ip = ip;
	fh->fs = fs;
	fh->flags = flags;
	atomic_init(&fh->dir_end, 0);
	return fh;
}

void file_discard(struct sfs_fs *fs, struct sfs_file *fh)
{
	meta_free(fs, fh, sizeof(*fh));
}

int sfs_open(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, int flags,
             struct sfs_file **out)
{
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	/* O_TRUNC changes the file: it waits for a snapshot like a write. */
	if (flags & O_TRUNC)
		freeze_enter(fs);
	int rc = file_open_inode(fs, cr, ip, flags, out);
	if (flags & O_TRUNC)
		freeze_exit(fs);
	inode_put(fs, ip);
	return rc;
}

int sfs_release(struct sfs_fs *fs, struct sfs_file *fh)
{
	if (!fh)
		return -EBADF;
	struct sfs_inode *ip = fh->ip;
	meta_free(fs, fh, sizeof(*fh));
	atomic_fetch_sub(&fs->open_files, 1);
	inode_put(fs, ip);
	return 0;
}

int sfs_flush(struct sfs_fs *fs, struct sfs_file *fh)
{
	(void)fs;
	return fh ? 0 : -EBADF;
}

int sfs_fsync(struct sfs_fs *fs, struct sfs_file *fh, bool datasync)
{
	(void)fs, (void)datasync;
	return fh ? 0 : -EBADF; /* memory is as durable as it gets */
}

/* ---- read and write ---- */

void sfs_file_mark_cached(struct sfs_file *fh)
{
	if (fh && !(atomic_load(&fh->ip->flags) & I_CACHED))
		atomic_fetch_or(&fh->ip->flags, I_CACHED);
}

bool sfs_file_cached(const struct sfs_file *fh)
{
	return fh && (atomic_load(&fh->ip->flags) & I_CACHED);
}

/* As vfs_read/vfs_write: the access mode first, then what the file is. */
static int data_fh(struct sfs_file *fh, bool write)
{
	if (!fh)
		return -EBADF;
	if (write ? !writable(fh) : !readable(fh))
		return -EBADF;
	if (is_dir(fh->ip))
		return -EISDIR;
	if (!is_reg(fh->ip))
		return -EINVAL;
	return 0;
}

static void read_done(struct sfs_fs *fs, struct sfs_file *fh)
{
	if (!(fh->flags & O_NOATIME))
		inode_accessed(fs, fh->ip);
}

ssize_t sfs_read(struct sfs_fs *fs, struct sfs_file *fh, void *buf, size_t size, off_t off)
{
	int rc = data_fh(fh, false);
	if (rc)
		return rc;
	if (off < 0)
		return -EINVAL;
	if (size == 0)
		return 0;
	ssize_t n = sv_read(fs->pool, &fh->ip->u.data, buf, size, off);
	if (n >= 0)
		read_done(fs, fh);
	return n;
}

int sfs_read_view(struct sfs_fs *fs, struct sfs_file *fh, off_t off, size_t size,
                  struct iovec *iov, int max, size_t *bytes, struct sfs_view *view)
{
	*bytes = 0;
	view->priv = NULL;
	int rc = data_fh(fh, false);
	if (rc)
		return rc;
	if (off < 0)
		return -EINVAL;
	struct sfs_inode *ip = fh->ip;
	/* A reference of the view's own: the caller may release fh while
	 * the view is still out (a reply can complete a request, and the
	 * kernel release the file, before the replier ends the view). */
	inode_hold(ip);
	sv_read_lock(&ip->u.data);
	int n = sv_view(fs->pool, &ip->u.data, off, size, iov, max, bytes);
	if (n < 0) {
		sv_read_unlock(&ip->u.data);
		inode_put(fs, ip);
		return n;
	}
	if (size)
		read_done(fs, fh);
	view->priv = ip;
	return n;
}

void sfs_read_view_end(struct sfs_fs *fs, struct sfs_view *view)
{
	struct sfs_inode *ip = view->priv;
	if (!ip)
		return;
	view->priv = NULL;
	sv_read_unlock(&ip->u.data);
	inode_put(fs, ip);
}

static ssize_t do_write(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_file *fh,
                  const void *buf, size_t size, off_t off)
{
	int rc = data_fh(fh, true);
	if (rc)
		return rc;
	if (off < 0)
		return -EINVAL;
	if (size == 0)
		return 0;
	struct sv_vector *v = &fh->ip->u.data;
	ssize_t n;
	if (appends(fh)) {
		int64_t where;
		/* Past the maximum size: EFBIG, or as much as fits. */
		uint64_t cur = sv_size(v);
		if (cur >= (uint64_t)SV_MAX_SIZE)
			return -EFBIG;
		if (size > (uint64_t)SV_MAX_SIZE - cur)
			size = (size_t)((uint64_t)SV_MAX_SIZE - cur);
		n = sv_append(fs->pool, v, buf, size, &where);
	} else {
		if ((uint64_t)off >= (uint64_t)SV_MAX_SIZE)
			return -EFBIG;
		if (size > (uint64_t)SV_MAX_SIZE - (uint64_t)off)
			size = (size_t)((uint64_t)SV_MAX_SIZE - (uint64_t)off);
		n = sv_write(fs->pool, v, buf, size, off);
	}
	if (n > 0)
		data_modified(fs, cr, fh->ip);
	return n;
}

/* ---- fallocate, lseek, copy_file_range ---- */

/* The modes the kernel's vfs_fallocate() knows; tmpfs (and sectorfs) then
 * implement a subset.  FALLOC_FL_WRITE_ZEROES is newer than some headers. */
#define FALLOC_WRITE_ZEROES 0x80
#define FALLOC_MODES                                                                    \
	(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_ZERO_RANGE |        \
	 FALLOC_FL_INSERT_RANGE | FALLOC_FL_UNSHARE_RANGE | FALLOC_WRITE_ZEROES)

static int do_fallocate(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_file *fh, int mode,
                  off_t off, off_t len)
{
	if (!fh)
		return -EBADF;
	/* vfs_fallocate()'s checks, in its order. */
	if (off < 0 || len <= 0)
		return -EINVAL;
	if (mode & ~(FALLOC_MODES | FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	int kind = mode & FALLOC_MODES;
	if (kind & (kind - 1))
		return -EOPNOTSUPP; /* two modes at once */
	if (kind == FALLOC_FL_PUNCH_HOLE && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if ((kind == FALLOC_FL_COLLAPSE_RANGE || kind == FALLOC_FL_INSERT_RANGE ||
	     kind == FALLOC_WRITE_ZEROES) &&
	    (mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (!writable(fh))
		return -EBADF;
	/* Only plain allocation on an append-only file, nothing on an
	 * immutable one, even through a descriptor opened before. */
	if ((mode & ~FALLOC_FL_KEEP_SIZE) && has_flag(fh->ip, SFS_FL_APPEND))
		return -EPERM;
	if (has_flag(fh->ip, SFS_FL_IMMUTABLE))
		return -EPERM;
	if (S_ISFIFO(fh->ip->mode))
		return -ESPIPE;
	if (is_dir(fh->ip))
		return -EISDIR;
	if (!is_reg(fh->ip))
		return -ENODEV;
	if (off > SV_MAX_SIZE - len)
		return -EFBIG;
	/* What sectorfs implements: tmpfs's allocate and punch, plus zero. */
	if (kind != 0 && kind != FALLOC_FL_PUNCH_HOLE && kind != FALLOC_FL_ZERO_RANGE)
		return -EOPNOTSUPP;
	struct sv_vector *v = &fh->ip->u.data;
	bool keep = mode & FALLOC_FL_KEEP_SIZE;
	int rc;
	if (kind == FALLOC_FL_PUNCH_HOLE)
		rc = sv_punch(fs->pool, v, off, len);
	else if (kind == FALLOC_FL_ZERO_RANGE)
		rc = sv_zero(fs->pool, v, off, len, keep);
	else
		rc = sv_allocate(fs->pool, v, off, len, keep);
	if (rc == 0)
		data_modified(fs, cr, fh->ip);
	return rc;
}

off_t sfs_lseek(struct sfs_fs *fs, struct sfs_file *fh, off_t off, int whence)
{
	if (!fh)
		return -EBADF;
	switch (whence) {
	case SEEK_SET:
		return off < 0 ? -EINVAL : off;
	case SEEK_END: {
		if (!has_data(fh->ip))
			return -EINVAL;
		off_t end = (off_t)sv_size(&fh->ip->u.data);
		if ((off > 0 && end > INT64_MAX - off) || end + off < 0)
			return -EINVAL;
		return end + off;
	}
	case SEEK_DATA:
	case SEEK_HOLE:
		if (!is_reg(fh->ip))
			return -EINVAL;
		return (off_t)sv_seek(fs->pool, &fh->ip->u.data, off, whence == SEEK_DATA);
	default:
		return -EINVAL;
	}
}

static ssize_t do_copy_file_range(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_file *in,
                            off_t off_in, struct sfs_file *out, off_t off_out, size_t len,
                            unsigned flags)
{
	if (!in || !out)
		return -EBADF;
	if (flags)
		return -EINVAL;
	/* generic_file_rw_checks(): types first, then access modes. */
	if (is_dir(in->ip) || is_dir(out->ip))
		return -EISDIR;
	if (!is_reg(in->ip) || !is_reg(out->ip))
		return -EINVAL;
	if (!readable(in) || !writable(out) || appends(out))
		return -EBADF;
	if (in->fs != fs || out->fs != fs)
		return -EXDEV;
	if (has_flag(out->ip, SFS_FL_IMMUTABLE))
		return -EPERM; /* unlike a write through a descriptor opened before */
	if (off_in < 0 || off_out < 0)
		return -EINVAL;
	/* generic_copy_file_checks(), in its order: wrap, EOF, limits, overlap. */
	if (len > (uint64_t)INT64_MAX - (uint64_t)off_in || len > (uint64_t)INT64_MAX - (uint64_t)off_out)
		return -EOVERFLOW;
	uint64_t size = sv_size(&in->ip->u.data);
	if ((uint64_t)off_in >= size)
		len = 0;
	else if (len > size - (uint64_t)off_in)
		len = (size_t)(size - (uint64_t)off_in);
	if ((uint64_t)off_out >= (uint64_t)SV_MAX_SIZE)
		return -EFBIG;
	if (len > (uint64_t)SV_MAX_SIZE - (uint64_t)off_out)
		len = (size_t)((uint64_t)SV_MAX_SIZE - (uint64_t)off_out);
	if (in->ip == out->ip && (uint64_t)off_in < (uint64_t)off_out + len &&
	    (uint64_t)off_out < (uint64_t)off_in + len)
		return -EINVAL;
	if (len == 0)
		return 0;
	/* Whole sectors are shared, not copied (engine/share.c); all or
	 * nothing, with both files locked in an order that cannot deadlock. */
	ssize_t n = sv_share(fs->pool, &out->ip->u.data, off_out, &in->ip->u.data, off_in, len);
	if (n > 0) {
		read_done(fs, in);
		data_modified(fs, cr, out->ip);
	}
	return n;
}

/* ---- directories ---- */

int sfs_opendir(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino,
                struct sfs_file **out)
{
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	int rc = is_dir(ip) ? file_open_inode(fs, cr, ip, O_RDONLY | O_DIRECTORY, out) : -ENOTDIR;
	inode_put(fs, ip);
	return rc;
}

int sfs_releasedir(struct sfs_fs *fs, struct sfs_file *dh)
{
	return sfs_release(fs, dh);
}

/* One entry to the caller; with plus, its attributes and a lookup.  "."
 * and ".." get only their number and type: taking ".."'s lock here would
 * invert the lock order, and FUSE ignores their attributes anyway. */
static int emit(struct sfs_fs *fs, struct sfs_inode *ip, const char *name, off_t next, bool plus,
                bool entry, sfs_fill_fn fill, void *ctx)
{
	struct stat st;
	if (plus && entry) {
		lk_rdlock(&ip->lock);
		inode_stat(fs, ip, &st);
		lk_rdunlock(&ip->lock);
	} else {
		memset(&st, 0, sizeof st);
		st.st_ino = ip->ino;
		st.st_mode = ip->mode & S_IFMT;
	}
	int stop = fill(ctx, name, &st, next);
	if (!stop && plus && entry)
		atomic_fetch_add(&ip->nlookup, 1);
	return stop;
}

int sfs_readdir(struct sfs_fs *fs, struct sfs_file *dh, off_t off, bool plus, sfs_fill_fn fill,
                void *ctx)
{
	if (!dh)
		return -EBADF;
	struct sfs_inode *dir = dh->ip;
	if (!is_dir(dir))
		return -ENOTDIR;
	if (off < 0)
		return -EINVAL;
	/* The callback runs under the directory's read lock: it must not
	 * call back into the filesystem. */
	lk_rdlock(&dir->lock);
	if (off == 0) /* a listing starts (or starts again: a rewind) */
		atomic_store(&dh->dir_end, dir->u.dir->next_cookie);
	uint64_t end = atomic_load(&dh->dir_end);
	int stop = 0;
	if (off == 0)
		stop = emit(fs, dir, ".", 1, plus, false, fill, ctx);
	if (!stop && off <= 1) {
		struct sfs_inode *parent = dir_parent(dir) ? dir_parent(dir) : dir;
		stop = emit(fs, parent, "..", 2, plus, false, fill, ctx);
	}
	struct sfs_dirent *de = stop ? NULL : dir_next(dir->u.dir, (uint64_t)off);
	while (de && !stop && de->cookie < end) {
		stop = emit(fs, de->inode, de->name, (off_t)(de->cookie + 1), plus, true, fill, ctx);
		if (!stop)
			de = dir_next(dir->u.dir, de->cookie + 1);
	}
	lk_rdunlock(&dir->lock);
	inode_accessed(fs, dir);
	return 0;
}

/* ---- entry points: changes wait while a snapshot is taken (snapshot.c) ---- */

int sfs_fallocate(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_file *fh, int mode,
                  off_t off, off_t len)
{
	freeze_enter(fs);
	int rc = do_fallocate(fs, cr, fh, mode, off, len);
	freeze_exit(fs);
	return rc;
}

ssize_t sfs_write(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_file *fh,
                  const void *buf, size_t size, off_t off)
{
	freeze_enter(fs);
	ssize_t rc = do_write(fs, cr, fh, buf, size, off);
	freeze_exit(fs);
	return rc;
}

ssize_t sfs_copy_file_range(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_file *in,
                            off_t off_in, struct sfs_file *out, off_t off_out, size_t len,
                            unsigned flags)
{
	freeze_enter(fs);
	ssize_t rc = do_copy_file_range(fs, cr, in, off_in, out, off_out, len, flags);
	freeze_exit(fs);
	return rc;
}
