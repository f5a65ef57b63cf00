/* SPDX-License-Identifier: MIT */
/* fuse_abi.h - the parts of the kernel's FUSE protocol newer than Debian
 * 12's <linux/fuse.h> (protocol 7.38) that the daemon speaks itself.
 *
 * Written from the kernel's documented ABI (include/uapi/linux/fuse.h,
 * Documentation/filesystems/fuse-io-uring.rst); the names carry our own
 * abi_ prefix so that a newer system header never clashes with them.
 * Every layout is fixed by the kernel: the static assertions below keep
 * the sizes honest.
 */
#ifndef SECTORFS_FUSE_ABI_H
#define SECTORFS_FUSE_ABI_H

#include <assert.h>
#include <stdint.h>

/* INIT flags beyond the first 32 travel in flags2 (with FUSE_INIT_EXT). */
#define ABI_FLAGS2(bit) (1u << ((bit) - 32))
#define ABI_DIRECT_IO_ALLOW_MMAP ABI_FLAGS2(36) /* Linux 6.6 */
#define ABI_OVER_IO_URING ABI_FLAGS2(41)        /* Linux 6.14 */

/* ---- FUSE over io_uring (protocol 7.42) ---- */

/* Every ring entry is two buffers: this header, and a payload buffer of
 * at least max(8 KiB, max_write, max_pages pages). */
struct abi_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;  /* the request's unique: given back at commit */
	uint32_t payload_sz; /* bytes of the payload buffer in use */
	uint32_t padding;
	uint64_t reserved;
};

struct abi_uring_req_header {
	char in_out[128]; /* fuse_in_header in, fuse_out_header out */
	char op_in[128];  /* the request's first argument (fuse_write_in, ...) */
	struct abi_uring_ent_in_out ent;
};
static_assert(sizeof(struct abi_uring_req_header) == 288, "the kernel's 288-byte header");

enum {
	ABI_URING_CMD_REGISTER = 1,         /* hand an entry to a queue */
	ABI_URING_CMD_COMMIT_AND_FETCH = 2, /* answer its request, take the next */
};

/* The command area of a 128-byte SQE. */
struct abi_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid; /* the queue: a possible CPU's number */
	uint8_t padding[6];
};
static_assert(sizeof(struct abi_uring_cmd_req) <= 80, "fits the SQE128 command area");

/* ---- requests newer than libfuse 3.14 ---- */

#define ABI_OP_TMPFILE 51             /* 7.37: like CREATE, with no name */
#define ABI_OP_STATX 52               /* 7.39 */
#define ABI_OP_COPY_FILE_RANGE_64 53  /* 7.45: a 64-bit count in the reply */

struct abi_statx_in {
	uint32_t getattr_flags;
	uint32_t reserved;
	uint64_t fh;
	uint32_t sx_flags;
	uint32_t sx_mask;
};

struct abi_sx_time {
	int64_t tv_sec;
	uint32_t tv_nsec;
	int32_t reserved;
};

struct abi_statx {
	uint32_t mask;
	uint32_t blksize;
	uint64_t attributes;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint16_t mode;
	uint16_t spare0;
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	uint64_t attributes_mask;
	struct abi_sx_time atime, btime, ctime, mtime;
	uint32_t rdev_major, rdev_minor;
	uint32_t dev_major, dev_minor;
	uint64_t spare2[14];
};
static_assert(sizeof(struct abi_statx) == 256, "the kernel's fuse_statx");

struct abi_statx_out {
	uint64_t attr_valid; /* seconds the kernel may keep it */
	uint32_t attr_valid_nsec;
	uint32_t flags;
	uint64_t spare[2];
	struct abi_statx stat;
};

struct abi_copy_file_range_out64 {
	uint64_t bytes_copied;
};

#endif
