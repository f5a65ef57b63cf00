/* SPDX-License-Identifier: MIT */
/* fault_point.h - the check every allocation makes (internal). */
#ifndef SECTORFS_FAULT_POINT_H
#define SECTORFS_FAULT_POINT_H

#include <stdatomic.h>
#include <stdbool.h>

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

#endif
