#!/bin/bash
# SPDX-License-Identifier: MIT
# image.sh - disk images on real mounts: -o image=, sectorfs save, crash safety,
# writers during a save, refusals, sectorfs image create|check|info.
#
#   - Round trip: a tree with every kind of object and attribute, written
#     through the mount, survives unmount (fusermount3 -u, umount, SIGTERM,
#     SIGINT) and remount: find's listing (mode, owner, size, mtime and
#     ctime with nanoseconds), sha256 of every file, getfattr -d -m -,
#     getfacl -R, hard-link groups and hole maps are identical.
#   - sectorfs save and save_interval= write the image while mounted.
#   - Crash safety: a tree is modified, `sectorfs save` starts while a
#     writer keeps adding numbered files, and the daemon is killed (-9) at a
#     random moment (fixed seeds, 20 times).  The image on disk
#     must always pass `sectorfs image check` and load to either the image
#     from before this save, exactly, or to the tree as the save found it:
#     the modified tree, plus a prefix of the writer's files.
#   - Writers during a save: threads append records to their own files;
#     each record lists how many records every thread had completed when it
#     was written.  Every image saved meanwhile must hold, per file, a
#     prefix of its records, and no record whose writer had seen record k
#     of another file while the image lacks that record.
#   - A bad image (damaged, too big for size=) is refused with one line,
#     exit 1, nothing mounted, the file untouched.
#
# usage: image.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=1140 # ctest TIMEOUT 1200: 250 s measured beside stress-ng --cpu 2
mt_init mount_image "$@"
for tool in setfacl getfacl setfattr getfattr sha256sum; do
	command -v "$tool" >/dev/null || die "missing tool: $tool (packages acl, attr, coreutils)"
done

IMGDIR=$T/images
mkdir -p "$IMGDIR"
IMG=$IMGDIR/ram.img
MP=$T/m
V=$T/v

# ---- helpers ----

# The sectorfs daemon of $1 is gone (it saves before it exits).
wait_gone() {
	wait_daemon_gone "$1" 60 || die "daemon of $1 still running 60 s after the end of its mount"
}

# One line per object, sorted: everything the round trip must keep (atime
# apart: reading for the checksums moves it; directory sizes apart: they
# are each filesystem's own), plus hard-link groups, hole maps, devices,
# symlink targets, xattrs and ACLs through the usual tools.  $2 (optional)
# names a top-level entry to leave out.
describe() {
	local ex=${2:-.no-such-entry}
	(
		cd "$1"
		find . -path "./$ex" -prune -o \( -type d -printf '%p %y %m %U %G - %n %T@ %C@\n' \) \
			-o -printf '%p %y %m %U %G %s %n %T@ %C@\n' | sort
		find . -path "./$ex" -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum
		find . -path "./$ex" -prune -o -printf '%i %p\n' | sort -n |
			awk '{ if ($1 == p) g = g " " $2; else { if (n > 1) print "links:" g; g = $2; n = 0 }
			       p = $1; n++ } END { if (n > 1) print "links:" g }' | sort
		getfattr -R -h -d -m - . 2>/dev/null | sed '/^$/d'
		getfacl -R -s -P -p . 2>/dev/null | sed '/^$/d'
		py . "$ex" <<'EOF'
# Top-down, so that the excluded entry is pruned before it is walked.
for dp, dns, fns in os.walk(sys.argv[1]):
    dns.sort()
    if dp == ".":
        dns[:] = [d for d in dns if d != sys.argv[2]]
    for n in sorted(fns):
        p = os.path.join(dp, n)
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:
            fd = os.open(p, os.O_RDONLY)
            ext = ["%d-%d" % e for e in data_extents(fd)]
            os.close(fd)
            print("extents %s %s" % (p, " ".join(ext)))
        if stat.S_ISLNK(st.st_mode):
            print("symlink %s -> %s" % (p, os.readlink(p)))
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            print("device %s %d:%d" % (p, os.major(st.st_rdev), os.minor(st.st_rdev)))
EOF
	)
}

# A tree with every kind of object and attribute, in $1; $2: the size of
# the largest xattr (64 KiB; ext4 takes at most a block).
populate() {
	py "$1" "${2:-65536}" <<'EOF'
import socket
os.chdir(sys.argv[1])
bigx = int(sys.argv[2])
rnd = random.Random(7)
os.makedirs("a/b/c")
os.makedirs("empty")
writeall("a/f1", b"hello\n")
writeall("a/b/big", rnd.randbytes(8 << 20))
for i in range(300):
    writeall("a/b/c/s%03d" % i, rnd.randbytes(rnd.randrange(0, 3000)))
fd = os.open("sparse", os.O_WRONLY | os.O_CREAT, 0o644)
os.pwrite(fd, b"head", 0)
os.pwrite(fd, rnd.randbytes(70000), (5 << 30) + 12345)
os.ftruncate(fd, (6 << 30) + 1)
os.close(fd)
os.link("a/f1", "a/b/f1-again")
os.link("a/f1", "hard")
os.symlink("a/f1", "sym")
os.symlink("/" + "d/" * 2000 + "x", "longsym")
os.symlink("nowhere", "dangling")
os.mkfifo("fifo", 0o640)
os.link("fifo", "fifo-too")
s = socket.socket(socket.AF_UNIX)
s.bind("sock")
s.close()
os.mknod("null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
os.mknod("blk", 0o660 | stat.S_IFBLK, os.makedev(8, 1))
os.mknod("whiteout", stat.S_IFCHR, os.makedev(0, 0))
for name, mode, uid, gid in [("suid", 0o4755, 1000, 1000), ("sgid", 0o2755, 0, 4242),
                             ("all", 0o7777, 4294967294, 65534), ("none", 0, 0, 0)]:
    writeall(name, b"#!/bin/sh\n")
    os.lchown(name, uid, gid)
    os.chmod(name, mode)
os.chmod("empty", 0o1777)
os.chown("a/b", 4242, 4242)
os.chmod("a/b", 0o2775)
os.lchown("sym", 1000, 1000)
os.setxattr("a/f1", "user.small", b"v")
os.setxattr("a/f1", "user.big", rnd.randbytes(bigx))
os.setxattr("a/f1", "trusted.t", b"trusted value")
os.setxattr("a/f1", "security.test", b"security value")
os.setxattr("a", "user.on-dir", b"d")
os.setxattr("sym", "trusted.on-link", b"l", follow_symlinks=False)
EOF
	setfacl -m u:4242:rwx,g:4243:r-x "$1/a"
	setfacl -d -m u:4242:r-x,o::--- "$1/a"
	setfacl -m u:1000:r "$1/a/f1"
	mkdir "$1/a/inherits" && echo x >"$1/a/inherits/f"
	# times with nanoseconds, last: everything above moved them
	py "$1" <<'EOF'
os.chdir(sys.argv[1])
rnd = random.Random(11)
for dp, dns, fns in os.walk(".", topdown=False):
    for n in fns + dns + ["."] * (dp == "."):
        p = os.path.join(dp, n)
        a = rnd.randrange(-2**31, 2**34) * 10**9 + rnd.randrange(10**9)
        m = rnd.randrange(0, 2**33) * 10**9 + rnd.randrange(10**9)
        os.utime(p, ns=(a, m), follow_symlinks=False)
EOF
}

sfs() { "$SECTORFS" "$@"; }

# ---- 1. a round trip through every way a mount ends ----

say "round trip: populate, unmount, remount, compare"
mount_sfs "$MP" "image=$IMG,size=1g"
populate "$MP"
describe "$MP" >"$T/before"
unmount_sfs "$MP"
wait_gone "$MP"
[ -f "$IMG" ] || die "no image after unmount"
sfs image check "$IMG" >"$T/check.out" || die "image check failed: $(cat "$T/check.out")"
grep -q ': OK: ' "$T/check.out" || die "unexpected check output: $(cat "$T/check.out")"
mount_sfs "$MP" "image=$IMG,size=1g"
describe "$MP" >"$T/after"
if ! cmp -s "$T/before" "$T/after"; then
	diff -u "$T/before" "$T/after" | head -40
	die "the tree differs after unmount and remount"
fi
say "  same: $(wc -l <"$T/before") lines of listing, checksums, xattrs, ACLs, links, holes"
sfs image info "$IMG" | sed 's/^/  /'
# The mode of the image is kept from one save to the next.
stat -c %a "$IMG" | grep -qx 600 || die "a new image should be mode 0600"
chmod 0640 "$IMG"

# The same through SIGTERM, SIGINT and umount: each saves before it ends.
for how in TERM INT umount; do
	echo "$how" >"$MP/ended-by-$how"
	if [ "$how" = umount ]; then
		umount "$MP" || die "umount $MP failed"
	else
		kill -"$how" "$(sfs_pid "$MP")"
	fi
	wait_gone "$MP"
	is_mounted "$MP" && die "$MP still mounted after $how"
	mount_sfs "$MP" "image=$IMG,size=1g"
	[ "$(cat "$MP/ended-by-$how")" = "$how" ] || die "the change before $how was not saved"
done
stat -c %a "$IMG" | grep -qx 640 || die "the image's mode was not kept"
ls -a "$IMGDIR" | grep -q '\.tmp\.' && die "temporary files left in $IMGDIR"
say "  SIGTERM, SIGINT and umount save too; the image keeps its mode"

# What the kernel still holds back (-o writeback: dirty pages of written
# files; any mount: shared writable mappings) is in the image too: a
# SIGTERM and `sectorfs save` write it back first, while the daemon still
# answers.  A writer keeps its files open and its pages dirty meanwhile.
hold_dirty() { # DIR TAG: a background writer; waits until its pages are dirty
	rm -f "$T/dirty.ready"
	py "$1" "$2" "$T/dirty.ready" <<'EOF' &
d, tag, ready = sys.argv[1:4]
fd = os.open(d + "/w-" + tag, os.O_RDWR | os.O_CREAT)
os.write(fd, b"x")
for i in range(8):
    os.pwrite(fd, tag.encode() * (1 << 17), i << 20)
g = os.open(d + "/m-" + tag, os.O_RDWR | os.O_CREAT)
os.ftruncate(g, 1 << 20)
m = mmap.mmap(g, 1 << 20)
m[:] = tag.encode()[:1] * (1 << 20)
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
time.sleep(60)
EOF
	while [ ! -e "$T/dirty.ready" ]; do sleep 0.05; done
	DIRTY_PID=$(cat "$T/dirty.ready")
}
stop_dirty() {
	kill "$DIRTY_PID" 2>/dev/null || true
	while kill -0 "$DIRTY_PID" 2>/dev/null; do sleep 0.05; done
}
dirty_saved() { # DIR TAG: the writer's data, as the image has it
	py "$1" "$2" <<'EOF'
d, tag = sys.argv[1:3]
w, m = readall(d + "/w-" + tag), readall(d + "/m-" + tag)
print("ok" if w.count(tag.encode()) == 8 << 17 and m.count(tag.encode()[:1]) == 1 << 20
      else "written file %d bytes, mapped file %d of its bytes" % (len(w), m.count(tag.encode()[:1])))
EOF
}
unmount_sfs "$MP"
wait_gone "$MP"
mount_sfs "$MP" "image=$IMG,size=1g,writeback"
hold_dirty "$MP" T
kill -TERM "$(sfs_pid "$MP")"
wait_gone "$MP"
stop_dirty
force_unmount "$MP"
mount_sfs "$MP" "image=$IMG,size=1g,writeback"
[ "$(dirty_saved "$MP" T)" = ok ] || die "SIGTERM: the image misses what the kernel held: $(dirty_saved "$MP" T)"
hold_dirty "$MP" S
sfs save "$MP" >/dev/null || die "sectorfs save failed"
cp "$IMG" "$T/dirty.img"
stop_dirty
unmount_sfs "$MP"
wait_gone "$MP"
mount_sfs "$MP" "image=$T/dirty.img,ro"
[ "$(dirty_saved "$MP" S)" = ok ] || die "sectorfs save: the image misses what the kernel held: $(dirty_saved "$MP" S)"
unmount_sfs "$MP"
wait_gone "$MP"
say "  SIGTERM and sectorfs save keep what the kernel still held (writeback cache, shared mapping)"
mount_sfs "$MP" "image=$IMG,size=1g"

# ---- 2. sectorfs save, save_interval= ----

echo "saved on request" >"$MP/requested"
out=$(sfs save "$MP") || die "sectorfs save failed: $out"
[[ "$out" == "saved $MP to $IMG: "*" (writers held "*" ms)" ]] ||
	die "unexpected output of sectorfs save: $out"
say "  $out"
cp "$IMG" "$T/requested.img"
kill -KILL "$(sfs_pid "$MP")"
wait_gone "$MP"
force_unmount "$MP"
mount_sfs "$MP" "image=$T/requested.img,ro"
[ "$(cat "$MP/requested")" = "saved on request" ] || die "sectorfs save did not save"
unmount_sfs "$MP"

mount_sfs "$MP" "image=$IMG,save_interval=1"
echo periodic >"$MP/periodic"
sleep 2.5
kill -KILL "$(sfs_pid "$MP")"
wait_gone "$MP"
force_unmount "$MP"
mount_sfs "$MP" "image=$IMG"
[ "$(cat "$MP/periodic")" = periodic ] || die "save_interval=1 did not save within 2.5 s"
say "  save_interval=1 saved a change within 2.5 s"

# A mount without an image, and something that is not sectorfs.
mount_sfs "$V" "size=16m"
out=$(sfs save "$V" 2>&1) && die "sectorfs save of a mount without image= succeeded"
[ "$out" = "sectorfs: $V was mounted without -o image=: there is nowhere to save it" ] ||
	die "unexpected message: $out"
unmount_sfs "$V"
out=$(sfs save "$T" 2>&1) && die "sectorfs save of a non-sectorfs directory succeeded"
[ "$out" = "sectorfs: $T is not a sectorfs mount" ] || die "unexpected message: $out"
out=$(sfs -o "image=$V/inside.img" "$V" 2>&1) && die "an image inside its own mount was accepted"
[ "$out" = "sectorfs: image=$V/inside.img is inside the mount point $V" ] ||
	die "unexpected message: $out"
say "  refused: $out"
unmount_sfs "$MP"
wait_gone "$MP"

# ---- 3. bad images are refused, nothing mounted, the file untouched ----

refuse() { # refuse IMAGE OPTIONS EXPECTED-MESSAGE
	local img=$1 opts=$2 want=$3 sum out rc=0
	sum=$(sha256sum "$img")
	out=$(timeout 60 "$SECTORFS" -o "image=$img$opts" "$V" 2>&1) || rc=$?
	[ "$rc" -eq 1 ] || die "a bad image was mounted (exit $rc): $out"
	[ "$out" = "$want" ] || die "unexpected message: '$out', expected '$want'"
	[ "$(echo "$out" | wc -l)" -eq 1 ] || die "more than one line: $out"
	is_mounted "$V" && die "something was mounted on $V"
	[ "$(sha256sum "$img")" = "$sum" ] || die "the refused image was changed"
	say "  refused: $out"
	return 0
}
cp "$IMG" "$T/bad.img"
size=$(stat -c %s "$T/bad.img")
truncate -s $((size - 100)) "$T/bad.img"
refuse "$T/bad.img" "" \
	"sectorfs: $T/bad.img: truncated: the image is $((size - 100)) bytes, its header says $size"
cp "$IMG" "$T/bad.img"
py "$T/bad.img" <<'EOF'
with open(sys.argv[1], "r+b") as f:
    f.seek(os.path.getsize(sys.argv[1]) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0xff]))
EOF
out=$("$SECTORFS" image check "$T/bad.img" 2>&1) && die "image check passed a damaged image"
[[ "$out" == *": checksum mismatch" ]] || die "unexpected message: $out"
refuse "$T/bad.img" "" "$out"
# Too big for size=: the figures depend on the pool's own overhead, so the
# shape of the line is checked.
out=$(timeout 60 "$SECTORFS" -o "image=$IMG,size=4m" "$V" 2>&1) && die "an image bigger than size= was mounted"
[[ "$out" =~ ^"sectorfs: $IMG: image needs "[0-9.]+" MiB, size= allows "[0-9.]+" MiB"$ ]] ||
	die "unexpected message: $out"
is_mounted "$V" && die "something was mounted on $V"
say "  refused: $out"

# ---- 4. sectorfs image create DIR: a tree from disk ----

SRC=$T/src
mkdir "$SRC"
populate "$SRC" 1000
describe "$SRC" >"$T/src.desc"
out=$(sfs image create "$T/fromdir.img" "$SRC") || die "image create failed: $out"
say "  $out"
mount_sfs "$V" "image=$T/fromdir.img,ro"
describe "$V" >"$T/v.desc"
if ! cmp -s "$T/src.desc" "$T/v.desc"; then
	diff -u "$T/src.desc" "$T/v.desc" | head -30
	die "the image of $SRC differs from $SRC"
fi
unmount_sfs "$V"
out=$(sfs image create "$T/empty.img") || die "image create (empty) failed: $out"
sfs image check "$T/empty.img" | grep -q ': OK: 1 inodes' || die "empty image check"
say "  image create: the tree read back through a mount is the same"

# ---- 5. crash safety: kill -9 at random moments of a save ----

# Seeded changes of a tree ($1: the mount, $2: the seed).
modify() {
	py "$1" "$2" <<'EOF'
root, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
os.chdir(root)
os.makedirs("t", exist_ok=True)
def files():
    out = []
    for dp, dns, fns in os.walk("t"):
        out += [os.path.join(dp, n) for n in fns]
    return sorted(out)
def dirs():
    return sorted(dp for dp, dns, fns in os.walk("t"))
for step in range(40):
    op = rnd.randrange(10)
    fs_, ds = files(), dirs()
    try:
        if op <= 2 or not fs_:
            p = os.path.join(rnd.choice(ds), "f%d" % rnd.randrange(1000))
            writeall(p, rnd.randbytes(rnd.randrange(0, 200000)))
        elif op == 3:
            with open(rnd.choice(fs_), "ab") as f:
                f.write(rnd.randbytes(rnd.randrange(1, 5000)))
        elif op == 4:
            os.truncate(rnd.choice(fs_), rnd.randrange(0, 100000))
        elif op == 5:
            os.unlink(rnd.choice(fs_))
        elif op == 6:
            os.rename(rnd.choice(fs_), os.path.join(rnd.choice(ds), "r%d" % rnd.randrange(1000)))
        elif op == 7:
            os.makedirs(os.path.join(rnd.choice(ds), "d%d" % rnd.randrange(100)), exist_ok=True)
        elif op == 8:
            p = rnd.choice(fs_)
            os.chmod(p, rnd.randrange(0o1000))
            os.setxattr(p, "user.x", rnd.randbytes(rnd.randrange(100)))
        else:
            os.link(rnd.choice(fs_), os.path.join(rnd.choice(ds), "l%d" % rnd.randrange(1000)))
    except OSError:
        pass
EOF
}

# One digest of a tree; with "noseq", without the writer's directory.  The
# description is kept in $T/desc.$3 (for a failure's report).
digest() {
	local d f=$T/desc.${3:-last}
	if [ "${2:-}" = noseq ]; then
		describe "$1" seq >"$f"
	else
		describe "$1" >"$f"
	fi
	d=$(sha256sum <"$f")
	echo "${d%% *}"
}

# The writer's directory is a cut of its sequence: files 1..K, all full but
# maybe the last (created, not yet written), and a log of 1..K or 1..K-1.
check_seq() {
	py "$1" <<'EOF'
os.chdir(sys.argv[1])
names = os.listdir("seq")
nums = sorted(int(n) for n in names if n != "log")
K = nums[-1] if nums else 0
assert nums == list(range(1, K + 1)), "gaps in the writer's files: %s" % nums[:20]
for k in nums[:-1]:
    assert readall("seq/%d" % k) == b"%d\n" % k, "file %d is not full" % k
last_full = K == 0 or readall("seq/%d" % K) == b"%d\n" % K
assert last_full or readall("seq/%d" % K) == b"", "file %d is torn" % K
log = readall("seq/log").decode() if "log" in names else ""
lines = [int(x) for x in log.split("\n")[:-1]]
L = len(lines)
assert lines == list(range(1, L + 1)), "the log is not a prefix"
assert L == K or L == K - 1, "log %d, files %d" % (L, K)
assert last_full or L == K - 1, "log %d but file %d is empty" % (L, K)
print(K)
EOF
}

say "crash safety: kill -9 during saves of a changing tree"
rm -f "$IMG"
mount_sfs "$MP" "image=$IMG"
py "$MP" <<'EOF'
rnd = random.Random(3)
for i in range(6):
    writeall(os.path.join(sys.argv[1], "ballast%d" % i), rnd.randbytes(12 << 20))
EOF
mkdir "$MP/seq"
t0=$(date +%s%N)
sfs save "$MP" >/dev/null || die "the first save failed"
t1=$(date +%s%N)
save_ms=$(((t1 - t0) / 1000000 + 1))
say "  a save of $(du -sm "$MP" | cut -f1) MiB takes $save_ms ms here"
unmount_sfs "$MP"
wait_gone "$MP"

RANDOM=4242
iters=0 old=0 new=0
# 20 kills (up to 40 while none has found a finished save), by count, not
# by time: the delays are drawn against the save's time measured above.
while [ $iters -lt 20 ] || { [ $new -eq 0 ] && [ $iters -lt 40 ]; }; do
	iters=$((iters + 1))
	mount_sfs "$MP" "image=$IMG"
	# (now: `sectorfs save` below is a process called sectorfs too)
	daemon=$(sfs_pid "$MP")
	full_old=$(digest "$MP" all old)
	modify "$MP" $((iters * 7919))
	rm -rf "$MP/seq"
	mkdir "$MP/seq"
	base_new=$(digest "$MP" noseq new)
	py "$MP" <<'EOF' &
os.chdir(sys.argv[1])
k = 0
try:
    while True:
        k += 1
        writeall("seq/%d" % k, b"%d\n" % k)
        with open("seq/log", "ab") as f:
            f.write(b"%d\n" % k)
except OSError:
    pass
EOF
	writer=$!
	sleep 0.05
	sfs save "$MP" >/dev/null 2>&1 &
	saver=$!
	delay_ms=$((RANDOM % (2 * save_ms + 20)))
	sleep "$(awk -v ms="$delay_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
	kill -KILL "$daemon"
	wait "$saver" 2>/dev/null || true
	kill "$writer" 2>/dev/null || true
	wait "$writer" 2>/dev/null || true
	wait_gone "$MP"
	force_unmount "$MP"
	out=$(sfs image check "$IMG" 2>&1) || die "iteration $iters: the image does not check after kill -9 at $delay_ms ms: $out"
	mount_sfs "$MP" "image=$IMG"
	if [ "$(digest "$MP" noseq got-noseq)" = "$base_new" ]; then
		k=$(check_seq "$MP") || die "iteration $iters: the writer's files are not a consistent cut"
		new=$((new + 1))
		state="new, $k files of the writer"
	elif [ "$(digest "$MP" all got)" = "$full_old" ]; then
		old=$((old + 1))
		state=old
	else
		keep=/tmp/sfsmt.mount_image.crash.$$
		mkdir -p "$keep"
		cp "$T"/desc.* "$IMG" "$keep/"
		say "differences from the saved state:"
		diff "$T/desc.new" "$T/desc.got-noseq" | head -20
		die "iteration $iters: after kill -9 at $delay_ms ms the image is neither the old state nor the saved one (descriptions and image kept in $keep)"
	fi
	[ -n "${MT_VERBOSE:-}" ] && say "  iteration $iters: killed at $delay_ms ms: $state"
	# this mount's end saves; the next iteration starts from it
	unmount_sfs "$MP"
	wait_gone "$MP"
done
ls -a "$IMGDIR" | grep -q '\.tmp\.' && die "temporary files left after a mount in $IMGDIR"
[ "$new" -ge 1 ] || die "no save completed before its kill in $iters iterations"
say "  $iters kills: $old left the old image, $new the new one; every image checked and loaded"

# ---- 6. writers during a save: every image is a consistent cut ----

say "writers during saves"
rm -f "$IMG"
mount_sfs "$MP" "image=$IMG"
mkdir "$MP/w"
py "$MP" <<'EOF' &
import threading
os.chdir(sys.argv[1])
N = 4
done = [0] * N
def run(i):
    fd = os.open("w/%d" % i, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    seq = 0
    while not os.path.exists("w/stop") and seq < 200000:
        seen = list(done)
        rec = ("%d %d %s" % (i, seq, " ".join(map(str, seen)))).encode()
        rec = rec.ljust(63) + b"\n"
        os.write(fd, rec)
        seq += 1
        done[i] = seq
    os.close(fd)
ts = [threading.Thread(target=run, args=(i,)) for i in range(N)]
for t in ts:
    t.start()
for t in ts:
    t.join()
EOF
wpid=$!
sleep 0.3
for k in 1 2 3 4 5 6; do
	sfs save "$MP" >/dev/null || die "save $k during writes failed"
	cp --sparse=never "$IMG" "$T/cut$k.img"
	sleep 0.$((RANDOM % 3 + 1))
done
touch "$MP/w/stop"
wait "$wpid"
unmount_sfs "$MP"
wait_gone "$MP"
total=0
for k in 1 2 3 4 5 6; do
	sfs image check "$T/cut$k.img" >/dev/null || die "cut $k does not check"
	mount_sfs "$V" "image=$T/cut$k.img,ro"
	n=$(py "$V" <<'EOF'
os.chdir(sys.argv[1])
N = 4
recs = []
for i in range(N):
    b = readall("w/%d" % i) if os.path.exists("w/%d" % i) else b""
    assert len(b) % 64 == 0, "file %d: a torn record" % i
    recs.append([b[j:j + 64].decode().split() for j in range(0, len(b), 64)])
count = [len(r) for r in recs]
for i in range(N):
    for s, r in enumerate(recs[i]):
        assert int(r[0]) == i and int(r[1]) == s, "file %d: record %d out of sequence" % (i, s)
        for j in range(N):
            assert int(r[2 + j]) <= count[j], \
                "file %d record %d saw %s records of file %d, the image has %d" % (i, s, r[2 + j], j, count[j])
print(sum(count))
EOF
) || die "cut $k is not a consistent cut"
	total=$((total + n))
	unmount_sfs "$V"
done
say "  6 saves during 4 appending writers: $total records, every image a consistent cut"

mt_pass
