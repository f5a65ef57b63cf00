/* SPDX-License-Identifier: MIT */
/* touchmem: touch N MiB of fresh memory, then give it back (exit).
 *
 *   touchmem MIB
 *
 * bench/run.sh runs it right before each measurement that needs a lot of
 * fresh memory (a large write, a first read into an empty page cache).
 * On a virtual machine that hands freed memory back to its host (free
 * page reporting), memory nobody used lately has to be faulted in again
 * by the host, which makes the first program to need it 2-4 times as
 * slow as one that gets memory just freed by another.  Touching it first
 * puts every file system in the same state: the memory it is about to get
 * is memory the host has just backed.
 *
 * It asks for the memory in 4 KiB pages (MADV_POPULATE_WRITE, else one
 * touch per page) and prints how fast that went (MB/s): the speed at which
 * a process gets fresh memory here, a cost tmpfs does not pay (it takes
 * kernel pages, mapped in no process) and sectorfs's pool avoids where it
 * can with huge pages.  Machines of one kind differ in it by up to ten
 * times (shadow page tables make each page fault costly).
 *
 * Build: cc -O2 -o touchmem bench/touchmem.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older headers lack it */
#endif

int main(int argc, char **argv)
{
	char *end;
	long mib = argc == 2 ? strtol(argv[1], &end, 10) : -1;
	if (argc != 2 || *end || mib < 1 || mib > (1L << 22)) {
		fprintf(stderr, "usage: touchmem MIB (1 to 4194304)\n");
		return 2;
	}
	size_t size = (size_t)mib << 20;
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("touchmem: mmap");
		return 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* One byte per page is enough to make the kernel (and the host)
	 * provide it, where the kernel cannot populate a range at once. */
	madvise(p, size, MADV_NOHUGEPAGE);
	if (madvise(p, size, MADV_POPULATE_WRITE) != 0) {
		for (size_t off = 0; off < size; off += 4096)
			p[off] = 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%.0f\n", s > 0 ? (double)size / 1e6 / s : 0.0);
	return 0;
}
