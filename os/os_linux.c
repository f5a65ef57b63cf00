/* SPDX-License-Identifier: MIT */
/* os_linux.c - the OS layer on Linux (see os.h).
 *
 * Memory comes straight from mmap so that the engine controls exactly when
 * pages go back to the kernel (madvise MADV_DONTNEED).  Locked ("noswap")
 * memory uses mlock2(MLOCK_ONFAULT): pages are pinned as they are touched,
 * not when mapped, so an empty pool still costs nothing.  Locked pages cannot
 * be dropped with madvise, so purging them unlocks, drops and relocks the
 * range, all without populating it.  Files on disk are os_file.c's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault_point.h"

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

size_t os_page_size(void)
{
	static _Atomic size_t cached;
	size_t p = atomic_load_explicit(&cached, memory_order_relaxed);
	if (p == 0) {
		long v = sysconf(_SC_PAGESIZE);
		p = v > 0 ? (size_t)v : 4096;
		atomic_store_explicit(&cached, p, memory_order_relaxed);
	}
	return p;
}

uint64_t os_physical_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	if (pages <= 0)
		return 0;
	return (uint64_t)pages * os_page_size();
}

static int lock_on_fault(void *addr, size_t size)
{
	if (syscall(SYS_mlock2, addr, size, MLOCK_ONFAULT) != 0)
		return -errno;
	return 0;
}

void *os_map(size_t size, size_t align, bool locked)
{
	if (os_fault()) {
		errno = ENOMEM;
		return NULL;
	}
	size_t page = os_page_size();
	if (align < page)
		align = page;
	if (size == 0 || size > SIZE_MAX - align) {
		errno = EINVAL;
		return NULL;
	}
	/* Over-map by `align`, then cut off the misaligned head and the tail. */
	size_t span = size + (align > page ? align : 0);
	char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	char *p = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	if (raw + span > p + size)
		munmap(p + size, (size_t)(raw + span - (p + size)));
	/* Huge pages only where os_populate_huge() asks: under THP=always the
	 * kernel would otherwise back a whole 2 MiB around the first sector
	 * written, and khugepaged would fill in pages purged as free. */
	madvise(p, size, MADV_NOHUGEPAGE);
	if (locked) {
		int rc = lock_on_fault(p, size);
		if (rc != 0) {
			munmap(p, size);
			errno = -rc;
			return NULL;
		}
		/* Secrets kept in noswap memory stay out of core dumps too. */
		madvise(p, size, MADV_DONTDUMP);
	}
	return p;
}

void os_unmap(void *addr, size_t size)
{
	if (addr)
		munmap(addr, size);
}

void *os_map_zero(size_t size)
{
	if (os_fault()) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

int os_purge(void *addr, size_t size, bool locked)
{
	/* As munlock fails when splitting the mapping needs memory it lacks. */
	if (os_fault())
		return -ENOMEM;
	if (!locked)
		return madvise(addr, size, MADV_DONTNEED) == 0 ? 0 : -errno;
	if (munlock(addr, size) != 0)
		return -errno;
	int rc = madvise(addr, size, MADV_DONTNEED) == 0 ? 0 : -errno;
	int rc2 = lock_on_fault(addr, size);
	return rc != 0 ? rc : rc2;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

int os_populate(void *addr, size_t size)
{
	uintptr_t page = os_page_size();
	uintptr_t a = (uintptr_t)addr & ~(page - 1);
	uintptr_t end = ((uintptr_t)addr + size + page - 1) & ~(page - 1);
	return madvise((void *)a, end - a, MADV_POPULATE_WRITE) == 0 ? 0 : -errno;
}

size_t os_huge_page_size(void)
{
	static _Atomic size_t cached = SIZE_MAX;
	size_t size = atomic_load_explicit(&cached, memory_order_relaxed);
	if (size != SIZE_MAX)
		return size;
	size = 0;
	char mode[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (f) {
		if (!fgets(mode, sizeof mode, f))
			mode[0] = 0;
		fclose(f);
	}
	/* "always [madvise] never": anything but [never] honours MADV_HUGEPAGE. */
	if (mode[0] && !strstr(mode, "[never]")) {
		f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r");
		unsigned long long v = 0;
		if (f) {
			if (fscanf(f, "%llu", &v) != 1)
				v = 0;
			fclose(f);
		}
		/* A power of two, larger than a page, that a region can hold. */
		if (v > os_page_size() && v <= ((size_t)1 << 30) && !(v & (v - 1)))
			size = (size_t)v;
	}
	atomic_store_explicit(&cached, size, memory_order_relaxed);
	return size;
}

int os_populate_huge(void *addr, size_t size)
{
	/* A huge page needs an empty page-table slot: dropping what is there
	 * (the caller's, its contents unneeded) frees the page table too on
	 * kernels that reclaim empty ones (6.14 on x86-64), where memory
	 * purged page by page would otherwise keep 4 KiB pages for ever. */
	madvise(addr, size, MADV_DONTNEED);
	/* Without huge pages (madvise fails, e.g. no THP), a plain populate. */
	bool huge = madvise(addr, size, MADV_HUGEPAGE) == 0;
	int rc = madvise(addr, size, MADV_POPULATE_WRITE) == 0 ? 0 : -errno;
	if (huge)
		madvise(addr, size, MADV_NOHUGEPAGE);
	return rc;
}

uint64_t os_memlock_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return UINT64_MAX;
	return (uint64_t)rl.rlim_cur;
}

uint64_t os_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	unsigned long size = 0, resident = 0;
	int n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	return n == 2 ? (uint64_t)resident * os_page_size() : 0;
}

void os_futex_wait(_Atomic uint32_t *addr, uint32_t expected)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

void os_futex_wake_all(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

int os_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = -pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

void os_yield(void)
{
	sched_yield();
}

struct timespec os_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

uint64_t os_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void *os_malloc(size_t size)
{
	if (os_fault()) {
		errno = ENOMEM;
		return NULL;
	}
	return malloc(size);
}

void *os_calloc(size_t n, size_t size)
{
	if (os_fault()) {
		errno = ENOMEM;
		return NULL;
	}
	return calloc(n, size);
}

void *os_realloc(void *p, size_t size)
{
	if (os_fault()) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, size);
}

char *os_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = os_malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

void os_free(void *p)
{
	free(p);
}

void os_name_thread(const char *name)
{
	(void)prctl(PR_SET_NAME, name, 0, 0, 0);
}
