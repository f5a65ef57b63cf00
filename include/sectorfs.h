/* SPDX-License-Identifier: MIT */
/* sectorfs.h - libsectorfs: a POSIX filesystem in memory, as a C library.
 *
 * A `struct sfs_fs` is one filesystem: a tree of directories, regular files,
 * symlinks, fifos, sockets and device nodes, kept in RAM with the same
 * semantics as Linux's tmpfs (permissions, ACLs, xattrs, timestamps, link
 * counts, errors).  It needs no kernel, no mount and no privileges: link
 * the library and call it.  The sectorfs FUSE daemon is one such caller.
 *
 * Two APIs:
 *
 *   - The inode API (sfs_lookup, sfs_mkdir, sfs_read, ...) is shaped like
 *     FUSE's low-level API: objects are named by inode number, names are
 *     looked up one component at a time, and every successful lookup (and
 *     every entry returned by mknod/mkdir/symlink/link/create/tmpfile, and
 *     every entry returned by readdirplus) adds one to the inode's lookup
 *     count, which the caller gives back with sfs_forget.  Passing a NULL
 *     entry to the calls that create asks for no lookup.  An inode lives
 *     while it has links, lookups or open handles; an unlinked file's data
 *     is freed at its last release (as tmpfs frees it at the last close),
 *     its inode at the last forget.
 *
 *   - The path API (sfs_path_*, at the end) resolves whole paths, follows
 *     symlinks, and manages lookups itself: open by path, mkdir -p, list,
 *     remove recursively.  Programs that embed a private filesystem will
 *     usually want only this one.
 *
 * Every function that can fail returns a negative errno (as the kernel's
 * tmpfs would for the same call on the same state) and never aborts on bad
 * input.  All functions are thread-safe; operations on different files run
 * in parallel, and reads of one file run in parallel.
 *
 * Callers say who they are with a `struct sfs_cred`; the library checks
 * permissions for it like the kernel would, unless SFS_CRED_TRUSTED says the
 * caller (the kernel, through FUSE default_permissions) already did.
 */
#ifndef SECTORFS_H
#define SECTORFS_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SFS_ROOT_INO 1
#define SFS_NAME_MAX 255
#define SFS_SYMLINK_MAX 4095 /* as tmpfs: a target must fit in a page */
#define SFS_XATTR_SIZE_MAX 65536
#define SFS_XATTR_LIST_MAX 65536

typedef uint64_t sfs_ino_t;

struct sfs_fs;
struct sfs_file; /* an open file or directory */

/* ---- creating a filesystem ---- */

enum sfs_atime {
	SFS_ATIME_RELATIME = 0, /* Linux's default: update if older than mtime/ctime or a day */
	SFS_ATIME_STRICT,
	SFS_ATIME_NEVER,
};

struct sfs_config {
	size_t sector_size;   /* 0: the default (4096) */
	uint64_t size_limit;  /* bytes of data and metadata; 0: no limit */
	uint64_t max_inodes;  /* 0: no limit */
	mode_t root_mode;     /* 0: 01777, as tmpfs */
	uid_t root_uid;
	gid_t root_gid;
	bool noswap;          /* lock memory in RAM (needs RLIMIT_MEMLOCK) */
	enum sfs_atime atime;
	/* Optional: called, with no lock held, when the filesystem changes
	 * an inode's attributes as a side effect nobody asked for (a write by
	 * an unprivileged caller drops set-id bits), so that a cache of
	 * attributes (the kernel's, under FUSE) can forget them. */
	void (*attrs_changed)(void *arg, sfs_ino_t ino);
	void *attrs_changed_arg;
};

int sfs_fs_create(const struct sfs_config *cfg, struct sfs_fs **out);
/* Free everything.  Open handles must have been released. */
void sfs_fs_destroy(struct sfs_fs *fs);
/* Change the limits of a live filesystem (as remount): -EBUSY if the new
 * ones are below what is in use.  It waits for the calls that change the
 * tree and are under way, so a create never ends above the new limits. */
int sfs_fs_set_limits(struct sfs_fs *fs, uint64_t size_limit, uint64_t max_inodes);
/* Fault memory in ahead of large writes on a background thread, which
 * takes the kernel's zeroing of fresh pages off the writers' path (large
 * sequential writes through the daemon: 1.3-1.8x).  Off by default; see
 * sp_set_prefault in sectorfs/engine.h (turn it off before fork()).
 * 0 or -errno. */
int sfs_fs_set_prefault(struct sfs_fs *fs, bool on);

/* ---- who is calling ---- */

#define SFS_CRED_TRUSTED 1u /* permissions were checked already: skip them */

struct sfs_cred {
	uid_t uid;
	gid_t gid;
	const gid_t *groups; /* supplementary groups */
	int ngroups;
	mode_t umask;        /* applied to created objects (unless a default ACL) */
	unsigned flags;
	/* Optional, used when groups is NULL: the supplementary groups are
	 * asked for only when a decision needs them (rare with TRUSTED:
	 * whether a write drops a setgid bit).  Fills up to max entries of
	 * list and returns how many there are (more than max: call again
	 * with room for all), or -1. */
	int (*get_groups)(void *arg, gid_t *list, int max);
	void *get_groups_arg;
};

/* uid 0 is privileged (as with CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN,
 * CAP_FSETID and CAP_MKNOD in the initial namespace). */

/* ---- the inode API ---- */

struct sfs_entry {
	sfs_ino_t ino;
	uint64_t generation; /* sfs_fs_generation(), 0 for the root */
	struct stat attr;
};

/* The generation of every inode of this filesystem but the root, whose
 * generation is 0 (as FUSE requires): with inode numbers never reused, the
 * number and the generation name one inode of one filesystem exactly (for
 * NFS-style file handles and FUSE entries, such as readdirplus's). */
uint64_t sfs_fs_generation(const struct sfs_fs *fs);

/* A name in a directory; "." is the directory and ".." its parent.  "." of
 * an inode that is not a directory is that inode, while it has a link: the
 * way FUSE asks for an inode by number (export support, file handles). */
int sfs_lookup(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
               struct sfs_entry *out);
/* Give back n lookups.  -EINVAL if the inode has fewer. */
int sfs_forget(struct sfs_fs *fs, sfs_ino_t ino, uint64_t nlookup);

int sfs_getattr(struct sfs_fs *fs, sfs_ino_t ino, struct stat *st);
/* When the inode was created (statx's btime): in this filesystem's life,
 * so an inode built by sfs_image_load() was born at the load. */
int sfs_birth_time(struct sfs_fs *fs, sfs_ino_t ino, struct timespec *out);

/* setattr: which fields of *attr to apply */
#define SFS_SET_MODE 0x001u
#define SFS_SET_UID 0x002u      /* as chown(2): (uid_t)-1 leaves it, but it is a chown */
#define SFS_SET_GID 0x004u      /* likewise (gid_t)-1 */
#define SFS_SET_SIZE 0x008u
#define SFS_SET_ATIME 0x010u     /* to attr->st_atim */
#define SFS_SET_MTIME 0x020u     /* to attr->st_mtim */
#define SFS_SET_ATIME_NOW 0x040u
#define SFS_SET_MTIME_NOW 0x080u
#define SFS_SET_CTIME 0x100u     /* to attr->st_ctim (trusted callers only) */
/* `fh` (may be NULL) is the open file the change comes through (ftruncate,
 * futimens), which changes the permission checks as in the kernel.  The
 * new attributes are stored in *out if not NULL. */
int sfs_setattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino,
                const struct stat *attr, unsigned valid, struct sfs_file *fh, struct stat *out);

int sfs_access(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, int mask);

/* Inode flags (chattr, FS_IOC_GETFLAGS / FS_IOC_SETFLAGS), the ones tmpfs
 * keeps, with <linux/fs.h>'s values.  Nobody, root included, may change an
 * immutable inode or its names, or write to it but through a descriptor
 * opened before; an append-only file may be opened for writing only with
 * O_APPEND, and keeps its names; an append-only directory loses none.
 * What is made in a directory inherits its nodump and noatime flags. */
#define SFS_FL_IMMUTABLE 0x10u /* FS_IMMUTABLE_FL */
#define SFS_FL_APPEND 0x20u    /* FS_APPEND_FL */
#define SFS_FL_NODUMP 0x40u    /* FS_NODUMP_FL */
#define SFS_FL_NOATIME 0x80u   /* FS_NOATIME_FL: reads leave atime alone */
/* Regular files and directories only (-EOPNOTSUPP for the rest, as tmpfs).
 * Setting needs the owner (or root), and a change of immutable or
 * append-only root (CAP_LINUX_IMMUTABLE): -EPERM; other flags
 * -EOPNOTSUPP.  It moves ctime. */
int sfs_getflags(struct sfs_fs *fs, sfs_ino_t ino, unsigned *flags);
int sfs_setflags(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, unsigned flags);

int sfs_mknod(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
              mode_t mode, dev_t rdev, struct sfs_entry *out);
int sfs_mkdir(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
              mode_t mode, struct sfs_entry *out);
int sfs_symlink(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
                const char *target, struct sfs_entry *out);
/* The target of a symlink, NUL-terminated if it fits; returns its length. */
ssize_t sfs_readlink(struct sfs_fs *fs, sfs_ino_t ino, char *buf, size_t size);
int sfs_link(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, sfs_ino_t newparent,
             const char *newname, struct sfs_entry *out);
int sfs_unlink(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name);
int sfs_rmdir(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name);

#define SFS_RENAME_NOREPLACE 1u /* = RENAME_NOREPLACE */
#define SFS_RENAME_EXCHANGE 2u  /* = RENAME_EXCHANGE */
#define SFS_RENAME_WHITEOUT 4u  /* = RENAME_WHITEOUT */
int sfs_rename(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
               sfs_ino_t newparent, const char *newname, unsigned flags);

/* Open flags are open(2)'s: O_RDONLY/O_WRONLY/O_RDWR, O_TRUNC, O_APPEND,
 * O_EXCL (with create), O_DIRECTORY, O_NOFOLLOW, O_NOATIME.  Opening
 * counts as a reference until sfs_release.
 * SFS_O_PLACED with O_APPEND: the caller places every write itself (the
 * kernel does, under FUSE, and fcntl(F_SETFL) may turn O_APPEND off
 * without telling us): the open is judged as O_APPEND's (append-only
 * files), but each write goes where its offset says. */
#define SFS_O_PLACED 010000000000
int sfs_open(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, int flags,
             struct sfs_file **out);
/* Create and open (O_EXCL: fail with EEXIST if the name exists; otherwise
 * an existing file is opened).  Adds a lookup, like sfs_lookup. */
int sfs_create(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, const char *name,
               mode_t mode, int flags, struct sfs_entry *out, struct sfs_file **fh);
/* An unnamed regular file in `parent` (O_TMPFILE); sfs_link can name it
 * later.  Adds a lookup. */
int sfs_tmpfile(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t parent, mode_t mode,
                int flags, struct sfs_entry *out, struct sfs_file **fh);
sfs_ino_t sfs_file_ino(const struct sfs_file *fh);

ssize_t sfs_read(struct sfs_fs *fs, struct sfs_file *fh, void *buf, size_t size, off_t off);
ssize_t sfs_write(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_file *fh,
                  const void *buf, size_t size, off_t off);
/* Zero-copy read: iov[] points straight into the file's memory (holes into
 * a shared zero area) and stays valid and unchanged until
 * sfs_read_view_end(view); writers to this file wait until then.  Returns
 * the number of entries; *bytes gets how much they cover (short at the end
 * of the file, or when max is too small).  The view keeps the file alive by
 * itself: fh may be released before the view ends (as when a FUSE reply is
 * answered and the kernel releases the file at once). */
struct sfs_view {
	void *priv;
};
int sfs_read_view(struct sfs_fs *fs, struct sfs_file *fh, off_t off, size_t size,
                  struct iovec *iov, int max, size_t *bytes, struct sfs_view *view);
void sfs_read_view_end(struct sfs_fs *fs, struct sfs_view *view);

/* For a caller that keeps its own copies of file data (the kernel's page
 * cache, under FUSE): mark a file when copies of its data may have gone
 * into that cache (it was read or written through it); sfs_file_cached()
 * then tells whether a change made past the cache must be announced to it.
 * The mark lasts as long as the inode (atomics: any thread, no lock). */
void sfs_file_mark_cached(struct sfs_file *fh);
bool sfs_file_cached(const struct sfs_file *fh);

int sfs_flush(struct sfs_fs *fs, struct sfs_file *fh);
int sfs_fsync(struct sfs_fs *fs, struct sfs_file *fh, bool datasync);
int sfs_release(struct sfs_fs *fs, struct sfs_file *fh);

/* fallocate(2): mode 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE |
 * FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE (+ KEEP_SIZE). */
int sfs_fallocate(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_file *fh, int mode,
                  off_t off, off_t len);
/* lseek(2) for SEEK_DATA and SEEK_HOLE (and SEEK_SET/SEEK_END for
 * completeness).  Returns the offset. */
off_t sfs_lseek(struct sfs_fs *fs, struct sfs_file *fh, off_t off, int whence);
ssize_t sfs_copy_file_range(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_file *in,
                            off_t off_in, struct sfs_file *out, off_t off_out, size_t len,
                            unsigned flags);

int sfs_opendir(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino,
                struct sfs_file **out);
/* Called for each entry from `off` on, with the offset of the next one.
 * As on tmpfs, a listing holds the entries that existed when it started (a
 * read from offset 0; a handle never read from there: its opening), minus
 * those removed since: each of those that stays comes exactly once, and
 * entries added meanwhile, renamed ones included, do not come, so a listing
 * always ends.
 * `attr` is set when plus is true (readdirplus).  Return 0 to take the
 * entry and go on, nonzero to stop (the entry is not taken: with plus, no
 * lookup is added for it). */
typedef int (*sfs_fill_fn)(void *ctx, const char *name, const struct stat *attr, off_t next);
int sfs_readdir(struct sfs_fs *fs, struct sfs_file *dh, off_t off, bool plus, sfs_fill_fn fill,
                void *ctx);
int sfs_releasedir(struct sfs_fs *fs, struct sfs_file *dh);

int sfs_statfs(struct sfs_fs *fs, struct statvfs *st);

/* A copy of src -- a directory and everything below it, or one file,
 * symlink or special file -- named newname in newparent, as `cp -a` makes
 * it, taken at one instant (changes wait meanwhile; reads go on) and
 * costing metadata only: every file shares its sectors with the original
 * until either is changed.  Kept: contents, modes, atime and mtime, xattrs
 * and ACLs, symlinks, special files, hard links inside the tree; owners
 * and groups as cp -a can keep them for cr (all of them for uid 0; else
 * the copies are cr's, keep their group if cr may chown to it, and lose
 * set-id and sticky bits unless owner and group both came through, and
 * only user.* xattrs and ACLs are copied).  newname must not exist
 * (EEXIST).  Refused with the errno cp -a would meet, before anything
 * changes: EACCES without read (and search) permission on every file and
 * directory, or write and search on newparent; EPERM for a device node
 * without privilege; EINVAL for a directory copied into itself; ENOSPC when
 * the copy's names do not fit nr_inodes (each name counts, as tmpfs counts
 * them).  Out of space or memory on the way (ENOSPC, ENOMEM), nothing is
 * left behind.  On failure err (if not NULL) gets one line, naming the
 * file at fault by its path below src (".": src itself).  The caller
 * vouches that cr could reach src and newparent (the path API resolves
 * them with cr's permissions). */
int sfs_clone(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t src, sfs_ino_t newparent,
              const char *newname, char *err, size_t errlen);

/* Extended attributes, with setxattr(2)'s XATTR_CREATE / XATTR_REPLACE.
 * Namespaces user., trusted., security., and the POSIX ACLs
 * system.posix_acl_access and system.posix_acl_default (in the kernel's
 * binary format, as getfacl/setfacl exchange them).  getxattr and
 * listxattr return the size; with size 0 they only tell it. */
int sfs_setxattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, const char *name,
                 const void *value, size_t size, int flags);
ssize_t sfs_getxattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino,
                     const char *name, void *value, size_t size);
ssize_t sfs_listxattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, char *list,
                      size_t size);
int sfs_removexattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino,
                    const char *name);

/* ---- what the filesystem holds ---- */

struct sfs_stats {
	uint64_t inodes, max_inodes;     /* max 0: unlimited */
	uint64_t files, dirs, symlinks, others;
	uint64_t data_bytes;      /* sum of regular file sizes */
	uint64_t sector_size;
	uint64_t sectors;         /* sectors in use (a shared one once) */
	uint64_t saved_sectors;   /* what sharing saves: the sectors files reference
	                           * beyond those in use (copies share them) */
	uint64_t small_bytes;     /* inline data, inodes, entries, nodes */
	uint64_t reserved;        /* bytes counted against the limit */
	uint64_t limit;           /* 0: unlimited */
	uint64_t mapped;          /* memory the pool holds */
	uint64_t overhead;        /* mapped minus what is in use */
};
void sfs_get_stats(struct sfs_fs *fs, struct sfs_stats *st);

/* A number that grows with every change to the tree, to a file's contents
 * or to an attribute, access times included, from any thread.  Two equal
 * readings mean nothing changed in between (a call that fails may still
 * count as a change).  An image save reports the number at the instant it
 * holds (sfs_image_info.changes), so a caller can tell a filesystem that
 * is still exactly as saved from one that is not. */
uint64_t sfs_fs_changes(struct sfs_fs *fs);

/* Walk everything and verify the invariants (link counts, sizes against
 * sectors, counters against the pool, no orphan and no leaked inode).
 * Returns 0, or -EUCLEAN with a description in msg (-ENOMEM, and says so,
 * when it cannot get the memory to look). */
int sfs_check(struct sfs_fs *fs, char *msg, size_t msglen);

/* ---- the path API ---- */

/* Paths are absolute or relative to the root; symlinks are followed
 * (except in the last component where the call says so), up to 40. */
int sfs_path_open(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path, int flags,
                  mode_t mode, struct sfs_file **out);
int sfs_path_stat(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path,
                  struct stat *st, bool follow);
/* The inode a path names, with one lookup (give it back with sfs_forget):
 * the bridge from paths to the inode API (chmod, xattrs, ...). */
int sfs_path_lookup(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path, bool follow,
                    struct sfs_entry *out);
/* mkdir -p: create every missing directory; EEXIST is not an error unless
 * a component is not a directory (ENOTDIR). */
int sfs_path_mkdir(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path, mode_t mode,
                   bool parents);
int sfs_path_unlink(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path);
int sfs_path_rmdir(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path);
int sfs_path_rename(struct sfs_fs *fs, const struct sfs_cred *cr, const char *from,
                    const char *to, unsigned flags);
int sfs_path_symlink(struct sfs_fs *fs, const struct sfs_cred *cr, const char *target,
                     const char *path);
/* link(2) (follow: linkat's AT_SYMLINK_FOLLOW) and mknod(2). */
int sfs_path_link(struct sfs_fs *fs, const struct sfs_cred *cr, const char *from, const char *to,
                  bool follow);
int sfs_path_mknod(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path, mode_t mode,
                   dev_t rdev);
/* cp -a FROM TO, as sfs_clone(): TO must not exist; FROM's last component
 * is not followed (a symlink is copied as such). */
int sfs_path_clone(struct sfs_fs *fs, const struct sfs_cred *cr, const char *from, const char *to,
                   char *err, size_t errlen);
/* rm -r: remove a file, or a directory and everything below it. */
int sfs_path_remove_all(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path);
/* ls: call fn for each entry of a directory (not "." and ".."). */
int sfs_path_list(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path,
                  int (*fn)(void *ctx, const char *name, const struct stat *st), void *ctx);
/* Whole-file helpers: write (create or truncate) and read up to size. */
int sfs_path_write_file(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path,
                        const void *data, size_t size, mode_t mode);
ssize_t sfs_path_read_file(struct sfs_fs *fs, const struct sfs_cred *cr, const char *path,
                           void *buf, size_t size);

/* ==== disk images: save and restore (core/image_*.c) ====================
 *
 * A filesystem can be written to a file and loaded back, with everything
 * in it: contents (holes stay holes), modes, owners, timestamps with
 * nanoseconds, hard links, symlinks, fifos, sockets, devices, xattrs and
 * ACLs.  The format is documented in docs/image-format.md.
 *
 * All three return 0 or a negative errno; on failure `err` (if not NULL)
 * gets one line naming the image and the problem, e.g.
 * "/var/lib/x.img: record 37 (data of inode 12): checksum mismatch". */

struct sfs_image_info {
	unsigned version_major, version_minor; /* of the format */
	uint32_t flags;           /* feature flags in the header */
	uint32_t sector_size;     /* of the filesystem that was saved */
	struct timespec created;  /* when the save began */
	uint64_t image_bytes;     /* size of the image file */
	uint64_t records;         /* records after the header, the end record included */
	uint64_t skipped;         /* records of unknown (skippable) types */
	uint64_t inodes;          /* the root included */
	uint64_t dirs, files, symlinks, fifos, sockets, chrdevs, blkdevs;
	uint64_t names;           /* directory entries, each hard link counted */
	uint64_t xattrs;          /* extended attributes, ACLs included */
	uint64_t data_bytes;      /* file data stored (holes are not) */
	uint64_t shared_bytes;    /* file data stored once for several files (share records) */
	uint64_t file_bytes;      /* sum of regular file sizes (holes included) */
	uint64_t held_ns;         /* saves: how long writers were held back */
	uint64_t changes;         /* saves: sfs_fs_changes() at the instant saved */
};

/* Save a point-in-time view of `fs` to `path`, atomically: the image is
 * written beside it (.NAME.tmp.XXXXXX), synced, renamed over `path` and
 * the directory synced, so a crash leaves the old image or the new one.
 * Writers may go on meanwhile.  A new image is mode 0600; an existing
 * one keeps its mode (and, for root, its owner).  `info` may be NULL.
 * On failure (-errno, and one line in err naming the image and the
 * cause) the old image is as it was and no temporary file is left; but
 * when only the last step, the directory's sync, fails, the new image is
 * already in place (the message says so) and its rename may not survive
 * a crash: the save still fails, and saving again is the remedy. */
int sfs_image_save(struct sfs_fs *fs, const char *path, struct sfs_image_info *info, char *err,
                   size_t errlen);

/* Load an image into `fs`, which must be empty (only its root).  The whole
 * image is verified first (checksums, lengths, structure, that it fits
 * the size and inode limits); then the tree is built, root attributes
 * included.  On any failure the filesystem is left empty again. */
int sfs_image_load(struct sfs_fs *fs, const char *path, char *err, size_t errlen);

/* The same verification, without loading; `info` (may be NULL) gets what
 * the image holds. */
int sfs_image_check(const char *path, struct sfs_image_info *info, char *err, size_t errlen);

/* How far a save or load of `fs`, running in another thread, has come: for
 * progress reports.  done and total are bytes: of the image file while
 * verifying and loading, of file data while saving (holes count as
 * done when passed).  With several at once, the last one to report. */
enum sfs_image_phase {
	SFS_IMAGE_IDLE,      /* none under way */
	SFS_IMAGE_VERIFYING, /* a load's first pass: reading and checking */
	SFS_IMAGE_LOADING,   /* a load's second pass: building */
	SFS_IMAGE_SAVING,
};
struct sfs_image_progress {
	enum sfs_image_phase phase;
	uint64_t done, total;
};
void sfs_image_progress(struct sfs_fs *fs, struct sfs_image_progress *out);

/* ==== end of disk images ============================================== */

/* ==== restoring a tree (core/restore.c) ===============================
 * Builds a whole tree into an empty filesystem so that every attribute
 * ends as given, although setting one changes others (a chown clears
 * setuid bits, a link moves ctime, a default ACL is inherited): the image
 * loader and `sectorfs image create` both use it.  Objects come parents
 * first; each is sfs_restore_inode(), then its data (regular files), then
 * its xattrs, then sfs_restore_done(); further names of an object are
 * sfs_restore_link()s.  Times of directories and of objects with several
 * names, and directories' default ACLs, are held back and set by
 * sfs_restore_end().  Everything runs as a trusted root.  Each call
 * returns 0 or -errno; sfs_restore_failed() then says what failed. */

struct sfs_restore;

/* Start restoring into fs, which must be empty (only its root: else
 * -ENOTEMPTY).  The root's attributes are remembered, for an undo. */
int sfs_restore_begin(struct sfs_fs *fs, struct sfs_restore **out);

/* The next object: `name` in the directory `parent` (SFS_ROOT_INO or a
 * directory restored before), or, with parent 0 and name NULL, the root
 * itself (a directory; only its attributes are set).  st gives st_mode
 * (type and permissions), st_uid, st_gid, st_rdev (devices), st_size
 * (regular files, holes included), st_nlink (how many names it will have
 * in all) and st_atim, st_mtim, st_ctim; `target` a symlink's target.
 * *ino gets its inode number.  The object before must be done. */
int sfs_restore_inode(struct sfs_restore *r, sfs_ino_t parent, const char *name,
                      const struct stat *st, const char *target, sfs_ino_t *ino);

/* Data of the current object (a regular file), before its xattrs. */
int sfs_restore_write(struct sfs_restore *r, const void *buf, size_t len, off_t off);

/* Data of the current object (a regular file) that `from`, a file
 * restored and done before, holds: len bytes at from_off of it become the
 * bytes at off, sharing its sectors where they line up (as
 * sfs_copy_file_range does; `from`'s times do not move).  Before its
 * xattrs, like sfs_restore_write. */
int sfs_restore_share(struct sfs_restore *r, sfs_ino_t from, off_t from_off, off_t off,
                      uint64_t len);

/* An extended attribute of the current object (ACLs included). */
int sfs_restore_xattr(struct sfs_restore *r, const char *name, const void *value, size_t len);

/* The current object is complete: its size, mode and (unless held back)
 * times are set. */
int sfs_restore_done(struct sfs_restore *r);

/* One more name, in `parent`, of the object `ino` (not a directory). */
int sfs_restore_link(struct sfs_restore *r, sfs_ino_t ino, sfs_ino_t parent, const char *name);

/* Everything is in: the current object is done, then the held-back
 * default ACLs and times are set. */
int sfs_restore_end(struct sfs_restore *r);

/* After a call failed: the step that failed ("getattr", "mkdir", "create",
 * "symlink", "mknod", "chown", "write", "open the file it shares data
 * with", "share data", "truncate", "setxattr", "release",
 * "setattr", "link", "default ACL", "times"; "restore" for calls out of
 * order; NULL when the restore's own memory ran out) and, in *ino (may be
 * NULL), the inode it was for (0 if it was being created). */
const char *sfs_restore_failed(const struct sfs_restore *r, sfs_ino_t *ino);

/* Free the restore.  With `undo`, first remove everything under the root
 * and put the root's attributes back: the filesystem is as empty as it
 * was at sfs_restore_begin(). */
void sfs_restore_free(struct sfs_restore *r, bool undo);

/* ==== end of restoring ================================================ */

#ifdef __cplusplus
}
#endif
#endif
