#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_badopts.sh - bad command lines: each must exit non-zero with exactly
# one line on stderr starting with "sectorfs: ", mount nothing and leave no
# daemon behind.  --help and --version exit 0.  A tmpfs and a sectorfs are
# mounted for the cases of a mount point in use (sectorfs mounts over the
# tmpfs, see mount_remount.sh, but not over a sectorfs) and of a remount or
# resize of what is no sectorfs.
#
# usage: mount_badopts.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=150
mt_init mount_badopts "$@"

MP=$T/mp
mkdir "$MP"
touch "$T/regular-file"
BUSY_T=$T/busy-tmpfs
BUSY_S=$T/busy-sectorfs
mount_tmpfs "$BUSY_T" size=1m
mount_sfs "$BUSY_S" size=1m
ram_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)

# What is mounted under $T (mount point and type), and the sectorfs daemons
# whose command line names something under $T.
snapshot() {
	awk -v t="$T/" 'index($5, t) == 1 { for (i = 7; $i != "-"; i++); print $5, $(i + 1) }' \
		/proc/self/mountinfo | sort
	local p
	for p in $(pgrep -f -- "$T/" || true); do
		case "$(cat "/proc/$p/comm" 2>/dev/null)" in
		sectorfs | "$SFS_COMM") pid_alive "$p" && echo "daemon $p" ;;
		esac
	done | sort
}
n=0
BAD_ENV=()   # NAME=VALUE... set for sectorfs
# bad DESCRIPTION ARGS...: sectorfs ARGS must fail cleanly.
bad() {
	local what=$1 rc=0 lines first
	shift
	n=$((n + 1))
	printf '%2d. %s: sectorfs %s ... ' "$n" "$what" "$*"
	snapshot >"$T/before"
	timeout 20 env "${BAD_ENV[@]}" "$SECTORFS" "$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
	[ $rc -ne 124 ] || die "$what: sectorfs $* did not return within 20 s"
	# a daemon that wrongly started: give it a moment to show up
	sleep 0.1
	snapshot >"$T/after"
	if ! cmp -s "$T/before" "$T/after"; then
		diff "$T/before" "$T/after" | sed 's/^/    /' || true
		die "$what: sectorfs $* changed what is mounted or running (exit $rc)"
	fi
	[ $rc -ne 0 ] || die "$what: sectorfs $* exited 0"
	lines=$(wc -l <"$T/stderr")
	first=$(head -1 "$T/stderr")
	if [ "$lines" -ne 1 ] || [[ "$first" != "sectorfs: "* ]]; then
		sed 's/^/    | /' "$T/stderr"
		die "$what: want exactly one stderr line starting with 'sectorfs: ', got $lines line(s) (exit $rc)"
	fi
	say "exit $rc: $first"
}

bad "unknown option" -o frobnicate "$MP"
bad "unknown option with a value" -o bogus=1 "$MP"
bad "unknown option among good ones" -o size=1m,nosuchoption,mode=755 "$MP"
bad "unknown flag" --frobnicate "$MP"
bad "malformed size" -o size=12q "$MP"
bad "negative size" -o size=-1 "$MP"
bad "empty size" -o size= "$MP"
bad "size without =" -o size "$MP"
bad "size with garbage after the suffix" -o size=1mb "$MP"
bad "size larger than RAM" -o "size=$((ram_kb * 2))k" "$MP"
bad "size larger than RAM, in t" -o size=1000t "$MP"
bad "size over 100%" -o size=101% "$MP"
grep -q "more than the .* MiB of memory this machine has" "$T/stderr" ||
	die "size=101%: the line does not say why: $(cat "$T/stderr")"
bad "size of 150%" -o size=150% "$MP"
grep -q "more than the .* MiB of memory this machine has" "$T/stderr" ||
	die "size=150%: the line does not say why: $(cat "$T/stderr")"
bad "size overflowing 64 bits" -o size=99999999999999999999 "$MP"
bad "malformed nr_inodes" -o nr_inodes=abc "$MP"
bad "mode not octal" -o mode=999 "$MP"
bad "mode too large" -o mode=77777 "$MP"
bad "malformed uid" -o uid=abc "$MP"
bad "malformed gid" -o gid=-5 "$MP"
bad "sector_size not a power of two" -o sector_size=1000 "$MP"
bad "sector_size too small" -o sector_size=256 "$MP"
bad "sector_size too large" -o sector_size=131072 "$MP"
bad "bad cache" -o cache=sometimes "$MP"
bad "bad direct_write" -o direct_write=maybe "$MP"
bad "direct_write without a value" -o direct_write "$MP"
bad "bad max_threads" -o max_threads=0 "$MP"
bad "spin not a number" -o spin=fast "$MP"
bad "spin too long" -o spin=20000 "$MP"
bad "prefault takes no value" -o prefault=1 "$MP"
bad "-o without a list" "$MP" -o
bad "missing mount point (no arguments)"
bad "missing mount point (options only)" -o size=1m
bad "mount point does not exist" "$T/does-not-exist"
bad "mount point not a directory" "$T/regular-file"
bad "mount point already a sectorfs" "$BUSY_S"
bad "remount of a tmpfs" -o remount,size=2m "$BUSY_T"
bad "remount with a bad size" -o remount,size=12q "$BUSY_S"
bad "resize without limits" resize "$BUSY_S"
bad "resize of something else" resize "$BUSY_S" mode=700
bad "resize of a tmpfs" resize "$BUSY_T" size=2m
bad "too many arguments" a b "$MP"
bad "stats without a mount point" stats
bad "stats of a directory that is no sectorfs" stats "$MP"
bad "stats of a tmpfs" stats "$BUSY_T"
# libfuse out of memory for its loop configuration (ctest passes the
# library that makes fuse_loop_cfg_create() fail).
if [ -n "${SFS_FAIL_LOOP_CFG:-}" ]; then
	[ -f "$SFS_FAIL_LOOP_CFG" ] || die "SFS_FAIL_LOOP_CFG=$SFS_FAIL_LOOP_CFG: no such file"
	BAD_ENV=("LD_PRELOAD=$SFS_FAIL_LOOP_CFG")
	bad "libfuse cannot make its loop configuration" "$MP"
	bad "libfuse cannot make its loop configuration (max_threads=1)" -o max_threads=1 "$MP"
	BAD_ENV=()
else
	say "libfuse failing to make its loop configuration: not checked (SFS_FAIL_LOOP_CFG unset)"
fi

# The busy mounts are unharmed.
[ "$(mount_type "$BUSY_T")" = tmpfs ] || die "the tmpfs at $BUSY_T is gone"
[ "$(mount_type "$BUSY_S")" = fuse.sectorfs ] || die "the sectorfs at $BUSY_S is gone"
[ "$(awk -v m="$BUSY_S" '$5 == m' /proc/self/mountinfo | wc -l)" -eq 1 ] ||
	die "something got mounted on top of $BUSY_S"
echo ok >"$BUSY_S/f" && [ "$(cat "$BUSY_S/f")" = ok ] || die "the sectorfs at $BUSY_S no longer works"
is_mounted "$MP" && die "$MP got mounted"

printf -- '--help ... '
rc=0
"$SECTORFS" --help >"$T/stdout" 2>"$T/stderr" || rc=$?
[ $rc -eq 0 ] || die "--help exited $rc"
grep -qi 'usage' "$T/stdout" || die "--help printed no usage on stdout: $(head -3 "$T/stdout")"
grep -q 'size=' "$T/stdout" || die "--help does not mention size="
say "ok ($(wc -l <"$T/stdout") lines: $(head -1 "$T/stdout"))"

printf -- '--version ... '
rc=0
"$SECTORFS" --version >"$T/stdout" 2>"$T/stderr" || rc=$?
[ $rc -eq 0 ] || die "--version exited $rc"
grep -Eq '[0-9]+\.[0-9]+' "$T/stdout" || die "--version printed no version: $(cat "$T/stdout")"
say "ok ($(head -1 "$T/stdout"))"

printf 'good options are accepted: size=10%%, nr_inodes=1k, mode=0755, uid=, gid=, noswap, sector_size=512, cache=open, direct_write=all, max_threads=2, spin=0, noprefault ... '
GOOD=$T/good
mount_sfs "$GOOD" "size=10%,nr_inodes=1k,mode=0755,uid=$SFS_UID2,gid=$SFS_UID2,noswap,sector_size=512,cache=open,direct_write=all,max_threads=2,spin=0,noprefault,noatime"
[ "$(stat -c '%a %u %g' "$GOOD")" = "755 $SFS_UID2 $SFS_UID2" ] ||
	die "root dir is $(stat -c '%a %u %g' "$GOOD"), want 755 $SFS_UID2 $SFS_UID2"
itotal=$(df --output=itotal "$GOOD" | tail -1 | tr -d ' ')
[ "$itotal" = 1024 ] || die "nr_inodes=1k: df shows $itotal inodes"
dd if=/dev/zero of="$GOOD/f" bs=1M count=8 status=none || die "cannot write 8 MiB"
! grep -qx sfs-prefault /proc/"$(sfs_pid "$GOOD")"/task/*/comm ||
	die "noprefault: the daemon has an sfs-prefault thread"
total=$(df -B1 --output=size "$GOOD" | tail -1 | tr -d ' ')
want=$((ram_kb * 1024 / 10))
diff=$((total - want))
[ ${diff#-} -le $((want / 100 + 65536)) ] || die "size=10%: df total $total, want about $want"
unmount_sfs "$GOOD"
say "ok"

printf 'ro: writes fail with EROFS ... '
mount_sfs "$GOOD" "ro"
rc=0
out=$(touch "$GOOD/x" 2>&1) || rc=$?
[ $rc -ne 0 ] && [[ "$out" == *"Read-only file system"* ]] || die "-o ro: touch gave rc=$rc '$out'"
unmount_sfs "$GOOD"
say "ok"

unmount_sfs "$BUSY_S"
mt_pass
