#!/bin/sh
# SPDX-License-Identifier: MIT
# Install sectorfs and mount a RAM disk, on Debian 12:
#
#     ./install.sh [MOUNTPOINT [OPTIONS]]      (default: /mnt/ram, size=50%,mode=1777)
#
# Installs the build dependencies with apt-get where missing, builds,
# installs the daemon, library, headers and man page under /usr/local, and
# mounts.  Run as root, or as a user who may sudo.
set -eu
cd "$(dirname "$0")"
mp=${1:-/mnt/ram}
opts=${2:-size=50%,mode=1777}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
./scripts/deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSECTORFS_SANITIZERS=OFF \
      -DBUILD_TESTING=OFF >/dev/null
cmake --build build-release -j"$(nproc)"
$SUDO cmake --install build-release >/dev/null
$SUDO mkdir -p "$mp"
$SUDO /usr/local/bin/sectorfs -o "$opts" "$mp"
df -h "$mp"
echo "mounted: unmount with: ${SUDO:+sudo }umount $mp   (report: sectorfs stats $mp)"
