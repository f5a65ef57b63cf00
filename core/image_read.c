/* SPDX-License-Identifier: MIT */
/* image_read.c - reading an image and proving it sound (image.h).
 *
 * One parser serves both passes of a load (image_load.c) and `sectorfs
 * image check`: it reads records one by one and holds each to every rule
 * of the format before anything looks inside it.  Reads are os_pread()
 * into one buffer (a read that stops short is simply continued), never
 * mmap: a file truncated under us is an error message, not a SIGBUS.  No
 * length field is used to size an allocation before it has been checked
 * against the bytes actually left in the file, and per-inode state grows
 * with the records really read, so memory stays proportional to the
 * image's contents (about 40 bytes per inode while verifying), whatever a
 * crafted header claims.
 *
 * Share records (1.1) say that a run of the current file holds the same
 * bytes as a run of an earlier regular file; the parser keeps each file's
 * size (8 of the bytes per inode) to hold the source run inside it.
 *
 * The saver numbers inodes in the order it writes them and gives each its
 * first name (parent number + name) in its own record, so a directory
 * always comes before anything in it: there is no cycle to search for,
 * only links to directories to refuse, and a fixed-size state per inode
 * proves the names form a tree.  Hard links, "every inode referenced" and
 * "counts match" are proven by link counts: the inode record states
 * nlink, and the names found must agree, for every inode, at the end of
 * the image.  Duplicate names are found with a table of keyed hashes
 * (the key from the kernel's random bytes, so a crafted image cannot aim
 * for collisions) that holds record offsets, not names.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h" /* the core's checks of ACL and capability values; fs_progress() */
#include "image.h"
#include "os.h"

/* ======================================================================
 * Reading: records one by one, each checked against the file size and its
 * checksum before anything looks inside it.
 * ====================================================================== */

struct rec {
	unsigned type;
	uint32_t len;
	uint64_t no;       /* 1 for the first record after the header */
	uint64_t off;      /* file offset of its header */
	const uint8_t *p;  /* the payload, valid until the next read */
};

static int rd_error(struct reader *r, int err)
{
	return img_fail(r->e, -err, "read: %s", strerror(err));
}

/* Up to len bytes at off, fewer only at the end of the file: how many, or
 * -errno (reported).  A read may stop short anywhere; this one goes on. */
static ssize_t rd_full(struct reader *r, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t got = os_pread(r->fd, (uint8_t *)buf + done, len - done, off + done);
		if (got < 0)
			return rd_error(r, (int)-got);
		if (got == 0)
			break;
		done += (size_t)got;
	}
	return (ssize_t)done;
}

/* Make the n bytes from file offset `at` available; n <= cap. */
static int rd_need(struct reader *r, uint64_t at, size_t n, const uint8_t **out)
{
	if (at < r->base || at + n > r->base + r->have) {
		size_t keep = 0;
		if (at >= r->base && at < r->base + r->have) {
			keep = (size_t)(r->base + r->have - at);
			memmove(r->buf, r->buf + (at - r->base), keep);
		}
		r->base = at;
		r->have = keep;
		while (r->have < n) {
			uint64_t left = r->size - (r->base + r->have);
			size_t want = r->cap - r->have;
			if (want > left)
				want = (size_t)left;
			if (want == 0)
				return img_fail(r->e, -EIO, "changed while being read (now shorter)");
			ssize_t got = os_pread(r->fd, r->buf + r->have, want, r->base + r->have);
			if (got < 0)
				return rd_error(r, (int)-got);
			if (got == 0)
				return img_fail(r->e, -EIO, "changed while being read (now shorter)");
			r->have += (size_t)got;
		}
	}
	*out = r->buf + (at - r->base);
	return 0;
}

/* "record 37 (data of inode 12)": what a record says it is, for messages. */
static const char *describe(char *buf, size_t size, unsigned type, const uint8_t *p, size_t len)
{
	const char *tn = img_type_name(type);
	if (!tn)
		snprintf(buf, size, "type 0x%04x", type);
	else if (type == R_END || len < 8)
		snprintf(buf, size, "%s", tn);
	else if (type == R_INODE)
		snprintf(buf, size, "inode %llu", (ull)get64(p));
	else if (type == R_LINK)
		snprintf(buf, size, "link to inode %llu", (ull)get64(p));
	else
		snprintf(buf, size, "%s of inode %llu", tn, (ull)get64(p));
	return buf;
}

/* The next record the reader knows (unknown skippable ones are checked and
 * passed over): 1, or 0 at the end of the file, or -errno. */
static int rd_next(struct reader *r, struct rec *out)
{
	for (;;) {
		if (r->pos >= r->size)
			return 0;
		uint64_t no = r->recno + 1, at = r->pos;
		if (r->size - at < REC_HDR)
			return img_fail(r->e, -EINVAL, "record %llu (offset %llu): cut short", (ull)no,
			            (ull)at);
		const uint8_t *h;
		int rc = rd_need(r, at, REC_HDR, &h);
		if (rc)
			return rc;
		unsigned type = get16(h), flags = get16(h + 2);
		uint32_t len = get32(h + 4), seq = get32(h + 8), crc = get32(h + 12);
		if (len > r->size - at - REC_HDR)
			return img_fail(r->e, -EINVAL,
			            "record %llu (offset %llu): length %u runs past the end of the "
			            "image",
			            (ull)no, (ull)at, len);
		bool known = img_type_name(type) != NULL;
		if (known && len > KNOWN_MAX)
			return img_fail(r->e, -EINVAL, "record %llu (offset %llu, %s): bad length %u",
			            (ull)no, (ull)at, img_type_name(type), len);
		uint32_t sum;
		const uint8_t *payload = NULL;
		char what[64];
		if ((size_t)len + REC_HDR <= r->cap) {
			rc = rd_need(r, at, REC_HDR + len, &h);
			if (rc)
				return rc;
			payload = h + REC_HDR;
			sum = img_crc32c(img_crc32c(0, h, 12), payload, len);
			describe(what, sizeof what, type, payload, len);
		} else {
			/* Only an unknown type can be this long: check it
			 * in pieces, never holding it whole. */
			uint8_t hcopy[12];
			memcpy(hcopy, h, 12);
			sum = img_crc32c(0, hcopy, 12);
			for (uint64_t done = 0; done < len;) {
				size_t n = r->cap < len - done ? r->cap : (size_t)(len - done);
				const uint8_t *p;
				rc = rd_need(r, at + REC_HDR + done, n, &p);
				if (rc)
					return rc;
				sum = img_crc32c(sum, p, n);
				done += n;
			}
			describe(what, sizeof what, type, NULL, 0);
		}
		if (sum != crc)
			return img_fail(r->e, -EINVAL, "record %llu (%s): checksum mismatch", (ull)no,
			            what);
		if (seq != (uint32_t)no)
			return img_fail(r->e, -EINVAL,
			            "record %llu (%s): sequence number %u, expected %u (records "
			            "missing, repeated or reordered)",
			            (ull)no, what, seq, (uint32_t)no);
		if (!known && !(flags & REC_SKIP))
			return img_fail(r->e, -EINVAL,
			            "record %llu: type 0x%04x is unknown to this version and may "
			            "not be skipped (written by a newer sectorfs?)",
			            (ull)no, type);
		r->recno = no;
		r->pos = at + REC_HDR + len;
		if (r->fs)
			fs_progress(r->fs, r->phase, r->pos, r->size);
		if (!known) {
			r->skipped++;
			continue;
		}
		*out = (struct rec){.type = type, .len = len, .no = no, .off = at, .p = payload};
		return 1;
	}
}

static int rd_header(struct reader *r, struct header *h)
{
	uint8_t hb[HDR_SIZE_MAX];
	ssize_t got = rd_full(r, hb, sizeof hb, 0);
	if (got < 0)
		return (int)got;
	size_t n = (size_t)got;
	if (n < 8 || memcmp(hb, IMG_MAGIC, 8))
		return img_fail(r->e, -EINVAL, n == 0 ? "empty file, not a sectorfs image"
		                                  : "not a sectorfs image (no magic number)");
	if (n < 12)
		return img_fail(r->e, -EINVAL, "truncated: %zu bytes, shorter than the header", n);
	h->major = get16(hb + 8);
	h->minor = get16(hb + 10);
	if (h->major != IMG_MAJOR)
		return img_fail(r->e, -EINVAL, "format version %u.%u is %s this sectorfs reads (%u.x)",
		            h->major, h->minor, h->major > IMG_MAJOR ? "newer than" : "not one",
		            IMG_MAJOR);
	if (n < HDR_SIZE)
		return img_fail(r->e, -EINVAL, "truncated: %zu bytes, shorter than the header", n);
	h->size = get32(hb + 12);
	if (h->size < HDR_SIZE || h->size > HDR_SIZE_MAX || h->size % 4)
		return img_fail(r->e, -EINVAL, "bad header size %u", h->size);
	if (h->size > n)
		return img_fail(r->e, -EINVAL, "truncated: %zu bytes, shorter than the header", n);
	if (img_crc32c(0, hb, h->size - 4) != get32(hb + h->size - 4))
		return img_fail(r->e, -EINVAL, "header checksum mismatch");
	h->flags = get32(hb + 16);
	h->sector_size = get32(hb + 20);
	h->created.tv_sec = (time_t)(int64_t)get64(hb + 24);
	h->created.tv_nsec = (long)get32(hb + 32);
	h->records = get64(hb + 40);
	h->inodes = get64(hb + 48);
	h->names = get64(hb + 56);
	h->xattrs = get64(hb + 64);
	h->data_bytes = get64(hb + 72);
	h->file_size = get64(hb + 80);
	if (h->flags & REQUIRED_FLAGS & ~KNOWN_FLAGS)
		return img_fail(r->e, -EINVAL, "needs features 0x%04x that this sectorfs does not have",
		            h->flags & REQUIRED_FLAGS & ~KNOWN_FLAGS);
	r->flags = h->flags;
	if (h->sector_size < 512 || h->sector_size > 65536 ||
	    (h->sector_size & (h->sector_size - 1)))
		return img_fail(r->e, -EINVAL, "bad sector size %u in the header", h->sector_size);
	if (h->created.tv_nsec >= 1000000000)
		return img_fail(r->e, -EINVAL, "bad creation time in the header");
	if (r->size < h->file_size)
		return img_fail(r->e, -EINVAL,
		            "truncated: the image is %llu bytes, its header says %llu",
		            (ull)r->size, (ull)h->file_size);
	if (r->size > h->file_size)
		return img_fail(r->e, -EINVAL,
		            "the image is %llu bytes, its header says %llu (extended?)",
		            (ull)r->size, (ull)h->file_size);
	r->pos = h->size;
	return 0;
}

/* ======================================================================
 * Names seen so far, to refuse duplicates: a table of 64-bit keyed hashes
 * with the offset of the record that holds each name; on equal hashes the
 * earlier record is read again to compare.  The key comes from the
 * kernel's random bytes (os_random), so a crafted image cannot aim for
 * collisions.
 * ====================================================================== */

struct nslot {
	uint64_t hash;
	uint64_t off;     /* 0: empty (no record starts at 0) */
};

struct nameset {
	struct nslot *s;
	size_t cap, used; /* cap a power of two */
	uint64_t key;
};

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ull;
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ull;
	x ^= x >> 32;
	return x;
}

/* kind: 'n' names in directory `owner`, 'x' xattr names of inode `owner` */
static uint64_t name_hash(uint64_t key, int kind, uint64_t owner, const uint8_t *s, size_t n)
{
	uint64_t h = mix64(key ^ ((uint64_t)kind << 56) ^ owner);
	h = mix64(h ^ key ^ n);
	for (; n >= 8; s += 8, n -= 8)
		h = mix64(h ^ get64(s));
	uint64_t last = 0;
	for (size_t i = 0; i < n; i++)
		last |= (uint64_t)s[i] << (8 * i);
	return mix64(h ^ last ^ 0x9e3779b97f4a7c15ull);
}

/* The owner and name held by the record at `off`. */
static int name_at(struct reader *r, uint64_t off, uint64_t *owner, uint8_t *name, size_t *nlen)
{
	uint8_t b[REC_HDR + INODE_FIXED + SFS_NAME_MAX];
	ssize_t got = rd_full(r, b, sizeof b, off);
	if (got < 0)
		return (int)got;
	const uint8_t *p = b + REC_HDR;
	size_t at, len;
	switch (get16(b)) {
	case R_INODE: *owner = get64(p + 8); len = get16(p + 84); at = INODE_FIXED; break;
	case R_LINK: *owner = get64(p + 8); len = get16(p + 16); at = LINK_FIXED; break;
	case R_XATTR: *owner = get64(p); len = get16(p + 12); at = XATTR_FIXED; break;
	default: return img_fail(r->e, -EIO, "changed while being read");
	}
	if (len > SFS_NAME_MAX || (size_t)got < REC_HDR + at + len)
		return img_fail(r->e, -EIO, "changed while being read");
	memcpy(name, p + at, len);
	*nlen = len;
	return 0;
}

/* Add a name: 0, 1 if it was there already, or -errno. */
static int ns_add(struct nameset *ns, struct reader *r, int kind, uint64_t owner,
                  const uint8_t *name, size_t nlen, uint64_t off)
{
	if (ns->used + 1 > ns->cap / 2) {
		size_t cap = ns->cap ? ns->cap * 2 : 1024;
		struct nslot *s = os_calloc(cap, sizeof *s);
		if (!s)
			return -ENOMEM;
		for (size_t i = 0; i < ns->cap; i++) {
			if (!ns->s[i].off)
				continue;
			size_t j = ns->s[i].hash & (cap - 1);
			while (s[j].off)
				j = (j + 1) & (cap - 1);
			s[j] = ns->s[i];
		}
		os_free(ns->s);
		ns->s = s;
		ns->cap = cap;
	}
	uint64_t h = name_hash(ns->key, kind, owner, name, nlen);
	size_t j = h & (ns->cap - 1);
	for (; ns->s[j].off; j = (j + 1) & (ns->cap - 1)) {
		if (ns->s[j].hash != h)
			continue;
		uint64_t o = 0;
		uint8_t other[SFS_NAME_MAX];
		size_t olen = 0;
		int rc = name_at(r, ns->s[j].off, &o, other, &olen);
		if (rc)
			return rc;
		if (o == owner && olen == nlen && !memcmp(other, name, nlen))
			return 1;
	}
	ns->s[j] = (struct nslot){.hash = h, .off = off};
	ns->used++;
	return 0;
}

/* ======================================================================
 * The parser: every rule of the format, record by record.  Pass 1 runs it
 * over the whole image; pass 2 runs it again and builds from what it
 * decodes.
 * ====================================================================== */

#define FAILR(ps, rec, fmt, ...)                                                       \
	img_fail((ps)->e, -EINVAL, "record %llu (%s): " fmt, (ull)(rec)->no,               \
	     describe(what, sizeof what, (rec)->type, (rec)->p, (rec)->len), ##__VA_ARGS__)

/* A directory defined before this record: its vnode, or NULL. */
static struct vnode *defined_dir(struct parser *ps, uint64_t num)
{
	if (num == 0 || num > ps->n || !img_is_dir(ps->v[num - 1].mode))
		return NULL;
	return &ps->v[num - 1];
}

static int parse_inode(struct parser *ps, const struct rec *rec, struct decoded *d)
{
	char what[64];
	const uint8_t *p = rec->p;
	if (rec->len < INODE_FIXED)
		return FAILR(ps, rec, "bad length %u", rec->len);
	struct inode_rec *in = &ps->in;
	in->num = get64(p);
	in->parent = get64(p + 8);
	in->mode = get32(p + 16);
	in->uid = get32(p + 20);
	in->gid = get32(p + 24);
	in->nlink = get32(p + 28);
	in->size = get64(p + 32);
	in->major = get32(p + 40);
	in->minor = get32(p + 44);
	in->atime.tv_sec = (time_t)(int64_t)get64(p + 48);
	in->mtime.tv_sec = (time_t)(int64_t)get64(p + 56);
	in->ctime.tv_sec = (time_t)(int64_t)get64(p + 64);
	in->atime.tv_nsec = (long)get32(p + 72);
	in->mtime.tv_nsec = (long)get32(p + 76);
	in->ctime.tv_nsec = (long)get32(p + 80);
	size_t nlen = get16(p + 84);
	uint32_t type = in->mode & S_IFMT;
	bool root = ps->n == 0;

	if (in->num != ps->n + 1)
		return FAILR(ps, rec, "inode numbers must count up from 1: expected %llu",
		             (ull)ps->n + 1);
	if (in->num > MAX_INODES)
		return FAILR(ps, rec, "more inodes than this sectorfs can load");
	if (!img_mode_ok(in->mode) || (in->mode & ~(uint32_t)(S_IFMT | 07777)))
		return FAILR(ps, rec, "bad mode 0%o", in->mode);
	if (root && (in->parent != 0 || type != S_IFDIR || nlen != 0))
		return FAILR(ps, rec,
		             "the first inode must be the root: a directory without a name");
	if (!root && in->parent == 0)
		return FAILR(ps, rec, "a second root (no parent)");
	if (!root && !defined_dir(ps, in->parent))
		return FAILR(ps, rec, "parent %llu is not a directory defined before it",
		             (ull)in->parent);
	if (in->uid == UINT32_MAX || in->gid == UINT32_MAX)
		return FAILR(ps, rec, "bad owner %u:%u", in->uid, in->gid);
	if (in->nlink == 0 || (type == S_IFDIR && in->nlink < 2))
		return FAILR(ps, rec, "bad link count %u", in->nlink);
	if (in->atime.tv_nsec >= 1000000000 || in->mtime.tv_nsec >= 1000000000 ||
	    in->ctime.tv_nsec >= 1000000000)
		return FAILR(ps, rec, "bad nanoseconds in a timestamp");
	if (type != S_IFCHR && type != S_IFBLK && (in->major || in->minor))
		return FAILR(ps, rec, "a device number on a non-device");
	size_t tlen = 0;
	if (type == S_IFLNK) {
		if (in->size == 0 || in->size > SFS_SYMLINK_MAX)
			return FAILR(ps, rec, "bad symlink length %llu", (ull)in->size);
		if ((in->mode & 07777) != 0777)
			return FAILR(ps, rec, "a symlink's mode must be 0777");
		tlen = (size_t)in->size;
	} else if (type == S_IFREG) {
		if (in->size > (uint64_t)INT64_MAX)
			return FAILR(ps, rec, "bad size %llu", (ull)in->size);
	} else if (in->size) {
		return FAILR(ps, rec, "a size on an inode that has no data");
	}
	if ((size_t)rec->len != INODE_FIXED + nlen + tlen)
		return FAILR(ps, rec, "bad length %u", rec->len);
	if (!root && !img_name_ok(p + INODE_FIXED, nlen))
		return FAILR(ps, rec, "bad name");
	if (tlen && memchr(p + INODE_FIXED + nlen, '\0', tlen))
		return FAILR(ps, rec, "a NUL byte in the symlink target");
	if (!root && ps->names) {
		int rc = ns_add(ps->names, ps->r, 'n', in->parent, p + INODE_FIXED, nlen, rec->off);
		if (rc < 0)
			return rc == -ENOMEM ? img_fail_nomem(ps->e) : rc;
		char shown[ESC_MAX];
		if (rc)
			return FAILR(ps, rec, "duplicate name \"%s\" in directory %llu",
			             img_esc(shown, sizeof shown, p + INODE_FIXED, nlen),
			             (ull)in->parent);
	}
	if (img_grow((void **)&ps->v, &ps->cap, ps->n + 1, sizeof *ps->v))
		return img_fail_nomem(ps->e);
	ps->v[ps->n] = (struct vnode){.parent = (uint32_t)in->parent, .nlink = in->nlink,
	                              .seen = type == S_IFDIR ? 0 : 1, .mode = in->mode,
	                              .size = type == S_IFREG ? in->size : 0};
	if (type == S_IFDIR && !root)
		ps->v[in->parent - 1].seen++;
	ps->n++;
	memcpy(in->name, p + INODE_FIXED, nlen);
	in->name[nlen] = '\0';
	memcpy(in->target, p + INODE_FIXED + nlen, tlen);
	in->target[tlen] = '\0';
	ps->data_end = 0;
	ps->had_xattr = false;
	ps->xlist = 0;

	struct sfs_image_info *i = &ps->info;
	i->inodes++;
	i->names += !root;
	switch (type) {
	case S_IFDIR: i->dirs++; break;
	case S_IFREG: i->files++; i->file_bytes += in->size; break;
	case S_IFLNK: i->symlinks++; ps->need += tlen; break;
	case S_IFIFO: i->fifos++; break;
	case S_IFSOCK: i->sockets++; break;
	case S_IFCHR: i->chrdevs++; break;
	default: i->blkdevs++; break;
	}
	d->in = in;
	return 0;
}

static int parse_link(struct parser *ps, const struct rec *rec, struct decoded *d)
{
	char what[64];
	const uint8_t *p = rec->p;
	if (rec->len < LINK_FIXED)
		return FAILR(ps, rec, "bad length %u", rec->len);
	uint64_t ino = get64(p), parent = get64(p + 8);
	size_t nlen = get16(p + 16);
	if ((size_t)rec->len != LINK_FIXED + nlen)
		return FAILR(ps, rec, "bad length %u", rec->len);
	if (!img_name_ok(p + LINK_FIXED, nlen))
		return FAILR(ps, rec, "bad name");
	if (!defined_dir(ps, parent))
		return FAILR(ps, rec, "directory %llu is not a directory defined before it",
		             (ull)parent);
	char shown[ESC_MAX];
	if (ino == 0 || ino > ps->n)
		return FAILR(ps, rec, "dangling name \"%s\": inode %llu is not defined before it",
		             img_esc(shown, sizeof shown, p + LINK_FIXED, nlen), (ull)ino);
	if (img_is_dir(ps->v[ino - 1].mode)) {
		/* Either way it is refused; say which it would be. */
		for (uint64_t a = parent, steps = 0; a && steps <= ps->n;
		     a = ps->v[a - 1].parent, steps++)
			if (a == ino)
				return FAILR(ps, rec,
				             "cycle: directory %llu would be inside itself "
				             "(through directory %llu)",
				             (ull)ino, (ull)parent);
		return FAILR(ps, rec, "hard link to directory %llu", (ull)ino);
	}
	if (ps->names) {
		int rc = ns_add(ps->names, ps->r, 'n', parent, p + LINK_FIXED, nlen, rec->off);
		if (rc < 0)
			return rc == -ENOMEM ? img_fail_nomem(ps->e) : rc;
		if (rc)
			return FAILR(ps, rec, "duplicate name \"%s\" in directory %llu",
			             img_esc(shown, sizeof shown, p + LINK_FIXED, nlen), (ull)parent);
	}
	struct vnode *v = &ps->v[ino - 1];
	if (v->seen >= v->nlink)
		return FAILR(ps, rec, "more names than its link count %u", v->nlink);
	v->seen++;
	ps->info.names++;
	d->ino = ino;
	d->parent = parent;
	memcpy(d->name, p + LINK_FIXED, nlen);
	d->name[nlen] = '\0';
	return 0;
}

/* Whether the core would take this attribute on this kind of inode (the
 * core's own checks of ACL and capability values), so that an image the
 * core would refuse is refused before anything is built. */
static const char *xattr_refusal(const char *name, uint32_t mode, const uint8_t *v, size_t len)
{
	uint32_t type = mode & S_IFMT;
	if (!strcmp(name, "system.posix_acl_access")) {
		if (type == S_IFLNK)
			return "an ACL on a symlink";
		return acl_check(v, len) ? "a malformed ACL" : NULL;
	}
	if (!strcmp(name, "system.posix_acl_default")) {
		if (type != S_IFDIR)
			return "a default ACL on a non-directory";
		return acl_check(v, len) ? "a malformed ACL" : NULL;
	}
	static const char *const spaces[] = {"user.", "trusted.", "security."};
	for (size_t i = 0; i < 3; i++) {
		size_t pl = strlen(spaces[i]);
		if (strncmp(name, spaces[i], pl))
			continue;
		if (!name[pl])
			return "an attribute name without a suffix";
		if (i == 0 && type != S_IFREG && type != S_IFDIR)
			return "a user.* attribute on an inode that cannot have one";
		if (!strcmp(name, "security.capability") && xattr_capability_ok(v, len))
			return "a malformed security.capability";
		return NULL;
	}
	return "an attribute in an unknown namespace";
}

static int parse_xattr(struct parser *ps, const struct rec *rec, struct decoded *d)
{
	char what[64];
	const uint8_t *p = rec->p;
	if (rec->len < XATTR_FIXED)
		return FAILR(ps, rec, "bad length %u", rec->len);
	uint64_t ino = get64(p);
	uint32_t vlen = get32(p + 8);
	size_t nlen = get16(p + 12);
	if (ino == 0 || ino != ps->n)
		return FAILR(ps, rec, "not after its inode's record");
	if (nlen == 0 || nlen > SFS_NAME_MAX || vlen > SFS_XATTR_SIZE_MAX ||
	    (size_t)rec->len != XATTR_FIXED + nlen + vlen)
		return FAILR(ps, rec, "bad length %u", rec->len);
	if (memchr(p + XATTR_FIXED, '\0', nlen))
		return FAILR(ps, rec, "a NUL byte in the name");
	memcpy(d->name, p + XATTR_FIXED, nlen);
	d->name[nlen] = '\0';
	const uint8_t *value = p + XATTR_FIXED + nlen;
	const char *why = xattr_refusal(d->name, ps->v[ino - 1].mode, value, vlen);
	char shown[ESC_MAX];
	img_esc(shown, sizeof shown, d->name, nlen);
	if (why)
		return FAILR(ps, rec, "%s (\"%s\")", why, shown);
	ps->xlist += (uint32_t)nlen + 1;
	if (ps->xlist > SFS_XATTR_LIST_MAX)
		return FAILR(ps, rec, "the attribute names exceed %u bytes", SFS_XATTR_LIST_MAX);
	if (ps->names) {
		int rc = ns_add(ps->names, ps->r, 'x', ino, p + XATTR_FIXED, nlen, rec->off);
		if (rc < 0)
			return rc == -ENOMEM ? img_fail_nomem(ps->e) : rc;
		if (rc)
			return FAILR(ps, rec, "duplicate attribute \"%s\"", shown);
	}
	ps->had_xattr = true;
	ps->info.xattrs++;
	ps->need += nlen + vlen;
	d->ino = ino;
	d->value = value;
	d->len = vlen;
	return 0;
}

/* Where a run of data or shared data (`kind`) of inode ino lies: the
 * current inode, a regular file, before its xattrs, after the run before
 * it, inside the file. */
static int check_run(struct parser *ps, const struct rec *rec, const char *kind, uint64_t ino,
                     uint64_t off, uint64_t len)
{
	char what[64];
	if (ino == 0 || ino != ps->n)
		return FAILR(ps, rec, "not after its inode's record");
	if ((ps->v[ino - 1].mode & S_IFMT) != S_IFREG)
		return FAILR(ps, rec, "%s for an inode that is not a regular file", kind);
	if (ps->had_xattr)
		return FAILR(ps, rec, "%s after the inode's xattrs", kind);
	if (off < ps->data_end)
		return FAILR(ps, rec,
		             "%s at %llu overlaps or precedes the run before it (ending at %llu)",
		             kind, (ull)off, (ull)ps->data_end);
	if (off > ps->in.size || len > ps->in.size - off)
		return FAILR(ps, rec, "%s at %llu+%llu beyond the file size %llu", kind, (ull)off,
		             (ull)len, (ull)ps->in.size);
	ps->data_end = off + len;
	return 0;
}

static int parse_data(struct parser *ps, const struct rec *rec, struct decoded *d)
{
	char what[64];
	const uint8_t *p = rec->p;
	if (rec->len <= DATA_FIXED)
		return FAILR(ps, rec, "bad length %u", rec->len);
	uint64_t ino = get64(p), off = get64(p + 8), len = rec->len - DATA_FIXED;
	int rc = check_run(ps, rec, "data", ino, off, len);
	if (rc)
		return rc;
	ps->info.data_bytes += len;
	ps->need += len;
	d->ino = ino;
	d->off = off;
	d->value = p + DATA_FIXED;
	d->len = (size_t)len;
	return 0;
}

/* The file's bytes at [off, off + len) are those of an earlier regular
 * file, or of this one before off, at [from_off, from_off + len): the same
 * rules as data for where they lie in the file, and the source run must
 * lie within the source's size. */
static int parse_share(struct parser *ps, const struct rec *rec, struct decoded *d)
{
	char what[64];
	const uint8_t *p = rec->p;
	if (rec->len != SHARE_SIZE)
		return FAILR(ps, rec, "bad length %u", rec->len);
	uint64_t ino = get64(p), off = get64(p + 8), len = get64(p + 16);
	uint64_t from = get64(p + 24), from_off = get64(p + 32);
	if (!(ps->r->flags & FLAG_SHARES))
		return FAILR(ps, rec, "shared data in an image whose header does not declare any");
	if (len == 0 && ino == ps->n)
		return FAILR(ps, rec, "shares no bytes");
	int rc = check_run(ps, rec, "shared data", ino, off, len);
	if (rc)
		return rc;
	if (from == 0 || from > ino)
		return FAILR(ps, rec, "shares the data of inode %llu, which is not an earlier inode",
		             (ull)from);
	if (from == ino && (from_off > off || len > off - from_off))
		return FAILR(ps, rec, "shares bytes %llu+%llu of its own, not all before %llu",
		             (ull)from_off, (ull)len, (ull)off);
	const struct vnode *src = &ps->v[from - 1];
	if ((src->mode & S_IFMT) != S_IFREG)
		return FAILR(ps, rec, "shares the data of inode %llu, which is not a regular file",
		             (ull)from);
	if (from_off > src->size || len > src->size - from_off)
		return FAILR(ps, rec, "shares bytes %llu+%llu of inode %llu, beyond its size %llu",
		             (ull)from_off, (ull)len, (ull)from, (ull)src->size);
	ps->info.shared_bytes += len;
	d->ino = ino;
	d->off = off;
	d->from = from;
	d->from_off = from_off;
	d->share_len = len;
	return 0;
}

static int parse_end(struct parser *ps, const struct rec *rec)
{
	char what[64];
	const uint8_t *p = rec->p;
	if (rec->len != END_SIZE)
		return FAILR(ps, rec, "bad length %u", rec->len);
	const struct sfs_image_info *i = &ps->info;
	const uint64_t have[13] = {rec->no - 1, i->inodes, i->dirs, i->files, i->symlinks,
	                           i->fifos, i->sockets, i->chrdevs, i->blkdevs, i->names,
	                           i->xattrs, i->data_bytes, i->file_bytes};
	static const char *const names[13] = {
	        "records", "inodes", "directories", "files", "symlinks", "fifos", "sockets",
	        "character devices", "block devices", "names", "xattrs", "data bytes",
	        "file bytes"};
	for (int k = 0; k < 13; k++)
		if (get64(p + 8 * k) != have[k])
			return FAILR(ps, rec, "says %llu %s, the image has %llu",
			             (ull)get64(p + 8 * k), names[k], (ull)have[k]);
	ps->ended = true;
	return 0;
}

/* The next record, checked and decoded: 1, 0 at the end, or -errno. */
int img_parse_next(struct parser *ps, struct decoded *d)
{
	struct rec rec = {0};
	int rc = rd_next(ps->r, &rec);
	if (rc <= 0)
		return rc;
	if (ps->ended)
		return img_fail(ps->e, -EINVAL, "record %llu comes after the end record", (ull)rec.no);
	if (ps->n == 0 && rec.type != R_INODE)
		return img_fail(ps->e, -EINVAL, "record %llu (%s): the first record must be the root's",
		            (ull)rec.no, img_type_name(rec.type));
	*d = (struct decoded){.type = rec.type};
	switch (rec.type) {
	case R_INODE: rc = parse_inode(ps, &rec, d); break;
	case R_LINK: rc = parse_link(ps, &rec, d); break;
	case R_XATTR: rc = parse_xattr(ps, &rec, d); break;
	case R_DATA: rc = parse_data(ps, &rec, d); break;
	case R_SHARE: rc = parse_share(ps, &rec, d); break;
	default: rc = parse_end(ps, &rec); break;
	}
	return rc ? rc : 1;
}

/* After the last record: the end record was there, every link count and
 * the header's totals agree. */
int img_parse_finish(struct parser *ps, const struct header *h)
{
	if (!ps->ended)
		return img_fail(ps->e, -EINVAL, "no end record");
	for (size_t i = 0; i < ps->n; i++) {
		const struct vnode *v = &ps->v[i];
		if (img_is_dir(v->mode) && v->nlink != 2 + v->seen)
			return img_fail(ps->e, -EINVAL,
			            "directory %zu: link count %u, but %u subdirectories", i + 1,
			            v->nlink, v->seen);
		if (!img_is_dir(v->mode) && v->nlink != v->seen)
			return img_fail(ps->e, -EINVAL, "inode %zu: link count %u, but %u names", i + 1,
			            v->nlink, v->seen);
	}
	const struct sfs_image_info *i = &ps->info;
	if (h->records != ps->r->recno || h->inodes != i->inodes || h->names != i->names ||
	    h->xattrs != i->xattrs || h->data_bytes != i->data_bytes)
		return img_fail(ps->e, -EINVAL, "the header's totals do not match the records");
	return 0;
}

void img_parser_free(struct parser *ps)
{
	os_free(ps->v);
	ps->v = NULL;
	ps->n = ps->cap = 0;
}

/* ---- opening and verifying ---- */

int img_open(struct image *im, const char *path, char *err, size_t errlen)
{
	memset(im, 0, sizeof *im);
	im->r.fd = -1;
	im->e = (struct ierr){.path = path, .buf = err, .len = errlen};
	if (err && errlen)
		err[0] = '\0';
	im->r.e = &im->e;
	int fd = os_open(path, O_RDONLY);
	if (fd < 0)
		return img_fail(&im->e, fd, "%s", strerror(-fd));
	im->r.fd = fd;
	struct stat st;
	int rc = os_fstat(fd, &st);
	if (rc)
		return img_fail(&im->e, rc, "%s", strerror(-rc));
	if (!S_ISREG(st.st_mode))
		return img_fail(&im->e, -EINVAL, "not a regular file");
	im->r.size = (uint64_t)st.st_size;
	im->r.cap = im->r.size < IO_BUF ? (size_t)im->r.size : IO_BUF;
	im->r.buf = os_malloc(im->r.cap ? im->r.cap : 1);
	if (!im->r.buf)
		return img_fail_nomem(&im->e);
	(void)os_read_ahead(fd); /* a hint: reading goes on without it */
	return rd_header(&im->r, &im->h);
}

void img_close(struct image *im)
{
	if (im->r.fd >= 0)
		(void)os_close(im->r.fd); /* read only: nothing of ours is lost */
	os_free(im->r.buf);
	im->r.fd = -1;
	im->r.buf = NULL;
}

void img_rewind(struct image *im)
{
	im->r.pos = im->h.size;
	im->r.recno = 0;
	im->r.skipped = 0;
}

static void fill_info(const struct image *im, const struct parser *ps,
                      struct sfs_image_info *info)
{
	if (!info)
		return;
	*info = ps->info;
	info->version_major = im->h.major;
	info->version_minor = im->h.minor;
	info->flags = im->h.flags;
	info->sector_size = im->h.sector_size;
	info->created = im->h.created;
	info->image_bytes = im->r.size;
	info->records = im->r.recno;
	info->skipped = im->r.skipped;
}

static uint64_t random_key(void)
{
	uint64_t k;
	if (os_random(&k, sizeof k, false) != 0)
		k = os_monotonic_ns() ^ (uint64_t)(uintptr_t)&k;
	return k;
}

/* Pass 1: every record and every rule, nothing built. */
int img_verify(struct image *im, struct parser *ps)
{
	struct nameset ns = {.key = random_key()};
	*ps = (struct parser){.e = &im->e, .r = &im->r, .names = &ns};
	struct decoded d;
	int rc;
	while ((rc = img_parse_next(ps, &d)) > 0)
		;
	if (rc == 0)
		rc = img_parse_finish(ps, &im->h);
	os_free(ns.s);
	return rc;
}

int sfs_image_check(const char *path, struct sfs_image_info *info, char *err, size_t errlen)
{
	struct image im;
	struct parser ps = {0};
	int rc = img_open(&im, path, err, errlen);
	if (rc == 0)
		rc = img_verify(&im, &ps);
	if (rc == 0)
		fill_info(&im, &ps, info);
	img_parser_free(&ps);
	img_close(&im);
	return rc;
}
