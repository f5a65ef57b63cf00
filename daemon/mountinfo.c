/* SPDX-License-Identifier: MIT */
/* mountinfo.c - what is mounted where (see mountinfo.h).
 *
 * Mounting and remounting need to know what is at a mount point right now:
 * nothing, a dead FUSE mount, a live sectorfs (refused: mount over it is
 * never what was meant; a remount or `sectorfs resize` changes it), or
 * anything else (a tmpfs /tmp, a bind mount in a container), which
 * sectorfs mounts over as tmpfs would.  /proc/self/mountinfo says it
 * without touching the mount itself, which matters once it is ours: no
 * request may reach the daemon before its loop runs.
 *
 * Mounts can be stacked on one path.  Each line names its parent mount;
 * the one on top is the one that is no other's parent among the mounts
 * at that path (mount ids are reused, so their order says nothing).
 *
 * `sectorfs clone` needs the mount a path lies on: the one at the longest
 * mount point that is a prefix of the path, ending at a component
 * boundary, and the top one there.
 */
#include "mountinfo.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(const char *s, char *out, size_t size)
{
	char *o = out;
	for (; *s && o < out + size - 1; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] && s[3]) {
			*o++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* One line into *m: false if malformed. */
static bool parse_line(char *line, struct mi_mount *m)
{
	char dev[32], root[PATH_MAX], point[PATH_MAX], opts[256];
	int n = 0;
	if (sscanf(line, "%u %u %31s %4095s %4095s %255s %n", &m->id, &m->parent, dev, root, point,
	           opts, &n) != 6 || !n)
		return false;
	/* Optional fields, then " - TYPE SOURCE SUPER_OPTIONS". */
	const char *dash = strstr(line + n - 1, " - ");
	char type[64], super[512];
	if (!dash || sscanf(dash + 3, "%63s %*s %511s", type, super) != 2)
		return false;
	unescape(root, m->root, sizeof m->root);
	unescape(point, m->point, sizeof m->point);
	snprintf(m->dev, sizeof m->dev, "%s", dev);
	snprintf(m->type, sizeof m->type, "%s", type);
	snprintf(m->mount_opts, sizeof m->mount_opts, "%s", opts);
	snprintf(m->super_opts, sizeof m->super_opts, "%s", super);
	return true;
}

/* The length of mount point p if it is a prefix of path ending at a
 * component boundary, else 0 ("/" counts 1). */
static size_t covers(const char *p, const char *path)
{
	size_t n = strlen(p);
	if (!strcmp(p, "/"))
		return 1;
	if (strncmp(p, path, n) || (path[n] && path[n] != '/'))
		return 0;
	return n;
}

bool mi_below(const char *path, char *found, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return false;
	struct mi_mount one;
	char line[8192];
	bool any = false;
	while (!any && fgets(line, sizeof line, f)) {
		if (parse_line(line, &one) && strlen(one.point) > strlen(path) &&
		    covers(path, one.point)) {
			snprintf(found, size, "%s", one.point);
			any = true;
		}
	}
	fclose(f);
	return any;
}

bool mi_top(const char *path, struct mi_mount *m)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return false;
	struct mi_mount *at = NULL;
	struct mi_mount one;
	size_t n = 0, cap = 0;
	char line[8192];
	while (fgets(line, sizeof line, f)) {
		if (!parse_line(line, &one) || strcmp(one.point, path))
			continue;
		if (n == cap) {
			size_t c = cap ? cap * 2 : 4;
			struct mi_mount *grown = realloc(at, c * sizeof *grown);
			if (!grown)
				break;
			at = grown;
			cap = c;
		}
		at[n++] = one;
	}
	fclose(f);
	bool found = false;
	for (size_t i = 0; i < n && !found; i++) {
		bool below = false; /* something else at path is mounted on it */
		for (size_t j = 0; j < n && !below; j++)
			below = j != i && at[j].parent == at[i].id;
		if (!below) {
			*m = at[i];
			found = true;
		}
	}
	free(at);
	return found;
}

bool mi_under(const char *path, struct mi_mount *m)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return false;
	struct mi_mount one;
	char line[8192], best[PATH_MAX] = "";
	size_t best_len = 0;
	while (fgets(line, sizeof line, f)) {
		size_t n;
		if (parse_line(line, &one) && (n = covers(one.point, path)) > best_len) {
			best_len = n;
			snprintf(best, sizeof best, "%s", one.point);
		}
	}
	fclose(f);
	return best_len > 0 && mi_top(best, m);
}

bool mi_has(const char *opts, const char *name)
{
	size_t len = strlen(name);
	for (const char *p = opts; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == len && !strncmp(p, name, len))
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}
