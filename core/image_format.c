/* SPDX-License-Identifier: MIT */
/* image_format.c - the small things every image file needs (image.h):
 * one-line errors, escaped names, growable arrays, the format's names.
 *
 * An image operation fails with one line that names the image and the
 * first problem met ("PATH: record 37 (data of inode 12): checksum
 * mismatch"); whatever fails after it (an unwinding step) keeps that line.
 * Names in messages are escaped, as a name may hold any byte but '/' and
 * NUL and a message is one line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "image.h"
#include "os.h"

/* ---- errors: the first one wins, as one line naming the image ---- */

int img_fail(struct ierr *e, int rc, const char *fmt, ...)
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

int img_fail_nomem(struct ierr *e)
{
	return img_fail(e, -ENOMEM, "out of memory");
}

/* A name as it goes into a message: names may hold any byte but '/' and
 * NUL, and a message is one line, so control characters, quotes and
 * backslashes are escaped. */
const char *img_esc(char *out, size_t size, const void *name, size_t len)
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

/* ---- growable byte arrays ---- */

int img_arena_add(struct arena *a, const void *data, size_t n)
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

void img_arena_free(struct arena *a)
{
	os_free(a->p);
	*a = (struct arena){0};
}

/* Grow an array of `size`-byte elements to hold at least `want`. */
int img_grow(void **arr, size_t *cap, size_t want, size_t size)
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

const char *img_type_name(unsigned type)
{
	switch (type) {
	case R_INODE: return "inode";
	case R_LINK: return "link";
	case R_XATTR: return "xattr";
	case R_DATA: return "data";
	case R_END: return "end";
	case R_SHARE: return "share";
	default: return NULL;
	}
}

bool img_mode_ok(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR: case S_IFREG: case S_IFLNK: case S_IFIFO:
	case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		return true;
	default:
		return false;
	}
}

bool img_name_ok(const uint8_t *n, size_t len)
{
	if (len == 0 || len > SFS_NAME_MAX)
		return false;
	if ((len == 1 && n[0] == '.') || (len == 2 && n[0] == '.' && n[1] == '.'))
		return false;
	return !memchr(n, '/', len) && !memchr(n, '\0', len);
}
