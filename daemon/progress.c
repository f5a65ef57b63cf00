/* SPDX-License-Identifier: MIT */
/* progress.c - how far a long load or save has come, on a terminal (see
 * progress.h).
 *
 * A load of a large image or a save of a large tree takes seconds to
 * minutes; silence for that long looks like a hang.  The operation itself
 * only keeps two counters (sfs_image_progress()); a thread of ours reads
 * them every 250 ms and rewrites one line on stderr, so the work pays
 * nothing for being watched, and the same display serves an operation in
 * this process (a load at mount, `sectorfs image create`) and one in a
 * mount's daemon (`sectorfs save`, `sectorfs umount`), read through an
 * xattr of the mount's root.  Only a terminal gets it: logs and pipes
 * see the result lines alone.  The line is erased at the end, so what
 * stays on the screen is the result.
 */
#include "progress.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define EVERY_NS 250000000L

struct progress {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;            /* lock */
	const char *what;
	progress_sample_fn sample;
	void *ctx;
};

static void show(const struct progress *pr)
{
	static const char *const phase[] = {[SFS_IMAGE_VERIFYING] = "verifying",
	                                    [SFS_IMAGE_LOADING] = "loading",
	                                    [SFS_IMAGE_SAVING] = "saving"};
	struct sfs_image_progress p = {0};
	char figures[96] = "";
	if (pr->sample(pr->ctx, &p) && p.phase != SFS_IMAGE_IDLE && p.phase <= SFS_IMAGE_SAVING) {
		if (p.total)
			snprintf(figures, sizeof figures, "%s %.1f of %.1f MiB (%d%%)", phase[p.phase],
			         (double)p.done / 1048576.0, (double)p.total / 1048576.0,
			         (int)(p.done * 100 / p.total));
		else
			snprintf(figures, sizeof figures, "%s", phase[p.phase]);
	}
	/* \r and "erase to the end of the line": one line, rewritten. */
	fprintf(stderr, "\rsectorfs: %s: %s\033[K", pr->what, figures);
	fflush(stderr);
}

static void *run(void *arg)
{
	struct progress *pr = arg;
	pthread_mutex_lock(&pr->lock);
	while (!pr->stop) {
		pthread_mutex_unlock(&pr->lock);
		show(pr);
		pthread_mutex_lock(&pr->lock);
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += EVERY_NS;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!pr->stop && pthread_cond_timedwait(&pr->cond, &pr->lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&pr->lock);
	fputs("\r\033[K", stderr);
	fflush(stderr);
	return NULL;
}

struct progress *progress_start(const char *what, progress_sample_fn sample, void *ctx)
{
	if (!isatty(STDERR_FILENO))
		return NULL;
	struct progress *pr = calloc(1, sizeof *pr);
	if (!pr)
		return NULL;
	*pr = (struct progress){.what = what, .sample = sample, .ctx = ctx};
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pr->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&pr->lock, NULL);
	if (pthread_create(&pr->thread, NULL, run, pr) != 0) {
		pthread_cond_destroy(&pr->cond);
		pthread_mutex_destroy(&pr->lock);
		free(pr);
		return NULL;
	}
	return pr;
}

void progress_stop(struct progress *pr)
{
	if (!pr)
		return;
	pthread_mutex_lock(&pr->lock);
	pr->stop = true;
	pthread_cond_signal(&pr->cond);
	pthread_mutex_unlock(&pr->lock);
	pthread_join(pr->thread, NULL);
	pthread_cond_destroy(&pr->cond);
	pthread_mutex_destroy(&pr->lock);
	free(pr);
}

bool progress_of_fs(void *fs, struct sfs_image_progress *p)
{
	sfs_image_progress(fs, p);
	return true;
}

bool progress_of_mount(void *mountpoint, struct sfs_image_progress *p)
{
	char buf[96];
	ssize_t n = getxattr(mountpoint, PROGRESS_XATTR, buf, sizeof buf - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	unsigned phase;
	uint64_t done, total;
	if (sscanf(buf, "%u %" SCNu64 " %" SCNu64, &phase, &done, &total) != 3)
		return false;
	*p = (struct sfs_image_progress){.phase = (enum sfs_image_phase)phase, .done = done,
	                                 .total = total};
	return true;
}
