/* SPDX-License-Identifier: MIT */
/* image_load.c - building a filesystem from an image (sfs_image_load).
 *
 * A load reads the image twice with the same parser (image_read.c): first
 * to verify all of it (nothing is created before the whole image is known
 * good: every checksum, every length against the file size, every
 * structural rule, the limits), then to build.  The second pass re-checks
 * every checksum and rule as it goes, so an image that changes between the
 * passes is caught and the build undone instead of trusted.  The build
 * holds 8 bytes per inode (its new inode number) and drives a restore
 * (restore.c, sfs_restore_*), the same one `sectorfs image create` drives
 * from a directory on disk: it sets each inode's attributes in the order
 * that keeps them all (created, chown, contents written, xattrs, chmod,
 * times with ctime given explicitly) and holds back to the end what later
 * records would disturb (the times of directories and of files with
 * several names, directories' default ACLs).  The loader keeps what is
 * its own: the image's numbering, the records' order, and its messages,
 * which name image records ("inode 12 (\"f\" in directory 3): chown:
 * ...").  If anything fails, the restore is undone: every entry of the
 * root is removed and the root's own attributes are put back, so the
 * filesystem is as empty as it was.  Only the load's progress
 * (sfs_image_progress) goes to the core directly.
 *
 * A share record (1.1) is a copy_file_range from the earlier file it
 * names, complete by then, opened without moving its access time
 * (sfs_restore_share): the sectors are shared again, as they were when
 * the image was saved (or copied, where the filesystem's sector size does
 * not line them up).
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
 * Loading: pass 2 builds, through a restore (restore.c).
 * ====================================================================== */

struct builder {
	struct sfs_fs *fs;
	struct ierr *e;
	struct sfs_restore *r;
	uint64_t *map;             /* image number - 1 -> inode number here */
	size_t mapcap;
	struct inode_rec cur;      /* the last inode record: what messages name */
	bool open;                 /* it is the restore's current object */
};

static int build_fail(struct builder *b, int rc, const char *what)
{
	char shown[ESC_MAX];
	const char *name = b->cur.num == 1 ? "/"
	                   : img_esc(shown, sizeof shown, b->cur.name, strlen(b->cur.name));
	return img_fail(b->e, rc, "inode %llu (\"%s\" in directory %llu): %s: %s", (ull)b->cur.num,
	            name, (ull)b->cur.parent, what, strerror(-rc));
}

/* A restore call failed: say so in the loader's words. */
static int restore_failed(struct builder *b, int rc)
{
	sfs_ino_t ino;
	const char *step = sfs_restore_failed(b->r, &ino);
	if (!step)
		return img_fail_nomem(b->e);
	if (!strcmp(step, "default ACL"))
		return img_fail(b->e, rc, "directory (inode %llu here): default ACL: %s", (ull)ino,
		            strerror(-rc));
	if (!strcmp(step, "times"))
		return img_fail(b->e, rc, "setting times (inode %llu here): %s", (ull)ino,
		            strerror(-rc));
	return build_fail(b, rc, step);
}

static int build_inode(struct builder *b, const struct inode_rec *in)
{
	if (b->open) {
		b->open = false;
		int rc = sfs_restore_done(b->r);
		if (rc)
			return restore_failed(b, rc);
	}
	b->cur = *in;
	if (img_grow((void **)&b->map, &b->mapcap, in->num, sizeof *b->map))
		return img_fail_nomem(b->e);
	struct stat st = {.st_mode = in->mode, .st_uid = in->uid, .st_gid = in->gid,
	                  .st_nlink = in->nlink, .st_size = (off_t)in->size,
	                  .st_rdev = makedev(in->major, in->minor), .st_atim = in->atime,
	                  .st_mtim = in->mtime, .st_ctim = in->ctime};
	sfs_ino_t ino;
	int rc = sfs_restore_inode(b->r, in->parent ? b->map[in->parent - 1] : 0, in->name, &st,
	                           in->target, &ino);
	if (rc)
		return restore_failed(b, rc);
	b->open = true;
	b->map[in->num - 1] = ino;
	return 0;
}

static int build_xattr(struct builder *b, const struct decoded *d)
{
	int rc = sfs_restore_xattr(b->r, d->name, d->value, d->len);
	const char *step = rc ? sfs_restore_failed(b->r, NULL) : NULL;
	if (step && !strcmp(step, "setxattr")) {
		char what[ESC_MAX + 16], shown[ESC_MAX];
		snprintf(what, sizeof what, "setxattr %s", img_esc(shown, sizeof shown, d->name,
		                                                  strlen(d->name)));
		return build_fail(b, rc, what);
	}
	return rc ? restore_failed(b, rc) : 0;
}

static int build_data(struct builder *b, const struct decoded *d)
{
	if (!b->open || (b->cur.mode & S_IFMT) != S_IFREG)
		return img_fail(b->e, -EIO, "changed while being read");
	int rc = sfs_restore_write(b->r, d->value, d->len, (off_t)d->off);
	return rc ? restore_failed(b, rc) : 0;
}

static int build_share(struct builder *b, const struct decoded *d)
{
	if (!b->open || (b->cur.mode & S_IFMT) != S_IFREG)
		return img_fail(b->e, -EIO, "changed while being read");
	int rc = sfs_restore_share(b->r, b->map[d->from - 1], (off_t)d->from_off, (off_t)d->off,
	                           d->share_len);
	return rc ? restore_failed(b, rc) : 0;
}

static int build_link(struct builder *b, const struct decoded *d)
{
	int rc = sfs_restore_link(b->r, b->map[d->ino - 1], b->map[d->parent - 1], d->name);
	char shown[ESC_MAX];
	if (rc)
		return img_fail(b->e, rc, "inode %llu: link as \"%s\" in directory %llu: %s",
		            (ull)d->ino, img_esc(shown, sizeof shown, d->name, strlen(d->name)),
		            (ull)d->parent, strerror(-rc));
	return 0;
}

/* After the last record: what the restore held back. */
static int build_end(struct builder *b)
{
	b->open = false;
	int rc = sfs_restore_end(b->r);
	return rc ? restore_failed(b, rc) : 0;
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
	struct builder b = {.fs = fs};
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
	rc = sfs_restore_begin(fs, &b.r);
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
out:
	fs_progress(fs, SFS_IMAGE_IDLE, 0, 0);
	/* On failure the restore is undone: the filesystem is empty again. */
	sfs_restore_free(b.r, rc != 0);
	os_free(b.map);
	img_parser_free(&ps);
	img_close(&im);
	return rc;
}
