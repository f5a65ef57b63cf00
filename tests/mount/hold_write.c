/* SPDX-License-Identifier: MIT */
/* hold_write.c - a write that is slow just when the daemon stops: loaded
 * with LD_PRELOAD into the daemon by mount_ring_stress.sh, it holds the
 * first FUSE_WRITE of SFS_HOLD_WRITE bytes that reaches
 * fuse_session_process_buf() (the io_uring threads' way into libfuse),
 * creates the file SFS_HOLD_NOTE to say so, and lets it go on only
 * SFS_HOLD_MS milliseconds after the daemon has called fuse_session_exit()
 * (its loop is ending; the file SFS_HOLD_NOTE.exit says so), or 120 s
 * after it held it.  Such a write makes its changes while the daemon
 * stops, the moment the final save must wait for.  (The stress's workers
 * meet that moment only by rare chance.) */
#define FUSE_USE_VERSION 35
#include <dlfcn.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void (*real_exit)(struct fuse_session *);
static void (*real_process)(struct fuse_session *, const struct fuse_buf *);
static char exit_note[PATH_MAX];
static _Atomic bool exiting, held;

/* Before main: dlsym() is not safe in the signal handler that calls
 * fuse_session_exit(). */
__attribute__((constructor)) static void init(void)
{
	real_exit = (void (*)(struct fuse_session *))dlsym(RTLD_NEXT, "fuse_session_exit");
	real_process = (void (*)(struct fuse_session *, const struct fuse_buf *))dlsym(
	        RTLD_NEXT, "fuse_session_process_buf");
	const char *note = getenv("SFS_HOLD_NOTE");
	if (note)
		snprintf(exit_note, sizeof exit_note, "%s.exit", note);
}

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
}

static void sleep_ms(long ms)
{
	struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
	while (nanosleep(&t, &t) != 0)
		;
}

__attribute__((visibility("default"))) void fuse_session_exit(struct fuse_session *se)
{
	atomic_store(&exiting, true);
	if (exit_note[0])
		touch(exit_note); /* open() and close() are safe in a handler */
	real_exit(se);
}

__attribute__((visibility("default"))) void
fuse_session_process_buf(struct fuse_session *se, const struct fuse_buf *buf)
{
	const char *size = getenv("SFS_HOLD_WRITE"), *note = getenv("SFS_HOLD_NOTE");
	const char *ms = getenv("SFS_HOLD_MS");
	const struct fuse_in_header *in = buf->mem;
	if (size && note && !(buf->flags & FUSE_BUF_IS_FD) &&
	    buf->size >= sizeof *in + sizeof(struct fuse_write_in) && in->opcode == FUSE_WRITE &&
	    ((const struct fuse_write_in *)(in + 1))->size == strtoul(size, NULL, 10) &&
	    !atomic_exchange(&held, true)) {
		touch(note);
		for (int i = 0; i < 120000 && !atomic_load(&exiting); i++)
			sleep_ms(1);
		sleep_ms(ms ? atol(ms) : 0);
	}
	real_process(se, buf);
}
