#!/bin/bash
# SPDX-License-Identifier: MIT
# package.sh BUILD_DIR SOURCE_DIR - both install paths, each in a clean
# Debian 12 root (root; 77 = skipped):
#
#   1. the Debian package: built from a copy of the tree with
#      dpkg-buildpackage; installed with apt into the clean root, which
#      must bring fuse3 and libfuse3-3 along; then, inside the root,
#      mount -t fuse.sectorfs, remount size=/ro/rw through mount(8),
#      umount; the installed example and the README's example compiled
#      with pkg-config and run; the man pages, completion and unit there;
#      then purged with what came along, leaving the root exactly as it
#      was (every file, mode, owner and checksum, and the package list);
#   2. ./install.sh: run in the same root while another process holds
#      apt's locks (it must wait, not fail), then checked (ldconfig: the
#      README's example runs without LD_LIBRARY_PATH; the completion and
#      man pages; the mount); run again as an upgrade with the mount
#      live (it must say what it does with it and leave it); --uninstall
#      refused while mounted, then after the unmount it must leave the
#      root exactly as it was, the Debian packages it installed removed.
#
# The clean root is made once per build directory with debootstrap
# (--variant=minbase, Debian 12) in BUILD_DIR/pkgtest/root, and every
# package the tests install is downloaded into a local repository inside
# it, so the tests themselves need no network; the root is checked to be
# as clean at the end as it was at the start, and made again if a run
# was cut short (or if the packages' dependencies changed).  Nothing is
# kept outside BUILD_DIR.  All mounts are made in a private mount
# namespace, so that none outlives the test.
set -euo pipefail
export LC_ALL=C
build=$(readlink -f "${1:?usage: package.sh BUILD_DIR SOURCE_DIR}")
src=$(readlink -f "${2:?usage: package.sh BUILD_DIR SOURCE_DIR}")
MIRROR=${PKGTEST_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
work=$build/pkgtest
root=$work/root

say() { printf 'package: %s\n' "$*"; }
skip() {
	say "skipped: $*"
	exit 77
}
die() {
	printf 'package: FAIL: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || skip "needs root (chroot, mounts)"
for t in debootstrap dpkg-buildpackage dh dpkg-scanpackages chroot unshare python3; do
	command -v "$t" >/dev/null || skip "missing $t (scripts/deps.sh installs it)"
done
if [ -z "${PKGTEST_NS:-}" ]; then
	exec env PKGTEST_NS=1 unshare --mount --propagation private "$0" "$@"
fi

# ---- cleaning up: every process in the root, every mount below it ----
cleanup() {
	local rc=$? p
	set +e
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null
	done
	sleep 0.2
	awk -v r="$root/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null; done
	[ $rc -eq 0 ] || [ $rc -eq 77 ] || say "FAILED (exit $rc)" >&2
	exit $rc
}
trap cleanup EXIT
in_root() { chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"; }
mount_api() {
	mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
	mountpoint -q "$root/dev" || mount --rbind /dev "$root/dev" # /dev/pts too, for apt's log
}
unmount_api() {
	umount -R "$root/dev" 2>/dev/null || true
	umount "$root/proc" 2>/dev/null || true
}

# ---- the package ----
# copy_tree DIR: the source tree (what git tracks, and new files it does
# not ignore; without git, everything but build directories) into DIR.
copy_tree() {
	mkdir -p "$1"
	if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
		git -C "$src" ls-files -z --cached --others --exclude-standard |
			(cd "$src" && tar --null -T - -cf -) | tar -xf - -C "$1"
	else
		(cd "$src" && tar --exclude='./build*' -cf - .) | tar -xf - -C "$1"
	fi
}
say "building the Debian package from a copy of $src"
rm -rf "$work/sectorfs" "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo
copy_tree "$work/sectorfs"
version=$(sed -n 's/^project(sectorfs VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
debversion=$(cd "$work/sectorfs" && dpkg-parsechangelog -S Version)
[ "$debversion" = "$version" ] ||
	die "debian/changelog is at $debversion, CMakeLists.txt at $version: add a changelog entry"
(cd "$work/sectorfs" &&
	DEB_BUILD_OPTIONS="noddebs parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
	>"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; die "dpkg-buildpackage failed"; }
debs=""
for p in sectorfs libsectorfs0 libsectorfs-dev; do
	f=$work/${p}_${version}_$(dpkg --print-architecture).deb
	[ -f "$f" ] || die "dpkg-buildpackage made no $f"
	debs="$debs $f"
	say "$(basename "$f"): Depends: $(dpkg-deb -f "$f" Depends)"
done
dpkg-deb -f "$work/sectorfs_${version}_"*.deb Depends | grep -q 'fuse3' ||
	die "sectorfs does not depend on fuse3"
dpkg-deb -f "$work/sectorfs_${version}_"*.deb Depends | grep -q 'libfuse3-3' ||
	die "sectorfs does not depend on libfuse3-3"
for f in $debs; do
	say "files of $(basename "$f"):"
	dpkg-deb -c "$f" | awk '$6 !~ /\/$/ { print "    " $6 ($7 ? " " $7 " " $8 : "") }'
done

# ---- the clean root ----
# What the tests install, beside the packages themselves: a compiler for
# the examples, and what ./install.sh installs (scripts/deps.sh build).
build_deps=$(sed -n 's/^BUILD="\(.*\)"$/\1/p' "$src/scripts/deps.sh")
[ -n "$build_deps" ] || die "no BUILD= list in scripts/deps.sh"
extra="gcc libc6-dev pkg-config $build_deps"
key=$( (echo "$SUITE $MIRROR $extra"; for f in $debs; do dpkg-deb -f "$f" Depends; done) |
	sha256sum | cut -c1-16)
# in_root_debs: the built packages, as paths inside the root.
in_root_debs() { for f in $debs; do printf '/tmp/debs/%s ' "$(basename "$f")"; done; }
if [ -e "$root/.pkgtest-dirty" ] || [ "$(cat "$root/.pkgtest-key" 2>/dev/null)" != "$key" ]; then
	# A root whose debootstrap finished is kept; one cut short, or used
	# by a run that did not finish, is made again.
	if [ -e "$root/.pkgtest-dirty" ] || [ ! -e "$root/.pkgtest-base" ] || [ -e "$root/.pkgtest-key" ]; then
		say "making the clean root (debootstrap $SUITE, minbase; once per build directory)"
		rm -rf --one-file-system "$root"
		mkdir -p "$root"
		if ! debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
			tail -5 "$work/debootstrap.log"
			rm -rf --one-file-system "$root"
			skip "debootstrap from $MIRROR failed (no network to the Debian mirror?)"
		fi
		touch "$root/.pkgtest-base"
	fi
	say "downloading what the tests install into a repository inside the root"
	mount_api
	mkdir -p "$root/tmp/debs"
	cp $debs "$root/tmp/debs/"
	# shellcheck disable=SC2046,SC2086
	in_root apt-get -o Acquire::Check-Valid-Until=false update -qq >"$work/apt.log" 2>&1 &&
		in_root apt-get install --download-only -y -qq $(in_root_debs) $extra >>"$work/apt.log" 2>&1 ||
		{ tail -5 "$work/apt.log"; skip "cannot download the packages from $MIRROR"; }
	rm -rf "$root/tmp/debs"
	# A local repository of them, the root's only source from now on.
	mkdir -p "$root/var/local/pkgtest-repo"
	mv "$root"/var/cache/apt/archives/*.deb "$root/var/local/pkgtest-repo/"
	(cd "$root/var/local/pkgtest-repo" && dpkg-scanpackages -m . /dev/null >Packages 2>/dev/null)
	echo "deb [trusted=yes] file:/var/local/pkgtest-repo ./" >"$root/etc/apt/sources.list"
	rm -f "$root"/etc/apt/sources.list.d/*
	in_root apt-get update -qq >>"$work/apt.log" 2>&1 || die "apt-get update from the local repository failed"
	in_root apt-get clean
	unmount_api
	echo "$key" >"$root/.pkgtest-key"
	say "clean root ready ($(du -sh --one-file-system "$root" | cut -f1))"
fi
touch "$root/.pkgtest-dirty"
mount_api

# Everything in the root but its caches, logs and package database (the
# package list is compared on its own): type, mode, owner, link target
# and checksum of each file.
snapshot() {
	(
		cd "$root"
		find . -xdev \( -path ./proc -o -path ./dev -o -path ./sys -o -path ./run -o -path ./tmp \
			-o -path ./var/log -o -path ./var/cache -o -path ./var/lib/apt -o -path ./var/lib/dpkg \
			-o -path ./etc/ld.so.cache -o -path ./.pkgtest-dirty -o -path ./.pkgtest-key \
			-o -path ./.pkgtest-base -o -path ./root/.bash_history \) -prune -o -printf '%y %m %u:%g %p %l\n' | sort >"$1"
		find . -xdev \( -path ./proc -o -path ./dev -o -path ./sys -o -path ./run -o -path ./tmp \
			-o -path ./var/log -o -path ./var/cache -o -path ./var/lib/apt -o -path ./var/lib/dpkg \
			-o -path ./etc/ld.so.cache -o -path ./.pkgtest-dirty -o -path ./.pkgtest-key \
			-o -path ./.pkgtest-base \) -prune \
			-o -type f -print0 | sort -z | xargs -0 sha256sum >>"$1"
	)
}
packages() { in_root dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' | sort; }
same_as_before() {
	snapshot "$work/after.$1"
	packages >"$work/after.$1.pkgs"
	if ! cmp -s "$work/before.pkgs" "$work/after.$1.pkgs"; then
		{ diff "$work/before.pkgs" "$work/after.$1.pkgs" || true; } | head -40
		die "$1 left other packages installed or removed (above: < before, > after)"
	fi
	if ! cmp -s "$work/before" "$work/after.$1"; then
		{ diff "$work/before" "$work/after.$1" || true; } | head -40
		die "$1 left the root different (above: < before, > after)"
	fi
	say "$1: the root is exactly as before ($(wc -l <"$work/before") entries compared)"
}
snapshot "$work/before"
packages >"$work/before.pkgs"
in_root dpkg-query -W fuse3 >/dev/null 2>&1 && die "the clean root has fuse3 already"

# The README's example, as printed.
awk '/^## Using the library/ { f = 1 } f && /^```c$/ { g = 1; next } g && /^```$/ { exit } g' \
	"$src/README.md" >"$work/readme.c"
[ -s "$work/readme.c" ] || die "no C example in README.md"

# live MOUNTPOINT: sectorfs answers there (inside the root).
live() { in_root sectorfs stats "$1" >/dev/null 2>&1; }

# ---- 1. the Debian package ----
# (Without the compiler's recommendations: apt marks some of them, such as
# manpages, as installed by hand, and they would stay after the purge;
# sectorfs's packages recommend nothing.)
say "1. installing the package with apt"
mkdir -p "$root/tmp/debs"
cp $debs "$root/tmp/debs/"
# shellcheck disable=SC2046
in_root apt-get install -y -q --no-install-recommends $(in_root_debs) gcc libc6-dev pkg-config \
	>"$work/apt-install.log" 2>&1 ||
	{ tail -20 "$work/apt-install.log"; die "apt-get install of the package failed"; }
came=$(sed -n 's/^Setting up \([^ :]*\).*/\1/p' "$work/apt-install.log" | sort | paste -sd' ')
say "apt installed: $came"
for p in fuse3 libfuse3-3; do
	in_root dpkg-query -W -f='${Status}' "$p" | grep -q 'install ok installed' ||
		die "installing sectorfs did not bring $p"
done
for f in /usr/bin/sectorfs /usr/share/man/man8/sectorfs.8.gz /usr/share/man/man3/sectorfs.3.gz \
	/usr/share/bash-completion/completions/sectorfs /lib/systemd/system/sectorfs@.service \
	/usr/include/sectorfs.h /usr/share/doc/libsectorfs-dev/examples/embed.c; do
	[ -e "$root$f" ] || die "the package did not install $f"
done
in_root bash -c '. /usr/share/bash-completion/completions/sectorfs && complete -p sectorfs' \
	>/dev/null || die "the installed completion does not load"

say "mounting from it: mount -t fuse.sectorfs (mount.fuse3 runs /usr/bin/sectorfs)"
mkdir -p "$root/tmp/ram"
in_root mount -t fuse.sectorfs sectorfs /tmp/ram -o size=16m,mode=1777 ||
	die "mount -t fuse.sectorfs in the root failed"
live /tmp/ram || die "no sectorfs answers at /tmp/ram"
echo hello >"$root/tmp/ram/f"
[ "$(in_root df -B1 --output=size /tmp/ram | tail -1 | tr -d ' ')" = 16777216 ] ||
	die "df does not show size=16m"
in_root mount -o remount,size=32m /tmp/ram || die "mount -o remount,size=32m failed"
[ "$(in_root df -B1 --output=size /tmp/ram | tail -1 | tr -d ' ')" = 33554432 ] ||
	die "after mount -o remount,size=32m df shows $(in_root df -B1 --output=size /tmp/ram | tail -1)"
in_root mount -o remount,ro /tmp/ram || die "mount -o remount,ro failed"
out=$(in_root touch /tmp/ram/g 2>&1) && die "a write succeeded on the read-only remount"
[[ "$out" == *"Read-only file system"* ]] || die "write after remount,ro: $out"
in_root mount -o remount,rw /tmp/ram || die "mount -o remount,rw failed"
in_root touch /tmp/ram/g || die "no write after mount -o remount,rw"
[ "$(cat "$root/tmp/ram/f")" = hello ] || die "the file did not survive the remounts"
in_root umount /tmp/ram || die "umount /tmp/ram failed"
for i in $(seq 50); do live /tmp/ram || break; sleep 0.1; done
mountpoint -q "$root/tmp/ram" && die "/tmp/ram still mounted after umount"
say "mount, remount size=/ro/rw through mount(8), umount: ok"

say "compiling the examples against the installed library"
cp "$work/readme.c" "$root/tmp/readme.c"
in_root sh -c 'cc -Wall -Wextra -Werror -o /tmp/embed /usr/share/doc/libsectorfs-dev/examples/embed.c \
	$(pkg-config --cflags --libs sectorfs) && /tmp/embed >/tmp/embed.out &&
	readelf -d /tmp/embed | grep -q "NEEDED.*libsectorfs\.so\.0" &&
	cc -Wall -Wextra -Werror -o /tmp/readme /tmp/readme.c $(pkg-config --cflags --libs sectorfs) &&
	/tmp/readme' >"$work/readme.out" 2>&1 || { cat "$work/readme.out"; die "the examples failed"; }
[ "$(cat "$work/readme.out")" = "a.o: 26 bytes" ] || die "the README's example printed $(cat "$work/readme.out")"
say "embed.c and the README's example: built and run"

say "purging the package and what came with it"
in_root apt-get purge -y -q sectorfs libsectorfs0 libsectorfs-dev gcc libc6-dev pkg-config \
	>"$work/apt-purge.log" 2>&1 || { tail -20 "$work/apt-purge.log"; die "apt-get purge failed"; }
in_root apt-get autoremove --purge -y -q >>"$work/apt-purge.log" 2>&1 ||
	{ tail -20 "$work/apt-purge.log"; die "apt-get autoremove failed"; }
rm -rf "$root/tmp/debs" "$root"/tmp/embed* "$root"/tmp/readme* "$root/tmp/ram"
same_as_before "the package"

# ---- 2. ./install.sh ----
say "2. ./install.sh, while another process holds apt's locks for 8 s"
copy_tree "$root/tmp/src"
python3 - "$root" <<'EOF' &
import fcntl, os, sys, time
fds = []
for f in ("var/lib/apt/lists/lock", "var/lib/dpkg/lock-frontend", "var/lib/dpkg/lock"):
    fd = os.open(os.path.join(sys.argv[1], f), os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    fds.append(fd)
open(os.path.join(sys.argv[1], "tmp/locked"), "w").close()
time.sleep(8)
EOF
holder=$!
for i in $(seq 100); do [ -e "$root/tmp/locked" ] && break; sleep 0.1; done
[ -e "$root/tmp/locked" ] || die "the lock holder did not start"
rc=0
in_root /tmp/src/install.sh /mnt/ram size=16m >"$work/install.log" 2>&1 || rc=$?
wait $holder
say "transcript of ./install.sh /mnt/ram size=16m:"
sed 's/^/    | /' "$work/install.log"
[ $rc -eq 0 ] || die "install.sh exited $rc"
grep -q "Waiting for cache lock\|Could not get lock" "$work/install.log" ||
	say "(apt did not say it waited; the lock was held when install.sh started)"
live /mnt/ram || die "install.sh did not mount /mnt/ram"
for f in /usr/local/bin/sectorfs /usr/local/share/man/man8/sectorfs.8 /usr/local/share/man/man3/sectorfs.3 \
	/usr/local/share/bash-completion/completions/sectorfs /usr/local/lib/systemd/system/sectorfs@.service \
	/usr/local/lib/pkgconfig/sectorfs.pc; do
	[ -e "$root$f" ] || die "install.sh did not install $f"
done
in_root bash -c '. /usr/local/share/bash-completion/completions/sectorfs && complete -p sectorfs' \
	>/dev/null || die "the completion install.sh installed does not load"
cp "$work/readme.c" "$root/tmp/readme.c"
in_root sh -c 'cc -o /tmp/readme /tmp/readme.c $(pkg-config --cflags --libs sectorfs) && /tmp/readme' \
	>"$work/readme.out" 2>&1 || { cat "$work/readme.out"; die "the README's example against /usr/local failed (ldconfig?)"; }
[ "$(cat "$work/readme.out")" = "a.o: 26 bytes" ] || die "the README's example printed $(cat "$work/readme.out")"
say "installed; the README's example runs with no LD_LIBRARY_PATH (ldconfig ran)"

echo kept >"$root/mnt/ram/kept"
rc=0
in_root /tmp/src/install.sh /mnt/ram size=16m >"$work/upgrade.log" 2>&1 || rc=$?
say "transcript of ./install.sh run again (upgrade) with /mnt/ram mounted:"
sed 's/^/    | /' "$work/upgrade.log"
[ $rc -eq 0 ] || die "install.sh as an upgrade exited $rc"
grep -q "upgraded to" "$work/upgrade.log" || die "the upgrade does not say it upgraded"
grep -q "keeps running the version it started with" "$work/upgrade.log" ||
	die "the upgrade does not say what it does with the running mount"
grep -q "left as it is" "$work/upgrade.log" || die "the upgrade does not say it left /mnt/ram"
[ "$(cat "$root/mnt/ram/kept" 2>&1)" = kept ] || die "the upgrade lost the mount's contents"

rc=0
in_root /tmp/src/install.sh --uninstall >"$work/uninstall-busy.log" 2>&1 || rc=$?
say "transcript of ./install.sh --uninstall with /mnt/ram mounted:"
sed 's/^/    | /' "$work/uninstall-busy.log"
[ $rc -ne 0 ] || die "--uninstall went ahead with a mount live"
live /mnt/ram && [ "$(cat "$root/mnt/ram/kept")" = kept ] || die "the refused --uninstall touched the mount"

in_root umount /mnt/ram || die "umount /mnt/ram failed"
for i in $(seq 50); do live /mnt/ram || break; sleep 0.1; done
for i in $(seq 50); do
	busy=""
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && busy=1
	done
	[ -z "$busy" ] && break
	sleep 0.1
done
rc=0
in_root /tmp/src/install.sh --uninstall >"$work/uninstall.log" 2>&1 || rc=$?
say "transcript of ./install.sh --uninstall:"
sed 's/^/    | /' "$work/uninstall.log"
[ $rc -eq 0 ] || die "--uninstall exited $rc"
rm -rf "$root/tmp/src" "$root"/tmp/readme* "$root/tmp/locked"
same_as_before "install.sh --uninstall"

unmount_api
rm -f "$root/.pkgtest-dirty"
say "ok"
