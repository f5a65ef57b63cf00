/* SPDX-License-Identifier: MIT */
/* main.c - the sectorfs command: mount a RAM filesystem, or report on one.
 *
 *   sectorfs [-f] [-d] [-o OPTIONS] [SOURCE] MOUNTPOINT
 *   sectorfs -o remount,OPTIONS MOUNTPOINT | resize MOUNTPOINT size=N  (remount.c)
 *   sectorfs stats MOUNTPOINT
 *   sectorfs save MOUNTPOINT
 *   sectorfs umount MOUNTPOINT
 *   sectorfs image create PATH [DIR] | check PATH | info PATH
 *
 * Mounting checks what a user can get wrong before anything happens, so
 * that every mistake is one line on stderr, a non-zero exit and nothing
 * mounted: bad options, a missing or non-directory mount point, a dead
 * FUSE mount or a live sectorfs already there (anything else mounted there
 * is mounted over, as tmpfs would).  libfuse's own messages are caught and reworded the
 * same way.  Once the mount is live the command goes to the background;
 * SIGTERM, SIGINT or fusermount3 -u unmount it cleanly.
 *
 * `sectorfs stats` asks a mounted daemon for its report through a getxattr
 * of a name no file can have (sectorfs.stats on the root), so it needs no
 * socket and works for anyone who can see the mount.
 *
 * With -o image=PATH the daemon owns the image for its whole life (a
 * second mount of it waits); it is loaded before anything is mounted (so a
 * bad one is refused like a bad option) and saved when the session ends,
 * before the mount goes away when we end it (a signal): whoever sees the
 * mount point free again finds the image complete.  After an unmount the
 * save comes once the mount is gone, which `sectorfs umount` waits for
 * (umount_cmd.c).  The rest is in image_cmd.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "clone_cmd.h"
#include "image_cmd.h"
#include "mountinfo.h"
#include "ops.h"
#include "os.h"
#include "protocol.h"
#include "remount.h"
#include "ring.h"
#include "say.h"
#include "shutdown.h"
#include "transport.h"
#include "umount_cmd.h"

#ifndef SECTORFS_VERSION
#define SECTORFS_VERSION "0"
#endif

static char mountpoint_real[PATH_MAX];

/* ---- messages ---- */

static char fuse_message[512];

/* libfuse's messages: keep the first error (libfuse writes some in several
 * pieces: gather them up to the first newline), for one clear line. */
static void catch_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	size_t n = strlen(fuse_message);
	if (level > FUSE_LOG_ERR || (n && fuse_message[n - 1] == '\n'))
		return;
	vsnprintf(fuse_message + n, sizeof fuse_message - n, fmt, ap);
}

/* The gathered message, without libfuse's prefix and the newline. */
static const char *fuse_error(const char *otherwise)
{
	char *p = fuse_message;
	if (!*p)
		return otherwise;
	if (!strncmp(p, "fuse: ", 6))
		p += 6;
	size_t n = strlen(p);
	while (n && (p[n - 1] == '\n' || p[n - 1] == ' '))
		p[--n] = '\0';
	return p;
}

/* ---- the mount point ---- */

static int check_mountpoint(const char *mp)
{
	struct stat st;
	if (stat(mp, &st) != 0) {
		if (errno == ENOTCONN)
			return say_error("%s is a dead mount: clear it with fusermount3 -u %s", mp, mp);
		return say_error("mount point %s: %s", mp, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return say_error("mount point %s is not a directory", mp);
	if (!realpath(mp, mountpoint_real))
		return say_error("mount point %s: %s", mp, strerror(errno));
	/* Anything else mounted there is mounted over, as tmpfs would. */
	struct mi_mount m;
	if (mi_top(mountpoint_real, &m) && !strcmp(m.type, "fuse.sectorfs"))
		return say_error("%s is already a sectorfs mount (to change its limits: "
		                 "mount -o remount,size=N %s, or sectorfs resize %s size=N)",
		                 mountpoint_real, mountpoint_real, mountpoint_real);
	return 0;
}

/* Write VALUE to /sys/class/bdi/DEV/NAME: 0 or -errno. */
static int set_bdi(const char *dev, const char *name, const char *value)
{
	char path[128];
	snprintf(path, sizeof path, "/sys/class/bdi/%s/%s", dev, name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, value, strlen(value));
	int rc = n == (ssize_t)strlen(value) ? 0 : n < 0 ? -errno : -EIO;
	close(fd);
	return rc;
}

/* As root, fit the mount's backing device to a RAM filesystem (where /sys
 * is read-only, as in some containers, the kernel's defaults stay).
 * - Read ahead 1 MiB at a time, in line with max_write: the kernel starts
 *   a FUSE mount at 128 KiB.
 * - With the writeback cache, let the kernel hold up to 1 GiB (no more
 *   than size=, no less than 32 MiB) of the mount's dirty pages.  A FUSE
 *   mount starts limited to 1% of the machine's dirty memory (about 50 MB
 *   on 24 GiB), which keeps random 4 KiB writes into a 512 MiB file at a
 *   third of tmpfs's rate; at 1 GiB they run at 0.8-1.0 (bench/run.sh).
 *   The limit stays strict (counted for this mount alone), so what the
 *   kernel may hold unwritten stays bounded.  The kernel keeps it as a
 *   share of the machine's dirty limit and refuses more than that limit
 *   (small machines; kernels before 6.2 have no max_bytes): then the
 *   mount may use the whole dirty limit (max_ratio=100). */
static void tune_bdi(const struct opts *o)
{
	struct mi_mount m;
	if (geteuid() != 0 || !mi_top(mountpoint_real, &m))
		return;
	const char *dev = m.dev;
	(void)set_bdi(dev, "read_ahead_kb", "1024");
	if (!o->writeback)
		return;
	uint64_t dirty = 1ull << 30;
	if (o->size && o->size < dirty)
		dirty = o->size < (32u << 20) ? 32u << 20 : o->size;
	char value[32];
	snprintf(value, sizeof value, "%llu", (unsigned long long)dirty);
	int rc = set_bdi(dev, "max_bytes", value);
	if (rc == -EINVAL || rc == -ENOENT)
		rc = set_bdi(dev, "max_ratio", "100");
	if (rc && rc != -EROFS && rc != -EACCES)
		fprintf(stderr, "sectorfs: could not raise the dirty page limit of %s: %s\n",
		        mountpoint_real, strerror(-rc));
}

/* ---- the report ---- */

size_t daemon_report(struct daemon *d, char *buf, size_t size)
{
	struct sfs_stats s;
	sfs_get_stats(d->fs, &s);
	uint64_t rss = os_rss();
	char limit[64], inodes[64];
	if (s.limit)
		snprintf(limit, sizeof limit, "%.1f MiB, %.1f MiB free", mib(s.limit),
		         mib(s.limit > s.reserved ? s.limit - s.reserved : 0));
	else
		snprintf(limit, sizeof limit, "none");
	if (s.max_inodes)
		snprintf(inodes, sizeof inodes, "%llu of %llu", (unsigned long long)s.inodes,
		         (unsigned long long)s.max_inodes);
	else
		snprintf(inodes, sizeof inodes, "%llu (no limit)", (unsigned long long)s.inodes);
	static const char *const direct[] = {[OPT_DIRECT_AUTO] = "auto", [OPT_DIRECT_OFF] = "off",
	                                     [OPT_DIRECT_ALL] = "all"};
	char writes[128];
	snprintf(writes, sizeof writes, "cache=%s, direct_write=%s%s, writeback %s",
	         d->cache == OPT_CACHE_KEEP ? "keep" : "open", direct[d->direct_write],
	         d->direct_write != OPT_DIRECT_OFF && !tr_direct_io_mmap()
	                 ? " (not in effect: the kernel cannot map such files)"
	                 : "",
	         d->writeback ? "on" : "off");
	char transport[320];
	tr_describe(transport, sizeof transport);
	int n = snprintf(
	        buf, size,
	        "mount point:   %s (daemon pid %d)\n"
	        "transport:     %s\n"
	        "page cache:    %s\n"
	        "inodes:        %s: %llu files, %llu directories, %llu symlinks, %llu other\n"
	        "file data:     %.1f MiB (sum of file sizes)\n"
	        "sectors:       %llu in use x %llu B = %.1f MiB\n"
	        "shared:        %llu sectors saved by copies sharing them, %.1f MiB\n"
	        "small objects: %.1f MiB (inodes, entries, inline data, tree nodes)\n"
	        "used:          %.1f MiB counted against the limit\n"
	        "limit:         %s\n"
	        "pool memory:   %.1f MiB mapped, %.1f MiB of it overhead\n"
	        "daemon memory: %.1f MiB resident\n",
	        mountpoint_real, (int)getpid(), transport, writes, inodes, (unsigned long long)s.files,
	        (unsigned long long)s.dirs, (unsigned long long)s.symlinks,
	        (unsigned long long)s.others, mib(s.data_bytes), (unsigned long long)s.sectors,
	        (unsigned long long)s.sector_size, mib(s.sectors * s.sector_size),
	        (unsigned long long)s.saved_sectors, mib(s.saved_sectors * s.sector_size),
	        mib(s.small_bytes),
	        mib(s.reserved), limit, mib(s.mapped), mib(s.overhead), mib(rss));
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static int stats_command(const char *mp)
{
	char buf[4096];
	ssize_t n = getxattr(mp, STATS_XATTR, buf, sizeof buf - 1);
	if (n < 0) {
		if (errno == EOPNOTSUPP || errno == ENODATA)
			return say_error("%s is not a sectorfs mount", mp);
		return say_error("%s: %s", mp, strerror(errno));
	}
	buf[n] = '\0';
	fputs(buf, stdout);
	return 0;
}

/* ---- mounting ---- */

static int mount_and_serve(struct opts *o)
{
	if (check_mountpoint(o->mountpoint))
		return 1;
	/* io_uring=on refuses before anything is mounted; auto notes why not. */
	char uring_note[256] = "";
	if (o->uring == OPT_URING_OFF)
		snprintf(uring_note, sizeof uring_note, "io_uring=off");
	else if (rg_probe(uring_note, sizeof uring_note) != 0 && o->uring == OPT_URING_ON)
		return say_error("io_uring=on: %s", uring_note);
	struct daemon d = {.cache = o->cache, .direct_write = o->direct_write, .writeback = o->writeback,
	                   .read_only = o->read_only, .single_thread = o->max_threads == 1};
	struct sfs_config cfg = {
	        .attrs_changed = daemon_attrs_changed,
	        .attrs_changed_arg = &d,
	        .sector_size = o->sector_size,
	        .size_limit = remount_round(o->size, o->sector_size),
	        .max_inodes = o->nr_inodes,
	        .root_mode = o->mode ? o->mode : 0,
	        .root_uid = o->uid,
	        .root_gid = o->gid,
	        .noswap = o->noswap,
	        .atime = (enum sfs_atime)o->atime,
	};
	char *image = NULL;
	if (o->image) {
		char err[PATH_MAX + 128];
		image = image_resolve(o->image, err, sizeof err);
		if (!image)
			return say_error("%s", err);
		/* A save writes the image through the path: inside the mount it
		 * would be written into the filesystem being saved. */
		size_t n = strlen(mountpoint_real);
		if (!strncmp(image, mountpoint_real, n) && (image[n] == '/' || n == 1)) {
			say_error("image=%s is inside the mount point %s", image, mountpoint_real);
			free(image);
			return 1;
		}
	}
	int rc = sfs_fs_create(&cfg, &d.fs);
	if (rc) {
		free(image);
		if (rc == -ENOSPC && cfg.size_limit)
			return say_error("size=%llu is too small: an empty filesystem needs %llu bytes",
			                 (unsigned long long)o->size,
			                 (unsigned long long)remount_min_size(&cfg));
		return say_error("cannot create the filesystem: %s", strerror(-rc));
	}
	pt_install(d.fs);
	if (image) {
		char err[PATH_MAX + 1024];
		/* Faulting in ahead speeds the load up too; its thread ends
		 * here, before fuse_daemonize() forks, and starts again after. */
		if (o->prefault)
			(void)sfs_fs_set_prefault(d.fs, true);
		rc = image_mount_load(d.fs, image, mountpoint_real, o->image_wait, err, sizeof err);
		(void)sfs_fs_set_prefault(d.fs, false);
		if (rc) {
			sfs_fs_destroy(d.fs);
			free(image);
			return say_error("%s", err);
		}
	}

	/* default_permissions: the kernel checks access with the attributes it
	 * caches, as tmpfs would, with no request to us. */
	char opts[8192];
	snprintf(opts, sizeof opts, "default_permissions,subtype=sectorfs%s%s%s%s",
	         o->source ? ",fsname=" : "", o->source ? o->source : "",
	         o->fuse_opts ? "," : "", o->fuse_opts ? o->fuse_opts : "");
	char *argv[] = {"sectorfs", "-o", opts, o->debug ? "-d" : NULL, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(o->debug ? 4 : 3, argv);
	fuse_set_log_func(catch_fuse_log);
	struct fuse_session *se = fuse_session_new(&args, &sectorfs_ops, sizeof sectorfs_ops, &d);
	if (!se) {
		rc = say_error("%s", fuse_error("bad options"));
		goto out_fs;
	}
	d.se = se;
	if (fuse_set_signal_handlers(se) != 0) {
		rc = say_error("cannot set signal handlers");
		goto out_session;
	}
	/* Before mounting, so that a failure (out of memory) is one line with
	 * nothing mounted. */
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (!lc) {
		rc = say_error("cannot set up the worker threads: %s", strerror(ENOMEM));
		goto out_signals;
	}
	fuse_loop_cfg_set_clone_fd(lc, o->clone_fd);
	fuse_loop_cfg_set_max_threads(lc, o->max_threads);
	if (fuse_session_mount(se, mountpoint_real) != 0) {
		rc = say_error("cannot mount on %s: %s", mountpoint_real, fuse_error("mount failed"));
		goto out_loop_cfg;
	}
	struct tr_config tc = {.spin_us = o->spin_us, .max_threads = o->max_threads,
	                       .clone_fd = o->clone_fd, .uring = !uring_note[0],
	                       .uring_note = uring_note};
	rc = tr_install(se, &tc);
	if (rc) {
		rc = say_error("cannot take over the FUSE channel: %s", strerror(-rc));
		goto out_unmount;
	}
	fuse_set_log_func(NULL); /* from here on, libfuse's own logging */
	tune_bdi(o);
	if (fuse_daemonize(o->foreground) != 0) {
		rc = 1;
		goto out_unmount;
	}
	/* Threads only now: fuse_daemonize() forks, and a fork keeps one. */
	if (o->prefault && (rc = sfs_fs_set_prefault(d.fs, true)) != 0)
		(void)say_error("no prefault thread: %s", strerror(-rc));
	image_serve(d.fs, image, mountpoint_real, o->save_interval, !o->read_only);
	struct mi_mount m;
	unsigned dev_major, dev_minor;
	rc = mi_top(mountpoint_real, &m) && sscanf(m.dev, "%u:%u", &dev_major, &dev_minor) == 2
	             ? sd_start(se, mountpoint_real, makedev(dev_major, dev_minor))
	             : -ENOENT;
	if (rc)
		(void)say_error("a signal will stop %s without writing back what the kernel holds: %s",
		                mountpoint_real, strerror(-rc));
	rc = o->max_threads == 1 ? fuse_session_loop(se) : fuse_session_loop_mt(se, lc);
	sd_loop_ended();
	tr_stop();
	clone_finish();
	rc = rc < 0 ? 1 : 0;
	/* The loop ends on a signal (the mount is still there: save, then
	 * unmount) or after an unmount (the tree is still in our memory). */
	if (image_finish() != 0)
		rc = 1;
	tr_refuse();
out_unmount:
	fuse_session_unmount(se);
out_loop_cfg:
	fuse_loop_cfg_destroy(lc);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	/* The io_uring threads first: one may still be in a request, which
	 * uses the session and the tree. */
	if (!tr_free()) {
		image_end();
		/* Not a return: this frame (d) stays live for that thread too. */
		exit(rc);
	}
	fuse_session_destroy(se);
	sd_finish();
out_fs:
	/* Unmounted: a final save that failed is tried again here until it
	 * succeeds; the image's lock goes only when the process ends. */
	image_end();
	fuse_opt_free_args(&args);
	sfs_fs_destroy(d.fs);
	free(image);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	enum opt_action action;
	char err[512];
	if (opt_parse(argc, argv, &o, &action, err, sizeof err) != 0) {
		opt_free(&o);
		return say_error("%s", err);
	}
	int rc = 0;
	switch (action) {
	case OPT_HELP:
		opt_usage("sectorfs");
		break;
	case OPT_VERSION:
		printf("sectorfs %s (libfuse %s)\n", SECTORFS_VERSION, fuse_pkgversion());
		break;
	case OPT_STATS:
		rc = stats_command(o.mountpoint);
		break;
	case OPT_SAVE:
		rc = image_save_command(o.mountpoint);
		break;
	case OPT_UMOUNT:
		rc = umount_command(o.mountpoint);
		break;
	case OPT_CLONE:
		rc = clone_command(o.clone_src, o.clone_dst);
		break;
	case OPT_IMAGE:
		rc = image_command(o.image_what, o.image_path, o.image_dir, o.image_wait);
		break;
	case OPT_MOUNT:
		rc = o.remount ? remount_command(&o, argc, argv) : mount_and_serve(&o);
		break;
	case OPT_RESIZE:
		rc = remount_command(&o, argc, argv);
		break;
	}
	opt_free(&o);
	return rc;
}
