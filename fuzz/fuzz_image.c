/* SPDX-License-Identifier: MIT */
/* fuzz_image.c - a libFuzzer target over the image loader.
 *
 * Each input is written to a memfd and given to sfs_image_check(), then to
 * sfs_image_load() into a fresh filesystem with small limits (16 MiB,
 * 10000 inodes), so that a crafted image can at most fill those.  Beyond
 * "no crash, no leak, no sanitizer report", three properties are checked:
 *
 *   - check and load agree: an image check refuses, load refuses with the
 *     same errno and the same message (load verifies with the same code
 *     before it builds anything);
 *   - an image check accepts loads, unless it does not fit the limits
 *     (ENOSPC) or memory runs out: any other failure while building means
 *     the verifier let through something the filesystem refuses;
 *   - after a refused load the filesystem holds only its root, and in every
 *     case sfs_check() finds it consistent.
 *
 * Checksums would stop almost every mutation at the first record, so each
 * input is also tried "repaired": every CRC, sequence number and total
 * recomputed, as an honest writer would have, so that mutations of the
 * structure itself reach the verifier's rules and the builder.
 *
 * fuzz/replay.c runs the same function over saved inputs without libFuzzer,
 * so the regression cases also run in the ordinary test builds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "image.h" /* img_crc32c(): the loader's own, tested in test_image */
#include "sectorfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_image: %s: %s\n", what, detail);
	abort();
}

/* ---- repairing checksums and totals (the format: docs/image-format.md) ---- */

static uint64_t get(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Recompute what a writer computes: record sequence numbers and CRCs, the
 * end record's and the header's totals, the file size, the header CRC. */
static void repair(uint8_t *d, size_t size)
{
	if (size < 96)
		return;
	size_t hsize = (size_t)get(d + 12, 4);
	if (hsize < 96 || hsize > 4096 || hsize % 4 || hsize > size)
		hsize = 96, put(d + 12, 96, 4);
	uint64_t t[13] = {0}; /* the end record's totals, in its order */
	size_t at = hsize;
	while (size - at >= 16) {
		uint8_t *h = d + at;
		uint64_t len = get(h + 4, 4);
		if (len > size - at - 16)
			break;
		unsigned type = (unsigned)get(h, 2);
		uint8_t *p = h + 16;
		if (type == 1 && len >= 86) {
			uint32_t mode = (uint32_t)get(p + 16, 4);
			t[1]++;
			t[9] += get(p + 8, 8) != 0;
			switch (mode & 0170000) {
			case 0040000: t[2]++; break;
			case 0100000: t[3]++; t[12] += get(p + 32, 8); break;
			case 0120000: t[4]++; break;
			case 0010000: t[5]++; break;
			case 0140000: t[6]++; break;
			case 0020000: t[7]++; break;
			case 0060000: t[8]++; break;
			}
		} else if (type == 2) {
			t[9]++;
		} else if (type == 3) {
			t[10]++;
		} else if (type == 4 && len > 16) {
			t[11] += len - 16;
		} else if (type == 5 && len == 104) {
			for (int k = 0; k < 13; k++) /* t[0]: the records before it */
				put(p + 8 * k, t[k], 8);
		}
		put(h + 8, t[0] + 1, 4);
		put(h + 12, img_crc32c(img_crc32c(0, h, 12), p, (size_t)len), 4);
		t[0]++;
		at += 16 + (size_t)len;
	}
	put(d + 40, t[0], 8);
	put(d + 48, t[1], 8);
	put(d + 56, t[9], 8);
	put(d + 64, t[10], 8);
	put(d + 72, t[11], 8);
	put(d + 80, size, 8);
	put(d + hsize - 4, img_crc32c(0, d, hsize - 4), 4);
}

static void one(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size);
	if (size >= 96 && size <= (1u << 20)) {
		uint8_t *copy = malloc(size);
		if (!copy)
			die("malloc", "failed");
		memcpy(copy, data, size);
		repair(copy, size);
		one(copy, size);
		free(copy);
	}
	return 0;
}

static void one(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("fuzz_image", MFD_CLOEXEC);
		if (fd < 0)
			die("memfd_create", strerror(errno));
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0)
		die("ftruncate", strerror(errno));
	for (size_t done = 0; done < size;) {
		ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
		if (n <= 0)
			die("pwrite", strerror(errno));
		done += (size_t)n;
	}

	char cerr[1024], lerr[1024];
	struct sfs_image_info info;
	int crc = sfs_image_check(path, &info, cerr, sizeof cerr);
	if (crc > 0 || (crc < 0 && (!cerr[0] || strchr(cerr, '\n'))))
		die("check", "a failure needs a negative errno and one line");

	struct sfs_config cfg = {.size_limit = 16 << 20, .max_inodes = 10000};
	struct sfs_fs *fs;
	if (sfs_fs_create(&cfg, &fs) != 0)
		die("sfs_fs_create", "failed");
	int lrc = sfs_image_load(fs, path, lerr, sizeof lerr);
	if (crc != 0 && (lrc != crc || strcmp(cerr, lerr)))
		die("check refused, load did not refuse the same way", lerr);
	if (crc == 0 && lrc != 0 && lrc != -ENOSPC && lrc != -ENOMEM)
		die("check accepted, load failed", lerr);
	if (lrc != 0) {
		struct sfs_stats st;
		sfs_get_stats(fs, &st);
		if (st.inodes != 1)
			die("a refused load left inodes behind", lerr);
	}
	char msg[512];
	if (sfs_check(fs, msg, sizeof msg) != 0)
		die("sfs_check", msg);
	sfs_fs_destroy(fs);
}
