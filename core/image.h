/* SPDX-License-Identifier: MIT */
/* image.h - what the image files share (internal; prefix img_).
 *
 * An image (docs/image-format.md) is written by image_save.c and read by
 * image_read.c, which image_load.c drives twice: once to verify the whole
 * file, once to build from it.  This header holds what they agree on: the
 * format's constants and little-endian fields, the first-error-wins
 * message every failure ends as, growable arrays, the header, and the
 * reader and parser that the loader runs.  Tests and the fuzzer reach
 * img_crc32c() here too.
 *
 * The format checksums everything with CRC32C (Castagnoli).  crc32c.c
 * computes it with the SSE4.2 instruction where the CPU has one and with
 * slicing-by-8 tables elsewhere; tests compare both against each other and
 * against a bitwise reference, so a machine that always takes one path
 * still proves the other.
 */
#ifndef SECTORFS_IMAGE_H
#define SECTORFS_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "sectorfs.h"

/* ---- the format (docs/image-format.md) ---- */

#define IMG_MAGIC "\x89SFSIMG\n"
#define IMG_MAJOR 1
#define IMG_MINOR 1
#define HDR_SIZE 96u          /* the header of version 1.0 */
#define HDR_SIZE_MAX 4096u    /* a later 1.x may grow it, up to this */
#define REQUIRED_FLAGS 0xffffu /* header flags a reader must understand */
#define FLAG_SHARES 1u        /* required, 1.1: the image has share records */
#define KNOWN_FLAGS FLAG_SHARES
#define REC_HDR 16u
#define REC_SKIP 1u           /* record flag: a reader that does not know the type skips it */

enum { R_INODE = 1, R_LINK = 2, R_XATTR = 3, R_DATA = 4, R_END = 5, R_SHARE = 6 };

#define INODE_FIXED 86u
#define LINK_FIXED 18u
#define XATTR_FIXED 14u
#define DATA_FIXED 16u
#define SHARE_SIZE 40u
#define END_SIZE (13u * 8u)
#define RUN_MAX ((size_t)1 << 20)         /* bytes of data in one record */
#define KNOWN_MAX (DATA_FIXED + RUN_MAX)  /* the longest record a 1.x reader knows */
#define MAX_INODES 0xfffffffeull          /* numbers fit 32 bits in the loader */

#define IO_BUF ((size_t)4 << 20)           /* reads and writes go through one such buffer */

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

/* ---- CRC32C (crc32c.c) ---- */

/* CRC32C of buf, continuing from crc (0 to start): crc32c(crc32c(0, a), b)
 * is the CRC of a followed by b.  The fastest implementation available. */
uint32_t img_crc32c(uint32_t crc, const void *buf, size_t len);
/* The same with the portable tables, whatever the CPU. */
uint32_t img_crc32c_soft(uint32_t crc, const void *buf, size_t len);

/* ---- errors, names, arrays (image_format.c) ---- */

typedef unsigned long long ull;

/* Where an image operation reports its first failure: "PATH: problem" in
 * buf (one line); later failures keep the first. */
struct ierr {
	const char *path;
	char *buf;
	size_t len;
	bool set;
};

/* Record the failure (if it is the first) and return rc. */
int img_fail(struct ierr *e, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int img_fail_nomem(struct ierr *e);

/* A name as it goes into a message (control characters, quotes and
 * backslashes escaped); out must hold ESC_MAX bytes for any name. */
#define ESC_MAX (4 * SFS_NAME_MAX + 8)
const char *img_esc(char *out, size_t size, const void *name, size_t len);

/* A growable byte array. */
struct arena {
	uint8_t *p;
	size_t len, cap;
};
int img_arena_add(struct arena *a, const void *data, size_t n);
void img_arena_free(struct arena *a);
/* Grow an array of `size`-byte elements to hold at least `want`. */
int img_grow(void **arr, size_t *cap, size_t want, size_t size);

/* A record type's name ("inode", ...), NULL for a type this version does
 * not know. */
const char *img_type_name(unsigned type);
/* A mode of one of the seven kinds of inode. */
bool img_mode_ok(uint32_t mode);
/* A name as a directory entry: 1..255 bytes, no '/' or NUL, not . or .. */
bool img_name_ok(const uint8_t *n, size_t len);
static inline bool img_is_dir(uint32_t mode)
{
	return (mode & S_IFMT) == S_IFDIR;
}

/* ---- the header ---- */

struct header {
	unsigned major, minor;
	uint32_t size, flags, sector_size;
	struct timespec created;
	uint64_t records, inodes, names, xattrs, data_bytes, file_size;
};

/* ---- reading and verifying (image_read.c) ---- */

/* Records one by one from a file, each checked against the file size and
 * its checksum before anything looks inside it. */
struct reader {
	struct ierr *e;
	int fd;
	uint64_t size;     /* of the file */
	uint8_t *buf;
	size_t cap;
	uint64_t base;     /* file offset of buf[0] */
	size_t have;       /* bytes of the file in buf */
	uint64_t pos;      /* file offset of the next record */
	uint32_t flags;    /* the header's */
	uint64_t recno;    /* records read */
	uint64_t skipped;
	struct sfs_fs *fs; /* reports progress (phase) to it; NULL: to none */
	unsigned phase;    /* enum sfs_image_phase */
};

/* What the parser keeps per inode: 24 bytes. */
struct vnode {
	uint32_t parent;  /* directories: the parent's number (0 for the root) */
	uint32_t nlink;   /* as the inode record says */
	uint32_t seen;    /* names (directories: subdirectories) found so far */
	uint32_t mode;
	uint64_t size;    /* regular files: as the inode record says (share sources) */
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
	uint64_t off;             /* R_DATA, R_SHARE */
	uint64_t from, from_off, share_len; /* R_SHARE: the source inode, where, how much */
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

/* An image file open for reading, its header read and checked. */
struct image {
	struct ierr e;
	struct reader r;
	struct header h;
};

/* Open `path` and check its header: 0 or -errno with the message in err. */
int img_open(struct image *im, const char *path, char *err, size_t errlen);
void img_close(struct image *im);
/* Back to the first record, for a second pass. */
void img_rewind(struct image *im);
/* Pass 1: every record and every rule, nothing built.  *ps holds the
 * totals afterwards (img_parser_free() it). */
int img_verify(struct image *im, struct parser *ps);
/* The next record, checked and decoded: 1, 0 at the end, or -errno. */
int img_parse_next(struct parser *ps, struct decoded *d);
/* After the last record: the end record was there, every link count and
 * the header's totals agree. */
int img_parse_finish(struct parser *ps, const struct header *h);
void img_parser_free(struct parser *ps);

#endif
