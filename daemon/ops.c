/* SPDX-License-Identifier: MIT */
/* ops.c - libfuse's low-level operations on top of libsectorfs (prefix op_).
 *
 * A thin adapter: each request is one call into the core and one reply.
 * Node ids are inode numbers (the root's is FUSE_ROOT_ID = SFS_ROOT_INO),
 * file handles are the core's open-file pointers, and the kernel's lookup
 * counts are the core's.  The kernel checks permissions itself
 * (default_permissions), so requests come in with trusted credentials; the
 * caller's uid still decides what a write or a chown clears and who owns
 * what is created.  ACCESS alone is judged here, in full, should the
 * kernel ever send it (it does not with default_permissions).
 *
 * The daemon is the only writer of its files, so what the kernel caches
 * stays right: entries, negative entries and attributes are cached for a
 * long time, and the kernel invalidates them itself when its own requests
 * change them.  Reads reply straight from the sectors (fuse_reply_iov over
 * the core's zero-copy view, the file's read lock held until the reply is
 * written); writes are copied once, from libfuse's buffer into sectors.
 */
#include "ops.h"

#include <errno.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clone_cmd.h"
#include "image_cmd.h"
#include "inval.h"
#include "os.h"
#include "progress.h"
#include "protocol.h"
#include "remount.h"
#include "transport.h"

#define TIMEOUT 86400.0 /* seconds: nothing but us changes the tree */
#define MAX_IOV 1023    /* fuse_reply_iov adds the header: IOV_MAX in all */

static struct daemon *dm(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct sfs_fs *fs_of(fuse_req_t req)
{
	return dm(req)->fs;
}

static int req_groups(void *req, gid_t *list, int max)
{
	int n = fuse_req_getgroups(req, max, list);
	return n < 0 ? -1 : n;
}

/* The kernel checked permissions (default_permissions); the caller's
 * supplementary groups, costly to read, are fetched only if needed. */
static struct sfs_cred cred_of(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	return (struct sfs_cred){.uid = c->uid, .gid = c->gid, .umask = c->umask,
	                         .flags = SFS_CRED_TRUSTED, .get_groups = req_groups,
	                         .get_groups_arg = req};
}

static struct sfs_file *fh_of(struct fuse_file_info *fi)
{
	return (struct sfs_file *)(uintptr_t)fi->fh;
}

/* ---- replies ---- */

static void reply_entry(fuse_req_t req, int rc, const struct sfs_entry *e)
{
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param p = {.ino = e->ino, .generation = e->generation, .attr = e->attr,
	                             .attr_timeout = TIMEOUT, .entry_timeout = TIMEOUT};
	if (fuse_reply_entry(req, &p) == -ENOENT)
		sfs_forget(fs_of(req), e->ino, 1); /* the request was interrupted */
}

/* A lookup that finds nothing answers with a negative entry, which the
 * kernel may cache: only our own requests create names. */
static void reply_lookup(fuse_req_t req, int rc, const struct sfs_entry *e)
{
	if (rc == -ENOENT) {
		struct fuse_entry_param neg = {.ino = 0, .entry_timeout = TIMEOUT};
		fuse_reply_entry(req, &neg);
	} else {
		reply_entry(req, rc, e);
	}
}

static void reply_err(fuse_req_t req, int rc)
{
	fuse_reply_err(req, rc < 0 ? -rc : 0);
}

void daemon_attrs_changed(void *daemon, sfs_ino_t ino)
{
	struct daemon *d = daemon;
	/* An offset below zero: the attributes only, not the page cache.
	 * The kernel takes no lock the request's caller holds. */
	if (d->se)
		fuse_lowlevel_notify_inval_inode(d->se, ino, -1, 0);
}

/* ---- the connection ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct daemon *d = userdata;
	const unsigned wanted = FUSE_CAP_ASYNC_READ | FUSE_CAP_EXPORT_SUPPORT | FUSE_CAP_IOCTL_DIR |
	                        FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_READDIRPLUS |
	                        FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_POSIX_ACL |
	                        FUSE_CAP_DONT_MASK | FUSE_CAP_ATOMIC_O_TRUNC |
	                        FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_AUTO_INVAL_DATA;
	conn->want |= wanted & conn->capable;
	/* Only we change the files: the kernel need not compare mtimes. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (d->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	conn->time_gran = 1;
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void op_destroy(void *userdata)
{
	(void)userdata;
	inv_stop();
}

/* ---- names ---- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_cred cr = cred_of(req);
	struct sfs_entry e;
	reply_lookup(req, sfs_lookup(fs_of(req), &cr, parent, name, &e), &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	sfs_forget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		sfs_forget(fs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct stat st;
	int rc = sfs_getattr(fs_of(req), ino, &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

/* chown(f, -1, -1) changes no id but clears set-id bits, which under
 * FUSE_HANDLE_KILLPRIV_V2 the kernel leaves to us, without checking that
 * the caller owns the file: it arrives as a SETATTR that sets nothing
 * (FATTR_CTIME alone with the writeback cache).  Without the writeback
 * cache the kernel sends the same empty SETATTR before a write or a
 * fallocate that must clear the bits (file_remove_privs()), from a caller
 * who need not own the file.  So the owner or root gets the chown, with
 * its owner check; anyone else only a new ctime, and the write that
 * follows clears what it must (a chown by someone else, which tmpfs
 * refuses with EPERM, succeeds without clearing anything: see README).
 * `surely`: it can only be a chown (the writeback cache). */
static int chown_same(fuse_req_t req, fuse_ino_t ino, bool surely, struct stat *out)
{
	struct sfs_cred cr = cred_of(req);
	cr.flags &= ~SFS_CRED_TRUSTED;
	struct stat a = {.st_uid = (uid_t)-1, .st_gid = (gid_t)-1};
	int rc = sfs_setattr(fs_of(req), &cr, ino, &a, SFS_SET_UID | SFS_SET_GID, NULL, out);
	if (rc != -EPERM || surely)
		return rc;
	cr.flags |= SFS_CRED_TRUSTED;
	clock_gettime(CLOCK_REALTIME, &a.st_ctim);
	return sfs_setattr(fs_of(req), &cr, ino, &a, SFS_SET_CTIME, NULL, out);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	static const struct {
		int fuse;
		unsigned sfs;
	} map[] = {
	        {FUSE_SET_ATTR_MODE, SFS_SET_MODE},          {FUSE_SET_ATTR_UID, SFS_SET_UID},
	        {FUSE_SET_ATTR_GID, SFS_SET_GID},            {FUSE_SET_ATTR_SIZE, SFS_SET_SIZE},
	        {FUSE_SET_ATTR_ATIME, SFS_SET_ATIME},        {FUSE_SET_ATTR_MTIME, SFS_SET_MTIME},
	        {FUSE_SET_ATTR_ATIME_NOW, SFS_SET_ATIME_NOW}, {FUSE_SET_ATTR_MTIME_NOW, SFS_SET_MTIME_NOW},
	        {FUSE_SET_ATTR_CTIME, SFS_SET_CTIME},
	};
	unsigned valid = 0;
	for (size_t i = 0; i < sizeof map / sizeof *map; i++)
		if (to_set & map[i].fuse)
			valid |= map[i].sfs;
	/* "now" wins over a given time: the kernel sends both for utimes. */
	if (valid & SFS_SET_ATIME_NOW)
		valid &= ~SFS_SET_ATIME;
	if (valid & SFS_SET_MTIME_NOW)
		valid &= ~SFS_SET_MTIME;
	/* An unchanged id arrives as the current one; the core takes -1. */
	if (!(valid & SFS_SET_UID))
		attr->st_uid = (uid_t)-1;
	if (!(valid & SFS_SET_GID))
		attr->st_gid = (gid_t)-1;
	struct sfs_cred cr = cred_of(req);
	struct stat out;
	int rc;
	if (valid == 0 || (valid == SFS_SET_CTIME && dm(req)->writeback))
		rc = chown_same(req, ino, valid != 0, &out);
	else
		rc = sfs_setattr(fs_of(req), &cr, ino, attr, valid, fi ? fh_of(fi) : NULL, &out);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &out, TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[SFS_SYMLINK_MAX + 1];
	ssize_t n = sfs_readlink(fs_of(req), ino, buf, sizeof buf);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_readlink(req, buf);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev)
{
	struct sfs_cred cr = cred_of(req);
	struct sfs_entry e;
	int rc = sfs_mknod(fs_of(req), &cr, parent, name, mode, rdev, &e);
	reply_entry(req, rc, &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct sfs_cred cr = cred_of(req);
	struct sfs_entry e;
	int rc = sfs_mkdir(fs_of(req), &cr, parent, name, mode, &e);
	reply_entry(req, rc, &e);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct sfs_cred cr = cred_of(req);
	struct sfs_entry e;
	int rc = sfs_symlink(fs_of(req), &cr, parent, name, link, &e);
	reply_entry(req, rc, &e);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct sfs_cred cr = cred_of(req);
	struct sfs_entry e;
	int rc = sfs_link(fs_of(req), &cr, ino, newparent, newname, &e);
	reply_entry(req, rc, &e);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_cred cr = cred_of(req);
	reply_err(req, sfs_unlink(fs_of(req), &cr, parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_cred cr = cred_of(req);
	reply_err(req, sfs_rmdir(fs_of(req), &cr, parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	struct sfs_cred cr = cred_of(req);
	reply_err(req, sfs_rename(fs_of(req), &cr, parent, name, newparent, newname, flags));
}

/* ---- files ---- */

/* The kernel places appends itself: every write carries the real offset
 * (and fcntl(F_SETFL) may turn O_APPEND off without telling us), so the
 * handle must not move writes to the end (SFS_O_PLACED; O_APPEND still
 * counts at the open of an append-only file).  With the writeback cache
 * the kernel also reads to fill pages written in part, so a write-only
 * open must read. */
static int open_flags(struct daemon *d, int flags)
{
	if (d->writeback && (flags & O_ACCMODE) == O_WRONLY)
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	return flags & O_APPEND ? flags | SFS_O_PLACED : flags;
}

static void set_open_flags(struct daemon *d, struct fuse_file_info *fi, bool dir)
{
	fi->keep_cache = d->cache == OPT_CACHE_KEEP;
	/* Nothing to flush: skip the round trip at close.  With the writeback
	 * cache the kernel ignores this and sends FLUSH anyway; there is no
	 * flush operation, so the first one gets ENOSYS, after which the
	 * kernel stops sending them (it still writes the file's dirty pages
	 * back at close and reports their errors there). */
	fi->noflush = 1;
	if (dir)
		fi->cache_readdir = 1;
}

/* Whether a file opened with these flags bypasses the kernel's page cache
 * (FOPEN_DIRECT_IO): 1 yes, 0 no, -1 if the file is empty once opened.
 * Through the page cache a write is copied twice (into the cache, then to
 * us) and its data is then held twice, in the cache and in sectors; past
 * it, the kernel hands the writer's own buffer over and the data is held
 * once.  What the cache is good for is reading back, so (direct_write=auto)
 * it is skipped where reading back through the descriptor is impossible
 * or unlikely: write-only descriptors, and descriptors that start from an
 * empty file (new, truncated or empty), whose data is all being written
 * now.  A read-write descriptor of a file with data keeps the cache, for
 * programs that read and update in place.  The kernel keeps the two kinds
 * coherent (around a direct write it writes back and drops the cached
 * pages it covers), and shared mappings of a direct file still work,
 * through the cache, once it agreed to FUSE_DIRECT_IO_ALLOW_MMAP; without
 * that (before Linux 6.9) every descriptor uses the cache. */
static int direct_rule(const struct daemon *d, int flags)
{
	if ((flags & O_ACCMODE) == O_RDONLY || d->direct_write == OPT_DIRECT_OFF ||
	    !tr_direct_io_mmap())
		return 0;
	if (d->direct_write == OPT_DIRECT_ALL || (flags & O_ACCMODE) == O_WRONLY)
		return 1;
	return -1;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_cred cr = cred_of(req);
	struct sfs_file *fh;
	int rc = sfs_open(fs_of(req), &cr, ino, open_flags(dm(req), fi->flags), &fh);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)fh;
	set_open_flags(dm(req), fi, false);
	struct stat st;
	int direct = direct_rule(dm(req), fi->flags);
	fi->direct_io = direct > 0 ||
	                (direct < 0 && sfs_getattr(fs_of(req), ino, &st) == 0 && st.st_size == 0);
	if (fuse_reply_open(req, fi) == -ENOENT)
		sfs_release(fs_of(req), fh);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	struct sfs_cred cr = cred_of(req);
	struct sfs_file *fh;
	struct sfs_entry e;
	/* An O_TMPFILE comes as a create (protocol.c) of an unnamed file. */
	int rc = pt_tmpfile() ? sfs_tmpfile(fs_of(req), &cr, parent, mode,
	                                    open_flags(dm(req), fi->flags), &e, &fh)
	                      : sfs_create(fs_of(req), &cr, parent, name, mode,
	                                   open_flags(dm(req), fi->flags), &e, &fh);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)fh;
	set_open_flags(dm(req), fi, false);
	int direct = direct_rule(dm(req), fi->flags);
	fi->direct_io = direct > 0 || (direct < 0 && e.attr.st_size == 0);
	struct fuse_entry_param p = {.ino = e.ino, .generation = e.generation, .attr = e.attr,
	                             .attr_timeout = TIMEOUT, .entry_timeout = TIMEOUT};
	if (fuse_reply_create(req, &p, fi) == -ENOENT) {
		sfs_release(fs_of(req), fh);
		sfs_forget(fs_of(req), e.ino, 1);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	(void)ino;
	struct sfs_fs *fs = fs_of(req);
	struct sfs_file *fh = fh_of(fi);
	struct iovec iov[MAX_IOV];
	struct sfs_view view;
	size_t bytes;
	sfs_file_mark_cached(fh); /* before the data is taken: see inval.c */
	int n = sfs_read_view(fs, fh, off, size, iov, MAX_IOV, &bytes, &view);
	if (n < 0) {
		fuse_reply_err(req, -n);
		return;
	}
	if (n < MAX_IOV || bytes == size) {
		/* The common case: the view covers the request (a short view
		 * means the end of the file).  Once the reply is written the
		 * kernel may release fh; the view holds the file by itself. */
		fuse_reply_iov(req, iov, n);
		sfs_read_view_end(fs, &view);
		return;
	}
	/* Too fragmented for one writev: copy instead. */
	sfs_read_view_end(fs, &view);
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t got = sfs_read(fs, fh, buf, size, off);
	if (got < 0)
		fuse_reply_err(req, (int)-got);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

/* A write past the page cache (fuse_direct_io(), which alone names the
 * writer's files: FUSE_WRITE_LOCKOWNER) into a file the kernel may hold
 * pages of is answered once those pages of the range are dropped (see
 * inval.c); a write from the cache (write-through, writeback, a mapping)
 * marks the file as cached. */
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	struct sfs_cred cr = cred_of(req);
	struct sfs_file *fh = fh_of(fi);
	bool past_cache = fi->lock_owner != 0 && !fi->writepage;
	if (!past_cache)
		sfs_file_mark_cached(fh);
	ssize_t n = sfs_write(fs_of(req), &cr, fh, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (n > 0 && past_cache && sfs_file_cached(fh))
		inv_reply_write(dm(req)->se, req, ino, off, (size_t)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	reply_err(req, sfs_release(fs_of(req), fh_of(fi)));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	reply_err(req, sfs_fsync(fs_of(req), fh_of(fi), datasync));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi)
{
	(void)ino;
	struct sfs_cred cr = cred_of(req);
	reply_err(req, sfs_fallocate(fs_of(req), &cr, fh_of(fi), mode, off, len));
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
	(void)ino;
	off_t r = sfs_lseek(fs_of(req), fh_of(fi), off, whence);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, r);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                               struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
                               struct fuse_file_info *fi_out, size_t len, int flags)
{
	(void)ino_in, (void)ino_out;
	struct sfs_cred cr = cred_of(req);
	/* The reply counts 32 bits: ask the caller to come back for more
	 * (sectors are shared, so a 4 GiB piece takes milliseconds). */
	const size_t most = (size_t)UINT32_MAX & ~(size_t)4095;
	ssize_t n = sfs_copy_file_range(fs_of(req), &cr, fh_of(fi_in), off_in, fh_of(fi_out),
	                                off_out, len < most ? len : most, (unsigned)flags);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* chattr's flags, in the two forms the kernel asks for them: the inode
 * flags (FS_IOC_GETFLAGS/SETFLAGS, 4 bytes) and the extended ones
 * (FS_IOC_FSGETXATTR/FSSETXATTR, a struct fsxattr, which the kernel's
 * fileattr code reads before every change).  The kernel checks who may
 * change what, then sends them through a descriptor it opens read-only.
 * `sectorfs clone` comes as an ioctl too (clone_cmd.c).  Any other
 * ioctl: -ENOTTY, as for one a filesystem does not know. */
static const struct {
	unsigned fl, xfl;
} xflags[] = {{SFS_FL_IMMUTABLE, FS_XFLAG_IMMUTABLE}, {SFS_FL_APPEND, FS_XFLAG_APPEND},
              {SFS_FL_NODUMP, FS_XFLAG_NODUMP}, {SFS_FL_NOATIME, FS_XFLAG_NOATIME}};

static unsigned to_xflags(unsigned fl)
{
	unsigned x = 0;
	for (size_t i = 0; i < sizeof xflags / sizeof *xflags; i++)
		if (fl & xflags[i].fl)
			x |= xflags[i].xfl;
	return x;
}

/* The flags of an fsxattr; -1 if it asks for more than tmpfs keeps. */
static long from_fsxattr(const struct fsxattr *fa)
{
	unsigned fl = 0, x = fa->fsx_xflags;
	for (size_t i = 0; i < sizeof xflags / sizeof *xflags; i++)
		if (x & xflags[i].xfl)
			fl |= xflags[i].fl, x &= ~xflags[i].xfl;
	return x || fa->fsx_extsize || fa->fsx_projid || fa->fsx_cowextsize ? -1 : (long)fl;
}

static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
                     struct fuse_file_info *fi, unsigned flags, const void *in_buf,
                     size_t in_bufsz, size_t out_bufsz)
{
	(void)arg, (void)fi, (void)flags;
	struct sfs_cred cr = cred_of(req);
	struct fsxattr fa;
	unsigned v = 0;
	int rc = -EINVAL;
	switch (cmd) {
	case FS_IOC_GETFLAGS:
	case FS_IOC32_GETFLAGS:
		if (out_bufsz >= sizeof v && (rc = sfs_getflags(fs_of(req), ino, &v)) == 0) {
			fuse_reply_ioctl(req, 0, &v, sizeof v);
			return;
		}
		break;
	case FS_IOC_FSGETXATTR:
		if (out_bufsz >= sizeof fa && (rc = sfs_getflags(fs_of(req), ino, &v)) == 0) {
			memset(&fa, 0, sizeof fa);
			fa.fsx_xflags = to_xflags(v);
			fuse_reply_ioctl(req, 0, &fa, sizeof fa);
			return;
		}
		break;
	case FS_IOC_SETFLAGS:
	case FS_IOC32_SETFLAGS:
		if (in_bufsz >= sizeof v) {
			memcpy(&v, in_buf, sizeof v);
			rc = sfs_setflags(fs_of(req), &cr, ino, v);
		}
		break;
	case FS_IOC_FSSETXATTR:
		if (in_bufsz >= sizeof fa) {
			memcpy(&fa, in_buf, sizeof fa);
			long fl = from_fsxattr(&fa);
			rc = fl < 0 ? -EOPNOTSUPP : sfs_setflags(fs_of(req), &cr, ino, (unsigned)fl);
		}
		break;
	case CLONE_IOC:
		clone_request(req, in_buf, in_bufsz, out_bufsz);
		return;
	default:
		rc = -ENOTTY;
		break;
	}
	if (rc == 0)
		fuse_reply_ioctl(req, 0, NULL, 0);
	else
		fuse_reply_err(req, -rc);
}

/* ---- directories ---- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_cred cr = cred_of(req);
	struct sfs_file *dh;
	int rc = sfs_opendir(fs_of(req), &cr, ino, &dh);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)dh;
	set_open_flags(dm(req), fi, true);
	if (fuse_reply_open(req, fi) == -ENOENT)
		sfs_releasedir(fs_of(req), dh);
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	bool plus;
};

static int fill(void *ctx, const char *name, const struct stat *attr, off_t next)
{
	struct dirbuf *b = ctx;
	size_t room = b->size - b->used, n;
	if (b->plus) {
		/* The generation must be the one lookups give, or the kernel
		 * takes the inode for a new one and marks the old bad. */
		struct fuse_entry_param e = {.ino = attr->st_ino, .attr = *attr,
		                             .generation = sfs_fs_generation(fs_of(b->req)),
		                             .attr_timeout = TIMEOUT, .entry_timeout = TIMEOUT};
		n = fuse_add_direntry_plus(b->req, b->buf + b->used, room, name, &e, next);
	} else {
		n = fuse_add_direntry(b->req, b->buf + b->used, room, name, attr, next);
	}
	if (n > room)
		return 1; /* full: the entry is not taken (no lookup added) */
	b->used += n;
	return 0;
}

static void readdir_common(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
                           bool plus)
{
	struct dirbuf b = {.req = req, .size = size, .plus = plus};
	b.buf = malloc(size);
	if (!b.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int rc = sfs_readdir(fs_of(req), fh_of(fi), off, plus, fill, &b);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, b.buf, b.used);
	free(b.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	(void)ino;
	readdir_common(req, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	(void)ino;
	readdir_common(req, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	reply_err(req, sfs_releasedir(fs_of(req), fh_of(fi)));
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino, (void)datasync, (void)fi;
	fuse_reply_err(req, 0);
}

/* ---- the filesystem ---- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs st;
	int rc = sfs_statfs(fs_of(req), &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &st);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
	struct sfs_cred cr = cred_of(req);
	if (ino == FUSE_ROOT_ID && !strcmp(name, SAVE_XATTR)) {
		/* `sectorfs save` asks for a save through this name, and waits:
		 * the reply carries the save's errno. */
		reply_err(req, image_save_request(fuse_req_ctx(req)->uid));
		return;
	}
	reply_err(req, sfs_setxattr(fs_of(req), &cr, ino, name, value, size, flags));
}

static void reply_sized(fuse_req_t req, ssize_t n, const char *buf, size_t size)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct sfs_cred cr = cred_of(req);
	if (ino == FUSE_ROOT_ID && !strcmp(name, STATS_XATTR)) {
		/* `sectorfs stats` asks the daemon through this name. */
		char report[2048];
		size_t n = daemon_report(dm(req), report, sizeof report);
		reply_sized(req, size && size < n ? -ERANGE : (ssize_t)n, report, size);
		return;
	}
	if (ino == FUSE_ROOT_ID && !strcmp(name, DAEMON_XATTR)) {
		/* `sectorfs umount`: whom to wait for, and which image. */
		char who[PATH_MAX + 64];
		const char *image = image_path();
		int n = snprintf(who, sizeof who, "pid %d%s%s\n", (int)getpid(),
		                 image ? " image " : "", image ? image : "");
		n = n < (int)sizeof who ? n : (int)sizeof who - 1;
		reply_sized(req, size && size < (size_t)n ? -ERANGE : n, who, size);
		return;
	}
	if (ino == FUSE_ROOT_ID && !strcmp(name, PROGRESS_XATTR)) {
		/* `sectorfs save` and `sectorfs umount` show a save's progress. */
		struct sfs_image_progress p;
		sfs_image_progress(fs_of(req), &p);
		char line[96];
		int n = snprintf(line, sizeof line, "%u %llu %llu", (unsigned)p.phase,
		                 (unsigned long long)p.done, (unsigned long long)p.total);
		reply_sized(req, size && size < (size_t)n ? -ERANGE : n, line, size);
		return;
	}
	if (ino == FUSE_ROOT_ID && !strcmp(name, SAVE_XATTR)) {
		/* ... and reads the last save's result line here. */
		char result[1100];
		size_t n = image_last_result(result, sizeof result);
		n = n < sizeof result ? n : sizeof result;
		reply_sized(req, size && size < n ? -ERANGE : (ssize_t)n, result, size);
		return;
	}
	if (ino == FUSE_ROOT_ID && !strncmp(name, REMOUNT_XATTR, strlen(REMOUNT_XATTR))) {
		/* A remount or `sectorfs resize`, carried out only for a caller
		 * with room for the answer (see remount.c). */
		char line[512];
		size_t n = size ? remount_request(dm(req), fuse_req_ctx(req)->uid,
		                                  name + strlen(REMOUNT_XATTR), line, sizeof line)
		                : 0;
		reply_sized(req, size && size < n ? -ERANGE : (ssize_t)n, line, size);
		return;
	}
	char stack[4096], *buf = size <= sizeof stack ? stack : malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = sfs_getxattr(fs_of(req), &cr, ino, name, size ? buf : NULL, size);
	reply_sized(req, n, buf, size);
	if (buf != stack)
		free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct sfs_cred cr = cred_of(req);
	char stack[4096], *buf = size <= sizeof stack ? stack : malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = sfs_listxattr(fs_of(req), &cr, ino, size ? buf : NULL, size);
	reply_sized(req, n, buf, size);
	if (buf != stack)
		free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct sfs_cred cr = cred_of(req);
	reply_err(req, sfs_removexattr(fs_of(req), &cr, ino, name));
}

/* The kernel sends ACCESS only without default_permissions, which sectorfs
 * always sets; should that change, the check must be the kernel's, with
 * the caller's supplementary groups (fetched if a group decides). */
static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct sfs_cred cr = cred_of(req);
	cr.flags &= ~SFS_CRED_TRUSTED;
	reply_err(req, sfs_access(fs_of(req), &cr, ino, mask));
}

const struct fuse_lowlevel_ops sectorfs_ops = {
        .init = op_init,
        .destroy = op_destroy,
        .lookup = op_lookup,
        .forget = op_forget,
        .forget_multi = op_forget_multi,
        .getattr = op_getattr,
        .setattr = op_setattr,
        .readlink = op_readlink,
        .mknod = op_mknod,
        .mkdir = op_mkdir,
        .symlink = op_symlink,
        .link = op_link,
        .unlink = op_unlink,
        .rmdir = op_rmdir,
        .rename = op_rename,
        .open = op_open,
        .create = op_create,
        .read = op_read,
        .write = op_write,
        .release = op_release,
        .fsync = op_fsync,
        .fallocate = op_fallocate,
        .lseek = op_lseek,
        .copy_file_range = op_copy_file_range,
        .ioctl = op_ioctl,
        .opendir = op_opendir,
        .readdir = op_readdir,
        .readdirplus = op_readdirplus,
        .releasedir = op_releasedir,
        .fsyncdir = op_fsyncdir,
        .statfs = op_statfs,
        .setxattr = op_setxattr,
        .getxattr = op_getxattr,
        .listxattr = op_listxattr,
        .removexattr = op_removexattr,
        .access = op_access,
};
