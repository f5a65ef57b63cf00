/* SPDX-License-Identifier: MIT */
/* say.c - the command's error lines, shared by mounting and the image
 * commands so that every failure reads the same way. */
#include "say.h"

#include <stdarg.h>
#include <stdio.h>

int say_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("sectorfs: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}
