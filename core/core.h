/* SPDX-License-Identifier: MIT */
/* core.h - the filesystem core's data structures (internal).
 *
 * ---------------------------------------------------------------------------
 * Objects
 *
 *   struct sfs_fs       one filesystem: the pool, the limits, the inode table
 *   struct sfs_inode    128 bytes: attributes, counts, and one of
 *                         - a vector of data (regular files, symlinks),
 *                         - a pointer to its directory (directories),
 *                         - a device number (char/block devices)
 *   struct sfs_dir      a directory: name -> entry hash table, and the
 *                       entries in the order of their cookies (for readdir)
 *   struct sfs_dirent   one name in a directory: name, inode, cookie
 *   struct sfs_file     an open file or directory (a reference on the inode)
 *
 *   Inodes, entries and directories are small objects from the pool, so
 *   they are counted against the size limit and their memory goes back to
 *   the kernel when they are deleted.
 *
 * Inode numbers are never reused during the life of a filesystem: the
 * table maps the number to the inode (a sparse map per shard, see
 * fs.c).  An inode lives while it has a link (nlink), a lookup from the
 * caller (nlookup), or a reference (refs: open handles and operations in
 * flight).  The last inode_put() of a dead inode frees it.
 *
 * Locking (the order is written down once, in namei.c, which owns it):
 *   fs->rename_lock > directory locks (ancestor first) > other inode locks
 *   (by inode number) > a file's data lock (its vector) > table shard locks
 *   and pool locks.
 *
 * In each struct, a comment in brackets names what protects the field:
 *   [lock]    the inode's own rwlock        [atomic]  lock-free atomics
 *   [const]   set at creation                [parent]  the parent dir's lock
 *   [shard]   the inode table shard lock
 */
#ifndef SECTORFS_CORE_H
#define SECTORFS_CORE_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "sectorfs.h"
#include "sectorfs/engine.h"

#define BOGO_DIRENT_SIZE 20 /* tmpfs's directory size per entry */

/* inode->flags */
#define I_LINKABLE 1u /* an O_TMPFILE that may still be linked */
#define I_CAPS 2u     /* has security.capability (a write removes it) */
#define I_DATA_GONE 4u /* unlinked and closed: its data was freed */
#define I_CACHED 8u   /* a cache outside may hold pages of it (sfs_file_mark_cached) */
/* chattr's flags live in the same word, at their own values (SFS_FL_*). */
#define I_USER_FLAGS (SFS_FL_IMMUTABLE | SFS_FL_APPEND | SFS_FL_NODUMP | SFS_FL_NOATIME)
_Static_assert(((I_LINKABLE | I_CAPS | I_DATA_GONE | I_CACHED) & I_USER_FLAGS) == 0,
               "inode flags and chattr's flags do not overlap");
/* What is made in a directory takes these from it, as on tmpfs. */
#define I_INHERITED (SFS_FL_NODUMP | SFS_FL_NOATIME)
#define TABLE_SHARDS 64

struct sfs_dir;
struct sfs_xattrs;

struct sfs_inode {
	uint64_t ino;                 /* [const] */
	_Atomic uint32_t refs;        /* [atomic] handles + calls in flight */
	struct lk_rwlock lock;        /* guards the [lock] fields */
	_Atomic uint32_t mode;        /* [lock] written, [atomic] read: type, permissions */
	uint32_t uid, gid;            /* [lock] */
	_Atomic uint32_t nlink;       /* [lock] written, [atomic] read */
	int64_t btime_ns;             /* [const] birth: ns since the epoch (inode_new) */
	_Atomic uint64_t nlookup;     /* [atomic] the caller's lookups */
	_Atomic int64_t atime_s, mtime_s, ctime_s;    /* [atomic] */
	_Atomic uint32_t atime_ns, mtime_ns, ctime_ns; /* [atomic] */
	_Atomic uint32_t flags;       /* [lock] written, [atomic] read: I_* */
	struct sfs_xattrs *xattrs;    /* [lock] NULL: none */
	union {
		struct sv_vector data;  /* regular file, symlink: own lock */
		struct sfs_dir *dir;    /* directory: [lock] */
		uint64_t rdev;          /* device: [lock] */
	} u;
};

struct sfs_dirent {
	struct sfs_dirent *next;      /* hash chain                      [parent] */
	struct sfs_inode *inode;      /* holds a link (nlink) on it       [parent] */
	uint64_t cookie;              /* readdir position, never reused   [const] */
	uint32_t hash;                /* [const] */
	uint8_t len;                  /* name length, 1..255              [const] */
	uint8_t type;                 /* DT_* of the inode                [const] */
	char name[];                  /* NUL-terminated                   [const] */
};

/* A chained hash table of entries, resized incrementally (see dir.c). */
struct dir_table {
	struct sfs_dirent **b;
	uint64_t size;                /* buckets, a power of two (0: none) */
	uint64_t used;
};

struct sfs_dir {
	struct sfs_inode *parent;     /* ".." (itself for the root; NULL once removed) [lock] */
	struct dir_table t[2];        /* t[1] in use while rehashing      [lock] */
	uint64_t rehash;              /* next bucket of t[0] to move      [lock] */
	struct sm_map order;          /* cookie -> entry                  [lock] */
	uint64_t next_cookie;         /* [lock] */
	uint64_t count;               /* entries                          [lock] */
	uint32_t subdirs;             /* entries that are directories     [lock] */
};

struct sfs_file {
	struct sfs_inode *ip;         /* referenced until release */
	struct sfs_fs *fs;            /* the filesystem it belongs to */
	int flags;                    /* open(2) flags */
	/* Directories: a listing stops at cookies from dir_end on (the
	 * directory's next cookie at the last read from offset 0, or at open
	 * before that), so entries added meanwhile, renamed ones included,
	 * are not listed and a listing ends, as on tmpfs. */
	_Atomic uint64_t dir_end;     /* [atomic] */
};

struct table_shard {
	struct lk_rwlock lock;
	struct sm_map map;            /* ino / TABLE_SHARDS -> inode [lock] */
} __attribute__((aligned(64)));

#define FREEZE_SLOTS 16

/* Changes enter this shared, a snapshot exclusively (see snapshot.c). */
struct freeze {
	_Atomic uint32_t frozen;      /* a snapshot holds the filesystem still */
	struct lk_mutex lock;         /* one snapshot at a time */
	struct {
		_Atomic int64_t n;    /* changes in flight from this thread slot */
		_Atomic uint64_t changes; /* changes ever begun from this slot */
	} __attribute__((aligned(64))) readers[FREEZE_SLOTS];
};

/* What a save or load of this filesystem has done (sfs_image_progress):
 * three figures that belong together, so a reader never mixes two updates. */
struct image_progress {
	struct lk_mutex lock;
	unsigned phase;               /* [lock] enum sfs_image_phase */
	uint64_t done, total;         /* [lock] bytes */
};

struct sfs_fs {
	struct sp_pool *pool;
	struct table_shard shards[TABLE_SHARDS];
	_Atomic uint64_t next_ino;
	_Atomic uint64_t inodes;      /* live inodes */
	_Atomic uint64_t charged;     /* against max_inodes: inodes + extra links */
	_Atomic uint64_t max_inodes;  /* 0: unlimited [changes under freeze_all] */
	uint32_t generation;          /* this filesystem's generation */
	uint64_t sip_key[2];          /* keys of the name hash */
	enum sfs_atime atime;
	void (*attrs_changed)(void *arg, sfs_ino_t ino); /* [const] see sfs_config */
	void *attrs_changed_arg;
	struct lk_mutex rename_lock;  /* cross-directory renames */
	struct sfs_inode *root;
	/* per-type counts for statistics [atomic] */
	_Atomic uint64_t nfiles, ndirs, nsymlinks, nothers;
	_Atomic uint64_t open_files;  /* handles not yet released */
	struct freeze freeze;
	struct image_progress progress;
};

/* ---- fs.c: inode table and lifetime ---- */

/* The inode with this number, referenced; NULL if there is none or it is
 * dead.  inode_put() drops the reference and frees a dead inode. */
struct sfs_inode *inode_get(struct sfs_fs *fs, sfs_ino_t ino);
void inode_hold(struct sfs_inode *ip); /* another reference on a live inode */
void inode_put(struct sfs_fs *fs, struct sfs_inode *ip);

/* A new inode of `mode` (type and permissions final), owned by uid/gid,
 * with one reference and nlink 0, in the table.  -ENOSPC (inodes or bytes)
 * or -ENOMEM; nothing is left behind on failure.  inode_abort() undoes a
 * new inode that was never linked. */
int inode_new(struct sfs_fs *fs, uint32_t mode, uint32_t uid, uint32_t gid,
              struct sfs_inode **out);
void inode_abort(struct sfs_fs *fs, struct sfs_inode *ip);
/* As tmpfs does, every name past a file's first costs an inode of
 * max_inodes: link_charge() before adding one (-ENOSPC when none is left),
 * link_refund() when a name of a file with several goes.  Only within a
 * change (freeze_enter), where max_inodes stays still. */
int link_charge(struct sfs_fs *fs);
void link_refund(struct sfs_fs *fs);
/* The same for count names at once (a clone); inode_new_charged() makes
 * an inode whose charge the caller took so (it is the inode's once made). */
int link_charge_many(struct sfs_fs *fs, uint64_t count);
void link_refund_many(struct sfs_fs *fs, uint64_t count);
int inode_new_charged(struct sfs_fs *fs, uint32_t mode, uint32_t uid, uint32_t gid,
                      struct sfs_inode **out);

/* Bytes of pool memory charged for small objects: reserve, then allocate;
 * free, then release.  Both sides use the size class, so the accounts
 * balance exactly. */
void *meta_alloc(struct sfs_fs *fs, size_t size);   /* NULL: -ENOSPC or -ENOMEM in errno */
void meta_free(struct sfs_fs *fs, void *obj, size_t size);

/* ---- attr.c: attributes and time ---- */

struct timespec;
void inode_stat(struct sfs_fs *fs, struct sfs_inode *ip, struct stat *st); /* [lock] read */
void inode_touch(struct sfs_inode *ip, bool atime, bool mtime, bool ctime);
/* cr changed ip's contents (write, truncate; ip's lock held for writing):
 * drop what perm_setid_to_drop() says unless cr is privileged, and any
 * file capabilities. */
void contents_changed_by(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip);
void inode_set_time(_Atomic int64_t *s, _Atomic uint32_t *ns, struct timespec ts);
/* Decide (relatime) and update the access time after a read. */
void inode_accessed(struct sfs_fs *fs, struct sfs_inode *ip);
unsigned char dt_of(uint32_t mode);

/* ---- perm.c: who may do what ---- */

#define MAY_EXEC 1
#define MAY_WRITE 2
#define MAY_READ 4

bool cred_privileged(const struct sfs_cred *cr);
/* Is cr in group gid (its own or a supplementary one)?  1, 0, or -ENOMEM
 * when more than 32 supplementary groups must be read and no memory can be
 * had for them.  Permission checks fail with that ENOMEM; the decisions to
 * drop a setgid bit (made after a change, which cannot be taken back) use
 * cred_in_group(), which counts "unknown" as "not in the group" and so
 * drops the bit: the answer that never grants a privilege. */
int cred_group_check(const struct sfs_cred *cr, uint32_t gid);
bool cred_in_group(const struct sfs_cred *cr, uint32_t gid);
/* The set-id bits a change of owner or contents by cr drops, as the
 * kernel's setattr_should_drop_suidgid(): suid; sgid with group execute,
 * or when cr is neither in the file's group nor privileged (without group
 * execute, sgid marks mandatory locking, not privilege).  Writes and
 * truncates by a privileged caller (CAP_FSETID) drop nothing. */
uint32_t perm_setid_to_drop(const struct sfs_cred *cr, const struct sfs_inode *ip);
bool cred_trusted(const struct sfs_cred *cr);
/* Permission for `mask` on an inode, by mode bits and the access ACL:
 * 0, -EACCES, or -ENOMEM (cred_group_check); and, for every caller, no
 * write to an immutable inode: -EPERM (inode_permission()).  Inode lock
 * held (read). */
int perm_check(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip, int mask);
/* may_delete()'s rules for removing `victim`'s name from `dir`, past the
 * directory's permissions: an append-only directory loses no name, an
 * append-only or immutable inode keeps its names (for every caller), and
 * the sticky bit.  0 or -EPERM. */
int perm_delete(const struct sfs_cred *cr, struct sfs_inode *dir, struct sfs_inode *victim);
/* Owner or privileged (chmod, utimes to a given time, ...). */
bool perm_owner(const struct sfs_cred *cr, struct sfs_inode *ip);

/* ---- xattr.c and acl.c: extended attributes and POSIX ACLs ---- */

/* All with the inode lock held: write for set/remove/free, read for
 * get/list.  Sizes are charged to the pool like other metadata. */
int xattr_set(struct sfs_fs *fs, struct sfs_inode *ip, const char *name, const void *value,
              size_t size, int flags);
ssize_t xattr_get(struct sfs_inode *ip, const char *name, void *value, size_t size);
ssize_t xattr_list(struct sfs_inode *ip, char *list, size_t size);
int xattr_remove(struct sfs_fs *fs, struct sfs_inode *ip, const char *name);
void xattr_free_all(struct sfs_fs *fs, struct sfs_inode *ip);
uint64_t xattr_bytes(const struct sfs_inode *ip); /* pool bytes held, for checks */
/* A change of contents or owner drops file capabilities, as the kernel's
 * file_remove_privs() does for anyone.  Inode lock held (write). */
void xattr_kill_caps(struct sfs_fs *fs, struct sfs_inode *ip);

/* Raw access to a stored ACL (type 0: access, 1: default), for acl.c:
 * read bytes (buf NULL: just the size, 0 if none), or rewrite bytes in
 * place.  Inode lock held. */
ssize_t xattr_acl_read(const struct sfs_inode *ip, int type, size_t off, void *buf, size_t n);
void xattr_acl_write(struct sfs_inode *ip, int type, size_t off, const void *buf, size_t n);

/* An ACL value the kernel would take (posix_acl_from_xattr, then
 * posix_acl_valid), with at least one entry: 0 or -errno. */
int acl_check(const void *value, size_t size);
/* A security.capability value the kernel would take (cap_convert_nscap):
 * 0 or -EINVAL. */
int xattr_capability_ok(const void *value, size_t size);

/* ACL permission check: 0, -EACCES or -ENOMEM (cred_group_check) if the
 * inode has an access ACL; -EAGAIN if it has none (use the mode bits). */
int acl_permission(struct sfs_inode *ip, const struct sfs_cred *cr, int mask);
/* After a chmod: carry the new mode into the access ACL.  Rewrites the
 * ACL in place (same number of entries), so it cannot fail. */
void acl_chmod(struct sfs_fs *fs, struct sfs_inode *ip);
/* Set or remove (value NULL) an ACL attribute, with tmpfs's rules: the
 * access ACL updates the mode and is dropped when the mode says it all;
 * a default ACL only on directories.  cr decides whether the setgid bit
 * survives.  0 or -errno. */
int acl_set(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip, const char *name,
            const void *value, size_t size, int flags);
/* At creation in `dir`: if dir has a default ACL, give the new inode its
 * ACLs and mask *mode by it (returns 1); else return 0 (apply the umask).
 * The new inode is not yet visible; dir is locked. */
int acl_inherit(struct sfs_fs *fs, struct sfs_inode *dir, struct sfs_inode *ip, uint32_t *mode);

/* ---- dir.c: the directory structure (dir lock held) ---- */

int dir_new(struct sfs_fs *fs, struct sfs_inode *ip, struct sfs_inode *parent);
void dir_free(struct sfs_fs *fs, struct sfs_inode *ip);
struct sfs_dirent *dir_find(struct sfs_fs *fs, struct sfs_dir *d, const char *name, size_t len);
/* Add an entry for ip (the caller adjusts nlink): 0, -ENOSPC or -ENOMEM. */
int dir_add(struct sfs_fs *fs, struct sfs_inode *dir, const char *name, size_t len,
            struct sfs_inode *ip);
/* Remove (and free) an entry. */
void dir_remove(struct sfs_fs *fs, struct sfs_inode *dir, struct sfs_dirent *de);
/* The first entry with cookie >= from. */
struct sfs_dirent *dir_next(struct sfs_dir *d, uint64_t from);
uint64_t dir_bytes(const struct sfs_dir *d); /* pool bytes held, for checks */

/* ---- snapshot.c: every call that changes the tree or a file's data
 * brackets the change with these (never nested) ---- */

void freeze_enter(struct sfs_fs *fs);
void freeze_exit(struct sfs_fs *fs);
/* Hold every change back (a snapshot, a clone): no change is in flight
 * between the two; reads go on.  One holder at a time. */
void freeze_all(struct sfs_fs *fs);
void thaw_all(struct sfs_fs *fs);
/* A change that does not enter the freeze (an access time a read moves)
 * still counts for sfs_fs_changes(). */
void freeze_count_change(struct sfs_fs *fs);
/* The sum of every slot's changes: sfs_fs_changes(). */
uint64_t freeze_changes(struct sfs_fs *fs);

/* ---- fs.c: what an image save or load reports as it goes ---- */

void fs_progress(struct sfs_fs *fs, unsigned phase, uint64_t done, uint64_t total);
/* Wait until no change is in flight and hold every new one back (a
 * snapshot; a change of limits), until thaw_all.  Never from within a
 * change. */
void freeze_all(struct sfs_fs *fs);
void thaw_all(struct sfs_fs *fs);

/* ---- file.c ---- */

/* Open a referenced inode: checks the type and, unless cr is NULL (the
 * creator opening what it just made), the permissions; handles O_TRUNC. */
int file_open_inode(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip,
                    int flags, struct sfs_file **out);
/* A handle in two steps, for callers that must not fail once they have
 * created something: file_new() may fail (NULL, errno), file_init() not;
 * file_discard() frees one that was never initialised. */
struct sfs_file *file_new(struct sfs_fs *fs);
struct sfs_file *file_init(struct sfs_fs *fs, struct sfs_file *fh, struct sfs_inode *ip,
                           int flags);
void file_discard(struct sfs_fs *fs, struct sfs_file *fh);

/* ---- helpers ---- */

static inline bool is_dir(const struct sfs_inode *ip)
{
	return (ip->mode & S_IFMT) == S_IFDIR;
}
static inline bool is_reg(const struct sfs_inode *ip)
{
	return (ip->mode & S_IFMT) == S_IFREG;
}
static inline bool is_lnk(const struct sfs_inode *ip)
{
	return (ip->mode & S_IFMT) == S_IFLNK;
}
static inline bool has_data(const struct sfs_inode *ip)
{
	return is_reg(ip) || is_lnk(ip);
}
/* chattr's flags: any of `fl` set on ip. */
static inline bool has_flag(const struct sfs_inode *ip, uint32_t fl)
{
	return (atomic_load(&((struct sfs_inode *)ip)->flags) & fl) != 0;
}

/* A directory's ".." (NULL once removed).  Atomic: rename_lock holders
 * walk parents without taking each directory's lock. */
static inline struct sfs_inode *dir_parent(struct sfs_inode *dir)
{
	return atomic_load_explicit((_Atomic(struct sfs_inode *) *)&dir->u.dir->parent,
	                            memory_order_acquire);
}

static inline void set_dir_parent(struct sfs_inode *dir, struct sfs_inode *parent)
{
	atomic_store_explicit((_Atomic(struct sfs_inode *) *)&dir->u.dir->parent, parent,
	                      memory_order_release);
}

/* A name as the inode API accepts it: 1..255 bytes, no '/'.  0, -EFAULT
 * (NULL), -ENOENT (empty), -ENAMETOOLONG, -EINVAL ('/').  "." and ".."
 * pass: each caller answers them with the errno the kernel gives for its
 * call (lookup follows them, create and link say EEXIST, unlink EISDIR,
 * rmdir EINVAL or ENOTEMPTY, rename EBUSY or EEXIST). */
int name_check(const char *name, size_t *len);

#endif
