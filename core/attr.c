/* SPDX-License-Identifier: MIT */
/* attr.c - attributes: stat, setattr, and the three timestamps.
 *
 * Timestamps are atomics so that the read path can apply relatime without
 * taking the inode lock; a reader may see the seconds of one update with
 * the nanoseconds of another, which relatime's day-long threshold does not
 * care about.  Every other attribute changes under the inode lock.
 *
 * setattr follows the kernel's notify_change() and tmpfs's shmem_setattr():
 * who may change what, the suid/sgid bits that a chown or a truncate
 * clears, and which times move (a truncate to the same size moves none,
 * unless it came through an open file, as ftruncate does).
 */
#include <dirent.h>

#include "core.h"
#include "os.h"

void inode_set_time(_Atomic int64_t *s, _Atomic uint32_t *ns, struct timespec ts)
{
	atomic_store_explicit(s, (int64_t)ts.tv_sec, memory_order_relaxed);
	atomic_store_explicit(ns, (uint32_t)ts.tv_nsec, memory_order_relaxed);
}

static struct timespec get_time(_Atomic int64_t *s, _Atomic uint32_t *ns)
{
	struct timespec ts;
	ts.tv_sec = (time_t)atomic_load_explicit(s, memory_order_relaxed);
	ts.tv_nsec = (long)atomic_load_explicit(ns, memory_order_relaxed);
	return ts;
}

void inode_touch(struct sfs_inode *ip, bool atime, bool mtime, bool ctime)
{
	struct timespec now = os_now();
	if (atime)
		inode_set_time(&ip->atime_s, &ip->atime_ns, now);
	if (mtime)
		inode_set_time(&ip->mtime_s, &ip->mtime_ns, now);
	if (ctime)
		inode_set_time(&ip->ctime_s, &ip->ctime_ns, now);
}

static int ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	return a.tv_nsec < b.tv_nsec ? -1 : a.tv_nsec > b.tv_nsec;
}

void inode_accessed(struct sfs_fs *fs, struct sfs_inode *ip)
{
	if (fs->atime == SFS_ATIME_NEVER)
		return;
	struct timespec now = os_now();
	if (fs->atime == SFS_ATIME_RELATIME) {
		struct timespec a = get_time(&ip->atime_s, &ip->atime_ns);
		if (ts_cmp(get_time(&ip->mtime_s, &ip->mtime_ns), a) < 0 &&
		    ts_cmp(get_time(&ip->ctime_s, &ip->ctime_ns), a) < 0 &&
		    now.tv_sec - a.tv_sec < 24 * 60 * 60)
			return;
	}
	inode_set_time(&ip->atime_s, &ip->atime_ns, now);
	freeze_count_change(fs);
}

unsigned char dt_of(uint32_t mode)
{
	return (unsigned char)((mode & S_IFMT) >> 12);
}

void inode_stat(struct sfs_fs *fs, struct sfs_inode *ip, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	size_t S = sp_sector_size(fs->pool);
	st->st_ino = ip->ino;
	st->st_mode = ip->mode;
	st->st_nlink = atomic_load(&ip->nlink);
	st->st_uid = ip->uid;
	st->st_gid = ip->gid;
	st->st_blksize = S > 4096 ? (blksize_t)S : 4096;
	if (has_data(ip)) {
		st->st_size = (off_t)sv_size(&ip->u.data);
		uint64_t bytes = sv_sectors(&ip->u.data) * S + sv_inline_bytes(&ip->u.data);
		st->st_blocks = (blkcnt_t)((bytes + 511) / 512);
	} else if (is_dir(ip)) {
		st->st_size = (off_t)(BOGO_DIRENT_SIZE * (ip->u.dir->count + 2));
	} else if (S_ISCHR(ip->mode) || S_ISBLK(ip->mode)) {
		st->st_rdev = (dev_t)ip->u.rdev;
	}
	st->st_atim = get_time(&ip->atime_s, &ip->atime_ns);
	st->st_mtim = get_time(&ip->mtime_s, &ip->mtime_ns);
	st->st_ctim = get_time(&ip->ctime_s, &ip->ctime_ns);
}

int sfs_getattr(struct sfs_fs *fs, sfs_ino_t ino, struct stat *st)
{
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	lk_rdlock(&ip->lock);
	inode_stat(fs, ip, st);
	lk_rdunlock(&ip->lock);
	inode_put(fs, ip);
	return 0;
}

void contents_changed_by(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip)
{
	if (!cred_privileged(cr))
		ip->mode &= ~perm_setid_to_drop(cr, ip);
	xattr_kill_caps(fs, ip);
}

/* Check everything before changing anything. */
static int setattr_allowed(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip,
                           const struct stat *attr, unsigned valid, struct sfs_file *fh)
{
	if (valid & SFS_SET_SIZE) {
		/* ftruncate: EINVAL unless a regular file open for writing;
		 * truncate: EISDIR for a directory, EINVAL for the rest. */
		if (fh && (!is_reg(ip) || (fh->flags & O_ACCMODE) == O_RDONLY))
			return -EINVAL;
		if (is_dir(ip))
			return -EISDIR;
		if (!is_reg(ip))
			return -EINVAL;
		if (attr->st_size < 0)
			return -EINVAL;
		if (!fh) {
			int rc = perm_check(fs, cr, ip, MAY_WRITE);
			if (rc)
				return rc;
		}
	}
	if (cred_trusted(cr))
		return 0;
	bool owner = perm_owner(cr, ip);
	if ((valid & SFS_SET_MODE) && !owner)
		return -EPERM;
	bool uid = (valid & SFS_SET_UID) && attr->st_uid != (uid_t)-1;
	bool gid = (valid & SFS_SET_GID) && attr->st_gid != (gid_t)-1;
	if (uid && !cred_privileged(cr) && !(cr->uid == ip->uid && attr->st_uid == ip->uid))
		return -EPERM;
	if (gid && !cred_privileged(cr) &&
	    !(cr->uid == ip->uid && (attr->st_gid == ip->gid || cred_in_group(cr, attr->st_gid))))
		return -EPERM;
	/* A chown clears suid/sgid: a mode change only the owner may make,
	 * even when neither id changes (chown(f, -1, -1)). */
	if ((valid & (SFS_SET_UID | SFS_SET_GID)) && !is_dir(ip) && !owner &&
	    perm_setid_to_drop(cr, ip))
		return -EPERM;
	if (valid & SFS_SET_CTIME)
		return -EPERM;
	/* Times: both "now" (utimes(f, NULL)) is a touch, which anyone who may
	 * write can do; any other request (a given time, or one "now" with
	 * the other left alone) needs the owner, as setattr_prepare(). */
	const unsigned times = SFS_SET_ATIME | SFS_SET_MTIME | SFS_SET_ATIME_NOW | SFS_SET_MTIME_NOW;
	const unsigned touch = SFS_SET_ATIME_NOW | SFS_SET_MTIME_NOW;
	if ((valid & times) && !owner) {
		if ((valid & times) != touch)
			return -EPERM;
		int rc = perm_check(fs, cr, ip, MAY_WRITE);
		if (rc)
			return rc;
	}
	return 0;
}

static int do_setattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino,
                const struct stat *attr, unsigned valid, struct sfs_file *fh, struct stat *out)
{
	struct sfs_inode *ip = fh ? fh->ip : inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	if (fh)
		inode_hold(ip);
	lk_wrlock(&ip->lock);
	int rc = setattr_allowed(fs, cr, ip, attr, valid, fh);
	if (rc)
		goto out;
	struct timespec now = os_now();
	bool ctime = false;
	if (valid & SFS_SET_SIZE) {
		rc = sv_resize(fs->pool, &ip->u.data, attr->st_size);
		if (rc)
			goto out;
		/* Even to the same size, as tmpfs (truncate(2) and ftruncate). */
		inode_set_time(&ip->mtime_s, &ip->mtime_ns, now);
		ctime = true;
		contents_changed_by(fs, cr, ip);
	}
	if (valid & (SFS_SET_UID | SFS_SET_GID)) {
		/* Judged against the group the file had before. */
		uint32_t drop = is_dir(ip) ? 0 : perm_setid_to_drop(cr, ip);
		if ((valid & SFS_SET_UID) && attr->st_uid != (uid_t)-1)
			ip->uid = attr->st_uid;
		if ((valid & SFS_SET_GID) && attr->st_gid != (gid_t)-1)
			ip->gid = attr->st_gid;
		ip->mode &= ~drop;
		xattr_kill_caps(fs, ip);
		ctime = true;
	}
	if (valid & SFS_SET_MODE) {
		uint32_t mode = attr->st_mode & 07777;
		if (!cred_trusted(cr) && !cred_privileged(cr) && !cred_in_group(cr, ip->gid))
			mode &= ~(uint32_t)S_ISGID;
		ip->mode = (ip->mode & S_IFMT) | mode;
		acl_chmod(fs, ip);
		ctime = true;
	}
	if (valid & (SFS_SET_ATIME | SFS_SET_ATIME_NOW)) {
		inode_set_time(&ip->atime_s, &ip->atime_ns,
		               (valid & SFS_SET_ATIME_NOW) ? now : attr->st_atim);
		ctime = true;
	}
	if (valid & (SFS_SET_MTIME | SFS_SET_MTIME_NOW)) {
		inode_set_time(&ip->mtime_s, &ip->mtime_ns,
		               (valid & SFS_SET_MTIME_NOW) ? now : attr->st_mtim);
		ctime = true;
	}
	if (valid & SFS_SET_CTIME)
		inode_set_time(&ip->ctime_s, &ip->ctime_ns, attr->st_ctim);
	else if (ctime)
		inode_set_time(&ip->ctime_s, &ip->ctime_ns, now);
	if (out)
		inode_stat(fs, ip, out);
out:
	lk_wrunlock(&ip->lock);
	inode_put(fs, ip);
	return rc;
}

/* ---- entry points: changes wait while a snapshot is taken (snapshot.c) ---- */

int sfs_setattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino,
                const struct stat *attr, unsigned valid, struct sfs_file *fh, struct stat *out)
{
	freeze_enter(fs);
	int rc = do_setattr(fs, cr, ino, attr, valid, fh, out);
	freeze_exit(fs);
	return rc;
}
