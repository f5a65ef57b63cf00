/* SPDX-License-Identifier: MIT */
/* fault.c - the two fault points (see sectorfs/fault.h): one every
 * allocation passes, one every file I/O call of the core passes.
 *
 * Each point's state is a handful of process-wide atomics, kept apart so
 * that arming one never moves the other's count.  os_fault() and
 * os_io_fault() are called on every allocation and I/O call; when nothing
 * is armed each is one relaxed load and a branch.
 */
#include "sectorfs/fault.h"

#include "fault_point.h"

/* ---- allocations ---- */

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

/* Count down to the armed point; true exactly once, when it is reached. */
static bool reached(_Atomic long *left_p)
{
	long left = atomic_load_explicit(left_p, memory_order_relaxed);
	while (left > 0) {
		if (atomic_compare_exchange_weak_explicit(left_p, &left, left - 1,
		                                          memory_order_relaxed,
		                                          memory_order_relaxed))
			return left == 1;
	}
	return false;
}

bool os_fault_slow(void)
{
	atomic_fetch_add_explicit(&points, 1, memory_order_relaxed);
	if (atomic_load_explicit(&failing, memory_order_relaxed))
		return true;
	if (!reached(&countdown))
		return false;
	atomic_store(&delivered, true);
	if (atomic_load(&persist_mode))
		atomic_store(&failing, true);
	return true;
}

/* ---- file I/O ---- */

_Atomic bool os_io_fault_enabled;
static _Atomic long io_countdown;        /* >0: calls left before the fault */
static _Atomic int io_err;               /* the errno to fail with, or SFS_FAULT_SHORT */
static _Atomic bool io_delivered;
static _Atomic long io_points;
static const char *_Atomic io_call;      /* the call the fault was delivered to */

void sfs_fault_io_arm(long n, int err)
{
	atomic_store(&io_delivered, false);
	atomic_store(&io_call, NULL);
	atomic_store(&io_points, 0);
	atomic_store(&io_err, err > 0 ? err : SFS_FAULT_SHORT);
	atomic_store(&io_countdown, n > 0 ? n : 0);
	atomic_store(&os_io_fault_enabled, true);
}

bool sfs_fault_io_disarm(void)
{
	atomic_store(&io_countdown, 0);
	return atomic_load(&io_delivered);
}

long sfs_fault_io_points(void)
{
	return atomic_load_explicit(&io_points, memory_order_relaxed);
}

const char *sfs_fault_io_call(void)
{
	return atomic_load(&io_call);
}

int os_io_fault_slow(const char *call, size_t len)
{
	atomic_fetch_add_explicit(&io_points, 1, memory_order_relaxed);
	if (!reached(&io_countdown))
		return OS_IO_GO;
	int err = atomic_load(&io_err);
	if (err == SFS_FAULT_SHORT && len < 2)
		return OS_IO_GO; /* nothing to cut short: not delivered */
	atomic_store(&io_call, call);
	atomic_store(&io_delivered, true);
	return err == SFS_FAULT_SHORT ? OS_IO_SHORT : err;
}
