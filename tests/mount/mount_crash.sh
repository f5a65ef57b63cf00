#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_crash.sh - a daemon killed with SIGKILL leaves its mount point
# reporting ENOTCONN until fusermount3 -u (or umount -l) clears it, and a
# fresh mount on the same point works; SIGTERM and SIGINT unmount cleanly
# (the foreground daemon then exits 0).  A tmpfs beside it: the same
# SIGKILL-then-remount cycle must leave it alone.
#
# usage: mount_crash.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=150
mt_init mount_crash "$@"

TM=$T/tmpfs
mount_tmpfs "$TM" size=16m
echo tmpfs-data >"$TM/keep"
CM=$T/crash
mount_sfs "$CM" size=64m

printf 'write a file, then kill -9 the daemon ... '
head -c 5000000 /dev/urandom >"$CM/data"
echo hello >"$CM/small"
pid=$(sfs_pid "$CM")
# the pid the way an administrator would find it
pg=$(pgrep -f -- "$CM\$" | while read -r p; do [ "$(cat /proc/$p/comm)" = "$SFS_COMM" ] && echo "$p"; done)
[ "$pg" = "$pid" ] || die "pgrep -f $CM finds '$pg', expected $pid"
kill -9 "$pid"
poll 60 pid_gone "$pid" || die "daemon $pid still alive 60 s after SIGKILL"
say "killed $pid"

printf 'the mount point reports ENOTCONN ... '
rc=0
out=$(stat "$CM" 2>&1) || rc=$?
[ $rc -ne 0 ] || die "stat $CM succeeded after the daemon died"
dead_error "$out" || die "stat $CM: '$out', want ENOTCONN"
rc=0
out=$(ls "$CM" 2>&1) || rc=$?
[ $rc -ne 0 ] && dead_error "$out" || die "ls $CM: rc=$rc '$out'"
rc=0
out=$(cat "$CM/small" 2>&1) || rc=$?
[ $rc -ne 0 ] && dead_error "$out" || die "cat $CM/small: rc=$rc '$out'"
is_mounted "$CM" || die "$CM vanished from mountinfo by itself"
say "ok ($out)"

printf 'fusermount3 -u clears it ... '
rc=0
out=$(fusermount3 -u "$CM" 2>&1) || rc=$?
how="fusermount3 -u"
if [ $rc -ne 0 ]; then
	say "(fusermount3 -u failed: $out; trying umount -l) "
	umount -l "$CM" || die "neither fusermount3 -u nor umount -l clear $CM"
	how="umount -l"
fi
is_mounted "$CM" && die "$CM still mounted after $how"
stat "$CM" >/dev/null || die "stat $CM fails after $how"
[ -z "$(ls -A "$CM")" ] || die "$CM is not the empty directory below after $how"
say "ok ($how)"

printf 'a fresh mount on the same point works ... '
mount_sfs "$CM" size=64m
[ -z "$(ls -A "$CM")" ] || die "fresh mount is not empty: $(ls -A "$CM")"
head -c 3000000 /dev/urandom >"$T/src"
cp "$T/src" "$CM/again"
drop_caches
cmp -s "$T/src" "$CM/again" || die "file on the fresh mount reads back differently"
[ "$(cat "$TM/keep")" = tmpfs-data ] || die "the tmpfs beside lost its file"
say "ok (pid $(sfs_pid "$CM"))"

printf 'SIGTERM to the background daemon unmounts ... '
pid=$(sfs_pid "$CM")
kill -TERM "$pid"
poll 60 pid_gone "$pid" || die "daemon $pid still alive 60 s after SIGTERM"
is_mounted "$CM" && die "$CM still mounted after SIGTERM (daemon gone)"
say "ok"

# fg_signal SIG: a foreground daemon (-f), started with default signal
# dispositions, must unmount and exit 0 on SIG.
fg_signal() {
	local sig=$1 pid rc n
	printf 'SIG%s to a foreground daemon (-f): clean unmount, exit status 0 ... ' "$sig"
	env --default-signal "$SECTORFS" -f -o size=16m "$CM" 2>"$T/fg.err" &
	pid=$!
	n=0
	until is_mounted "$CM"; do
		n=$((n + 1))
		pid_alive "$pid" || die "sectorfs -f exited before mounting: $(cat "$T/fg.err")"
		[ $n -lt 1200 ] || die "sectorfs -f did not mount within 60 s"
		sleep 0.05
	done
	echo x >"$CM/x"
	kill "-$sig" "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ $rc -eq 0 ] || die "sectorfs -f exited $rc on SIG$sig (stderr: $(cat "$T/fg.err"))"
	is_mounted "$CM" && die "$CM still mounted after SIG$sig"
	say "ok"
}
fg_signal TERM
fg_signal INT

printf 'SIGTERM while a file is open and being written ... '
mount_sfs "$CM" size=64m
pid=$(sfs_pid "$CM")
( exec 3>"$CM/open"; echo partial >&3; sleep 3 ) &
holder=$!
sleep 0.3
kill -TERM "$pid"
poll 60 pid_gone "$pid" || die "daemon $pid still alive 60 s after SIGTERM with a file open"
wait "$holder" 2>/dev/null || true
poll 60 not_mounted "$CM" ||
	die "$CM still mounted 60 s after the daemon ended on SIGTERM (file was open)"
say "ok"

force_unmount "$TM"
mt_pass
