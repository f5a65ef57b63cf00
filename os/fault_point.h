/* SPDX-License-Identifier: MIT */
/* fault_point.h - the checks every allocation and every file I/O call make
 * (internal; see sectorfs/fault.h). */
#ifndef SECTORFS_FAULT_POINT_H
#define SECTORFS_FAULT_POINT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

bool os_fault_slow(void);

/* True when this allocation must fail.  Counting points costs an atomic add,
 * so it is only done while tests use the injector; the flag below says so. */
extern _Atomic bool os_fault_enabled;

static inline bool os_fault(void)
{
	if (__builtin_expect(!atomic_load_explicit(&os_fault_enabled, memory_order_relaxed), 1))
		return false;
	return os_fault_slow();
}

/* What the I/O fault point tells a call to do. */
#define OS_IO_GO 0      /* proceed as asked */
#define OS_IO_SHORT (-1) /* move one byte of those asked for (only when len >= 2) */
/* anything > 0: fail with this errno, without doing anything */

int os_io_fault_slow(const char *call, size_t len);
extern _Atomic bool os_io_fault_enabled;

/* The I/O fault point: `call` names the call ("pwritev", "fsync", ...);
 * `len` is the bytes it would move (0 for a call that moves none, which is
 * then never made short). */
static inline int os_io_fault(const char *call, size_t len)
{
	if (__builtin_expect(!atomic_load_explicit(&os_io_fault_enabled, memory_order_relaxed), 1))
		return OS_IO_GO;
	return os_io_fault_slow(call, len);
}

#endif
