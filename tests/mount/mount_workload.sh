#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_workload.sh - a real workload on a tmpfs and on a sectorfs: unpack a
# small C project, build it with make -j2, run the program, commit it all
# to git, git fsck, clone; then the trees (build products and .git included,
# .git/index excepted: it records inode numbers) must archive to the same
# bytes on both, and every output must be the same.
#
# usage: mount_workload.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=300
mt_init mount_workload "$@"
mt_selfcheck
for tool in make gcc ar git tar; do command -v $tool >/dev/null || die "missing tool: $tool"; done

# ---- the project ----
P=$T/project
mkdir -p "$P"/{include,lib,src,docs,data,tests}
cat >"$P/Makefile" <<'EOF'
CC ?= gcc
CFLAGS = -O2 -Wall -Wextra -Iinclude
LIBOBJ = lib/add.o lib/mul.o lib/str.o lib/list.o lib/hash.o lib/vec.o lib/crc.o lib/sort.o
PROGOBJ = src/main.o src/opts.o

all: prog

lib/libmy.a: $(LIBOBJ)
	ar rcs $@ $^

prog: $(PROGOBJ) lib/libmy.a
	$(CC) -o $@ $(PROGOBJ) -Llib -lmy

%.o: %.c include/mylib.h
	$(CC) $(CFLAGS) -c -o $@ $<

src/opts.o src/main.o: src/opts.h

clean:
	rm -f $(LIBOBJ) $(PROGOBJ) lib/libmy.a prog

.PHONY: all clean
EOF
cat >"$P/include/mylib.h" <<'EOF'
#ifndef MYLIB_H
#define MYLIB_H
#include <stddef.h>
#include <stdint.h>
long my_add(long a, long b);
long my_mul(long a, long b);
size_t my_strlen(const char *s);
void my_strrev(char *s);
struct node { int v; struct node *next; };
struct node *list_push(struct node *head, int v);
long list_sum(const struct node *head);
void list_free(struct node *head);
uint64_t my_hash(const void *p, size_t n);
struct vec { long *d; size_t n, cap; };
int vec_push(struct vec *v, long x);
void vec_free(struct vec *v);
uint32_t my_crc32(const void *p, size_t n);
void my_sort(long *a, size_t n);
#endif
EOF
cat >"$P/include/util.h" <<'EOF'
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
EOF
cat >"$P/lib/add.c" <<'EOF'
#include "mylib.h"
long my_add(long a, long b) { return a + b; }
EOF
cat >"$P/lib/mul.c" <<'EOF'
#include "mylib.h"
long my_mul(long a, long b) { long r = 0; while (b-- > 0) r = my_add(r, a); return r; }
EOF
cat >"$P/lib/str.c" <<'EOF'
#include "mylib.h"
size_t my_strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
void my_strrev(char *s)
{
	size_t n = my_strlen(s);
	for (size_t i = 0; i < n / 2; i++) { char c = s[i]; s[i] = s[n - 1 - i]; s[n - 1 - i] = c; }
}
EOF
cat >"$P/lib/list.c" <<'EOF'
#include <stdlib.h>
#include "mylib.h"
struct node *list_push(struct node *head, int v)
{
	struct node *n = malloc(sizeof(*n));
	if (!n) abort();
	n->v = v;
	n->next = head;
	return n;
}
long list_sum(const struct node *h) { long s = 0; for (; h; h = h->next) s += h->v; return s; }
void list_free(struct node *h) { while (h) { struct node *n = h->next; free(h); h = n; } }
EOF
cat >"$P/lib/hash.c" <<'EOF'
#include "mylib.h"
uint64_t my_hash(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 1469598103934665603ULL;
	while (n--) { h ^= *b++; h *= 1099511628211ULL; }
	return h;
}
EOF
cat >"$P/lib/vec.c" <<'EOF'
#include <stdlib.h>
#include "mylib.h"
int vec_push(struct vec *v, long x)
{
	if (v->n == v->cap) {
		size_t c = v->cap ? v->cap * 2 : 8;
		long *d = realloc(v->d, c * sizeof(*d));
		if (!d) return -1;
		v->d = d;
		v->cap = c;
	}
	v->d[v->n++] = x;
	return 0;
}
void vec_free(struct vec *v) { free(v->d); v->d = NULL; v->n = v->cap = 0; }
EOF
cat >"$P/lib/crc.c" <<'EOF'
#include "mylib.h"
uint32_t my_crc32(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint32_t c = 0xffffffffu;
	while (n--) {
		c ^= *b++;
		for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & -(c & 1));
	}
	return ~c;
}
EOF
cat >"$P/lib/sort.c" <<'EOF'
#include "mylib.h"
void my_sort(long *a, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		long x = a[i];
		size_t j = i;
		while (j > 0 && a[j - 1] > x) { a[j] = a[j - 1]; j--; }
		a[j] = x;
	}
}
EOF
cat >"$P/src/opts.h" <<'EOF'
struct opts { const char *blob; int count; };
int parse_opts(int argc, char **argv, struct opts *o);
EOF
cat >"$P/src/opts.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
#include "opts.h"
int parse_opts(int argc, char **argv, struct opts *o)
{
	o->blob = "data/blob.bin";
	o->count = 1000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc) o->count = atoi(argv[++i]);
		else o->blob = argv[i];
	}
	return 0;
}
EOF
cat >"$P/src/main.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include "mylib.h"
#include "opts.h"
#include "../include/util.h"
int main(int argc, char **argv)
{
	struct opts o;
	parse_opts(argc, argv, &o);
	FILE *f = fopen(o.blob, "rb");
	if (!f) { perror(o.blob); return 1; }
	static unsigned char buf[1 << 21];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	printf("blob: %zu bytes, crc32 %08x, hash %016llx\n", n, my_crc32(buf, n),
	       (unsigned long long)my_hash(buf, n));
	struct node *l = NULL;
	struct vec v = {0};
	for (int i = 0; i < o.count; i++) {
		l = list_push(l, i);
		vec_push(&v, (long)((i * 7919L) % 1009));
	}
	my_sort(v.d, v.n);
	printf("list sum %ld, mul %ld, min %ld max %ld median %ld\n", list_sum(l), my_mul(123, 45),
	       v.d[0], v.d[v.n - 1], v.d[v.n / 2]);
	char s[] = "sectorfs";
	my_strrev(s);
	long primes[] = {2, 3, 5, 7, 11};
	printf("%s %zu %zu\n", s, my_strlen(s), ARRAY_LEN(primes));
	list_free(l);
	vec_free(&v);
	return 0;
}
EOF
printf 'A small project for the sectorfs workload test.\n' >"$P/README"
printf 'Public domain.\n' >"$P/LICENSE"
printf 'notes\n%.0s' $(seq 1 200) >"$P/docs/notes.txt"
printf 'small data\n' >"$P/data/small.txt"
"$PY" -c 'import random, sys; sys.stdout.buffer.write(random.Random(42).randbytes(1 << 20))' >"$P/data/blob.bin"
cat >"$P/tests/run.sh" <<'EOF'
#!/bin/sh
./prog -n 10 data/blob.bin
EOF
chmod 755 "$P/tests/run.sh"
ln -s src/main.c "$P/latest"
ln -s mylib.h "$P/include/mylib-current.h"
ln -s ../README "$P/docs/readme-link"
ln -s nowhere "$P/dangling"
ln "$P/LICENSE" "$P/docs/LICENSE.hardlink"
tar -C "$P" -cf "$T/project.tar" .
say "project: $(tar -tf "$T/project.tar" | grep -vc '/$') entries, $(stat -c %s "$T/project.tar") bytes of tar"

TM=$T/tmpfs
SM=$T/sfs
mount_tmpfs "$TM" size=256m,mode=1777
mount_sfs "$SM" size=256m

export GIT_AUTHOR_DATE="2020-01-01T00:00:00Z" GIT_COMMITTER_DATE="2020-01-01T00:00:00Z"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME=$T

sec_unpack_build() {
	mkdir w
	cd w
	r tar -xf "$T/project.tar"
	r make -j2 -s
	r ./prog
	r tests/run.sh
	r make
	sleep 0.02
	touch lib/crc.c
	r make
	r make -q
	drop_caches
	r ./prog -n 5000
	r sh -c 'cmp data/blob.bin docs/../data/blob.bin && stat -c "%h" LICENSE docs/LICENSE.hardlink'
	r readlink latest include/mylib-current.h docs/readme-link dangling
}

sec_git() {
	cd w
	local g="git -c user.email=t@t -c user.name=t -c init.defaultBranch=main -c pack.threads=1"
	r $g init -q
	r $g add -A
	r $g commit -qm x
	r $g fsck --full --strict
	r $g rev-parse HEAD 'HEAD^{tree}'
	r $g status --porcelain
	r $g ls-files -s
	echo change >>README
	r $g commit -qam y
	r $g rev-parse HEAD
	r $g gc -q
	r $g fsck --full
	r $g count-objects -v
	r $g clone -q . ../clone
	r $g -C ../clone fsck --full
	r $g -C ../clone log --format='%H %s'
	r diff -r --exclude=.git . ../clone
	r $g -C ../clone status --porcelain
	r $g clone -q --no-local . ../clone2
	r $g -C ../clone2 rev-parse HEAD
}

sec_checksum() {
	cd w
	r sh -c 'tar -cf - --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --exclude=./.git/index . | sha256sum'
	r sh -c 'tar -cf - --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --exclude=./.git/index . | tar -tvf - | sha256sum'
	r sh -c 'cd ../clone && tar -cf - --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --exclude=./.git . | sha256sum'
	r du -s --apparent-size -B1 .
	r sh -c 'find . -path ./.git -prune -o -printf "%y %m %n %s %P\n" | sort'
}

section "unpack, make -j2, run, incremental make" sec_unpack_build
section "git init, add, commit, fsck, gc, clone" sec_git
section "tar of the whole tree (build products and .git) has the same sha256" sec_checksum
tm_sum=$(grep -m1 -- ' -$' "$T/out.sec_checksum.a" | cut -c1-64)
say "tree sha256 on both: $tm_sum"
unmount_sfs "$SM"
mt_pass
