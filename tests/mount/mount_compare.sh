#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_compare.sh - the same steps on a fresh tmpfs and a fresh sectorfs,
# side by side; every output, errno, size, link count, ACL, xattr and
# timestamp movement must be the same.  Known, intended differences are
# asserted as such: FALLOC_FL_ZERO_RANGE (tmpfs refuses it, sectorfs does
# it), st_blocks of small files, exact df figures and where ENOSPC strikes.
#
# usage: mount_compare.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=600
mt_init mount_compare "$@"
mt_selfcheck
ensure_user
command -v setfacl >/dev/null || die "setfacl missing (package acl)"
command -v setfattr >/dev/null || die "setfattr missing (package attr)"
command -v fallocate >/dev/null || die "fallocate missing (util-linux)"

TM=$T/tmpfs
SM=$T/sfs
mount_tmpfs "$TM" size=512m,mode=1777
mount_sfs "$SM" size=512m,allow_other
say "tmpfs on $TM, sectorfs on $SM (pid $(sfs_pid "$SM"))"

# Source data for the round trips.
SIZES="0 1 511 512 513 4095 4096 4097 65535 65536 65537 1048575 1048576 1048577"
mkdir "$T/data"
for n in $SIZES; do head -c "$n" /dev/urandom >"$T/data/f$n"; done
head -c $((8 << 20)) /dev/urandom >"$T/data/r8m"

# show FILE...: size, type, mode, links of each
show() {
	local f
	for f in "$@"; do
		stat -c '%n: %F %A %h links, %s bytes, uid %u gid %g' "$f" 2>&1 || true
	done
}

# holemap FILE: the data extents, by SEEK_DATA / SEEK_HOLE
holemap() {
	py "$1" <<'EOF'
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
ext = ["%d-%d" % e for e in data_extents(fd)]
print("%s: size %d data [%s]" % (sys.argv[1], size, " ".join(ext)))
EOF
}

# ------------------------------------------------------------------------
sec_roundtrip() {
	local n
	mkdir rt
	for n in $SIZES; do cp "$T/data/f$n" "rt/f$n"; done
	for n in $SIZES; do dd if="$T/data/f$n" of="rt/g$n" bs=4097 status=none; done
	for n in $SIZES; do cat "$T/data/f$n" | dd of="rt/h$n" bs=511 iflag=fullblock status=none; done
	drop_caches
	# Read back in one process (five per size cost a minute under load):
	# whole files, and the piped copies 513 bytes at a time.
	py "$T/data" $SIZES <<'EOF'
def read513(p):
    fd, out = os.open(p, os.O_RDONLY), []
    while True:
        b = os.read(fd, 513)
        if not b:
            break
        out.append(b)
    os.close(fd)
    return b"".join(out)
for n in sys.argv[2:]:
    want = readall("%s/f%s" % (sys.argv[1], n))
    same = lambda got: "same" if got == want else "DIFFERENT"
    print("%s: size %d cp:%s dd4097:%s pipe511:%s sha %s" % (n, os.stat("rt/f" + n).st_size,
          same(readall("rt/f" + n)), same(readall("rt/g" + n)), same(read513("rt/h" + n)),
          sha(readall("rt/f" + n))))
EOF
	py <<'EOF'
# Overwrites at and around sector boundaries, checked against a model,
# with and without the page cache in between.
rng = random.Random(7)
size = 300000
model = bytearray(rng.randbytes(size))
writeall("rt/patch", model)
fd = os.open("rt/patch", os.O_RDWR)
bad = None
for i in range(400):
    unit = rng.choice([512, 4096, 65536])
    off = max(0, unit * rng.randrange(0, 400000 // unit) + rng.choice([-1, 0, 1]))
    data = rng.randbytes(rng.choice([1, 2, 511, 512, 513, 4095, 4096, 4097, 10000]))
    os.pwrite(fd, data, off)
    if off > len(model):
        model.extend(bytes(off - len(model)))
    model[off:off + len(data)] = data
    if i % 50 == 49:
        # This file's pages out of the page cache (dropc() empties the
        # whole machine's, half a second a time under load).
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        got = readall("rt/patch")
        if got != bytes(model) and bad is None:
            bad = "after %d writes: size %d vs %d, first difference at %s" % (i + 1, len(got), len(model),
                next((k for k in range(min(len(got), len(model))) if got[k] != model[k]), "end"))
os.close(fd)
print("patchwork: %s size %d sha %s" % (bad or "ok", len(model), sha(bytes(model))))
EOF
}

sec_extend() {
	py <<'EOF'
os.mkdir("ext")
rng = random.Random(3)
cases = {
    "truncate-up":   [("w", 0, b"a" * 100), ("t", 10000)],
    "write-past-end": [("w", 0, b"b" * 10), ("w", 70000, b"c" * 5)],
    "shrink-grow":   [("w", 0, rng.randbytes(8192)), ("t", 1000), ("t", 9000)],
    "shrink-grow-sector": [("w", 0, rng.randbytes(20000)), ("t", 4095), ("t", 20000)],
    "shrink-grow-write": [("w", 0, rng.randbytes(70000)), ("t", 4097), ("w", 65000, b"x")],
    "shrink-zero-grow": [("w", 0, rng.randbytes(5000)), ("t", 0), ("t", 5000)],
    "grow-far-shrink": [("w", 0, b"d" * 3000), ("t", 1 << 20), ("w", 500000, b"e" * 9000), ("t", 499999), ("t", 600000)],
}
for drop in (False, True):
    for name, ops in cases.items():
        p = "ext/%s-%d" % (name, drop)
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        model = bytearray()
        res = []
        for op in ops:
            if op[0] == "w":
                os.pwrite(fd, op[2], op[1])
                if op[1] > len(model): model.extend(bytes(op[1] - len(model)))
                model[op[1]:op[1] + len(op[2])] = op[2]
            else:
                os.ftruncate(fd, op[1])
                if op[1] < len(model): del model[op[1]:]
                else: model.extend(bytes(op[1] - len(model)))
            if drop:
                dropc()
            got = os.pread(fd, len(model) + 10, 0)
            res.append("ok" if got == bytes(model) else "BAD@%s" % next(
                (k for k in range(min(len(got), len(model))) if got[k] != model[k]), "len %d" % len(got)))
        os.close(fd)
        dropc()
        final = readall(p)
        print("%s drop=%d: size %d steps %s final %s" % (name, drop, os.stat(p).st_size, ",".join(res),
              "ok" if final == bytes(model) else "BAD"))
EOF
	# the same with coreutils
	mkdir ext2
	printf 'hello world\n' >ext2/a
	r truncate -s 100000 ext2/a
	r truncate -s -99990 ext2/a
	r truncate -s +5000 ext2/a
	drop_caches
	r stat -c %s ext2/a
	r sh -c 'od -An -c ext2/a | head -5'
	r sh -c 'sha256sum <ext2/a'
}

sec_sparse() {
	py <<'EOF'
os.mkdir("sp")
G = 1 << 30
fd = os.open("sp/big", os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"A" * 10, 0)
os.pwrite(fd, b"B" * 5000, 5 * G)
os.pwrite(fd, b"C" * 100, 6 * G + 12345)
os.pwrite(fd, b"D" * 4096, 4 * G + 4096 * 3)
st = os.fstat(fd)
print("size", st.st_size, "sparse" if st.st_blocks * 512 < (1 << 20) else "NOT SPARSE (%d blocks)" % st.st_blocks)
dropc()
size = st.st_size
offs = [0, 1, 9, 10, 4095, 4096, 8192, G, 4 * G, 4 * G + 4096 * 3 - 1, 4 * G + 4096 * 3, 4 * G + 4096 * 4,
        5 * G - 1, 5 * G, 5 * G + 4095, 5 * G + 4096, 5 * G + 8191, 5 * G + 8192, 6 * G,
        6 * G + 12345, size - 1, size, size + 1, 8 * G]
for o in offs:
    for wh, name in ((os.SEEK_DATA, "DATA"), (os.SEEK_HOLE, "HOLE")):
        t("SEEK_%s %d" % (name, o), os.lseek, fd, o, wh)
def rd(off, n):
    return os.pread(fd, n, off)
print("around 5G:", rd(5 * G - 2, 5))
print("around 6G+12345:", rd(6 * G + 12343, 4), rd(6 * G + 12443, 4))
print("at 3G:", rd(3 * G, 16))
print("at 4G+12k:", sha(rd(4 * G + 4096 * 3 - 10, 4116)))
print("end:", rd(size - 3, 10))
os.ftruncate(fd, 5 * G + 100)
print("after truncate to 5G+100:", os.fstat(fd).st_size, rd(5 * G + 95, 10))
t("SEEK_DATA 5G+100", os.lseek, fd, 5 * G + 100, os.SEEK_DATA)
t("SEEK_HOLE 5G+10", os.lseek, fd, 5 * G + 10, os.SEEK_HOLE)
os.ftruncate(fd, 7 * G)
print("after growing to 7G:", rd(5 * G + 95, 10))
t("SEEK_DATA 5G+200", os.lseek, fd, 5 * G + 200, os.SEEK_DATA)
os.close(fd)
EOF
	r stat -c '%s' sp/big
	r sh -c 'du -h --apparent-size sp/big | cut -f1'
	r cp --sparse=always sp/big sp/copy
	# As cmp, without reading 7 GiB of holes on each side (a minute under
	# load): the sizes, the data extents and their bytes are the same, and
	# the copy's holes read as zeros where probed.
	py <<'EOF'
def extents(p):
    fd = os.open(p, os.O_RDONLY)
    size = os.fstat(fd).st_size
    ext = [(d, h, sha(os.pread(fd, h - d, d))) for d, h in data_extents(fd)]
    probes = [os.pread(fd, 16, o) for o in (1 << 30, 3 << 30, (6 << 30) + (1 << 20)) if o < size]
    os.close(fd)
    return size, ext, probes
a, b = extents("sp/big"), extents("sp/copy")
print("copy same" if a[:2] == b[:2] else "copy DIFFERENT: %r %r" % (a[:2], b[:2]))
print("copy's holes read as zeros:", all(p == bytes(16) for p in b[2]))
EOF
}

sec_fallocate() {
	mkdir fa
	r fallocate -l 1M fa/a
	r stat -c '%s %b' fa/a
	r fallocate -n -o 1M -l 1M fa/a
	r stat -c '%s %b' fa/a
	r fallocate -o 3M -l 4096 fa/a
	r stat -c '%s %b' fa/a
	r holemap fa/a
	r du -k fa/a
	r sh -c 'sha256sum <fa/a'
	cp "$T/data/r8m" fa/b
	r truncate -s 3M fa/b
	r fallocate -p -o 4096 -l 8192 fa/b
	r stat -c '%s %b' fa/b
	r holemap fa/b
	r fallocate -p -o 100 -l 5000 fa/b
	r fallocate -p -o 2M -l 2M fa/b
	r stat -c '%s %b' fa/b
	r holemap fa/b
	drop_caches
	r sh -c 'sha256sum <fa/b'
	r sh -c 'od -An -tx1 -j 90 -N 20 fa/b'
	r sh -c 'od -An -tx1 -j 5090 -N 20 fa/b'
	: >fa/empty
	r fallocate -n -l 10 fa/empty
	r stat -c '%s' fa/empty
	r fallocate -l 10 fa/empty
	r stat -c '%s' fa/empty
	r fallocate -x -l 20000 fa/empty
	r stat -c '%s' fa/empty
	r fallocate -c -o 0 -l 4096 fa/b
	r fallocate -i -o 0 -l 4096 fa/b
	r fallocate -l 0 fa/b
	r fallocate -o -1 -l 10 fa/b
	mkdir fa/dir
	r fallocate -l 4096 fa/dir
	dd if=/dev/zero of=fa/d bs=64K count=2 status=none
	head -c 4096 "$T/data/r8m" >>fa/d
	r fallocate -d fa/d
	r holemap fa/d
	r stat -c '%s %b' fa/d
	py <<'EOF'
fd = os.open("fa/p", os.O_RDWR | os.O_CREAT, 0o644)
t("posix_fallocate 0 8192", os.posix_fallocate, fd, 0, 8192)
print("size", os.fstat(fd).st_size)
t("posix_fallocate 100 50", os.posix_fallocate, fd, 100, 50)
print("size", os.fstat(fd).st_size)
t("posix_fallocate 8192 1M", os.posix_fallocate, fd, 8192, 1 << 20)
print("size", os.fstat(fd).st_size, "blocks", os.fstat(fd).st_blocks)
os.close(fd)
fd = os.open("fa/p", os.O_RDONLY)
t("posix_fallocate on O_RDONLY", os.posix_fallocate, fd, 0, 100)
os.close(fd)
EOF
}

# FALLOC_FL_ZERO_RANGE: tmpfs refuses it (EOPNOTSUPP), sectorfs does it.
zero_range_checks() {
	local out rc
	printf 'fallocate -z (zero range): tmpfs refuses, sectorfs supports ... '
	head -c 16384 "$T/data/r8m" >"$TM/zr"
	rc=0
	out=$(fallocate -z -o 1000 -l 5000 "$TM/zr" 2>&1) || rc=$?
	[ $rc -ne 0 ] && [[ "$out" == *"Operation not supported"* ]] ||
		die "fallocate -z on tmpfs: expected 'Operation not supported', got rc=$rc '$out'"
	head -c 16384 "$T/data/r8m" >"$SM/zr"
	rc=0
	out=$(fallocate -z -o 1000 -l 5000 "$SM/zr" 2>&1) || rc=$?
	[ $rc -eq 0 ] || die "fallocate -z -o 1000 -l 5000 on sectorfs: rc=$rc '$out' (expected success)"
	rc=0
	out=$(fallocate -z -o 14000 -l 10000 "$SM/zr" 2>&1) || rc=$?
	[ $rc -eq 0 ] || die "fallocate -z -o 14000 -l 10000 on sectorfs: rc=$rc '$out'"
	rc=0
	out=$(fallocate -z -n -o 20000 -l 10000 "$SM/zr" 2>&1) || rc=$?
	[ $rc -eq 0 ] || die "fallocate -z -n -o 20000 -l 10000 on sectorfs: rc=$rc '$out'"
	drop_caches
	out=$(py "$SM/zr" "$T/data/r8m" <<'EOF'
got = readall(sys.argv[1])
src = readall(sys.argv[2])[:16384]
want = bytearray(src)
want[1000:6000] = bytes(5000)
want[14000:] = bytes(16384 - 14000)
want.extend(bytes(24000 - 16384))
print("ok" if got == bytes(want) else "BAD: size %d, want %d; first difference at %s" % (
    len(got), len(want), next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), "end")))
EOF
)
	[ "$out" = ok ] || die "fallocate -z on sectorfs: content after zero ranges: $out"
	say "ok"
}

sec_openflags() {
	py <<'EOF'
os.mkdir("of")
os.chdir("of")
writeall("f", b"hello")
fd = os.open("f", os.O_WRONLY | os.O_APPEND)
os.write(fd, b"X")
os.lseek(fd, 0, os.SEEK_SET)
os.write(fd, b"Y")
os.pwrite(fd, b"Z", 0)             # Linux: appends with O_APPEND
print("O_APPEND:", readall("f"), "pos", os.lseek(fd, 0, os.SEEK_CUR))
fd2 = os.open("f", os.O_WRONLY | os.O_APPEND)
for i in range(5):
    os.write(fd, b"1")
    os.write(fd2, b"2")
print("two O_APPEND fds:", readall("f"))
fd3 = os.open("f", os.O_WRONLY)
os.write(fd3, b"W")                # not append: at 0
print("plain fd at 0:", readall("f"))
import fcntl
fl = fcntl.fcntl(fd, fcntl.F_GETFL)
fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_APPEND)
os.pwrite(fd, b"Q", 1)
print("append cleared, pwrite at 1:", readall("f"))
for x in (fd, fd2, fd3): os.close(x)
fd = os.open("f", os.O_RDWR | os.O_APPEND)
print("O_APPEND|O_RDWR read at 0:", os.pread(fd, 3, 0))
os.close(fd)
# O_TRUNC
writeall("g", b"abcdef")
os.close(os.open("g", os.O_WRONLY | os.O_TRUNC))
print("O_WRONLY|O_TRUNC: size", os.stat("g").st_size)
writeall("g", b"abcdef")
os.close(os.open("g", os.O_RDONLY | os.O_TRUNC))
print("O_RDONLY|O_TRUNC: size", os.stat("g").st_size)
writeall("g", b"abcdef")
fd = os.open("g", os.O_RDWR)
fdt = os.open("g", os.O_WRONLY | os.O_TRUNC)
print("O_TRUNC while open elsewhere: read", os.pread(fd, 10, 0), "fstat", os.fstat(fd).st_size)
os.write(fdt, b"12")
print("then write 2 via truncating fd, read via other:", os.pread(fd, 10, 0))
os.close(fd); os.close(fdt)
os.chmod("g", 0o444)
t("O_TRUNC on 0444 file (root)", lambda: os.close(os.open("g", os.O_WRONLY | os.O_TRUNC)))
# O_EXCL
t("O_CREAT|O_EXCL existing", os.open, "g", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
os.symlink("nowhere", "dangling")
t("O_CREAT|O_EXCL on dangling symlink", os.open, "dangling", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
print("dangling target created:", os.path.exists("nowhere"))
t("O_CREAT on dangling symlink", lambda: os.close(os.open("dangling", os.O_WRONLY | os.O_CREAT, 0o600)))
print("target now:", os.path.exists("nowhere"), oct(os.stat("nowhere").st_mode))
os.mkdir("d")
t("O_CREAT|O_EXCL on dir", os.open, "d", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
t("O_CREAT on dir", os.open, "d", os.O_RDONLY | os.O_CREAT)
t("O_WRONLY on dir", os.open, "d", os.O_WRONLY)
t("O_EXCL without O_CREAT", lambda: os.close(os.open("g", os.O_RDONLY | os.O_EXCL)))
t("O_CREAT|O_EXCL new", lambda: os.close(os.open("new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))
print("new mode", oct(os.stat("new").st_mode))
t("O_DIRECTORY on file", os.open, "g", os.O_RDONLY | os.O_DIRECTORY)
t("file as dir", os.open, "g/x", os.O_RDONLY)
t("O_NOFOLLOW on symlink", os.open, "dangling", os.O_RDONLY | os.O_NOFOLLOW)
t("missing", os.open, "missing", os.O_RDONLY)
t("name 255", lambda: os.close(os.open("n" * 255, os.O_CREAT | os.O_WRONLY, 0o644)))
t("name 256", os.open, "n" * 256, os.O_CREAT | os.O_WRONLY, 0o644)
t("O_CREAT|O_DIRECTORY", os.open, "cd", os.O_CREAT | os.O_DIRECTORY | os.O_RDONLY, 0o644)
print("listing:", sorted(os.listdir(".")))
EOF
}

# O_TMPFILE: through FUSE it needs FUSE_TMPFILE, which libfuse 3.14 cannot
# decode; the transport answers it (daemon/protocol.c), so it must be what
# tmpfs does, on either transport.
tmpfile_probe() {
	py <<'EOF'
os.mkdir("tmpfile-dir", 0o755)
os.chdir("tmpfile-dir")
def tmpfile(flags, name):
    fd = os.open(".", os.O_TMPFILE | flags, 0o640)
    os.write(fd, b"anonymous")
    n = os.fstat(fd).st_nlink
    try:
        linkat_follow("/proc/self/fd/%d" % fd, name)
        linked = "linked: %s, mode %o, nlink %d" % (readall(name), os.stat(name).st_mode,
                                                    os.stat(name).st_nlink)
    except OSError as e:
        linked = "linkat: " + ename(e)
    os.close(fd)
    return "nlink %d, %s" % (n, linked)
t("O_TMPFILE|O_RDWR", tmpfile, os.O_RDWR, "linked-tmpfile")
t("O_TMPFILE|O_WRONLY|O_EXCL", tmpfile, os.O_WRONLY | os.O_EXCL, "never-linked")
t("O_TMPFILE|O_RDONLY", lambda: os.open(".", os.O_TMPFILE | os.O_RDONLY, 0o600))
os.mkdir("tdir", 0o755)
fd = os.open("tdir", os.O_TMPFILE | os.O_RDWR, 0o600)
print("in a subdirectory:", sorted(os.listdir("tdir")), os.fstat(fd).st_size)
os.close(fd)
print("after close:", sorted(os.listdir(".")))
EOF
}

# Birth time (statx STATX_BTIME): tmpfs keeps it; through FUSE it needs
# FUSE_STATX, which the transport answers (daemon/protocol.c).
sec_btime() {
	mkdir bt
	touch bt/file
	mkdir bt/dir
	local f b c b1 b2
	for f in bt/file bt/dir bt; do
		b=$(stat -c %W "$f")
		c=$(stat -c %Z "$f")
		echo "$f: birth known $([ "$b" -gt 0 ] && echo yes || echo no)," \
			"not after ctime $([ "$b" -le "$c" ] && echo yes || echo no)"
	done
	b1=$(stat -c %w bt/file)
	chmod 600 bt/file
	echo data >>bt/file
	mv bt/file bt/moved
	b2=$(stat -c %w bt/moved)
	echo "birth kept by chmod, write and rename: $([ "$b1" = "$b2" ] && echo yes || echo "no ($b1, $b2)")"
}

sec_mmap() {
	py <<'EOF'
os.mkdir("mm")
size = 3 * 4096 + 100
writeall("mm/f", b"a" * size)
fd = os.open("mm/f", os.O_RDWR)
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[0:5] = b"HELLO"
m[4094:4098] = b"WXYZ"
m[size - 3:size] = b"END"
m.flush()
rfd = os.open("mm/f", os.O_RDONLY)
print("read() after msync:", os.pread(rfd, 6, 0), os.pread(rfd, 4, 4094), os.pread(rfd, 3, size - 3))
os.pwrite(fd, b"QQ", 8000)
print("mmap sees write():", m[8000:8002])
m[9000:9004] = b"MMAP"
print("read() sees mmap store without msync:", os.pread(rfd, 4, 9000))
m.flush()
m.close()
os.close(fd)
os.close(rfd)
dropc()
data = readall("mm/f")
print("after drop caches:", len(data), sha(data), data[:6], data[4094:4098], data[9000:9004], data[-3:])
# a mapping of a file extended with ftruncate, then written
writeall("mm/g", b"")
fd = os.open("mm/g", os.O_RDWR)
os.ftruncate(fd, 8192)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED)
m[8190:8192] = b"zz"
m[0:2] = b"aa"
m.close()
os.fsync(fd)
os.close(fd)
dropc()
d = readall("mm/g")
print("extended then mapped:", len(d), d[:2], d[8190:], d.count(0))
# private mapping must not write through
fd = os.open("mm/g", os.O_RDWR)
m = mmap.mmap(fd, 8192, mmap.MAP_PRIVATE)
m[0:2] = b"PP"
m.close()
os.close(fd)
print("MAP_PRIVATE leaves file:", readall("mm/g")[:2])
EOF
}

# Descriptors past the page cache (direct_write=: write-only ones, and
# those that start from an empty file) next to cached ones: whatever mix,
# every reader sees every write at once, as on tmpfs.
sec_direct() {
	py <<'EOF'
os.mkdir("dw")
os.chdir("dw")
old = bytes(range(256)) * 64           # 16 KiB
writeall("f", old)
# a cached reader first, with the pages in the cache and mapped
rfd = os.open("f", os.O_RDONLY)
print("reader:", sha(os.pread(rfd, 16384, 0)))
rm = mmap.mmap(rfd, 16384, mmap.MAP_SHARED, mmap.PROT_READ)
print("map:", sha(rm[:]))
# a write-only descriptor overwrites across a page boundary
wfd = os.open("f", os.O_WRONLY)
os.pwrite(wfd, b"W" * 5000, 3000)
print("reader sees write-only write:", os.pread(rfd, 8, 2996), os.pread(rfd, 8, 7996))
print("map sees it:", rm[2996:3004], rm[7996:8004])
# appends through a write-only O_APPEND descriptor after another grew the file
afd = os.open("f", os.O_WRONLY | os.O_APPEND)
os.pwrite(wfd, b"G" * 100, 16384)
os.write(afd, b"APPENDED")
print("size after append:", os.fstat(rfd).st_size, os.pread(rfd, 10, 16482))
os.close(afd)
# a read-write descriptor of the existing file writes through the cache
cfd = os.open("f", os.O_RDWR)
os.pwrite(cfd, b"C" * 10, 4090)
t("read from the write-only descriptor", os.read, wfd, 1)
print("reader sees cached write:", os.pread(rfd, 12, 4089))
rm.close()
for fd in (rfd, wfd, cfd):
    os.close(fd)
d = readall("f")
print("file:", len(d), sha(d))
# a new file opened read-write: written, read back, mapped both ways
fd = os.open("n", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"x" * 10000)
print("read back through the same fd:", os.pread(fd, 4, 9996), len(os.pread(fd, 20000, 0)))
m = mmap.mmap(fd, 10000, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[100:104] = b"MMAP"
m.flush()
print("fd sees msync'd store:", os.pread(fd, 4, 100))
m[200:204] = b"NOSY"
print("fd sees store without msync:", os.pread(fd, 4, 200))
os.pwrite(fd, b"WRIT", 300)
print("map sees write:", m[300:304])
os.ftruncate(fd, 5000)
os.pwrite(fd, b"E", 8191)
print("after truncate and write past the end:", os.fstat(fd).st_size, os.pread(fd, 4, 4998))
m.close()
os.close(fd)
# O_TRUNC of a file another descriptor still reads, cached
writeall("t", b"T" * 9000)
rfd = os.open("t", os.O_RDONLY)
os.pread(rfd, 9000, 0)
fd = os.open("t", os.O_RDWR | os.O_TRUNC)
os.write(fd, b"short")
print("reader after O_TRUNC and rewrite:", os.fstat(rfd).st_size, os.pread(rfd, 9000, 0))
os.close(fd)
os.close(rfd)
dropc()
for n in ("f", "n", "t"):
    d = readall(n)
    print("after drop caches:", n, len(d), sha(d))
EOF
}

# Whether the descriptors that direct_write= names really skip the page
# cache, seen in fincore's count of the file's cached pages (sectorfs only:
# on tmpfs the page cache is the file).
direct_cache_checks() { # MOUNTPOINT MODE
	local m=$1 mode=$2 want out line
	case $mode in
	auto) want="0 0 64" ;;
	off) want="64 64 64" ;;
	all) want="0 0 0" ;;
	esac
	printf 'direct_write=%s: pages cached after writing new, write-only, read-write ... ' "$mode"
	command -v fincore >/dev/null || die "fincore missing (util-linux)"
	line=$("$SECTORFS" stats "$m" | grep '^page cache:') || die "sectorfs stats has no page cache line"
	[[ $line == *"direct_write=$mode"* ]] || die "sectorfs stats says '$line', not direct_write=$mode"
	# A kernel that cannot map direct files (before Linux 6.9): all cached.
	[[ $line != *"not in effect"* ]] || want="64 64 64"
	out=$(py "$m" <<'EOF'
import subprocess
def cached(p):
    r = subprocess.run(["fincore", "-n", "-b", "-o", "PAGES", p], capture_output=True,
                       text=True, check=True)
    return int(r.stdout.split()[0])
d = sys.argv[1]
fd = os.open(d + "/dc-new", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"n" * 262144)
os.close(fd)
fd = os.open(d + "/dc-wo", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"w" * 262144)
os.close(fd)
writeall(d + "/dc-rw", b"r")
fd = os.open(d + "/dc-rw", os.O_RDWR)
os.pwrite(fd, b"r" * 262144, 0)
os.close(fd)
print(cached(d + "/dc-new"), cached(d + "/dc-wo"), cached(d + "/dc-rw"))
for n in ("dc-new", "dc-wo", "dc-rw"):
    os.unlink(d + "/" + n)
EOF
)
	[ "$out" = "$want" ] ||
		die "direct_write=$mode: pages cached after writing 64 pages to a new file, through a write-only descriptor and through a read-write one of an existing file: $out, want $want"
	say "ok ($out)"
}

# With -o writeback a full filesystem cannot refuse a write at write(): the
# documented price is ENOSPC at close(), and at every fsync() while the
# pages that did not fit stay dirty in the kernel; never silence.
writeback_enospc_check() {
	local m=$T/sfs-wb16 out
	printf 'writeback, size=16m: 32 MiB written into an existing file, ENOSPC at close ... '
	mount_sfs "$m" size=16m,writeback
	out=$(py "$m" <<'EOF'
p = sys.argv[1] + "/f"
writeall(p, b"x")
fd = os.open(p, os.O_RDWR)
t("32 writes of 1 MiB", lambda: [os.write(fd, b"y" * (1 << 20)) for _ in range(32)] and None)
t("close", os.close, fd)
fd = os.open(p, os.O_RDWR)
t("write after that", os.pwrite, fd, b"z", 0)
t("fsync", os.fsync, fd)
os.close(fd)
EOF
)
	[ "$out" = "$(printf '32 writes of 1 MiB: ok\nclose: ENOSPC\nwrite after that: 1\nfsync: ENOSPC')" ] ||
		die "-o writeback on a full filesystem: got '$out'"
	unmount_sfs "$m"
	say "ok"
}

sec_fsync() {
	py <<'EOF'
os.mkdir("fs")
fd = os.open("fs/f", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"x" * 100000)
t("fsync", os.fsync, fd)
t("fdatasync", os.fdatasync, fd)
os.close(fd)
fd = os.open("fs/f", os.O_RDONLY)
t("fsync on O_RDONLY", os.fsync, fd)
os.close(fd)
dfd = os.open("fs", os.O_RDONLY | os.O_DIRECTORY)
t("fsync dir", os.fsync, dfd)
t("fdatasync dir", os.fdatasync, dfd)
os.close(dfd)
t("sync", os.sync)
fd = os.open("fs/g", os.O_RDWR | os.O_CREAT | os.O_SYNC, 0o644)
os.write(fd, b"sync write")
os.close(fd)
fd = os.open("fs/h", os.O_RDWR | os.O_CREAT | os.O_DSYNC, 0o644)
os.write(fd, b"dsync write")
os.close(fd)
dropc()
print(readall("fs/g"), readall("fs/h"), os.stat("fs/f").st_size)
EOF
}

sec_links() {
	mkdir -p L/d
	echo x >L/f
	r stat -c '%h' L/f
	r ln L/f L/g
	r stat -c '%h' L/f L/g
	r ln L/f L/d/h
	r stat -c '%h' L/f
	r sh -c '[ "$(stat -c %i L/f)" = "$(stat -c %i L/d/h)" ] && echo same inode'
	r rm L/g
	r stat -c '%h' L/f L/d/h
	r stat -c '%h' L L/d
	r mkdir L/d/s1 L/d/s2 L/d/s3
	r stat -c '%h' L/d
	r rmdir L/d/s1
	r stat -c '%h' L/d
	r mv L/d/s2 L/s2
	r stat -c '%h' L L/d L/s2
	r ln L/d L/dlink
	r ln -s f L/sym
	r ln -P L/sym L/sym2
	r stat -c '%h %F' L/sym L/sym2
	r ln L/f L/d/h
	r ln L/missing L/x
	r ln L/f L/f
	r rm L/f
	r stat -c '%h' L/d/h
	r cat L/d/h
	r rm L/d/h
	r ls L
	r stat -c '%h' L/d
	r stat -c '%h' .
	py <<'EOF'
os.makedirs("L2/a/b")
print("nlink L2/a", os.stat("L2/a").st_nlink)
fd = os.open("L2/f", os.O_CREAT | os.O_RDWR, 0o644)
os.link("L2/f", "L2/a/f2")
os.unlink("L2/f")
print("fstat nlink after unlink of one name:", os.fstat(fd).st_nlink)
os.unlink("L2/a/f2")
print("fstat nlink after unlink of both:", os.fstat(fd).st_nlink)
t("linkat of an unlinked file via /proc", linkat_follow, "/proc/self/fd/%d" % fd, "L2/back")
os.close(fd)
os.rmdir("L2/a/b")
print("nlink L2/a after rmdir:", os.stat("L2/a").st_nlink)
dfd = os.open("L2/a", os.O_RDONLY)
os.rmdir("L2/a")
print("fstat of removed dir nlink:", os.fstat(dfd).st_nlink)
t("create in removed dir", os.open, "/proc/self/fd/%d/x" % dfd, os.O_CREAT | os.O_WRONLY, 0o644)
os.close(dfd)
EOF
}

sec_symlinks() {
	mkdir S
	r ln -s target S/s1
	r readlink S/s1
	r stat -c '%s %F %A' S/s1
	r stat -L S/s1
	r test -e S/s1
	r cat S/s1
	echo hi >S/target
	r cat S/s1
	r stat -L -c '%s %F' S/s1
	r ln -s loop2 S/loop1
	r ln -s loop1 S/loop2
	r cat S/loop1
	r stat -L S/loop1
	r ln -s self S/self
	r touch S/self
	r ln -s ../S/target S/rel
	r cat S/rel
	r ln -s "$PWD/S/target" S/abs
	r readlink S/abs
	r cat S/abs
	r mkdir S/dir
	r ln -s dir S/dl
	r touch S/dl/inside
	r ls S/dir
	r rm S/dl/
	r rmdir S/dl
	r rm S/dl
	r ls S/dir
	r ln -s target S/s1
	r ln -sf target2 S/s1
	r readlink S/s1
	r sh -c 'i=0; prev=target; while [ $i -lt 41 ]; do ln -s $prev S/c$i; prev=c$i; i=$((i+1)); done'
	r cat S/c38
	r cat S/c39
	r cat S/c40
	py <<'EOF'
t("symlink 4095", os.symlink, "x" * 4095, "S/long")
print("readlink len", len(os.readlink("S/long")), os.lstat("S/long").st_size)
t("symlink 4096", os.symlink, "x" * 4096, "S/toolong")
t("symlink empty", os.symlink, "", "S/empty")
t("symlink onto existing", os.symlink, "a", "S/target")
t("readlink of file", os.readlink, "S/target")
t("chown symlink", lambda: os.chown("S/s1", 4242, 4242, follow_symlinks=False))
print("symlink owner", os.lstat("S/s1").st_uid, "target owner", os.stat("S/target").st_uid)
t("open O_PATH|O_NOFOLLOW", lambda: os.close(os.open("S/s1", os.O_PATH | os.O_NOFOLLOW)))
t("mkdir through dangling", os.mkdir, "S/s1")
os.symlink("nodir/x", "S/sub")
t("create through dangling into missing dir", os.open, "S/sub", os.O_CREAT | os.O_WRONLY, 0o644)
EOF
	r ls -la --time-style=+ S/s1 S/target
}

sec_readdir() {
	py <<'EOF'
os.mkdir("rd")
os.chdir("rd")
# open descriptors must survive a listing of their directory (READDIRPLUS
# hands the kernel the attributes of the same inodes)
fd = os.open("open-file", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o444)
os.mkdir("open-dir")
dfd = os.open("open-dir", os.O_RDONLY | os.O_DIRECTORY)
print("listing:", sorted(os.listdir(".")))
with os.scandir(".") as it:
    for e in sorted(it, key=lambda e: e.name):
        print("  scandir %s: dir %s file %s" % (e.name, e.is_dir(), e.is_file()))
t("fstat of the open file after listing", lambda: oct(os.fstat(fd).st_mode))
t("write through it", os.write, fd, b"x" * 5000)
t("read through it", lambda: len(os.pread(fd, 10000, 0)))
t("fchmod through it", os.fchmod, fd, 0o640)
t("fstat of the open dir after listing", lambda: oct(os.fstat(dfd).st_mode))
t("fchmod of the open dir", os.fchmod, dfd, 0o700)
os.listdir(".")
t("fstat again after a second listing", lambda: os.fstat(fd).st_size)
os.close(fd)
os.close(dfd)
# a bigger directory: every name once, d_type right, inode numbers agree
os.mkdir("big")
for i in range(1500):
    p = "big/n%04d" % i
    if i % 100 == 0: os.mkdir(p)
    elif i % 100 == 1: os.symlink("target", p)
    elif i % 100 == 2: os.mkfifo(p)
    else: os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
names = os.listdir("big")
print("big: %d entries, %d distinct, sorted sha %s" % (len(names), len(set(names)), sha("\n".join(sorted(names)).encode())))
kinds = {}
bad = 0
with os.scandir("big") as it:
    for e in it:
        k = "d" if e.is_dir(follow_symlinks=False) else "l" if e.is_symlink() else "f" if e.is_file(follow_symlinks=False) else "o"
        kinds[k] = kinds.get(k, 0) + 1
        if e.inode() != os.lstat(e.path).st_ino: bad += 1
print("kinds:", sorted(kinds.items()), "inode mismatches:", bad)
for i in range(0, 1500, 3):
    p = "big/n%04d" % i
    (os.rmdir if i % 100 == 0 else os.unlink)(p)
print("after removing every third:", len(os.listdir("big")))
# entries removed while a listing is under way are not returned twice
it = os.scandir("big")
first = [next(it).name for _ in range(10)]
for n in sorted(os.listdir("big"))[-50:]:
    os.unlink("big/" + n) if not os.path.isdir("big/" + n) else os.rmdir("big/" + n)
rest = [e.name for e in it]
it.close()
seen = first + rest
print("listing across removals: duplicates %d" % (len(seen) - len(set(seen))))
print("nlink of big:", os.stat("big").st_nlink, "of .:", os.stat(".").st_nlink)
EOF
}

sec_rename() {
	py <<'EOF'
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
NOREPLACE, EXCHANGE, WHITEOUT = 1, 2, 4
def ren2(a, b, flags):
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def state():
    out = []
    for root, dirs, files in os.walk("R"):
        for n in sorted(dirs + files):
            p = os.path.join(root, n)
            s = os.lstat(p)
            kind = "d" if stat.S_ISDIR(s.st_mode) else "l" if stat.S_ISLNK(s.st_mode) else "f"
            c = readall(p).decode() if kind == "f" else os.readlink(p) if kind == "l" else ""
            out.append("%s:%s%d:%s" % (p[2:], kind, s.st_nlink, c))
        dirs.sort()
    return " ".join(sorted(out))
os.makedirs("R/d1/sub")
os.makedirs("R/d2")
writeall("R/a", b"A"); writeall("R/b", b"B"); writeall("R/d1/c", b"C")
os.symlink("a", "R/ln")
steps = [
    ("NOREPLACE onto existing", "R/a", "R/b", NOREPLACE),
    ("NOREPLACE onto new", "R/a", "R/a2", NOREPLACE),
    ("EXCHANGE files", "R/a2", "R/b", EXCHANGE),
    ("EXCHANGE file and dir", "R/b", "R/d2", EXCHANGE),
    ("EXCHANGE across dirs", "R/d1/c", "R/a2", EXCHANGE),
    ("EXCHANGE with missing", "R/a2", "R/missing", EXCHANGE),
    ("NOREPLACE|EXCHANGE", "R/a2", "R/b", NOREPLACE | EXCHANGE),
    ("EXCHANGE dir into own subdir", "R/d1", "R/d1/sub", EXCHANGE),
    ("EXCHANGE symlink and file", "R/ln", "R/a2", EXCHANGE),
    ("EXCHANGE same", "R/a2", "R/a2", EXCHANGE),
    ("NOREPLACE onto dir", "R/ln", "R/d1", NOREPLACE),
    ("NOREPLACE dir onto itself", "R/d1", "R/d1", NOREPLACE),
    ("bad flags", "R/ln", "R/zz", 8),
    ("plain: file over dir", "R/ln", "R/d1", 0),
    ("plain: dir over file", "R/d1", "R/ln", 0),
    ("plain: dir into own subdir", "R/d1", "R/d1/sub/x", 0),
    ("plain: dir over empty dir", "R/d1/sub", "R/d2", 0),
    ("plain: dir over non-empty dir", "R/d2", "R/d1", 0),
    ("plain: onto itself", "R/ln", "R/ln", 0),
    ("plain: missing", "R/nothere", "R/x", 0),
    ("plain: into missing dir", "R/ln", "R/nodir/x", 0),
    ("plain: . ", "R/d1/.", "R/x", 0),
    ("plain: to ..", "R/ln", "R/d1/..", 0),
]
for label, a, b, fl in steps:
    t(label, ren2, a, b, fl)
    print("   ", state())
writeall("R/h1", b"H")
os.link("R/h1", "R/h2")
t("plain: hard links of one inode", ren2, "R/h1", "R/h2", 0)
print("   ", state())
t("EXCHANGE hard links of one inode", ren2, "R/h1", "R/h2", EXCHANGE)
print("   ", state())
EOF
}

sec_xattr() {
	mkdir X
	echo data >X/f
	r setfattr -n user.a -v hello X/f
	r getfattr -n user.a X/f
	r setfattr -n user.empty X/f
	r getfattr -n user.empty X/f
	r setfattr -n user.a -v replaced X/f
	r getfattr -n user.a --only-values X/f
	r sh -c 'getfattr -d X/f | sort'
	r getfattr -n user.missing X/f
	r setfattr -x user.missing X/f
	r setfattr -x user.a X/f
	r getfattr -n user.a X/f
	r sh -c 'getfattr -d X/f | sort'
	r setfattr -n user.hex -v 0x00ff00ff X/f
	r getfattr -e hex -n user.hex X/f
	r setfattr -n trusted.t -v root-only X/f
	r getfattr -n trusted.t X/f
	r setfattr -n bogus.ns -v x X/f
	r setfattr -n user. -v x X/f
	mkdir X/d
	r setfattr -n user.onDir -v 1 X/d
	r getfattr -n user.onDir X/d
	r ln -s f X/l
	r setfattr -h -n user.onLink -v 1 X/l
	r getfattr -h -d X/l
	r setfattr -n user.viaLink -v 1 X/l
	r getfattr -n user.viaLink X/f
	mkfifo X/fifo
	r setfattr -n user.onFifo -v 1 X/fifo
	py <<'EOF'
p = "X/sizes"
writeall(p, b"")
for n in (1, 100, 255, 4095, 4096, 4097, 65535, 65536, 65537):
    v = bytes((i * 7 + n) % 256 for i in range(n))
    def one():
        os.setxattr(p, "user.s%d" % n, v)
        got = os.getxattr(p, "user.s%d" % n)
        return "ok" if got == v else "BAD len %d" % len(got)
    t("value %d" % n, one)
t("name 255", os.setxattr, p, "user." + "n" * 250, b"v")
t("name 256", os.setxattr, p, "user." + "n" * 251, b"v")
t("XATTR_CREATE existing", os.setxattr, p, "user.s1", b"x", os.XATTR_CREATE)
t("XATTR_REPLACE missing", os.setxattr, p, "user.nope", b"x", os.XATTR_REPLACE)
t("XATTR_CREATE new", os.setxattr, p, "user.new", b"x", os.XATTR_CREATE)
t("XATTR_REPLACE existing", os.setxattr, p, "user.new", b"yy", os.XATTR_REPLACE)
print("after replace:", os.getxattr(p, "user.new"))
t("removexattr missing", os.removexattr, p, "user.nope")
print("list:", sorted(os.listxattr(p)))
# a small buffer gives ERANGE
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(4)
n = libc.getxattr(p.encode(), b"user.s100", buf, 4)
print("getxattr into 4 bytes:", n, errno.errorcode.get(ctypes.get_errno()))
n = libc.getxattr(p.encode(), b"user.s100", None, 0)
print("getxattr size query:", n)
n = libc.listxattr(p.encode(), buf, 4)
print("listxattr into 4 bytes:", n, errno.errorcode.get(ctypes.get_errno()))
n = libc.listxattr(p.encode(), None, 0)
print("listxattr size query:", n)
writeall("X/many", b"")
for i in range(200):
    os.setxattr("X/many", "user.k%03d" % i, b"v" * i)
l = os.listxattr("X/many")
print("200 attrs:", len(l), sha("\n".join(sorted(l)).encode()), sum(len(os.getxattr("X/many", k)) for k in l))
for i in range(0, 200, 2):
    os.removexattr("X/many", "user.k%03d" % i)
print("100 left:", len(os.listxattr("X/many")))
# xattrs stay with the inode across rename and link, go with unlink
os.rename("X/many", "X/many2")
os.link("X/many2", "X/many3")
print("via link:", os.getxattr("X/many3", "user.k001"))
dropc()
print("after drop caches:", os.getxattr("X/many3", "user.k199")[:5], len(os.listxattr("X/many2")))
EOF
}

sec_acl() {
	mkdir A
	touch A/f
	r setfacl -m u:sfstest:rw,g:sfstest:r A/f
	r getfacl A/f
	r stat -c '%A' A/f
	r chmod 640 A/f
	r getfacl A/f
	r setfacl -m m::rwx A/f
	r stat -c '%A' A/f
	r chmod g-w A/f
	r getfacl -c A/f
	r setfacl -x u:sfstest A/f
	r getfacl -c A/f
	r setfacl -b A/f
	r getfacl -c A/f
	r stat -c '%A' A/f
	r setfacl -m u:nosuchuser:r A/f
	r setfacl -m u:4243:r,g:4243:rw A/f
	r getfacl -c -n A/f
	r setfacl --set u::rw,g::r,o::-,u:sfstest:rwx,m::rw A/f
	r getfacl -c A/f
	r stat -c '%A' A/f
	r chmod 0755 A/f
	r getfacl -c A/f
	mkdir A/d
	r setfacl -d -m u:sfstest:rwx,g::rx,o::- A/d
	r getfacl A/d
	touch A/d/newfile
	mkdir A/d/newdir
	r getfacl -c A/d/newfile A/d/newdir
	r stat -c '%n %A' A/d/newfile A/d/newdir
	mkdir -m 700 A/d/dir700
	install -m 600 /dev/null A/d/file600
	r getfacl -c A/d/dir700 A/d/file600
	touch A/d/newdir/deeper
	r getfacl -c A/d/newdir/deeper
	r setfacl -k A/d
	touch A/d/after
	r getfacl -c A/d/after
	r stat -c '%n %A' A/d/after
	r setfacl -d -m u::rwx,g::-,o::- A/d
	touch A/d/after2
	r getfacl -c A/d/after2
	r stat -c '%A' A/d/after2
	r getfattr -d -m - -e hex A/f
	r setfacl -m u:sfstest:r A/missing
	r sh -c 'getfacl A/d | setfacl --set-file=- A/f && getfacl -c A/f'
	r setfacl -m d:u:sfstest:r A/f
	ln -s f A/l
	r getfacl A/l
	r getfacl -P A/l
	cp -a A/d/newfile A/copy
	r getfacl -c A/copy
}

sec_perms() {
	local U="as_user $SFS_UID $SFS_UID" O="as_user $SFS_UID2 $SFS_UID2"
	mkdir P
	chmod 755 P
	mkdir P/private
	chmod 700 P/private
	echo secret >P/private/secret
	r $U ls P/private
	r $U cat P/private/secret
	r $U touch P/private/new
	r $U stat -c %s P/private/secret
	r $U touch P/notmine
	mkdir P/sticky
	chmod 1777 P/sticky
	echo r >P/sticky/rootfile
	chmod 666 P/sticky/rootfile
	r $U rm -f P/sticky/rootfile
	r $U mv P/sticky/rootfile P/sticky/moved
	r $U sh -c 'echo appended >> P/sticky/rootfile'
	r $U dd if=/dev/null of=P/sticky/rootfile conv=notrunc status=none
	r $U sh -c 'printf x | dd of=P/sticky/rootfile conv=notrunc status=none && cat P/sticky/rootfile'
	r $U touch P/sticky/userfile
	r $O rm -f P/sticky/userfile
	r $O mv P/sticky/userfile P/sticky/taken
	r $O touch P/sticky/userfile
	r $O touch -d @1000 P/sticky/userfile
	r $U touch -d @1000 P/sticky/userfile
	r $U rm P/sticky/userfile
	r $U mkdir P/sticky/udir
	r $O rmdir P/sticky/udir
	r rm P/sticky/rootfile
	r ls P/sticky
	mkdir P/sg
	chgrp "$SFS_UID" P/sg
	chmod 2777 P/sg
	touch P/sg/rootfile
	mkdir P/sg/rootdir
	r $U touch P/sg/userfile
	r $U mkdir P/sg/userdir
	r $O touch P/sg/otherfile
	r $O mkdir P/sg/otherdir
	r $O python3 -c 'import os; os.close(os.open("P/sg/othersgid", os.O_CREAT|os.O_WRONLY, 0o2775))'
	r $U python3 -c 'import os; os.close(os.open("P/sg/usersgid", os.O_CREAT|os.O_WRONLY, 0o2775))'
	r $O chmod 2755 P/sg/otherfile
	r $U chmod 2755 P/sg/userfile
	r $O mkdir -m 2755 P/sg/othersgdir
	r stat -c '%n %U:%G %A' P/sg P/sg/rootfile P/sg/rootdir P/sg/userfile P/sg/userdir P/sg/otherfile \
		P/sg/otherdir P/sg/othersgid P/sg/usersgid P/sg/othersgdir
	r $U touch P/sg/userdir/deep
	r stat -c '%n %U:%G %A' P/sg/userdir/deep
	# set-id bits: cleared by a write from someone else, by chown
	echo x >P/suid
	chmod 6777 P/suid
	r $U sh -c 'echo more >> P/suid'
	r stat -c '%A' P/suid
	chmod 6777 P/suid
	r sh -c 'echo root >> P/suid'
	r stat -c '%A' P/suid
	r $U truncate -s 0 P/suid
	r stat -c '%A' P/suid
	chmod 6777 P/suid
	r chown "$SFS_UID" P/suid
	r stat -c '%A %U' P/suid
	echo x >P/sgidnox
	chmod 2767 P/sgidnox
	r $U sh -c 'echo more >> P/sgidnox'
	r stat -c '%A' P/sgidnox
	# owner-only operations
	echo x >P/rootfile
	chmod 666 P/rootfile
	r $U chmod 777 P/rootfile
	r $U chown "$SFS_UID" P/rootfile
	r $U chgrp "$SFS_UID" P/rootfile
	r $U touch P/rootfile
	r $U touch -d @1000 P/rootfile
	r $U setfattr -n user.x -v 1 P/rootfile
	r $U getfattr -n user.x P/rootfile
	chmod 644 P/rootfile
	r $U sh -c 'echo x >> P/rootfile'
	r $U setfattr -n user.y -v 1 P/rootfile
	r $U truncate -s 0 P/rootfile
	r $U touch P/rootfile
	printf '#!/bin/sh\necho ran\n' >P/script
	chmod 644 P/script
	r $U ./P/script
	chmod 755 P/script
	r $U ./P/script
	r $U sh -c 'cd P/private'
	mkdir P/noexec
	chmod 766 P/noexec
	touch P/noexec/f
	r $U ls P/noexec
	r $U stat P/noexec/f
	chmod 733 P/noexec
	r $U ls P/noexec
	r $U cat P/noexec/f
	r $U touch P/noexec/userfile
	# ACLs grant and deny
	echo acl >P/aclf
	chmod 600 P/aclf
	r $U cat P/aclf
	r setfacl -m u:sfstest:r P/aclf
	r $U cat P/aclf
	r $U sh -c 'echo x >> P/aclf'
	r setfacl -m m::- P/aclf
	r $U cat P/aclf
	r setfacl -m g:sfstest:r,m::r P/aclf
	r setfacl -x u:sfstest P/aclf
	r $U cat P/aclf
	r $O cat P/aclf
	r setfacl -m u:sfstest:-,g:sfstest:r P/aclf
	r $U cat P/aclf
	# a user's own file
	r $U sh -c 'umask 077; echo mine > userown; chmod 604 userown; stat -c "%A %U:%G" userown'
	r $U chown "$SFS_UID2" userown
	r $U chgrp 0 userown
	r $O cat userown
	r $U rm userown
}

sec_times() {
	py <<'EOF'
import subprocess
os.mkdir("ts")
def st(p):
    try:
        s = os.lstat(p)
        return (s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns)
    except OSError as e:
        return ename(e)
n = 0
def step(label, fn, *paths):
    global n
    n += 1
    # a path, or (path before, path after) for something renamed
    paths = [p if isinstance(p, tuple) else (p, p) for p in paths]
    before = [st(p[0]) for p in paths]
    time.sleep(0.02)
    try:
        fn()
        res = "ok"
    except OSError as e:
        res = ename(e)
    after = [st(p[1]) for p in paths]
    out = []
    for i, (p0, p) in enumerate(paths):
        b, a = before[i], after[i]
        if isinstance(b, str) or isinstance(a, str):
            out.append("%s %s->%s" % (p, b if isinstance(b, str) else "ok", a if isinstance(a, str) else "ok"))
        else:
            out.append("%s a%s m%s c%s" % (p, *("+" if a[i] != b[i] else "=" for i in range(3))))
    print("%02d %s [%s]: %s" % (n, label, res, "; ".join(out)))
def w(p, data, flags=os.O_WRONLY | os.O_APPEND):
    def f():
        fd = os.open(p, flags, 0o644)
        os.write(fd, data)
        os.close(fd)
    return f
def rd(p):
    def f():
        with open(p, "rb") as fh: fh.read()
    return f
def op(p, flags):
    return lambda: os.close(os.open(p, flags, 0o644))
def sh(*cmd):
    return lambda: subprocess.run(cmd, check=True)
def mm(p):
    def f():
        fd = os.open(p, os.O_RDWR)
        m = mmap.mmap(fd, 0, mmap.MAP_SHARED)
        m[0:1] = b"M"
        m.flush()
        m.close()
        os.close(fd)
    return f
def xs():
    os.setxattr("ts/f", "user.t", b"1")
def xr():
    os.removexattr("ts/f", "user.t")
def fa():
    fd = os.open("ts/f", os.O_RDWR)
    os.posix_fallocate(fd, 0, 4096)
    os.close(fd)
def ls(p):
    return lambda: os.listdir(p)

step("create", op("ts/f", os.O_CREAT | os.O_WRONLY), "ts", "ts/f")
step("write", w("ts/f", b"abc"), "ts", "ts/f")
step("read after write", rd("ts/f"), "ts/f")
step("read again", rd("ts/f"), "ts/f")
step("write 0 bytes", w("ts/f", b""), "ts/f")
step("open O_RDONLY, no read", op("ts/f", os.O_RDONLY), "ts/f")
step("open O_WRONLY, no write", op("ts/f", os.O_WRONLY), "ts/f")
step("truncate shorter", lambda: os.truncate("ts/f", 1), "ts/f")
step("truncate same size", lambda: os.truncate("ts/f", 1), "ts/f")
step("truncate longer", lambda: os.truncate("ts/f", 10), "ts/f")
step("ftruncate same size", lambda: (lambda fd: (os.ftruncate(fd, 10), os.close(fd)))(os.open("ts/f", os.O_WRONLY)), "ts/f")
step("O_TRUNC non-empty", op("ts/f", os.O_WRONLY | os.O_TRUNC), "ts/f")
step("O_TRUNC empty", op("ts/f", os.O_WRONLY | os.O_TRUNC), "ts/f")
step("O_CREAT existing", op("ts/f", os.O_WRONLY | os.O_CREAT), "ts", "ts/f")
step("write 100", w("ts/f", b"x" * 100), "ts/f")
step("pwrite overwrite", lambda: (lambda fd: (os.pwrite(fd, b"y", 5), os.close(fd)))(os.open("ts/f", os.O_WRONLY)), "ts/f")
step("chmod", lambda: os.chmod("ts/f", 0o600), "ts", "ts/f")
step("chmod same", lambda: os.chmod("ts/f", 0o600), "ts/f")
step("chown same", lambda: os.chown("ts/f", 0, 0), "ts/f")
step("chown other", lambda: os.chown("ts/f", 4242, -1), "ts/f")
step("setxattr", xs, "ts/f")
step("removexattr", xr, "ts/f")
step("link", lambda: os.link("ts/f", "ts/l"), "ts", "ts/f")
step("unlink other name", lambda: os.unlink("ts/l"), "ts", "ts/f")
step("rename in dir", lambda: os.rename("ts/f", "ts/g"), "ts", ("ts/f", "ts/g"))
step("mkdir", lambda: os.mkdir("ts/sub"), "ts", "ts/sub")
step("rename across dirs", lambda: os.rename("ts/g", "ts/sub/g"), "ts", "ts/sub", ("ts/g", "ts/sub/g"))
os.rename("ts/sub/g", "ts/f")
step("rename dir", lambda: os.rename("ts/sub", "ts/sub2"), "ts", ("ts/sub", "ts/sub2"))
step("readdir", ls("ts"), "ts")
step("readdir again", ls("ts"), "ts")
step("touch", sh("touch", "ts/f"), "ts/f")
step("touch -a", sh("touch", "-a", "ts/f"), "ts/f")
step("touch -m", sh("touch", "-m", "ts/f"), "ts/f")
step("touch -d", sh("touch", "-d", "@1000000000.123456789", "ts/f"), "ts/f")
print("   exact:", os.stat("ts/f").st_atime_ns, os.stat("ts/f").st_mtime_ns)
step("utime ns", lambda: os.utime("ts/f", ns=(1000000001, 2000000002)), "ts/f")
print("   exact:", os.stat("ts/f").st_atime_ns, os.stat("ts/f").st_mtime_ns)
step("read after utime to past", rd("ts/f"), "ts/f")
step("mmap store + msync", mm("ts/f"), "ts/f")
step("posix_fallocate inside", fa, "ts/f")
step("append write", w("ts/f", b"tail"), "ts/f")
step("symlink", lambda: os.symlink("f", "ts/sub2/s"), "ts/sub2")
step("utime symlink itself", lambda: os.utime("ts/sub2/s", ns=(5, 6), follow_symlinks=False), "ts/sub2/s", "ts/f")
print("   exact:", os.lstat("ts/sub2/s").st_atime_ns, os.lstat("ts/sub2/s").st_mtime_ns)
step("readlink", lambda: os.readlink("ts/sub2/s"), "ts/sub2/s")
step("create in subdir", op("ts/sub2/n", os.O_CREAT | os.O_WRONLY), "ts", "ts/sub2")
step("unlink in subdir", lambda: os.unlink("ts/sub2/n"), "ts", "ts/sub2")
step("rmdir", lambda: os.rmdir("ts/sub2/e") if os.path.exists("ts/sub2/e") else (os.mkdir("ts/sub2/e"), time.sleep(0.02), os.rmdir("ts/sub2/e")), "ts/sub2")
step("chmod dir", lambda: os.chmod("ts/sub2", 0o700), "ts", "ts/sub2")
writeall("ts/victim", b"v")
step("rename over existing", lambda: os.rename("ts/f", "ts/victim"), "ts", ("ts/f", "ts/victim"))
step("failed unlink", lambda: os.unlink("ts/nothere"), "ts")
step("failed mkdir", lambda: os.mkdir("ts/victim"), "ts")
EOF
}

sec_unlink_open() {
	py "$T/data/r8m" <<'EOF'
src = readall(sys.argv[1])
def used():
    s = os.statvfs(".")
    return (s.f_blocks - s.f_bfree) * s.f_frsize
os.mkdir("uo")
u0 = used()
fd = os.open("uo/f", os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, src[:4 << 20])
os.fsync(fd)
os.unlink("uo/f")
print("after unlink: exists", os.path.exists("uo/f"), "listing", os.listdir("uo"), "nlink", os.fstat(fd).st_nlink)
os.write(fd, src[4 << 20:])
os.fsync(fd)
print("fstat size", os.fstat(fd).st_size)
print("content", "ok" if os.pread(fd, 9 << 20, 0) == src else "BAD")
os.lseek(fd, 0, os.SEEK_SET)
print("read from 0:", "ok" if os.read(fd, 1 << 20) == src[:1 << 20] else "BAD")
os.ftruncate(fd, 1 << 20)
os.ftruncate(fd, 8 << 20)
print("after shrink/grow:", "ok" if os.pread(fd, 8 << 20, 0) == src[:1 << 20] + bytes(7 << 20) else "BAD")
os.pwrite(fd, src[1 << 20:], 1 << 20)
dropc()
print("after drop caches:", "ok" if os.pread(fd, 9 << 20, 0) == src else "BAD")
held = used() - u0
print("space held while open:", "yes" if held >= (15 << 19) else "NO (%d bytes)" % held)
writeall("uo/f", b"new file, same name")
print("new file with the same name:", readall("uo/f"), "old fd still", os.fstat(fd).st_size)
os.close(fd)
os.unlink("uo/f")
for i in range(40):
    if used() - u0 < (1 << 20):
        break
    time.sleep(0.05)
print("space freed after close:", "yes" if used() - u0 < (1 << 20) else "NO (%d bytes still)" % (used() - u0))
EOF
}

# df on size=64m mounts: total, used up after 10 MiB, down after delete.
sec_df() {
	py "$T/data/r8m" <<'EOF'
import subprocess
def df():
    out = subprocess.run(["df", "-B1", "--output=size,used,avail", "."], capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split("\n")[1].split()]
size, used0, avail0 = df()
print("df total 64 MiB +- 4096:", "yes" if abs(size - (64 << 20)) <= 4096 else "NO (%d)" % size)
print("df used+avail <= total:", "yes" if used0 + avail0 <= size else "NO")
print("df used at start < 1 MiB:", "yes" if used0 < (1 << 20) else "NO (%d)" % used0)
subprocess.run(["dd", "if=/dev/urandom", "of=ten", "bs=1M", "count=10", "conv=fsync", "status=none"], check=True)
_, used1, avail1 = df()
d = used1 - used0
print("used rose by 10 MiB (+ <= 256 KiB):", "yes" if (10 << 20) <= d <= (10 << 20) + (256 << 10) else "NO (%d)" % d)
# (sectorfs's avail leaves out the sector tables the space would need, a
# 0.2% share of it: see sec_df_fill)
print("avail fell by as much:", "yes" if abs((avail0 - avail1) - d) <= 4096 + d // 256 else "NO (%d vs %d)" % (avail0 - avail1, d))
os.unlink("ten")
for i in range(40):
    _, used2, _ = df()
    if used2 - used0 <= (64 << 10): break
    time.sleep(0.05)
print("used back to start after delete (within 2 s):", "yes" if used2 - used0 <= (64 << 10) else "NO (%d above)" % (used2 - used0))
s = os.statvfs(".")
print("statvfs: frsize*blocks == df total:", s.f_frsize * s.f_blocks == size, "namemax", s.f_namemax)
EOF
}

# df's word: all the space statfs says is available goes into one new file,
# by fallocate and by writing it; then none is left.  (What happens to one
# more byte differs: sectorfs's available space keeps back what a new file's
# inode and name might need, which the file itself does not take.)
sec_df_fill() {
	py <<'EOF'
def avail():
    s = os.statvfs(".")
    return s.f_bavail * s.f_frsize
a = avail()
fd = os.open("fill", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
t("fallocate of all that is available", os.posix_fallocate, fd, 0, a)
print("available then: %s" % ("none" if avail() == 0 else "%d bytes" % avail()))
os.close(fd)
os.unlink("fill")
time.sleep(0.2)
a = avail()
fd = os.open("fill", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
chunk = b"w" * (1 << 20)
def write_all():
    left = a
    while left:
        left -= os.write(fd, chunk[:min(left, len(chunk))])
t("writing all that is available", write_all)
print("available then: %s" % ("none" if avail() == 0 else "%d bytes" % avail()))
os.close(fd)
os.unlink("fill")
EOF
}

# nr_inodes: every file and directory, the root included, takes one.
sec_inodes() {
	r sh -c "df --output=itotal,iused,iavail . | tail -1"
	py <<'EOF'
made = []
for i in range(100):
    try:
        if i % 5 == 4:
            os.mkdir("d%d" % i)
        else:
            os.close(os.open("f%d" % i, os.O_CREAT | os.O_WRONLY, 0o644))
        made.append(i)
    except OSError as e:
        print("created %d before %s" % (len(made), ename(e)))
        break
t("symlink when full", os.symlink, "x", "sl")
t("hard link when full", os.link, "f0", "f0link")
t("mkdir when full", os.mkdir, "dd")
for i in made[:10]:
    if i % 5 == 4: os.rmdir("d%d" % i)
    else: os.unlink("f%d" % i)
time.sleep(0.3)
again = 0
for i in range(20):
    try:
        os.close(os.open("g%d" % i, os.O_CREAT | os.O_WRONLY, 0o644))
        again += 1
    except OSError as e:
        print("after deleting 10: created %d more before %s" % (again, ename(e)))
        break
EOF
	r sh -c "df --output=itotal,iused,iavail . | tail -1"
}

# ENOSPC on size=32m mounts: behavior only (where it strikes differs).
sec_enospc() {
	local i
	mkdir E
	for i in 1 2 3 4; do cp "$T/data/f1048577" "E/small$i"; done
	cp "$T/data/r8m" E/eight
	local rc=0 out
	out=$(dd if=/dev/zero of=E/big bs=1M count=48 conv=fsync 2>&1) || rc=$?
	echo "dd 48 MiB into 32 MiB: $([ $rc -ne 0 ] && echo failed || echo SUCCEEDED)," \
		"$([[ "$out" == *"No space left on device"* ]] && echo ENOSPC || echo "other error: $out")"
	local bigsize
	bigsize=$(stat -c %s E/big)
	echo "big file holds 8..32 MiB: $([ "$bigsize" -ge $((8 << 20)) ] && [ "$bigsize" -le $((32 << 20)) ] && echo yes || echo "NO ($bigsize)")"
	drop_caches
	echo "big file reads back as zeros: $(cmp -s -n "$bigsize" E/big /dev/zero && echo yes || echo NO)"
	for i in 1 2 3 4; do
		echo "small$i after ENOSPC: $(cmp -s "E/small$i" "$T/data/f1048577" && echo same || echo DIFFERENT)"
	done
	echo "eight after ENOSPC: $(cmp -s E/eight "$T/data/r8m" && echo same || echo DIFFERENT)"
	rm -f E/big
	local avail n=0
	while :; do
		avail=$(df -B1 --output=avail . | tail -1)
		[ "$avail" -ge $((9 << 20)) ] && break
		n=$((n + 1))
		[ $n -ge 40 ] && break
		sleep 0.05
	done
	echo "space back after rm (>= 9 MiB free within 2 s): $([ "$avail" -ge $((9 << 20)) ] && echo yes || echo "NO ($avail)")"
	rc=0
	dd if="$T/data/r8m" of=E/new8 bs=1M conv=fsync status=none || rc=$?
	drop_caches
	echo "new 8 MiB file: rc=$rc $(cmp -s E/new8 "$T/data/r8m" && echo same || echo DIFFERENT)"
	for i in 1 2 3 4; do
		echo "small$i at the end: $(cmp -s "E/small$i" "$T/data/f1048577" && echo same || echo DIFFERENT)"
	done
}

# ------------------------------------------------------------------------
section "data round trips at sector-boundary sizes (cp, dd bs=4097, pipe bs=511, overwrites)" sec_roundtrip
section "extended regions read as zeros (truncate up, write past end, shrink then grow)" sec_extend
section "sparse file past 4 GiB: SEEK_DATA / SEEK_HOLE, reads in holes" sec_sparse
section "fallocate -l, -n, -p, -d, -c, -i, -x, posix_fallocate: sizes, blocks, holes" sec_fallocate
zero_range_checks
section "open flags: O_APPEND, O_TRUNC, O_EXCL, O_CREAT, errors" sec_openflags
section "O_TMPFILE, linkat, O_EXCL, O_RDONLY" tmpfile_probe
section "birth time (statx btime): known, kept" sec_btime
section "shared writable mmap, msync, read() coherence" sec_mmap
section "direct and cached descriptors mixed: coherence, mmap, appends, O_TRUNC" sec_direct
direct_cache_checks "$SM" auto
section "fsync, fdatasync, O_SYNC, O_DSYNC" sec_fsync
section "hard links and link counts (files, directories)" sec_links
section "symlinks: readlink, dangling, ELOOP, 40-link chains, long targets" sec_symlinks
section "readdir: open descriptors survive a listing, big directories, d_type, inode numbers" sec_readdir
section "rename and renameat2 NOREPLACE / EXCHANGE" sec_rename
section "xattrs: user.*, trusted.*, sizes, flags, removal, missing" sec_xattr
section "POSIX ACLs: named entries, mask, default inheritance, chmod" sec_acl
section "permissions as uid $SFS_UID / $SFS_UID2: 0700 dir, sticky dir, setgid dir, set-id bits, ACLs" sec_perms
section "timestamps: which of atime/mtime/ctime each operation changes" sec_times
section "unlink while open: fd keeps working, space freed at close" sec_unlink_open

# Our own size / inode limits, on fresh mounts of each kind.
TM64=$T/tmpfs64
SM64=$T/sfs64
mount_tmpfs "$TM64" size=64m,mode=1777
mount_sfs "$SM64" size=64m
section "df with size=64m: total, used after writing 10 MiB and after deleting it" sec_df "$TM64" "$SM64"
section "df with size=64m: all that is available fits in one new file" sec_df_fill "$TM64" "$SM64"
force_unmount "$TM64"
unmount_sfs "$SM64"

TMI=$T/tmpfsi
SMI=$T/sfsi
mount_tmpfs "$TMI" nr_inodes=50,mode=1777
mount_sfs "$SMI" nr_inodes=50
section "nr_inodes=50: files and directories until ENOSPC, and after deleting" sec_inodes "$TMI" "$SMI"
force_unmount "$TMI"
unmount_sfs "$SMI"

TM32=$T/tmpfs32
SM32=$T/sfs32
mount_tmpfs "$TM32" size=32m,mode=1777
mount_sfs "$SM32" size=32m
section "ENOSPC with size=32m: dd fails, earlier files intact, space comes back" sec_enospc "$TM32" "$SM32"
force_unmount "$TM32"
unmount_sfs "$SM32"

# The round trips again with the smallest and largest sector sizes.
for ss in 512 65536; do
	S2=$T/sfs-ss$ss
	mount_sfs "$S2" "size=256m,sector_size=$ss"
	TM2=$T/tmpfs-ss$ss
	mount_tmpfs "$TM2" size=256m,mode=1777
	section "sector_size=$ss: round trips" sec_roundtrip "$TM2" "$S2"
	section "sector_size=$ss: extended regions" sec_extend "$TM2" "$S2"
	section "sector_size=$ss: mmap" sec_mmap "$TM2" "$S2"
	section "sector_size=$ss: all that is available fits in one new file" sec_df_fill "$TM2" "$S2"
	force_unmount "$TM2"
	unmount_sfs "$S2"
done

# The data paths again with the kernel's writeback cache (-o writeback),
# with cache=open, and with every or no writing descriptor past the cache.
# Over io_uring (SFS_TRANSPORT=uring) only writeback, whose background
# writes take the ring's own path: the cache policies are the same code on
# both transports, and the /dev/fuse run covers them (each round reads
# some 40 GiB of sparse files through the mount).
extras="writeback cache=open direct_write=off direct_write=all"
if [ "${SFS_TRANSPORT:-}" = uring ]; then
	extras=writeback
	say "io_uring: the cache=open and direct_write= rounds are left to the /dev/fuse run"
fi
for extra in $extras; do
	S2=$T/sfs-${extra//=/-}
	mount_sfs "$S2" "size=512m,$extra"
	TM2=$T/tmpfs-${extra//=/-}
	mount_tmpfs "$TM2" size=512m,mode=1777
	section "$extra: round trips" sec_roundtrip "$TM2" "$S2"
	section "$extra: extended regions" sec_extend "$TM2" "$S2"
	section "$extra: sparse files" sec_sparse "$TM2" "$S2"
	section "$extra: open flags" sec_openflags "$TM2" "$S2"
	section "$extra: mmap" sec_mmap "$TM2" "$S2"
	section "$extra: direct and cached descriptors" sec_direct "$TM2" "$S2"
	section "$extra: unlink while open" sec_unlink_open "$TM2" "$S2"
	case $extra in
	direct_write=*) direct_cache_checks "$S2" "${extra#direct_write=}" ;;
	writeback) direct_cache_checks "$S2" off ;; # writeback gathers small writes in the cache
	esac
	force_unmount "$TM2"
	unmount_sfs "$S2"
done

writeback_enospc_check

# Still consistent at the end: the main mount unmounts cleanly.
unmount_sfs "$SM"
mt_pass
