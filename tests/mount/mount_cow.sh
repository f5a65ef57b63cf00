#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_cow.sh - copies that share memory, through a real mount.
#
# 1. `cp` of a 256 MiB file (coreutils' cp: FICLONE is refused, then
#    copy_file_range, which the daemon answers by sharing sectors): not one
#    sector more in use, the daemon's RSS grows by less than 4 MiB, both
#    files read the same and count the same blocks; then writes to either
#    side diverge, each costing only the sectors it touches.  On a full
#    mount, a write into shared data fails with ENOSPC and changes nothing.
# 2. `sectorfs clone` of /usr/include (plus hard links, xattrs, ACLs,
#    symlinks, fifos, a device, owners and set-id bits added to it) against
#    `cp -a` of the same tree in the same mount: the same contents, stat
#    fields (type, mode, owner, size, blocks, device, atime and mtime),
#    xattrs and ACLs, readdir order and hard-link structure; the clone costs
#    no sector and shares every one.  A tree with another filesystem
#    mounted below it is refused (one line, nothing made): the daemon
#    would copy what the mount hides, not what cp -a sees.
# 3. As an ordinary user (allow_other): a clone of a tree the user can read
#    is the user's, as cp -a makes it; one with an unreadable file, or into
#    a directory the user cannot write, or past nr_inodes, fails with one
#    line and exit 1 and leaves nothing behind.
# 4. An image of copies (-o image=): saved with the data once, mounted
#    again with the same sectors shared.
#
# usage: mount_cow.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=300
mt_init mount_cow "$@"

avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
[ "$avail_kb" -gt $((2 * 1024 * 1024)) ] || die "needs 2 GiB of available memory, have $((avail_kb / 1024)) MiB"
[ -d /usr/include ] || { say "no /usr/include: skipped"; exit 77; }
for tool in setfacl getfacl setfattr cmp; do
	command -v $tool >/dev/null || die "missing tool: $tool (scripts/deps.sh installs it)"
done
ensure_user

rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
# stat_of MOUNT NAME: a number from `sectorfs stats` ("sectors", "shared").
stat_of() {
	"$SECTORFS" stats "$1" | awk -v k="$2:" '$1 == k { print $2 }'
}

SM=$T/sfs
mount_sfs "$SM" size=1g,noatime,allow_other,mode=0755
pid=$(sfs_pid "$SM")

# ---- 1. cp of a large file ----

printf 'cp of 256 MiB shares its sectors ... '
"$PY" -c '
import sys, random
r = random.Random(7)
out = sys.stdout.buffer
for i in range(256):
    out.write(r.randbytes(1 << 20))
' >"$SM/big"
sync
sec0=$(stat_of "$SM" sectors)
rss0=$(rss "$pid")
cp "$SM/big" "$SM/copy"
sec1=$(stat_of "$SM" sectors)
rss1=$(rss "$pid")
shared=$(stat_of "$SM" shared)
cmp "$SM/big" "$SM/copy" || die "the copy differs from its source"
[ "$sec1" = "$sec0" ] || die "cp took sectors: $sec0 in use before, $sec1 after"
[ "$shared" = 65536 ] || die "after cp, sharing saves $shared sectors, want 65536"
[ $((rss1 - rss0)) -lt $((4 << 20)) ] || die "cp grew the daemon by $(mib $((rss1 - rss0)))"
[ "$(stat -c %b "$SM/copy")" = "$(stat -c %b "$SM/big")" ] ||
	die "st_blocks: copy $(stat -c %b "$SM/copy"), source $(stat -c %b "$SM/big")"
say "ok ($sec1 sectors in use before and after, RSS +$(mib $((rss1 - rss0))))"

printf 'writes on both sides diverge, a sector each ... '
py "$SM" <<'EOF'
import os
m = sys.argv[1]
def put(p, off, b):
    fd = os.open(p, os.O_WRONLY)
    os.pwrite(fd, b, off)
    os.close(fd)
put(m + "/copy", 5 << 20, b"COPY" * 10)
put(m + "/big", (5 << 20) + 4096, b"BIG!" * 10)
a, b = readall(m + "/big"), readall(m + "/copy")
assert a[5 << 20:(5 << 20) + 40] != b"COPY" * 10
assert b[5 << 20:(5 << 20) + 40] == b"COPY" * 10
assert a[(5 << 20) + 4096:(5 << 20) + 4136] == b"BIG!" * 10
assert b[(5 << 20) + 4096:(5 << 20) + 4136] != b"BIG!" * 10
diff = [i for i in range(0, len(a), 4096) if a[i:i + 4096] != b[i:i + 4096]]
assert diff == [5 << 20, (5 << 20) + 4096], diff
EOF
sec2=$(stat_of "$SM" sectors)
[ "$sec2" = $((sec1 + 2)) ] || die "two writes into shared data: $sec1 -> $sec2 sectors, want +2"
say "ok"

printf 'a write into shared data on a full mount: ENOSPC, nothing changed ... '
rm "$SM/copy"
cp "$SM/big" "$SM/copy"
before=$(sha256sum <"$SM/copy")
# Writes are all or nothing: fill in 1 MiB pieces, then the rest by sectors.
dd if=/dev/zero of="$SM/filler" bs=1M status=none 2>/dev/null || true
dd if=/dev/zero of="$SM/filler" bs=4k oflag=append conv=notrunc status=none 2>/dev/null || true
out=$(dd if=/dev/urandom of="$SM/copy" bs=4096 count=4 seek=100 conv=notrunc status=none 2>&1) &&
	die "a write into shared data on a full mount succeeded"
case "$out" in *"No space left"*) ;; *) die "the write failed otherwise: $out" ;; esac
[ "$(sha256sum <"$SM/copy")" = "$before" ] || die "the failed write changed the copy"
rm "$SM/filler" "$SM/copy" "$SM/big"
say "ok"

# ---- 2. a clone of /usr/include against cp -a ----

printf 'clone of /usr/include (with links, xattrs, ACLs, special files) ... '
cp -a /usr/include "$SM/src"
S=$SM/src
mkdir "$S/extra"
echo data >"$S/extra/file"
ln "$S/extra/file" "$S/extra/link1"
ln "$S/extra/file" "$S/link2"
ln -s ../stdio.h "$S/extra/sym"
mkfifo "$S/extra/fifo"
mknod "$S/extra/null" c 1 3
setfattr -n user.colour -v blue "$S/extra/file"
setfattr -n trusted.t -v x "$S/stdio.h"
setfacl -m u:4242:r-x "$S/stdio.h"
setfacl -d -m g:4242:rwx "$S/extra"
chown 4242:4242 "$S/extra/file"
chmod 4755 "$S/extra/file"
sync
sec0=$(stat_of "$SM" sectors)
t0=$(date +%s%N)
"$SECTORFS" clone "$S" "$SM/clone"
t1=$(date +%s%N)
sec1=$(stat_of "$SM" sectors)
cp -a "$S" "$SM/cpa"
t2=$(date +%s%N)
[ "$sec1" = "$sec0" ] || die "the clone took sectors: $sec0 -> $sec1"
n=$(py "$SM/clone" "$SM/cpa" <<'EOF'
import os
a_root, b_root = sys.argv[1], sys.argv[2]
ino_a, ino_b, n = {}, {}, 0
for dirpath, dirs, files in os.walk(a_root):
    rel = os.path.relpath(dirpath, a_root)
    other = os.path.normpath(os.path.join(b_root, rel))
    assert sorted(os.listdir(dirpath)) == sorted(os.listdir(other)), rel
    for name in [""] + sorted(dirs + files):
        pa, pb = os.path.join(dirpath, name), os.path.join(other, name)
        sa, sb = os.lstat(pa), os.lstat(pb)
        n += 1
        for f in ("st_mode", "st_uid", "st_gid", "st_size", "st_blocks", "st_rdev",
                  "st_mtime_ns", "st_atime_ns", "st_nlink"):
            assert getattr(sa, f) == getattr(sb, f), (pa, f, getattr(sa, f), getattr(sb, f))
        xa = sorted(os.listxattr(pa, follow_symlinks=False))
        xb = sorted(os.listxattr(pb, follow_symlinks=False))
        assert xa == xb, (pa, xa, xb)
        for x in xa:
            assert os.getxattr(pa, x, follow_symlinks=False) == os.getxattr(pb, x, follow_symlinks=False), (pa, x)
        if stat.S_ISREG(sa.st_mode):
            assert readall(pa) == readall(pb), pa
        if stat.S_ISLNK(sa.st_mode):
            assert os.readlink(pa) == os.readlink(pb), pa
        # one inode here is one inode there, and the other way round
        assert ino_a.setdefault(sa.st_ino, sb.st_ino) == sb.st_ino, pa
        assert ino_b.setdefault(sb.st_ino, sa.st_ino) == sa.st_ino, pb
print(n)
EOF
) || die "the clone differs from cp -a (above)"
cmp <(cd "$SM/clone" && getfacl -R -p . 2>/dev/null) <(cd "$SM/cpa" && getfacl -R -p . 2>/dev/null) ||
	die "ACLs differ between the clone and cp -a"
say "$n names the same as cp -a's; clone $(((t1 - t0) / 1000000)) ms, cp -a $(((t2 - t1) / 1000000)) ms, no sector taken"
rm -rf "$SM/clone" "$SM/cpa" "$SM/src"

printf 'a clone of a tree with a mount below it is refused ... '
mkdir -p "$SM/m/below"
echo hidden >"$SM/m/below/f"
mount -t tmpfs tmpfs "$SM/m/below"
echo shown >"$SM/m/below/g"
rc=0
out=$("$SECTORFS" clone "$SM/m" "$SM/m2" 2>&1) || rc=$?
umount "$SM/m/below"
[ $rc = 1 ] || die "clone with a mount below: exit $rc ($out)"
[ "$(echo "$out" | wc -l)" = 1 ] || die "clone with a mount below: more than one line: $out"
case "$out" in *"$SM/m/below is mounted on, below it"*) ;; *) die "clone with a mount below: $out" ;; esac
[ ! -e "$SM/m2" ] || die "a refused clone left m2 behind"
"$SECTORFS" clone "$SM/m" "$SM/m2" || die "the clone failed once nothing was mounted below"
[ "$(cat "$SM/m2/below/f")" = hidden ] || die "the clone lacks what the mount held"
rm -rf "$SM/m" "$SM/m2"
say "ok"

# ---- 3. as an ordinary user ----

printf 'clones by an ordinary user ... '
U="as_user $SFS_UID $SFS_UID"
mkdir -m 0777 "$SM/u"
mkdir -m 0755 "$SM/u/ro"
$U mkdir "$SM/u/tree"
$U sh -c "cd '$SM/u/tree' && echo a >a && mkdir d && echo b >d/b && ln d/b d/c && ln -s a s"
cp -r --preserve=links "$SM/u/tree" "$SM/u/theirs"    # root's, readable by all
$U "$SECTORFS" clone "$SM/u/theirs" "$SM/u/mine" || die "the user's clone failed"
[ "$(stat -c %u:%g "$SM/u/mine/d/b")" = "$SFS_UID:$SFS_UID" ] ||
	die "the user's copy is owned by $(stat -c %u:%g "$SM/u/mine/d/b")"
[ "$(stat -c %h "$SM/u/mine/d/c")" = 2 ] || die "hard links not kept"
chmod 0600 "$SM/u/theirs/d/b"
chown 0:0 "$SM/u/theirs/d/b"
inodes0=$(df --output=iused "$SM" | tail -1)
for case in "theirs x1" "tree ro/x2"; do
	set -- $case
	out=$($U "$SECTORFS" clone "$SM/u/$1" "$SM/u/$2" 2>&1) && die "clone $1 $2 succeeded"
	[ "$(echo "$out" | wc -l)" = 1 ] || die "clone $1 $2: more than one line: $out"
	case "$out" in *"Permission denied"*) ;; *) die "clone $1 $2: $out" ;; esac
	[ ! -e "$SM/u/$2" ] || die "a refused clone left $2 behind"
done
[ "$(df --output=iused "$SM" | tail -1)" = "$inodes0" ] || die "a refused clone used inodes"
unmount_sfs "$SM"
mount_sfs "$SM" size=64m,nr_inodes=40
mkdir "$SM/t"
for i in $(seq 1 20); do echo $i >"$SM/t/f$i"; done
out=$("$SECTORFS" clone "$SM/t" "$SM/t2" 2>&1) && die "a clone past nr_inodes succeeded"
case "$out" in *"not enough inodes"*) ;; *) die "clone past nr_inodes: $out" ;; esac
[ ! -e "$SM/t2" ] || die "a refused clone left t2 behind"
say "ok"
unmount_sfs "$SM"

# ---- 4. images ----

printf 'an image of copies keeps them shared ... '
IMG=$T/cow.img
mount_sfs "$SM" size=256m,image=$IMG
head -c $((32 << 20)) /dev/urandom >"$SM/a"
cp "$SM/a" "$SM/b"
"$SECTORFS" clone "$SM" "$SM/../c" 2>/dev/null && die "a clone out of the mount succeeded"
mkdir "$SM/d"
cp "$SM/a" "$SM/d/a"
"$SECTORFS" clone "$SM/d" "$SM/e"
sec0=$(stat_of "$SM" sectors)
shared0=$(stat_of "$SM" shared)
"$SECTORFS" umount "$SM" >/dev/null 2>&1 || die "sectorfs umount failed"
sz=$(stat -c %s "$IMG")
[ "$sz" -lt $((40 << 20)) ] || die "the image of 160 MiB of copies of 32 MiB is $sz bytes"
mount_sfs "$SM" size=256m,image=$IMG
[ "$(stat_of "$SM" sectors)" = "$sec0" ] || die "sectors after the load: $(stat_of "$SM" sectors), saved with $sec0"
[ "$(stat_of "$SM" shared)" = "$shared0" ] || die "shared after the load: $(stat_of "$SM" shared), saved with $shared0"
cmp "$SM/a" "$SM/e/a" || die "the loaded copies differ"
say "ok (an image of $((sz >> 20)) MiB for 160 MiB of files)"
unmount_sfs "$SM"
mt_pass
