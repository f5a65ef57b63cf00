/* SPDX-License-Identifier: MIT */
/* remount.c - changing a live mount (see remount.h).
 *
 *   mount -o remount,size=N,nr_inodes=N,ro|rw MOUNTPOINT     (root)
 *   sectorfs -o remount,... MOUNTPOINT                       (the same)
 *   sectorfs resize MOUNTPOINT size=N[,nr_inodes=N]          (root or who mounted)
 *
 * util-linux's mount runs the filesystem's helper for a remount too
 * (mount.fuse3, which runs `sectorfs SOURCE MOUNTPOINT -o LIST`), with
 * the mount's present options merged with the new ones, and with fstab's
 * when the mount is listed there: "rw,nosuid,nodev,relatime,remount,
 * user_id=0,group_id=0,default_permissions,size=8g".  So a remount takes
 * every option a mount takes and changes what can change on a live
 * filesystem, as tmpfs does:
 *   - the limits, size= and nr_inodes=, which the daemon changes at once
 *     (df shows them with its next statfs); below what is in use they are
 *     refused with EBUSY and one line saying how much is in use;
 *   - the kernel's flags: ro/rw, nosuid, nodev, noexec, the atime flags,
 *     sync, dirsync, lazytime, set with mount(2)'s MS_REMOUNT, which
 *     needs root (as mount -o remount does anyway).  FUSE ignores the
 *     data of a remount, and syncs the filesystem before it goes
 *     read-only: the writeback cache reaches the daemon first.  Read-only
 *     is then the kernel's: every write fails with EROFS before the daemon
 *     hears of it.
 * Everything else (mode=, uid=, sector_size=, image=, allow_other, ...)
 * is checked as at mount time and otherwise ignored, as tmpfs ignores
 * mode=, uid= and gid= at a remount: fstab's options come along with
 * every remount.  An option nobody knows is refused.
 *
 * The daemon hears of a change through a getxattr of a name on the root
 * (REMOUNT_XATTR + the request), and answers with a line, "ERRNO text".
 * A getxattr, not a setxattr as `sectorfs save` uses, because the kernel
 * refuses a setxattr on a read-only mount with EROFS before the daemon
 * sees it, and a read-only mount may be resized too.  The kernel's own
 * permission check on the root comes first; the daemon then lets only
 * root and the user who mounted it change anything.  A request is carried
 * out only when the caller has room for the answer: a getxattr that only
 * asks for the size of the value changes nothing.
 *
 * A mount with image= that was read-write at any time is saved when it
 * ends (a read-only mount is not, see sectorfs(8)): after a remount to
 * read-write the daemon is told ("rw").
 */
#include "remount.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image_cmd.h"
#include "mountinfo.h"
#include "say.h"

/* ---- sizes ---- */

uint64_t remount_round(uint64_t size, size_t sector_size)
{
	if (!sector_size || size % sector_size == 0)
		return size;
	return size + (sector_size - size % sector_size);
}

uint64_t remount_min_size(const struct sfs_config *cfg)
{
	struct sfs_config unlimited = *cfg;
	unlimited.size_limit = 0;
	unlimited.attrs_changed = NULL;
	struct sfs_fs *fs;
	if (sfs_fs_create(&unlimited, &fs) != 0)
		return 0;
	struct sfs_stats s;
	sfs_get_stats(fs, &s);
	sfs_fs_destroy(fs);
	return remount_round(s.reserved, (size_t)s.sector_size);
}

/* ---- the daemon's side ---- */

/* Bytes for a message: KiB below a MiB, MiB below a GiB, GiB above. */
static const char *human(uint64_t bytes, char *buf, size_t size)
{
	if (bytes < (1u << 20))
		snprintf(buf, size, "%.1f KiB", (double)bytes / 1024.0);
	else if (bytes < (1u << 30))
		snprintf(buf, size, "%.1f MiB", mib(bytes));
	else
		snprintf(buf, size, "%.1f GiB", mib(bytes) / 1024.0);
	return buf;
}

size_t remount_request(struct daemon *d, uid_t uid, const char *args, char *out, size_t size)
{
	int n;
	if (uid != 0 && uid != getuid()) {
		n = snprintf(out, size, "%d only root or the user who mounted it may change it",
		             EPERM);
		goto out;
	}
	bool have_size = false, have_inodes = false, rw = false;
	unsigned long long new_size = 0, new_inodes = 0;
	for (const char *p = args; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char word[64], *end;
		if (len >= sizeof word)
			len = sizeof word - 1;
		memcpy(word, p, len);
		word[len] = '\0';
		errno = 0;
		if (!strncmp(word, "size=", 5)) {
			new_size = strtoull(word + 5, &end, 10);
			have_size = !errno && *end == '\0' && end != word + 5;
		} else if (!strncmp(word, "nr_inodes=", 10)) {
			new_inodes = strtoull(word + 10, &end, 10);
			have_inodes = !errno && *end == '\0' && end != word + 10;
		} else if (!strcmp(word, "rw")) {
			rw = true;
		} else {
			n = snprintf(out, size, "%d request '%s' not understood", EINVAL, word);
			goto out;
		}
		p = comma ? comma + 1 : p + len;
	}
	if (rw)
		image_set_writable();
	struct sfs_stats s;
	sfs_get_stats(d->fs, &s);
	if (!have_size && !have_inodes) {
		n = snprintf(out, size, "0 ok");
		goto out;
	}
	uint64_t limit = have_size ? remount_round(new_size, (size_t)s.sector_size) : s.limit;
	uint64_t inodes = have_inodes ? new_inodes : s.max_inodes;
	int rc = sfs_fs_set_limits(d->fs, limit, inodes);
	sfs_get_stats(d->fs, &s);
	char lim[64], ino[64], used[64];
	if (limit)
		human(limit, lim, sizeof lim);
	else
		snprintf(lim, sizeof lim, "no limit");
	human(s.reserved, used, sizeof used);
	if (inodes)
		snprintf(ino, sizeof ino, "%llu", (unsigned long long)inodes);
	else
		snprintf(ino, sizeof ino, "no limit");
	if (rc == 0)
		n = snprintf(out, size, "0 size %s (%s in use), nr_inodes %s (%llu in use)", lim,
		             used, ino, (unsigned long long)s.inodes);
	else if (rc == -EBUSY && limit && limit < s.reserved)
		n = snprintf(out, size, "%d size %s is less than the %s in use", EBUSY, lim, used);
	else if (rc == -EBUSY)
		n = snprintf(out, size, "%d nr_inodes %s is less than the %llu inodes in use", EBUSY,
		             ino, (unsigned long long)s.inodes);
	else
		n = snprintf(out, size, "%d %s", -rc, strerror(-rc));
out:
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* ---- the command's side ---- */

/* Ask the daemon of `mp`; the answer's text goes to line.  Its errno, or
 * -errno if the question did not reach it. */
static int ask(const char *mp, const char *request, char *line, size_t size)
{
	char name[256];
	snprintf(name, sizeof name, "%s%s", REMOUNT_XATTR, request);
	ssize_t n = getxattr(mp, name, line, size - 1);
	if (n < 0)
		return -errno;
	line[n] = '\0';
	char *text;
	long e = strtol(line, &text, 10);
	if (text == line || e < 0) {
		snprintf(line, size, "the daemon's answer cannot be read");
		return EPROTO;
	}
	memmove(line, text + (*text == ' '), strlen(text + (*text == ' ')) + 1);
	return (int)e;
}

/* A question that did not reach the daemon, in words. */
static int ask_failed(const char *mp, int rc)
{
	if (rc == -ENODATA || rc == -EOPNOTSUPP)
		return say_error("%s: its daemon cannot change limits (an older sectorfs?): "
		                 "unmount it and mount it again",
		                 mp);
	if (rc == -EACCES || rc == -EPERM)
		return say_error("%s: only root or the user who mounted it may change it", mp);
	return say_error("%s: %s", mp, strerror(-rc));
}

/* The kernel's flags a remount may change, as mount(8) names them. */
static const struct {
	const char *name;
	unsigned long set, clear;
} vfs_flags[] = {
        {"ro", MS_RDONLY, 0},
        {"rw", 0, MS_RDONLY},
        {"nosuid", MS_NOSUID, 0},
        {"suid", 0, MS_NOSUID},
        {"nodev", MS_NODEV, 0},
        {"dev", 0, MS_NODEV},
        {"noexec", MS_NOEXEC, 0},
        {"exec", 0, MS_NOEXEC},
        {"sync", MS_SYNCHRONOUS, 0},
        {"async", 0, MS_SYNCHRONOUS},
        {"dirsync", MS_DIRSYNC, 0},
        {"lazytime", MS_LAZYTIME, 0},
        {"nolazytime", 0, MS_LAZYTIME},
        {"noatime", MS_NOATIME, MS_RELATIME | MS_STRICTATIME},
        {"atime", MS_RELATIME, MS_NOATIME | MS_STRICTATIME}, /* Linux's default atime */
        {"relatime", MS_RELATIME, MS_NOATIME | MS_STRICTATIME},
        {"norelatime", MS_STRICTATIME, MS_NOATIME | MS_RELATIME},
        {"strictatime", MS_STRICTATIME, MS_NOATIME | MS_RELATIME},
        {"nodiratime", MS_NODIRATIME, 0},
        {"diratime", 0, MS_NODIRATIME},
        {"silent", 0, 0},
        {"loud", 0, 0},
};
#define NFLAGS (sizeof vfs_flags / sizeof *vfs_flags)

/* FUSE's options and mount(8)'s, which only a mount sets (or which only
 * fstab uses): a remount accepts and ignores them. */
static const char *const mount_only[] = {
        "user_id=", "group_id=", "default_permissions", "allow_other", "allow_root",
        "fsname=", "subtype=", "max_read=", "blksize=", "auto_unmount", "defaults",
        "auto", "noauto", "user", "nouser", "users", "owner", "group", "_netdev",
        "nofail", "x-", "comment=", "nomand",
};

static bool is_mount_only(const char *opt)
{
	for (size_t i = 0; i < sizeof mount_only / sizeof *mount_only; i++) {
		const char *m = mount_only[i];
		size_t n = strlen(m);
		if (m[n - 1] == '=' || m[n - 1] == '-' ? !strncmp(opt, m, n) : !strcmp(opt, m))
			return true;
	}
	return false;
}

static int flag_index(const char *opt)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (!strcmp(opt, vfs_flags[i].name))
			return (int)i;
	return -1;
}

struct scan {
	unsigned long flags; /* MS_* */
	char bad[128];       /* an option nobody knows */
};

/* An option of a -o list: a flag changes scan->flags. */
static int scan_flag(void *ctx, const char *opt)
{
	struct scan *s = ctx;
	int i = flag_index(opt);
	if (i >= 0)
		s->flags = (s->flags & ~vfs_flags[i].clear) | vfs_flags[i].set;
	return 0;
}

/* An option sectorfs did not take itself (it went to libfuse's list). */
static int check_passed(void *ctx, const char *opt)
{
	struct scan *s = ctx;
	if (flag_index(opt) >= 0 || is_mount_only(opt))
		return 0;
	snprintf(s->bad, sizeof s->bad, "%s", opt);
	return 1;
}

/* The flags of the mount as mountinfo shows them. */
static unsigned long current_flags(const struct mi_mount *m)
{
	unsigned long f = 0;
	if (mi_has(m->mount_opts, "ro") || mi_has(m->super_opts, "ro"))
		f |= MS_RDONLY;
	static const struct {
		const char *name;
		unsigned long flag;
	} shown[] = {{"nosuid", MS_NOSUID},     {"nodev", MS_NODEV},
	             {"noexec", MS_NOEXEC},     {"noatime", MS_NOATIME},
	             {"nodiratime", MS_NODIRATIME}, {"relatime", MS_RELATIME}};
	for (size_t i = 0; i < sizeof shown / sizeof *shown; i++)
		if (mi_has(m->mount_opts, shown[i].name))
			f |= shown[i].flag;
	if (!(f & (MS_NOATIME | MS_RELATIME)))
		f |= MS_STRICTATIME;
	if (mi_has(m->super_opts, "sync"))
		f |= MS_SYNCHRONOUS;
	if (mi_has(m->super_opts, "dirsync"))
		f |= MS_DIRSYNC;
	if (mi_has(m->super_opts, "lazytime"))
		f |= MS_LAZYTIME;
	return f;
}

int remount_command(const struct opts *o, int argc, char **argv)
{
	bool resize = !o->remount;
	char mp[PATH_MAX];
	if (!realpath(o->mountpoint, mp)) {
		if (errno == ENOTCONN)
			return say_error("%s is a dead mount: clear it with fusermount3 -u %s",
			                 o->mountpoint, o->mountpoint);
		return say_error("%s: %s", o->mountpoint, strerror(errno));
	}
	struct mi_mount m;
	if (!mi_top(mp, &m) || strcmp(m.type, "fuse.sectorfs"))
		return say_error("%s is not a sectorfs mount", mp);
	struct scan s = {.flags = current_flags(&m)};
	unsigned long was = s.flags;
	if (!resize) {
		for (int i = 1; i < argc; i++) {
			const char *a = argv[i];
			if (!strncmp(a, "-o", 2) && (a[2] || i + 1 < argc))
				(void)opt_split(a[2] ? a + 2 : argv[++i], scan_flag, &s);
		}
		if (o->fuse_opts && opt_split(o->fuse_opts, check_passed, &s) > 0)
			return say_error("unknown option %s (see --help)", s.bad);
	}
	char line[512];
	if (o->size_set || o->nr_inodes_set) {
		char request[128];
		int n = snprintf(request, sizeof request, "%s", "");
		if (o->size_set)
			n += snprintf(request + n, sizeof request - (size_t)n, "size=%llu,",
			              (unsigned long long)o->size);
		if (o->nr_inodes_set)
			n += snprintf(request + n, sizeof request - (size_t)n, "nr_inodes=%llu,",
			              (unsigned long long)o->nr_inodes);
		request[n - 1] = '\0'; /* the last comma */
		int rc = ask(mp, request, line, sizeof line);
		if (rc < 0)
			return ask_failed(mp, rc);
		if (rc > 0)
			return say_error("cannot resize %s: %s", mp, line);
		if (resize)
			printf("%s: %s\n", mp, line);
	} else if (resize) {
		return say_error("usage: sectorfs resize MOUNTPOINT size=N[,nr_inodes=N]");
	}
	if (resize || s.flags == was)
		return 0;
	if (mount(NULL, mp, NULL, MS_REMOUNT | s.flags, NULL) != 0) {
		int e = errno;
		if (e == EPERM)
			return say_error("%s: changing its mount flags (ro, rw, nosuid, ...) needs root",
			                 mp);
		if (e == EBUSY && (s.flags & MS_RDONLY))
			return say_error("%s: cannot remount read-only: files are open for writing",
			                 mp);
		return say_error("%s: remount: %s", mp, strerror(e));
	}
	if ((was & MS_RDONLY) && !(s.flags & MS_RDONLY)) {
		int rc = ask(mp, "rw", line, sizeof line);
		if (rc != 0)
			return rc < 0 ? ask_failed(mp, rc) : say_error("%s: %s", mp, line);
	}
	return 0;
}
