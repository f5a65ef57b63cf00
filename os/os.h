/* SPDX-License-Identifier: MIT */
/* os.h - the operating-system layer: everything sectorfs asks of the kernel.
 *
 * The engine and the core never call mmap, madvise, futex or clock_gettime
 * themselves; they call these functions.  Keeping the primitives in one
 * small file keeps the rest portable and makes every allocation point of the
 * project pass through one place, where fault injection (fault.h) can make
 * it fail on demand.
 *
 * Everything here is thread-safe.  Functions that can fail return NULL or a
 * negative errno; none of them aborts.
 */
#ifndef SECTORFS_OS_H
#define SECTORFS_OS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Size of a virtual-memory page: the granularity at which memory can be
 * given back to the kernel. */
size_t os_page_size(void);

/* Physical memory of the machine in bytes (0 if unknown). */
uint64_t os_physical_memory(void);

/* Map `size` bytes of zero-filled, read-write, private anonymous memory whose
 * address is a multiple of `align` (a power of two, at least a page).  Pages
 * cost nothing until touched, and are never made part of a huge page unless
 * asked (os_populate_huge).  With `locked`, pages are locked in RAM as they
 * are first touched (never swapped) and excluded from core dumps.
 * NULL on failure (errno set). */
void *os_map(size_t size, size_t align, bool locked);
void os_unmap(void *addr, size_t size);

/* Map `size` bytes that always read as zero and cannot be written.  Reading
 * them maps the kernel's shared zero page, so they cost no RAM. */
void *os_map_zero(size_t size);

/* Give the pages of [addr, addr+size) back to the kernel.  Afterwards they
 * read as zero and cost nothing until touched again.  `locked` must match the
 * os_map() call.  Returns 0 or -errno; after an error the range may still
 * hold its old bytes (munlock or madvise refused before dropping anything),
 * so the caller may not count on zeros.  A fault point (fault.h): injected,
 * it fails with -ENOMEM before touching the range. */
int os_purge(void *addr, size_t size, bool locked);

/* Fault in the pages of [addr, addr+size) for writing, in one call rather
 * than one fault per page (MADV_POPULATE_WRITE).  0 or -errno (-EINVAL: a
 * kernel before 5.14); where it fails the pages fault in one by one when
 * written, as without it. */
int os_populate(void *addr, size_t size);

/* The size of a transparent huge page (2 MiB on x86-64), or 0 when the
 * kernel gives none (THP disabled or absent). */
size_t os_huge_page_size(void);

/* os_populate() of one whole huge page ([addr, addr+size) aligned to
 * os_huge_page_size()), backed by a huge page if the kernel has one free:
 * one page-table entry instead of 512, which on a machine with costly page
 * faults (shadow paging) is several times as fast.  The range is eligible
 * for huge pages only during the call, so the kernel never builds one
 * around memory nobody asked for (khugepaged).  The range's contents are
 * dropped first (it reads as zero after): callers own it and need zeros or
 * nothing there.  Not for locked memory.  0 or -errno. */
int os_populate_huge(void *addr, size_t size);

/* RLIMIT_MEMLOCK in bytes (UINT64_MAX: unlimited). */
uint64_t os_memlock_limit(void);

/* Resident set size of this process in bytes (0 if unknown). */
uint64_t os_rss(void);

/* Futex wait/wake on a 32-bit atomic: wait returns when *addr != expected, on
 * a wake, or spuriously; callers re-check their condition. */
void os_futex_wait(_Atomic uint32_t *addr, uint32_t expected);
void os_futex_wake_all(_Atomic uint32_t *addr);

/* Name the calling thread, as ps -L and top show it (15 characters). */
void os_name_thread(const char *name);

/* Let another thread run (used by spin loops before they sleep). */
void os_yield(void);
static inline void os_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Wall-clock time for timestamps, with nanoseconds. */
struct timespec os_now(void);
/* Monotonic time in nanoseconds, for measurements. */
uint64_t os_monotonic_ns(void);

/* malloc family through the fault-injection point.  os_free(NULL) is a no-op. */
void *os_malloc(size_t size);
void *os_calloc(size_t n, size_t size);
void *os_realloc(void *p, size_t size);
void os_free(void *p);

#endif
