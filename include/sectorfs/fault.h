/* SPDX-License-Identifier: MIT */
/* sectorfs/fault.h - allocation and I/O failure injection, for tests.
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
 * Every call the library makes to the kernel about a file -- the image
 * files' open, stat, pread, pwritev, writeback hints, fsync of the file
 * and of its directory, the temporary file, fchown, fchmod, rename,
 * unlink, close, and getrandom (os/os_file.c) -- passes a second point,
 * counted apart from the allocations: arming one never moves the other.
 * A test makes the n-th I/O call from now fail with an errno of its
 * choice (ENOSPC, EIO, ...), without the call doing anything (a close
 * still closes), or be short: a read or write then moves one byte of those
 * asked for, the shortest transfer the kernel may make.  A call that moves no bytes (fsync,
 * rename) cannot be short; it then goes through and the fault counts as
 * not delivered.  Counting the points of an operation first (arm with
 * n = 0), then arming each n with each errno, walks every I/O failure.
 *
 * Both injectors are process-wide.  Each costs one relaxed atomic load per
 * point when disarmed.
 */
#ifndef SECTORFS_FAULT_H
#define SECTORFS_FAULT_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- allocations ---- */

/* Make the n-th fault point from now fail (n >= 1; 0 only counts points).
 * With `persist`, every later point fails as well until sfs_fault_disarm(). */
void sfs_fault_arm(long n, bool persist);

/* Stop injecting.  Returns true if an armed failure was delivered since the
 * last sfs_fault_arm(). */
bool sfs_fault_disarm(void);

/* Number of fault points passed since the last sfs_fault_arm() (or since the
 * start of the process). */
long sfs_fault_points(void);

/* ---- file I/O ---- */

#define SFS_FAULT_SHORT 0 /* as `err`: a short read or write instead of an error */

/* Make the n-th I/O call from now fail with `err` (a positive errno), or
 * be short (SFS_FAULT_SHORT); n = 0 only counts the calls.  One call is
 * hit; the calls after it go through. */
void sfs_fault_io_arm(long n, int err);

/* Stop injecting.  True if the armed fault was delivered. */
bool sfs_fault_io_disarm(void);

/* I/O calls passed since the last sfs_fault_io_arm(). */
long sfs_fault_io_points(void);

/* The call the delivered fault hit ("open", "pread", "pwritev", "fsync",
 * "fsync_dir", "rename", ...: os/os_file.c names them), or NULL. */
const char *sfs_fault_io_call(void);

#ifdef __cplusplus
}
#endif
#endif
