/* SPDX-License-Identifier: MIT */
/* image_cmd.c - the daemon's disk images (see image_cmd.h).
 *
 * With -o image=PATH the daemon first owns the image (image_lock.c: one
 * process at a time, so a second mount waits for the first one's last
 * save), then loads PATH before it mounts anything (a bad image is one
 * line and exit 1, nothing mounted, the file untouched), and saves back to
 * it when the session ends (unmount, SIGTERM, SIGINT), every
 * save_interval= seconds from a thread of its own, and whenever `sectorfs
 * save MOUNTPOINT` asks.  The library does the work (sfs_image_save/load,
 * core/image_*.c); this file decides when, keeps one save at a time (a
 * mutex: a periodic save and a requested one would otherwise write two
 * temporary files for nothing), and remembers the last result so that
 * `sectorfs save` can print it.
 *
 * A save writes nothing when the tree has not changed since the image was
 * last written or loaded: the core counts every change (sfs_fs_changes()),
 * a save reports the count its image holds, and the image file must still
 * be the one we left (same inode, size and mtime: nobody replaced it).  A
 * save that fails leaves that record alone, so the next one (the next
 * interval, `sectorfs save`, the unmount) tries again, and the mount goes
 * on working meanwhile.  The final save is the one that must not fail:
 * after it the tree is gone.  When it fails, the daemon keeps the tree and
 * the image's lock and tries again every FINAL_RETRY_S seconds, saying so
 * in the log and to anyone waiting for the image, until it succeeds or is
 * killed (kill -9 gives the tree up).
 *
 * `sectorfs save` reaches the daemon through a setxattr of a name no file
 * can have on the mount's root (the reply carries the save's errno), and
 * reads the result line back with a getxattr of the same name: no socket,
 * nothing to clean up, and the kernel's own permission check on the root
 * comes first.  Only root and the user who mounted may trigger a save.
 *
 * `sectorfs image create PATH [DIR]` copies a real directory tree into a
 * private in-memory filesystem and saves that: the image code has one
 * writer, and the copy gets the same rules as a load (attributes in the
 * order that keeps them, directories and multiply-linked files last).
 * It costs memory for the tree, as mounting the image will anyway.
 */
#include "image_cmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "image_lock.h"
#include "progress.h"
#include "say.h"
#include "shutdown.h"
#include "transport.h"

#define FINAL_RETRY_S 10 /* a failed final save is tried again this often */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- what the image holds ---- */

static struct {
	struct sfs_fs *fs;
	const char *path;          /* NULL: no image= */
	const char *mountpoint;
	uid_t owner;               /* who mounted: may ask for saves */
	bool autosave;             /* lock, once served: saved periodically and at the end */
	unsigned interval;
	pthread_mutex_t lock;      /* one save at a time; guards the fields below */
	char result[1024];         /* the last save's line, for `sectorfs save` */
	bool holds;                /* the image holds the tree as it was at `changes` */
	uint64_t changes;          /* sfs_fs_changes() of the tree the image holds */
	struct stat image_st;      /* the image file as we last wrote or read it */
	char held_since[64];       /* "the save at 12:03:44", "the load at ..." */
	bool final_failed;
	bool thread;               /* the periodic saver runs */
	pthread_t tid;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	bool stopping;
} dm = {.lock = PTHREAD_MUTEX_INITIALIZER, .stop_lock = PTHREAD_MUTEX_INITIALIZER};

/* The image file holds the tree as it is at `changes`, since `what`.
 * dm.lock held (or no thread yet). */
static void remember(const char *path, uint64_t changes, const char *what)
{
	dm.holds = stat(path, &dm.image_st) == 0;
	dm.changes = changes;
	time_t t = time(NULL);
	struct tm tm;
	char when[16] = "?";
	if (localtime_r(&t, &tm))
		strftime(when, sizeof when, "%H:%M:%S", &tm);
	snprintf(dm.held_since, sizeof dm.held_since, "the %s at %s", what, when);
}

/* Nothing to write: no change since, and the file is still ours.
 * dm.lock held. */
static bool unchanged(void)
{
	struct stat st;
	return dm.holds && sfs_fs_changes(dm.fs) == dm.changes && stat(dm.path, &st) == 0 &&
	       st.st_dev == dm.image_st.st_dev && st.st_ino == dm.image_st.st_ino &&
	       st.st_size == dm.image_st.st_size &&
	       st.st_mtim.tv_sec == dm.image_st.st_mtim.tv_sec &&
	       st.st_mtim.tv_nsec == dm.image_st.st_mtim.tv_nsec;
}

/* ---- mounting ---- */

char *image_resolve(const char *path, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char dir[PATH_MAX];
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		snprintf(err, errlen, "image=%s does not name a file", path);
		return NULL;
	}
	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (slash == path)
		strcpy(dir, "/");
	char real[PATH_MAX];
	if (!realpath(dir, real)) {
		snprintf(err, errlen, "image=%s: directory %s: %s", path, dir, strerror(errno));
		return NULL;
	}
	/* Saves replace the file by renaming a new one over it: the
	 * directory must take new files, not just the file new contents. */
	if (access(real, W_OK | X_OK) != 0) {
		snprintf(err, errlen, "image=%s: cannot write in %s: %s", path, real,
		         strerror(errno));
		return NULL;
	}
	size_t n = strlen(real) + 1 + strlen(base) + 1;
	char *abs = malloc(n);
	if (!abs) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(abs, n, "%s%s%s", real, strcmp(real, "/") ? "/" : "", base);
	struct stat st;
	if (lstat(abs, &st) == 0 && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "image=%s is not a regular file", abs);
		free(abs);
		return NULL;
	}
	return abs;
}

/* A killed daemon leaves its temporary file (.NAME.tmp.XXXXXX) beside the
 * image; the image itself is intact.  We own the image (its lock), so no
 * other process is writing one: any such file is a leftover. */
static void remove_leftovers(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX], prefix[NAME_MAX + 8];
	snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	snprintf(prefix, sizeof prefix, ".%s.tmp.", slash + 1);
	DIR *d = opendir(dir);
	if (!d)
		return;
	int dfd = dirfd(d);
	struct dirent *de;
	size_t plen = strlen(prefix);
	while ((de = readdir(d)) != NULL)
		if (!strncmp(de->d_name, prefix, plen) && strlen(de->d_name) == plen + 6)
			unlinkat(dfd, de->d_name, 0);
	closedir(d);
}

int image_mount_load(struct sfs_fs *fs, const char *path, const char *mountpoint,
                     unsigned wait_s, char *err, size_t errlen)
{
	int rc = ilock_take(path, wait_s, mountpoint, err, errlen);
	if (rc)
		return rc;
	dm.fs = fs;
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0; /* a new image: the first save creates it */
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	ilock_state("loading");
	char what[PATH_MAX + 16];
	snprintf(what, sizeof what, "loading %s", path);
	struct progress *pr = progress_start(what, progress_of_fs, fs);
	rc = sfs_image_load(fs, path, err, errlen);
	progress_stop(pr);
	if (rc)
		return rc;
	remove_leftovers(path);
	remember(path, sfs_fs_changes(fs), "load");
	return 0;
}

/* ---- the saving daemon ---- */

/* Save now, unless nothing changed; `why` says who asked, for the log and
 * for those who wait for the image. */
static int save_now(const char *why)
{
	pthread_mutex_lock(&dm.lock);
	int rc = 0;
	if (unchanged()) {
		snprintf(dm.result, sizeof dm.result,
		         "%s is unchanged since %s: nothing to write to %s", dm.mountpoint,
		         dm.held_since, dm.path);
		pthread_mutex_unlock(&dm.lock);
		return 0;
	}
	char state[64];
	snprintf(state, sizeof state, "saving (%s save)", why);
	ilock_state(state);
	struct sfs_image_info info;
	char err[768];
	double t0 = now_s();
	rc = sfs_image_save(dm.fs, dm.path, &info, err, sizeof err);
	double dt = now_s() - t0;
	if (rc == 0) {
		remember(dm.path, info.changes, "save");
		snprintf(dm.result, sizeof dm.result,
		         "saved %s to %s: %llu inodes, %.1f MiB of data, %.1f MiB image, %.2f s "
		         "(writers held %.2f ms)",
		         dm.mountpoint, dm.path, (unsigned long long)info.inodes,
		         mib(info.data_bytes), mib(info.image_bytes), dt, (double)info.held_ns / 1e6);
		ilock_state("mounted");
	} else {
		snprintf(dm.result, sizeof dm.result, "save of %s failed: %s", dm.mountpoint, err);
		/* In the background stderr is /dev/null: the log keeps it. */
		syslog(LOG_ERR, "%s (%s save)", dm.result, why);
		fprintf(stderr, "sectorfs: %s\n", dm.result);
		snprintf(state, sizeof state, "the %s save failed: %s", why, strerror(-rc));
		ilock_state(state);
	}
	pthread_mutex_unlock(&dm.lock);
	return rc;
}

static void *periodic(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&dm.stop_lock);
	for (;;) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += dm.interval;
		int rc = 0;
		while (!dm.stopping && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&dm.stop_cond, &dm.stop_lock, &until);
		if (dm.stopping)
			break;
		pthread_mutex_unlock(&dm.stop_lock);
		/* What the kernel holds unwritten (writeback cache, shared
		 * mappings) belongs in the image too; the workers answer the
		 * writes this causes. */
		int src = sd_sync(dm.mountpoint);
		if (src)
			syslog(LOG_WARNING, "%s: writing back before a periodic save: %s", dm.mountpoint,
			       strerror(-src));
		else
			(void)tr_wait_quiet(0, 5000);
		save_now("periodic");
		pthread_mutex_lock(&dm.stop_lock);
	}
	pthread_mutex_unlock(&dm.stop_lock);
	return NULL;
}

static void start_periodic(void);

void image_serve(struct sfs_fs *fs, const char *path, const char *mountpoint, unsigned interval,
                 bool autosave)
{
	dm.fs = fs;
	dm.path = path;
	dm.mountpoint = mountpoint;
	dm.owner = getuid();
	dm.interval = interval;
	dm.autosave = autosave;
	if (!path)
		return;
	/* fuse_daemonize() forked: the lock's line names the new pid. */
	ilock_state("mounted");
	start_periodic();
}

void image_set_writable(void)
{
	pthread_mutex_lock(&dm.lock);
	bool was = dm.autosave;
	dm.autosave = true;
	pthread_mutex_unlock(&dm.lock);
	if (!was)
		start_periodic();
}

/* The periodic saver, once the mount is writable. */
static void start_periodic(void)
{
	if (!dm.path || !dm.interval || !dm.autosave || dm.thread)
		return;
	/* The wait is on CLOCK_MONOTONIC: a change of the wall clock must not
	 * make the next save come early or never. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dm.stop_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&dm.tid, NULL, periodic, NULL) == 0) {
		dm.thread = true;
	} else {
		syslog(LOG_ERR, "cannot start the periodic saver of %s", dm.mountpoint);
		fprintf(stderr, "sectorfs: cannot start the periodic saver of %s\n", dm.mountpoint);
	}
}

int image_finish(void)
{
	if (dm.thread) {
		pthread_mutex_lock(&dm.stop_lock);
		dm.stopping = true;
		pthread_cond_signal(&dm.stop_cond);
		pthread_mutex_unlock(&dm.stop_lock);
		pthread_join(dm.tid, NULL);
		dm.thread = false;
	}
	pthread_mutex_lock(&dm.lock);
	bool autosave = dm.autosave;
	pthread_mutex_unlock(&dm.lock);
	if (!dm.path || !autosave)
		return 0;
	dm.final_failed = save_now("final") != 0;
	return dm.final_failed ? -EIO : 0;
}

void image_end(void)
{
	if (!dm.path)
		return;
	for (unsigned tries = 1; dm.final_failed; tries++) {
		/* Unmounted, and the tree exists only here: keep it, and the
		 * image's lock, until a save succeeds. */
		char state[160];
		snprintf(state, sizeof state,
		         "the final save failed (attempt %u); trying again every %d s until it "
		         "succeeds (kill -9 gives the tree up)",
		         tries, FINAL_RETRY_S);
		ilock_state(state);
		syslog(LOG_ERR, "%s: %s", dm.mountpoint, state);
		sleep(FINAL_RETRY_S);
		dm.final_failed = save_now("final") != 0;
	}
	pthread_mutex_lock(&dm.lock);
	if (!dm.autosave)
		ilock_end(true, "a read-only mount: nothing saved at the end");
	else
		ilock_end(true, dm.result);
	pthread_mutex_unlock(&dm.lock);
}

const char *image_path(void)
{
	return dm.path;
}

int image_save_request(uid_t uid)
{
	if (uid != 0 && uid != dm.owner)
		return -EPERM;
	if (!dm.path) {
		pthread_mutex_lock(&dm.lock);
		snprintf(dm.result, sizeof dm.result,
		         "%s was mounted without -o image=: there is nowhere to save it",
		         dm.mountpoint ? dm.mountpoint : "this filesystem");
		pthread_mutex_unlock(&dm.lock);
		return -EDESTADDRREQ;
	}
	/* `sectorfs save` started the writeback (syncfs()) before asking:
	 * let it reach us first. */
	(void)tr_wait_quiet(1, 5000);
	return save_now("requested");
}

size_t image_last_result(char *buf, size_t size)
{
	pthread_mutex_lock(&dm.lock);
	const char *r = dm.result[0] ? dm.result
	                : dm.path   ? "no save yet"
	                            : "this mount has no image= to save to";
	size_t n = strlen(r);
	if (buf && size)
		memcpy(buf, r, n < size ? n : size);
	pthread_mutex_unlock(&dm.lock);
	return n;
}

/* ---- sectorfs save MOUNTPOINT ---- */

struct save_call {
	const char *mp;
	int err;               /* the setxattr's errno */
};

static void *ask_for_save(void *arg)
{
	struct save_call *c = arg;
	c->err = setxattr(c->mp, SAVE_XATTR, "", 0, 0) == 0 ? 0 : errno;
	return NULL;
}

int image_request_save(const char *mp, char *msg, size_t size)
{
	/* First what the kernel holds unwritten, so that the image has every
	 * write that returned before this command. */
	int src = sd_sync(mp);
	/* A caller kept out of the mount hears why from the request below. */
	if (src && src != -ENOENT && src != -ENOTDIR && src != -EACCES && src != -EPERM)
		fprintf(stderr, "sectorfs: %s: writing back before the save: %s\n", mp, strerror(-src));
	struct save_call call = {.mp = mp};
	char what[PATH_MAX + 16];
	snprintf(what, sizeof what, "saving %s", mp);
	struct progress *pr = progress_start(what, progress_of_mount, (void *)mp);
	pthread_t t;
	if (pr && pthread_create(&t, NULL, ask_for_save, &call) == 0) {
		pthread_join(t, NULL);
	} else {
		ask_for_save(&call);
	}
	progress_stop(pr);
	int e = call.err;
	if (e == EOPNOTSUPP || e == ENOTSUP) {
		snprintf(msg, size, "%s is not a sectorfs mount", mp);
		return -e;
	}
	if (e == EPERM || e == EACCES) {
		snprintf(msg, size, "%s: only root or the user who mounted it may save it", mp);
		return -e;
	}
	ssize_t n = getxattr(mp, SAVE_XATTR, msg, size - 1);
	if (n > 0) {
		msg[n] = '\0';
		return -e;
	}
	if (e)
		snprintf(msg, size, "%s: %s", mp, strerror(e));
	else
		snprintf(msg, size, "%s: saved, but the result cannot be read: %s", mp,
		         strerror(errno));
	return -e;
}

int image_save_command(const char *mp)
{
	char msg[1100];
	if (image_request_save(mp, msg, sizeof msg) != 0)
		return say_error("%s", msg);
	puts(msg);
	return 0;
}

/* ---- sectorfs image create PATH [DIR] ---- */

/* The copy is a restore (sfs_restore_*, core/restore.c), the code the
 * image loader builds with: it sets each object's attributes in the order
 * that keeps them and holds back to the end what later entries would
 * disturb (directories' times and default ACLs, the times of files with
 * several names).  This part only reads the disk, depth first: each
 * object's attributes when it is met (lstat), then its data and its
 * xattrs; a directory's before its entries are read.  Hard links are
 * found by (device, inode) in a table of the files with several names. */

struct link_slot {
	dev_t dev;
	ino_t ino;
	uint64_t sino;   /* 0: empty */
};

struct copier {
	struct sfs_fs *fs;
	struct sfs_restore *r;
	dev_t dev;
	struct link_slot *links;
	size_t lcap, lused;
	char *buf;       /* file data on its way */
	char *val;       /* an xattr's value on its way */
};

#define COPY_CHUNK ((size_t)1 << 20)

static int fail_at(const char *path, const char *what, int err)
{
	return say_error("%s: %s: %s", path, what, strerror(err < 0 ? -err : err));
}

/* A restore call failed: the path, and the step that failed. */
static int restore_fail(struct copier *c, const char *path, int rc)
{
	const char *step = sfs_restore_failed(c->r, NULL);
	return fail_at(path, step ? step : "copy", rc);
}

static uint64_t *link_find(struct copier *c, const struct stat *st, bool add)
{
	if (add && c->lused + 1 > c->lcap / 2) {
		size_t cap = c->lcap ? c->lcap * 2 : 1024;
		struct link_slot *s = calloc(cap, sizeof *s);
		if (!s)
			return NULL;
		for (size_t i = 0; i < c->lcap; i++) {
			if (!c->links[i].sino)
				continue;
			size_t j = (c->links[i].ino * 0x9e3779b97f4a7c15ull) & (cap - 1);
			while (s[j].sino)
				j = (j + 1) & (cap - 1);
			s[j] = c->links[i];
		}
		free(c->links);
		c->links = s;
		c->lcap = cap;
	}
	if (!c->lcap)
		return NULL;
	size_t j = (st->st_ino * 0x9e3779b97f4a7c15ull) & (c->lcap - 1);
	for (; c->links[j].sino; j = (j + 1) & (c->lcap - 1))
		if (c->links[j].dev == st->st_dev && c->links[j].ino == st->st_ino)
			return &c->links[j].sino;
	if (!add)
		return NULL;
	c->links[j] = (struct link_slot){.dev = st->st_dev, .ino = st->st_ino};
	c->lused++;
	return &c->links[j].sino;
}

/* The xattrs of `path` (ACLs included) to the current object. */
static int copy_xattrs(struct copier *c, const char *path)
{
	ssize_t n = llistxattr(path, NULL, 0);
	if (n < 0 && errno != ENOTSUP && errno != EOPNOTSUPP)
		return fail_at(path, "listxattr", errno);
	if (n <= 0)
		return 0;
	char *list = malloc((size_t)n);
	if (!list || (n = llistxattr(path, list, (size_t)n)) < 0) {
		int e = list ? errno : ENOMEM;
		free(list);
		return fail_at(path, "listxattr", e);
	}
	int rc = 0;
	for (ssize_t o = 0; rc == 0 && o < n; o += (ssize_t)strlen(list + o) + 1) {
		ssize_t v = lgetxattr(path, list + o, c->val, SFS_XATTR_SIZE_MAX);
		if (v < 0 && errno == ENODATA)
			continue; /* removed meanwhile */
		rc = v < 0 ? -errno : sfs_restore_xattr(c->r, list + o, c->val, (size_t)v);
		if (rc) {
			char what[300];
			snprintf(what, sizeof what, "xattr %s", list + o);
			rc = fail_at(path, what, rc);
		}
	}
	free(list);
	return rc;
}

/* A regular file's data to the current object, holes kept as holes (the
 * restore gives the file its size). */
static int copy_data(struct copier *c, const char *path, const struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail_at(path, "open", errno);
	off_t off = 0, size = st->st_size;
	int rc = 0;
	while (rc == 0 && off < size) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0) {
			data = off; /* no SEEK_DATA here: all of it is data */
			hole = size;
		} else {
			hole = lseek(fd, data, SEEK_HOLE);
			if (hole < 0 || hole > size)
				hole = size;
		}
		for (off = data; rc == 0 && off < hole;) {
			size_t want = (uint64_t)(hole - off) < COPY_CHUNK ? (size_t)(hole - off)
			                                                  : COPY_CHUNK;
			ssize_t got = pread(fd, c->buf, want, off);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				rc = got < 0 ? fail_at(path, "read", errno) : 0;
				hole = off; /* shrank meanwhile */
				break;
			}
			rc = sfs_restore_write(c->r, c->buf, (size_t)got, off);
			if (rc)
				rc = restore_fail(c, path, rc);
			off += got;
		}
		off = hole;
	}
	close(fd);
	return rc;
}

/* One object of the tree, `name` in the directory `parent` (NULL and 0:
 * the root); a directory's new number goes to *dir (0 if it is not to be
 * entered). */
static int copy_one(struct copier *c, uint64_t parent, const char *name, const char *path,
                    const struct stat *st, uint64_t *dir)
{
	*dir = 0;
	bool several = !S_ISDIR(st->st_mode) && st->st_nlink > 1;
	if (several) {
		uint64_t *known = link_find(c, st, false);
		if (known) {
			int rc = sfs_restore_link(c->r, *known, parent, name);
			return rc ? fail_at(path, "link", rc) : 0;
		}
	}
	char target[SFS_SYMLINK_MAX + 1];
	if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlink(path, target, sizeof target);
		if (n < 0)
			return fail_at(path, "readlink", errno);
		if ((size_t)n > SFS_SYMLINK_MAX)
			return fail_at(path, "readlink", ENAMETOOLONG);
		target[n] = '\0';
	}
	sfs_ino_t ino;
	int rc = sfs_restore_inode(c->r, parent, name, st, target, &ino);
	if (rc)
		return restore_fail(c, path, rc);
	if (S_ISREG(st->st_mode))
		rc = copy_data(c, path, st);
	if (rc == 0)
		rc = copy_xattrs(c, path);
	if (rc == 0 && (rc = sfs_restore_done(c->r)) != 0)
		rc = restore_fail(c, path, rc);
	if (rc)
		return rc;
	if (S_ISDIR(st->st_mode) && st->st_dev == c->dev)
		*dir = ino; /* other filesystems stay empty, as tar --one-file-system */
	if (several) {
		uint64_t *slot = link_find(c, st, true);
		if (!slot)
			return fail_at(path, "copy", ENOMEM);
		*slot = ino;
	}
	return 0;
}

struct todo {
	char *path;
	uint64_t sino;
};

static int copy_tree(struct copier *c, const char *top)
{
	struct stat st;
	if (lstat(top, &st) != 0)
		return fail_at(top, "stat", errno);
	if (!S_ISDIR(st.st_mode))
		return say_error("%s is not a directory", top);
	c->dev = st.st_dev;
	uint64_t root;
	int rc = copy_one(c, 0, NULL, top, &st, &root);
	if (rc)
		return rc;
	struct todo *stack = malloc(sizeof *stack);
	size_t n = 0, cap = 1;
	if (!stack)
		return say_error("out of memory");
	stack[n++] = (struct todo){strdup(top), root};
	rc = stack[0].path ? 0 : say_error("out of memory");
	while (rc == 0 && n > 0) {
		struct todo t = stack[--n];
		DIR *d = opendir(t.path);
		if (!d) {
			rc = fail_at(t.path, "opendir", errno);
			free(t.path);
			break;
		}
		struct dirent *de;
		while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			size_t len = strlen(t.path) + strlen(de->d_name) + 2;
			char *p = malloc(len);
			if (!p) {
				rc = say_error("out of memory");
				break;
			}
			snprintf(p, len, "%s/%s", t.path, de->d_name);
			struct stat cst;
			uint64_t sub = 0;
			if (lstat(p, &cst) != 0)
				rc = errno == ENOENT ? 0 : fail_at(p, "stat", errno);
			else
				rc = copy_one(c, t.sino, de->d_name, p, &cst, &sub);
			if (rc == 0 && sub) {
				if (n == cap) {
					struct todo *s = realloc(stack, 2 * cap * sizeof *s);
					if (!s) {
						rc = say_error("out of memory");
						free(p);
						break;
					}
					stack = s;
					cap *= 2;
				}
				stack[n++] = (struct todo){p, sub};
			} else {
				free(p);
			}
		}
		if (rc == 0 && errno)
			rc = fail_at(t.path, "readdir", errno);
		closedir(d);
		free(t.path);
	}
	while (n > 0)
		free(stack[--n].path);
	free(stack);
	/* Now that every entry and link exists: what the restore held back. */
	if (rc == 0 && (rc = sfs_restore_end(c->r)) != 0) {
		sfs_ino_t ino;
		const char *step = sfs_restore_failed(c->r, &ino);
		rc = say_error("%s: %s (inode %llu of the copy): %s", top, step ? step : "copy",
		               (unsigned long long)ino, strerror(-rc));
	}
	return rc;
}

/* Writes the image only once it owns it (image_lock.c), as a mount does. */
static int create_command(const char *path, const char *dir, unsigned wait_s)
{
	char lockerr[PATH_MAX + 512];
	char *image = image_resolve(path, lockerr, sizeof lockerr);
	if (!image)
		return say_error("%s", lockerr);
	int rc = ilock_take(image, wait_s, NULL, lockerr, sizeof lockerr);
	free(image);
	if (rc)
		return say_error("%s", lockerr);
	struct sfs_config cfg = {.root_uid = getuid(), .root_gid = getgid()};
	struct copier c = {0};
	rc = sfs_fs_create(&cfg, &c.fs);
	if (rc)
		return say_error("cannot create a filesystem: %s", strerror(-rc));
	c.buf = malloc(COPY_CHUNK);
	c.val = malloc(SFS_XATTR_SIZE_MAX);
	rc = c.buf && c.val ? 0 : say_error("out of memory");
	if (rc == 0 && dir) {
		rc = sfs_restore_begin(c.fs, &c.r);
		if (rc)
			rc = say_error("cannot start the copy: %s", strerror(-rc));
		else
			rc = copy_tree(&c, dir);
		sfs_restore_free(c.r, false);
	}
	if (rc == 0) {
		struct sfs_image_info info;
		char err[1024], what[PATH_MAX + 16];
		snprintf(what, sizeof what, "saving %s", path);
		struct progress *pr = progress_start(what, progress_of_fs, c.fs);
		rc = sfs_image_save(c.fs, path, &info, err, sizeof err);
		progress_stop(pr);
		if (rc != 0)
			rc = say_error("%s", err);
		else
			printf("created %s: %llu inodes, %.1f MiB of data, %.1f MiB image\n", path,
			       (unsigned long long)info.inodes, mib(info.data_bytes),
			       mib(info.image_bytes));
	}
	free(c.links);
	free(c.buf);
	free(c.val);
	sfs_fs_destroy(c.fs);
	return rc;
}

/* ---- sectorfs image check|info PATH ---- */

static void print_info(const char *path, const struct sfs_image_info *i)
{
	char when[64];
	struct tm tm;
	time_t t = i->created.tv_sec;
	if (localtime_r(&t, &tm))
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
	else
		snprintf(when, sizeof when, "%lld", (long long)t);
	printf("image:       %s, %llu bytes (%.1f MiB)\n"
	       "format:      version %u.%u, flags 0x%x\n"
	       "created:     %s.%09ld\n"
	       "sector size: %u\n"
	       "inodes:      %llu: %llu directories, %llu files, %llu symlinks, %llu fifos, "
	       "%llu sockets, %llu character and %llu block devices\n"
	       "names:       %llu (each hard link counted)\n"
	       "xattrs:      %llu (ACLs included)\n"
	       "file data:   %.1f MiB stored, %.1f MiB of file sizes (holes are not stored)\n"
	       "shared:      %.1f MiB of files' data stored once for several\n"
	       "records:     %llu (%llu of unknown types skipped)\n",
	       path, (unsigned long long)i->image_bytes, mib(i->image_bytes), i->version_major,
	       i->version_minor, i->flags, when, (long)i->created.tv_nsec, i->sector_size,
	       (unsigned long long)i->inodes, (unsigned long long)i->dirs,
	       (unsigned long long)i->files, (unsigned long long)i->symlinks,
	       (unsigned long long)i->fifos, (unsigned long long)i->sockets,
	       (unsigned long long)i->chrdevs, (unsigned long long)i->blkdevs,
	       (unsigned long long)i->names, (unsigned long long)i->xattrs, mib(i->data_bytes),
	       mib(i->file_bytes), mib(i->shared_bytes), (unsigned long long)i->records,
	       (unsigned long long)i->skipped);
}

int image_command(const char *what, const char *path, const char *dir, unsigned wait_s)
{
	if (!strcmp(what, "create"))
		return create_command(path, dir, wait_s);
	struct sfs_image_info info;
	char err[1024];
	if (sfs_image_check(path, &info, err, sizeof err) != 0)
		return say_error("%s", err);
	if (!strcmp(what, "check"))
		printf("%s: OK: %llu inodes, %.1f MiB of data\n", path,
		       (unsigned long long)info.inodes, mib(info.data_bytes));
	else
		print_info(path, &info);
	return 0;
}
