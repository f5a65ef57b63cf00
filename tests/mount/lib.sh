# SPDX-License-Identifier: MIT
# lib.sh - shared helpers for the sectorfs mount tests (sourced, bash).
#
# A test script does:
#
#     . "$(dirname "$0")/lib.sh"
#     mt_init mount_foo "$@"        # root check (exit 77), binary, temp dir, trap
#     mount_tmpfs "$T/tmpfs" size=64m,mode=1777
#     mount_sfs   "$T/sfs"   size=64m
#     section "what is checked" check_fn     # same steps on both, outputs compared
#     mt_pass
#
# Everything this file creates lives under one private directory $T
# (/tmp/sfsmt.NAME.XXXXXX).  The EXIT trap unmounts every mount made under
# it (fusermount3 -u, then umount, then umount -l), kills any sectorfs
# daemon serving one of them (only those: found by their mount point), and
# removes $T only when nothing is mounted below it any more, so a failed or
# interrupted run never leaves a mount behind and never deletes files
# through a mount.
#
# The binary: $SECTORFS if set, else the first argument (the binary, or the
# build directory that holds it), else /work/main/build/sectorfs.
#
# Environment: MT_DEADLINE=seconds (the watchdog; default per script, 840
# if the script sets none), MT_ONLY="sec_fn ..." (run only those sections),
# MT_VERBOSE=1 (print every section's output), MT_KEEP_GOING=1 (go on
# after a difference; fail at the end), SFS_TRANSPORT=uring (every
# sectorfs the test runs gets -o io_uring=on first, through a wrapper
# named sectorfs in $T/bin, and the kernel's switch
# /sys/module/fuse/parameters/enable_uring is Y for the run and put back
# as it was at exit, whatever happens; 77 if the kernel has no such
# switch).

set -euo pipefail
umask 022
export LC_ALL=C LANG=C
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
unset POSIXLY_CORRECT

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
SFS_UID=4242       # the ordinary user "sfstest" (and its group)
SFS_UID2=4243      # a second ordinary user, "sfstest2"
SFS_COMM=sectorfs
T=""
MT_NAME=""
MT_MOUNTS=()       # every mount point this test may have mounted
MT_RESTORE_FUSE="" # mode of /dev/fuse to put back, if a test changed it
MT_RESTORE_URING="" # enable_uring to put back, if SFS_TRANSPORT=uring changed it
ENABLE_URING=/sys/module/fuse/parameters/enable_uring

say() { printf '%s\n' "$*"; }
die() {
	printf 'FAIL [%s]: %s\n' "$MT_NAME" "$*" >&2
	exit 1
}

# ---- setup and teardown ----

mt_init() {
	MT_NAME=$1
	shift
	if [ "$(id -u)" -ne 0 ]; then
		say "needs root: skipped"
		exit 77
	fi
	if [ -z "${SECTORFS:-}" ]; then
		if [ $# -ge 1 ] && [ -n "$1" ]; then
			if [ -d "$1" ]; then SECTORFS=$1/sectorfs; else SECTORFS=$1; fi
		else
			SECTORFS=/work/main/build/sectorfs
		fi
	fi
	[ -x "$SECTORFS" ] || die "no sectorfs binary at $SECTORFS (set SECTORFS or pass the build dir)"
	SECTORFS=$(readlink -f "$SECTORFS")
	export SECTORFS
	SFS_COMM=$(basename "$SECTORFS" | cut -c1-15)   # its name in /proc/PID/comm
	for tool in mount umount fusermount3 pgrep setpriv "$PY"; do
		command -v "$tool" >/dev/null || die "missing tool: $tool"
	done
	T=$(mktemp -d "/tmp/sfsmt.$MT_NAME.XXXXXX")
	chmod 0755 "$T"
	trap 'mt_exit_trap' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	mt_watchdog "${MT_DEADLINE:-${MT_DEFAULT_DEADLINE:-840}}"
	[ "${SFS_TRANSPORT:-}" = uring ] && mt_uring
	say "$MT_NAME: binary $SECTORFS, work dir $T"
}

# The test sets the kernel's switch enable_uring itself (uring_switch Y|N),
# and it is put back as it was at exit; 77 if the kernel has none.
mt_own_uring_switch() {
	if [ ! -e "$ENABLE_URING" ]; then
		say "this kernel has no FUSE over io_uring ($ENABLE_URING): skipped"
		exit 77
	fi
	[ -n "$MT_RESTORE_URING" ] || MT_RESTORE_URING=$(cat "$ENABLE_URING")
}
uring_switch() { echo "$1" >"$ENABLE_URING" || die "cannot set $ENABLE_URING to $1"; }

# SFS_TRANSPORT=uring: FUSE over io_uring for every mount of this test.
mt_uring() {
	mt_own_uring_switch
	uring_switch Y
	mkdir "$T/bin"
	chmod 0755 "$T/bin"
	printf '#!/bin/sh\nexec %q -o io_uring=on "$@"\n' "$SECTORFS" >"$T/bin/sectorfs"
	chmod 0755 "$T/bin/sectorfs"
	SECTORFS=$T/bin/sectorfs
	SFS_COMM=sectorfs
	export SECTORFS
}

# A test that hangs (a daemon that deadlocked, say) must still clean up
# before ctest's TIMEOUT kills it with SIGKILL, which no trap survives.
# After $1 seconds the watchdog kills the sectorfs daemons of every mount
# under $T, which ends whatever waits on them (ENOTCONN), then sends
# SIGTERM to the test, whose EXIT trap unmounts everything.
MT_WATCHDOG=""
mt_watchdog() {
	local secs=$1 main=$$
	(
		trap - EXIT INT TERM
		sleep "$secs"
		printf 'FAIL [%s]: still running after %s s (MT_DEADLINE); killing its daemons\n' \
			"$MT_NAME" "$secs" >&2
		for mp in $(awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo); do
			for p in $(sfs_pids "$mp"); do kill -KILL "$p" 2>/dev/null; done
		done
		kill -TERM "$main" 2>/dev/null
	) &
	MT_WATCHDOG=$!
	disown "$MT_WATCHDOG"    # no "Terminated" when the cleanup ends it
}

mt_exit_trap() {
	local rc=$?
	set +e
	trap '' PIPE INT TERM    # nothing may stop the cleanup half way
	mt_cleanup
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		say "$MT_NAME: FAILED (exit $rc)" >&2
	fi
	exit $rc
}

# Is $1 a mount point right now (exact path, as in /proc/self/mountinfo)?
is_mounted() {
	awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# The filesystem type mounted at $1 ("" if none).
mount_type() {
	awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); t = $(i + 1) } END { print t }' \
		/proc/self/mountinfo
}

# poll SECONDS CMD...: run CMD every 50 ms until it succeeds (0) or
# SECONDS have passed (1).
poll() {
	local n=$(($1 * 20))
	shift
	until "$@"; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 0.05
	done
}
pid_gone() { ! pid_alive "$1"; }

# dead_error MSG [uring]: whether MSG is what an access to a mount whose
# daemon died says: ENOTCONN; over io_uring (SFS_TRANSPORT=uring, or a
# second argument) also ECONNABORTED, which the kernel gives a request that
# was in flight when it tore the rings down (fs/fuse/dev_uring.c).
dead_error() {
	[[ "$1" == *"Transport endpoint is not connected"* ]] && return 0
	[ "${SFS_TRANSPORT:-}" = uring ] || [ -n "${2:-}" ] || return 1
	[[ "$1" == *"Software caused connection abort"* ]]
}
not_mounted() { ! is_mounted "$1"; }

# Is process $1 alive (zombies count as dead)?
pid_alive() {
	local st
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Pids of the sectorfs daemons whose command line ends in (or has, before a
# space) the mount point $1.  Nothing else matches: the process must be
# called sectorfs.
sfs_pids() {
	local mp=$1 p
	for p in $(pgrep -f -- "${mp}( |\$)" 2>/dev/null); do
		[ "$p" = "$$" ] && continue
		case "$(cat "/proc/$p/comm" 2>/dev/null)" in
		sectorfs | "$SFS_COMM") ;;
		*) continue ;;
		esac
		pid_alive "$p" && echo "$p"
	done
	return 0
}

# Wait up to $2 seconds (default 5) for every daemon of mount point $1 to end.
no_daemon() { [ -z "$(sfs_pids "$1")" ]; }
wait_daemon_gone() { poll "${2:-5}" no_daemon "$1"; }

# Unmount whatever is at $1, by all means; kill its daemon.  Never fails.
# (A busy FUSE mount is detached lazily; a daemon that does not end on
# SIGTERM within 3 s gets SIGKILL, which also releases anything blocked
# on it.)
force_unmount() {
	local mp=$1 pids i
	for i in 1 2 3; do
		is_mounted "$mp" || break
		case "$(mount_type "$mp")" in
		fuse*) fusermount3 -u "$mp" 2>/dev/null || umount "$mp" 2>/dev/null ||
			umount -l "$mp" 2>/dev/null || fusermount3 -uz "$mp" 2>/dev/null ;;
		*) umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null ;;
		esac
	done
	pids=$(sfs_pids "$mp")
	if [ -n "$pids" ]; then
		kill -TERM $pids 2>/dev/null
		if ! wait_daemon_gone "$mp" 3; then
			pids=$(sfs_pids "$mp")
			[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
			wait_daemon_gone "$mp" 2
		fi
	fi
	is_mounted "$mp" && umount -l "$mp" 2>/dev/null
	return 0
}

mt_cleanup() {
	local i mp
	if [ -n "$MT_WATCHDOG" ]; then
		local kids
		kids=$(pgrep -P "$MT_WATCHDOG")        # its sleep
		kill "$MT_WATCHDOG" 2>/dev/null        # first, so that it reports nothing
		[ -n "$kids" ] && kill $kids 2>/dev/null
		MT_WATCHDOG=""
	fi
	[ -n "$T" ] || return 0
	cd /
	for ((i = ${#MT_MOUNTS[@]} - 1; i >= 0; i--)); do
		force_unmount "${MT_MOUNTS[$i]}"
	done
	# Anything else mounted below $T (a test that mounted without registering).
	for mp in $(awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		force_unmount "$mp"
	done
	if [ -n "$MT_RESTORE_FUSE" ]; then
		chmod "$MT_RESTORE_FUSE" /dev/fuse
	fi
	if [ -n "$MT_RESTORE_URING" ]; then
		echo "$MT_RESTORE_URING" >"$ENABLE_URING"
		MT_RESTORE_URING=""
	fi
	if awk -v t="$T/" 'index($5, t) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		say "WARNING: something is still mounted under $T; not removing it" >&2
		return 1
	fi
	rm -rf --one-file-system "$T"
}

# ---- mounting ----

register_mount() { MT_MOUNTS+=("$1"); }

# mount_tmpfs DIR OPTIONS
mount_tmpfs() {
	mkdir -p "$1"
	register_mount "$1"
	mount -t tmpfs -o "$2" tmpfs "$1" || die "cannot mount tmpfs on $1 with -o $2"
}

# mount_sfs DIR [OPTIONS [more arguments...]]: mount and wait until live.
mount_sfs() {
	local mp=$1 opts=${2:-} err
	shift 2 || shift $#
	mkdir -p "$mp"
	register_mount "$mp"
	err=$T/.mount_sfs.err
	if [ -n "$opts" ]; then
		timeout 30 "$SECTORFS" "$@" -o "$opts" "$mp" 2>"$err" ||
			die "sectorfs -o $opts $mp failed: $(cat "$err")"
	else
		timeout 30 "$SECTORFS" "$@" "$mp" 2>"$err" || die "sectorfs $mp failed: $(cat "$err")"
	fi
	is_mounted "$mp" || die "sectorfs returned but $mp is not a mount point"
	[ "$(mount_type "$mp")" = fuse.sectorfs ] ||
		die "$mp has type '$(mount_type "$mp")', expected fuse.sectorfs"
}

# mount_side_by_side TMPFS_OPTIONS SECTORFS_OPTIONS: a fresh tmpfs on
# $T/tmpfs and a fresh sectorfs on $T/sfs, in $TM and $SM (what section()
# compares by default).
mount_side_by_side() {
	TM=$T/tmpfs
	SM=$T/sfs
	mount_tmpfs "$TM" "$1"
	mount_sfs "$SM" "$2"
	say "tmpfs on $TM, sectorfs on $SM (pid $(sfs_pid "$SM"))"
}

# The one daemon of mount point $1 (dies if not exactly one).
sfs_pid() {
	local p
	p=$(sfs_pids "$1")
	[ -n "$p" ] || die "no sectorfs daemon found for $1"
	[ "$(echo "$p" | wc -l)" -eq 1 ] || die "several daemons for $1: $p"
	echo "$p"
}

unmount_sfs() {
	fusermount3 -u "$1" || die "fusermount3 -u $1 failed"
	wait_daemon_gone "$1" 60 || die "daemon of $1 still running 60 s after unmount"
	is_mounted "$1" && die "$1 still mounted after fusermount3 -u"
	return 0
}

# Flush everything to the filesystems and drop the page cache, so that
# reads that follow go to the daemon rather than the kernel's copy.
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}

# ---- the ordinary user ----

# The users "sfstest" (uid/gid 4242) and "sfstest2" (uid/gid 4243),
# created if missing and kept (so that their ids stay stable).
ensure_user() {
	local name id
	for name in sfstest sfstest2; do
		id=$SFS_UID
		[ $name = sfstest2 ] && id=$SFS_UID2
		if ! getent group $name >/dev/null; then
			groupadd -g "$id" $name || die "groupadd -g $id $name failed"
		fi
		if ! getent passwd $name >/dev/null; then
			useradd -u "$id" -g "$id" -M -d /nonexistent -s /bin/sh $name ||
				die "useradd $name failed"
		fi
		[ "$(id -u $name)" = "$id" ] || die "user $name exists with uid $(id -u $name), expected $id"
		[ "$(getent group $name | cut -d: -f3)" = "$id" ] || die "group $name is not gid $id"
	done
}

# as_user UID GID CMD...: run CMD as that uid/gid (supplementary: just GID),
# with a clean environment.
as_user() {
	local u=$1 g=$2
	shift 2
	setpriv --reuid="$u" --regid="$g" --groups="$g" --inh-caps=-all \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/ LC_ALL=C "$@"
}

# /dev/fuse as Debian's udev leaves it (0666); put back at exit.
fuse_dev_world() {
	local m
	m=$(stat -c %a /dev/fuse)
	if [ "$m" != 666 ]; then
		MT_RESTORE_FUSE=$m
		chmod 0666 /dev/fuse
	fi
}

# ---- comparing ----

# section TITLE FUNCTION [DIR_A DIR_B]: run FUNCTION in DIR_A (default
# $TM, the tmpfs) and in DIR_B (default $SM, the sectorfs), each time in a
# subshell whose cwd is that directory, with $MNT set to it and errexit on:
# a step that fails (a command's exit status, a Python exception) ends the
# section.  Both runs must end with exit status 0 (a section that crashes,
# even the same way on both, fails), and the outputs (stdout+stderr, with
# the directory replaced by MNT, and the exit status) must be identical.
# Steps that are meant to fail go through r, which prints their status.
# Call section as a plain command, not after if, ||, && or !: there bash
# runs everything inside without errexit, and a failed step goes unseen
# (mt_selfcheck checks that section() catches them).  MT_ONLY="fn1 fn2" runs only those sections; MT_VERBOSE=1 prints each
# section's output; MT_KEEP_GOING=1 goes on after a difference (and fails
# at the end).
section() {
	local title=$1 fn=$2 a=${3:-$TM} b=${4:-$SM} oa ob sa sb
	printf '%s ... ' "$title"
	if [ -n "${MT_ONLY:-}" ] && [[ " $MT_ONLY " != *" $fn "* ]]; then
		say "skipped (MT_ONLY)"
		return 0
	fi
	oa=$T/out.$fn.a
	ob=$T/out.$fn.b
	run_in "$a" "$fn" >"$oa"
	sa=$MT_RUN_STATUS
	run_in "$b" "$fn" >"$ob"
	sb=$MT_RUN_STATUS
	if [ "$sa" -ne 0 ] || [ "$sb" -ne 0 ]; then
		say "FAILED (exit $sa on tmpfs, $sb on sectorfs)"
		say "--- tmpfs ($a), last lines:"
		tail -n 15 "$oa"
		say "--- sectorfs ($b), last lines:"
		tail -n 15 "$ob"
	elif ! cmp -s "$oa" "$ob"; then
		say "DIFFERENT"
		say "--- tmpfs ($a)   +++ sectorfs ($b):"
		{ diff -u "$oa" "$ob" || true; } | sed -n '3,60p'
	else
		[ -n "${MT_VERBOSE:-}" ] && cat "$oa"
		say "same ($(wc -l <"$oa") lines)"
		return 0
	fi
	cp "$oa" "/tmp/sfsmt.$MT_NAME.$fn.tmpfs.out"
	cp "$ob" "/tmp/sfsmt.$MT_NAME.$fn.sectorfs.out"
	if [ -n "${MT_KEEP_GOING:-}" ]; then
		MT_FAILED+=("$title")
		return 0
	fi
	if [ "$sa" -ne 0 ] || [ "$sb" -ne 0 ]; then
		die "$title: a step failed (exit $sa on tmpfs, $sb on sectorfs; full outputs kept in /tmp/sfsmt.$MT_NAME.$fn.{tmpfs,sectorfs}.out)"
	fi
	die "$title: sectorfs differs from tmpfs (first difference above; full outputs kept in /tmp/sfsmt.$MT_NAME.$fn.{tmpfs,sectorfs}.out)"
}

# run_in DIR FUNCTION: FUNCTION's output as section() wants it, ending
# with a line "[exit N]"; N also in MT_RUN_STATUS.  errexit is set inside
# the subshell: the caller's `set -e` would not reach it (a subshell
# whose status is tested runs without it).
MT_RUN_STATUS=0
run_in() {
	local dir=$1 fn=$2 st
	set +e
	(
		set -e
		cd "$dir"
		export MNT=$dir
		"$fn"
	) 2>&1 | sed "s|$dir|MNT|g"
	st=("${PIPESTATUS[@]}")
	set -e
	MT_RUN_STATUS=${st[0]}
	[ "${st[1]}" -eq 0 ] || MT_RUN_STATUS=${st[1]}
	printf '[exit %d]\n' "$MT_RUN_STATUS"
	return 0
}

# mt_selfcheck: section() must catch what it is there to catch.  On two
# scratch directories: a section that crashes the same way on both sides,
# one whose step fails half way (then prints the same on both), and one
# whose exit status differs must each fail; a good one must pass.
mt_sc_crash() {
	echo before
	py <<'EOF'
raise RuntimeError("a crash, the same on both sides")
EOF
	echo after
}
mt_sc_midway() {
	cat no-such-file
	echo "printed on both sides if the failure above were ignored"
}
mt_sc_differ() {
	echo same output
	[ "$MNT" != "$T/selfcheck.b" ]
}
mt_sc_good() {
	r cat no-such-file
	echo fine
}
mt_selfcheck() {
	local a=$T/selfcheck.a b=$T/selfcheck.b fn rc
	mkdir -p "$a" "$b"
	printf 'self-check of section() ... '
	for fn in mt_sc_crash mt_sc_midway mt_sc_differ mt_sc_good; do
		# Not in an if or ||: there, bash would run it without errexit.
		set +e
		(MT_ONLY="" MT_KEEP_GOING="" section "$fn" "$fn" "$a" "$b") >"$T/selfcheck.out" 2>&1
		rc=$?
		set -e
		if [ $fn = mt_sc_good ] && [ $rc -ne 0 ]; then
			cat "$T/selfcheck.out"
			die "section() failed a good section"
		elif [ $fn != mt_sc_good ] && [ $rc -eq 0 ]; then
			cat "$T/selfcheck.out"
			die "section() passed $fn, which must fail"
		fi
	done
	rm -f /tmp/sfsmt."$MT_NAME".mt_sc_*.out
	say "ok"
}

# r CMD...: run CMD, print the command, its output and exit status.
# (Used inside section functions; never fails.)
r() {
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	printf '$ %s\n' "$*"
	[ -n "$out" ] && printf '%s\n' "$out"
	printf '[rc=%d]\n' "$rc"
	return 0
}

# Python with a prelude: t(label, fn) prints "label: result" or
# "label: ERRNAME"; dropc() drops the page cache; sha(bytes) is sha256.
PY_PRELUDE='
import os, sys, errno, hashlib, stat, time, mmap, ctypes, random, struct
def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))
def t(label, fn, *a):
    try:
        r = fn(*a)
        print("%s: %s" % (label, "ok" if r is None else r))
    except OSError as e:
        print("%s: %s" % (label, ename(e)))
def dropc():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
    except OSError:
        pass
def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]
def data_extents(fd):
    # [(start, end)] of the data, by SEEK_DATA / SEEK_HOLE
    size, off, ext = os.fstat(fd).st_size, 0, []
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO: break
            raise
        off = os.lseek(fd, d, os.SEEK_HOLE)
        ext.append((d, off))
    return ext
def readall(p):
    with open(p, "rb") as f:
        return f.read()
_libc = ctypes.CDLL(None, use_errno=True)
def linkat_follow(src, dst):
    # linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW): os.link() uses link(2)
    if _libc.linkat(-100, src.encode(), -100, dst.encode(), 0x400) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def writeall(p, b, mode=0o644):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, b)
    finally:
        os.close(fd)
'
# py [ARGS...] <<'EOF' ... EOF: run the Python on stdin after the prelude.
py() {
	local code
	code=$(cat)
	"$PY" -c "$PY_PRELUDE
$code" "$@"
}

MT_FAILED=()
mt_pass() {
	if [ ${#MT_FAILED[@]} -gt 0 ]; then
		printf 'different: %s\n' "${MT_FAILED[@]}" >&2
		die "${#MT_FAILED[@]} section(s) differ"
	fi
	say "PASS"
}
