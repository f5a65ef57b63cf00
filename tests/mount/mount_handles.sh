#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_handles.sh - file handles (name_to_handle_at, open_by_handle_at: what
# NFS export and fanotify's FID events use), on a fresh tmpfs and a fresh
# sectorfs side by side.  Handles of files, directories, a symlink and the
# root are taken, the kernel's caches of dentries and inodes are dropped
# (through FUSE the kernel then no longer holds the inodes, and must ask
# the daemon for each by number), and every handle is opened again: each
# must name its object, a file renamed meanwhile too; a handle of a file
# deleted since, or deleted and replaced under the same name, is stale.
# An ordinary user can take handles but not open them (CAP_DAC_READ_SEARCH).
#
# usage: mount_handles.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=100
mt_init mount_handles "$@"
ensure_user

mount_side_by_side size=64m,mode=1777 size=64m,allow_other

HANDLES='
def handle_of(path, flags=0):
    # struct file_handle: handle_bytes, handle_type, then up to 128 bytes
    buf = ctypes.create_string_buffer(8 + 128)
    buf[0:4] = struct.pack("<I", 128)
    mount_id = ctypes.c_int()
    if _libc.name_to_handle_at(-100, path.encode(), buf, ctypes.byref(mount_id), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return buf
def open_handle(mfd, h, flags):
    fd = _libc.open_by_handle_at(mfd, h, flags)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return fd
def drop_inodes():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")
'

sec_handles() {
	py <<EOF
$HANDLES
os.makedirs("h/sub/deeper")
writeall("h/f", b"file")
writeall("h/sub/deeper/g", b"deep")
writeall("h/gone", b"x")
writeall("h/replaced", b"old")
writeall("h/moved", b"moving")
writeall("h/linked", b"two names")
os.link("h/linked", "h/sub/second")
os.symlink("f", "h/sym")
objs = ["h/f", "h", "h/sub", "h/sub/deeper", "h/sub/deeper/g", "h/gone", "h/replaced",
        "h/moved", "h/linked", ".", "h/sym"]
hs = {p: handle_of(p) for p in objs}
inos = {p: os.lstat(p).st_ino for p in objs}
os.unlink("h/gone")
os.unlink("h/replaced")
writeall("h/replaced", b"new")
os.rename("h/moved", "h/sub/deeper/moved")
os.unlink("h/linked")
mfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
for rnd in range(2):
    drop_inodes()
    for p in objs:
        def one():
            fd = open_handle(mfd, hs[p], os.O_PATH | os.O_NOFOLLOW if p == "h/sym" else os.O_RDONLY)
            try:
                st = os.fstat(fd)
                what = "same inode" if st.st_ino == inos[p] else "ANOTHER inode"
                if stat.S_ISREG(st.st_mode):
                    what += ", reads %r" % os.pread(fd, 100, 0)
                elif stat.S_ISDIR(st.st_mode):
                    what += ", lists %s" % sorted(os.listdir(fd))
                else:
                    what += ", %s" % stat.filemode(st.st_mode)[0]
                return what
            finally:
                os.close(fd)
        t("round %d: %s" % (rnd, p), one)
os.close(mfd)
EOF
}

# The handles of one filesystem are its own (their bytes differ): only
# what an ordinary user may do with them is compared.
sec_user() {
	py <<EOF
$HANDLES
os.makedirs("u", exist_ok=True)
writeall("u/f", b"user")
os.chmod("u/f", 0o644)
pid = os.fork()
if pid == 0:
    os.setgroups([$SFS_UID]); os.setresgid($SFS_UID, $SFS_UID, $SFS_UID); os.setresuid($SFS_UID, $SFS_UID, $SFS_UID)
    t("name_to_handle_at as a user", lambda: "ok" if handle_of("u/f") else "none")
    h = handle_of("u/f")
    mfd = os.open(".", os.O_RDONLY)
    t("open_by_handle_at as a user", open_handle, mfd, h, os.O_RDONLY)
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
EOF
}

section "handles after the kernel dropped its inodes: files, directories, a symlink, the root, moved, deleted, replaced" sec_handles
section "handles as an ordinary user: taken, not opened" sec_user

unmount_sfs "$SM"
mt_pass
