#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_image_lock.sh - nothing is lost around images: one owner per image,
# sectorfs umount, saves that write nothing when nothing changed, saves that
# fail and are tried again, progress on a terminal.
#
#   - The race: write a file, fusermount3 -u (which returns before the
#     daemon's last save), mount the same image again at once: the file must
#     be there (the second mount waits for the first daemon to finish).
#   - Two daemons on one image: the second waits, says for whom, and gives
#     up after image_wait= with one line and nothing mounted; `sectorfs
#     image create` of an owned image does the same.  kill -9 of the owner
#     while another waits: the waiter goes on at once with the last image
#     saved.
#   - sectorfs umount: returns with the daemon gone and the image saved;
#     refuses (exit 1, still mounted) when the mount is busy.
#   - Unchanged saves write nothing (the image file keeps its inode and
#     mtime); any change makes the next save write.
#   - A full disk under the image: saves fail with one line naming the
#     image and ENOSPC, the old image stays intact, the mount keeps working,
#     sectorfs umount refuses to unmount; once there is room, the next
#     periodic save succeeds.  A final save that fails after fusermount3 -u
#     is tried again by the daemon, which keeps the tree and the image until
#     it succeeds: nothing is lost.
#   - Progress: a load with a terminal as stderr shows "loading IMAGE";
#     without a terminal, nothing.
#
# usage: mount_image_lock.sh [SECTORFS_BINARY_OR_BUILD_DIR]   (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=280
mt_init mount_image_lock "$@"
command -v script >/dev/null || die "missing tool: script (package util-linux)"

IMGDIR=$T/images
mkdir -p "$IMGDIR"
IMG=$IMGDIR/ram.img
A=$T/a
B=$T/b
mkdir -p "$A" "$B"
register_mount "$A"
register_mount "$B"

sfs() { "$SECTORFS" "$@"; }
expect_rc() { # WANT CMD...: run CMD, its exit status must be WANT; output in $OUT
	local want=$1 rc=0
	shift
	OUT=$("$@" 2>&1) || rc=$?
	[ "$rc" = "$want" ] || die "$* exited $rc, expected $want: $OUT"
}
sum_of() { sha256sum <"$1" | cut -c1-16; }

# ---- the race of fusermount3 -u and a new mount ----
say "race: unmount, then mount the same image at once"
sfs -o size=512m,image="$IMG" "$A"
head -c 64M /dev/urandom >"$A/new64"
want=$(sum_of "$A/new64")
fusermount3 -u "$A"
sfs -o size=512m,image="$IMG",image_wait=60 "$A" 2>"$T/wait.err"
[ -f "$A/new64" ] || die "the second mount lost the file written before the unmount"
[ "$(sum_of "$A/new64")" = "$want" ] || die "new64 differs after the remount"
expect_rc 0 sfs umount "$A"
no_daemon "$A" || die "sectorfs umount returned with the daemon still running"
is_mounted "$A" && die "sectorfs umount returned with $A still mounted"
expect_rc 0 sfs image check "$IMG"

# ---- two daemons, one image ----
say "two daemons: the second waits, then gives up with one line"
sfs -o size=512m,image="$IMG" "$A"
owner=$(sfs_pid "$A")
expect_rc 1 sfs -o size=512m,image="$IMG",image_wait=1 "$B"
is_mounted "$B" && die "the second daemon mounted an image in use"
[[ $OUT == *"in use by pid $owner, serving $A"* ]] || die "no owner named: $OUT"
[[ $OUT == *"gave up after 1 s"* ]] || die "no refusal line: $OUT"
[ "$(grep -c 'gave up' <<<"$OUT")" = 1 ] || die "more than one refusal line: $OUT"
cp -a "$IMG" "$T/before.img"
mkdir -p "$T/tree" && echo hello >"$T/tree/f"
expect_rc 1 sfs -o image_wait=1 image create "$IMG" "$T/tree"
[[ $OUT == *"in use by pid $owner"* ]] || die "image create did not name the owner: $OUT"
cmp -s "$IMG" "$T/before.img" || die "image create wrote an image in use"

say "a waiting mount goes on when the owner ends"
echo one >"$A/one"
sfs -o size=512m,image="$IMG",image_wait=60 "$B" 2>"$T/wait.err" &
waiter=$!
poll 10 grep -q "waiting up to 60 s for $IMG, in use by pid $owner" "$T/wait.err" ||
	die "the waiter did not say whom it waits for: $(cat "$T/wait.err")"
is_mounted "$B" && die "the waiter mounted while the owner lives"
expect_rc 0 sfs umount "$A"
wait "$waiter" || die "the waiting mount failed: $(cat "$T/wait.err")"
[ "$(cat "$B/one")" = one ] || die "the waiter did not load the owner's last save"
[ "$(grep -c waiting "$T/wait.err")" = 1 ] || die "the waiter said more than once: $(cat "$T/wait.err")"

say "kill -9 of the owner while another waits"
expect_rc 0 sfs save "$B"
echo unsaved >"$B/unsaved"
owner=$(sfs_pid "$B")
sfs -o size=512m,image="$IMG",image_wait=60 "$A" 2>"$T/wait.err" &
waiter=$!
poll 10 grep -q "in use by pid $owner" "$T/wait.err" || die "no wait: $(cat "$T/wait.err")"
kill -KILL "$owner"
wait "$waiter" || die "the waiter failed after the owner was killed: $(cat "$T/wait.err")"
[ "$(cat "$A/one")" = one ] || die "the last save was not loaded"
[ -e "$A/unsaved" ] && die "a file never saved appeared"
fusermount3 -u "$B" # the dead mount of the killed daemon
expect_rc 0 sfs umount "$A"

# ---- saves that write nothing ----
say "unchanged saves write nothing"
sfs -o size=512m,image="$IMG",noatime "$A"
expect_rc 0 sfs save "$A"
[[ $OUT == *"unchanged since the load at"* ]] || die "a save right after the load wrote: $OUT"
id1=$(stat -c '%i %Y %s' "$IMG")
cat "$A/one" >/dev/null
ls -la "$A" >/dev/null
expect_rc 0 sfs save "$A"
[[ $OUT == *"nothing to write to $IMG"* ]] || die "reads made a save write: $OUT"
[ "$(stat -c '%i %Y %s' "$IMG")" = "$id1" ] || die "an unchanged save rewrote the image"
touch "$A/one"
expect_rc 0 sfs save "$A"
[[ $OUT == "saved $A to $IMG"* ]] || die "a change did not make the save write: $OUT"
expect_rc 0 sfs save "$A"
[[ $OUT == *"unchanged since the save at"* ]] || die "second save wrote: $OUT"
rm "$IMG" # the image went away: the next save must write it again
expect_rc 0 sfs save "$A"
[[ $OUT == "saved $A to $IMG"* ]] || die "a missing image was not written: $OUT"

say "sectorfs umount of a busy mount refuses"
( cd "$A" && exec sleep 60 ) &
busy=$!
sleep 0.3
expect_rc 1 sfs umount "$A"
[[ $OUT == *"is busy"*"not unmounted"* ]] || die "busy: $OUT"
is_mounted "$A" || die "a busy mount was unmounted"
pid_alive "$(sfs_pid "$A")" || die "the daemon ended"
kill "$busy"
wait "$busy" 2>/dev/null || true
expect_rc 0 sfs umount "$A"

# ---- a full disk under the image ----
say "a full disk: saves fail cleanly, the mount keeps working, later saves succeed"
SMALL=$T/small
mkdir -p "$SMALL"
mount_tmpfs "$SMALL" size=24m
SIMG=$SMALL/s.img
sfs -o size=64m,image="$SIMG",save_interval=1 "$A"
head -c 3M /dev/urandom >"$A/first"
expect_rc 0 sfs save "$A"
good=$(sum_of "$SIMG")
head -c 16M /dev/zero >"$SMALL/filler"
head -c 5M /dev/urandom >"$A/second"
expect_rc 1 sfs save "$A"
[[ $OUT == *"$SIMG"*"No space left on device"* ]] || die "no ENOSPC line naming the image: $OUT"
[ "$(wc -l <<<"$OUT")" = 1 ] || die "more than one line: $OUT"
[ "$(sum_of "$SIMG")" = "$good" ] || die "a failed save changed the image"
ls -a "$SMALL" | grep -q '\.tmp\.' && die "a failed save left a temporary file"
echo still >"$A/works" && [ "$(cat "$A/works")" = still ] || die "the mount stopped working"
expect_rc 1 sfs umount "$A"
[[ $OUT == *"No space left on device"*"still mounted"* ]] || die "umount: $OUT"
is_mounted "$A" || die "sectorfs umount unmounted after a failed save"
rm "$SMALL/filler"
poll 10 eval '[ "$(sum_of "$SIMG")" != "$good" ]' || die "the periodic save did not retry"
expect_rc 0 sfs umount "$A"
sfs -o size=64m,image="$SIMG" "$A"
[ -s "$A/second" ] && [ -s "$A/first" ] && [ -f "$A/works" ] || die "saved data missing"

say "a final save that fails is tried again until it succeeds"
head -c 6M /dev/urandom >"$A/third"
want=$(sum_of "$A/third")
owner=$(sfs_pid "$A")
head -c 6M /dev/zero >"$SMALL/filler"
fusermount3 -u "$A"
sleep 1
pid_alive "$owner" || die "the daemon gave up the tree after a failed final save"
expect_rc 1 sfs -o size=64m,image="$SIMG",image_wait=1 "$B"
[[ $OUT == *"the final save failed"*"trying again"* ]] || die "the waiter was not told why: $OUT"
rm "$SMALL/filler"
poll 20 pid_gone "$owner" || die "the daemon did not end once its save succeeded"
sfs -o size=64m,image="$SIMG" "$B"
[ "$(sum_of "$B/third")" = "$want" ] || die "the retried final save lost data"
expect_rc 0 sfs umount "$B"

# ---- progress ----
say "progress on a terminal, and only there"
expect_rc 0 script -qec "$SECTORFS -o size=512m,image=$IMG $A" "$T/typescript"
grep -aq "sectorfs: loading $IMG:" "$T/typescript" || die "no progress: $(cat -v "$T/typescript")"
expect_rc 0 sfs umount "$A"
sfs -o size=512m,image="$IMG" "$A" 2>"$T/quiet.err"
[ -s "$T/quiet.err" ] && die "progress without a terminal: $(cat "$T/quiet.err")"
expect_rc 0 sfs umount "$A"
mt_pass
