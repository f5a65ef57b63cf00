#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_ring_fallback.sh - the choice of transport (io_uring=auto|on|off)
# against the kernel's switch /sys/module/fuse/parameters/enable_uring,
# which this test turns on and off and puts back as it was at exit:
#   - switch off: io_uring=on refuses with one line naming the switch,
#     exit 1, nothing mounted, no daemon left; auto falls back to
#     /dev/fuse and says why in `sectorfs stats`; both work;
#   - switch on: auto takes io_uring, off keeps /dev/fuse;
#   - a mount that took io_uring keeps working after the switch is turned
#     off (the kernel keeps a connection's transport);
#   - O_TMPFILE, copy_file_range (FUSE_COPY_FILE_RANGE_64) and the birth
#     time (FUSE_STATX), requests libfuse 3.14 cannot decode, are answered
#     on both transports, and nothing is answered ENOSYS (-d's log);
#   - an io_uring daemon killed with SIGKILL leaves ENOTCONN (or, for a
#     request in flight when the rings were torn down, ECONNABORTED),
#     which fusermount3 -u clears.
#
# usage: mount_ring_fallback.sh [SECTORFS_BINARY_OR_BUILD_DIR]  (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=90
mt_init mount_ring_fallback "$@"
mt_own_uring_switch

# transport_of MP: the transport line of sectorfs stats.
transport_of() { "$SECTORFS" stats "$1" | sed -n 's/^transport: *//p'; }

# works MP: a file written, renamed, read back and removed.
works() {
	echo "through $1" >"$1/f" && mv "$1/f" "$1/g" && [ "$(cat "$1/g")" = "through $1" ] &&
		rm "$1/g" || die "file operations fail on $1"
}

M=$T/m
mkdir -p "$M"
register_mount "$M"

printf 'switch off: io_uring=on refuses ... '
uring_switch N
rc=0
timeout 30 "$SECTORFS" -o io_uring=on "$M" >"$T/out" 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || die "io_uring=on with the switch off: exit $rc, want 1"
[ ! -s "$T/out" ] || die "io_uring=on printed on stdout: $(cat "$T/out")"
[ "$(wc -l <"$T/err")" -eq 1 ] || die "io_uring=on: want one line, got: $(cat "$T/err")"
grep -q "io_uring=on: .*$ENABLE_URING" "$T/err" || die "the line does not name $ENABLE_URING: $(cat "$T/err")"
is_mounted "$M" && die "io_uring=on mounted $M with the switch off"
no_daemon "$M" || die "a daemon is left for $M"
say "ok ($(cat "$T/err"))"

printf 'switch off: auto falls back to /dev/fuse ... '
mount_sfs "$M" size=16m
tr=$(transport_of "$M")
[[ "$tr" == "/dev/fuse (io_uring: the kernel has FUSE over io_uring turned off"* ]] ||
	die "auto with the switch off: transport '$tr'"
works "$M"
unmount_sfs "$M"
say "ok ($tr)"

printf 'switch on: auto takes io_uring, off keeps /dev/fuse ... '
uring_switch Y
mount_sfs "$M" size=16m
tr=$(transport_of "$M")
[[ "$tr" == "io_uring, "*" queues x "*" threads" ]] || die "auto with the switch on: transport '$tr'"
works "$M"
M2=$T/m2
mount_sfs "$M2" size=16m,io_uring=off
tr2=$(transport_of "$M2")
[ "$tr2" = "/dev/fuse (io_uring: io_uring=off)" ] || die "io_uring=off: transport '$tr2'"
works "$M2"
unmount_sfs "$M2"
say "ok ($tr)"

printf 'the switch turned off under a live io_uring mount ... '
uring_switch N
works "$M"
[ "$(transport_of "$M")" = "$tr" ] || die "the transport changed: $(transport_of "$M")"
unmount_sfs "$M"
say "ok"

printf 'requests newer than libfuse 3.14 answered on both transports, no ENOSYS ... '
uring_switch Y
for tr in off on; do
	"$SECTORFS" -f -d -o "size=16m,io_uring=$tr" "$M" 2>"$T/debug.$tr" &
	dpid=$!
	poll 10 is_mounted "$M" || die "io_uring=$tr: $M not mounted"
	py "$M" <<'EOF' >"$T/newer.$tr" 2>&1 || die "io_uring=$tr: $(cat "$T/newer.$tr")"
m = sys.argv[1]
fd = os.open(m, os.O_TMPFILE | os.O_RDWR, 0o600)        # FUSE_TMPFILE
os.write(fd, b"x" * 100000)
out = os.open(m + "/copy", os.O_CREAT | os.O_RDWR, 0o644)
print(os.copy_file_range(fd, out, 100000, 0, 0))         # FUSE_COPY_FILE_RANGE_64
EOF
	stat -c %W "$M/copy" >>"$T/newer.$tr"                  # FUSE_STATX
	fusermount3 -u "$M"
	wait "$dpid" || die "io_uring=$tr: the daemon exited $?"
	[ "$(head -1 "$T/newer.$tr")" = 100000 ] || die "io_uring=$tr: copy_file_range: $(cat "$T/newer.$tr")"
	[ "$(tail -1 "$T/newer.$tr")" -gt 0 ] || die "io_uring=$tr: no birth time"
	if grep -q 'error: -38' "$T/debug.$tr"; then
		die "io_uring=$tr: a request was answered ENOSYS: $(grep -B2 'error: -38' "$T/debug.$tr" | head -6)"
	fi
done
say "ok"

printf 'an io_uring daemon killed with SIGKILL: ENOTCONN, then fusermount3 -u ... '
uring_switch Y
mount_sfs "$M" size=16m
head -c 3000000 /dev/urandom >"$M/data"
pid=$(sfs_pid "$M")
kill -KILL "$pid"
poll 5 pid_gone "$pid" || die "daemon $pid alive 5 s after SIGKILL"
rc=0
out=$(stat "$M" 2>&1) || rc=$?
[ $rc -ne 0 ] && dead_error "$out" uring || die "stat after SIGKILL: '$out'"
fusermount3 -u "$M" || die "fusermount3 -u $M failed after SIGKILL"
is_mounted "$M" && die "$M still mounted"
mount_sfs "$M" size=16m
works "$M"
unmount_sfs "$M"
say "ok"
mt_pass
