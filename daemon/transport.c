/* SPDX-License-Identifier: MIT */
/* transport.c - the session's reads and writes, on /dev/fuse or io_uring (prefix tr_).
 *
 * libfuse 3.14 reads requests and writes replies itself; this file takes
 * that job over (fuse_session_custom_io) for two reasons.
 *
 * 1. To accept two flags the kernel offers and libfuse 3.14 cannot
 *    negotiate; the INIT reply gets them when the kernel offered them,
 *    everything else passes through.
 *    - FUSE_HANDLE_KILLPRIV_V2: without it the kernel checks for
 *      security.capability with a GETXATTR request before every write;
 *      with it the kernel leaves clearing suid, sgid and file capabilities
 *      on write, truncate and chown to the filesystem, which the core does
 *      anyway (for every caller, FUSE or not).
 *    - FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6; taken from 6.9 on, see
 *      below): a file opened with FOPEN_DIRECT_IO can still be mapped
 *      shared, through the page cache, which the kernel then keeps
 *      coherent with the direct writes (it writes dirty mapped pages back
 *      and drops them around each direct read and write).  The daemon
 *      opens files for writing that way only when the kernel took this
 *      flag (tr_direct_io_mmap()); without it mmap would fail.
 *
 * 2. To wait for the next request by polling for a short while before
 *    sleeping.  A synchronous request costs two wake-ups: the kernel wakes
 *    a daemon thread, the reply wakes the caller.  Each is an interrupt to
 *    an idle CPU and a context switch, several microseconds on a virtual
 *    machine, more than the work of a stat or a 4 KiB write.  A thread
 *    that is already running when the request comes saves the first one:
 *    so after each request one thread (at most one: a token) keeps trying
 *    non-blocking reads for `spin` microseconds before it blocks.  It
 *    spends CPU only while requests keep coming (measured: stat of small
 *    files +50%, 4 KiB synchronous writes +40%); an idle mount costs
 *    nothing.  It needs one /dev/fuse clone per thread (clone_fd), since
 *    O_NONBLOCK belongs to the open file, which the threads would
 *    otherwise share; without clone_fd the daemon does not poll.
 *
 * 3. To tell when the daemon has answered everything the kernel queued for
 *    it (tr_wait_quiet()).  syncfs() on a FUSE mount only sets the
 *    writeback of its dirty pages going; it does not wait for the daemon's
 *    answers (Linux 6.18 waits for them only in fsync()).  A save, or the
 *    end of the session after a signal, needs that data in the daemon's
 *    memory, so it waits for a moment when /dev/fuse has nothing to read
 *    and no worker holds a request: writeback the kernel holds back
 *    (beyond max_background) joins the queue as earlier writes end, so at
 *    such a moment there is none left either.  Such moments come between
 *    the requests of a busy writer too; a steady quiet period would not.
 *
 * 4. To carry the requests over io_uring when the kernel offers it
 *    (ring.c): the INIT reply takes FUSE_OVER_IO_URING only once the ring
 *    threads are ready, every reply passes through tr_writev(), which
 *    hands the ones for ring requests to their entries, and the quiet test
 *    counts the requests the ring threads hold.  /dev/fuse stays for INIT,
 *    FORGET, INTERRUPT and notifications.  Requests newer than libfuse
 *    3.14 are rewritten on the way in and their replies on the way out,
 *    on either transport (protocol.c).
 */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "fuse_abi.h"
#include "protocol.h"
#include "ring.h"

/* Linux 6.6's flag, in the upper half of the 64 INIT flags (flags2);
 * Debian 12's <linux/fuse.h> is older.  Until Linux 6.9 (protocol 7.40;
 * "fuse: fix VM_MAYSHARE and direct_io_allow_mmap") a shared writable
 * mapping of such a file could drop its stores (msync failed with EIO), so
 * the daemon uses direct I/O only from 7.40 on. */
#define DIRECT_IO_MMAP_MINOR 40

static _Atomic uint64_t init_unique; /* the INIT request, 0 when answered */
static _Atomic bool killpriv_offered;
static _Atomic bool direct_mmap_offered;
static _Atomic bool direct_mmap;      /* negotiated: see tr_direct_io_mmap() */
static _Atomic bool uring_offered;    /* the INIT request offered io_uring */

static struct tr_config config;       /* set once, before the loop */
static struct fuse_session *session;  /* set once */
static char uring_note[256];          /* why /dev/fuse; written once, at INIT */
static _Atomic bool uring_live;       /* the INIT reply took io_uring */

static long spin_ns;            /* 0: never poll (set once, before the loop) */
static int session_fd = -1;     /* the session's /dev/fuse (set once) */
static bool single_thread;      /* one thread serves all (set once) */

/* Requests the workers have read and not finished: a worker has finished
 * one when it asks for the next (libfuse's workers do nothing else in
 * between). */
static _Atomic int requests_held;
static _Atomic unsigned long requests_taken; /* read, ever */
static _Thread_local bool holding;
static _Atomic bool loop_ended;              /* tr_end(): nobody answers any more */
static _Thread_local int nonblocking_fd = -1;  /* this thread's fd, if O_NONBLOCK */

static long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int set_nonblocking(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
		return -1;
	nonblocking_fd = on ? fd : -1;
	return 0;
}

/* One thread at a time reads /dev/fuse (the reader); the other idle
 * workers wait here, not in read(), because the kernel wakes a thread
 * blocked in read() for every request even when the polling reader takes
 * it.  A reader keeps the role through the requests that take a few
 * microseconds (it answers them itself, then polls again: no thread
 * changes hands), and through a large read or write when no other request
 * is waiting: handing on costs a wake-up, and the new reader then polls on
 * the CPU the caller will want back when its answer comes.  Measured with
 * memory warmed, 4 alternating rounds: 2 GiB of 1 MiB sequential writes
 * 1.6-2.2 GB/s handing on, 2.5-2.7 keeping the role; with 4 KiB random
 * writes to another file at the same time, the large writes 1.2-1.4 vs
 * 1.5-1.6 GB/s and the small ones' p99 latency 270-410 vs 240-330 us: a
 * request that comes just after the poll waits for one large copy at most
 * (1 MiB, a few hundred microseconds), no longer than it would have for
 * a hand-over.
 * For the others (a large read or write while more requests wait,
 * directory listings, fallocate, anything that may wait, such as a save)
 * it hands the role on before it starts, so the requests that come
 * meanwhile are served in parallel. */
static pthread_mutex_t reader_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reader_free = PTHREAD_COND_INITIALIZER;
static bool reader_busy;                      /* reader_lock */
static _Thread_local bool reader;             /* this thread has the role */
static pthread_key_t reader_key;              /* set while it has: */

static void leave_reader(void *arg);

/* libfuse may end an idle worker that still has the role (it answered a
 * quick request and was not called again): its exit hands the role on. */
static void reader_exits(void *held)
{
	if (held)
		leave_reader(NULL);
}

static void unlock_reader(void *arg)
{
	(void)arg;
	pthread_mutex_unlock(&reader_lock);
}

/* libfuse cancels its workers when the session ends, at any cancellation
 * point in here: the cleanup handlers leave the lock and the role free. */
static void become_reader(void)
{
	pthread_mutex_lock(&reader_lock);
	pthread_cleanup_push(unlock_reader, NULL);
	while (reader_busy)
		pthread_cond_wait(&reader_free, &reader_lock);
	reader_busy = true;
	pthread_cleanup_pop(1);
	reader = true;
	pthread_setspecific(reader_key, &reader);
}

static void leave_reader(void *arg)
{
	(void)arg;
	reader = false;
	pthread_setspecific(reader_key, NULL);
	pthread_mutex_lock(&reader_lock);
	reader_busy = false;
	pthread_cond_signal(&reader_free);
	pthread_mutex_unlock(&reader_lock);
}

#define QUICK_IO (128 * 1024) /* reads and writes up to this size are quick */

/* A read or write too large to be quick. */
static bool data_request(const void *buf, ssize_t n)
{
	const struct fuse_in_header *h = buf;
	return n >= (ssize_t)sizeof *h && (h->opcode == FUSE_READ || h->opcode == FUSE_WRITE);
}

/* Whether another request is already waiting to be read. */
static bool others_waiting(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* A request the reader answers itself: work of a few microseconds. */
static bool quick(const void *buf, ssize_t n)
{
	if (n < (ssize_t)sizeof(struct fuse_in_header))
		return false;
	const struct fuse_in_header *h = buf;
	switch (h->opcode) {
	case FUSE_LOOKUP:
	case FUSE_GETATTR:
	case FUSE_OPEN:
	case FUSE_OPENDIR:
	case FUSE_CREATE:
	case FUSE_MKNOD:
	case FUSE_MKDIR:
	case FUSE_SYMLINK:
	case FUSE_LINK:
	case FUSE_READLINK:
	case FUSE_STATFS:
	case FUSE_GETXATTR:
	case FUSE_LISTXATTR:
	case FUSE_ACCESS:
	case FUSE_FLUSH:
	case FUSE_LSEEK:
	case FUSE_RELEASEDIR:
	/* These may free a file's memory, which takes time in proportion
	 * (2 GiB: a few hundred ms): rare enough, and on small files they are as
	 * quick as the rest. */
	case FUSE_SETATTR:
	case FUSE_UNLINK:
	case FUSE_RMDIR:
	case FUSE_RENAME:
	case FUSE_RENAME2:
	case FUSE_RELEASE:
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
		return true;
	case FUSE_WRITE:
		return h->len <= QUICK_IO + sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in);
	case FUSE_READ:
		return n >= (ssize_t)(sizeof *h + sizeof(struct fuse_read_in)) &&
		       ((const struct fuse_read_in *)(h + 1))->size <= QUICK_IO;
	default:
		return false;
	}
}

/* Poll for up to spin_ns, then block.  An fd is this thread's alone
 * (clone_fd), so its O_NONBLOCK changes only when the thread moves
 * between polling and sleeping, not on every request. */
static ssize_t read_polling(int fd, void *buf, size_t len)
{
	if (nonblocking_fd == fd || set_nonblocking(fd, true) == 0) {
		long until = now_ns() + spin_ns;
		for (;;) {
			ssize_t n = read(fd, buf, len);
			if (n >= 0 || errno != EAGAIN)
				return n;
			if (now_ns() >= until)
				break;
		}
	}
	if (nonblocking_fd == fd && set_nonblocking(fd, false) != 0)
		return -1;
	return read(fd, buf, len);
}

static ssize_t next_request(int fd, void *buf, size_t len)
{
	if (!spin_ns)
		return read(fd, buf, len);
	/* With io_uring only the rare requests come here (INIT, FORGET,
	 * INTERRUPT): no polling, and the fd blocks again. */
	if (atomic_load_explicit(&uring_live, memory_order_relaxed)) {
		if (reader)
			leave_reader(NULL);
		if (nonblocking_fd == fd && set_nonblocking(fd, false) != 0)
			return -1;
		return read(fd, buf, len);
	}
	if (!reader)
		become_reader();
	ssize_t n;
	int err;
	bool keep;
	pthread_cleanup_push(leave_reader, NULL);
	n = read_polling(fd, buf, len);
	err = errno;
	keep = quick(buf, n) || (data_request(buf, n) && !others_waiting(fd));
	pthread_cleanup_pop(!keep);
	errno = err;
	return n;
}

static ssize_t tr_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	if (holding) {
		holding = false;
		atomic_fetch_sub(&requests_held, 1);
	}
	ssize_t n = next_request(fd, buf, len);
	if (n > 0) {
		holding = true;
		atomic_fetch_add(&requests_held, 1);
		atomic_fetch_add(&requests_taken, 1);
	}
	if (n >= (ssize_t)(sizeof(struct fuse_in_header) + sizeof(struct fuse_init_in)) -
	                 (ssize_t)sizeof(((struct fuse_init_in *)0)->unused)) {
		const struct fuse_in_header *h = buf;
		if (h->opcode == FUSE_INIT) {
			const struct fuse_init_in *in = (const void *)(h + 1);
			atomic_store(&killpriv_offered, (in->flags & FUSE_HANDLE_KILLPRIV_V2) != 0);
			atomic_store(&direct_mmap_offered, in->major == 7 &&
			                                           in->minor >= DIRECT_IO_MMAP_MINOR &&
			                                           (in->flags & FUSE_INIT_EXT) &&
			                                           (in->flags2 & ABI_DIRECT_IO_ALLOW_MMAP));
			atomic_store(&uring_offered,
			             (in->flags & FUSE_INIT_EXT) && (in->flags2 & ABI_OVER_IO_URING));
			atomic_store(&init_unique, h->unique);
		}
	}
	if (n > 0)
		pt_request(buf, (size_t)n);
	return n;
}

/* The payload buffer a ring entry needs: the kernel's rule, with its
 * default of 32 pages when the reply does not set max_pages. */
static size_t ring_payload(const struct fuse_init_out *out, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 8192;
	size_t pages = len >= offsetof(struct fuse_init_out, max_pages) + sizeof out->max_pages &&
	                               (out->flags & FUSE_MAX_PAGES)
	                       ? out->max_pages
	                       : 32;
	if (pages < 32)
		pages = 32;
	if (out->max_write > n)
		n = out->max_write;
	return pages * page > n ? pages * page : n;
}

/* While the INIT reply is being written: io_uring if wanted and offered,
 * and the ring threads are ready. */
static bool take_uring(struct fuse_init_out *out, size_t len)
{
	if (!config.uring)
		return false;
	if (!atomic_load(&uring_offered) || !(out->flags & FUSE_INIT_EXT) ||
	    len < offsetof(struct fuse_init_out, flags2) + sizeof out->flags2) {
		snprintf(uring_note, sizeof uring_note, "the kernel did not offer io_uring at INIT");
		return false;
	}
	if (!rg_prepare(session, session_fd, ring_payload(out, len), config.max_threads)) {
		snprintf(uring_note, sizeof uring_note, "the io_uring threads could not be set up");
		return false;
	}
	out->flags2 |= ABI_OVER_IO_URING;
	return true;
}

static ssize_t tr_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	struct iovec conv[1];
	char room[PT_ROOM] __attribute__((aligned(8)));
	if (pt_reply(iov, count, conv, room)) {
		iov = conv;
		count = 1;
	}
	ssize_t written;
	if (rg_take_reply(iov, count, &written))
		return written;
	uint64_t init = atomic_load_explicit(&init_unique, memory_order_acquire);
	if (init && count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
		struct fuse_out_header *h = iov[0].iov_base;
		if (h->unique == init && h->error == 0 &&
		    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
			struct fuse_init_out *out = iov[1].iov_base;
			if (atomic_load(&killpriv_offered))
				out->flags |= FUSE_HANDLE_KILLPRIV_V2;
			/* flags2 counts only with FUSE_INIT_EXT, which libfuse
			 * 3.14 sets when the kernel did. */
			if (atomic_load(&direct_mmap_offered) && (out->flags & FUSE_INIT_EXT) &&
			    iov[1].iov_len >= offsetof(struct fuse_init_out, flags2) + sizeof(uint32_t)) {
				out->flags2 |= ABI_DIRECT_IO_ALLOW_MMAP;
				atomic_store(&direct_mmap, true);
			}
			bool ring = take_uring(out, iov[1].iov_len);
			atomic_store(&init_unique, 0);
			ssize_t w = writev(fd, iov, count);
			if (ring) {
				rg_start(w >= 0);
				atomic_store(&uring_live, w >= 0);
			}
			return w;
		}
	}
	return writev(fd, iov, count);
}

static const struct fuse_custom_io transport = {.writev = tr_writev, .read = tr_read};

int tr_install(struct fuse_session *se, const struct tr_config *c)
{
	config = *c;
	session = se;
	/* Polling /dev/fuse needs an fd per thread (clone_fd) or one thread. */
	spin_ns = c->clone_fd || c->max_threads == 1 ? (long)c->spin_us * 1000 : 0;
	session_fd = fuse_session_fd(se);
	single_thread = c->max_threads == 1;
	snprintf(uring_note, sizeof uring_note, "%s", c->uring_note ? c->uring_note : "");
	if (spin_ns && pthread_key_create(&reader_key, reader_exits) != 0)
		spin_ns = 0;
	return fuse_session_custom_io(se, &transport, fuse_session_fd(se));
}

bool tr_direct_io_mmap(void)
{
	return atomic_load_explicit(&direct_mmap, memory_order_relaxed);
}

/* A quiet moment: nothing to read and no worker but the caller holding a
 * request, with no request read in the 50 us after the look, which covers
 * a worker whose read() had already taken one it had not counted yet (a
 * few instructions, unless it was preempted right there). */
static int held_now(void)
{
	int ring = rg_held();
	return ring < 0 ? INT32_MAX : atomic_load(&requests_held) + ring;
}

static unsigned long taken_now(void)
{
	return atomic_load(&requests_taken) + rg_taken();
}

static bool quiet_now(int mine)
{
	unsigned long taken = taken_now();
	struct pollfd p = {.fd = session_fd, .events = POLLIN};
	if (held_now() > mine || poll(&p, 1, 0) != 0)
		return false;
	long until = now_ns() + 50 * 1000;
	while (now_ns() < until)
		if (taken_now() != taken)
			return false;
	return held_now() <= mine;
}

bool tr_wait_quiet(int mine, unsigned timeout_ms)
{
	if (session_fd < 0 || (mine && single_thread && !atomic_load(&uring_live)))
		return false;
	long until = now_ns() + (long)timeout_ms * 1000000;
	while (!atomic_load(&loop_ended)) {
		if (quiet_now(mine))
			return true;
		if (now_ns() >= until)
			break;
		nanosleep(&(struct timespec){.tv_nsec = 200 * 1000}, NULL);
	}
	return false;
}

void tr_end(void)
{
	atomic_store(&loop_ended, true);
}

void tr_stop(void)
{
	tr_end();
	rg_stop();
}

void tr_refuse(void)
{
	rg_refuse();
}

bool tr_free(void)
{
	return rg_free();
}

size_t tr_describe(char *buf, size_t len)
{
	if (atomic_load(&uring_live))
		return rg_describe(buf, len);
	int n = snprintf(buf, len, "/dev/fuse%s%s%s", uring_note[0] ? " (io_uring: " : "",
	                 uring_note, uring_note[0] ? ")" : "");
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}
