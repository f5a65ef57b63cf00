/* SPDX-License-Identifier: MIT */
/* options.h - the daemon's command line (prefix opt_).
 *
 * sectorfs takes tmpfs's mount options with their names and meanings
 * (size, nr_inodes, mode, uid, gid, noswap, relatime, strictatime), a few
 * of its own (sector_size, cache, direct_write, writeback, max_threads,
 * clone_fd, io_uring, image, save_interval, image_wait), and passes
 * everything else to libfuse.  Parsing never prints more than one line and
 * never leaves half a configuration: opt_parse() either fills everything
 * or fails with a
 * message for the caller to print.
 */
#ifndef SECTORFS_OPTIONS_H
#define SECTORFS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum opt_cache {
	OPT_CACHE_KEEP, /* the kernel keeps file pages across opens */
	OPT_CACHE_OPEN, /* the kernel drops them at each open */
};

/* Which descriptors write past the kernel's page cache (FOPEN_DIRECT_IO). */
enum opt_direct {
	OPT_DIRECT_AUTO, /* write-only ones, and any writing an empty file */
	OPT_DIRECT_OFF,  /* none: every descriptor goes through the page cache */
	OPT_DIRECT_ALL,  /* every descriptor that can write */
};

/* Which transport carries the requests (io_uring=). */
enum opt_uring {
	OPT_URING_AUTO, /* FUSE over io_uring when the kernel offers it */
	OPT_URING_ON,   /* that, or refuse to mount */
	OPT_URING_OFF,  /* /dev/fuse */
};

/* Microseconds a thread polls /dev/fuse for the next request before it
 * sleeps: longer than the gap between two synchronous requests of one
 * caller (a few microseconds), short enough to cost nothing when idle. */
#define SPIN_DEFAULT_US 50

struct opts {
	const char *mountpoint;
	const char *source;      /* "sectorfs" unless given */
	bool foreground, debug;
	uint64_t size;           /* bytes; 0: unlimited */
	uint64_t nr_inodes;      /* 0: unlimited */
	bool size_set, nr_inodes_set; /* given, not the defaults (for a remount) */
	bool remount;            /* -o remount: change a live mount (remount.c) */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	bool noswap;
	size_t sector_size;
	enum opt_cache cache;
	enum opt_direct direct_write;
	bool direct_write_set;   /* given: writeback does not change it */
	bool writeback;          /* kernel writeback cache */
	int atime;               /* enum sfs_atime */
	unsigned max_threads;
	bool clone_fd;
	unsigned spin_us;        /* poll /dev/fuse this long before sleeping */
	enum opt_uring uring;    /* io_uring= */
	bool prefault;           /* fault memory in ahead of large writes */
	bool allow_other;
	bool read_only;
	char *image;             /* image=: load at mount, save at unmount */
	unsigned save_interval;  /* seconds; 0: only at unmount and on request */
	unsigned image_wait;     /* seconds to wait for another owner of the image */
	/* sectorfs image create|check|info PATH [DIR] */
	const char *image_what, *image_path, *image_dir;
	/* sectorfs clone SRC DST */
	const char *clone_src, *clone_dst;
	/* What goes to libfuse: "-o" and one comma-separated string. */
	char *fuse_opts;
};

enum opt_action {
	OPT_MOUNT,
	OPT_STATS,   /* sectorfs stats MOUNTPOINT */
	OPT_SAVE,    /* sectorfs save MOUNTPOINT */
	OPT_UMOUNT,  /* sectorfs umount MOUNTPOINT */
	OPT_CLONE,   /* sectorfs clone SRC DST */
	OPT_IMAGE,   /* sectorfs image create|check|info PATH [DIR] */
	OPT_RESIZE,  /* sectorfs resize MOUNTPOINT size=N,nr_inodes=N */
	OPT_HELP,
	OPT_VERSION,
};

/* Parse argv.  On error returns -1 with a one-line message in err. */
int opt_parse(int argc, char **argv, struct opts *o, enum opt_action *action, char *err,
              size_t errlen);
void opt_free(struct opts *o);

/* Split a -o list at its unescaped commas (a backslash escapes the next
 * character) and call fn with each non-empty option; stops at the first
 * nonzero return and returns it. */
int opt_split(const char *list, int (*fn)(void *ctx, const char *opt), void *ctx);

/* "12k", "3G", "50%" (of physical memory): bytes, or -1 if malformed. */
int opt_parse_size(const char *s, bool percent_ok, uint64_t *out);

void opt_usage(const char *prog);

#endif
