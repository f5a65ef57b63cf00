/* SPDX-License-Identifier: MIT */
/* options.c - parsing the command line (see options.h).
 *
 * Sizes are parsed as tmpfs parses them (memparse: k, m, g, t, p, e, in
 * either case, or a percentage of physical memory), with the checks a
 * tmpfs user would want and tmpfs does not do: a size larger than the
 * machine's memory, or a percentage over 100, is refused.  size=0 and
 * nr_inodes=0 mean unlimited, as on tmpfs.
 */
#include "options.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image_lock.h"
#include "os.h"
#include "sectorfs.h"
#include "sectorfs/engine.h"

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -1;
}

int opt_parse_size(const char *s, bool percent_ok, uint64_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	case 'p': case 'P': shift = 50; end++; break;
	case 'e': case 'E': shift = 60; end++; break;
	case '%':
		if (!percent_ok || v > 100)
			return -1;
		*out = os_physical_memory() / 100 * v;
		return end[1] ? -1 : 0;
	default:
		break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, int base, unsigned long max, unsigned long *out)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, base);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Append one option to the string that goes to libfuse. */
static int pass_on(struct opts *o, const char *opt)
{
	size_t have = o->fuse_opts ? strlen(o->fuse_opts) : 0, add = strlen(opt);
	char *s = realloc(o->fuse_opts, have + add + 2);
	if (!s)
		return -1;
	if (have)
		s[have++] = ',';
	memcpy(s + have, opt, add + 1);
	o->fuse_opts = s;
	return 0;
}

/* One option from a -o list: ours, or libfuse's. */
static int one_option(struct opts *o, const char *opt, char *err, size_t len)
{
	const char *eq = strchr(opt, '=');
	size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
	const char *val = eq ? eq + 1 : NULL;
	unsigned long v;
#define IS(name) (klen == strlen(name) && !strncmp(opt, name, klen))
	if (IS("size")) {
		uint64_t ram = os_physical_memory();
		char *pct;
		if (opt_parse_size(val, true, &o->size)) {
			/* A percentage over 100 is well formed, only too large. */
			if (val && *val >= '0' && *val <= '9' &&
			    (strtoull(val, &pct, 10), !strcmp(pct, "%")))
				return fail(err, len,
				            "size=%s is more than the %llu MiB of memory this machine "
				            "has (100%%)",
				            val, (unsigned long long)(ram >> 20));
			return fail(err, len, "bad size: '%s'", val ? val : "");
		}
		if (ram && o->size > ram)
			return fail(err, len, "size=%s is more than the %llu MiB of memory this machine has",
			            val, (unsigned long long)(ram >> 20));
		o->size_set = true;
	} else if (IS("nr_inodes")) {
		uint64_t n;
		if (opt_parse_size(val, false, &n))
			return fail(err, len, "bad nr_inodes: '%s'", val ? val : "");
		o->nr_inodes = n;
		o->nr_inodes_set = true;
	} else if (IS("remount") && !val) {
		o->remount = true;
	} else if (IS("mode")) {
		if (parse_uint(val, 8, 07777, &v))
			return fail(err, len, "bad mode: '%s' (octal, at most 7777)", val ? val : "");
		o->mode = (mode_t)v;
	} else if (IS("uid")) {
		if (parse_uint(val, 10, UINT32_MAX - 1, &v))
			return fail(err, len, "bad uid: '%s'", val ? val : "");
		o->uid = (uid_t)v;
	} else if (IS("gid")) {
		if (parse_uint(val, 10, UINT32_MAX - 1, &v))
			return fail(err, len, "bad gid: '%s'", val ? val : "");
		o->gid = (gid_t)v;
	} else if (IS("noswap") && !val) {
		o->noswap = true;
	} else if (IS("sector_size")) {
		uint64_t s;
		if (opt_parse_size(val, false, &s) || s < SP_SECTOR_MIN || s > SP_SECTOR_MAX ||
		    (s & (s - 1)))
			return fail(err, len, "bad sector_size: '%s' (a power of two, 512 to 64k)",
			            val ? val : "");
		o->sector_size = (size_t)s;
	} else if (IS("cache")) {
		if (val && !strcmp(val, "keep"))
			o->cache = OPT_CACHE_KEEP;
		else if (val && !strcmp(val, "open"))
			o->cache = OPT_CACHE_OPEN;
		else
			return fail(err, len, "bad cache: '%s' (keep or open)", val ? val : "");
	} else if (IS("direct_write")) {
		o->direct_write_set = true;
		if (val && !strcmp(val, "auto"))
			o->direct_write = OPT_DIRECT_AUTO;
		else if (val && !strcmp(val, "off"))
			o->direct_write = OPT_DIRECT_OFF;
		else if (val && !strcmp(val, "all"))
			o->direct_write = OPT_DIRECT_ALL;
		else
			return fail(err, len, "bad direct_write: '%s' (auto, off or all)",
			            val ? val : "");
	} else if (IS("writeback") && !val) {
		o->writeback = true;
	} else if (IS("max_threads")) {
		if (parse_uint(val, 10, 1024, &v) || v == 0)
			return fail(err, len, "bad max_threads: '%s'", val ? val : "");
		o->max_threads = (unsigned)v;
	} else if (IS("image")) {
		if (!val || !*val)
			return fail(err, len, "image= needs a file name");
		free(o->image);
		o->image = strdup(val);
		if (!o->image)
			return fail(err, len, "out of memory");
	} else if (IS("save_interval")) {
		/* At most a year: a longer wait is a typo, and the deadline
		 * must not overflow. */
		if (parse_uint(val, 10, 366UL * 86400, &v) || v == 0)
			return fail(err, len, "bad save_interval: '%s' (seconds, 1 or more)",
			            val ? val : "");
		o->save_interval = (unsigned)v;
	} else if (IS("image_wait")) {
		if (parse_uint(val, 10, 366UL * 86400, &v))
			return fail(err, len, "bad image_wait: '%s' (seconds, 0 or more)",
			            val ? val : "");
		o->image_wait = (unsigned)v;
	} else if (IS("spin")) {
		if (parse_uint(val, 10, 10000, &v))
			return fail(err, len, "bad spin: '%s' (microseconds, 0 to 10000)",
			            val ? val : "");
		o->spin_us = (unsigned)v;
	} else if (IS("io_uring")) {
		if (val && !strcmp(val, "auto"))
			o->uring = OPT_URING_AUTO;
		else if (val && !strcmp(val, "on"))
			o->uring = OPT_URING_ON;
		else if (val && !strcmp(val, "off"))
			o->uring = OPT_URING_OFF;
		else
			return fail(err, len, "bad io_uring: '%s' (auto, on or off)", val ? val : "");
	} else if (IS("prefault") && !val) {
		o->prefault = true;
	} else if (IS("noprefault") && !val) {
		o->prefault = false;
	} else if ((IS("relatime") || IS("strictatime")) && !val) {
		/* tmpfs's (and mount(8)'s) atime rules, kept by the core: the
		 * kernel leaves a FUSE file's times to the daemon, and libfuse
		 * 3.14 knows neither option. */
		o->atime = IS("relatime") ? SFS_ATIME_RELATIME : SFS_ATIME_STRICT;
	} else if (IS("clone_fd") && !val) {
		o->clone_fd = true;
	} else if (IS("noclone_fd") && !val) {
		o->clone_fd = false;
	} else {
		/* libfuse's (and the kernel's) options, which libfuse checks;
		 * a few also matter to us. */
		if (IS("allow_other"))
			o->allow_other = true;
		else if (IS("ro"))
			o->read_only = true;
		else if (IS("rw"))
			o->read_only = false;
		else if (IS("noatime"))
			o->atime = SFS_ATIME_NEVER;
		else if (IS("fsname"))
			o->source = NULL; /* fsname= names the mount, not SOURCE */
		if (pass_on(o, opt))
			return fail(err, len, "out of memory");
	}
#undef IS
	return 0;
}

int opt_split(const char *list, int (*fn)(void *ctx, const char *opt), void *ctx)
{
	char *copy = strdup(list), *p = copy, *start = copy;
	if (!copy)
		return -ENOMEM;
	int rc = 0;
	for (;; p++) {
		if (*p == '\\' && p[1]) {
			memmove(p, p + 1, strlen(p));
			continue;
		}
		if (*p != ',' && *p)
			continue;
		bool last = !*p;
		*p = '\0';
		if (*start && (rc = fn(ctx, start)))
			break;
		if (last)
			break;
		start = p + 1;
	}
	free(copy);
	return rc;
}

struct list_ctx {
	struct opts *o;
	char *err;
	size_t len;
	bool resize; /* sectorfs resize: only the limits */
};

static int list_one(void *ctx, const char *opt)
{
	struct list_ctx *c = ctx;
	if (c->resize && strncmp(opt, "size=", 5) && strncmp(opt, "nr_inodes=", 10))
		return fail(c->err, c->len, "resize: '%s': only size= and nr_inodes= can be resized",
		            opt);
	return one_option(c->o, opt, c->err, c->len);
}

/* A -o argument, option by option. */
static int option_list(struct opts *o, const char *list, bool resize, char *err, size_t len)
{
	struct list_ctx c = {.o = o, .err = err, .len = len, .resize = resize};
	int rc = opt_split(list, list_one, &c);
	return rc == -ENOMEM ? fail(err, len, "out of memory") : rc;
}

int opt_parse(int argc, char **argv, struct opts *o, enum opt_action *action, char *err,
              size_t errlen)
{
	memset(o, 0, sizeof(*o));
	o->source = "sectorfs";
	o->mode = 01777;
	o->uid = getuid();
	o->gid = getgid();
	o->sector_size = SP_SECTOR_DEFAULT;
	o->cache = OPT_CACHE_KEEP;
	o->direct_write = OPT_DIRECT_AUTO;
	/* No writeback cache by default: with it the kernel takes writes
	 * without asking us, so a full filesystem could only fail them later,
	 * at writeback, after write() said yes; tmpfs says ENOSPC at write(). */
	o->writeback = false;
	o->atime = SFS_ATIME_RELATIME;
	o->max_threads = 8;
	o->clone_fd = true;
	o->spin_us = SPIN_DEFAULT_US;
	o->uring = OPT_URING_AUTO;
	o->prefault = true;
	o->image_wait = ILOCK_WAIT_DEFAULT;
	/* tmpfs's defaults: half the memory, and one inode per two pages of it. */
	o->size = os_physical_memory() / 2;
	o->nr_inodes = os_physical_memory() / os_page_size() / 2;
	*action = OPT_MOUNT;

	const char *pos[4];
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			*action = OPT_HELP;
			return 0;
		}
		if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			*action = OPT_VERSION;
			return 0;
		}
		if (!strcmp(a, "-f")) {
			o->foreground = true;
		} else if (!strcmp(a, "-d") || !strcmp(a, "--debug")) {
			o->debug = o->foreground = true;
		} else if (!strcmp(a, "-s")) {
			o->max_threads = 1;
		} else if (!strncmp(a, "-o", 2)) {
			const char *list = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!list)
				return fail(err, errlen, "-o needs a list of options");
			if (option_list(o, list, false, err, errlen))
				return -1;
		} else if (a[0] == '-' && a[1]) {
			return fail(err, errlen, "unknown option %s (see --help)", a);
		} else {
			if (npos == 4)
				return fail(err, errlen, "too many arguments: %s (see --help)", a);
			pos[npos++] = a;
		}
	}
	if (npos >= 1 && !strcmp(pos[0], "stats")) {
		if (npos != 2)
			return fail(err, errlen, "usage: sectorfs stats MOUNTPOINT");
		*action = OPT_STATS;
		o->mountpoint = pos[1];
		return 0;
	}
	if (npos >= 1 && !strcmp(pos[0], "save")) {
		if (npos != 2)
			return fail(err, errlen, "usage: sectorfs save MOUNTPOINT");
		*action = OPT_SAVE;
		o->mountpoint = pos[1];
		return 0;
	}
	if (npos >= 1 && !strcmp(pos[0], "umount")) {
		if (npos != 2)
			return fail(err, errlen, "usage: sectorfs umount MOUNTPOINT");
		*action = OPT_UMOUNT;
		o->mountpoint = pos[1];
		return 0;
	}
	if (npos >= 1 && !strcmp(pos[0], "resize")) {
		if (npos < 3)
			return fail(err, errlen, "usage: sectorfs resize MOUNTPOINT size=N[,nr_inodes=N]");
		for (int i = 2; i < npos; i++)
			if (option_list(o, pos[i], true, err, errlen))
				return -1;
		*action = OPT_RESIZE;
		o->mountpoint = pos[1];
		return 0;
	}
	if (npos >= 1 && !strcmp(pos[0], "clone")) {
		if (npos != 3)
			return fail(err, errlen, "usage: sectorfs clone SRC DST");
		*action = OPT_CLONE;
		o->clone_src = pos[1];
		o->clone_dst = pos[2];
		return 0;
	}
	if (npos >= 1 && !strcmp(pos[0], "image")) {
		const char *what = npos >= 2 ? pos[1] : "";
		bool create = !strcmp(what, "create");
		if ((!create && strcmp(what, "check") && strcmp(what, "info")) || npos < 3 ||
		    npos > (create ? 4 : 3))
			return fail(err, errlen,
			            "usage: sectorfs image create PATH [DIR] | check PATH | "
			            "info PATH");
		*action = OPT_IMAGE;
		o->image_what = what;
		o->image_path = pos[2];
		o->image_dir = npos == 4 ? pos[3] : NULL;
		return 0;
	}
	if (npos == 0)
		return fail(err, errlen, "no mount point given (see --help)");
	if (npos >= 3)
		return fail(err, errlen, "too many arguments (see --help)");
	o->mountpoint = pos[npos - 1];
	if (npos == 2 && o->source)
		o->source = pos[0];
	if (o->save_interval && !o->image)
		return fail(err, errlen, "save_interval= needs image=");
	/* With the writeback cache, small writes to new files are worth more
	 * gathered in the page cache than passed on one by one. */
	if (o->writeback && !o->direct_write_set)
		o->direct_write = OPT_DIRECT_OFF;
	if (o->noswap && geteuid() != 0) {
		uint64_t lim = os_memlock_limit();
		if (lim != UINT64_MAX && (o->size == 0 || o->size > lim))
			return fail(err, errlen,
			            "noswap needs RLIMIT_MEMLOCK of at least size= (ulimit -l is %llu KiB)",
			            (unsigned long long)(lim >> 10));
	}
	return 0;
}

void opt_free(struct opts *o)
{
	free(o->fuse_opts);
	o->fuse_opts = NULL;
	free(o->image);
	o->image = NULL;
}

void opt_usage(const char *prog)
{
	printf("usage: %s [-f] [-d] [-s] [-o OPTIONS] [SOURCE] MOUNTPOINT\n"
	       "       %s -o remount,OPTIONS MOUNTPOINT\n"
	       "       %s resize MOUNTPOINT size=N[,nr_inodes=N]\n"
	       "       %s stats MOUNTPOINT\n"
	       "       %s save MOUNTPOINT\n"
	       "       %s umount MOUNTPOINT\n"
	       "       %s clone SRC DST\n"
	       "       %s image create PATH [DIR] | check PATH | info PATH\n"
	       "       %s -h | --help | -V | --version\n"
	       "\n"
	       "A RAM filesystem that uses only the memory its files need.\n"
	       "\n"
	       "  -f              stay in the foreground\n"
	       "  -d, --debug     debug: print every request (implies -f)\n"
	       "  -s              one thread\n"
	       "  -h, --help      this text\n"
	       "  -V, --version   the versions of sectorfs and libfuse\n"
	       "  -o OPTIONS      comma-separated:\n"
	       "     size=N[kmgt]|N%%   limit of data and metadata, in whole sectors (default\n"
	       "                       50%% of RAM; 0: none)\n"
	       "     nr_inodes=N[kmg]  limit of files (default: half the RAM pages; 0: none)\n"
	       "     mode=OCTAL        root directory mode (default 1777)\n"
	       "     uid=N,gid=N       root directory owner (default: who mounts)\n"
	       "     noswap            keep the data locked in RAM (needs RLIMIT_MEMLOCK)\n"
	       "     sector_size=N     512 to 64k, a power of two (default 4k)\n"
	       "     cache=keep|open   the kernel keeps file pages across opens, or not\n"
	       "     direct_write=auto|off|all  which descriptors write past the kernel's\n"
	       "                       page cache: write-only ones and those writing an\n"
	       "                       empty file (auto, the default; off with writeback),\n"
	       "                       none, or all\n"
	       "     writeback         kernel writeback cache: faster small writes, but a full\n"
	       "                       filesystem fails them at writeback, not at write()\n"
	       "     max_threads=N     worker threads (default 8)\n"
	       "     clone_fd, noclone_fd  a /dev/fuse descriptor per thread (the default), or\n"
	       "                       one for all (then spin= needs max_threads=1)\n"
	       "     io_uring=auto|on|off  FUSE over io_uring when the kernel has it on\n"
	       "                       (auto, the default), or refuse to mount without it\n"
	       "                       (on), or /dev/fuse only (off)\n"
	       "     spin=US           after a request, poll for the next one this many\n"
	       "                       microseconds before sleeping (default %u; 0: never)\n"
	       "     prefault, noprefault  a background thread faults memory in ahead of\n"
	       "                       large writes (on by default), or none\n"
	       "     image=PATH        load PATH at mount (if it exists), save to it at unmount\n"
	       "     save_interval=S   with image=, also save every S seconds\n"
	       "     image_wait=S      wait up to S seconds for another process that owns\n"
	       "                       the image (default %u; 0: do not wait)\n"
	       "     remount           change the live mount at MOUNTPOINT: size=, nr_inodes=,\n"
	       "                       ro, rw and the kernel's flags (what mount -o remount\n"
	       "                       runs; flags need root); the other options are ignored\n"
	       "     relatime|strictatime|noatime  when reads move atime (relatime)\n"
	       "     allow_other, default_permissions (on), fsname=, subtype=, ro, rw,\n"
	       "     noatime, relatime, strictatime, dev, suid, exec and the other FUSE and\n"
	       "     mount options\n"
	       "\n"
	       "  umount          save (with image=), unmount, and wait until the daemon\n"
	       "                  has ended with everything on disk (fusermount3 -u and\n"
	       "                  umount return before the daemon's last save)\n"
	       "  resize          change size= and nr_inodes= of a live mount (root or the\n"
	       "                  user who mounted it)\n"
	       "  stats           what a mount holds and what it costs\n"
	       "  save            save a mount with image= now, and wait for it\n"
	       "  clone           copy the tree SRC to DST as cp -a would, inside one mount,\n"
	       "                  sharing the files' memory until either copy changes\n"
	       "  image create    an image of DIR's tree (an empty one without DIR)\n"
	       "  image check     verify an image end to end\n"
	       "  image info      what an image holds\n"
	       "See sectorfs(8).\n",
	       prog, prog, prog, prog, prog, prog, prog, prog, prog, SPIN_DEFAULT_US, ILOCK_WAIT_DEFAULT);
}
