/* SPDX-License-Identifier: MIT */
/* image.c - saving a filesystem to a disk image, and loading it back.
 *
 * The format is docs/image-format.md: a header, then records, each with its
 * own CRC32C and sequence number, ending with a record of totals.  This file
 * uses only the public API, the snapshot (snapshot.h) and the core's checks
 * of ACL and capability values (core.h): it reads a
 * point-in-time view to save, and builds a tree through sfs_mkdir,
 * sfs_create, sfs_write, ... to load, as any caller could.
 *
 * Saving walks the snapshot breadth-first from the root and numbers the
 * inodes 1, 2, 3, ... in the order it writes them.  Every inode's record
 * carries its first name (parent number + name), so a directory is always
 * written before anything in it, and further names of a file are link
 * records that come after it.  A loader can then build the tree in one
 * streaming pass, holding 8 bytes per inode (its new inode number), and a
 * verifier can prove the names form a tree with a fixed-size state per
 * inode: nothing can name a directory written later, so there is no cycle
 * to search for, only links to directories to refuse.  Records are
 * streamed through a 4 MiB buffer; file data goes from the snapshot's
 * buffer straight to the file (pwritev), and writeback is started every
 * 64 MiB so that the final fsync does not wait for the whole image.  The
 * image is written beside the old one and renamed over it only once it is
 * complete and synced; its header, which holds the totals, is written last.
 *
 * Loading reads the image twice with the same parser: first to verify all
 * of it (nothing is created before the whole image is known good: every
 * checksum, every length against the file size, every structural rule,
 * the limits), then to build.  The second pass re-checks every checksum and
 * rule as it goes, so an image that changes between the passes is caught
 * and the build undone instead of trusted.  Reads are pread() into one
 * buffer, never mmap: a file truncated under us is an error message, not a
 * SIGBUS.  No length field is used to size an allocation before it has been
 * checked against the bytes actually left in the file, and per-inode state
 * grows with the records really read, so memory stays proportional to the
 * image's contents (about 40 bytes per inode while verifying), whatever a
 * crafted header claims.
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
 * Hard links, "every inode referenced" and "counts match" are proven by
 * link counts: the inode record states nlink, and the names found must
 * agree, for every inode, at the end of the image.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core.h" /* the core's checks of ACL and capability values */
#include "image.h"
#include "os.h"
#include "sectorfs.h"
#include "snapshot.h"

/* ---- the format (docs/image-format.md) ---- */

#define IMG_MAGIC "\x89SFSIMG\n"
#define IMG_MAJOR 1
#define IMG_MINOR 0
#define HDR_SIZE 96u          /* the header of version 1.0 */
#define HDR_SIZE_MAX 4096u    /* a later 1.x may grow it, up to this */
#define REQUIRED_FLAGS 0xffffu /* header flags a reader must understand */
#define REC_HDR 16u
#define REC_SKIP 1u           /* record flag: a reader that does not know the type skips it */

enum { R_INODE = 1, R_LINK = 2, R_XATTR = 3, R_DATA = 4, R_END = 5 };

#define INODE_FIXED 86u
#define LINK_FIXED 18u
#define XATTR_FIXED 14u
#define DATA_FIXED 16u
#define END_SIZE (13u * 8u)
#define RUN_MAX ((size_t)1 << 20)         /* bytes of data in one record */
#define KNOWN_MAX (DATA_FIXED + RUN_MAX)  /* the longest record a 1.x reader knows */
#define MAX_INODES 0xfffffffeull          /* numbers fit 32 bits in the loader */

#define IO_BUF ((size_t)4 << 20)
#define SYNC_EVERY ((uint64_t)64 << 20)

/* ---- little-endian fields ---- */

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- CRC32C ---- */

/* Castagnoli's polynomial, reflected.  Tables for slicing-by-8: t[k][b] is
 * the CRC of byte b followed by k zero bytes. */
#define CRC32C_POLY 0x82f63b78u

static uint32_t crc_table[8][256];
static bool crc_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
static void crc_sse42_init(void);
#endif

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
			                  crc_table[0][crc_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
	crc_hw = __builtin_cpu_supports("sse4.2");
	if (crc_hw)
		crc_sse42_init();
#endif
}

static uint32_t crc_soft(uint32_t crc, const uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint32_t lo = crc ^ get32(p), hi = get32(p + 4);
		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		      crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
/* The crc32 instruction computes exactly this CRC.  One chain of them is
 * bound by the instruction's latency (3 cycles for 8 bytes); three
 * independent chains over three neighbouring blocks of CRC_BLOCK bytes
 * run at its throughput, and are joined by shifting the first ones' CRCs
 * over the bytes that follow them.  Shifting a CRC register over zero
 * bytes is linear, so crc_shift[k][b] holds the shift of byte b at byte
 * position k of the register, and a shift is four lookups. */
#define CRC_BLOCK 4096

static uint32_t crc_shift[4][256];

__attribute__((target("sse4.2"))) static uint32_t crc_sse42_1(uint32_t crc, const uint8_t *p,
                                                                size_t n)
{
	uint64_t c = crc;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		n -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (n--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}

static uint32_t crc_shift_block(uint32_t c)
{
	return crc_shift[0][c & 0xff] ^ crc_shift[1][(c >> 8) & 0xff] ^
	       crc_shift[2][(c >> 16) & 0xff] ^ crc_shift[3][c >> 24];
}

__attribute__((target("sse4.2"))) static void crc_sse42_init(void)
{
	static const uint8_t zeros[CRC_BLOCK];
	for (int k = 0; k < 4; k++)
		for (uint32_t b = 0; b < 256; b++)
			crc_shift[k][b] = crc_sse42_1(b << (8 * k), zeros, CRC_BLOCK);
}

__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p,
                                                              size_t n)
{
	while (n >= 3 * CRC_BLOCK) {
		uint64_t c0 = crc, c1 = 0, c2 = 0;
		for (size_t i = 0; i < CRC_BLOCK; i += 8) {
			uint64_t w0, w1, w2;
			memcpy(&w0, p + i, 8);
			memcpy(&w1, p + CRC_BLOCK + i, 8);
			memcpy(&w2, p + 2 * CRC_BLOCK + i, 8);
			c0 = __builtin_ia32_crc32di(c0, w0);
			c1 = __builtin_ia32_crc32di(c1, w1);
			c2 = __builtin_ia32_crc32di(c2, w2);
		}
		crc = crc_shift_block(crc_shift_block((uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * CRC_BLOCK;
		n -= 3 * CRC_BLOCK;
	}
	return crc_sse42_1(crc, p, n);
}
#endif

uint32_t img_crc32c_soft(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return ~crc_soft(~crc, buf, len);
}

uint32_t img_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc_init);
#if defined(__x86_64__)
	if (crc_hw)
		return ~crc_sse42(~crc, buf, len);
#endif
	return ~crc_soft(~crc, buf, len);
}

/* ---- errors: the first one wins, as one line naming the image ---- */

struct ierr {
	const char *path;
	char *buf;
	size_t len;
	bool set;
};

static int fail(struct ierr *e, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct ierr *e, int rc, const char *fmt, ...)
{
	if (!e->set && e->buf && e->len) {
		int n = snprintf(e->buf, e->len, "%s: ", e->path);
		if (n >= 0 && (size_t)n < e->len) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	e->set = true;
	return rc;
}

static int fail_nomem(struct ierr *e)
{
	return fail(e, -ENOMEM, "out of memory");
}

typedef unsigned long long ull;

/* A name as it goes into a message: names may hold any byte but '/' and
 * NUL, and a message is one line, so control characters, quotes and
 * backslashes are escaped. */
static const char *esc(char *out, size_t size, const void *name, size_t len)
{
	const unsigned char *p = name;
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < size; i++) {
		unsigned c = p[i];
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

#define ESC_MAX (4 * SFS_NAME_MAX + 8)

/* ---- growable byte arrays ---- */

struct arena {
	uint8_t *p;
	size_t len, cap;
};

static int arena_add(struct arena *a, const void *data, size_t n)
{
	if (n > a->cap - a->len) {
		size_t cap = a->cap ? a->cap : 4096;
		while (cap - a->len < n)
			cap *= 2;
		uint8_t *p = os_realloc(a->p, cap);
		if (!p)
			return -ENOMEM;
		a->p = p;
		a->cap = cap;
	}
	if (n)
		memcpy(a->p + a->len, data, n);
	a->len += n;
	return 0;
}

static void arena_free(struct arena *a)
{
	os_free(a->p);
	*a = (struct arena){0};
}

/* Grow an array of `size`-byte elements to hold at least `want`. */
static int grow(void **arr, size_t *cap, size_t want, size_t size)
{
	if (want <= *cap)
		return 0;
	size_t n = *cap ? *cap : 1024;
	while (n < want)
		n *= 2;
	if (n > SIZE_MAX / size)
		return -ENOMEM;
	void *p = os_realloc(*arr, n * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

/* ---- types and names, as the format states them ---- */

static const char *type_name(unsigned type)
{
	switch (type) {
	case R_INODE: return "inode";
	case R_LINK: return "link";
	case R_XATTR: return "xattr";
	case R_DATA: return "data";
	case R_END: return "end";
	default: return NULL;
	}
}

static bool mode_type_ok(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR: case S_IFREG: case S_IFLNK: case S_IFIFO:
	case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		return true;
	default:
		return false;
	}
}

/* A name as a directory entry: 1..255 bytes, no '/' or NUL, not . or .. */
static bool entry_name_ok(const uint8_t *n, size_t len)
{
	if (len == 0 || len > SFS_NAME_MAX)
		return false;
	if ((len == 1 && n[0] == '.') || (len == 2 && n[0] == '.' && n[1] == '.'))
		return false;
	return !memchr(n, '/', len) && !memchr(n, '\0', len);
}

/* ---- the header ---- */

struct header {
	unsigned major, minor;
	uint32_t size, flags, sector_size;
	struct timespec created;
	uint64_t records, inodes, names, xattrs, data_bytes, file_size;
};

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
 * Reading: records one by one, each checked against the file size and its
 * checksum before anything looks inside it.
 * ====================================================================== */

struct reader {
	struct ierr *e;
	int fd;
	uint64_t size;     /* of the file */
	uint8_t *buf;
	size_t cap;
	uint64_t base;     /* file offset of buf[0] */
	size_t have;       /* bytes of the file in buf */
	uint64_t pos;      /* file offset of the next record */
	uint64_t recno;    /* records read */
	uint64_t skipped;
};

struct rec {
	unsigned type;
	uint32_t len;
	uint64_t no;       /* 1 for the first record after the header */
	uint64_t off;      /* file offset of its header */
	const uint8_t *p;  /* the payload, valid until the next read */
};

static int rd_error(struct reader *r, int err)
{
	return fail(r->e, -err, "read: %s", strerror(err));
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
				return fail(r->e, -EIO, "changed while being read (now shorter)");
			off_t from = (off_t)(r->base + r->have);
			ssize_t got = pread(r->fd, r->buf + r->have, want, from);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0)
				return rd_error(r, errno);
			if (got == 0)
				return fail(r->e, -EIO, "changed while being read (now shorter)");
			r->have += (size_t)got;
		}
	}
	*out = r->buf + (at - r->base);
	return 0;
}

/* "record 37 (data of inode 12)": what a record says it is, for messages. */
static const char *describe(char *buf, size_t size, unsigned type, const uint8_t *p, size_t len)
{
	const char *tn = type_name(type);
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
			return fail(r->e, -EINVAL, "record %llu (offset %llu): cut short", (ull)no,
			            (ull)at);
		const uint8_t *h;
		int rc = rd_need(r, at, REC_HDR, &h);
		if (rc)
			return rc;
		unsigned type = get16(h), flags = get16(h + 2);
		uint32_t len = get32(h + 4), seq = get32(h + 8), crc = get32(h + 12);
		if (len > r->size - at - REC_HDR)
			return fail(r->e, -EINVAL,
			            "record %llu (offset %llu): length %u runs past the end of the "
			            "image",
			            (ull)no, (ull)at, len);
		bool known = type_name(type) != NULL;
		if (known && len > KNOWN_MAX)
			return fail(r->e, -EINVAL, "record %llu (offset %llu, %s): bad length %u",
			            (ull)no, (ull)at, type_name(type), len);
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
			return fail(r->e, -EINVAL, "record %llu (%s): checksum mismatch", (ull)no,
			            what);
		if (seq != (uint32_t)no)
			return fail(r->e, -EINVAL,
			            "record %llu (%s): sequence number %u, expected %u (records "
			            "missing, repeated or reordered)",
			            (ull)no, what, seq, (uint32_t)no);
		if (!known && !(flags & REC_SKIP))
			return fail(r->e, -EINVAL,
			            "record %llu: type 0x%04x is unknown to this version and may "
			            "not be skipped (written by a newer sectorfs?)",
			            (ull)no, type);
		r->recno = no;
		r->pos = at + REC_HDR + len;
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
	ssize_t got;
	do
		got = pread(r->fd, hb, sizeof hb, 0);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return rd_error(r, errno);
	size_t n = (size_t)got;
	if (n < 8 || memcmp(hb, IMG_MAGIC, 8))
		return fail(r->e, -EINVAL, n == 0 ? "empty file, not a sectorfs image"
		                                  : "not a sectorfs image (no magic number)");
	if (n < 12)
		return fail(r->e, -EINVAL, "truncated: %zu bytes, shorter than the header", n);
	h->major = get16(hb + 8);
	h->minor = get16(hb + 10);
	if (h->major != IMG_MAJOR)
		return fail(r->e, -EINVAL, "format version %u.%u is %s this sectorfs reads (%u.x)",
		            h->major, h->minor, h->major > IMG_MAJOR ? "newer than" : "not one",
		            IMG_MAJOR);
	if (n < HDR_SIZE)
		return fail(r->e, -EINVAL, "truncated: %zu bytes, shorter than the header", n);
	h->size = get32(hb + 12);
	if (h->size < HDR_SIZE || h->size > HDR_SIZE_MAX || h->size % 4)
		return fail(r->e, -EINVAL, "bad header size %u", h->size);
	if (h->size > n)
		return fail(r->e, -EINVAL, "truncated: %zu bytes, shorter than the header", n);
	if (img_crc32c(0, hb, h->size - 4) != get32(hb + h->size - 4))
		return fail(r->e, -EINVAL, "header checksum mismatch");
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
	if (h->flags & REQUIRED_FLAGS)
		return fail(r->e, -EINVAL, "needs features 0x%04x that this sectorfs does not have",
		            h->flags & REQUIRED_FLAGS);
	if (h->sector_size < 512 || h->sector_size > 65536 ||
	    (h->sector_size & (h->sector_size - 1)))
		return fail(r->e, -EINVAL, "bad sector size %u in the header", h->sector_size);
	if (h->created.tv_nsec >= 1000000000)
		return fail(r->e, -EINVAL, "bad creation time in the header");
	if (r->size < h->file_size)
		return fail(r->e, -EINVAL,
		            "truncated: the image is %llu bytes, its header says %llu",
		            (ull)r->size, (ull)h->file_size);
	if (r->size > h->file_size)
		return fail(r->e, -EINVAL,
		            "the image is %llu bytes, its header says %llu (extended?)",
		            (ull)r->size, (ull)h->file_size);
	r->pos = h->size;
	return 0;
}

/* ======================================================================
 * Names seen so far, to refuse duplicates: a table of 64-bit keyed hashes
 * with the offset of the record that holds each name; on equal hashes the
 * earlier record is read again to compare.  The key comes from
 * getrandom(), so a crafted image cannot aim for collisions.
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
	ssize_t got;
	do
		got = pread(r->fd, b, sizeof b, (off_t)off);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return rd_error(r, errno);
	const uint8_t *p = b + REC_HDR;
	size_t at, len;
	switch (get16(b)) {
	case R_INODE: *owner = get64(p + 8); len = get16(p + 84); at = INODE_FIXED; break;
	case R_LINK: *owner = get64(p + 8); len = get16(p + 16); at = LINK_FIXED; break;
	case R_XATTR: *owner = get64(p); len = get16(p + 12); at = XATTR_FIXED; break;
	default: return fail(r->e, -EIO, "changed while being read");
	}
	if (len > SFS_NAME_MAX || (size_t)got < REC_HDR + at + len)
		return fail(r->e, -EIO, "changed while being read");
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

/* What the parser keeps per inode: 16 bytes. */
struct vnode {
	uint32_t parent;  /* directories: the parent's number (0 for the root) */
	uint32_t nlink;   /* as the inode record says */
	uint32_t seen;    /* names (directories: subdirectories) found so far */
	uint32_t mode;
};

struct inode_rec {
	uint64_t num, parent;
	uint32_t mode, uid, gid, nlink;
	uint64_t size;
	uint32_t major, minor;
	struct timespec atime, mtime, ctime;
	char name[SFS_NAME_MAX + 1];
	char target[SFS_SYMLINK_MAX + 1];
};

struct decoded {
	unsigned type;
	struct inode_rec *in;     /* R_INODE (points into the parser) */
	uint64_t ino, parent;     /* R_LINK: the inode and the new name's directory */
	char name[XATTR_FIXED + SFS_NAME_MAX + 1]; /* R_LINK, R_XATTR */
	const uint8_t *value;     /* R_XATTR value, R_DATA bytes */
	size_t len;
	uint64_t off;             /* R_DATA */
};

struct parser {
	struct ierr *e;
	struct reader *r;
	struct nameset *names;    /* NULL: duplicates are not looked for (pass 2) */
	struct vnode *v;
	size_t n, cap;            /* inodes defined so far */
	struct inode_rec in;      /* the last inode record */
	/* the current inode: the last one defined, which xattr and data
	 * records belong to */
	uint64_t data_end;        /* where its last data run ended */
	bool had_xattr;
	uint32_t xlist;           /* bytes its xattr names take in a list */
	bool ended;
	struct sfs_image_info info;
	uint64_t need;            /* bytes the contents need at least */
};

#define FAILR(ps, rec, fmt, ...)                                                       \
	fail((ps)->e, -EINVAL, "record %llu (%s): " fmt, (ull)(rec)->no,               \
	     describe(what, sizeof what, (rec)->type, (rec)->p, (rec)->len), ##__VA_ARGS__)

static bool is_dirmode(uint32_t mode)
{
	return (mode & S_IFMT) == S_IFDIR;
}

/* A directory defined before this record: its vnode, or NULL. */
static struct vnode *defined_dir(struct parser *ps, uint64_t num)
{
	if (num == 0 || num > ps->n || !is_dirmode(ps->v[num - 1].mode))
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
	if (!mode_type_ok(in->mode) || (in->mode & ~(uint32_t)(S_IFMT | 07777)))
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
	if (!root && !entry_name_ok(p + INODE_FIXED, nlen))
		return FAILR(ps, rec, "bad name");
	if (tlen && memchr(p + INODE_FIXED + nlen, '\0', tlen))
		return FAILR(ps, rec, "a NUL byte in the symlink target");
	if (!root && ps->names) {
		int rc = ns_add(ps->names, ps->r, 'n', in->parent, p + INODE_FIXED, nlen, rec->off);
		if (rc < 0)
			return rc == -ENOMEM ? fail_nomem(ps->e) : rc;
		char shown[ESC_MAX];
		if (rc)
			return FAILR(ps, rec, "duplicate name \"%s\" in directory %llu",
			             esc(shown, sizeof shown, p + INODE_FIXED, nlen),
			             (ull)in->parent);
	}
	if (grow((void **)&ps->v, &ps->cap, ps->n + 1, sizeof *ps->v))
		return fail_nomem(ps->e);
	ps->v[ps->n] = (struct vnode){.parent = (uint32_t)in->parent, .nlink = in->nlink,
	                              .seen = type == S_IFDIR ? 0 : 1, .mode = in->mode};
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
	if (!entry_name_ok(p + LINK_FIXED, nlen))
		return FAILR(ps, rec, "bad name");
	if (!defined_dir(ps, parent))
		return FAILR(ps, rec, "directory %llu is not a directory defined before it",
		             (ull)parent);
	char shown[ESC_MAX];
	if (ino == 0 || ino > ps->n)
		return FAILR(ps, rec, "dangling name \"%s\": inode %llu is not defined before it",
		             esc(shown, sizeof shown, p + LINK_FIXED, nlen), (ull)ino);
	if (is_dirmode(ps->v[ino - 1].mode)) {
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
			return rc == -ENOMEM ? fail_nomem(ps->e) : rc;
		if (rc)
			return FAILR(ps, rec, "duplicate name \"%s\" in directory %llu",
			             esc(shown, sizeof shown, p + LINK_FIXED, nlen), (ull)parent);
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
	esc(shown, sizeof shown, d->name, nlen);
	if (why)
		return FAILR(ps, rec, "%s (\"%s\")", why, shown);
	ps->xlist += (uint32_t)nlen + 1;
	if (ps->xlist > SFS_XATTR_LIST_MAX)
		return FAILR(ps, rec, "the attribute names exceed %u bytes", SFS_XATTR_LIST_MAX);
	if (ps->names) {
		int rc = ns_add(ps->names, ps->r, 'x', ino, p + XATTR_FIXED, nlen, rec->off);
		if (rc < 0)
			return rc == -ENOMEM ? fail_nomem(ps->e) : rc;
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

static int parse_data(struct parser *ps, const struct rec *rec, struct decoded *d)
{
	char what[64];
	const uint8_t *p = rec->p;
	if (rec->len <= DATA_FIXED)
		return FAILR(ps, rec, "bad length %u", rec->len);
	uint64_t ino = get64(p), off = get64(p + 8), len = rec->len - DATA_FIXED;
	if (ino == 0 || ino != ps->n)
		return FAILR(ps, rec, "not after its inode's record");
	if ((ps->v[ino - 1].mode & S_IFMT) != S_IFREG)
		return FAILR(ps, rec, "data for an inode that is not a regular file");
	if (ps->had_xattr)
		return FAILR(ps, rec, "data after the inode's xattrs");
	if (off < ps->data_end)
		return FAILR(ps, rec,
		             "data at %llu overlaps or precedes the run before it (ending at "
		             "%llu)",
		             (ull)off, (ull)ps->data_end);
	if (off > ps->in.size || len > ps->in.size - off)
		return FAILR(ps, rec, "data at %llu+%llu beyond the file size %llu", (ull)off,
		             (ull)len, (ull)ps->in.size);
	ps->data_end = off + len;
	ps->info.data_bytes += len;
	ps->need += len;
	d->ino = ino;
	d->off = off;
	d->value = p + DATA_FIXED;
	d->len = (size_t)len;
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
static int parse_next(struct parser *ps, struct decoded *d)
{
	struct rec rec = {0};
	int rc = rd_next(ps->r, &rec);
	if (rc <= 0)
		return rc;
	if (ps->ended)
		return fail(ps->e, -EINVAL, "record %llu comes after the end record", (ull)rec.no);
	if (ps->n == 0 && rec.type != R_INODE)
		return fail(ps->e, -EINVAL, "record %llu (%s): the first record must be the root's",
		            (ull)rec.no, type_name(rec.type));
	*d = (struct decoded){.type = rec.type};
	switch (rec.type) {
	case R_INODE: rc = parse_inode(ps, &rec, d); break;
	case R_LINK: rc = parse_link(ps, &rec, d); break;
	case R_XATTR: rc = parse_xattr(ps, &rec, d); break;
	case R_DATA: rc = parse_data(ps, &rec, d); break;
	default: rc = parse_end(ps, &rec); break;
	}
	return rc ? rc : 1;
}

/* After the last record: the end record was there, every link count and
 * the header's totals agree. */
static int parse_finish(struct parser *ps, const struct header *h)
{
	if (!ps->ended)
		return fail(ps->e, -EINVAL, "no end record");
	for (size_t i = 0; i < ps->n; i++) {
		const struct vnode *v = &ps->v[i];
		if (is_dirmode(v->mode) && v->nlink != 2 + v->seen)
			return fail(ps->e, -EINVAL,
			            "directory %zu: link count %u, but %u subdirectories", i + 1,
			            v->nlink, v->seen);
		if (!is_dirmode(v->mode) && v->nlink != v->seen)
			return fail(ps->e, -EINVAL, "inode %zu: link count %u, but %u names", i + 1,
			            v->nlink, v->seen);
	}
	const struct sfs_image_info *i = &ps->info;
	if (h->records != ps->r->recno || h->inodes != i->inodes || h->names != i->names ||
	    h->xattrs != i->xattrs || h->data_bytes != i->data_bytes)
		return fail(ps->e, -EINVAL, "the header's totals do not match the records");
	return 0;
}

static void parser_free(struct parser *ps)
{
	os_free(ps->v);
	ps->v = NULL;
	ps->n = ps->cap = 0;
}

/* ---- opening and verifying ---- */

struct image {
	struct ierr e;
	struct reader r;
	struct header h;
};

static int image_open(struct image *im, const char *path, char *err, size_t errlen)
{
	memset(im, 0, sizeof *im);
	im->r.fd = -1;
	im->e = (struct ierr){.path = path, .buf = err, .len = errlen};
	if (err && errlen)
		err[0] = '\0';
	im->r.e = &im->e;
	im->r.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (im->r.fd < 0)
		return fail(&im->e, -errno, "%s", strerror(errno));
	struct stat st;
	if (fstat(im->r.fd, &st) != 0)
		return fail(&im->e, -errno, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(&im->e, -EINVAL, "not a regular file");
	im->r.size = (uint64_t)st.st_size;
	im->r.cap = im->r.size < IO_BUF ? (size_t)im->r.size : IO_BUF;
	im->r.buf = os_malloc(im->r.cap ? im->r.cap : 1);
	if (!im->r.buf)
		return fail_nomem(&im->e);
	posix_fadvise(im->r.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return rd_header(&im->r, &im->h);
}

static void image_close(struct image *im)
{
	if (im->r.fd >= 0)
		close(im->r.fd);
	os_free(im->r.buf);
	im->r.fd = -1;
	im->r.buf = NULL;
}

static void image_rewind(struct image *im)
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
	if (getrandom(&k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k)
		k = os_monotonic_ns() ^ (uint64_t)(uintptr_t)&k;
	return k;
}

/* Pass 1: every record and every rule, nothing built. */
static int verify(struct image *im, struct parser *ps)
{
	struct nameset ns = {.key = random_key()};
	*ps = (struct parser){.e = &im->e, .r = &im->r, .names = &ns};
	struct decoded d;
	int rc;
	while ((rc = parse_next(ps, &d)) > 0)
		;
	if (rc == 0)
		rc = parse_finish(ps, &im->h);
	os_free(ns.s);
	return rc;
}

int sfs_image_check(const char *path, struct sfs_image_info *info, char *err, size_t errlen)
{
	struct image im;
	struct parser ps = {0};
	int rc = image_open(&im, path, err, errlen);
	if (rc == 0)
		rc = verify(&im, &ps);
	if (rc == 0)
		fill_info(&im, &ps, info);
	parser_free(&ps);
	image_close(&im);
	return rc;
}

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
	                   : esc(shown, sizeof shown, b->cur.name, strlen(b->cur.name));
	return fail(b->e, rc, "inode %llu (\"%s\" in directory %llu): %s: %s", (ull)b->cur.num,
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
	if (grow((void **)&b->map, &b->mapcap, in->num, sizeof *b->map))
		return fail_nomem(b->e);
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
		if (grow((void **)&b->times, &b->timescap, b->ntimes + 1, sizeof *b->times))
			return fail_nomem(b->e);
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
		if (arena_add(&b->acls, h, sizeof h) || arena_add(&b->acls, d->value, d->len))
			return fail_nomem(b->e);
		return 0;
	}
	rc = sfs_setxattr(b->fs, b->cr, b->ino, d->name, d->value, d->len, 0);
	if (rc) {
		char what[ESC_MAX + 16], shown[ESC_MAX];
		snprintf(what, sizeof what, "setxattr %s", esc(shown, sizeof shown, d->name,
		                                                  strlen(d->name)));
		return build_fail(b, rc, what);
	}
	return 0;
}

static int build_data(struct builder *b, const struct decoded *d)
{
	if (!b->fh)
		return fail(b->e, -EIO, "changed while being read");
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

static int build_link(struct builder *b, const struct decoded *d)
{
	int rc = sfs_link(b->fs, b->cr, b->map[d->ino - 1], b->map[d->parent - 1], d->name, NULL);
	char shown[ESC_MAX];
	if (rc)
		return fail(b->e, rc, "inode %llu: link as \"%s\" in directory %llu: %s",
		            (ull)d->ino, esc(shown, sizeof shown, d->name, strlen(d->name)),
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
			rc = fail(b->e, rc, "directory (inode %llu here): default ACL: %s",
			          (ull)ino, strerror(-rc));
		off += 12 + len;
	}
	for (size_t i = 0; rc == 0 && i < b->ntimes; i++) {
		const struct later_times *t = &b->times[i];
		rc = set_times(b->fs, b->cr, t->ino, t->atime, t->mtime, t->ctime);
		if (rc)
			rc = fail(b->e, rc, "setting times (inode %llu here): %s", (ull)t->ino,
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
	arena_free(&b->acls);
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
		if (arena_add(&rs->xattrs, h, 8) || arena_add(&rs->xattrs, list + off, nl) ||
		    arena_add(&rs->xattrs, value, (size_t)v)) {
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
	if (arena_add(&nl->a, "/", 1) || arena_add(&nl->a, name, strlen(name) + 1)) {
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
		arena_free(&nl.a);
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
		return fail(e, rc, "statfs: %s", strerror(-rc));
	if (sv.f_files) {
		uint64_t free_inodes = sv.f_ffree, want = ps->info.inodes - 1;
		if (want > free_inodes)
			return fail(e, -ENOSPC, "image has %llu inodes, nr_inodes= allows %llu",
			            (ull)ps->info.inodes, (ull)sv.f_files);
	}
	if (sv.f_blocks) {
		uint64_t allows = (uint64_t)sv.f_bfree * sv.f_frsize;
		if (ps->need > allows)
			return fail(e, -ENOSPC, "image needs %.1f MiB, size= allows %.1f MiB",
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
	int rc = image_open(&im, path, err, errlen);
	b.e = &im.e;
	if (rc)
		goto out;
	struct sfs_stats st;
	sfs_get_stats(fs, &st);
	if (st.inodes != 1) {
		rc = fail(&im.e, -ENOTEMPTY,
		          "the filesystem to load into is not empty (%llu inodes)",
		          (ull)st.inodes);
		goto out;
	}
	rc = verify(&im, &ps);
	if (rc == 0)
		rc = check_room(fs, &im.e, &ps);
	if (rc)
		goto out;
	rc = root_save(fs, &rs);
	if (rc) {
		rc = fail(&im.e, rc, "reading the root's attributes: %s", strerror(-rc));
		goto out;
	}
	/* Pass 2: the same parser, now building. */
	const uint64_t inodes = ps.info.inodes;
	parser_free(&ps);
	ps = (struct parser){.e = &im.e, .r = &im.r};
	image_rewind(&im);
	if (grow((void **)&b.map, &b.mapcap, inodes, sizeof *b.map)) {
		rc = fail_nomem(&im.e);
		goto out;
	}
	struct decoded d;
	while ((rc = parse_next(&ps, &d)) > 0) {
		switch (d.type) {
		case R_INODE: rc = build_inode(&b, d.in); break;
		case R_LINK: rc = build_link(&b, &d); break;
		case R_XATTR: rc = build_xattr(&b, &d); break;
		case R_DATA: rc = build_data(&b, &d); break;
		default: rc = build_end(&b); break;
		}
		if (rc)
			break;
	}
	if (rc == 0)
		rc = parse_finish(&ps, &im.h);
	if (rc) {
		if (b.fh)
			sfs_release(fs, b.fh);
		b.fh = NULL;
		rollback(fs, &rs);
	}
out:
	builder_free(&b);
	parser_free(&ps);
	arena_free(&rs.xattrs);
	image_close(&im);
	return rc;
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

static int w_write(struct writer *w, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t got = pwritev(w->fd, iov, n, (off_t)w->off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return fail(w->e, -errno, "writing: %s", strerror(errno));
		if (got == 0)
			return fail(w->e, -EIO, "writing: no progress");
		w->off += (uint64_t)got;
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
	/* Start writeback as we go, so the final fsync has little left. */
	if (w->off - w->synced >= SYNC_EVERY) {
		sync_file_range(w->fd, (off_t)w->synced, (off_t)(w->off - w->synced),
		                SYNC_FILE_RANGE_WRITE);
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
	return arena_add(a, h, 9) || arena_add(a, name, len) ? -ENOMEM : 0;
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
	return arena_add(a, h, sizeof h) || arena_add(a, name, nl) || arena_add(a, value, len)
	               ? -ENOMEM
	               : 0;
}

static int put_data(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct saver *sv = ctx;
	if (off < sv->cur_end || off > sv->cur_size || len > sv->cur_size - off)
		return -EIO; /* the snapshot broke its promise: refuse to write it */
	for (size_t done = 0; done < len;) {
		size_t n = len - done < RUN_MAX ? len - done : RUN_MAX;
		uint8_t f[DATA_FIXED];
		put64(f, sv->cur);
		put64(f + 8, off + done);
		int rc = w_record(&sv->w, R_DATA, f, sizeof f, (const uint8_t *)buf + done, n);
		if (rc)
			return rc;
		done += n;
	}
	sv->cur_end = off + len;
	sv->info.data_bytes += len;
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
		return fail_nomem(sv->e);
	if (sv->e->set)
		return rc;
	return fail(sv->e, rc, "reading %s of inode %llu: %s", what, (ull)ino, strerror(-rc));
}

/* The inode record of snapshot inode i (first named `name` in directory
 * `parent`), then its data and its xattrs. */
static int save_inode(struct saver *sv, size_t i, uint32_t parent, const char *name, size_t nlen)
{
	struct snap_inode si;
	snap_inode(sv->s, i, &si);
	uint32_t type = si.mode & S_IFMT;
	if (!mode_type_ok(si.mode))
		return fail(sv->e, -EIO, "inode %llu has an unknown type", (ull)si.ino);
	uint32_t num = ++sv->next;
	sv->ix[i].num = num;
	struct target t = {.len = 0};
	if (type == S_IFLNK) {
		int rc = snap_data(sv->s, i, put_target, &t);
		if (rc)
			return snap_failed(sv, rc, "the target", si.ino);
		if (t.len != si.size || t.len == 0)
			return fail(sv->e, -EIO, "symlink %llu: target of %zu bytes, size %llu",
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
		rc = snap_data(sv->s, i, put_data, sv);
		if (rc)
			return snap_failed(sv, rc, "the data", si.ino);
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
			return fail(sv->e, -EIO,
			            "directory %llu names inode %llu, not in the snapshot",
			            (ull)sv->ix[d].ino, (ull)ino);
		struct sinode *c = &sv->ix[j];
		sv->info.names++;
		if (c->num == 0) {
			if (is_dirmode(c->mode))
				sv->ix[d].names++;
			else
				c->names++;
			rc = save_inode(sv, j, sv->ix[d].num, name, nlen);
			if (rc)
				return rc;
			continue;
		}
		if (is_dirmode(c->mode))
			return fail(sv->e, -EIO, "directory %llu is named twice in the snapshot",
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
		return fail(sv->e, -EFBIG, "%zu inodes: more than an image can hold", sv->n);
	sv->ix = os_calloc(sv->n, sizeof *sv->ix);
	sv->queue = os_malloc(sv->n * sizeof *sv->queue);
	if (!sv->ix || !sv->queue)
		return fail_nomem(sv->e);
	for (size_t i = 0; i < sv->n; i++) {
		struct snap_inode si;
		snap_inode(sv->s, i, &si);
		sv->ix[i] = (struct sinode){.ino = si.ino, .nlink = si.nlink, .mode = si.mode};
		if (i && si.ino <= sv->ix[i - 1].ino)
			return fail(sv->e, -EIO, "the snapshot's inodes are out of order");
	}
	if (sv->ix[0].ino != SFS_ROOT_INO || !is_dirmode(sv->ix[0].mode))
		return fail(sv->e, -EIO, "the snapshot does not start with the root");
	int rc = save_inode(sv, 0, 0, "", 0);
	while (rc == 0 && sv->qhead < sv->qtail)
		rc = save_dir(sv, sv->queue[sv->qhead++]);
	if (rc)
		return rc;
	/* Never write an image the loader would refuse. */
	if (sv->next != sv->n)
		return fail(sv->e, -EIO, "the snapshot has %zu inodes, %u of them reachable", sv->n,
		            sv->next);
	for (size_t i = 0; i < sv->n; i++) {
		const struct sinode *c = &sv->ix[i];
		uint32_t want = is_dirmode(c->mode) ? 2 + c->names : c->names;
		if (c->nlink != want)
			return fail(sv->e, -EIO,
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
	struct saver sv = {.e = &e, .w = {.e = &e, .fd = -1}};
	int rc = temp_names(path, &tmp, &dir);
	if (rc) {
		rc = fail(&e, rc, "%s", strerror(-rc));
		goto out;
	}
	sv.w.fd = mkostemp(tmp, O_CLOEXEC);
	if (sv.w.fd < 0) {
		rc = fail(&e, -errno, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	created = true;
	/* A new image holds the filesystem's contents: 0600 (mkostemp's),
	 * unless an image is already there, whose mode and owner carry over. */
	struct stat old;
	if (stat(path, &old) == 0 && S_ISREG(old.st_mode)) {
		if (geteuid() == 0 && fchown(sv.w.fd, old.st_uid, old.st_gid) != 0) {
			rc = fail(&e, -errno, "chown %s: %s", tmp, strerror(errno));
			goto out;
		}
		if (fchmod(sv.w.fd, old.st_mode & 07777) != 0) {
			rc = fail(&e, -errno, "chmod %s: %s", tmp, strerror(errno));
			goto out;
		}
	}
	sv.w.cap = IO_BUF;
	sv.w.buf = os_malloc(sv.w.cap);
	if (!sv.w.buf) {
		rc = fail_nomem(&e);
		goto out;
	}
	sv.w.off = sv.w.synced = HDR_SIZE;
	struct statvfs svfs;
	rc = sfs_statfs(fs, &svfs);
	if (rc) {
		rc = fail(&e, rc, "statfs: %s", strerror(-rc));
		goto out;
	}
	struct header h = {.major = IMG_MAJOR, .minor = IMG_MINOR, .size = HDR_SIZE,
	                   .sector_size = (uint32_t)svfs.f_bsize};
	clock_gettime(CLOCK_REALTIME, &h.created);
	rc = snap_begin(fs, &sv.s);
	if (rc) {
		rc = fail(&e, rc, "snapshot: %s", strerror(-rc));
		goto out;
	}
	sv.info.held_ns = snap_held_ns(sv.s);
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
	uint8_t hb[HDR_SIZE];
	header_encode(&h, hb);
	if (pwrite(sv.w.fd, hb, sizeof hb, 0) != (ssize_t)sizeof hb) {
		rc = fail(&e, errno ? -errno : -EIO, "writing the header: %s", strerror(errno));
		goto out;
	}
	if (fsync(sv.w.fd) != 0) {
		rc = fail(&e, -errno, "fsync: %s", strerror(errno));
		goto out;
	}
	int fd = sv.w.fd;
	sv.w.fd = -1;
	if (close(fd) != 0) {
		rc = fail(&e, -errno, "close: %s", strerror(errno));
		goto out;
	}
	if (rename(tmp, path) != 0) {
		rc = fail(&e, -errno, "rename from %s: %s", tmp, strerror(errno));
		goto out;
	}
	created = false; /* renamed: nothing to remove any more */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		rc = fail(&e, -errno, "syncing the directory %s: %s", dir, strerror(errno));
	if (dfd >= 0)
		close(dfd);
	if (rc == 0 && info) {
		*info = sv.info;
		info->version_major = IMG_MAJOR;
		info->version_minor = IMG_MINOR;
		info->sector_size = h.sector_size;
		info->created = h.created;
		info->image_bytes = h.file_size;
		info->records = h.records;
	}
out:
	if (sv.s)
		snap_end(sv.s);
	if (sv.w.fd >= 0)
		close(sv.w.fd);
	if (created)
		unlink(tmp);
	os_free(tmp);
	os_free(dir);
	os_free(sv.w.buf);
	os_free(sv.ix);
	os_free(sv.queue);
	arena_free(&sv.ents);
	arena_free(&sv.xattrs);
	return rc;
}
