/* SPDX-License-Identifier: MIT */
/* perm.c - who may do what: mode bits, ACLs, the sticky bit, ownership.
 *
 * The rules are the kernel's generic_permission() and friends, as tmpfs
 * gets them: the owner class first, then the access ACL (named users, the
 * group class under the mask), then the group bits, then the others.  uid 0
 * stands for a process with CAP_DAC_OVERRIDE and CAP_FOWNER: it may read and
 * write anything, and execute a file that has at least one execute bit.
 * A caller that says SFS_CRED_TRUSTED had all this checked by the kernel.
 *
 * chattr's flags are the exception: under FUSE the kernel does not know
 * them, so what they forbid (writing to an immutable inode, removing an
 * append-only or immutable one's names, or any name from an append-only
 * directory) is refused here for every caller, trusted ones included.
 */
#include "core.h"
#include "os.h"

bool cred_trusted(const struct sfs_cred *cr)
{
	return cr == NULL || (cr->flags & SFS_CRED_TRUSTED);
}

bool cred_privileged(const struct sfs_cred *cr)
{
	return cr == NULL || cr->uid == 0;
}

static bool gid_listed(const gid_t *list, int n, uint32_t gid)
{
	for (int i = 0; i < n; i++)
		if (list[i] == gid)
			return true;
	return false;
}

int cred_group_check(const struct sfs_cred *cr, uint32_t gid)
{
	if (cr->gid == gid)
		return 1;
	if (cr->groups || !cr->get_groups)
		return gid_listed(cr->groups, cr->ngroups, gid);
	gid_t some[32];
	int n = cr->get_groups(cr->get_groups_arg, some, 32);
	if (n <= 32)
		return gid_listed(some, n, gid);
	gid_t *all = os_malloc(sizeof(gid_t) * (size_t)n);
	if (!all)
		return -ENOMEM;
	int m = cr->get_groups(cr->get_groups_arg, all, n);
	bool in = gid_listed(all, m < n ? m : n, gid);
	os_free(all);
	return in;
}

bool cred_in_group(const struct sfs_cred *cr, uint32_t gid)
{
	/* Unknown counts as "not in the group": a setgid bit is dropped. */
	return cred_group_check(cr, gid) == 1;
}

uint32_t perm_setid_to_drop(const struct sfs_cred *cr, const struct sfs_inode *ip)
{
	uint32_t mode = atomic_load(&ip->mode);
	uint32_t drop = mode & S_ISUID;
	if ((mode & S_ISGID) &&
	    ((mode & S_IXGRP) || !(cred_privileged(cr) || cred_in_group(cr, ip->gid))))
		drop |= S_ISGID;
	return drop;
}

int perm_check(struct sfs_fs *fs, const struct sfs_cred *cr, struct sfs_inode *ip, int mask)
{
	(void)fs;
	if ((mask & MAY_WRITE) && has_flag(ip, SFS_FL_IMMUTABLE))
		return -EPERM; /* before the bits, and for the kernel's requests too */
	if (cred_trusted(cr) || mask == 0)
		return 0;
	uint32_t mode = ip->mode;
	if (cred_privileged(cr)) {
		if ((mask & MAY_EXEC) && !is_dir(ip) && !(mode & 0111))
			return -EACCES;
		return 0;
	}
	uint32_t bits;
	if (cr->uid == ip->uid) {
		bits = mode >> 6;
	} else {
		int rc = acl_permission(ip, cr, mask);
		if (rc != -EAGAIN)
			return rc;
		rc = cred_group_check(cr, ip->gid);
		if (rc < 0)
			return rc;
		bits = rc ? mode >> 3 : mode;
	}
	return ((int)bits & mask) == mask ? 0 : -EACCES;
}

int perm_delete(const struct sfs_cred *cr, struct sfs_inode *dir, struct sfs_inode *victim)
{
	if (has_flag(dir, SFS_FL_APPEND) || has_flag(victim, SFS_FL_APPEND | SFS_FL_IMMUTABLE))
		return -EPERM;
	if (cred_trusted(cr) || !(dir->mode & S_ISVTX) || cred_privileged(cr))
		return 0;
	if (cr->uid == victim->uid || cr->uid == dir->uid)
		return 0;
	return -EPERM;
}

bool perm_owner(const struct sfs_cred *cr, struct sfs_inode *ip)
{
	return cred_trusted(cr) || cred_privileged(cr) || cr->uid == ip->uid;
}

int sfs_access(struct sfs_fs *fs, const struct sfs_cred *cr, sfs_ino_t ino, int mask)
{
	if (mask & ~(R_OK | W_OK | X_OK))
		return -EINVAL;
	struct sfs_inode *ip = inode_get(fs, ino);
	if (!ip)
		return -ENOENT;
	lk_rdlock(&ip->lock);
	/* R_OK, W_OK and X_OK are MAY_READ, MAY_WRITE and MAY_EXEC. */
	int rc = perm_check(fs, cr, ip, mask);
	lk_rdunlock(&ip->lock);
	inode_put(fs, ip);
	return rc;
}
