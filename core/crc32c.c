/* SPDX-License-Identifier: MIT */
/* crc32c.c - the CRC32C (Castagnoli) that guards every byte of an image.
 *
 * Two implementations of one function: slicing-by-8 tables, portable, and
 * the SSE4.2 crc32 instruction in three interleaved chains where the CPU
 * has it (chosen once, at the first call).  Tests compare both with each
 * other and with a bitwise reference (image.h).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "image.h"

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
