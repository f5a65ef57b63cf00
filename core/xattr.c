/* SPDX-License-Identifier: MIT */
/* xattr.c - extended attributes: their storage, and the four xattr calls.
 *
 * Storage.  An inode with attributes points to a small struct sfs_xattrs
 * (one 32-byte pool object): two slots for the POSIX ACLs, so that a
 * permission check finds the access ACL without a search, and a singly
 * linked list of the other attributes sorted by name, the order in which
 * the kernel's tmpfs lists them (ACLs first, then its rbtree).  A list
 * keeps the code small and costs nothing per entry; lookups are linear, as
 * tmpfs's own were until 6.2, which suits the handful of attributes files
 * carry.
 *
 * An attribute is one pool object holding a header, the name and, when it
 * all fits in SP_SMALL_MAX (2 KiB), the value.  A larger value (up to
 * 64 KiB) is cut into 2 KiB chunks, each a small object of its own, and the
 * entry holds their pointers.  We chose chunks over a sector vector: a
 * vector takes whole sectors (up to 64 KiB each, whatever the value's
 * size) plus tree nodes that xattr_bytes() would have to count, and its
 * lock is useless under the inode lock; chunks waste at most the rounding
 * of the last one, and every byte is a small object whose size follows
 * from the name and value lengths, so xattr_bytes() recomputes exactly
 * what the pool charged.  Every object comes from meta_alloc(), so
 * attributes count against the size limit like other metadata.
 *
 * All or nothing: a set builds the complete new entry (and the container,
 * if the inode had none) before touching the inode; linking it in and
 * freeing the old one cannot fail.  A replace therefore needs room for both
 * values for a moment, as in the kernel, whose simple_xattr_set()
 * allocates the new attribute before it looks for the old one.
 *
 * The public calls apply the kernel's checks in the kernel's order:
 * argument checks (setxattr_copy), then the ACL path (do_set_acl and
 * friends, in acl.c) or xattr_permission(), the capability hooks and the
 * handler lookup (xattr_resolve_name), so that a call breaking several
 * rules fails with the errno tmpfs would give.
 */
#include <stddef.h>
#include <sys/xattr.h>

#include "core.h"

#define CAPS_NAME "security.capability"
#define ACL_ACCESS_NAME "system.posix_acl_access"
#define ACL_DEFAULT_NAME "system.posix_acl_default"
#define CHUNK SP_SMALL_MAX

struct xent {
	struct xent *next; /* the next name in strcmp order */
	uint32_t size;     /* value bytes */
	uint8_t nlen;      /* name bytes, 1..255 */
	char name[];       /* name, NUL, then the value or the chunk pointers */
};

struct sfs_xattrs {
	struct xent *acl[2]; /* system.posix_acl_access, system.posix_acl_default */
	struct xent *head;   /* every other attribute */
};

/* ---- entries ---- */

static inline size_t head_bytes(size_t nlen)
{
	return offsetof(struct xent, name) + nlen + 1;
}

static inline bool fits_inline(size_t nlen, size_t size)
{
	return head_bytes(nlen) + size <= CHUNK;
}

static inline size_t nchunks(size_t size)
{
	return (size + CHUNK - 1) / CHUNK;
}

static inline size_t table_off(size_t nlen)
{
	return (head_bytes(nlen) + 7) & ~(size_t)7;
}

/* Size of the entry object itself (not counting its chunks). */
static size_t ent_size(size_t nlen, size_t size)
{
	if (fits_inline(nlen, size))
		return head_bytes(nlen) + size;
	return table_off(nlen) + nchunks(size) * sizeof(void *);
}

static inline size_t chunk_len(size_t size, size_t i)
{
	size_t left = size - i * CHUNK;
	return left < CHUNK ? left : CHUNK;
}

static inline bool ent_inline(const struct xent *e)
{
	return fits_inline(e->nlen, e->size);
}

static inline char *inline_value(const struct xent *e)
{
	return (char *)e->name + e->nlen + 1;
}

static inline void **chunk_table(const struct xent *e)
{
	return (void **)((char *)e + table_off(e->nlen));
}

static void ent_free(struct sfs_fs *fs, struct xent *e)
{
	if (!e)
		return;
	if (!ent_inline(e)) {
		void **t = chunk_table(e);
		for (size_t i = 0; i < nchunks(e->size); i++)
			meta_free(fs, t[i], chunk_len(e->size, i));
	}
	meta_free(fs, e, ent_size(e->nlen, e->size));
}

/* Pool bytes one entry holds: the same size classes meta_alloc charged. */
static uint64_t ent_bytes(const struct xent *e)
{
	uint64_t b = sp_small_size(ent_size(e->nlen, e->size));
	if (!ent_inline(e))
		for (size_t i = 0; i < nchunks(e->size); i++)
			b += sp_small_size(chunk_len(e->size, i));
	return b;
}

static void ent_read(const struct xent *e, size_t off, void *buf, size_t n)
{
	if (ent_inline(e)) {
		memcpy(buf, inline_value(e) + off, n);
		return;
	}
	void **t = chunk_table(e);
	char *out = buf;
	while (n) {
		size_t o = off % CHUNK, k = CHUNK - o < n ? CHUNK - o : n;
		memcpy(out, (char *)t[off / CHUNK] + o, k);
		out += k, off += k, n -= k;
	}
}

static void ent_write(struct xent *e, size_t off, const void *buf, size_t n)
{
	if (ent_inline(e)) {
		memcpy(inline_value(e) + off, buf, n);
		return;
	}
	void **t = chunk_table(e);
	const char *in = buf;
	while (n) {
		size_t o = off % CHUNK, k = CHUNK - o < n ? CHUNK - o : n;
		memcpy((char *)t[off / CHUNK] + o, in, k);
		in += k, off += k, n -= k;
	}
}

/* A complete new entry, not linked anywhere; NULL with errno set. */
static struct xent *ent_new(struct sfs_fs *fs, const char *name, size_t nlen, const void *value,
                            size_t size)
{
	struct xent *e = meta_alloc(fs, ent_size(nlen, size));
	if (!e)
		return NULL;
	e->size = (uint32_t)size;
	e->nlen = (uint8_t)nlen;
	memcpy(e->name, name, nlen + 1);
	if (!ent_inline(e)) {
		void **t = chunk_table(e);
		for (size_t i = 0; i < nchunks(size); i++) {
			t[i] = meta_alloc(fs, chunk_len(size, i));
			if (!t[i]) {
				int err = errno;
				while (i--)
					meta_free(fs, t[i], chunk_len(size, i));
				meta_free(fs, e, ent_size(nlen, size));
				errno = err;
				return NULL;
			}
		}
	}
	if (size)
		ent_write(e, 0, value, size);
	return e;
}

/* ---- the container ---- */

static int acl_slot(const char *name)
{
	if (!strcmp(name, ACL_ACCESS_NAME))
		return 0;
	if (!strcmp(name, ACL_DEFAULT_NAME))
		return 1;
	return -1;
}

/* The link that points (or would point) at the entry for `name`. */
static struct xent **find_link(struct sfs_xattrs *xs, const char *name)
{
	int slot = acl_slot(name);
	if (slot >= 0)
		return &xs->acl[slot];
	struct xent **link = &xs->head;
	while (*link && strcmp((*link)->name, name) < 0)
		link = &(*link)->next;
	return link;
}

static struct xent *find(const struct sfs_xattrs *xs, const char *name)
{
	if (!xs)
		return NULL;
	struct xent *e = *find_link((struct sfs_xattrs *)xs, name);
	return e && !strcmp(e->name, name) ? e : NULL;
}

static void drop_if_empty(struct sfs_fs *fs, struct sfs_inode *ip)
{
	struct sfs_xattrs *xs = ip->xattrs;
	if (xs && !xs->acl[0] && !xs->acl[1] && !xs->head) {
		meta_free(fs, xs, sizeof(*xs));
		ip->xattrs = NULL;
	}
}

int xattr_set(struct sfs_fs *fs, struct sfs_inode *ip, const char *name, const void *value,
              size_t size, int flags)
{
	size_t nlen = strnlen(name, SFS_NAME_MAX + 1);
	if (nlen == 0 || nlen > SFS_NAME_MAX)
		return -ERANGE;
	if (size > SFS_XATTR_SIZE_MAX)
		return -E2BIG;
	struct xent *old = find(ip->xattrs, name);
	if (old && (flags & XATTR_CREATE))
		return -EEXIST;
	if (!old && (flags & XATTR_REPLACE))
		return -ENODATA;
	struct sfs_xattrs *fresh = NULL;
	if (!ip->xattrs) {
		fresh = meta_alloc(fs, sizeof(*fresh));
		if (!fresh)
			return -errno;
	}
	struct xent *e = ent_new(fs, name, nlen, value, size);
	if (!e) {
		int rc = -errno;
		meta_free(fs, fresh, sizeof(*fresh));
		return rc;
	}
	/* Nothing can fail from here on. */
	if (fresh)
		ip->xattrs = fresh;
	struct xent **link = find_link(ip->xattrs, name);
	e->next = old ? old->next : *link;
	*link = e;
	ent_free(fs, old);
	if (!strcmp(name, CAPS_NAME))
		atomic_fetch_or(&ip->flags, I_CAPS);
	return 0;
}

ssize_t xattr_get(struct sfs_inode *ip, const char *name, void *value, size_t size)
{
	const struct xent *e = find(ip->xattrs, name);
	if (!e)
		return -ENODATA;
	if (!value || size == 0)
		return e->size;
	if (size < e->size)
		return -ERANGE;
	ent_read(e, 0, value, e->size);
	return e->size;
}

/* Append one name to the list, as the kernel's xattr_list_one(). */
static int list_one(char **buf, size_t *left, size_t *used, const char *name, size_t nlen)
{
	*used += nlen + 1;
	if (!*buf)
		return 0;
	if (*left < nlen + 1)
		return -ERANGE;
	memcpy(*buf, name, nlen + 1);
	*buf += nlen + 1;
	*left -= nlen + 1;
	return 0;
}

/* The names, trusted.* ones only if `trusted`.  ACLs come first. */
static ssize_t list_names(const struct sfs_inode *ip, char *list, size_t size, bool trusted)
{
	const struct sfs_xattrs *xs = ip->xattrs;
	char *buf = size ? list : NULL;
	size_t left = size, used = 0;
	if (!xs)
		return 0;
	for (int i = 0; i < 2; i++)
		if (xs->acl[i] && list_one(&buf, &left, &used, xs->acl[i]->name, xs->acl[i]->nlen))
			return -ERANGE;
	for (const struct xent *e = xs->head; e; e = e->next) {
		if (!trusted && !strncmp(e->name, "trusted.", 8))
			continue;
		if (list_one(&buf, &left, &used, e->name, e->nlen))
			return -ERANGE;
	}
	return (ssize_t)used;
}

ssize_t xattr_list(struct sfs_inode *ip, char *list, size_t size)
{
	return list_names(ip, list, size, true);
}

int xattr_remove(struct sfs_fs *fs, struct sfs_inode *ip, const char *name)
{
	if (!find(ip->xattrs, name))
		return -ENODATA;
	struct xent **link = find_link(ip->xattrs, name);
	struct xent *e = *link;
	*link = e->next;
	ent_free(fs, e);
	drop_if_empty(fs, ip);
	if (!strcmp(name, CAPS_NAME))
		atomic_fetch_and(&ip->flags, ~I_CAPS);
	return 0;
}

void xattr_kill_caps(struct sfs_fs *fs, struct sfs_inode *ip)
{
	if ((atomic_load(&ip->flags) & I_CAPS) && xattr_remove(fs, ip, CAPS_NAME) == 0)
		inode_touch(ip, false, false, true);
}

void xattr_free_all(struct sfs_fs *fs, struct sfs_inode *ip)
{
	struct sfs_xattrs *xs = ip->xattrs;
	if (!xs)
		return;
	ent_free(fs, xs->acl[0]);
	ent_free(fs, xs->acl[1]);
	for (struct xent *e = xs->head, *next; e; e = next) {
		next = e->next;
		ent_free(fs, e);
	}
	meta_free(fs, xs, sizeof(*xs));
	ip->xattrs = NULL;
}

uint64_t xattr_bytes(const struct sfs_inode *ip)
{
	const struct sfs_xattrs *xs = ip->xattrs;
	if (!xs)
		return 0;
	uint64_t b = sp_small_size(sizeof(*xs));
	for (int i = 0; i < 2; i++)
		if (xs->acl[i])
			b += ent_bytes(xs->acl[i]);
	for (const struct xent *e = xs->head; e; e = e->next)
		b += ent_bytes(e);
	return b;
}

ssize_t xattr_acl_read(const struct sfs_inode *ip, int type, size_t off, void *buf, size_t n)
{
	const struct xent *e = ip->xattrs ? ip->xattrs->acl[type] : NULL;
	if (!e)
		return 0;
	if (n && off < e->size) {
		if (n > e->size - off)
			n = e->size - off;
		ent_read(e, off, buf, n);
	}
	return e->size;
}

void xattr_acl_write(struct sfs_inode *ip, int type, size_t off, const void *buf, size_t n)
{
	struct xent *e = ip->xattrs ? ip->xattrs->acl[type] : NULL;
	if (e && n && off <= e->size && n <= e->size - off)
		ent_write(e, off, buf, n);
}

/* ---- the public calls ---- */

enum xns { NS_USER, NS_TRUSTED, NS_SECURITY, NS_SYSTEM, NS_ACL, NS_UNKNOWN };

struct xname {
	enum xns ns;
	const char *suffix; /* after the prefix ("" for an unknown one) */
};

static struct xname classify(const char *name)
{
	static const struct {
		const char *prefix;
		size_t len;
		enum xns ns;
	} spaces[] = {
	    {"user.", 5, NS_USER},
	    {"trusted.", 8, NS_TRUSTED},
	    {"security.", 9, NS_SECURITY},
	    {"system.", 7, NS_SYSTEM},
	};
	if (acl_slot(name) >= 0)
		return (struct xname){NS_ACL, name};
	for (size_t i = 0; i < sizeof(spaces) / sizeof(spaces[0]); i++)
		if (!strncmp(name, spaces[i].prefix, spaces[i].len))
			return (struct xname){spaces[i].ns, name + spaces[i].len};
	return (struct xname){NS_UNKNOWN, ""};
}

/* The argument checks setxattr(2) and friends make before looking at the
 * file: a name of 1..255 bytes, else ERANGE (even an empty one). */
static int name_ok(const char *name)
{
	if (!name)
		return -EFAULT;
	size_t n = strnlen(name, SFS_NAME_MAX + 1);
	return n == 0 || n > SFS_NAME_MAX ? -ERANGE : 0;
}

/* The kernel's xattr_permission(), the capability hooks and
 * xattr_resolve_name(), in that order.  `write` for set and remove. */
static int access_check(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip,
                        struct xname xn, bool write)
{
	bool trusted = cred_trusted(cr);
	int rc;
	if (write && has_flag(ip, SFS_FL_IMMUTABLE | SFS_FL_APPEND))
		return -EPERM; /* may_write_xattr(), for every caller */
	switch (xn.ns) {
	case NS_TRUSTED:
		if (!trusted && !cred_privileged(cr))
			return write ? -EPERM : -ENODATA;
		break;
	case NS_USER:
		/* Only files and directories: the mode of a symlink or a
		 * device says who may follow or use it, not who may attach
		 * data to it, so the kernel refuses user.* there. */
		if (!is_reg(ip) && !is_dir(ip))
			return write ? -EPERM : -ENODATA;
		if (write && is_dir(ip) && (ip->mode & S_ISVTX) && !perm_owner(cr, ip))
			return -EPERM;
		/* fall through */
	case NS_UNKNOWN:
		rc = perm_check(fs, cr, ip, write ? MAY_WRITE : MAY_READ);
		if (rc)
			return rc;
		break;
	case NS_SECURITY:
		/* cap_inode_setxattr(): security.* needs CAP_SYS_ADMIN, and
		 * security.capability CAP_SETFCAP; both are uid 0 here. */
		if (write && !trusted && !cred_privileged(cr))
			return -EPERM;
		break;
	case NS_SYSTEM:
	case NS_ACL:
		break;
	}
	if (xn.ns == NS_SYSTEM || xn.ns == NS_UNKNOWN)
		return -EOPNOTSUPP; /* no handler for the name */
	if (!*xn.suffix)
		return -EINVAL;
	return 0;
}

/* cap_convert_nscap(): a file capability must have a v2 (20 bytes) or v3
 * (24 bytes) header. */
int xattr_capability_ok(const void *value, size_t size)
{
	if (size != 20 && size != 24)
		return -EINVAL;
	const unsigned char *v = value;
	unsigned rev = v[3]; /* the top byte of the little-endian magic_etc */
	return (size == 20 && rev == 2) || (size == 24 && rev == 3) ? 0 : -EINVAL;
}

static int do_setxattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, const char *name,
                 const void *value, size_t size, int flags)
{
	if (flags & ~(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	int rc = name_ok(name);
	if (rc)
		return rc;
	if (size > SFS_XATTR_SIZE_MAX)
		return -E2BIG;
	if (size && !value)
		return -EFAULT;
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	lk_wrlock(&ip->lock);
	struct xname xn = classify(name);
	bool changed = true;
	if (xn.ns == NS_ACL) {
		/* A default ACL on a non-directory can only be removed, which
		 * succeeds without changing anything (set_posix_acl). */
		changed = is_dir(ip) || acl_slot(name) == 0;
		rc = acl_set(fs, cr, ip, name, value, size, flags);
	} else {
		if (!strcmp(name, "security.capability") && size)
			rc = xattr_capability_ok(value, size);
		if (!rc)
			rc = access_check(fs, cr, ip, xn, true);
		if (!rc)
			rc = xattr_set(fs, ip, name, value ? value : "", size, flags);
	}
	if (!rc && changed)
		inode_touch(ip, false, false, true);
	lk_wrunlock(&ip->lock);
	inode_put(fs, ip);
	return rc;
}

ssize_t sfs_getxattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, const char *name,
                     void *value, size_t size)
{
	ssize_t rc = name_ok(name);
	if (rc)
		return rc;
	if (!value)
		size = 0;
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	lk_rdlock(&ip->lock);
	struct xname xn = classify(name);
	if (xn.ns == NS_ACL)
		/* Reading an ACL needs no permission (vfs_get_acl). */
		rc = is_lnk(ip) ? -EOPNOTSUPP : 0;
	else
		rc = access_check(fs, cr, ip, xn, false);
	if (!rc)
		rc = xattr_get(ip, name, value, size);
	lk_rdunlock(&ip->lock);
	inode_put(fs, ip);
	return rc;
}

ssize_t sfs_listxattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, char *list,
                      size_t size)
{
	if (!list)
		size = 0;
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	/* listxattr(2) checks no permission on the inode; only trusted.*
	 * names are hidden from unprivileged callers. */
	size_t cap = size > SFS_XATTR_LIST_MAX ? SFS_XATTR_LIST_MAX : size;
	lk_rdlock(&ip->lock);
	ssize_t rc = list_names(ip, list, cap, cred_privileged(cr));
	lk_rdunlock(&ip->lock);
	inode_put(fs, ip);
	if (rc == -ERANGE && size >= SFS_XATTR_LIST_MAX)
		rc = -E2BIG; /* as listxattr(2): even the largest buffer is too small */
	return rc;
}

static int do_removexattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, const char *name)
{
	int rc = name_ok(name);
	if (rc)
		return rc;
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	lk_wrlock(&ip->lock);
	struct xname xn = classify(name);
	bool changed = true;
	if (xn.ns == NS_ACL) {
		changed = is_dir(ip) || acl_slot(name) == 0;
		rc = acl_set(fs, cr, ip, name, NULL, 0, 0);
	} else {
		rc = access_check(fs, cr, ip, xn, true);
		if (!rc)
			rc = xattr_remove(fs, ip, name);
	}
	if (!rc && changed)
		inode_touch(ip, false, false, true);
	lk_wrunlock(&ip->lock);
	inode_put(fs, ip);
	return rc;
}

/* ---- entry points: changes wait while a snapshot is taken (snapshot.c) ---- */

int sfs_setxattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, const char *name,
                 const void *value, size_t size, int flags)
{
	freeze_enter(fs);
	int rc = do_setxattr(fs, cr, ino, name, value, size, flags);
	freeze_exit(fs);
	return rc;
}

int sfs_removexattr(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, const char *name)
{
	freeze_enter(fs);
	int rc = do_removexattr(fs, cr, ino, name);
	freeze_exit(fs);
	return rc;
}
