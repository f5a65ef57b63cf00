/* SPDX-License-Identifier: MIT */
/* mountinfo.c - reading /proc/self/mountinfo: which mount a path lies on.
 *
 * A line is "ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS] - TYPE SOURCE ...";
 * paths are escaped as \ooo (space, tab, newline, backslash).  Later lines
 * are mounted later, so the last match is the one a path resolves through.
 */
#include "mountinfo.h"

#include <stdio.h>
#include <string.h>

/* Undo mountinfo's \ooo escapes. */
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

/* Is mount point p a prefix of path, ending at a component boundary? */
static size_t covers(const char *p, const char *path)
{
	size_t n = strlen(p);
	if (!strcmp(p, "/"))
		return 1;
	if (strncmp(p, path, n) || (path[n] && path[n] != '/'))
		return 0;
	return n;
}

bool mount_find(const char *path, bool exact, struct mount_entry *out)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return false;
	static char line[3 * PATH_MAX];
	size_t best = 0;
	while (fgets(line, sizeof line, f)) {
		char dev[64], root[PATH_MAX], point[PATH_MAX], type[64];
		if (sscanf(line, "%*d %*d %63s %4095s %4095s", dev, root, point) != 3)
			continue;
		const char *dash = strstr(line, " - ");
		if (!dash || sscanf(dash + 3, "%63s", type) != 1)
			continue;
		struct mount_entry e;
		unescape(point, e.point, sizeof e.point);
		size_t n = exact ? (strcmp(e.point, path) ? 0 : 1) : covers(e.point, path);
		if (n == 0 || n < best)
			continue;
		best = n;
		snprintf(e.dev, sizeof e.dev, "%s", dev);
		snprintf(e.fstype, sizeof e.fstype, "%s", type);
		unescape(root, e.root, sizeof e.root);
		*out = e;
	}
	fclose(f);
	return best > 0;
}
