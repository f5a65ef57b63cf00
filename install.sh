#!/bin/sh
# SPDX-License-Identifier: MIT
# Install sectorfs from this tree on Debian 12 and mount a RAM disk; run it
# again to upgrade; remove everything it installed with --uninstall.
#
#     ./install.sh [MOUNTPOINT [OPTIONS]]   (default: /mnt/ram, size=50%,mode=1777)
#     ./install.sh --no-mount               install or upgrade, mount nothing
#     ./install.sh --uninstall              remove what the installs put there
#
# Run as root, or as a user who may sudo (the build runs as that user).
#
# Installing:
#   1. the Debian packages that building and running need, where missing
#      (scripts/deps.sh build: gcc, libc6-dev, make, cmake, pkg-config,
#      libfuse3-dev, fuse3, liburing-dev), waiting for apt's lock if another apt holds it;
#   2. a build of the daemon and the library alone (no tests, sanitizers or
#      benchmarks), in build-release/;
#   3. under /usr/local: bin/sectorfs, the libraries, headers and
#      pkg-config file, the man pages sectorfs(8) and sectorfs(3), the bash
#      completion and lib/systemd/system/sectorfs@.service; then ldconfig,
#      so that programs linked with `pkg-config --libs sectorfs` start;
#   4. a mount at MOUNTPOINT, unless --no-mount, or a sectorfs is mounted
#      there already (left as it is).  Anything else mounted there (a
#      tmpfs) is mounted over, as tmpfs would.
# Everything it adds is written down in /usr/local/share/sectorfs/installed:
# the files, the directories it made, the Debian packages that came in with
# step 1 and the mount points it made; each run adds to the list.
#
# Upgrading (running it again): the new files replace the old ones (a new
# inode each: nothing running is disturbed).  A sectorfs already mounted
# keeps running the version it started with, holding its files, and is
# named with the way to move it to the new version (sectorfs umount, and
# mount again); nothing is unmounted, since that would lose its contents
# (or, with image=, need a save).
#
# Uninstalling: refused while a daemon of the installed sectorfs runs (it
# holds a RAM disk's only copy: unmount it first).  Then removes the
# files, the directories it made once they are empty, the mount points it
# made, and the Debian packages it installed that nothing else needs
# (those some other package needs stay, and are named), runs ldconfig,
# and removes build-release/.
set -eu
cd "$(dirname "$0")"
PREFIX=/usr/local
RECORD_DIR=$PREFIX/share/sectorfs
RECORD=$RECORD_DIR/installed
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export LC_ALL=C

say() { printf 'install.sh: %s\n' "$*"; }
die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

# "PID MOUNTPOINT" for each running daemon of the installed binary (the
# mount point is the last argument of its command line).
running_daemons() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	$SUDO sh -c 'for d in /proc/[0-9]*; do
		exe=$(readlink "$d/exe" 2>/dev/null) || continue
		case "$exe" in "$1" | "$1 (deleted)") ;; *) continue ;; esac
		mp=$(tr "\0" "\n" <"$d/cmdline" 2>/dev/null | tail -1)
		echo "${d#/proc/} $mp"
	done' sh "$PREFIX/bin/sectorfs"
}

installed_packages() {
	dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" { print $2 }' | sort
}

# add_record: add the lines on stdin ("KIND PATH-OR-NAME") to the record.
add_record() {
	tmp=$(mktemp)
	{
		[ ! -f "$RECORD" ] || cat "$RECORD"
		cat
	} | sed '/^$/d' | sort -u >"$tmp"
	[ -d "$RECORD_DIR" ] || $SUDO mkdir -p "$RECORD_DIR"
	$SUDO cp "$tmp" "$RECORD"
	$SUDO chmod 644 "$RECORD"
	rm -f "$tmp"
}

# ---- uninstalling ----

uninstall() {
	[ -f "$RECORD" ] || die "nothing to uninstall: $RECORD is missing (not installed by install.sh?)"
	busy=$(running_daemons)
	if [ -n "$busy" ]; then
		printf '%s\n' "$busy" | while read -r pid mp; do
			say "sectorfs is mounted at $mp (daemon pid $pid)"
		done
		die "refused: unmount first (umount MOUNTPOINT, or fusermount3 -u as its user): the RAM disk's contents would go with it"
	fi
	# The record, read from a copy: it lists itself among the files.
	rec=$(mktemp)
	TMPFILES="$TMPFILES $rec"
	cp "$RECORD" "$rec"
	# Files, then the directories made for them, deepest first.
	awk '$1 == "file" { print substr($0, 6) }' "$rec" | while read -r f; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			$SUDO rm -f "$f"
			say "removed $f"
		fi
	done
	awk '$1 == "dir" || $1 == "mountdir" { print substr($0, index($0, " ") + 1) }' "$rec" |
		sort -r | while read -r d; do
		if [ "$d" = "$RECORD_DIR" ]; then
			continue # last, with the record
		elif [ -d "$d" ] && $SUDO rmdir "$d" 2>/dev/null; then
			say "removed $d/"
		elif [ -d "$d" ]; then
			say "kept $d/ (not empty, or a mount point)"
		fi
	done
	$SUDO ldconfig
	remove_packages "$rec"
	for w in /etc/systemd/system/*.wants/sectorfs@*.service; do
		[ -L "$w" ] && say "note: $w is still enabled (systemctl disable $(basename "$w"))"
	done
	$SUDO rm -f "$RECORD"
	if grep -qx "dir $RECORD_DIR" "$rec"; then
		$SUDO rmdir "$RECORD_DIR" && say "removed $RECORD_DIR/"
	fi
	rm -rf build-release
	say "uninstalled"
}

# The Debian packages install.sh brought in, those nothing else needs.
# apt decides which: marked as automatically installed, the ones that
# `apt-get autoremove` would take are the ones no other package needs;
# only they go, and only if removing them takes nothing else along.
remove_packages() {
	want=$(awk '$1 == "pkg" { print $2 }' "$1" | sort -u)
	[ -n "$want" ] || return 0
	have=$(installed_packages)
	pkgs=$(printf '%s\n' "$want" | comm -12 - "$(tmpfile_of "$have")")
	[ -n "$pkgs" ] || return 0
	# shellcheck disable=SC2086
	manual=$(apt-mark showmanual $pkgs)
	# shellcheck disable=SC2086
	$SUDO apt-mark auto $pkgs >/dev/null
	removable=$(apt-get -s autoremove | awk '/^Remv / { print $2 }' | sort -u)
	go=$(printf '%s\n' "$pkgs" | comm -12 - "$(tmpfile_of "$removable")")
	if [ -n "$go" ]; then
		# shellcheck disable=SC2086
		also=$(apt-get -s purge $go | awk '/^Purg / { print $2 }' | sort -u |
			comm -23 - "$(tmpfile_of "$pkgs")")
		if [ -n "$also" ]; then
			say "kept the packages it installed: removing them would also remove" $also
			go=""
		fi
	fi
	if [ -n "$go" ]; then
		say "removing the Debian packages it installed:" $go
		# shellcheck disable=SC2086
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=1200 \
			purge -y -qq $go >/dev/null
	fi
	kept=$(printf '%s\n' "$pkgs" | comm -23 - "$(tmpfile_of "$go")")
	if [ -n "$kept" ]; then
		say "kept the packages it installed that others need now:" $kept
		# Their marks as they were.
		back=$(printf '%s\n' "$kept" | comm -12 - "$(tmpfile_of "$manual")")
		# shellcheck disable=SC2086
		[ -z "$back" ] || $SUDO apt-mark manual $back >/dev/null
	fi
}

# A file holding $1, sorted, for comm (removed at exit).
TMPFILES=""
tmpfile_of() {
	f=$(mktemp)
	TMPFILES="$TMPFILES $f"
	printf '%s\n' "$1" | sed '/^$/d' | sort -u >"$f"
	echo "$f"
}
trap 'rm -f $TMPFILES' EXIT

# ---- installing ----

mount=yes
case "${1:-}" in
-h | --help)
	sed -n '3,9p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
--uninstall)
	[ $# -eq 1 ] || die "usage: ./install.sh --uninstall"
	uninstall
	exit 0
	;;
--no-mount)
	[ $# -eq 1 ] || die "usage: ./install.sh --no-mount"
	mount=no
	;;
-*) die "unknown option $1 (see --help)" ;;
esac
mp=${1:-/mnt/ram}
opts=${2:-size=50%,mode=1777}

upgrade=no
[ -f "$RECORD" ] && upgrade=yes
[ -d "$RECORD_DIR" ] || made_record_dir="dir $RECORD_DIR"

before=$(installed_packages)
./scripts/deps.sh build
after=$(installed_packages)
new=$(printf '%s\n' "$after" | comm -13 "$(tmpfile_of "$before")" -)
# shellcheck disable=SC2086 # one line per package
[ -z "$new" ] || printf 'pkg %s\n' $new | add_record

cmake -S . -B build-release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$PREFIX \
	-DSECTORFS_SANITIZERS=OFF -DSECTORFS_BENCH=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null

# Which directories the install makes: those it puts files in that do not
# exist yet (a staged install tells which).
stage=$(mktemp -d)
TMPFILES="$TMPFILES $stage"
DESTDIR=$stage cmake --install build-release >/dev/null
dirs=$(cd "$stage" && find . -mindepth 1 -type d | sed 's|^\.||' | while read -r d; do
	[ -d "$d" ] || echo "dir $d"
done)
rm -rf "$stage"

$SUDO cmake --install build-release >/dev/null
$SUDO ldconfig
{
	printf '%s\n' "$dirs" "${made_record_dir:-}" "file $RECORD"
	sed 's/^/file /' build-release/install_manifest.txt
} | add_record
if [ -d /run/systemd/system ]; then
	$SUDO systemctl daemon-reload || true
fi
version=$($PREFIX/bin/sectorfs --version)
if [ $upgrade = yes ]; then
	say "upgraded to $version under $PREFIX"
else
	say "installed $version under $PREFIX"
fi

# Running mounts keep their version.
running_daemons | while read -r pid rmp; do
	say "sectorfs at $rmp (pid $pid) keeps running the version it started with; to move it to the new one: sectorfs umount $rmp (its contents go, unless it has image=, which saves them), then mount it again"
done

[ $mount = yes ] || exit 0
if [ -d "$mp" ]; then
	if $SUDO $PREFIX/bin/sectorfs stats "$mp" >/dev/null 2>&1; then
		say "$mp: a sectorfs is mounted there already: left as it is"
		df -h "$mp"
		exit 0
	fi
else
	$SUDO mkdir -p "$mp"
	echo "mountdir $(readlink -f "$mp")" | add_record
fi
$SUDO $PREFIX/bin/sectorfs -o "$opts" "$mp"
df -h "$mp"
echo "mounted: unmount with: ${SUDO:+sudo }umount $mp   (report: sectorfs stats $mp)"
