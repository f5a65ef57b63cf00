/* SPDX-License-Identifier: MIT */
/* image.h - the parts of image.c that tests reach directly (internal).
 *
 * The image format checksums everything with CRC32C (Castagnoli).  image.c
 * computes it with the SSE4.2 instruction where the CPU has one and with
 * slicing-by-8 tables elsewhere; tests compare both against each other and
 * against a bitwise reference, so a machine that always takes one path
 * still proves the other.
 */
#ifndef SECTORFS_IMAGE_H
#define SECTORFS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of buf, continuing from crc (0 to start): crc32c(crc32c(0, a), b)
 * is the CRC of a followed by b.  The fastest implementation available. */
uint32_t img_crc32c(uint32_t crc, const void *buf, size_t len);
/* The same with the portable tables, whatever the CPU. */
uint32_t img_crc32c_soft(uint32_t crc, const void *buf, size_t len);

#endif
