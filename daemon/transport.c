/* transport.c - the session's reads and writes on /dev/fuse (prefix tr_).
 *
 * libfuse 3.14 reads requests and writes replies itself; this file takes
 * that job over (fuse_session_custom_io) for one reason: to accept
 * FUSE_HANDLE_KILLPRIV_V2, which the kernel offers and libfuse 3.14 cannot
 * negotiate.  Without it the kernel checks for security.capability with a
 * GETXATTR request before every write; with it the kernel leaves clearing
 * suid, sgid and file capabilities on write, truncate and chown to the
 * filesystem, which the core does anyway (for every caller, FUSE or not).
 * So the INIT reply gets that one flag, when the kernel offered it, and
 * everything else passes through untouched.
 */
#include "transport.h"

#include <errno.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

static _Atomic uint64_t init_unique; /* the INIT request, 0 when answered */
static _Atomic bool killpriv_offered;

static ssize_t tr_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	ssize_t n = read(fd, buf, len);
	if (n >= (ssize_t)(sizeof(struct fuse_in_header) + sizeof(struct fuse_init_in)) -
	                 (ssize_t)sizeof(((struct fuse_init_in *)0)->unused)) {
		const struct fuse_in_header *h = buf;
		if (h->opcode == FUSE_INIT) {
			const struct fuse_init_in *in = (const void *)(h + 1);
			atomic_store(&killpriv_offered, (in->flags & FUSE_HANDLE_KILLPRIV_V2) != 0);
			atomic_store(&init_unique, h->unique);
		}
	}
	return n;
}

static ssize_t tr_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	uint64_t init = atomic_load_explicit(&init_unique, memory_order_acquire);
	if (init && count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
		struct fuse_out_header *h = iov[0].iov_base;
		if (h->unique == init && h->error == 0 &&
		    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
			struct fuse_init_out *out = iov[1].iov_base;
			if (atomic_load(&killpriv_offered))
				out->flags |= FUSE_HANDLE_KILLPRIV_V2;
			atomic_store(&init_unique, 0);
		}
	}
	return writev(fd, iov, count);
}

static const struct fuse_custom_io transport = {.writev = tr_writev, .read = tr_read};

int tr_install(struct fuse_session *se)
{
	return fuse_session_custom_io(se, &transport, fuse_session_fd(se));
}
