#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_remount.sh - changing a live mount, and mounting over a mount
# point, against a real tmpfs doing the same:
#   - sectorfs mounts over a tmpfs as tmpfs does (root, and an ordinary
#     user over a tmpfs of theirs, through fusermount3); unmounting shows
#     the tmpfs below again.  A live sectorfs at that place and a dead
#     FUSE mount are refused with one line;
#   - mount -o remount, run as util-linux runs it (mount.fuse3 with the
#     mount's options merged with the new ones): size= and nr_inodes=
#     change at once (df), limits below what is in use fail and change
#     nothing; ro makes every write fail with EROFS and rw brings writes
#     back, step by step as on a tmpfs remounted the same way;
#   - sectorfs resize by the user who mounted (another user is refused);
#   - size= is rounded up to whole sectors as tmpfs rounds it to pages;
#   - a mount with image= mounted read-only is not saved, and is saved
#     once it was remounted read-write.
#
# usage: mount_remount.sh [SECTORFS_BINARY_OR_BUILD_DIR]   (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=200
mt_init mount_remount "$@"
ensure_user

helper=$(command -v mount.fuse3 || true)
[ -n "$helper" ] || die "mount.fuse3 missing (package fuse3)"

# remount MP OPTIONS: what `mount -o remount,OPTIONS MP` does.  A tmpfs
# through mount(8) itself; a sectorfs through mount.fuse3, with the list
# util-linux hands it (this mount's options, "remount", the filesystem's
# options, then the new ones).  util-linux's mount clears PATH, so mount(8)
# finds only an installed sectorfs: the helper is run directly with the
# build directory on PATH, as mount_user.sh does.  Prints the exit status
# and, for a failure, stderr's line count and first line.
remount() {
	local mp=$1 new=$2 rc=0 mopts sopts err
	case "$(mount_type "$mp")" in
	tmpfs) mount -o "remount,$new" "$mp" 2>"$T/remount.err" || rc=$? ;;
	fuse.sectorfs)
		mopts=$(awk -v m="$mp" '$5 == m { o = $6 } END { print o }' /proc/self/mountinfo)
		sopts=$(awk -v m="$mp" '$5 == m { print $NF }' /proc/self/mountinfo |
			tr , '\n' | grep -Ev '^(rw|ro)$' | paste -sd,)
		(cd / && PATH="$(dirname "$SECTORFS"):$PATH" "$helper" sectorfs "$mp" -t fuse.sectorfs \
			-o "$mopts,remount,$sopts,$new") 2>"$T/remount.err" || rc=$?
		;;
	*) die "remount: nothing known at $mp" ;;
	esac
	REMOUNT_RC=$rc
	REMOUNT_ERR=$(head -1 "$T/remount.err")
	REMOUNT_LINES=$(wc -l <"$T/remount.err")
}

# df's size and inode total, as tmpfs and sectorfs both give them.
limits() { df -B1 --output=size,itotal "$1" | tail -1 | awk '{ print "size " $1 ", inodes " $2 }'; }

# ---- mounting over a mount point ----

printf 'root mounts sectorfs over a tmpfs ... '
OVER=$T/over
mount_tmpfs "$OVER" size=1m
echo below >"$OVER/below"
mount_sfs "$OVER" size=8m
[ "$(mount_type "$OVER")" = fuse.sectorfs ] || die "the top mount at $OVER is $(mount_type "$OVER")"
[ -z "$(ls -A "$OVER")" ] || die "the new sectorfs at $OVER is not empty: $(ls -A "$OVER")"
echo above >"$OVER/above"
"$SECTORFS" stats "$OVER" >/dev/null || die "stats of the sectorfs over a tmpfs failed"
unmount_sfs_top() {
	fusermount3 -u "$1" || die "fusermount3 -u $1 failed"
	wait_daemon_gone "$1" 5 || die "the daemon of $1 still runs after its unmount"
}
unmount_sfs_top "$OVER"
[ "$(mount_type "$OVER")" = tmpfs ] || die "after the unmount $OVER is $(mount_type "$OVER"), not the tmpfs"
[ "$(cat "$OVER/below")" = below ] && [ ! -e "$OVER/above" ] || die "the tmpfs below changed"
say "ok"

printf 'the ordinary user mounts over a tmpfs of theirs ... '
fuse_dev_world
UOVER=$T/uover
mkdir "$UOVER"
chown sfstest:sfstest "$UOVER"
mount_tmpfs "$UOVER" "size=1m,uid=$SFS_UID,gid=$SFS_UID"
register_mount "$UOVER"
U="as_user $SFS_UID $SFS_UID"
rc=0
out=$($U "$SECTORFS" -o size=8m "$UOVER" 2>&1) || rc=$?
[ $rc -eq 0 ] || die "as sfstest: sectorfs over a tmpfs: exit $rc: $out"
[ "$(mount_type "$UOVER")" = fuse.sectorfs ] || die "the top mount at $UOVER is $(mount_type "$UOVER")"
$U sh -c "echo x > '$UOVER/x'" || die "as sfstest: cannot write to the sectorfs over the tmpfs"
say "ok"

printf 'sectorfs resize by the user who mounted ... '
rc=0
out=$($U "$SECTORFS" resize "$UOVER" size=16m,nr_inodes=100 2>&1) || rc=$?
[ $rc -eq 0 ] || die "as sfstest: sectorfs resize: exit $rc: $out"
[ "$($U df -B1 --output=size,itotal "$UOVER" | tail -1 | tr -s ' ')" = " 16777216 100" ] ||
	die "after resize df shows $($U df -B1 --output=size,itotal "$UOVER" | tail -1)"
say "ok ($out)"

printf 'another user may not resize it ... '
rc=0
out=$(as_user "$SFS_UID2" "$SFS_UID2" "$SECTORFS" resize "$UOVER" size=4m 2>&1) || rc=$?
[ $rc -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ "$out" == "sectorfs: "* ]] ||
	die "as sfstest2: sectorfs resize: exit $rc: $out"
[ "$($U df -B1 --output=size "$UOVER" | tail -1 | tr -d ' ')" = 16777216 ] ||
	die "a refused resize changed the size"
say "refused ($out)"

printf 'the user cannot change the flags of a FUSE mount (mount(2) needs root) ... '
rc=0
out=$($U "$SECTORFS" -o remount,ro "$UOVER" 2>&1) || rc=$?
[ $rc -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ "$out" == *"needs root"* ]] ||
	die "as sfstest: -o remount,ro: exit $rc: $out"
say "refused ($out)"
$U fusermount3 -u "$UOVER" || die "as sfstest: fusermount3 -u failed"
wait_daemon_gone "$UOVER" 5 || die "the daemon of $UOVER still runs"
[ "$(mount_type "$UOVER")" = tmpfs ] || die "the user's tmpfs is not back at $UOVER"

# bad_mount WHAT DIR WANT: sectorfs on DIR must fail with one line that
# contains WANT, and mount nothing.
bad_mount() {
	local rc=0 before after
	before=$(awk -v t="$T/" 'index($5, t) == 1' /proc/self/mountinfo)
	timeout 20 "$SECTORFS" -o size=1m "$2" >"$T/out" 2>"$T/err" || rc=$?
	after=$(awk -v t="$T/" 'index($5, t) == 1' /proc/self/mountinfo)
	[ $rc -ne 0 ] || die "$1: sectorfs on $2 exited 0"
	[ "$before" = "$after" ] || die "$1: what is mounted under $T changed"
	[ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "$3" "$T/err" ||
		die "$1: want one line with '$3', got: $(cat "$T/err")"
	say "refused ($(cat "$T/err"))"
}

printf 'a live sectorfs at the place is refused ... '
LIVE=$T/live
mount_sfs "$LIVE" size=1m
bad_mount "live sectorfs" "$LIVE" "is already a sectorfs mount"

printf 'a dead FUSE mount is refused ... '
DEAD=$T/dead
mount_sfs "$DEAD" size=1m
kill -KILL "$(sfs_pid "$DEAD")"
wait_daemon_gone "$DEAD" 5 || die "the killed daemon of $DEAD is still there"
bad_mount "dead mount" "$DEAD" "is a dead mount: clear it with fusermount3 -u"
force_unmount "$DEAD"
unmount_sfs "$LIVE"

# ---- limits ----

TM=$T/tmpfs
SM=$T/sectorfs
mount_tmpfs "$TM" size=8m,nr_inodes=100
mount_sfs "$SM" size=8m,nr_inodes=100
for d in "$TM" "$SM"; do
	head -c 3000000 /dev/zero >"$d/f"
	mkdir "$d/d1" "$d/d2"
done

printf 'remount size= and nr_inodes= up: df at once ... '
for d in "$TM" "$SM"; do
	remount "$d" size=16m,nr_inodes=200
	[ "$REMOUNT_RC" -eq 0 ] || die "remount of $(mount_type "$d") $d: exit $REMOUNT_RC: $REMOUNT_ERR"
done
[ "$(limits "$SM")" = "$(limits "$TM")" ] || die "after remount: sectorfs $(limits "$SM"), tmpfs $(limits "$TM")"
[ "$(limits "$SM")" = "size 16777216, inodes 200" ] || die "after remount: sectorfs $(limits "$SM")"
say "ok ($(limits "$SM") on both)"

printf 'remount size= only: nr_inodes= stays ... '
for d in "$TM" "$SM"; do
	remount "$d" size=12m
	[ "$REMOUNT_RC" -eq 0 ] || die "remount size=12m of $d: exit $REMOUNT_RC: $REMOUNT_ERR"
done
[ "$(limits "$SM")" = "$(limits "$TM")" ] || die "sectorfs $(limits "$SM"), tmpfs $(limits "$TM")"
say "ok ($(limits "$SM"))"

for what in size=1m nr_inodes=2; do
	printf 'remount %s, below what is in use, fails and changes nothing ... ' "$what"
	for d in "$TM" "$SM"; do
		remount "$d" "$what"
		[ "$REMOUNT_RC" -ne 0 ] || die "remount $what of $(mount_type "$d") succeeded"
	done
	[ "$REMOUNT_LINES" -eq 1 ] && [[ "$REMOUNT_ERR" == "sectorfs: cannot resize "*" in use" ]] ||
		die "remount $what: want one line saying what is in use, got: $(cat "$T/remount.err")"
	[ "$(limits "$SM")" = "$(limits "$TM")" ] || die "sectorfs $(limits "$SM"), tmpfs $(limits "$TM")"
	say "refused ($REMOUNT_ERR)"
done

printf 'remount size=0,nr_inodes=0: no limits ... '
for d in "$TM" "$SM"; do
	remount "$d" size=0,nr_inodes=0
	[ "$REMOUNT_RC" -eq 0 ] || die "remount size=0 of $d: exit $REMOUNT_RC: $REMOUNT_ERR"
done
[ "$(limits "$SM")" = "$(limits "$TM")" ] || die "sectorfs $(limits "$SM"), tmpfs $(limits "$TM")"
say "ok ($(limits "$SM"))"

printf 'an option nobody knows is refused by a remount too ... '
remount "$SM" size=4m,frobnicate
[ "$REMOUNT_RC" -ne 0 ] && [ "$REMOUNT_LINES" -eq 1 ] && [[ "$REMOUNT_ERR" == *frobnicate* ]] ||
	die "remount with frobnicate: exit $REMOUNT_RC: $(cat "$T/remount.err")"
[ "$(limits "$SM")" = "$(limits "$TM")" ] || die "a refused remount changed the limits"
say "refused ($REMOUNT_ERR)"

printf 'sectorfs -o remount on a tmpfs is refused ... '
rc=0
out=$("$SECTORFS" -o remount,size=4m "$TM" 2>&1) || rc=$?
[ $rc -ne 0 ] && [[ "$out" == *"is not a sectorfs mount" ]] || die "exit $rc: $out"
say "refused ($out)"

printf 'size=1 is one page on tmpfs, one sector on sectorfs ... '
T1=$T/tmpfs1
S1=$T/sectorfs1
mount_tmpfs "$T1" size=1
mount_sfs "$S1" size=1
[ "$(limits "$S1" | cut -d, -f1)" = "$(limits "$T1" | cut -d, -f1)" ] ||
	die "size=1: sectorfs $(limits "$S1"), tmpfs $(limits "$T1")"
echo small >"$S1/f" || die "size=1: a small file does not fit"
for d in "$T1" "$S1"; do
	remount "$d" size=10000
	[ "$REMOUNT_RC" -eq 0 ] || die "remount size=10000 of $d: $REMOUNT_ERR"
done
[ "$(limits "$S1" | cut -d, -f1)" = "$(limits "$T1" | cut -d, -f1)" ] ||
	die "size=10000: sectorfs $(limits "$S1"), tmpfs $(limits "$T1")"
say "ok ($(limits "$T1" | cut -d, -f1) on both, after size=10000)"
unmount_sfs "$S1"

# ---- ro and rw ----

# What a program sees of a mount remounted read-only and back, the same
# steps on tmpfs and sectorfs.
ro_rw() {
	echo data >f2
	exec 3<f2    # a reader keeps the remount possible
	remount "$MNT" ro
	echo "remount ro: rc=$REMOUNT_RC"
	grep -q "^[^ ]* [^ ]* [^ ]* [^ ]* $MNT ro," /proc/self/mountinfo && echo "mountinfo: ro"
	r touch new
	r sh -c 'echo more >> f2'
	r sh -c 'echo over > f2'
	r truncate -s 0 f2
	r mkdir d3
	r rmdir d1
	r rm f
	r mv f2 f3
	r ln -s f2 l
	r ln f2 h
	r chmod 600 f2
	r touch -d @1 f2
	r setfattr -n user.x -v 1 f2
	r mkfifo p
	r cat f2
	r ls
	r python3 -c 'import os; os.open("f2", os.O_WRONLY)'
	remount "$MNT" rw
	echo "remount rw: rc=$REMOUNT_RC"
	r sh -c 'echo more >> f2'
	r cat f2
	r touch new
	r mkdir d3
	r mv f2 f3
	r ls
	# a file open for writing keeps a remount to read-only from happening
	exec 4>>f3
	remount "$MNT" ro
	echo "remount ro with a writer: rc=$([ "$REMOUNT_RC" -eq 0 ] && echo 0 || echo failed)"
	exec 4>&-
	r touch after-busy
	exec 3<&-
}
section "ro makes every write fail with EROFS, rw brings writes back" ro_rw

printf 'ro with -o writeback: what the kernel held is written first ... '
WB=$T/wb
mount_sfs "$WB" size=64m,writeback
head -c 5000000 /dev/urandom >"$T/src"
cp "$T/src" "$WB/f"
remount "$WB" ro
[ "$REMOUNT_RC" -eq 0 ] || die "remount ro of the writeback mount: $REMOUNT_ERR"
drop_caches
cmp -s "$T/src" "$WB/f" || die "after remount ro the writeback mount's file reads back differently"
unmount_sfs "$WB"
say "ok"

# ---- images: read-only is not saved, read-write again is ----

printf 'image=, mounted ro: not saved; remounted rw and written: saved ... '
IMG=$T/ram.img
"$SECTORFS" image create "$IMG" >/dev/null || die "sectorfs image create failed"
before=$(stat -c %Y.%s "$IMG")
IM=$T/imagemnt
mount_sfs "$IM" "image=$IMG,ro"
unmount_sfs "$IM"
[ "$(stat -c %Y.%s "$IMG")" = "$before" ] || die "a read-only mount saved its image"
mount_sfs "$IM" "image=$IMG,ro"
remount "$IM" rw
[ "$REMOUNT_RC" -eq 0 ] || die "remount rw of the image mount: $REMOUNT_ERR"
echo kept >"$IM/kept" || die "cannot write after remount rw"
remount "$IM" ro
[ "$REMOUNT_RC" -eq 0 ] || die "remount ro of the image mount: $REMOUNT_ERR"
unmount_sfs "$IM"
mount_sfs "$IM" "image=$IMG"
[ "$(cat "$IM/kept" 2>&1)" = kept ] || die "what was written after remount rw was not saved"
unmount_sfs "$IM"
say "ok"

mt_pass
