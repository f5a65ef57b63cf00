#!/bin/sh
# SPDX-License-Identifier: MIT
# Install what sectorfs needs to build and test, on Debian 12, if missing.
# Run as root, or as a user who may sudo.
set -eu
PKGS="build-essential cmake pkg-config valgrind fuse3 libfuse3-dev attr acl fio gnuplot-nox
      clang libclang-rt-14-dev git make tar python3 procps util-linux passwd stress-ng"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
