#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_chattr.sh - inode flags (chattr, lsattr; FS_IOC_GETFLAGS and
# FS_IOC_SETFLAGS) and the atime mount options, on a fresh tmpfs and a fresh
# sectorfs side by side.  The flags tmpfs keeps: append-only (a), immutable
# (i), nodump (d), noatime (A); others are refused.  What each forbids, to
# root too, with the errno tmpfs gives: opening for writing, writing
# through a descriptor opened before, truncating, fallocate, unlink, rename,
# link, chmod, chown, times, xattrs and ACLs, and in a flagged directory
# creating and removing names; d and A are inherited by what is created in
# a directory that has them.  As an ordinary user: the owner may set d and
# A, only root a and i (CAP_LINUX_IMMUTABLE), nobody else anything.
# Then relatime, strictatime and noatime: which reads move atime.
#
# Intended differences, asserted as such (see README): through FUSE the
# kernel does not know the flags, so it answers a few checks itself before
# sectorfs can: a user without write permission on an immutable file gets
# EACCES where tmpfs says EPERM, access(W_OK) on it succeeds, fcntl(F_SETFL)
# may clear O_APPEND on an append-only file (then, as a descriptor opened
# before the flag would, it writes where it likes).
#
# usage: mount_chattr.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=120
mt_init mount_chattr "$@"
ensure_user
command -v chattr >/dev/null && command -v lsattr >/dev/null || die "chattr/lsattr missing (e2fsprogs)"

mount_side_by_side size=64m,mode=1777 size=64m,allow_other

FLAGS='
import fcntl
GETFLAGS, SETFLAGS = 0x80086601, 0x40086602
I, A, D, N = 0x10, 0x20, 0x40, 0x80
def getflags(p):
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, GETFLAGS, buf)
        return struct.unpack_from("<I", buf)[0]
    finally:
        os.close(fd)
def setflags(p, fl):
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, SETFLAGS, struct.pack("<Q", fl))
    finally:
        os.close(fd)
def show(fl):
    return "".join(c if fl & b else "-" for c, b in (("i", I), ("a", A), ("d", D), ("A", N))) + (
        " +%#x" % (fl & ~(I | A | D | N)) if fl & ~(I | A | D | N) else "")
def fallocate(fd, mode, off, n):
    if _libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(n)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def utimens_now(p):
    # utimensat(p, NULL): a touch
    if _libc.utimensat(-100, p.encode(), None, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def ctime_moves(fn, p):
    before = os.lstat(p).st_ctime_ns
    time.sleep(0.01)
    fn()
    return "ctime moved" if os.lstat(p).st_ctime_ns != before else "ctime kept"
def acl(p):
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in (
        (1, 6, 0xffffffff), (2, 4, 4243), (4, 4, 0xffffffff), (0x10, 4, 0xffffffff), (0x20, 4, 0xffffffff)))
'

sec_flags() {
	py <<EOF
$FLAGS
writeall("f", b"data")
os.mkdir("d")
t("flags of a new file", lambda: show(getflags("f")))
t("flags of a new directory", lambda: show(getflags("d")))
for name, fl in (("i", I), ("a", A), ("d", D), ("A", N), ("all four", I | A | D | N)):
    t("set %s on the file" % name, lambda: (setflags("f", fl), show(getflags("f")))[1])
    t("set %s on the directory" % name, lambda: (setflags("d", fl), show(getflags("d")))[1])
setflags("f", 0)
setflags("d", 0)
for bit in (0x1, 0x2, 0x4, 0x8, 0x100, 0x1000, 0x4000, 0x8000, 0x10000, 0x20000, 0x800000, 0x40000000):
    t("set %#x" % bit, setflags, "f", bit)
t("setting flags", ctime_moves, lambda: setflags("f", D), "f")
t("setting the same flags", ctime_moves, lambda: setflags("f", D), "f")
setflags("f", 0)
setflags("d", D | N)
writeall("d/file", b"x")
os.mkdir("d/sub")
os.mkdir("d/sub/deeper")
os.symlink("file", "d/sym")
t("a file made in a d+A directory", lambda: show(getflags("d/file")))
t("a directory made there", lambda: show(getflags("d/sub")))
t("and in that one", lambda: show(getflags("d/sub/deeper")))
os.mkfifo("fifo")
t("flags of a fifo (lsattr)", lambda: show(getflags("fifo")))
os.chmod("f", 0o4755)
setflags("f", I)
t("set-uid file, immutable", lambda: (stat.filemode(os.stat("f").st_mode), show(getflags("f"))))
setflags("f", 0)
EOF
	r lsattr -d f d d/file
	r chattr +c f
	r chattr +ia f
	r lsattr f
	r chattr -ia f
	r lsattr f
}

# What each flag forbids, to root.  The objects are made afresh per flag.
sec_forbidden() {
	py <<EOF
$FLAGS
def make(p, fl):
    writeall(p, b"0123456789")
    os.mkdir(p + ".dir")
    writeall(p + ".dir/in", b"x")
    fds = {"w": os.open(p, os.O_WRONLY), "rw": os.open(p, os.O_RDWR), "ap": os.open(p, os.O_WRONLY | os.O_APPEND)}
    setflags(p, fl)
    setflags(p + ".dir", fl)
    return fds
for name, fl in (("immutable", I), ("append-only", A), ("nodump", D), ("noatime", N)):
    p = name
    fds = make(p, fl)
    steps = [
        ("open read-only", lambda: os.close(os.open(p, os.O_RDONLY))),
        ("open write-only", lambda: os.close(os.open(p, os.O_WRONLY))),
        ("open read-write", lambda: os.close(os.open(p, os.O_RDWR))),
        ("open O_APPEND", lambda: os.close(os.open(p, os.O_WRONLY | os.O_APPEND))),
        ("open O_TRUNC", lambda: os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))),
        ("open O_APPEND|O_TRUNC", lambda: os.close(os.open(p, os.O_WRONLY | os.O_APPEND | os.O_TRUNC))),
        ("read", lambda: readall(p)),
        ("append through a new descriptor", lambda: (lambda fd: (os.write(fd, b"+"), os.close(fd)))(os.open(p, os.O_WRONLY | os.O_APPEND))),
        ("write through a descriptor opened before", lambda: os.pwrite(fds["w"], b"W", 1)),
        ("append through one opened before", lambda: os.write(fds["ap"], b"A")),
        ("ftruncate through one opened before", lambda: os.ftruncate(fds["rw"], 3)),
        ("fallocate through one opened before", lambda: fallocate(fds["rw"], 0, 0, 8192)),
        ("fallocate keep size", lambda: fallocate(fds["rw"], 1, 0, 16384)),
        ("punch a hole", lambda: fallocate(fds["rw"], 3, 0, 2)),
        ("truncate", lambda: os.truncate(p, 2)),
        ("chmod", lambda: os.chmod(p, 0o600)),
        ("chown", lambda: os.chown(p, 4242, -1)),
        ("chown -1 -1", lambda: os.chown(p, -1, -1)),
        ("utimes to a time", lambda: os.utime(p, (1000, 1000))),
        ("touch (utimes NULL)", lambda: utimens_now(p)),
        ("setxattr", lambda: os.setxattr(p, "user.x", b"1")),
        ("setxattr trusted", lambda: os.setxattr(p, "trusted.x", b"1")),
        ("set an ACL", lambda: os.setxattr(p, "system.posix_acl_access", acl(p))),
        ("getxattr", lambda: os.getxattr(p, "user.x")),
        ("removexattr", lambda: os.removexattr(p, "user.x")),
        ("link to it", lambda: os.link(p, p + ".link")),
        ("rename it", lambda: os.rename(p, p + ".moved")),
        ("rename onto it", lambda: (writeall(p + ".other", b"o"), os.rename(p + ".other", p))[1]),
        ("unlink it", lambda: os.unlink(p)),
        ("dir: list", lambda: sorted(os.listdir(p + ".dir"))),
        ("dir: create a file", lambda: writeall(p + ".dir/new", b"n")),
        ("dir: mkdir", lambda: os.mkdir(p + ".dir/newdir")),
        ("dir: symlink", lambda: os.symlink("x", p + ".dir/newsym")),
        ("dir: write a file in it", lambda: writeall(p + ".dir/in", b"y")),
        ("dir: unlink a file in it", lambda: os.unlink(p + ".dir/in")),
        ("dir: rename a file in it", lambda: os.rename(p + ".dir/in", p + ".dir/in2")),
        ("dir: move a file in", lambda: (writeall(p + ".outside", b"o"), os.rename(p + ".outside", p + ".dir/moved-in"))[1]),
        ("dir: chmod", lambda: os.chmod(p + ".dir", 0o700)),
        ("dir: rmdir it", lambda: os.rmdir(p + ".dir")),
        ("dir: rename it", lambda: os.rename(p + ".dir", p + ".dir2")),
    ]
    for label, fn in steps:
        t("%s: %s" % (name, label), fn)
    for fd in fds.values():
        os.close(fd)
    for q in (p, p + ".moved", p + ".dir", p + ".dir2"):
        if os.path.lexists(q):
            setflags(q, 0)
    print("   %s afterwards: %s" % (name, "size %d, sha %s" % (os.stat(p).st_size, sha(readall(p)))
          if os.path.exists(p) else "gone"))
EOF
}

# noatime on a file and a directory: reads and listings leave atime alone.
sec_noatime_flag() {
	py <<EOF
$FLAGS
writeall("n", b"data")
os.mkdir("nd")
for p in ("n", "nd"):
    os.utime(p, (1000, 2000))     # atime older than mtime: relatime would move it
setflags("n", N)
setflags("nd", N)
readall("n")
os.listdir("nd")
print("file atime after a read:", os.stat("n").st_atime_ns)
print("directory atime after a listing:", os.stat("nd").st_atime_ns)
setflags("n", 0)
dropc()     # (a read the kernel answers from its page cache never reaches sectorfs)
readall("n")
print("file atime moved once the flag is gone:", os.stat("n").st_atime_ns != 1000 * 10**9)
EOF
}

sec_user() {
	local U="as_user $SFS_UID $SFS_UID"
	$U sh -c 'echo mine > own; mkdir owndir'
	echo root >rootfile
	chmod 666 rootfile
	r $U chattr +d own
	r $U chattr +A own
	r $U lsattr own
	r $U chattr +a own
	r $U chattr +i own
	r $U chattr +d rootfile
	r $U lsattr rootfile
	r $U chattr +A owndir
	r chattr +i own
	r $U sh -c 'echo more >> own'
	r $U chmod 600 own
	r $U rm -f own
	r $U chattr -i own
	r chattr -i own
	r chattr +a own
	r $U sh -c 'echo more >> own'
	r $U sh -c 'echo over > own'
	r $U cat own
	r chattr -a own
}

# Mount options: which reads move atime.  Each read is through a new open,
# and sectorfs runs with cache=open: a read the kernel answers from its
# page cache never reaches sectorfs, so does not move atime (see README).
sec_atime_option() {
	py <<'EOF'
writeall("a", b"data")
os.utime("a", (1000, 2000))           # atime older than mtime
readall("a")
print("first read, atime older than mtime: atime moved:", os.stat("a").st_atime_ns != 1000 * 10**9)
os.utime("a", ns=(int(time.time() * 1e9) - 3600 * 10**9, 2000 * 10**9))  # newer than mtime, an hour old
before = os.stat("a").st_atime_ns
readall("a")
print("a read an hour after the last: atime moved:", os.stat("a").st_atime_ns != before)
os.utime("a", ns=(int(time.time() * 1e9) - 2 * 86400 * 10**9, 2000 * 10**9))  # two days old
before = os.stat("a").st_atime_ns
readall("a")
print("a read two days after the last: atime moved:", os.stat("a").st_atime_ns != before)
os.unlink("a")
EOF
}

# The intended differences: each line's tmpfs and sectorfs answers.
flags_differences() {
	local a b want_a want_b
	printf 'what the kernel answers before sectorfs sees the flags (intended) ... '
	probe() {
		py <<EOF
$FLAGS
writeall("imm", b"x")
os.chmod("imm", 0o644)
setflags("imm", I)
pid = os.fork()
if pid == 0:
    os.setgroups([$SFS_UID2]); os.setresgid($SFS_UID2, $SFS_UID2, $SFS_UID2); os.setresuid($SFS_UID2, $SFS_UID2, $SFS_UID2)
    t("open for writing by a user without write permission", os.open, "imm", os.O_WRONLY)
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
t("access(W_OK) by root", lambda: os.access("imm", os.W_OK))
setflags("imm", 0)
writeall("app", b"x")
setflags("app", A)
fd = os.open("app", os.O_WRONLY | os.O_APPEND)
t("fcntl(F_SETFL) without O_APPEND", fcntl.fcntl, fd, fcntl.F_SETFL, 0)
t("then pwrite at 0", os.pwrite, fd, b"Z", 0)
os.close(fd)
setflags("app", 0)
print("content:", readall("app"))
EOF
	}
	a=$(cd "$TM" && probe)
	b=$(cd "$SM" && probe)
	want_a='open for writing by a user without write permission: EPERM
access(W_OK) by root: False
fcntl(F_SETFL) without O_APPEND: EPERM
then pwrite at 0: 1
content: '"b'xZ'"
	want_b='open for writing by a user without write permission: EACCES
access(W_OK) by root: True
fcntl(F_SETFL) without O_APPEND: 0
then pwrite at 0: 1
content: '"b'Z'"
	[ "$a" = "$want_a" ] || die "tmpfs: unexpected: $a"
	[ "$b" = "$want_b" ] || die "sectorfs: unexpected: $b"
	say "ok"
}

section "flags: each one, refused ones, ctime, inheritance, lsattr and chattr" sec_flags
section "what immutable, append-only, nodump and noatime forbid, to root" sec_forbidden
section "the noatime flag leaves atime alone" sec_noatime_flag
section "as an ordinary user: d and A on its own files, never a or i" sec_user
flags_differences

for opt in relatime strictatime noatime; do
	mount_tmpfs "$T/tmpfs-$opt" "size=16m,mode=1777,$opt"
	mount_sfs "$T/sfs-$opt" "size=16m,$opt,cache=open"
	section "-o $opt: which reads move atime" sec_atime_option "$T/tmpfs-$opt" "$T/sfs-$opt"
	unmount_sfs "$T/sfs-$opt"
	force_unmount "$T/tmpfs-$opt"
done

unmount_sfs "$SM"
mt_pass
