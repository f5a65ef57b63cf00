/* SPDX-License-Identifier: MIT */
/* protocol.c - requests newer than libfuse 3.14 (prefix pt_).
 *
 * libfuse 3.14 answers ENOSYS to every request newer than its protocol
 * (7.38), and the kernel then stops sending them: O_TMPFILE fails with
 * EOPNOTSUPP, and a copy_file_range first costs a refused
 * FUSE_COPY_FILE_RANGE_64.  Each such request here is the twin of an
 * older one libfuse decodes, so the table below says which, and the two
 * hooks around libfuse do the rest, on the same thread (every op of the
 * daemon answers before it returns):
 *
 * - pt_request() rewrites the request in place as its twin and notes it
 *   (thread-local, with its unique);
 * - pt_reply() converts the twin's answer to the form the kernel expects
 *   for the request it sent.
 *
 * The rows:
 * - FUSE_TMPFILE (7.37) is FUSE_CREATE with the name "/": op_create asks
 *   pt_tmpfile() and makes an unnamed file (sfs_tmpfile), same reply.
 * - FUSE_STATX (7.39; the kernel sends it when statx() asks for the
 *   birth time) is FUSE_GETATTR, whose answer gains the birth time
 *   (sfs_birth_time()) in the statx form; the rest is getattr's, through
 *   op_getattr.  The kernel then caches the birth time with the rest.
 * - FUSE_COPY_FILE_RANGE_64 (7.45) is FUSE_COPY_FILE_RANGE whose reply
 *   counts in 64 bits: the request is cut to what a 32-bit count can say
 *   (4 GiB less a page, as the kernel does for the old request: a
 *   copy_file_range may copy less than asked) and the count widened.
 *   The copy itself is op_copy_file_range's, the same path as the old
 *   request.
 */
#include "protocol.h"

#include <linux/fuse.h>
#include <linux/stat.h>
#include <stdint.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "fuse_abi.h"

struct row {
	uint32_t opcode; /* as the kernel sends it */
	uint32_t as;     /* the twin libfuse 3.14 decodes */
	void (*request)(void *arg);
	/* The twin's answer (after the header) to the kernel's form in
	 * out: its length, or 0 to pass the answer on as it is. */
	size_t (*reply)(const void *arg, size_t len, void *out);
};

static _Thread_local struct {
	const struct row *row; /* NULL: the request is libfuse's own */
	uint64_t unique;
	uint64_t nodeid;
} cur;

static struct sfs_fs *filesystem;

static struct abi_sx_time sx_time(uint64_t s, uint32_t ns)
{
	return (struct abi_sx_time){.tv_sec = (int64_t)s, .tv_nsec = ns};
}

static size_t statx_reply(const void *arg, size_t len, void *out)
{
	struct timespec birth;
	if (len < sizeof(struct fuse_attr_out) || !filesystem ||
	    sfs_birth_time(filesystem, cur.nodeid, &birth) != 0)
		return 0;
	const struct fuse_attr_out *in = arg;
	const struct fuse_attr *a = &in->attr;
	struct abi_statx_out *o = out;
	memset(o, 0, sizeof *o);
	o->attr_valid = in->attr_valid;
	o->attr_valid_nsec = in->attr_valid_nsec;
	struct abi_statx *x = &o->stat;
	x->mask = STATX_BASIC_STATS | STATX_BTIME;
	x->blksize = a->blksize;
	x->nlink = a->nlink;
	x->uid = a->uid;
	x->gid = a->gid;
	x->mode = (uint16_t)a->mode;
	x->ino = a->ino;
	x->size = a->size;
	x->blocks = a->blocks;
	x->atime = sx_time(a->atime, a->atimensec);
	x->mtime = sx_time(a->mtime, a->mtimensec);
	x->ctime = sx_time(a->ctime, a->ctimensec);
	x->btime = sx_time((uint64_t)birth.tv_sec, (uint32_t)birth.tv_nsec);
	x->rdev_major = major((dev_t)a->rdev);
	x->rdev_minor = minor((dev_t)a->rdev);
	return sizeof *o;
}

#define COPY_MAX_32 0xfffff000u /* a 32-bit count, page aligned */

static void copy_request(void *arg)
{
	struct fuse_copy_file_range_in *in = arg;
	if (in->len > COPY_MAX_32)
		in->len = COPY_MAX_32;
}

static size_t copy_reply(const void *arg, size_t len, void *out)
{
	if (len < sizeof(struct fuse_write_out))
		return 0;
	const struct fuse_write_out *w = arg;
	struct abi_copy_file_range_out64 *o = out;
	o->bytes_copied = w->size;
	return sizeof *o;
}

static const struct row table[] = {
        {ABI_OP_TMPFILE, FUSE_CREATE, NULL, NULL},
        {ABI_OP_STATX, FUSE_GETATTR, NULL, statx_reply},
        {ABI_OP_COPY_FILE_RANGE_64, FUSE_COPY_FILE_RANGE, copy_request, copy_reply},
};

void pt_install(struct sfs_fs *fs)
{
	filesystem = fs;
}

void pt_request(void *msg, size_t len)
{
	struct fuse_in_header *h = msg;
	cur.row = NULL;
	if (len < sizeof *h)
		return;
	for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
		if (table[i].opcode != h->opcode)
			continue;
		cur.row = &table[i];
		cur.unique = h->unique;
		cur.nodeid = h->nodeid;
		h->opcode = table[i].as;
		if (table[i].request)
			table[i].request(h + 1);
		return;
	}
}

bool pt_tmpfile(void)
{
	return cur.row && cur.row->opcode == ABI_OP_TMPFILE;
}

bool pt_reply(const struct iovec *iov, int count, struct iovec *out, void *room)
{
	const struct fuse_out_header *h = iov[0].iov_base;
	if (!cur.row || count < 1 || iov[0].iov_len != sizeof *h || h->unique != cur.unique)
		return false;
	const struct row *row = cur.row;
	cur.row = NULL;
	if (!row->reply || h->error || count != 2 || iov[1].iov_len > PT_ROOM / 2)
		return false;
	struct fuse_out_header *nh = room;
	size_t n = row->reply(iov[1].iov_base, iov[1].iov_len, nh + 1);
	if (!n)
		return false;
	*nh = *h;
	nh->len = (uint32_t)(sizeof *nh + n);
	out[0] = (struct iovec){.iov_base = nh, .iov_len = sizeof *nh + n};
	return true;
}
