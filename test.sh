#!/bin/sh
# SPDX-License-Identifier: MIT
# Build sectorfs with every variant (plain, ASan+UBSan, TSan) and run the
# whole test suite.  Works on a fresh Debian 12 machine: missing packages
# are installed first.
set -eu
cd "$(dirname "$0")"
./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
exec ctest --test-dir build --output-on-failure -j"$(nproc)"
