/* SPDX-License-Identifier: MIT */
/* say.h - how the sectorfs command talks to its user (say.c). */
#ifndef SECTORFS_SAY_H
#define SECTORFS_SAY_H

#include <stdint.h>

/* One line on stderr, "sectorfs: ..."; returns 1, the exit status. */
int say_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Bytes in MiB, for messages. */
static inline double mib(uint64_t bytes)
{
	return (double)bytes / 1048576.0;
}

#endif
