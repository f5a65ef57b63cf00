/* SPDX-License-Identifier: MIT */
/* ring.c - FUSE over io_uring (prefix rg_).
 *
 * On /dev/fuse every request costs the daemon two system calls (a read
 * that sleeps until one comes, a write for the answer) and the caller two
 * wake-ups, usually across CPUs.  Linux 6.14 added a second transport: the
 * daemon hands the kernel ring entries (io_uring commands on /dev/fuse),
 * one queue of them per possible CPU; a request is put in an entry of the
 * queue of the CPU its caller runs on, and a single command answers a
 * request and hands the entry back for the next one.  When the entry's
 * thread runs on that CPU, caller and daemon take turns on one CPU and
 * neither waits for an interrupt from the other -- while the caller stays
 * there: on a machine with an idle CPU the scheduler moves the caller to
 * it at the wake-up that answers it (its own CPU is still busy with the
 * ring thread), which costs the interrupt after all.  The daemon cannot
 * prevent that; README ("Performance of the mount") has the counts.
 *
 * libfuse 3.14 knows nothing of this, and we keep it for what it does
 * well (decoding requests, encoding replies), so this file is a shim:
 *
 * - Threads.  Each thread has its own ring with exactly one entry, and
 *   serves one queue (it is pinned to that CPU).  A thread that holds a
 *   request therefore delays no other: a queue has per_queue threads
 *   (at least two), so a long request (a save, a large fallocate) leaves
 *   the CPU's other requests to the next thread, as the /dev/fuse workers
 *   did.  It also makes the quiet test sound: a request the kernel keeps
 *   in a queue's list because every entry of it is busy is never invisible
 *   to tr_wait_quiet(), since then more threads hold requests than the one
 *   that asks.  The kernel gives a queue's next request to the entry that
 *   came back last, so the thread that just answered takes it, warm.
 *
 * - Requests.  The kernel puts the fuse_in_header and the request's first
 *   argument (fuse_write_in, ...) in the entry's 288-byte header buffer
 *   and the rest (names, data to write) in its payload buffer.  The two
 *   are one mapping here, header page first, so the request is made whole
 *   for libfuse by copying at most 168 bytes in front of the payload:
 *   data to write is never copied, libfuse hands the op a pointer into the
 *   payload.  It then goes through fuse_session_process_buf(), exactly as
 *   a request read from /dev/fuse.
 *
 * - Replies.  libfuse writes its reply through the session's writev
 *   (transport.c), which gives it to rg_take_reply(): a reply to the
 *   request this thread is serving is copied into the entry (header, and
 *   payload: a read's data is copied once more than on /dev/fuse, which
 *   takes it straight from the sectors) and committed with the next fetch
 *   when the op returns.  Every op of the daemon answers before it
 *   returns on a ring thread (a write that waits for the kernel to drop
 *   pages waits here: rg_inval_begin()), so the answer is always there; if it were not, the request is
 *   answered EIO rather than the entry lost.  Everything else (INIT,
 *   FORGET, INTERRUPT, the kernel's notifications, the answers to
 *   requests that came on /dev/fuse) still goes through /dev/fuse, whose
 *   readers stay.
 *
 * - Never a hung mount.  Once the INIT reply carries FUSE_OVER_IO_URING
 *   the kernel holds every request until each queue has an entry, so the
 *   flag is only set when every thread has its ring and buffers ready
 *   (rg_prepare(), before the reply is written); the entries are handed
 *   over right after it (the kernel refuses them before INIT is
 *   answered).  If the kernel refuses one, it goes back to /dev/fuse by
 *   itself.  On unmount it completes the parked entries with ENOTCONN and
 *   the threads end; a killed daemon's rings are closed with it, which
 *   releases the entries, and the mount answers ENOTCONN until
 *   fusermount3 -u, as on /dev/fuse.
 *
 * - Stopping.  The final save after a signal must hold everything a
 *   request was answered for.  libfuse's workers are joined when the
 *   loop ends; the ring threads are not (the entries must stay until the
 *   connection ends), so rg_stop() tells them to take no request any
 *   more and waits until none is still making changes: what was answered
 *   before is then in memory, and what is answered after made its
 *   changes before.  A request that never ends (it waits for another
 *   that nobody answers now) is cut off after 30 s: its own answer is
 *   never sent, so it cannot tell a caller of a change the save missed.
 *   After the save, whatever the stopped threads hold or get is answered
 *   ENOTCONN (rg_refuse()), so that no request waits on another; a
 *   thread still in a request 10 s later is not joined (rg_free()), and
 *   the daemon ends without freeing what it may use.
 *
 * - Waiting.  A thread sleeps in io_uring_enter() until its entry gets a
 *   request; it does not poll (spin= is /dev/fuse's).  Polling the
 *   completion ring for 50 us after each answer (one thread at a time,
 *   run its completion work as soon as the kernel flags it) was measured
 *   against sleeping, 20,000 small files, two alternating rounds on this
 *   2-CPU machine: sleeping gave 2.1x the creates, 1.5-2.5x the stats
 *   and 2.6x the reads.  Again on a quiet machine, the same files, two
 *   rounds each: polling answered a lone getxattr in 18 us against 25
 *   (it keeps its CPU busy, so the caller is not moved, see above), but
 *   gave 0.6-0.7x the creates, 0.5x the reads and 0.8x the deletes.  A
 *   thread pinned to the caller's CPU that polls takes that CPU from the
 *   caller it is about to wake; one that sleeps gives it back at once.  The rings run their completion work only when
 *   their thread asks (DEFER_TASKRUN), which also tells, through
 *   IORING_SQ_TASKRUN, that a request is on its way to the thread:
 *   rg_held() sees it.
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fuse_abi.h"
#include "protocol.h"

#define ENABLE_URING "/sys/module/fuse/parameters/enable_uring"
#define RING_FLAGS                                                                            \
	(IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |       \
	 IORING_SETUP_TASKRUN_FLAG)
#define STOP_TAG 1 /* user_data of the stop poll; an entry's is its thread */
#define STOP_WAIT_S 30 /* rg_stop() waits this long for requests in progress */
#define END_WAIT_S 10  /* rg_free() waits this long for them to end */
/* The header buffer, then room to make a request whole in front of the
 * payload: the header and the first argument, 40 + 128 bytes. */
#define HEADER_ROOM 4096

/* A thread's state.  HOLDING: it holds a request whose changes may not
 * all be made yet; CHANGED: it still holds one, but every change the
 * request makes is made (only notices to the kernel and the answer
 * remain).  rg_stop() waits for no thread to be HOLDING. */
enum { WAITING, HOLDING, CHANGED, GONE };

struct rg_thread {
	struct io_uring ring;             /* [own] this thread's alone */
	pthread_t tid;                    /* [const] */
	unsigned qid;                     /* [const] the CPU whose requests it serves */
	char *mem;                        /* [const] HEADER_ROOM + payload bytes */
	struct abi_uring_req_header *hdr; /* [const] at mem */
	char *payload;                    /* [const] at mem + HEADER_ROOM */
	struct iovec iov[2];              /* [const] what REGISTER hands over */
	bool ring_made;                   /* [own] ring needs io_uring_queue_exit */
	bool created;                     /* [lock] the thread exists (to join) */
	int err;                          /* [lock] setup's errno, 0 if ready */
	uint64_t unique;                  /* [own] the request being answered */
	bool replied;                     /* [own] its answer is in the entry */
	_Atomic int state;                /* WAITING, HOLDING, CHANGED, GONE */
	_Atomic unsigned sq_tail;         /* SQ tail when it went WAITING */
	bool cut;                         /* [lock] still HOLDING when rg_stop() gave up:
	                                   * its own answer never leaves (park() refuses) */
};

static struct {
	struct fuse_session *se; /* [const once prepared] */
	int fd;                  /* [const] the session's /dev/fuse */
	size_t payload;          /* [const] bytes of an entry's payload */
	unsigned queues, n;      /* [const] queues; threads in all */
	struct rg_thread *t;     /* [const] n of them */
	unsigned per_queue;      /* [const] threads of each queue */
	_Atomic unsigned *in_inval; /* [const ptr] per queue: its threads waiting in rg_inval_begin()'s grant */
	int stop_fd;             /* [const] eventfd: readable once rg_stop() */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned ready; /* [lock] threads done with setup */
	int go;         /* [lock] 0: wait, 1: register, -1: end */
	bool release;   /* [lock] stopped threads may end (rg_free()) */
	bool refusing;  /* [lock] parked threads answer ENOTCONN (rg_refuse()) */
	_Atomic bool stopping;        /* rg_stop(): take no request any more */
	_Atomic bool started;         /* entries handed over: rg_held() looks */
	_Atomic int refused;          /* errno of a refused entry (0: none) */
	_Atomic unsigned long taken;  /* requests taken, ever */
} rg = {.fd = -1, .stop_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER,
        .cond = PTHREAD_COND_INITIALIZER};

static _Thread_local struct rg_thread *serving; /* the entry this thread answers */

/* How many CPUs may ever exist (/sys/devices/system/cpu/possible, "0-3"
 * or "0,2-5"): the kernel makes as many queues, and a queue's number is a
 * CPU's. */
static unsigned possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	char line[4096];
	unsigned n = 0;
	if (f && fgets(line, sizeof line, f)) {
		for (char *p = line; *p && *p != '\n';) {
			char *end;
			unsigned long a = strtoul(p, &end, 10), b = a;
			if (end == p)
				break;
			if (*end == '-')
				b = strtoul(end + 1, &end, 10);
			n += b >= a ? (unsigned)(b - a + 1) : 0;
			p = *end == ',' ? end + 1 : end;
		}
	}
	if (f)
		fclose(f);
	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_CONF);
		n = c > 0 ? (unsigned)c : 1;
	}
	return n;
}

int rg_probe(char *why, size_t len)
{
	char v[4] = "";
	int fd = open(ENABLE_URING, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len,
		         "this kernel has no FUSE over io_uring (no %s: it needs Linux 6.14 or later, "
		         "built with CONFIG_FUSE_IO_URING)",
		         ENABLE_URING);
		return -EOPNOTSUPP;
	}
	ssize_t n = read(fd, v, sizeof v - 1);
	close(fd);
	if (n < 1 || v[0] != 'Y') {
		snprintf(why, len,
		         "the kernel has FUSE over io_uring turned off (as root: echo Y > %s)",
		         ENABLE_URING);
		return -EOPNOTSUPP;
	}
	struct io_uring r;
	struct io_uring_params p = {.flags = RING_FLAGS};
	int rc = io_uring_queue_init_params(4, &r, &p);
	if (rc) {
		snprintf(why, len, "io_uring cannot be set up here: %s%s", strerror(-rc),
		         rc == -EPERM ? " (see sysctl kernel.io_uring_disabled)" : "");
		return rc;
	}
	io_uring_queue_exit(&r);
	return 0;
}

/* ---- a thread's ring ---- */

static struct io_uring_sqe *fuse_cmd(struct rg_thread *t, unsigned op, uint64_t commit_id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
	if (!sqe)
		return NULL; /* cannot happen: one entry, one command at a time */
	memset(sqe, 0, 2 * sizeof *sqe); /* SQE128: the command area follows */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->fd = 0; /* the registered /dev/fuse */
	sqe->cmd_op = op;
	io_uring_sqe_set_data(sqe, t);
	struct abi_uring_cmd_req *req = (struct abi_uring_cmd_req *)sqe->cmd;
	req->qid = (uint16_t)t->qid;
	req->commit_id = commit_id;
	if (op == ABI_URING_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)t->iov;
		sqe->len = 2;
	}
	return sqe;
}

static void pin(unsigned cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	/* An offline CPU sends no requests: its threads may run anywhere. */
	(void)sched_setaffinity(0, sizeof set, &set);
}

static int setup(struct rg_thread *t)
{
	struct io_uring_params p = {.flags = RING_FLAGS};
	int rc = io_uring_queue_init_params(4, &t->ring, &p);
	if (rc)
		return rc;
	t->ring_made = true;
	rc = io_uring_register_files(&t->ring, &rg.fd, 1);
	if (rc)
		return rc;
	t->mem = mmap(NULL, HEADER_ROOM + rg.payload, PROT_READ | PROT_WRITE,
	              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->mem == MAP_FAILED) {
		t->mem = NULL;
		return -errno;
	}
	t->hdr = (struct abi_uring_req_header *)t->mem;
	t->payload = t->mem + HEADER_ROOM;
	t->iov[0] = (struct iovec){.iov_base = t->hdr, .iov_len = sizeof *t->hdr};
	t->iov[1] = (struct iovec){.iov_base = t->payload, .iov_len = rg.payload};
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
	io_uring_prep_poll_add(sqe, rg.stop_fd, POLLIN);
	io_uring_sqe_set_data(sqe, (void *)(uintptr_t)STOP_TAG);
	return 0;
}

/* Publish that the thread waits, with the commands it queued: until the
 * kernel has taken them (the SQ head reaches this tail) a committed entry
 * may be getting its next request. */
static void going_to_wait(struct rg_thread *t)
{
	atomic_store_explicit(&t->sq_tail, t->ring.sq.sqe_tail, memory_order_relaxed);
	atomic_store_explicit(&t->state, WAITING, memory_order_release);
}

/* The next completion: a request in the entry, an error, or the stop. */
static struct io_uring_cqe *next_cqe(struct rg_thread *t)
{
	struct io_uring_cqe *cqe;
	going_to_wait(t);
	for (;;) {
		int rc = io_uring_submit_and_wait(&t->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			return NULL;
		if (io_uring_peek_cqe(&t->ring, &cqe) == 0)
			return cqe;
	}
}

/* Answer the request in the entry; the caller commits the answer (with
 * the next fetch) by the id returned. */
static uint64_t answer(struct rg_thread *t)
{
	const struct fuse_in_header *in = (const void *)t->hdr->in_out;
	struct abi_uring_ent_in_out *ent = &t->hdr->ent;
	uint64_t commit_id = ent->commit_id;
	size_t payload = ent->payload_sz;
	t->unique = in->unique;
	t->replied = false;
	if (in->len >= sizeof *in + payload && in->len - sizeof *in - payload <= sizeof t->hdr->op_in &&
	    payload <= rg.payload) {
		size_t oplen = in->len - sizeof *in - payload;
		char *msg = t->payload - oplen - sizeof *in;
		memcpy(msg, in, sizeof *in);
		memcpy(msg + sizeof *in, t->hdr->op_in, oplen);
		struct fuse_buf buf = {.size = in->len, .mem = msg};
		pt_request(msg, buf.size);
		serving = t;
		fuse_session_process_buf(rg.se, &buf);
		serving = NULL;
	}
	if (!t->replied) { /* malformed, or an op that did not answer */
		struct fuse_out_header *out = (void *)t->hdr->in_out;
		*out = (struct fuse_out_header){.len = sizeof *out, .error = -EIO, .unique = t->unique};
		ent->payload_sz = 0;
	}
	return commit_id;
}

bool rg_take_reply(const struct iovec *iov, int count, ssize_t *n)
{
	struct rg_thread *t = serving;
	if (!t || t->replied || count < 1 || iov[0].iov_len < sizeof(struct fuse_out_header))
		return false;
	const struct fuse_out_header *out = iov[0].iov_base;
	if (out->unique != t->unique)
		return false; /* another request's: an interrupt's, say */
	struct fuse_out_header *h = (void *)t->hdr->in_out;
	*h = *out;
	size_t used = 0, total = 0;
	for (int i = 0; i < count; i++) {
		const char *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;
		total += len;
		if (i == 0)
			p += sizeof *out, len -= sizeof *out;
		if (used + len > rg.payload) {
			h->error = -EIO; /* cannot happen: replies fit max_write */
			used = 0;
			break;
		}
		memcpy(t->payload + used, p, len);
		used += len;
	}
	t->hdr->ent.payload_sz = (uint32_t)used;
	t->replied = true;
	*n = (ssize_t)total;
	return true;
}

void rg_changes_made(void)
{
	if (serving)
		atomic_store(&serving->state, CHANGED);
}

int rg_inval_begin(void)
{
	struct rg_thread *t = serving;
	if (!t)
		return -1;
	/* One thread of every queue never waits here: the read that holds a
	 * page lock the kernel waits for can always be answered. */
	if (atomic_fetch_add(&rg.in_inval[t->qid], 1) + 1 < rg.per_queue)
		return 1;
	atomic_fetch_sub(&rg.in_inval[t->qid], 1);
	return 0;
}

void rg_inval_end(void)
{
	atomic_fetch_sub(&rg.in_inval[serving->qid], 1);
}

/* Answer the request in the entry with ENOTCONN, whatever answer is
 * there already, and hand the entry back. */
static void refuse(struct rg_thread *t)
{
	const struct fuse_in_header *in = (const void *)t->hdr->in_out;
	uint64_t unique = in->unique, commit_id = t->hdr->ent.commit_id;
	struct fuse_out_header *out = (void *)t->hdr->in_out;
	*out = (struct fuse_out_header){.len = sizeof *out, .error = -ENOTCONN, .unique = unique};
	t->hdr->ent.payload_sz = 0;
	fuse_cmd(t, ABI_URING_CMD_COMMIT_AND_FETCH, commit_id);
	io_uring_submit(&t->ring);
}

/* After rg_stop(): answer nothing more (`holding`: a request is in the
 * entry), and stay until rg_free().  A request the kernel gives the entry
 * now waits, unanswered, as one left in /dev/fuse would; were the thread
 * gone, the kernel would cancel it at once (ECANCELED), before the final
 * save.  Once that save is over (rg_refuse()), every request held or
 * given is answered ENOTCONN: a thread still in a request may wait for
 * one of them (a page lock the kernel holds for a read), and the
 * connection does not end by itself while the rings hold /dev/fuse.  The
 * thread lets the ring run its completion work meanwhile: an entry whose
 * request is half-way to it would otherwise never come back, and an
 * unmount waits for every entry. */
static void park(struct rg_thread *t, bool holding)
{
	atomic_store_explicit(&t->state, GONE, memory_order_release);
	for (;;) {
		pthread_mutex_lock(&rg.lock);
		bool release = rg.release, refusing = rg.refusing;
		pthread_mutex_unlock(&rg.lock);
		if (refusing && holding) {
			refuse(t);
			holding = false;
		}
		if (release)
			return;
		struct io_uring_cqe *cqe;
		struct __kernel_timespec wait = {.tv_nsec = 50 * 1000 * 1000};
		if (io_uring_wait_cqe_timeout(&t->ring, &cqe, &wait) == 0) {
			if (io_uring_cqe_get_data(cqe) == t && cqe->res == 0)
				holding = true; /* a request came: answered once refusing */
			io_uring_cqe_seen(&t->ring, cqe);
		}
	}
}

/* After a stop, whether rg_stop() gave up waiting for this thread's
 * request: its answer must then never leave. */
static bool cut_off(struct rg_thread *t)
{
	pthread_mutex_lock(&rg.lock);
	bool cut = t->cut;
	pthread_mutex_unlock(&rg.lock);
	return cut;
}

static void *serve(void *arg)
{
	struct rg_thread *t = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the loop's */
	char name[16];
	snprintf(name, sizeof name, "sfs-ring%u", t->qid);
	pthread_setname_np(pthread_self(), name);
	pin(t->qid);
	int err = setup(t);
	pthread_mutex_lock(&rg.lock);
	t->err = err;
	rg.ready++;
	pthread_cond_broadcast(&rg.cond);
	while (rg.go == 0)
		pthread_cond_wait(&rg.cond, &rg.lock);
	int go = rg.go;
	pthread_mutex_unlock(&rg.lock);
	if (err || go < 0)
		goto out;

	fuse_cmd(t, ABI_URING_CMD_REGISTER, 0);
	for (;;) {
		struct io_uring_cqe *cqe = next_cqe(t);
		if (!cqe)
			break;
		if (io_uring_cqe_get_data(cqe) == (void *)(uintptr_t)STOP_TAG) {
			park(t, false);
			break;
		}
		int res = cqe->res;
		/* HOLDING, then the stop flag, both sequentially consistent:
		 * either rg_stop() sees this thread HOLDING and waits for it,
		 * or this thread sees the stop and answers nothing more. */
		atomic_store(&t->state, HOLDING);
		io_uring_cqe_seen(&t->ring, cqe);
		if (atomic_load(&rg.stopping)) {
			park(t, res == 0); /* a request in the entry stays unanswered */
			break;
		}
		if (res == 0) {
			atomic_fetch_add_explicit(&rg.taken, 1, memory_order_relaxed);
			uint64_t commit_id = answer(t);
			atomic_store(&t->state, CHANGED);
			if (atomic_load(&rg.stopping) && cut_off(t)) {
				park(t, true); /* its changes may have missed the final save */
				break;
			}
			fuse_cmd(t, ABI_URING_CMD_COMMIT_AND_FETCH, commit_id);
			continue;
		}
		if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED)
			break; /* unmounted, or the connection aborted */
		if (res == -EAGAIN || res == -EINTR || res == -ENOENT) {
			/* Not ready yet, or a commit the kernel no longer
			 * wanted (its request ended): hand the entry over anew. */
			if (res == -EAGAIN)
				nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
			fuse_cmd(t, ABI_URING_CMD_REGISTER, 0);
			continue;
		}
		/* Refused: the kernel goes on with /dev/fuse. */
		atomic_store(&rg.refused, -res);
		break;
	}
out:
	atomic_store_explicit(&t->state, GONE, memory_order_release);
	return NULL;
}

/* ---- the pool ---- */

static void free_all(void)
{
	for (unsigned i = 0; i < rg.n; i++) {
		struct rg_thread *t = &rg.t[i];
		if (t->ring_made)
			io_uring_queue_exit(&t->ring);
		/* The thread is gone: the kernel no longer copies into its
		 * entry (such work ends with the task). */
		if (t->mem)
			munmap(t->mem, HEADER_ROOM + rg.payload);
	}
	free(rg.t);
	rg.t = NULL;
	rg.n = 0;
	free((void *)rg.in_inval);
	rg.in_inval = NULL;
	if (rg.stop_fd >= 0)
		close(rg.stop_fd);
	rg.stop_fd = -1;
}

/* Stop answering (release: and end). */
static void stop_threads(bool release)
{
	pthread_mutex_lock(&rg.lock);
	if (rg.go == 0)
		rg.go = -1;
	rg.release = release;
	pthread_cond_broadcast(&rg.cond);
	pthread_mutex_unlock(&rg.lock);
	uint64_t one = 1;
	if (rg.stop_fd >= 0 && write(rg.stop_fd, &one, sizeof one) != sizeof one)
		perror("sectorfs: stopping the io_uring threads");
}

static bool end_threads(void)
{
	if (atomic_load(&rg.stopping)) {
		/* A thread still in a request may wait for the answer to
		 * another: the others answer ENOTCONN until it is done too. */
		rg_refuse();
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		time_t until = now.tv_sec + END_WAIT_S;
		unsigned busy;
		do {
			busy = 0;
			for (unsigned i = 0; i < rg.n; i++)
				busy += rg.t[i].created && atomic_load(&rg.t[i].state) != GONE;
			if (busy)
				nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
			clock_gettime(CLOCK_MONOTONIC, &now);
		} while (busy && now.tv_sec < until);
		if (busy) {
			/* Never joined: the process ends with it (and frees what
			 * it uses).  The parked threads go on refusing until then. */
			fprintf(stderr, "sectorfs: %u io_uring thread(s) still in a request at the end\n",
			        busy);
			return false;
		}
	}
	stop_threads(true);
	for (unsigned i = 0; i < rg.n; i++)
		if (rg.t[i].created)
			pthread_join(rg.t[i].tid, NULL);
	atomic_store(&rg.started, false);
	free_all();
	return true;
}

bool rg_prepare(struct fuse_session *se, int fd, size_t payload, unsigned threads)
{
	rg.se = se;
	rg.fd = fd;
	rg.payload = payload;
	rg.queues = possible_cpus();
	unsigned per_queue = (threads + rg.queues - 1) / rg.queues;
	if (per_queue < 2)
		per_queue = 2;
	rg.n = rg.queues * per_queue;
	rg.per_queue = per_queue;
	rg.t = calloc(rg.n, sizeof *rg.t);
	rg.in_inval = calloc(rg.queues, sizeof *rg.in_inval);
	rg.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (!rg.t || !rg.in_inval || rg.stop_fd < 0) {
		if (!rg.t)
			rg.n = 0;
		free_all();
		return false;
	}
	unsigned created = 0;
	for (unsigned i = 0; i < rg.n; i++) {
		struct rg_thread *t = &rg.t[i];
		t->qid = i % rg.queues;
		if (pthread_create(&t->tid, NULL, serve, t) != 0)
			break;
		t->created = true;
		created++;
	}
	pthread_mutex_lock(&rg.lock);
	while (rg.ready < created)
		pthread_cond_wait(&rg.cond, &rg.lock);
	bool ok = created == rg.n;
	for (unsigned i = 0; i < created; i++)
		ok = ok && rg.t[i].err == 0;
	pthread_mutex_unlock(&rg.lock);
	if (!ok)
		(void)end_threads();
	return ok;
}

void rg_start(bool go)
{
	if (!rg.n)
		return;
	if (!go) {
		(void)end_threads();
		return;
	}
	atomic_store(&rg.started, true);
	pthread_mutex_lock(&rg.lock);
	rg.go = 1;
	pthread_cond_broadcast(&rg.cond);
	pthread_mutex_unlock(&rg.lock);
}

int rg_held(void)
{
	if (!atomic_load_explicit(&rg.started, memory_order_acquire))
		return 0;
	int held = 0;
	for (unsigned i = 0; i < rg.n; i++) {
		struct rg_thread *t = &rg.t[i];
		int s = atomic_load_explicit(&t->state, memory_order_acquire);
		if (s == GONE)
			continue;
		if (s == HOLDING || s == CHANGED) {
			held++;
			continue;
		}
		unsigned tail = atomic_load_explicit(&t->sq_tail, memory_order_relaxed);
		if (__atomic_load_n(t->ring.sq.khead, __ATOMIC_ACQUIRE) != tail ||
		    __atomic_load_n(t->ring.cq.ktail, __ATOMIC_ACQUIRE) !=
		            __atomic_load_n(t->ring.cq.khead, __ATOMIC_ACQUIRE) ||
		    (__atomic_load_n(t->ring.sq.kflags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN))
			return -1;
	}
	return held;
}

unsigned long rg_taken(void)
{
	return atomic_load_explicit(&rg.taken, memory_order_relaxed);
}

void rg_stop(void)
{
	if (!rg.n)
		return;
	atomic_store(&rg.stopping, true);
	stop_threads(false);
	/* Every request answered so far, or answered from now on, has made
	 * its changes once no thread is HOLDING (see serve()): the final save
	 * that follows holds them all.  A request that never ends (it would
	 * wait for another that nobody answers now) is given STOP_WAIT_S;
	 * then its answer is dropped (cut): never sent, it becomes ENOTCONN
	 * after the save (rg_refuse()), or ECONNABORTED when the process
	 * ends. */
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	time_t until = now.tv_sec + STOP_WAIT_S;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		unsigned holding = 0;
		pthread_mutex_lock(&rg.lock);
		for (unsigned i = 0; i < rg.n; i++)
			holding += atomic_load(&rg.t[i].state) == HOLDING;
		bool give_up = holding && now.tv_sec >= until;
		for (unsigned i = 0; give_up && i < rg.n; i++)
			rg.t[i].cut = atomic_load(&rg.t[i].state) == HOLDING;
		pthread_mutex_unlock(&rg.lock);
		if (!holding)
			return;
		if (give_up) {
			syslog(LOG_WARNING,
			       "%u request(s) still in progress %d s after the stop: not answered "
			       "before the save",
			       holding, STOP_WAIT_S);
			fprintf(stderr,
			        "sectorfs: %u request(s) still in progress %d s after the stop: "
			        "not answered before the save\n",
			        holding, STOP_WAIT_S);
			return;
		}
		nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
	}
}

void rg_refuse(void)
{
	pthread_mutex_lock(&rg.lock);
	rg.refusing = true;
	pthread_mutex_unlock(&rg.lock);
}

bool rg_free(void)
{
	return rg.n == 0 || end_threads();
}

size_t rg_describe(char *buf, size_t len)
{
	int n;
	int refused = atomic_load(&rg.refused);
	if (!atomic_load(&rg.started))
		n = snprintf(buf, len, "/dev/fuse");
	else if (refused)
		n = snprintf(buf, len, "/dev/fuse (the kernel refused the io_uring entries: %s)",
		             strerror(refused));
	else
		n = snprintf(buf, len, "io_uring, %u queues x %u threads", rg.queues,
		             rg.n / rg.queues);
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}
