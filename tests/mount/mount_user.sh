#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_user.sh - an ordinary user mounts sectorfs on a directory of theirs
# (through the setuid fusermount3), uses it, asks for stats and unmounts it;
# and root mounts it through mount.fuse3 (as mount -t fuse.sectorfs does) and
# umount.  A tmpfs mounted beside, as the same user would see it, for the
# owner and mode of the root directory.
#
# usage: mount_user.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=150
mt_init mount_user "$@"
ensure_user
fuse_dev_world
[ -u "$(command -v fusermount3)" ] || die "fusermount3 is not setuid root"
U="as_user $SFS_UID $SFS_UID"

# The user must be able to run the binary and reach the directory.
$U test -x "$SECTORFS" || die "user sfstest cannot execute $SECTORFS"

UM=$T/usermnt
mkdir "$UM"
chown sfstest:sfstest "$UM"
register_mount "$UM"
TM=$T/tmpfs
mkdir "$TM"
chown sfstest:sfstest "$TM"
mount_tmpfs "$TM" "size=16m,uid=$SFS_UID,gid=$SFS_UID"

printf 'user mounts sectorfs on its own directory ... '
rc=0
out=$($U "$SECTORFS" -o size=16m "$UM" 2>&1) || rc=$?
[ $rc -eq 0 ] || die "as sfstest: sectorfs -o size=16m $UM: exit $rc: $out"
is_mounted "$UM" || die "as sfstest: sectorfs exited 0 but $UM is not mounted"
[ "$(mount_type "$UM")" = fuse.sectorfs ] || die "type is $(mount_type "$UM")"
opts=$(awk -v m="$UM" '$5 == m { print $NF }' /proc/self/mountinfo)
[[ ",$opts," == *",user_id=$SFS_UID,"* ]] || die "mount options '$opts' lack user_id=$SFS_UID"
pid=$(sfs_pid "$UM")
[ "$(stat -c %u "/proc/$pid")" = "$SFS_UID" ] || die "daemon $pid does not run as uid $SFS_UID"
say "ok (daemon pid $pid, $opts)"

printf 'root directory owner and mode like tmpfs uid=/gid= ... '
got=$($U stat -c '%U:%G %a' "$UM")
want=$(stat -c '%U:%G' "$TM")
[ "$got" = "$want 1777" ] || die "root dir of the user's sectorfs is '$got', want '$want 1777'"
say "$got"

printf 'user writes and reads files ... '
$U sh -c "echo hello > '$UM/f' && head -c 3000000 /dev/urandom > '$UM/big' && mkdir '$UM/d' && ln -s f '$UM/l'" ||
	die "as sfstest: writing to $UM failed"
[ "$($U cat "$UM/f")" = hello ] || die "as sfstest: $UM/f does not read back 'hello'"
[ "$($U cat "$UM/l")" = hello ] || die "as sfstest: $UM/l does not read back 'hello'"
s1=$($U sha256sum "$UM/big" | cut -c1-64)
$U cp "$UM/big" "$UM/big2"
s2=$($U sha256sum "$UM/big2" | cut -c1-64)
[ "$s1" = "$s2" ] || die "as sfstest: copy of big reads back differently"
[ "$($U stat -c %U "$UM/f")" = sfstest ] || die "new file not owned by sfstest"
say "ok"

printf 'others (root included) are kept out without allow_other ... '
rc=0
out=$(ls "$UM" 2>&1) || rc=$?
[ $rc -ne 0 ] && [[ "$out" == *"Permission denied"* ]] ||
	die "root could list a user's FUSE mount without allow_other (rc=$rc: $out)"
say "ok ($out)"

printf 'sectorfs stats as the user ... '
rc=0
out=$($U "$SECTORFS" stats "$UM" 2>&1) || rc=$?
[ $rc -eq 0 ] || die "as sfstest: sectorfs stats $UM: exit $rc: $out"
[ -n "$out" ] || die "sectorfs stats printed nothing"
say "ok"
printf '%s\n' "$out" | sed 's/^/    /'

printf 'allow_other is refused to the user (no user_allow_other) ... '
UM2=$T/usermnt2
mkdir "$UM2"
chown sfstest:sfstest "$UM2"
register_mount "$UM2"
rc=0
out=$($U "$SECTORFS" -o allow_other "$UM2" 2>&1) || rc=$?
if grep -q '^[[:space:]]*user_allow_other' /etc/fuse.conf; then
	say "skipped (user_allow_other is set in /etc/fuse.conf)"
	force_unmount "$UM2"
else
	[ $rc -ne 0 ] || die "as sfstest: -o allow_other mounted without user_allow_other"
	is_mounted "$UM2" && die "as sfstest: -o allow_other failed but $UM2 is mounted"
	[ -z "$(sfs_pids "$UM2")" ] || die "a daemon is left running for $UM2"
	say "refused (exit $rc: $out)"
fi

printf 'user unmounts with fusermount3 -u ... '
rc=0
out=$($U fusermount3 -u "$UM" 2>&1) || rc=$?
[ $rc -eq 0 ] || die "as sfstest: fusermount3 -u $UM: exit $rc: $out"
wait_daemon_gone "$UM" 60 || die "daemon still running 60 s after fusermount3 -u"
is_mounted "$UM" && die "$UM still in mountinfo after fusermount3 -u"
mount | grep -qF " $UM " && die "mount still lists $UM"
say "ok"

printf 'another user cannot unmount it, nor save it ... '
$U "$SECTORFS" -o size=16m "$UM" || die "remount as sfstest failed"
rc=0
out=$(as_user "$SFS_UID2" "$SFS_UID2" fusermount3 -u "$UM" 2>&1) || rc=$?
[ $rc -ne 0 ] || die "uid $SFS_UID2 unmounted sfstest's mount"
is_mounted "$UM" || die "$UM gone after a refused unmount"
rc=0
save_out=$(as_user "$SFS_UID2" "$SFS_UID2" "$SECTORFS" save "$UM" 2>&1) || rc=$?
[ $rc -ne 0 ] && [ "$(printf '%s\n' "$save_out" | wc -l)" -eq 1 ] &&
	[[ "$save_out" == *"only root or the user who mounted it may save it" ]] ||
	die "sectorfs save by another user: want one line saying who may, got exit $rc: $save_out"
$U fusermount3 -u "$UM" || die "fusermount3 -u as sfstest failed"
wait_daemon_gone "$UM" 60 || die "daemon still running 60 s after the second unmount"
say "refused ($out)"

# ---- root, through mount.fuse3 (what mount -t fuse.sectorfs runs) ----
D=$T/viamount
mkdir "$D"
register_mount "$D"
printf 'mount.fuse3 sectorfs DIR -t fuse.sectorfs -o size=16m,mode=1777 ... '
helper=$(command -v mount.fuse3 || true)
[ -n "$helper" ] || die "mount.fuse3 missing (package fuse3)"
rc=0
# mount -t fuse.sectorfs runs exactly this, but util-linux's mount clears
# PATH first (and mount.fuse3 finds the daemon through the shell's PATH), so
# with mount(8) only an installed sectorfs would be found: the helper is
# run directly, with the build directory on PATH.  From /: a source naming
# a file in the working directory would be made absolute.
out=$(cd / && PATH="$(dirname "$SECTORFS"):$PATH" "$helper" sectorfs "$D" -t fuse.sectorfs \
	-o size=16m,mode=1777 2>&1) || rc=$?
[ $rc -eq 0 ] || die "mount.fuse3 -t fuse.sectorfs: exit $rc: $out"
is_mounted "$D" || die "mount.fuse3 -t fuse.sectorfs returned 0 but $D is not mounted"
line=$(df -T -B1 "$D" | tail -1)
read -r src type total _ <<<"$line"
[ "$type" = fuse.sectorfs ] || die "df -T shows type '$type': $line"
[ "$src" = sectorfs ] || die "df -T shows source '$src': $line"
[ $((total - (16 << 20))) -le 4096 ] && [ $(((16 << 20) - total)) -le 4096 ] ||
	die "df shows total $total, want 16 MiB"
[ "$(stat -c %a "$D")" = 1777 ] || die "root dir mode $(stat -c %a "$D"), want 1777"
echo via-mount >"$D/x"
[ "$(cat "$D/x")" = via-mount ] || die "file on the mount.fuse3 mount does not read back"
say "ok ($line)"

printf 'umount DIR ... '
pid=$(sfs_pid "$D")
umount "$D" || die "umount $D failed"
is_mounted "$D" && die "$D still mounted after umount"
wait_daemon_gone "$D" 60 || die "daemon $pid still running 60 s after umount"
say "ok"

printf 'source and fsname= show in mountinfo and df ... '
sectorfs_src() { awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1), $(i + 2) }' /proc/self/mountinfo; }
rc=0
out=$(timeout 30 "$SECTORFS" mysource "$D" 2>&1) || rc=$?
[ $rc -eq 0 ] && is_mounted "$D" || die "sectorfs mysource $D: exit $rc: $out"
got=$(sectorfs_src "$D")
[ "$got" = "fuse.sectorfs mysource" ] || die "sectorfs SOURCE: mountinfo shows '$got'"
unmount_sfs "$D"
mount_sfs "$D" fsname=named
got=$(sectorfs_src "$D")
[ "$got" = "fuse.sectorfs named" ] || die "-o fsname=named: mountinfo shows '$got'"
df "$D" | tail -1 | grep -q '^named ' || die "df does not show fsname: $(df "$D" | tail -1)"
unmount_sfs "$D"
say "ok"

mt_pass
