/* SPDX-License-Identifier: MIT */
/* sectorfs/fault.h - allocation-failure injection, for tests.
 *
 * Every allocation sectorfs makes (sector and node batches from the pool,
 * region mappings, malloc) first passes one fault point, and so does every
 * purge (memory handed back to the kernel, which can refuse it: munlock in
 * noswap mode).  A failed purge fails no operation: the memory stays with
 * sectorfs, not known to read as zero.  A test arms the
 * injector to make the n-th point from now fail, runs an operation, and
 * checks that the operation failed cleanly (ENOMEM, nothing changed, nothing
 * leaked) or succeeded.  Repeating with n = 1, 2, 3, ... until the operation
 * succeeds without reaching the armed point walks every failure path once,
 * in the way SQLite's test suite does.
 *
 * The injector is process-wide.  It costs one relaxed atomic load per
 * allocation when disarmed.
 */
#ifndef SECTORFS_FAULT_H
#define SECTORFS_FAULT_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Make the n-th fault point from now fail (n >= 1; 0 only counts points).
 * With `persist`, every later point fails as well until sfs_fault_disarm(). */
void sfs_fault_arm(long n, bool persist);

/* Stop injecting.  Returns true if an armed failure was delivered since the
 * last sfs_fault_arm(). */
bool sfs_fault_disarm(void);

/* Number of fault points passed since the last sfs_fault_arm() (or since the
 * start of the process). */
long sfs_fault_points(void);

#ifdef __cplusplus
}
#endif
#endif
