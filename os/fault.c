/* SPDX-License-Identifier: MIT */
/* fault.c - the single allocation fault point (see sectorfs/fault.h).
 *
 * State is three process-wide atomics.  os_fault() is called by every
 * allocation; when nothing is armed it is one relaxed load and a branch.
 */
#include "sectorfs/fault.h"

#include "fault_point.h"

_Atomic bool os_fault_enabled;
static _Atomic long countdown;     /* >0: points left before the failure */
static _Atomic bool persist_mode;  /* keep failing after the first */
static _Atomic bool failing;       /* persistent mode has triggered */
static _Atomic bool delivered;     /* a failure was injected since arming */
static _Atomic long points;        /* points passed since arming */

void sfs_fault_arm(long n, bool persist)
{
	atomic_store(&failing, false);
	atomic_store(&delivered, false);
	atomic_store(&points, 0);
	atomic_store(&persist_mode, persist);
	atomic_store(&countdown, n > 0 ? n : 0);
	atomic_store(&os_fault_enabled, true);
}

bool sfs_fault_disarm(void)
{
	atomic_store(&countdown, 0);
	atomic_store(&failing, false);
	return atomic_load(&delivered);
}

long sfs_fault_points(void)
{
	return atomic_load_explicit(&points, memory_order_relaxed);
}

bool os_fault_slow(void)
{
	atomic_fetch_add_explicit(&points, 1, memory_order_relaxed);
	if (atomic_load_explicit(&failing, memory_order_relaxed))
		return true;
	long left = atomic_load_explicit(&countdown, memory_order_relaxed);
	while (left > 0) {
		if (atomic_compare_exchange_weak_explicit(&countdown, &left, left - 1,
		                                          memory_order_relaxed,
		                                          memory_order_relaxed)) {
			if (left != 1)
				return false;
			atomic_store(&delivered, true);
			if (atomic_load(&persist_mode))
				atomic_store(&failing, true);
			return true;
		}
	}
	return false;
}
