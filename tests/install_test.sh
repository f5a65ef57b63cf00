#!/bin/sh
# SPDX-License-Identifier: MIT
# install_test.sh BUILD_DIR [CMAKE] [CC] - test an installed libsectorfs.
#
# Checks that the installation has the library, headers, pkg-config file,
# both man pages, the bash completion and the systemd unit, and builds the
# README's library example exactly as printed there (the first C block
# under "## Using the library"), with pkg-config, and runs it.
# Installs the build into a fresh temporary prefix (no DESTDIR), finds the
# pkg-config file wherever GNUInstallDirs put it (lib, lib64 or
# lib/<multiarch>), then builds the installed copy of examples/embed.c the
# way a user would, with nothing but pkg-config's flags:
#   - against the shared library, checks that it really is dynamically
#     linked to libsectorfs.so.0, and runs it with LD_LIBRARY_PATH;
#   - statically (pkg-config --static, cc -static), checks it needs no
#     libsectorfs.so, and runs it without LD_LIBRARY_PATH.
# Any failure stops the script with a message and a nonzero status.
set -eu

build=${1:?usage: install_test.sh BUILD_DIR [CMAKE] [CC]}
cmake=${2:-cmake}
cc=${3:-cc}

fail() {
	echo "install_test: FAIL: $*" >&2
	exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sectorfs-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=$tmp/prefix

"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; fail "cmake --install"; }

# Where things landed.
pc=$(find "$prefix" -name sectorfs.pc -path '*/pkgconfig/*')
[ -n "$pc" ] || fail "no sectorfs.pc installed"
[ "$(printf '%s\n' "$pc" | wc -l)" -eq 1 ] || fail "more than one sectorfs.pc: $pc"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
example=$(find "$prefix" -path '*/examples/embed.c')
[ -n "$example" ] || fail "the example was not installed"
for f in "$prefix/include/sectorfs.h" "$prefix/include/sectorfs/engine.h" \
         "$libdir/libsectorfs.a" "$libdir/libsectorfs.so" "$libdir/libsectorfs.so.0"; do
	[ -e "$f" ] || fail "missing $f"
done
for f in share/man/man8/sectorfs.8 share/man/man3/sectorfs.3 \
         share/bash-completion/completions/sectorfs lib/systemd/system/sectorfs@.service; do
	[ -e "$prefix/$f" ] || fail "missing $prefix/$f"
done
echo "install_test: installed into $prefix (pkg-config file: ${pc#"$prefix"/})"

# Only our pkg-config file counts, not one installed on this machine.
PKG_CONFIG_PATH=$pcdir
PKG_CONFIG_LIBDIR=$pcdir
export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR
pkg-config --exists --print-errors sectorfs || fail "pkg-config does not know sectorfs"
[ "$(pkg-config --variable=prefix sectorfs)" = "$prefix" ] ||
	fail "sectorfs.pc names prefix $(pkg-config --variable=prefix sectorfs), not $prefix"
cflags=$(pkg-config --cflags sectorfs)
libs=$(pkg-config --libs sectorfs)
slibs=$(pkg-config --static --libs sectorfs)
echo "install_test: cflags: $cflags"
echo "install_test: libs: $libs; static: $slibs"

# The shared library exports the public API and hides the internals.
if command -v nm >/dev/null 2>&1; then
	syms=$(nm -D --defined-only "$libdir/libsectorfs.so")
	printf '%s\n' "$syms" | grep -q ' T sfs_path_open$' || fail "sfs_path_open not exported"
	if printf '%s\n' "$syms" | grep -q ' T inode_get$'; then
		fail "internal symbol inode_get is exported"
	fi
fi

# Against the shared library.
# shellcheck disable=SC2086 # the flags are meant to be split
"$cc" -Wall -Wextra -Werror -o "$tmp/embed-shared" "$example" $cflags $libs ||
	fail "building the example against the shared library"
if command -v readelf >/dev/null 2>&1; then
	readelf -d "$tmp/embed-shared" | grep -q 'NEEDED.*libsectorfs\.so\.0' ||
		fail "the shared build does not use libsectorfs.so.0"
fi
LD_LIBRARY_PATH=$libdir "$tmp/embed-shared" >"$tmp/shared.log" 2>&1 ||
	{ cat "$tmp/shared.log" >&2; fail "the example (shared) failed"; }
echo "install_test: shared build runs"

# The README's example, as printed.
src=$(cd "$(dirname "$0")/.." && pwd)
awk '/^## Using the library/ { f = 1 } f && /^```c$/ { g = 1; next } g && /^```$/ { exit } g' \
	"$src/README.md" >"$tmp/readme.c"
[ -s "$tmp/readme.c" ] || fail "no C example under '## Using the library' in README.md"
# shellcheck disable=SC2086
"$cc" -Wall -Wextra -Werror -o "$tmp/readme" "$tmp/readme.c" $cflags $libs ||
	fail "the README's example does not compile as printed"
out=$(LD_LIBRARY_PATH=$libdir "$tmp/readme" 2>&1) || fail "the README's example failed: $out"
[ "$out" = "a.o: 26 bytes" ] || fail "the README's example printed '$out'"
echo "install_test: the README's example compiles and runs ($out)"

# Statically.
# shellcheck disable=SC2086
"$cc" -static -Wall -Wextra -Werror -o "$tmp/embed-static" "$example" $cflags $slibs ||
	fail "building the example statically"
if command -v readelf >/dev/null 2>&1; then
	if readelf -d "$tmp/embed-static" | grep -q 'libsectorfs'; then
		fail "the static build still needs libsectorfs.so"
	fi
fi
env -u LD_LIBRARY_PATH "$tmp/embed-static" >"$tmp/static.log" 2>&1 ||
	{ cat "$tmp/static.log" >&2; fail "the example (static) failed"; }
echo "install_test: static build runs"
echo "install_test: ok"
