#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages sectorfs needs, where missing.
#
#     scripts/deps.sh build    what building and running need (./install.sh)
#     scripts/deps.sh          that, and what the tests need (./test.sh, CI)
#
# Waits for apt's lock (up to 20 minutes) when another apt or dpkg holds
# it, instead of failing.  Run as root, or as a user who may sudo.
set -eu
# Building: a C compiler and libc's headers, make, cmake, pkg-config, and
# the headers of libfuse and liburing; running: fuse3 (fusermount3, mount.fuse3) and
# libfuse3-3, which libfuse3-dev brings.
BUILD="gcc libc6-dev make cmake pkg-config libfuse3-dev fuse3 liburing-dev"
# Testing: valgrind, the fuzzer (clang with libFuzzer), the tools the mount
# tests run, groff for the man pages, and debhelper and debootstrap for the
# Debian package and the clean root it is installed into; stress-ng for
# the loaded measurement of CI's time.
TEST="build-essential valgrind attr acl fio gnuplot-nox clang libclang-rt-14-dev git tar
      python3 procps util-linux passwd groff-base dpkg-dev debhelper fakeroot debootstrap stress-ng"
case "${1:-all}" in
build) PKGS=$BUILD ;;
all) PKGS="$BUILD $TEST" ;;
*)
	echo "usage: $0 [build]" >&2
	exit 2
	;;
esac
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# apt-get install waits this long for the dpkg lock another apt or dpkg
# holds (and says so).
LOCK="-o DPkg::Lock::Timeout=1200"
# apt-get update has no such wait for the lock of its package lists (apt
# 2.6): it is tried again every 5 s, for as long.
tries=0
while ! out=$($SUDO apt-get update -qq 2>&1); do
	case "$out" in
	*"Could not get lock"* | *"Unable to lock"*) ;;
	*)
		printf '%s\n' "$out" >&2
		exit 1
		;;
	esac
	tries=$((tries + 1))
	if [ $tries -ge 240 ]; then
		printf '%s\n' "$out" >&2
		exit 1
	fi
	[ $tries -eq 1 ] && echo "waiting for apt's lock: $(printf '%s\n' "$out" | head -1)"
	sleep 5
done
[ -z "$out" ] || printf '%s\n' "$out" >&2
# shellcheck disable=SC2086
$SUDO apt-get $LOCK install -y -qq --no-install-recommends $missing >/dev/null
