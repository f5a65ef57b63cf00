/* SPDX-License-Identifier: MIT */
/* os.h - the operating-system layer: everything sectorfs asks of the kernel.
 *
 * The engine and the core never call mmap, madvise, futex, clock_gettime,
 * open, pread, fsync, rename or any other system call themselves; they
 * call these functions (os_linux.c: memory, time, threads; os_file.c:
 * files on disk, for images).  Keeping the primitives in one small layer
 * keeps the rest portable and makes every allocation point and every file
 * I/O call of the project pass through one place, where fault injection
 * (fault.h) can make it fail on demand: allocations at one fault point,
 * file I/O at another, counted apart.  A test proves it (tests/os_only.sh:
 * the objects of core/ and engine/ call no system call wrapper and no
 * malloc).  POSIX threads' mutexes and condition variables are used
 * directly: they are the portable layer already.
 *
 * Everything here is thread-safe.  Functions that can fail return NULL or a
 * negative errno; none of them aborts.
 */
#ifndef SECTORFS_OS_H
#define SECTORFS_OS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
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

/* Start a thread that takes no signals (they are the process's to
 * handle): 0 or -errno, as pthread_create. */
int os_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

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
char *os_strdup(const char *s);
void os_free(void *p);

/* ---- files on disk (os_file.c) ----
 * Each call passes the I/O fault point; each returns what it got or a
 * negative errno, and retries EINTR itself.  Descriptors are close-on-exec. */

/* open(2) of `path` with `flags` (O_CLOEXEC added): a descriptor or -errno. */
int os_open(const char *path, int flags);
/* mkostemp(3): create and open a new file from `tmpl` ("...XXXXXX", which
 * gets the name chosen), mode 0600: a descriptor or -errno. */
int os_open_temp(char *tmpl);
/* Close; the descriptor is gone even when this returns -errno (an error
 * of writeback the kernel kept for it). */
int os_close(int fd);
int os_stat(const char *path, struct stat *st);
int os_fstat(int fd, struct stat *st);
/* Up to len bytes at off: how many were read (fewer than asked, even none
 * before the end of the file, is not an error: call again), or -errno. */
ssize_t os_pread(int fd, void *buf, size_t len, uint64_t off);
/* The bytes of iov[0..n) at off: how many were written (possibly fewer),
 * or -errno. */
ssize_t os_pwritev(int fd, const struct iovec *iov, int n, uint64_t off);
/* Start writing back [off, off+len) without waiting (a hint: errors come
 * back from os_fsync). */
int os_writeback(int fd, uint64_t off, uint64_t len);
/* The file will be read from start to end (a hint). */
int os_read_ahead(int fd);
/* The file's data and size on disk. */
int os_fsync(int fd);
/* The directory's entries on disk (a rename in it made durable). */
int os_fsync_dir(const char *path);
int os_fchown(int fd, uid_t uid, gid_t gid);
int os_fchmod(int fd, mode_t mode);
int os_rename(const char *from, const char *to);
int os_unlink(const char *path);
/* len random bytes from the kernel: 0, or -errno (-EAGAIN: not enough
 * entropy yet and !wait, or fewer bytes than asked). */
int os_random(void *buf, size_t len, bool wait);
/* True when this process may do what root may (chown a file to anyone). */
bool os_privileged(void);

#endif
