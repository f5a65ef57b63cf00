/* SPDX-License-Identifier: MIT */
/* image_save.c - writing a filesystem to an image (sfs_image_save).
 *
 * A save reads a point-in-time snapshot (snapshot.h), so writers go on
 * while it runs.  It walks the snapshot breadth-first from the root and
 * numbers the inodes 1, 2, 3, ... in the order it writes them.  Every
 * inode's record carries its first name (parent number + name), so a
 * directory is always written before anything in it, and further names of
 * a file are link records that come after it: the order image_read.c
 * relies on.  Before the end record, the saver checks what it wrote
 * against the snapshot (every inode reached, every link count met), so it
 * never writes an image the loader would refuse.
 *
 * Records are streamed through a 4 MiB buffer; file data goes from the
 * snapshot's buffer straight to the file (os_pwritev), and writeback is
 * started every 64 MiB so that the final fsync does not wait for the whole
 * image.  The image is written beside the old one and renamed over it only
 * once it is complete and synced; its header, which holds the totals, is
 * written last.  Every file call goes through os/ (os_file.c), where tests
 * make each one fail in turn or come up short.
 *
 * Failure, at any step before the rename, removes the temporary file and
 * leaves the old image as it was.  After the rename only the directory's
 * sync is left; if it fails, the new image is in place (whole and synced)
 * but the rename may not be on disk: the save returns the error and says
 * so, and the renamed file is never removed -- it is the newest good
 * image there is, and removing it would lose the old one too.
 *
 * Shared data is stored once (format 1.1).  The snapshot tells, per file,
 * which sectors other files shared at its instant, each with an identity.
 * The first file to hold such a sector writes its bytes as data and notes
 * the identity (file and offset); every later holder writes a share record
 * naming them instead, consecutive sectors of one source merged into one
 * record, and the header declares share records (a required flag, which a
 * 1.0 reader refuses rather than load holes).  The loader shares the same
 * sectors again (copy_file_range), so a tree of copies comes back as small
 * as it was saved.
 *
 * A save reports the filesystem's change count at the snapshot's instant
 * (sfs_fs_changes(), in sfs_image_info), so that a caller can skip a later
 * save when nothing has changed since.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>

#include "core.h" /* fs_progress() */
#include "image.h"
#include "os.h"
#include "sectorfs.h"
#include "snapshot.h"

#define SYNC_EVERY ((uint64_t)64 << 20) /* start writeback every this many bytes */

/* ---- the header ---- */

static void header_encode(const struct header *h, uint8_t out[HDR_SIZE])
{
	memset(out, 0, HDR_SIZE);
	memcpy(out, IMG_MAGIC, 8);
	put16(out + 8, (uint16_t)h->major);
	put16(out + 10, (uint16_t)h->minor);
	put32(out + 12, HDR_SIZE);
	put32(out + 16, h->flags);
	put32(out + 20, h->sector_size);
	put64(out + 24, (uint64_t)(int64_t)h->created.tv_sec);
	put32(out + 32, (uint32_t)h->created.tv_nsec);
	put64(out + 40, h->records);
	put64(out + 48, h->inodes);
	put64(out + 56, h->names);
	put64(out + 64, h->xattrs);
	put64(out + 72, h->data_bytes);
	put64(out + 80, h->file_size);
	put32(out + HDR_SIZE - 4, img_crc32c(0, out, HDR_SIZE - 4));
}

/* ======================================================================
 * Saving.
 * ====================================================================== */

struct writer {
	struct ierr *e;
	int fd;
	uint8_t *buf;
	size_t cap, len;
	uint64_t off;      /* file offset of buf[0] */
	uint64_t records;
	uint64_t synced;   /* bytes whose writeback was started */
};

/* All of iov[0..n) at *off (advanced), however many calls it takes: a
 * write may stop short anywhere. */
static int w_write_at(struct writer *w, struct iovec *iov, int n, uint64_t *off,
                      const char *what)
{
	while (n > 0) {
		ssize_t got = os_pwritev(w->fd, iov, n, *off);
		if (got < 0)
			return img_fail(w->e, (int)got, "%s: %s", what, strerror((int)-got));
		if (got == 0)
			return img_fail(w->e, -EIO, "%s: no progress", what);
		*off += (uint64_t)got;
		while (n > 0 && (size_t)got >= iov->iov_len) {
			got -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + got;
			iov->iov_len -= (size_t)got;
		}
	}
	return 0;
}

static int w_write(struct writer *w, struct iovec *iov, int n)
{
	int rc = w_write_at(w, iov, n, &w->off, "writing");
	if (rc)
		return rc;
	/* Start writeback as we go, so the final fsync has little left.  A
	 * hint: if it fails, the fsync does the work and reports any error. */
	if (w->off - w->synced >= SYNC_EVERY) {
		(void)os_writeback(w->fd, w->synced, w->off - w->synced);
		w->synced = w->off;
	}
	return 0;
}

static int w_flush(struct writer *w)
{
	if (!w->len)
		return 0;
	struct iovec iov = {.iov_base = w->buf, .iov_len = w->len};
	w->len = 0;
	return w_write(w, &iov, 1);
}

/* One record: header, the fixed part, then the variable part. */
static int w_record(struct writer *w, unsigned type, const uint8_t *fixed, size_t flen,
                    const void *var, size_t vlen)
{
	uint8_t h[REC_HDR];
	put16(h, (uint16_t)type);
	put16(h + 2, 0);
	put32(h + 4, (uint32_t)(flen + vlen));
	put32(h + 8, (uint32_t)(w->records + 1));
	uint32_t crc = img_crc32c(img_crc32c(img_crc32c(0, h, 12), fixed, flen), var, vlen);
	put32(h + 12, crc);
	w->records++;
	size_t head = REC_HDR + flen;
	if (w->cap - w->len < head + (vlen < 65536 ? vlen : 0)) {
		int rc = w_flush(w);
		if (rc)
			return rc;
	}
	memcpy(w->buf + w->len, h, REC_HDR);
	memcpy(w->buf + w->len + REC_HDR, fixed, flen);
	w->len += head;
	if (vlen < 65536) {
		if (vlen)
			memcpy(w->buf + w->len, var, vlen);
		w->len += vlen;
		return 0;
	}
	/* Large data goes from the caller's buffer to the file, uncopied. */
	struct iovec iov[2] = {{.iov_base = w->buf, .iov_len = w->len},
	                       {.iov_base = (void *)var, .iov_len = vlen}};
	w->len = 0;
	return w_write(w, iov, 2);
}

/* Shared sectors already written: identity -> where (open addressing). */
struct seen {
	uint64_t id;       /* 0: empty slot */
	uint64_t off;      /* where the sector starts in that file */
	uint32_t num;      /* the file, by image number */
	uint32_t len;      /* its bytes there (less than a sector at the file's end) */
};

struct seen_map {
	struct seen *s;
	size_t cap, n;     /* cap a power of two */
};

static struct seen *seen_slot(const struct seen_map *m, uint64_t id)
{
	size_t h = (size_t)((id >> 9) * 0x9e3779b97f4a7c15ull) & (m->cap - 1);
	while (m->s[h].id && m->s[h].id != id)
		h = (h + 1) & (m->cap - 1);
	return &m->s[h];
}

static const struct seen *seen_find(const struct seen_map *m, uint64_t id)
{
	if (!m->cap)
		return NULL;
	const struct seen *e = seen_slot(m, id);
	return e->id ? e : NULL;
}

static int seen_add(struct seen_map *m, struct seen e)
{
	if (2 * (m->n + 1) > m->cap) {
		struct seen_map bigger = {.cap = m->cap ? 2 * m->cap : 1024};
		bigger.s = os_calloc(bigger.cap, sizeof *bigger.s);
		if (!bigger.s)
			return -ENOMEM;
		for (size_t i = 0; i < m->cap; i++)
			if (m->s[i].id)
				*seen_slot(&bigger, m->s[i].id) = m->s[i];
		os_free(m->s);
		m->s = bigger.s;
		m->cap = bigger.cap;
	}
	*seen_slot(m, e.id) = e;
	m->n++;
	return 0;
}

/* Per snapshot inode, while saving. */
struct sinode {
	uint64_t ino;
	uint32_t num;      /* its number in the image (0: not written yet) */
	uint32_t names;    /* names written (directories: subdirectories) */
	uint32_t nlink;
	uint32_t mode;
};

struct saver {
	struct ierr *e;
	struct sfs_fs *fs;
	struct snap *s;
	struct writer w;
	struct sinode *ix;
	size_t n;
	uint32_t *queue;   /* directories to walk, by snapshot index */
	size_t qhead, qtail;
	uint32_t next;     /* the last image number given */
	struct arena ents, xattrs;
	/* the data of the inode being written */
	uint32_t cur;
	uint64_t cur_size, cur_end;
	const struct sv_frozen_share *shares; /* its shared sectors */
	size_t nshares, next_share;
	uint64_t sector;
	struct seen_map seen;
	uint8_t share[SHARE_SIZE]; /* a share record not yet written (length 0: none) */
	/* progress: regular files' sizes, in all and of those written */
	uint64_t total, done;
	struct sfs_image_info info;
};

static int find_index(const struct saver *sv, uint64_t ino, size_t *out)
{
	size_t lo = 0, hi = sv->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sv->ix[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == sv->n || sv->ix[lo].ino != ino)
		return -1;
	*out = lo;
	return 0;
}

static int add_entry(void *ctx, const char *name, uint64_t ino)
{
	struct arena *a = ctx;
	size_t len = strlen(name);
	if (len == 0 || len > SFS_NAME_MAX)
		return -EIO;
	uint8_t h[9];
	put64(h, ino);
	h[8] = (uint8_t)len;
	return img_arena_add(a, h, 9) || img_arena_add(a, name, len) ? -ENOMEM : 0;
}

static int add_xattr(void *ctx, const char *name, const void *value, size_t len)
{
	struct arena *a = ctx;
	size_t nl = strlen(name);
	if (nl == 0 || nl > SFS_NAME_MAX || len > SFS_XATTR_SIZE_MAX)
		return -EIO;
	uint8_t h[XATTR_FIXED];
	put64(h, 0); /* the image number goes in when written */
	put32(h + 8, (uint32_t)len);
	put16(h + 12, (uint16_t)nl);
	return img_arena_add(a, h, sizeof h) || img_arena_add(a, name, nl) || img_arena_add(a, value, len)
	               ? -ENOMEM
	               : 0;
}

/* Write the share record waiting to grow, if any. */
static int flush_share(struct saver *sv)
{
	if (get64(sv->share + 16) == 0)
		return 0;
	int rc = w_record(&sv->w, R_SHARE, sv->share, SHARE_SIZE, NULL, 0);
	put64(sv->share + 16, 0);
	return rc;
}

/* [off, off + len) of the current file holds what file `num` holds at
 * from_off: grow the waiting record, or start another. */
static int put_share(struct saver *sv, uint64_t off, uint64_t len, uint32_t num, uint64_t from_off)
{
	uint8_t *r = sv->share;
	uint64_t have = get64(r + 16);
	if (have && get64(r + 8) + have == off && get64(r + 24) == num &&
	    get64(r + 32) + have == from_off) {
		put64(r + 16, have + len);
	} else {
		int rc = flush_share(sv);
		if (rc)
			return rc;
		put64(r, sv->cur);
		put64(r + 8, off);
		put64(r + 16, len);
		put64(r + 24, num);
		put64(r + 32, from_off);
	}
	sv->info.shared_bytes += len;
	return 0;
}

/* Bytes of the current file as data records. */
static int put_bytes(struct saver *sv, uint64_t off, const uint8_t *buf, uint64_t len)
{
	int rc = len ? flush_share(sv) : 0;
	for (uint64_t done = 0; rc == 0 && done < len;) {
		size_t n = len - done < RUN_MAX ? (size_t)(len - done) : RUN_MAX;
		uint8_t f[DATA_FIXED];
		put64(f, sv->cur);
		put64(f + 8, off + done);
		rc = w_record(&sv->w, R_DATA, f, sizeof f, buf + done, n);
		done += n;
	}
	sv->info.data_bytes += len;
	return rc;
}

/* A run of data: a shared sector whose bytes an earlier file wrote
 * becomes a share record, the rest data (a shared sector written here
 * for the first time is noted for those that follow). */
static int put_data(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct saver *sv = ctx;
	if (off < sv->cur_end || off > sv->cur_size || len > sv->cur_size - off)
		return -EIO; /* the snapshot broke its promise: refuse to write it */
	const uint64_t S = sv->sector, end = off + len;
	uint64_t pos = off, data = off; /* data: where bytes not yet written start */
	int rc = 0;
	while (rc == 0 && pos < end) {
		while (sv->next_share < sv->nshares && (sv->shares[sv->next_share].index + 1) * S <= pos)
			sv->next_share++;
		const struct sv_frozen_share *sh =
		        sv->next_share < sv->nshares ? &sv->shares[sv->next_share] : NULL;
		if (!sh || sh->index * S >= end) {
			pos = end;
			break;
		}
		if (sh->index * S > pos) {
			pos = sh->index * S;
			continue;
		}
		uint64_t start = sh->index * S, stop = start + S < end ? start + S : end;
		const struct seen *at = seen_find(&sv->seen, sh->id);
		/* (Noted earlier: before pos if it was this file.) */
		if (at && pos - start < at->len) {
			uint64_t n = stop - pos < at->len - (pos - start) ? stop - pos
			                                                  : at->len - (pos - start);
			rc = put_bytes(sv, data, (const uint8_t *)buf + (data - off), pos - data);
			if (rc == 0)
				rc = put_share(sv, pos, n, at->num, at->off + (pos - start));
			pos += n;
			data = pos;
			continue;
		}
		if (!at && pos == start) {
			uint64_t here = sv->cur_size - start < S ? sv->cur_size - start : S;
			if (seen_add(&sv->seen, (struct seen){sh->id, start, sv->cur, (uint32_t)here}))
				return -ENOMEM;
		}
		pos = stop;
	}
	if (rc == 0)
		rc = put_bytes(sv, data, (const uint8_t *)buf + (data - off), end - data);
	if (rc)
		return rc;
	sv->cur_end = end;
	fs_progress(sv->fs, SFS_IMAGE_SAVING, sv->done + sv->cur_end, sv->total);
	return 0;
}

struct target {
	char buf[SFS_SYMLINK_MAX + 1];
	size_t len;
};

static int put_target(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct target *t = ctx;
	if (off != t->len || len > SFS_SYMLINK_MAX - t->len)
		return -EIO;
	memcpy(t->buf + t->len, buf, len);
	t->len += len;
	return 0;
}

static int snap_failed(struct saver *sv, int rc, const char *what, uint64_t ino)
{
	if (rc == -ENOMEM)
		return img_fail_nomem(sv->e);
	if (sv->e->set)
		return rc;
	return img_fail(sv->e, rc, "reading %s of inode %llu: %s", what, (ull)ino, strerror(-rc));
}

/* The inode record of snapshot inode i (first named `name` in directory
 * `parent`), then its data and its xattrs. */
static int save_inode(struct saver *sv, size_t i, uint32_t parent, const char *name, size_t nlen)
{
	struct snap_inode si;
	snap_inode(sv->s, i, &si);
	uint32_t type = si.mode & S_IFMT;
	if (!img_mode_ok(si.mode))
		return img_fail(sv->e, -EIO, "inode %llu has an unknown type", (ull)si.ino);
	uint32_t num = ++sv->next;
	sv->ix[i].num = num;
	struct target t = {.len = 0};
	if (type == S_IFLNK) {
		int rc = snap_data(sv->s, i, put_target, &t);
		if (rc)
			return snap_failed(sv, rc, "the target", si.ino);
		if (t.len != si.size || t.len == 0)
			return img_fail(sv->e, -EIO, "symlink %llu: target of %zu bytes, size %llu",
			            (ull)si.ino, t.len, (ull)si.size);
	}
	uint8_t f[INODE_FIXED];
	put64(f, num);
	put64(f + 8, parent);
	put32(f + 16, si.mode);
	put32(f + 20, si.uid);
	put32(f + 24, si.gid);
	put32(f + 28, si.nlink);
	put64(f + 32, type == S_IFREG || type == S_IFLNK ? si.size : 0);
	bool dev = type == S_IFCHR || type == S_IFBLK;
	put32(f + 40, dev ? (uint32_t)major((dev_t)si.rdev) : 0);
	put32(f + 44, dev ? (uint32_t)minor((dev_t)si.rdev) : 0);
	put64(f + 48, (uint64_t)(int64_t)si.atime.tv_sec);
	put64(f + 56, (uint64_t)(int64_t)si.mtime.tv_sec);
	put64(f + 64, (uint64_t)(int64_t)si.ctime.tv_sec);
	put32(f + 72, (uint32_t)si.atime.tv_nsec);
	put32(f + 76, (uint32_t)si.mtime.tv_nsec);
	put32(f + 80, (uint32_t)si.ctime.tv_nsec);
	put16(f + 84, (uint16_t)nlen);
	char var[SFS_NAME_MAX + SFS_SYMLINK_MAX];
	memcpy(var, name, nlen);
	memcpy(var + nlen, t.buf, t.len);
	int rc = w_record(&sv->w, R_INODE, f, sizeof f, var, nlen + t.len);
	if (rc)
		return rc;
	struct sfs_image_info *in = &sv->info;
	in->inodes++;
	switch (type) {
	case S_IFDIR: in->dirs++; break;
	case S_IFREG: in->files++; in->file_bytes += si.size; break;
	case S_IFLNK: in->symlinks++; break;
	case S_IFIFO: in->fifos++; break;
	case S_IFSOCK: in->sockets++; break;
	case S_IFCHR: in->chrdevs++; break;
	default: in->blkdevs++; break;
	}
	if (type == S_IFREG) {
		sv->cur = num;
		sv->cur_size = si.size;
		sv->cur_end = 0;
		sv->nshares = snap_shares(sv->s, i, &sv->shares, &sv->sector);
		sv->next_share = 0;
		rc = snap_data(sv->s, i, put_data, sv);
		if (rc == 0)
			rc = flush_share(sv);
		if (rc)
			return snap_failed(sv, rc, "the data", si.ino);
		sv->done += si.size;
	}
	sv->xattrs.len = 0;
	rc = snap_xattrs(sv->s, i, add_xattr, &sv->xattrs);
	if (rc)
		return snap_failed(sv, rc, "the xattrs", si.ino);
	for (size_t off = 0; off < sv->xattrs.len;) {
		uint8_t *x = sv->xattrs.p + off;
		size_t vl = get32(x + 8), nl = get16(x + 12);
		put64(x, num);
		rc = w_record(&sv->w, R_XATTR, x, XATTR_FIXED, x + XATTR_FIXED, nl + vl);
		if (rc)
			return rc;
		in->xattrs++;
		off += XATTR_FIXED + nl + vl;
	}
	if (type == S_IFDIR)
		sv->queue[sv->qtail++] = (uint32_t)i;
	return 0;
}

/* Every entry of the directory at snapshot index d. */
static int save_dir(struct saver *sv, size_t d)
{
	sv->ents.len = 0;
	int rc = snap_dir(sv->s, d, add_entry, &sv->ents);
	if (rc)
		return snap_failed(sv, rc, "the entries", sv->ix[d].ino);
	for (size_t off = 0; off < sv->ents.len;) {
		const uint8_t *p = sv->ents.p + off;
		uint64_t ino = get64(p);
		size_t nlen = p[8];
		const char *name = (const char *)p + 9;
		off += 9 + nlen;
		size_t j;
		if (find_index(sv, ino, &j))
			return img_fail(sv->e, -EIO,
			            "directory %llu names inode %llu, not in the snapshot",
			            (ull)sv->ix[d].ino, (ull)ino);
		struct sinode *c = &sv->ix[j];
		sv->info.names++;
		if (c->num == 0) {
			if (img_is_dir(c->mode))
				sv->ix[d].names++;
			else
				c->names++;
			rc = save_inode(sv, j, sv->ix[d].num, name, nlen);
			if (rc)
				return rc;
			continue;
		}
		if (img_is_dir(c->mode))
			return img_fail(sv->e, -EIO, "directory %llu is named twice in the snapshot",
			            (ull)c->ino);
		c->names++;
		uint8_t f[LINK_FIXED];
		put64(f, c->num);
		put64(f + 8, sv->ix[d].num);
		put16(f + 16, (uint16_t)nlen);
		rc = w_record(&sv->w, R_LINK, f, sizeof f, name, nlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* Write the whole snapshot, the end record included. */
static int save_tree(struct saver *sv)
{
	sv->n = snap_count(sv->s);
	if (sv->n == 0 || sv->n > MAX_INODES)
		return img_fail(sv->e, -EFBIG, "%zu inodes: more than an image can hold", sv->n);
	sv->ix = os_calloc(sv->n, sizeof *sv->ix);
	sv->queue = os_malloc(sv->n * sizeof *sv->queue);
	if (!sv->ix || !sv->queue)
		return img_fail_nomem(sv->e);
	for (size_t i = 0; i < sv->n; i++) {
		struct snap_inode si;
		snap_inode(sv->s, i, &si);
		sv->ix[i] = (struct sinode){.ino = si.ino, .nlink = si.nlink, .mode = si.mode};
		if (S_ISREG(si.mode))
			sv->total += si.size;
		if (i && si.ino <= sv->ix[i - 1].ino)
			return img_fail(sv->e, -EIO, "the snapshot's inodes are out of order");
	}
	if (sv->ix[0].ino != SFS_ROOT_INO || !img_is_dir(sv->ix[0].mode))
		return img_fail(sv->e, -EIO, "the snapshot does not start with the root");
	int rc = save_inode(sv, 0, 0, "", 0);
	while (rc == 0 && sv->qhead < sv->qtail)
		rc = save_dir(sv, sv->queue[sv->qhead++]);
	if (rc)
		return rc;
	/* Never write an image the loader would refuse. */
	if (sv->next != sv->n)
		return img_fail(sv->e, -EIO, "the snapshot has %zu inodes, %u of them reachable", sv->n,
		            sv->next);
	for (size_t i = 0; i < sv->n; i++) {
		const struct sinode *c = &sv->ix[i];
		uint32_t want = img_is_dir(c->mode) ? 2 + c->names : c->names;
		if (c->nlink != want)
			return img_fail(sv->e, -EIO,
			            "inode %llu: link count %u in the snapshot, %u found",
			            (ull)c->ino, c->nlink, want);
	}
	return 0;
}

static int save_end(struct saver *sv)
{
	const struct sfs_image_info *i = &sv->info;
	const uint64_t v[13] = {sv->w.records, i->inodes, i->dirs, i->files, i->symlinks,
	                        i->fifos, i->sockets, i->chrdevs, i->blkdevs, i->names,
	                        i->xattrs, i->data_bytes, i->file_bytes};
	uint8_t f[END_SIZE];
	for (int k = 0; k < 13; k++)
		put64(f + 8 * k, v[k]);
	int rc = w_record(&sv->w, R_END, f, sizeof f, NULL, 0);
	return rc ? rc : w_flush(&sv->w);
}

/* "DIR/.NAME.tmp.XXXXXX" and DIR for `path`. */
static int temp_names(const char *path, char **tmp, char **dir)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	if (!*base)
		return -EISDIR;
	if (strlen(base) + 13 > NAME_MAX)
		return -ENAMETOOLONG;
	*dir = os_malloc(dlen + 2);
	*tmp = os_malloc(strlen(path) + 16);
	if (!*dir || !*tmp)
		return -ENOMEM;
	if (slash && dlen == 0)
		strcpy(*dir, "/");
	else if (slash)
		memcpy(*dir, path, dlen), (*dir)[dlen] = '\0';
	else
		strcpy(*dir, ".");
	sprintf(*tmp, "%.*s.%s.tmp.XXXXXX", (int)(slash ? dlen + 1 : 0), path, base);
	return 0;
}

int sfs_image_save(struct sfs_fs *fs, const char *path, struct sfs_image_info *info, char *err,
                   size_t errlen)
{
	struct ierr e = {.path = path, .buf = err, .len = errlen};
	if (err && errlen)
		err[0] = '\0';
	char *tmp = NULL, *dir = NULL;
	bool created = false; /* a temporary file exists to remove on failure */
	struct saver sv = {.e = &e, .fs = fs, .w = {.e = &e, .fd = -1}};
	int rc = temp_names(path, &tmp, &dir);
	if (rc) {
		rc = img_fail(&e, rc, "%s", strerror(-rc));
		goto out;
	}
	rc = os_open_temp(tmp);
	if (rc < 0) {
		rc = img_fail(&e, rc, "cannot create %s: %s", tmp, strerror(-rc));
		goto out;
	}
	sv.w.fd = rc;
	created = true;
	/* A new image holds the filesystem's contents: 0600 (mkostemp's),
	 * unless an image is already there, whose mode and owner carry over:
	 * if they cannot be read, the save fails rather than change them. */
	struct stat old;
	rc = os_stat(path, &old);
	if (rc == 0 && S_ISREG(old.st_mode)) {
		if (os_privileged() && (rc = os_fchown(sv.w.fd, old.st_uid, old.st_gid)) != 0) {
			rc = img_fail(&e, rc, "chown %s: %s", tmp, strerror(-rc));
			goto out;
		}
		if ((rc = os_fchmod(sv.w.fd, old.st_mode & 07777)) != 0) {
			rc = img_fail(&e, rc, "chmod %s: %s", tmp, strerror(-rc));
			goto out;
		}
	} else if (rc != 0 && rc != -ENOENT) {
		rc = img_fail(&e, rc, "reading the old image's mode and owner: %s", strerror(-rc));
		goto out;
	}
	rc = 0; /* no image yet (ENOENT) is no error */
	sv.w.cap = IO_BUF;
	sv.w.buf = os_malloc(sv.w.cap);
	if (!sv.w.buf) {
		rc = img_fail_nomem(&e);
		goto out;
	}
	sv.w.off = sv.w.synced = HDR_SIZE;
	struct statvfs svfs;
	rc = sfs_statfs(fs, &svfs);
	if (rc) {
		rc = img_fail(&e, rc, "statfs: %s", strerror(-rc));
		goto out;
	}
	struct header h = {.major = IMG_MAJOR, .minor = IMG_MINOR, .size = HDR_SIZE,
	                   .sector_size = (uint32_t)svfs.f_bsize};
	h.created = os_now();
	rc = snap_begin(fs, &sv.s);
	if (rc) {
		rc = img_fail(&e, rc, "snapshot: %s", strerror(-rc));
		goto out;
	}
	sv.info.held_ns = snap_held_ns(sv.s);
	sv.info.changes = snap_changes(sv.s);
	rc = save_tree(&sv);
	/* Everything is read: let writers go before the file is synced. */
	snap_end(sv.s);
	sv.s = NULL;
	if (rc == 0)
		rc = save_end(&sv);
	if (rc)
		goto out;
	h.records = sv.w.records;
	h.inodes = sv.info.inodes;
	h.names = sv.info.names;
	h.xattrs = sv.info.xattrs;
	h.data_bytes = sv.info.data_bytes;
	h.file_size = sv.w.off;
	if (sv.info.shared_bytes)
		h.flags |= FLAG_SHARES;
	uint8_t hb[HDR_SIZE];
	header_encode(&h, hb);
	struct iovec hv = {.iov_base = hb, .iov_len = sizeof hb};
	uint64_t at = 0;
	rc = w_write_at(&sv.w, &hv, 1, &at, "writing the header");
	if (rc)
		goto out;
	rc = os_fsync(sv.w.fd);
	if (rc) {
		rc = img_fail(&e, rc, "fsync: %s", strerror(-rc));
		goto out;
	}
	int fd = sv.w.fd;
	sv.w.fd = -1;
	rc = os_close(fd);
	if (rc) {
		rc = img_fail(&e, rc, "close: %s", strerror(-rc));
		goto out;
	}
	rc = os_rename(tmp, path);
	if (rc) {
		rc = img_fail(&e, rc, "rename from %s: %s", tmp, strerror(-rc));
		goto out;
	}
	created = false; /* renamed: never to be removed */
	/* The new image is in place, complete and synced; only the rename
	 * may not be on disk yet.  If it cannot be made so, the save is not
	 * durable and says so: the caller must not count on it (a crash
	 * could bring back the old image), and may simply save again. */
	rc = os_fsync_dir(dir);
	if (rc)
		rc = img_fail(&e, rc,
		              "the new image is in place, but syncing the directory %s failed: %s "
		              "(after a crash the old image may be back)",
		              dir, strerror(-rc));
	if (rc == 0 && info) {
		*info = sv.info;
		info->version_major = IMG_MAJOR;
		info->version_minor = IMG_MINOR;
		info->flags = h.flags;
		info->sector_size = h.sector_size;
		info->created = h.created;
		info->image_bytes = h.file_size;
		info->records = h.records;
	}
out:
	fs_progress(fs, SFS_IMAGE_IDLE, 0, 0);
	if (sv.s)
		snap_end(sv.s);
	if (sv.w.fd >= 0)
		(void)os_close(sv.w.fd); /* the first error is the one to report */
	if (created)
		(void)os_unlink(tmp);
	os_free(tmp);
	os_free(dir);
	os_free(sv.w.buf);
	os_free(sv.ix);
	os_free(sv.queue);
	os_free(sv.seen.s);
	img_arena_free(&sv.ents);
	img_arena_free(&sv.xattrs);
	return rc;
}
