/* SPDX-License-Identifier: MIT */
/* clone_cmd.c - `sectorfs clone SRC DST`: a copy of a tree, as cp -a makes
 * it, that shares every file's sectors (sfs_path_clone in the daemon).
 *
 * How the command reaches the daemon.  We chose an ioctl over a control
 * file or an xattr (as s3ql and JuiceFS do): during an ioctl the kernel
 * holds none of the filesystem's locks, so the daemon can tell it about
 * the new name before it answers (a setxattr holds the directory's lock,
 * and the kernel would deadlock on that notice); the request carries the
 * caller's uid, gid and pid, so the daemon checks permissions as that
 * user; and nothing has to exist in the namespace but the files
 * themselves.  The ioctl goes to SRC itself (or, if SRC cannot be opened,
 * to DST's directory), a "restricted" FUSE ioctl whose size is in its
 * number, carrying both paths as the filesystem names them: the command
 * resolves SRC and DST's directory (the last component is not followed,
 * as cp -a does not), finds their mount in /proc/self/mountinfo, checks
 * that both are in one sectorfs mount (else EXDEV) and that nothing is
 * mounted below SRC (the daemon would copy what such a mount hides, where
 * cp -a copies what it shows: refused), and turns each path
 * into the filesystem's own (the mount's root, for a bind mount of a
 * subdirectory, plus the rest).  The daemon resolves them again with the
 * caller's credentials (sfs_path_clone checks search permission on every
 * directory, read permission on everything copied, write permission where
 * the copy goes), so the command grants nothing the caller could not do
 * with cp -a.
 *
 * The kernel caches names for a long time, missing ones included (only
 * our own requests change the tree, ops.c): once the clone is made, the
 * daemon invalidates DST's entry in its directory, and only then answers,
 * so the copy is visible when the command returns.  With one worker
 * thread (max_threads=1) that notice could wait for a directory lock held
 * by a request only this thread would serve; it is then sent by a helper
 * thread instead, and the copy may take a moment longer to appear.
 */
#include "clone_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mountinfo.h"
#include "ring.h"
#include "say.h"

/* ---- in the daemon ---- */

struct notice {
	struct fuse_session *se;
	fuse_ino_t parent;
	char name[SFS_NAME_MAX + 1];
};

static _Atomic int notices_out; /* helper threads still sending one */

static void *send_notice(void *arg)
{
	struct notice *n = arg;
	fuse_lowlevel_notify_inval_entry(n->se, n->parent, n->name, strlen(n->name));
	free(n);
	atomic_fetch_sub(&notices_out, 1);
	return NULL;
}

/* The kernel forgets what it knew of the name `dst` (a missing entry). */
static void tell_kernel(struct daemon *d, const char *dst)
{
	const char *slash = strrchr(dst, '/');
	struct notice *n = calloc(1, sizeof *n);
	if (!slash || !n || !d->se) {
		free(n);
		return;
	}
	char parent[sizeof ((struct clone_ioc *)0)->dst];
	snprintf(parent, sizeof parent, "%.*s", slash == dst ? 1 : (int)(slash - dst), dst);
	snprintf(n->name, sizeof n->name, "%s", slash + 1);
	struct sfs_entry e;
	if (sfs_path_lookup(d->fs, NULL, parent, true, &e) != 0) {
		free(n);
		return;
	}
	sfs_forget(d->fs, e.ino, 1);
	n->se = d->se;
	n->parent = e.ino;
	atomic_fetch_add(&notices_out, 1);
	if (!d->single_thread) {
		send_notice(n);
		return;
	}
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	bool made = pthread_attr_init(&attr) == 0 &&
	            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
	            pthread_create(&th, &attr, send_notice, n) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (!made)
		send_notice(n); /* no thread to spare: risk it */
}

void clone_finish(void)
{
	/* The loop has ended: a notice in flight gets its answer (or the
	 * connection's end) at once. */
	for (int i = 0; i < 2000 && atomic_load(&notices_out) > 0; i++)
		usleep(1000);
}

/* The caller's supplementary groups (malloc'd; NULL and 0 if none). */
static gid_t *caller_groups(fuse_req_t req, int *n)
{
	gid_t *list = NULL;
	int have = 0, want = 32;
	while (want > have) {
		gid_t *more = realloc(list, (size_t)want * sizeof *list);
		if (!more)
			break;
		list = more;
		have = want;
		want = fuse_req_getgroups(req, have, list);
	}
	*n = want > 0 && want <= have ? want : 0;
	return list;
}

void clone_request(fuse_req_t req, const void *in, size_t insize, size_t outsize)
{
	struct daemon *d = fuse_req_userdata(req);
	struct clone_ioc *io = malloc(sizeof *io);
	if (!io) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (insize != sizeof *io || outsize != sizeof *io) {
		free(io);
		fuse_reply_err(req, EINVAL);
		return;
	}
	memcpy(io, in, sizeof *io);
	io->src[sizeof io->src - 1] = io->dst[sizeof io->dst - 1] = '\0';
	io->message[0] = '\0';
	if (io->version != CLONE_IOC_VERSION) {
		io->result = -EINVAL;
		snprintf(io->message, sizeof io->message, "unknown request version %u", io->version);
	} else if (d->read_only) {
		io->result = -EROFS;
		snprintf(io->message, sizeof io->message, "the mount is read-only");
	} else {
		const struct fuse_ctx *c = fuse_req_ctx(req);
		int ngroups;
		gid_t *groups = caller_groups(req, &ngroups);
		struct sfs_cred cr = {.uid = c->uid, .gid = c->gid, .groups = groups,
		                      .ngroups = ngroups};
		io->result = sfs_path_clone(d->fs, &cr, io->src, io->dst, io->message,
		                            sizeof io->message);
		free(groups);
		if (io->result == 0) {
			rg_changes_made(); /* a stop need not wait for the notice */
			tell_kernel(d, io->dst);
		}
	}
	fuse_reply_ioctl(req, 0, io, sizeof *io);
	free(io);
}

/* ---- the command ---- */

/* `path` made absolute and resolved, but for its last component (which
 * is resolved too when it is "." or ".."): 0 or -errno. */
static int resolve_but_last(const char *path, char *out)
{
	char copy[PATH_MAX];
	if (snprintf(copy, sizeof copy, "%s", path) >= (int)sizeof copy)
		return -ENAMETOOLONG;
	size_t n = strlen(copy);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = '\0';
	char *slash = strrchr(copy, '/');
	const char *last = slash ? slash + 1 : copy;
	if (!strcmp(copy, "/") || !strcmp(last, ".") || !strcmp(last, "..") || !*last)
		return realpath(copy, out) ? 0 : -errno;
	char dir[PATH_MAX];
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else
		snprintf(dir, sizeof dir, "%.*s", slash == copy ? 1 : (int)(slash - copy), copy);
	char real[PATH_MAX];
	if (!realpath(dir, real))
		return -errno;
	if (snprintf(out, PATH_MAX, "%s%s%s", real, strcmp(real, "/") ? "/" : "", last) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* The filesystem's own name for `abs`, which lies on mount m. */
static int fs_path(const struct mi_mount *m, const char *abs, char *out, size_t size)
{
	const char *rest = strcmp(m->point, "/") ? abs + strlen(m->point) : abs;
	const char *root = strcmp(m->root, "/") ? m->root : "";
	int n = snprintf(out, size, "%s%s", root, *rest ? rest : (*root ? "" : "/"));
	return n >= 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

int clone_command(const char *src, const char *dst)
{
	char sabs[PATH_MAX], dabs[PATH_MAX], ddir[PATH_MAX];
	struct stat sst, st;
	int rc = resolve_but_last(src, sabs);
	if (rc == 0 && lstat(sabs, &sst) != 0)
		rc = -errno;
	if (rc)
		return say_error("cannot clone %s: %s", src, strerror(-rc));
	rc = resolve_but_last(dst, dabs);
	if (rc == 0 && lstat(dabs, &st) == 0)
		rc = -EEXIST;
	if (rc)
		return say_error("cannot clone to %s: %s", dst, strerror(-rc));
	const char *slash = strrchr(dabs, '/');
	snprintf(ddir, sizeof ddir, "%.*s", slash == dabs ? 1 : (int)(slash - dabs), dabs);
	struct mi_mount ms, md;
	if (!mi_under(sabs, &ms) || strcmp(ms.type, "fuse.sectorfs"))
		return say_error("cannot clone %s: not in a sectorfs mount", src);
	if (!mi_under(ddir, &md) || strcmp(md.point, ms.point) || strcmp(md.dev, ms.dev))
		return say_error("cannot clone %s to %s: %s (a clone stays inside one sectorfs mount)",
		                 src, dst, strerror(EXDEV));
	/* The daemon copies what the mount holds: under a mount point, not
	 * what cp -a would see there.  Refused rather than copy hidden files. */
	char below[PATH_MAX];
	if (S_ISDIR(sst.st_mode) && mi_below(sabs, below, sizeof below))
		return say_error("cannot clone %s: %s is mounted on, below it (a clone copies only "
		                 "this mount's files; cp -a copies what is mounted there)",
		                 src, below);
	struct clone_ioc *io = calloc(1, sizeof *io);
	if (!io)
		return say_error("out of memory");
	io->version = CLONE_IOC_VERSION;
	if (fs_path(&ms, sabs, io->src, sizeof io->src) || fs_path(&md, dabs, io->dst, sizeof io->dst)) {
		free(io);
		return say_error("cannot clone %s to %s: %s", src, dst, strerror(ENAMETOOLONG));
	}
	/* The carrier: SRC, or DST's directory (a symlink, say, cannot be
	 * opened without being followed). */
	int fd = open(sabs, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	int open_err = errno;
	if (fd < 0)
		fd = open(ddir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		free(io);
		return say_error("cannot clone %s: %s", src, strerror(open_err));
	}
	rc = ioctl(fd, CLONE_IOC, io) < 0 ? -errno : io->result;
	close(fd);
	if (rc == 0) {
		free(io);
		return 0;
	}
	if (rc == -ENOTTY || rc == -ENOSYS)
		snprintf(io->message, sizeof io->message, "this sectorfs daemon cannot clone");
	int status = say_error("cannot clone %s to %s: %s", src, dst,
	                       io->message[0] ? io->message : strerror(-rc));
	free(io);
	return status;
}
