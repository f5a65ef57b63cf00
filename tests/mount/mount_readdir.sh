#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_readdir.sh - a listing ends, on a fresh tmpfs and a fresh sectorfs
# side by side.  A program lists a directory of 15,000 files and renames
# each file it is given (then a new file every 100 names) while the listing
# goes on: since Linux 6.13 tmpfs lists the entries that existed when the
# listing started, each once, and none of the new names, so the listing
# ends.  Also: a second reader that started before the renames and goes on
# after them gets no name twice and ends (which new names it gets is not
# compared: on tmpfs it depends on where its cursor stood, see README); a
# file created before a rewinddir() is listed, and so is one created
# between opendir() and the first readdir() (a listing starts there).
#
# usage: mount_readdir.sh [SECTORFS_BINARY_OR_BUILD_DIR]     (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=100
mt_init mount_readdir "$@"

mount_side_by_side size=64m,mode=1777 size=64m

sec_rename_while_listing() {
	py <<'EOF'
N = 15000
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.c_void_p
libc.readdir.argtypes = [ctypes.c_void_p]
libc.rewinddir.argtypes = [ctypes.c_void_p]
libc.closedir.argtypes = [ctypes.c_void_p]
def names(d, limit):
    # readdir(3) until the end or `limit` names (d_name is at 19 in glibc's dirent64)
    out = []
    while len(out) < limit:
        p = libc.readdir(d)
        if not p:
            break
        n = ctypes.string_at(p + 19).decode()
        if n not in (".", ".."):
            out.append(n)
    return out
def report(label, got, expect):
    extra = sorted(set(got) - set(expect))
    print("%s: %d names, %d distinct, %d of the %d expected, unexpected %s" % (
        label, len(got), len(set(got)), len(set(got) & set(expect)), len(expect),
        extra[:5] + (["..."] if len(extra) > 5 else [])))
os.mkdir("big")
for i in range(N):
    os.close(os.open("big/f%05d" % i, os.O_CREAT | os.O_WRONLY, 0o644))
first = ["f%05d" % i for i in range(N)]
other = libc.opendir(b"big")          # a second reader, started before the renames
started = names(other, 1)
d = libc.opendir(b"big")
seen = []
made = 0
while len(seen) < 3 * N:
    got = names(d, 1)
    if not got:
        break
    n = got[0]
    seen.append(n)
    nxt = {"f": "g", "g": "h", "h": "i", "i": "f"}.get(n[0])
    if nxt:
        os.rename("big/" + n, "big/" + nxt + n[1:])
    if len(seen) % 100 == 0:
        os.close(os.open("big/n%05d" % made, os.O_CREAT | os.O_WRONLY, 0o644))
        made += 1
print("listing ended:", len(seen) < 3 * N)
report("renaming each name it is given", seen, first)
# (how many old names it still gets depends on what its getdents() took
# ahead, which differs, and tmpfs gives it some new ones: not compared)
rest = started + names(other, 3 * N)
print("the second reader: ended, no name twice:", len(rest) < 3 * N and len(rest) == len(set(rest)))
libc.closedir(other)
now = sorted(os.listdir("big"))
print("afterwards:", len(now), "names,", sum(1 for n in now if n[0] == "g"), "renamed,", made, "created")
# a rewind lists what exists then
os.close(os.open("big/late", os.O_CREAT | os.O_WRONLY, 0o644))
libc.rewinddir(d)
report("after rewinddir", names(d, 3 * N), now + ["late"])
libc.closedir(d)
# created between opendir and the first readdir: not listed
d = libc.opendir(b"big")
os.close(os.open("big/after-open", os.O_CREAT | os.O_WRONLY, 0o644))
os.unlink("big/late")
got = names(d, 3 * N)
print("created after opendir listed:", "after-open" in got, "; removed after opendir listed:", "late" in got,
      "; names:", len(got))
libc.closedir(d)
EOF
}

# The prelude's libc is ctypes.CDLL(None); py() runs this with it.
PY_PRELUDE="$PY_PRELUDE
libc = _libc"
section "rename each of 15,000 names while listing them: every old name once, none new, the listing ends" \
	sec_rename_while_listing

unmount_sfs "$SM"
mt_pass
