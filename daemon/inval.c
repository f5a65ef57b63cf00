/* SPDX-License-Identifier: MIT */
/* inval.c - answering writes that went past the page cache (prefix inv_).
 *
 * A write past the kernel's page cache (O_DIRECT, aio, a descriptor the
 * daemon opened with FOPEN_DIRECT_IO) may come while another descriptor
 * reads the same file through the cache.  The kernel drops the cached
 * pages of the range before it sends the write, but a read that reaches
 * the daemon before the write fills them again with the data from before
 * it, and nothing drops them after (an asynchronous write's completion
 * never does, a synchronous one only on some paths): a reader would see
 * data older than a write that has completed, which on tmpfs, where there
 * is one copy, never happens.  So such a write is answered only after the
 * kernel was told to drop the range (fuse_lowlevel_notify_inval_inode).
 *
 * That notification can wait: the kernel locks each cached page of the
 * range, and a page being read stays locked until its read is answered,
 * which only a worker can do.  A worker must not wait for that (the
 * transport lets one thread read requests at a time, and with -s there is
 * no other), so the worker hands the answer to a thread of this file, which
 * tells the kernel, then answers the write; meanwhile the worker goes on.
 * The thread starts at the first such write.  Only files the kernel may
 * hold pages of come here (sfs_file_cached(): read, or written through the
 * cache, once): a file written from scratch through a write-only or direct
 * descriptor, the common case, is answered at once.
 *
 * Over io_uring an answer cannot be handed to another thread: a ring
 * thread's one entry holds the request until its thread commits the
 * answer (ring.c).  But there every queue has several threads, so a ring
 * thread may tell the kernel itself and then answer, as long as another
 * thread of its queue stays free to answer the reads whose pages the
 * kernel waits for: rg_inval_begin() grants that to all but one thread of
 * a queue at a time.
 *
 * If the thread or a queue entry cannot be had (out of memory), or a ring
 * thread is not granted the wait, the answer goes first and the
 * notification after, from the worker: never a wait there, at the price
 * of the old window.
 */
#include "inval.h"
#include "ring.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

struct pending {
	struct pending *next;
	struct fuse_session *se;
	fuse_req_t req;
	fuse_ino_t ino;
	off_t off;
	size_t n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static struct pending *head, *tail; /* lock: first in, first answered */
static bool started, stopping;      /* lock */
static pthread_t thread;            /* set once, under lock */

static void answer(struct pending *p)
{
	/* -ENOENT: the kernel no longer has the inode, so no pages either. */
	(void)fuse_lowlevel_notify_inval_inode(p->se, p->ino, p->off, (off_t)p->n);
	fuse_reply_write(p->req, p->n);
}

static void *run(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		while (!head && !stopping)
			pthread_cond_wait(&more, &lock);
		struct pending *p = head;
		if (!p)
			break; /* stopping, and nothing left */
		head = p->next;
		if (!head)
			tail = NULL;
		pthread_mutex_unlock(&lock);
		answer(p);
		free(p);
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Under lock.  Signals go to the other threads (libfuse's handlers). */
static bool start(void)
{
	if (started)
		return true;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	started = pthread_create(&thread, NULL, run, NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return started;
}

void inv_reply_write(struct fuse_session *se, fuse_req_t req, fuse_ino_t ino, off_t off,
                     size_t n)
{
	rg_changes_made(); /* the write is made: a stop need not wait for the notice */
	int ring = rg_inval_begin();
	if (ring == 1) {
		(void)fuse_lowlevel_notify_inval_inode(se, ino, off, (off_t)n);
		fuse_reply_write(req, n);
		rg_inval_end();
		return;
	}
	struct pending *p = ring < 0 ? malloc(sizeof *p) : NULL;
	pthread_mutex_lock(&lock);
	if (p && !stopping && start()) {
		*p = (struct pending){.se = se, .req = req, .ino = ino, .off = off, .n = n};
		if (tail)
			tail->next = p;
		else
			head = p;
		tail = p;
		pthread_cond_signal(&more);
		pthread_mutex_unlock(&lock);
		return;
	}
	pthread_mutex_unlock(&lock);
	free(p);
	fuse_reply_write(req, n);
	(void)fuse_lowlevel_notify_inval_inode(se, ino, off, (off_t)n);
}

void inv_stop(void)
{
	pthread_mutex_lock(&lock);
	stopping = true;
	bool join = started;
	pthread_cond_signal(&more);
	pthread_mutex_unlock(&lock);
	if (join)
		pthread_join(thread, NULL);
}
