/* SPDX-License-Identifier: MIT */
/* shutdown.c - an orderly end on a signal (prefix sd_).
 *
 * libfuse ends the session loop as soon as SIGTERM, SIGINT or SIGHUP
 * comes, and the mount then goes away with whatever the kernel has not yet
 * sent us: the dirty pages of the writeback cache (-o writeback: up to
 * 1 GiB) and of shared writable mappings.  They would be lost, and a final
 * image save would miss them.  So the daemon takes these signals over: the
 * handler only wakes a thread of ours, which calls syncfs() on the mount
 * while the workers still answer the writes it causes, waits until they
 * have answered them all (tr_wait_quiet(): syncfs() itself does not wait
 * for a FUSE server), and only then tells libfuse to stop.  Nothing is
 * waited for in the handler, and a second signal stops the loop at once,
 * for when the flush itself cannot finish.
 *
 * The loop notices the end only when a call of its main thread returns
 * (a wait that a signal interrupts), so the thread then interrupts it with
 * the same signal, again every 10 ms until the loop is over: a signal that
 * comes just before the loop blocks again is not seen.  A FUSE request
 * would not do: a worker that finishes one ends the loop, and the others
 * are cancelled with the request unanswered.  An unmount (fusermount3 -u)
 * needs none of this: the kernel writes back before it lets go, and the
 * loop ends by itself.
 *
 * When a second signal ends the loop during the flush, the wait ends too
 * (tr_end()), but a syncfs() that waits for its writes (older kernels)
 * only returns once the session's device is closed
 * (fuse_session_unmount(), and the io_uring rings in tr_free()), so the
 * thread is joined after that (sd_finish()).
 */
#include "shutdown.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

#define FUSE_SUPER_MAGIC 0x65735546

static struct fuse_session *session; /* loop_lock, until the loop is over */
static const char *mountpoint;
static dev_t mount_dev;            /* the mount's st_dev, to know it is ours */
static pthread_t loop_thread;      /* the thread that runs the session loop */
static int wake_fds[2] = {-1, -1}; /* handler -> thread; 0 byte: stop */
static pthread_t thread;
static bool running;
static volatile sig_atomic_t signals_seen; /* on loop_thread only */

static pthread_mutex_t loop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t loop_over_cond = PTHREAD_COND_INITIALIZER;
static bool loop_over; /* loop_lock: sd_loop_ended() was called */

static const int handled[] = {SIGTERM, SIGINT, SIGHUP};
static struct sigaction before[3]; /* libfuse's handlers, put back by sd_loop_ended */

int sd_sync(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = syncfs(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

static void on_signal(int sig)
{
	int saved = errno;
	/* Only the loop's thread can end its wait: the others pass it on
	 * (libfuse's workers and ours block these signals; other threads of
	 * the process may not). */
	if (!pthread_equal(pthread_self(), loop_thread)) {
		pthread_kill(loop_thread, sig);
	} else if (signals_seen++ == 0) {
		char c = (char)sig;
		if (write(wake_fds[1], &c, 1) != 1)
			fuse_session_exit(session);
	} else {
		fuse_session_exit(session); /* again: stop now, flushed or not */
	}
	errno = saved;
}

/* Open the mount root, if the mount there is still ours. */
static int open_ours(void)
{
	int fd = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	struct statfs sf;
	if (fstat(fd, &st) != 0 || st.st_dev != mount_dev || fstatfs(fd, &sf) != 0 ||
	    sf.f_type != FUSE_SUPER_MAGIC) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool loop_is_over(void)
{
	pthread_mutex_lock(&loop_lock);
	bool over = loop_over;
	pthread_mutex_unlock(&loop_lock);
	return over;
}

static void *run(void *arg)
{
	(void)arg;
	char c = 0;
	while (read(wake_fds[0], &c, 1) < 0 && errno == EINTR)
		;
	if (c == 0)
		return NULL; /* the loop ended first */
	int fd = open_ours();
	if (fd >= 0) {
		/* syncfs() sets the writeback going; its writes are ours once
		 * the workers have answered them all. */
		if (syncfs(fd) != 0) {
			int e = errno;
			if (!loop_is_over()) { /* over: cut short by a second signal */
				syslog(LOG_ERR, "%s: writing back before stopping: %s", mountpoint,
				       strerror(e));
				fprintf(stderr, "sectorfs: %s: writing back before stopping: %s\n",
				        mountpoint, strerror(e));
			}
		} else if (!tr_wait_quiet(0, 30000) && !loop_is_over()) {
			syslog(LOG_WARNING, "%s: writes still coming after 30 s; stopping anyway",
			       mountpoint);
			fprintf(stderr,
			        "sectorfs: %s: writes still coming after 30 s; stopping anyway\n",
			        mountpoint);
		}
		close(fd);
	}
	pthread_mutex_lock(&loop_lock);
	while (!loop_over) {
		fuse_session_exit(session);
		pthread_kill(loop_thread, c); /* its handler: the loop is over */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 10 * 1000 * 1000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&loop_over_cond, &loop_lock, &until);
	}
	pthread_mutex_unlock(&loop_lock);
	return NULL;
}

int sd_start(struct fuse_session *se, const char *mp, dev_t dev)
{
	session = se;
	mountpoint = mp;
	mount_dev = dev;
	loop_thread = pthread_self();
	loop_over = false;
	if (pipe2(wake_fds, O_CLOEXEC) != 0)
		return -errno;
	/* The thread takes none of these signals itself: they go to the
	 * threads libfuse leaves them to. */
	sigset_t block, old;
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof handled / sizeof *handled; i++)
		sigaddset(&block, handled[i]);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	int rc = pthread_create(&thread, NULL, run, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		close(wake_fds[0]);
		close(wake_fds[1]);
		wake_fds[0] = wake_fds[1] = -1;
		return -rc;
	}
	running = true;
	/* No SA_RESTART: the main thread's wait must see the signal. */
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof handled / sizeof *handled; i++)
		sigaction(handled[i], &sa, &before[i]);
	return 0;
}

void sd_loop_ended(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&loop_lock);
	loop_over = true;
	pthread_cond_signal(&loop_over_cond);
	pthread_mutex_unlock(&loop_lock);
	tr_end();
	/* libfuse's handlers again, for the final save and the unmount: a
	 * signal then only asks for an end that is already under way. */
	for (size_t i = 0; i < sizeof handled / sizeof *handled; i++)
		sigaction(handled[i], &before[i], NULL);
	char c = 0;
	ssize_t n = write(wake_fds[1], &c, 1); /* the thread may be past its read */
	(void)n;
}

void sd_finish(void)
{
	if (!running)
		return;
	pthread_join(thread, NULL);
	close(wake_fds[0]);
	close(wake_fds[1]);
	wake_fds[0] = wake_fds[1] = -1;
	running = false;
}
