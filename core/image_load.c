/* SPDX-License-Identifier: MIT */
/* image_load.c - building a filesystem from an image (sfs_image_load).
 *
 * A load reads the image twice with the same parser (image_read.c): first
 * to verify all of it (nothing is created before the whole image is known
 * good: every checksum, every length against the file size, every
 * structural rule, the limits), then to build.  The second pass re-checks
 * every checksum and rule as it goes, so an image that changes between the
 * passes is caught and the build undone instead of trusted.  The build
 * holds 8 bytes per inode (its new inode number) and goes through the
 * public API (sfs_mkdir, sfs_create, sfs_write, ...), as any caller could;
 * only its progress (sfs_image_progress) goes to the core directly.
 *
 * Building follows the rules a change of one attribute imposes on the
 * others in the core (as in the kernel): a chown clears suid/sgid and file
 * capabilities, a write or truncate clears capabilities, an access ACL sets
 * the mode, every change moves ctime, adding a name moves the directory's
 * times and the file's ctime.  So each inode gets: created, contents
 * written, chown, xattrs, chmod, then its times with ctime given
 * explicitly.  Directories and files with several names get their times at
 * the very end, after the last entry or link that would move them; a
 * directory's default ACL too, so that its children are created without
 * inheriting from it (they get exactly their own ACLs from the image).  If
 * anything fails, every entry of the root is removed and the root's own
 * attributes are put back, so the filesystem is as empty as it was.
 *
 * A share record (1.1) is a copy_file_range from the earlier file it
 * names, complete by then, opened without moving its access time: the
 * sectors are shared again, as they were when the image was saved (or
 * copied, where the filesystem's sector size does not line them up).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include "core.h" /* fs_progress() */
#include "image.h"
#include "os.h"
#include "sectorfs.h"

/* ======================================================================
 * Loading: pass 2 builds through the public API.
 * ====================================================================== */

static const struct sfs_cred trusted_root = {.uid = 0, .gid = 0, .umask = 0,
                                             .flags = SFS_CRED_TRUSTED};

struct later_times {
	uint64_t ino;
	struct timespec atime, mtime, ctime;
};

struct builder {
	struct sfs_fs *fs;
	struct ierr *e;
	const struct sfs_cred *cr;
	uint64_t *map;             /* image number - 1 -> inode number here */
	size_t mapcap;
	/* the current inode */
	bool open;
	struct inode_rec cur;
	uint64_t ino;
	struct sfs_file *fh;       /* a regular file being written */
	uint64_t written_end;
	bool data_done, later;
	/* done at the end */
	struct later_times *times;
	size_t ntimes, timescap;
	struct arena acls;         /* {u64 ino, u32 len, value} default ACLs */
};

static int build_fail(struct builder *b, int rc, const char *what)
{
	char shown[ESC_MAX];
	const char *name = b->cur.num == 1 ? "/"
	                   : img_esc(shown, sizeof shown, b->cur.name, strlen(b->cur.name));
	return img_fail(b->e, rc, "inode %llu (\"%s\" in directory %llu): %s: %s", (ull)b->cur.num,
	            name, (ull)b->cur.parent, what, strerror(-rc));
}

static int set_times(struct sfs_fs *fs, const struct sfs_cred *cr, uint64_t ino,
                     struct timespec a, struct timespec m, struct timespec c)
{
	struct stat st = {.st_atim = a, .st_mtim = m, .st_ctim = c};
	return sfs_setattr(fs, cr, ino, &st, SFS_SET_ATIME | SFS_SET_MTIME | SFS_SET_CTIME, NULL,
	                   NULL);
}

/* A regular file's contents are complete: give it its size.  Before any
 * xattr, as a truncate clears file capabilities. */
static int finish_data(struct builder *b)
{
	if (b->data_done || !b->fh)
		return 0;
	b->data_done = true;
	if (b->cur.size > b->written_end) {
		struct stat st = {.st_size = (off_t)b->cur.size};
		int rc = sfs_setattr(b->fs, b->cr, b->ino, &st, SFS_SET_SIZE, b->fh, NULL);
		if (rc)
			return build_fail(b, rc, "truncate");
	}
	return 0;
}

/* The current inode's records are all in: size, mode, and (unless they
 * must wait for the end) its times, ctime given last. */
static int finish_inode(struct builder *b)
{
	if (!b->open)
		return 0;
	int rc = finish_data(b);
	if (b->fh) {
		int rc2 = sfs_release(b->fs, b->fh);
		b->fh = NULL;
		if (!rc && rc2)
			rc = build_fail(b, rc2, "release");
	}
	b->open = false;
	if (rc)
		return rc;
	struct stat st = {.st_mode = b->cur.mode & 07777, .st_atim = b->cur.atime,
	                  .st_mtim = b->cur.mtime, .st_ctim = b->cur.ctime};
	unsigned valid = (b->cur.mode & S_IFMT) == S_IFLNK ? 0 : SFS_SET_MODE;
	if (!b->later)
		valid |= SFS_SET_ATIME | SFS_SET_MTIME | SFS_SET_CTIME;
	if (valid) {
		rc = sfs_setattr(b->fs, b->cr, b->ino, &st, valid, NULL, NULL);
		if (rc)
			return build_fail(b, rc, "setattr");
	}
	return 0;
}

static int build_inode(struct builder *b, const struct inode_rec *in)
{
	int rc = finish_inode(b);
	if (rc)
		return rc;
	b->cur = *in;
	b->open = true;
	b->data_done = false;
	b->written_end = 0;
	if (img_grow((void **)&b->map, &b->mapcap, in->num, sizeof *b->map))
		return img_fail_nomem(b->e);
	uint64_t parent = in->parent ? b->map[in->parent - 1] : 0;
	struct sfs_entry ent;
	uint32_t type = in->mode & S_IFMT;
	const char *op;
	switch (type) {
	case S_IFDIR:
		if (in->num == 1) {
			op = "getattr";
			ent.ino = SFS_ROOT_INO;
			rc = sfs_getattr(b->fs, SFS_ROOT_INO, &ent.attr);
		} else {
			op = "mkdir";
			rc = sfs_mkdir(b->fs, b->cr, parent, in->name, 0700, &ent);
		}
		break;
	case S_IFREG:
		op = "create";
		rc = sfs_create(b->fs, b->cr, parent, in->name, 0600, O_WRONLY | O_CREAT | O_EXCL,
		                &ent, &b->fh);
		break;
	case S_IFLNK:
		op = "symlink";
		rc = sfs_symlink(b->fs, b->cr, parent, in->name, in->target, &ent);
		break;
	default:
		op = "mknod";
		rc = sfs_mknod(b->fs, b->cr, parent, in->name, type | 0600,
		               makedev(in->major, in->minor), &ent);
		break;
	}
	if (rc)
		return build_fail(b, rc, op);
	b->ino = ent.ino;
	b->map[in->num - 1] = ent.ino;
	if (in->num != 1)
		sfs_forget(b->fs, ent.ino, 1);
	/* The owner first: a chown clears suid/sgid and capabilities, which
	 * the xattrs and the mode set later bring back. */
	if (ent.attr.st_uid != in->uid || ent.attr.st_gid != in->gid) {
		struct stat st = {.st_uid = in->uid, .st_gid = in->gid};
		rc = sfs_setattr(b->fs, b->cr, b->ino, &st, SFS_SET_UID | SFS_SET_GID, NULL, NULL);
		if (rc)
			return build_fail(b, rc, "chown");
	}
	/* Directories gain entries, and files with several names gain links
	 * (each moving ctime) until the end: their times wait till then. */
	b->later = type == S_IFDIR || in->nlink > 1;
	if (b->later) {
		if (img_grow((void **)&b->times, &b->timescap, b->ntimes + 1, sizeof *b->times))
			return img_fail_nomem(b->e);
		b->times[b->ntimes++] =
		        (struct later_times){b->ino, in->atime, in->mtime, in->ctime};
	}
	return 0;
}

static int build_xattr(struct builder *b, const struct decoded *d)
{
	int rc = finish_data(b);
	if (rc)
		return rc;
	if ((b->cur.mode & S_IFMT) == S_IFDIR && !strcmp(d->name, "system.posix_acl_default")) {
		/* Set at the end: the children must not inherit it. */
		uint8_t h[12];
		put64(h, b->ino);
		put32(h + 8, (uint32_t)d->len);
		if (img_arena_add(&b->acls, h, sizeof h) || img_arena_add(&b->acls, d->value, d->len))
			return img_fail_nomem(b->e);
		return 0;
	}
	rc = sfs_setxattr(b->fs, b->cr, b->ino, d->name, d->value, d->len, 0);
	if (rc) {
		char what[ESC_MAX + 16], shown[ESC_MAX];
		snprintf(what, sizeof what, "setxattr %s", img_esc(shown, sizeof shown, d->name,
		                                                  strlen(d->name)));
		return build_fail(b, rc, what);
	}
	return 0;
}

static int build_data(struct builder *b, const struct decoded *d)
{
	if (!b->fh)
		return img_fail(b->e, -EIO, "changed while being read");
	for (size_t done = 0; done < d->len;) {
		ssize_t n = sfs_write(b->fs, b->cr, b->fh, d->value + done, d->len - done,
		                      (off_t)(d->off + done));
		if (n <= 0)
			return build_fail(b, n < 0 ? (int)n : -EIO, "write");
		done += (size_t)n;
	}
	b->written_end = d->off + d->len;
	return 0;
}

static int build_share(struct builder *b, const struct decoded *d)
{
	if (!b->fh)
		return img_fail(b->e, -EIO, "changed while being read");
	struct sfs_file *from;
	int rc = sfs_open(b->fs, b->cr, b->map[d->from - 1], O_RDONLY | O_NOATIME, &from);
	if (rc)
		return build_fail(b, rc, "open the file it shares data with");
	for (uint64_t done = 0; rc == 0 && done < d->share_len;) {
		ssize_t n = sfs_copy_file_range(b->fs, b->cr, from, (off_t)(d->from_off + done), b->fh,
		                                (off_t)(d->off + done), d->share_len - done, 0);
		rc = n < 0 ? (int)n : n == 0 ? -EIO : 0;
		done += n > 0 ? (uint64_t)n : 0;
	}
	int rc2 = sfs_release(b->fs, from);
	if (rc || rc2)
		return build_fail(b, rc ? rc : rc2, "share data");
	b->written_end = d->off + d->share_len;
	return 0;
}

static int build_link(struct builder *b, const struct decoded *d)
{
	int rc = sfs_link(b->fs, b->cr, b->map[d->ino - 1], b->map[d->parent - 1], d->name, NULL);
	char shown[ESC_MAX];
	if (rc)
		return img_fail(b->e, rc, "inode %llu: link as \"%s\" in directory %llu: %s",
		            (ull)d->ino, img_esc(shown, sizeof shown, d->name, strlen(d->name)),
		            (ull)d->parent, strerror(-rc));
	return 0;
}

/* After the last record: default ACLs, then the times that had to wait. */
static int build_end(struct builder *b)
{
	int rc = finish_inode(b);
	for (size_t off = 0; rc == 0 && off < b->acls.len;) {
		uint64_t ino = get64(b->acls.p + off);
		uint32_t len = get32(b->acls.p + off + 8);
		rc = sfs_setxattr(b->fs, b->cr, ino, "system.posix_acl_default",
		                  b->acls.p + off + 12, len, 0);
		if (rc)
			rc = img_fail(b->e, rc, "directory (inode %llu here): default ACL: %s",
			          (ull)ino, strerror(-rc));
		off += 12 + len;
	}
	for (size_t i = 0; rc == 0 && i < b->ntimes; i++) {
		const struct later_times *t = &b->times[i];
		rc = set_times(b->fs, b->cr, t->ino, t->atime, t->mtime, t->ctime);
		if (rc)
			rc = img_fail(b->e, rc, "setting times (inode %llu here): %s", (ull)t->ino,
			          strerror(-rc));
	}
	return rc;
}

static void builder_free(struct builder *b)
{
	if (b->fh)
		sfs_release(b->fs, b->fh);
	b->fh = NULL;
	os_free(b->map);
	os_free(b->times);
	img_arena_free(&b->acls);
}

/* ---- the root as it was, to put back if a load fails ---- */

struct root_state {
	struct stat st;
	struct arena xattrs;      /* {u32 name length + 1, u32 value length, name, NUL, value} */
};

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

/* Undo a partial load: everything under the root, then the root's own
 * attributes.  Best effort: it runs after a failure already reported. */
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

static double mib(uint64_t b)
{
	return (double)b / 1048576.0;
}

/* Does the image fit the filesystem's limits?  What it needs at least is
 * its file data, symlink targets and xattrs; inodes and entries cost a
 * little more, which the build finds out (and then undoes). */
static int check_room(struct sfs_fs *fs, struct ierr *e, const struct parser *ps)
{
	struct statvfs sv;
	int rc = sfs_statfs(fs, &sv);
	if (rc)
		return img_fail(e, rc, "statfs: %s", strerror(-rc));
	if (sv.f_files) {
		uint64_t free_inodes = sv.f_ffree, want = ps->info.inodes - 1;
		if (want > free_inodes)
			return img_fail(e, -ENOSPC, "image has %llu inodes, nr_inodes= allows %llu",
			            (ull)ps->info.inodes, (ull)sv.f_files);
	}
	if (sv.f_blocks) {
		uint64_t allows = (uint64_t)sv.f_bfree * sv.f_frsize;
		if (ps->need > allows)
			return img_fail(e, -ENOSPC, "image needs %.1f MiB, size= allows %.1f MiB",
			            mib(ps->need), mib(allows));
	}
	return 0;
}

int sfs_image_load(struct sfs_fs *fs, const char *path, char *err, size_t errlen)
{
	struct image im;
	struct parser ps = {0};
	struct root_state rs = {0};
	struct builder b = {.fs = fs, .cr = &trusted_root};
	int rc = img_open(&im, path, err, errlen);
	b.e = &im.e;
	if (rc)
		goto out;
	struct sfs_stats st;
	sfs_get_stats(fs, &st);
	if (st.inodes != 1) {
		rc = img_fail(&im.e, -ENOTEMPTY,
		          "the filesystem to load into is not empty (%llu inodes)",
		          (ull)st.inodes);
		goto out;
	}
	im.r.fs = fs;
	im.r.phase = SFS_IMAGE_VERIFYING;
	rc = img_verify(&im, &ps);
	if (rc == 0)
		rc = check_room(fs, &im.e, &ps);
	if (rc)
		goto out;
	rc = root_save(fs, &rs);
	if (rc) {
		rc = img_fail(&im.e, rc, "reading the root's attributes: %s", strerror(-rc));
		goto out;
	}
	/* Pass 2: the same parser, now building. */
	const uint64_t inodes = ps.info.inodes;
	img_parser_free(&ps);
	ps = (struct parser){.e = &im.e, .r = &im.r};
	img_rewind(&im);
	im.r.phase = SFS_IMAGE_LOADING;
	if (img_grow((void **)&b.map, &b.mapcap, inodes, sizeof *b.map)) {
		rc = img_fail_nomem(&im.e);
		goto out;
	}
	struct decoded d;
	while ((rc = img_parse_next(&ps, &d)) > 0) {
		switch (d.type) {
		case R_INODE: rc = build_inode(&b, d.in); break;
		case R_LINK: rc = build_link(&b, &d); break;
		case R_XATTR: rc = build_xattr(&b, &d); break;
		case R_DATA: rc = build_data(&b, &d); break;
		case R_SHARE: rc = build_share(&b, &d); break;
		default: rc = build_end(&b); break;
		}
		if (rc)
			break;
	}
	if (rc == 0)
		rc = img_parse_finish(&ps, &im.h);
	if (rc) {
		if (b.fh)
			sfs_release(fs, b.fh);
		b.fh = NULL;
		rollback(fs, &rs);
	}
out:
	fs_progress(fs, SFS_IMAGE_IDLE, 0, 0);
	builder_free(&b);
	img_parser_free(&ps);
	img_arena_free(&rs.xattrs);
	img_close(&im);
	return rc;
}
