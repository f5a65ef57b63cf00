#!/bin/bash
# SPDX-License-Identifier: MIT
# mount_ring_stress.sh - FUSE over io_uring under load, ended in the
# middle.  Each round mounts sectorfs with io_uring=on and image=, starts
# four worker processes per possible CPU (each pinned to its CPU, so every
# queue of the ring is busy) that create, write, read back, rename and
# delete files, while the test sends them SIGUSR1 (their requests get
# interrupted; the workers retry) and, once the workers have done a given
# number of operations, ends the daemon:
#   - SIGTERM, SIGINT: it must save and unmount by itself; the image,
#     mounted again, must hold every file as the workers last saw it
#     acknowledged (a write, a rename or a delete that returned);
#   - SIGKILL: the workers must all end (ENOTCONN), and fusermount3 -u
#     must clear the mount;
#   - none: the workers finish, fusermount3 -u, the image is checked.
# Then a write held (LD_PRELOAD, see hold_write.c) until the daemon stops:
# the final save must hold it if write() said yes; held past the stop's
# 30 s, it must not be answered yes, and the daemon must still end.
# Nothing may hang (every wait is bounded; the watchdog is the last
# resort).  The kernel's switch enable_uring is turned on for the run and
# put back as it was.  Bounded by count: 4 rounds, 150 operations per
# worker.
#
# usage: mount_ring_stress.sh [SECTORFS_BINARY_OR_BUILD_DIR]  (root; 77 = skipped)
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib.sh"
MT_DEFAULT_DEADLINE=500
mt_init mount_ring_stress "$@"
mt_own_uring_switch
uring_switch Y

NCPU=$(awk -F'[-,]' '{ n = 0; for (i = 1; i <= NF; i += 2) n += ($(i + 1) == "" ? 1 : $(i + 1) - $i + 1); print n }' \
	/sys/devices/system/cpu/possible)
ONLINE=$(nproc)
WORKERS=$((4 * ONLINE))
OPS=150

# worker MNT ID CPU LOG DEV: the workload of one process; one log line per
# operation that returned: "W name sha", "R old new", "D name", and
# "E errno" when the mount went away.
# SIGUSR1 is ignored from the fork on (the script ignores it, see below),
# until Python's handler is in place (exec keeps it ignored).
worker() {
	exec "$PY" -c "$PY_PRELUDE
$WORKER_CODE" "$@"
}
WORKER_CODE=$(
	cat <<'EOF'
import signal
mnt, wid, cpu, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dev = int(sys.argv[5])
os.sched_setaffinity(0, {cpu})
signal.signal(signal.SIGUSR1, lambda *a: None)  # EINTR: Python retries
# Python puts SIGUSR1 back to its default (death) as it exits: blocked
# from then on, one that comes late is dropped (a worker killed by it,
# exit 138, about 1 run in 10).
import atexit
atexit.register(signal.pthread_sigmask, signal.SIG_BLOCK, {signal.SIGUSR1})
rnd = random.Random(wid)
out = open(log, "a", buffering=1)
# The mount went away: ENOTCONN, ECONNABORTED, or (a request the kernel
# had already put in a ring entry whose thread then ended) ECANCELED.
gone = (errno.ENOTCONN, errno.ECONNABORTED, errno.ENODEV, errno.ECANCELED)
live = []
# Names relative to the directory's descriptor: once the mount is gone they
# fail with ENOTCONN instead of landing in the directory underneath.  A
# worker that starts late (a busy machine) may find the mount gone
# already, and mnt the directory underneath: it must do nothing there.
d = "%s/w%d" % (mnt, wid)
try:
    rfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    if os.fstat(rfd).st_dev != dev:
        raise OSError(errno.ENOTCONN, "the mount was gone before the worker began")
    os.mkdir("w%d" % wid, dir_fd=rfd)
    dfd = os.open("w%d" % wid, os.O_RDONLY | os.O_DIRECTORY, dir_fd=rfd)
    for i in range(150):
        op = rnd.random()
        if op < 0.45 or not live:
            name = "f%d" % i
            data = rnd.randbytes(rnd.choice([100, 4096, 5000, 65536, 200000]))
            fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644, dir_fd=dfd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.close(fd)
            live.append((name, sha(data)))
            out.write("W %s/%s %s\n" % (d, name, live[-1][1]))
        elif op < 0.7:
            name, h = rnd.choice(live)
            fd = os.open(name, os.O_RDONLY, dir_fd=dfd)
            with os.fdopen(fd, "rb") as f:
                got = sha(f.read())
            if got != h:
                print("worker %d: %s reads %s, wrote %s" % (wid, name, got, h))
                sys.exit(1)
        elif op < 0.85:
            k = rnd.randrange(len(live))
            name, h = live[k]
            new = "r%d" % i
            os.rename(name, new, src_dir_fd=dfd, dst_dir_fd=dfd)
            live[k] = (new, h)
            out.write("R %s/%s %s/%s\n" % (d, name, d, new))
        else:
            name, h = live.pop(rnd.randrange(len(live)))
            os.unlink(name, dir_fd=dfd)
            out.write("D %s/%s\n" % (d, name))
except OSError as e:
    if e.errno not in gone:
        raise
    out.write("E %d\n" % e.errno)
EOF
)

# verify MNT LOGS...: every file the logs say exists is there (the image
# is mounted at the same MNT again) with its content.
verify() {
	py "$@" <<'EOF'
logs = sys.argv[2:]
want = {}
for log in logs:
    for line in open(log):
        f = line.split()
        if f[0] == "W":
            want[f[1]] = f[2]
        elif f[0] == "R":
            want[f[2]] = want.pop(f[1])
        elif f[0] == "D":
            del want[f[1]]
bad = 0
for path, h in want.items():
    try:
        got = sha(readall(path))
    except OSError as e:
        got = ename(e)
    if got != h:
        print("%s: %s, want %s" % (path, got, h))
        bad += 1
print("%d files checked, %d wrong" % (len(want), bad))
sys.exit(1 if bad else 0)
EOF
}

total_ops() { cat "$T"/log.* 2>/dev/null | wc -l; }

# Ignored here, so that every worker is born ignoring it: a worker that
# set this itself could meet the first SIGUSR1 before it did.
trap '' USR1
M=$T/m
IMG=$T/ring.img
round=0
for ending in TERM KILL INT none; do
	round=$((round + 1))
	rm -f "$T"/log.* "$IMG"
	printf 'round %d (%s): %d workers on %d CPUs (%d possible) ... ' "$round" "$ending" \
		"$WORKERS" "$ONLINE" "$NCPU"
	mount_sfs "$M" "size=256m,io_uring=on,image=$IMG"
	[[ "$("$SECTORFS" stats "$M" | sed -n 's/^transport: *//p')" == io_uring* ]] ||
		die "round $round: not on io_uring"
	pid=$(sfs_pid "$M")
	dev=$(stat -c %d "$M")
	pids=()
	for ((w = 0; w < WORKERS; w++)); do
		worker "$M" "$w" $((w % ONLINE)) "$T/log.$w" "$dev" >"$T/worker.$w.out" 2>&1 &
		pids+=($!)
	done
	# Interrupt the workers' requests while they run.
	target=$((WORKERS * OPS / 3))
	n=0
	until [ "$(total_ops)" -ge "$target" ] || [ $n -ge 600 ]; do
		kill -USR1 "${pids[@]}" 2>/dev/null || true
		sleep 0.05
		n=$((n + 1))
	done
	[ "$(total_ops)" -ge "$target" ] || die "round $round: the workers did $(total_ops) operations in 30 s"
	case $ending in
	TERM | INT | KILL) kill -"$ending" "$pid" ;;
	esac
	# Every worker ends, whatever happened to the daemon.
	for p in "${pids[@]}"; do
		k=0
		while kill -0 "$p" 2>/dev/null && [ $k -lt 600 ]; do
			sleep 0.1
			k=$((k + 1))
		done
		kill -0 "$p" 2>/dev/null && die "round $round: worker $p still running 60 s after the $ending"
		st=0
		wait "$p" || st=$?
		[ $st -eq 0 ] || die "round $round: a worker failed (exit $st): $(cat "$T"/worker.*.out)"
	done
	case $ending in
	KILL)
		poll 5 pid_gone "$pid" || die "round $round: daemon alive after SIGKILL"
		fusermount3 -u "$M" || die "round $round: fusermount3 -u failed after SIGKILL"
		is_mounted "$M" && die "round $round: $M still mounted"
		say "ok ($(total_ops) operations; cleared)"
		continue
		;;
	none) unmount_sfs "$M" ;;
	*)
		wait_daemon_gone "$M" 60 || die "round $round: daemon alive 60 s after SIG$ending"
		is_mounted "$M" && die "round $round: $M still mounted after SIG$ending"
		;;
	esac
	[ -s "$IMG" ] || die "round $round: no image after the $ending"
	mount_sfs "$M" "size=256m,io_uring=on,image=$IMG"
	out=$(verify "$M" "$T"/log.*) || die "round $round: $out"
	unmount_sfs "$M"
	say "ok ($(total_ops) operations; $out)"
done

# held_write MS WANT: a write in progress when the daemon stops (SIGTERM,
# sent until the loop ends: a second one stops it without waiting for
# quiet).  The LD_PRELOAD
# library (ctest passes it) holds the write's request in its ring thread
# until the daemon's loop is ending, then lets it go on MS milliseconds
# later, while the final save of 256 MiB begins.  WANT is what write()
# must return: "wrote 7777" (the stop waits for a request in progress),
# "write: ENOTCONN" (one held past the stop's 30 s is not answered
# before the final save, and then answered ENOTCONN), or
# "write: ECONNABORTED" (one still held 10 s after the save: the daemon
# ends without it, and the kernel ends the request).
# Either way, if write() said yes, the image must hold the bytes.
held_write() {
	local ms=$1 want_result=$2 pid want writer st result got n
	printf 'a write held %d ms past the stop ... ' "$ms"
	rm -f "$IMG" "$T/held"
	LD_PRELOAD=$SFS_HOLD_WRITE_LIB SFS_HOLD_WRITE=7777 SFS_HOLD_NOTE=$T/held SFS_HOLD_MS=$ms \
		mount_sfs "$M" "size=512m,io_uring=on,image=$IMG"
	[[ "$("$SECTORFS" stats "$M" | sed -n 's/^transport: *//p')" == io_uring* ]] ||
		die "held write: not on io_uring"
	pid=$(sfs_pid "$M")
	head -c 256M /dev/urandom >"$M/big" || die "held write: cannot fill $M/big"
	want=$(head -c 7777 /dev/urandom | tee "$T/held.data" | sha256sum | cut -c1-16)
	py "$M/held" "$T/held.data" >"$T/held.out" 2>&1 <<'EOF' &
data = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
try:
    print("wrote %d" % os.write(fd, data), flush=True)
except OSError as e:
    print("write: %s" % ename(e), flush=True)
try:
    os.close(fd)
except OSError:
    pass
EOF
	writer=$!
	poll 10 test -e "$T/held" || die "held write: the write never reached the daemon: $(cat "$T/held.out")"
	# Signals do not queue: TERM again until the loop is ending.
	rm -f "$T/held.exit"
	n=0
	until [ -e "$T/held.exit" ] || [ $n -ge 100 ]; do
		kill -TERM "$pid" 2>/dev/null || true
		sleep 0.2
		n=$((n + 1))
	done
	[ -e "$T/held.exit" ] || die "held write: the daemon's loop did not end after 100 SIGTERMs"
	wait_daemon_gone "$M" 90 || die "held write: daemon alive 90 s after SIGTERM"
	st=0
	wait "$writer" || st=$?
	[ $st -eq 0 ] || die "held write: the writer failed (exit $st): $(cat "$T/held.out")"
	is_mounted "$M" && die "held write: $M still mounted"
	result=$(cat "$T/held.out")
	mount_sfs "$M" "size=512m,io_uring=on,image=$IMG"
	got=$(sha256sum <"$M/held" | cut -c1-16)
	unmount_sfs "$M"
	[ "$result" != "wrote 7777" ] || [ "$got" = "$want" ] ||
		die "held write: write() said yes, but the image holds $got, want $want"
	[[ "$result" == $want_result ]] || die "held write: write() gave '$result', want '$want_result'"
	say "ok ($result)"
}
if [ -n "${SFS_HOLD_WRITE_LIB:-}" ]; then
	[ -f "$SFS_HOLD_WRITE_LIB" ] || die "SFS_HOLD_WRITE_LIB=$SFS_HOLD_WRITE_LIB: no such file"
	held_write 100 "wrote 7777"
	held_write 35000 "write: ENOTCONN"
	held_write 50000 "write: ECONNABORTED"
else
	say "a write held past the stop: not checked (SFS_HOLD_WRITE_LIB unset)"
fi
mt_pass

