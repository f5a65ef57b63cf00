/* SPDX-License-Identifier: MIT */
/* acl.c - POSIX ACLs: validation, the mode they imply, permission checks,
 * chmod, and inheritance from a directory's default ACL.
 *
 * An ACL is kept as the xattr value the caller gave, in the kernel's binary
 * format (a little-endian header {u32 version = 2}, then entries {u16 tag,
 * u16 perm, u32 id}), stored by xattr.c in one of the two ACL slots of the
 * inode.  Keeping the wire format means getxattr returns it with a copy and
 * nothing to convert, and one storage path serves both attribute kinds.  We
 * normalize it once when it is set, as the kernel's round trip through
 * struct posix_acl does: the id of an entry that is not a named user or
 * group reads back as ACL_UNDEFINED_ID.
 *
 * The rules are those of fs/posix_acl.c as tmpfs uses them (simple_set_acl,
 * posix_acl_create, posix_acl_chmod, posix_acl_permission), including its
 * quirks: a value of size 0, or a header without entries, removes the ACL;
 * removing a missing ACL succeeds; XATTR_CREATE/XATTR_REPLACE are ignored;
 * entries need not be sorted by id nor unique (posix_acl_valid() checks
 * the order of the tags only); and the ACL is only consulted when the mode
 * has group bits (acl_permission_check()).
 *
 * We read the stored ACL through xattr_acl_read() in batches, so a check
 * costs no allocation and works whatever the ACL's size (a value over 2 KiB
 * lives in several chunks).  chmod rewrites three perm fields in place,
 * which is why it cannot fail.
 */
#include <sys/xattr.h>

#include "core.h"
#include "os.h"

/* <linux/posix_acl.h> and <linux/posix_acl_xattr.h> */
#define ACL_ACCESS 0
#define ACL_DEFAULT 1
#define ACL_ACCESS_NAME "system.posix_acl_access"
#define ACL_DEFAULT_NAME "system.posix_acl_default"
#define ACL_XATTR_VERSION 2u
#define ACL_HDR 4u
#define ACL_ENT 8u
#define ACL_USER_OBJ 0x01
#define ACL_USER 0x02
#define ACL_GROUP_OBJ 0x04
#define ACL_GROUP 0x08
#define ACL_MASK 0x10
#define ACL_OTHER 0x20
#define ACL_UNDEFINED_ID 0xffffffffu

struct ace {
	uint16_t tag, perm;
	uint32_t id;
};

static inline uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void put32(unsigned char *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static inline struct ace ace_get(const unsigned char *p)
{
	return (struct ace){(uint16_t)(p[0] | p[1] << 8), (uint16_t)(p[2] | p[3] << 8),
	                    get32(p + 4)};
}

static inline const unsigned char *ent(const void *value, size_t i)
{
	return (const unsigned char *)value + ACL_HDR + i * ACL_ENT;
}

static inline size_t entry_off(size_t i)
{
	return ACL_HDR + i * ACL_ENT;
}

/* ---- reading a stored ACL ---- */

#define BATCH 64

/* Walks the entries of a stored ACL, reading them in batches. */
struct cursor {
	const struct sfs_inode *ip;
	int type;
	size_t count;       /* entries */
	size_t next;        /* the entry cursor_next() returns */
	size_t first, have; /* buf holds entries [first, first + have) */
	unsigned char buf[BATCH * ACL_ENT];
};

static size_t cursor_open(struct cursor *c, const struct sfs_inode *ip, int type)
{
	ssize_t size = xattr_acl_read(ip, type, 0, NULL, 0);
	c->ip = ip;
	c->type = type;
	c->count = size > (ssize_t)ACL_HDR ? ((size_t)size - ACL_HDR) / ACL_ENT : 0;
	c->next = c->first = c->have = 0;
	return c->count;
}

static bool cursor_next(struct cursor *c, struct ace *a)
{
	if (c->next >= c->count)
		return false;
	if (c->next >= c->first + c->have) {
		c->first = c->next;
		c->have = c->count - c->next < BATCH ? c->count - c->next : BATCH;
		xattr_acl_read(c->ip, c->type, entry_off(c->first), c->buf, c->have * ACL_ENT);
	}
	*a = ace_get(c->buf + (c->next - c->first) * ACL_ENT);
	c->next++;
	return true;
}

static void store_perm(struct sfs_inode *ip, int type, size_t i, unsigned perm)
{
	unsigned char p[2];
	put16(p, (uint16_t)perm);
	xattr_acl_write(ip, type, entry_off(i) + 2, p, 2);
}

/* ---- checking a new ACL ---- */

/* posix_acl_from_xattr(): the header, the size and each entry's tag and
 * id.  *count 0 means "no ACL", which removes it. */
static int acl_parse(const void *value, size_t size, size_t *count)
{
	if (size < ACL_HDR)
		return -EINVAL;
	if (get32(value) != ACL_XATTR_VERSION)
		return -EOPNOTSUPP;
	if ((size - ACL_HDR) % ACL_ENT)
		return -EINVAL;
	*count = (size - ACL_HDR) / ACL_ENT;
	for (size_t i = 0; i < *count; i++) {
		struct ace a = ace_get(ent(value, i));
		switch (a.tag) {
		case ACL_USER_OBJ:
		case ACL_GROUP_OBJ:
		case ACL_MASK:
		case ACL_OTHER:
			break;
		case ACL_USER:
		case ACL_GROUP:
			if (a.id == ACL_UNDEFINED_ID) /* not a valid kuid/kgid */
				return -EINVAL;
			break;
		default:
			return -EINVAL;
		}
	}
	return 0;
}

/* posix_acl_valid(): the tags in order, one of each base entry, a mask
 * when there are named entries, perms within rwx. */
static int acl_valid(const void *value, size_t count)
{
	int state = ACL_USER_OBJ;
	bool needs_mask = false;
	for (size_t i = 0; i < count; i++) {
		struct ace a = ace_get(ent(value, i));
		if (a.perm & ~7u)
			return -EINVAL;
		switch (a.tag) {
		case ACL_USER_OBJ:
			if (state != ACL_USER_OBJ)
				return -EINVAL;
			state = ACL_USER;
			break;
		case ACL_USER:
			if (state != ACL_USER)
				return -EINVAL;
			needs_mask = true;
			break;
		case ACL_GROUP_OBJ:
			if (state != ACL_USER)
				return -EINVAL;
			state = ACL_GROUP;
			break;
		case ACL_GROUP:
			if (state != ACL_GROUP)
				return -EINVAL;
			needs_mask = true;
			break;
		case ACL_MASK:
			if (state != ACL_GROUP)
				return -EINVAL;
			state = ACL_OTHER;
			break;
		case ACL_OTHER:
			if (state != ACL_OTHER && !(state == ACL_GROUP && !needs_mask))
				return -EINVAL;
			state = 0;
			break;
		default:
			return -EINVAL;
		}
	}
	return state == 0 ? 0 : -EINVAL;
}

int acl_check(const void *value, size_t size)
{
	size_t count = 0;
	int rc = acl_parse(value, size, &count);
	if (rc == 0)
		rc = count ? acl_valid(value, count) : -EINVAL;
	return rc;
}

/* posix_acl_equiv_mode(): put the ACL's permission bits into *mode; true
 * if the ACL says more than the mode can (named entries or a mask). */
static bool acl_extended(const void *value, size_t count, uint32_t *mode)
{
	uint32_t m = 0;
	bool extended = false;
	for (size_t i = 0; i < count; i++) {
		struct ace a = ace_get(ent(value, i));
		switch (a.tag) {
		case ACL_USER_OBJ:
			m |= (a.perm & 7u) << 6;
			break;
		case ACL_GROUP_OBJ:
			m |= (a.perm & 7u) << 3;
			break;
		case ACL_OTHER:
			m |= a.perm & 7u;
			break;
		case ACL_MASK:
			m = (m & ~(uint32_t)S_IRWXG) | (a.perm & 7u) << 3;
			extended = true;
			break;
		default:
			extended = true;
		}
	}
	*mode = (*mode & ~(uint32_t)0777) | m;
	return extended;
}

/* The stored copy reads back as the kernel would print it: ids only on
 * named entries. */
static void normalize(struct sfs_inode *ip, int type, const void *value, size_t count)
{
	unsigned char id[4];
	put32(id, ACL_UNDEFINED_ID);
	for (size_t i = 0; i < count; i++) {
		struct ace a = ace_get(ent(value, i));
		if (a.tag != ACL_USER && a.tag != ACL_GROUP && a.id != ACL_UNDEFINED_ID)
			xattr_acl_write(ip, type, entry_off(i) + 4, id, 4);
	}
}

/* ---- the calls ---- */

int acl_set(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip, const char *name,
            const void *value, size_t size, int flags)
{
	(void)flags; /* do_set_acl() never sees them */
	int type = !strcmp(name, ACL_ACCESS_NAME)    ? ACL_ACCESS
	           : !strcmp(name, ACL_DEFAULT_NAME) ? ACL_DEFAULT
	                                             : -1;
	if (type < 0)
		return -EINVAL;
	size_t count = 0;
	if (value && size) {
		int rc = acl_parse(value, size, &count);
		if (rc)
			return rc;
	}
	/* vfs_set_acl()'s xattr_permission() (for every caller), then
	 * set_posix_acl(), in its order */
	if (has_flag(ip, SFS_FL_IMMUTABLE | SFS_FL_APPEND))
		return -EPERM;
	if (is_lnk(ip))
		return -EOPNOTSUPP;
	if (type == ACL_DEFAULT && !is_dir(ip))
		return count ? -EACCES : 0;
	if (!perm_owner(cr, ip))
		return -EPERM;
	if (count) {
		int rc = acl_valid(value, count);
		if (rc)
			return rc;
	}
	size_t bytes = ACL_HDR + count * ACL_ENT;
	if (type == ACL_DEFAULT) {
		if (!count) {
			xattr_remove(fs, ip, name); /* -ENODATA is fine */
			return 0;
		}
		int rc = xattr_set(fs, ip, name, value, bytes, 0);
		if (!rc)
			normalize(ip, type, value, count);
		return rc;
	}
	/* posix_acl_update_mode(): the ACL sets the permission bits; if it
	 * says no more than they do, it is not kept. */
	uint32_t mode = ip->mode;
	bool extended = count && acl_extended(value, count, &mode);
	/* Also for trusted callers: the kernel leaves this to the filesystem
	 * (FUSE sends the ACL as it came, without recomputing the mode). */
	if (!cred_privileged(cr) && !cred_in_group(cr, ip->gid))
		mode &= ~(uint32_t)S_ISGID;
	if (extended) {
		int rc = xattr_set(fs, ip, name, value, bytes, 0);
		if (rc)
			return rc;
		normalize(ip, type, value, count);
	} else {
		xattr_remove(fs, ip, name);
	}
	ip->mode = mode;
	return 0;
}

int acl_permission(struct sfs_inode *ip, const struct sfs_cred *cr, int mask)
{
	/* acl_permission_check() looks at the ACL only when the group class
	 * has permissions: with a mask of ---, named entries fall back to
	 * the mode, as in the kernel. */
	if (!(ip->mode & S_IRWXG))
		return -EAGAIN;
	struct cursor c;
	if (!cursor_open(&c, ip, ACL_ACCESS))
		return -EAGAIN;
	unsigned want = (unsigned)mask & 7u;
	struct ace a;
	bool found = false; /* some group entry matched */
	int match = -1;     /* perms of the entry that decides, before the mask */
	while (cursor_next(&c, &a)) {
		if (match >= 0) {
			/* The entry matched; only the mask can still say no. */
			if (a.tag == ACL_MASK)
				return ((unsigned)match & a.perm & want) == want ? 0 : -EACCES;
			continue;
		}
		switch (a.tag) {
		case ACL_USER_OBJ:
			if (cr->uid == ip->uid)
				return (a.perm & want) == want ? 0 : -EACCES;
			break;
		case ACL_USER:
			if (cr->uid == a.id)
				match = a.perm;
			break;
		case ACL_GROUP_OBJ:
		case ACL_GROUP: {
			int in = cred_group_check(cr, a.tag == ACL_GROUP ? a.id : ip->gid);
			if (in < 0)
				return in;
			if (in) {
				found = true;
				if ((a.perm & want) == want)
					match = a.perm;
			}
			break;
		}
		case ACL_OTHER:
			if (found)
				return -EACCES;
			return (a.perm & want) == want ? 0 : -EACCES;
		default:
			break;
		}
	}
	/* A matching entry and no mask after it: its own perms decide. */
	if (match >= 0)
		return ((unsigned)match & want) == want ? 0 : -EACCES;
	return -EACCES; /* no OTHER entry: cannot happen with a valid ACL */
}

void acl_chmod(struct sfs_fs *fs, struct sfs_inode *ip)
{
	(void)fs;
	struct cursor c;
	if (is_lnk(ip) || !cursor_open(&c, ip, ACL_ACCESS))
		return;
	uint32_t mode = ip->mode;
	size_t group = SIZE_MAX, maskent = SIZE_MAX;
	struct ace a;
	while (cursor_next(&c, &a)) {
		size_t i = c.next - 1;
		if (a.tag == ACL_USER_OBJ)
			store_perm(ip, ACL_ACCESS, i, (mode >> 6) & 7u);
		else if (a.tag == ACL_OTHER)
			store_perm(ip, ACL_ACCESS, i, mode & 7u);
		else if (a.tag == ACL_GROUP_OBJ)
			group = i;
		else if (a.tag == ACL_MASK)
			maskent = i;
	}
	size_t g = maskent != SIZE_MAX ? maskent : group;
	if (g != SIZE_MAX)
		store_perm(ip, ACL_ACCESS, g, (mode >> 3) & 7u);
}

/* posix_acl_create_masq(): cut the ACL's base entries down to what mode
 * grants and mode down to what the ACL grants.  True if the result needs
 * an ACL (named entries or a mask). */
static bool create_masq(unsigned char *value, size_t count, uint32_t *mode)
{
	uint32_t m = *mode;
	unsigned char *group = NULL, *maskent = NULL;
	bool extended = false;
	for (size_t i = 0; i < count; i++) {
		unsigned char *p = value + entry_off(i);
		struct ace a = ace_get(p);
		switch (a.tag) {
		case ACL_USER_OBJ:
			a.perm &= (m >> 6) & 7u;
			m &= (uint32_t)a.perm << 6 | ~(uint32_t)S_IRWXU;
			put16(p + 2, a.perm);
			break;
		case ACL_OTHER:
			a.perm &= m & 7u;
			m &= a.perm | ~(uint32_t)S_IRWXO;
			put16(p + 2, a.perm);
			break;
		case ACL_GROUP_OBJ:
			group = p;
			break;
		case ACL_MASK:
			maskent = p;
			extended = true;
			break;
		default:
			extended = true;
		}
	}
	unsigned char *g = maskent ? maskent : group;
	if (g) {
		uint16_t perm = (uint16_t)(ace_get(g).perm & ((m >> 3) & 7u));
		m &= (uint32_t)perm << 3 | ~(uint32_t)S_IRWXG;
		put16(g + 2, perm);
	}
	*mode = (*mode & ~(uint32_t)0777) | (m & 0777);
	return extended;
}

int acl_inherit(struct sfs_fs *fs, struct sfs_inode *dir, struct sfs_inode *ip, uint32_t *mode)
{
	/* posix_acl_create() leaves symlinks alone (their mode is 0777 and
	 * no umask applies to them). */
	if (is_lnk(ip))
		return 0;
	ssize_t size = xattr_acl_read(dir, ACL_DEFAULT, 0, NULL, 0);
	if (size <= (ssize_t)ACL_HDR)
		return 0;
	unsigned char small[512];
	unsigned char *buf = (size_t)size <= sizeof(small) ? small : os_malloc((size_t)size);
	if (!buf)
		return -ENOMEM;
	xattr_acl_read(dir, ACL_DEFAULT, 0, buf, (size_t)size);
	size_t count = ((size_t)size - ACL_HDR) / ACL_ENT;
	int rc = 0;
	/* The default ACL first, while buf still holds it unmasked. */
	if (is_dir(ip))
		rc = xattr_set(fs, ip, ACL_DEFAULT_NAME, buf, (size_t)size, 0);
	uint32_t m = *mode;
	if (!rc && create_masq(buf, count, &m)) {
		rc = xattr_set(fs, ip, ACL_ACCESS_NAME, buf, (size_t)size, 0);
		if (rc && is_dir(ip))
			xattr_remove(fs, ip, ACL_DEFAULT_NAME);
	}
	if (buf != small)
		os_free(buf);
	if (rc)
		return rc;
	*mode = m;
	ip->mode = (ip->mode & ~(uint32_t)0777) | (m & 0777);
	return 1;
}
