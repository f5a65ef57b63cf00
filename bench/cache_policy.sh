#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/cache_policy.sh: what sectorfs's page cache policies (cache=,
# direct_write=) and the writeback cache cost and bring, to pick the
# defaults.
#
#   sudo bench/cache_policy.sh [--rounds N] [--quick] [--out DIR]
#
# Uses the helpers and workloads of bench/run.sh (same fio settings, same
# watchdog).  Every figure is the median of N rounds (default 3), the file
# systems taking turns within each round.
#
# Part 1, cache=keep (the kernel keeps a file's pages across opens) against
# cache=open (it drops them at each open), tmpfs for reference:
#   W2   sequential read of a 2 GiB file after drop_caches          MB/s
#   W2b  the same read again                                        MB/s
#   W3   random 4 KiB reads, 1 job, 8 s, of a 512 MiB file read once
#        before (warm)                                              IOPS
#   memory after W2 + W2b: the daemon's RSS, the page cache the mount
#        holds (counted as in run.sh: against after the drop),
#        their sum (the total cost of the 2 GiB file; tmpfs: its Shmem),
#        and the page cache still held after the file is opened and
#        closed once more; then M1 of bench/run.sh (daemon RSS / data,
#        bytes per 100-byte file: daemon, page cache, slab).
# Part 2, how writes travel: direct_write=auto (the default: a new file is
# written past the page cache), direct_write=off (every write through the
# page cache, which keeps a copy), and -o writeback (the kernel's writeback
# cache: a full file system can only fail a write at writeback, not at
# write() as tmpfs does):
#   W1   sequential write of a new 2 GiB file, 1 MiB blocks, fsync  MB/s
#        and the page cache it leaves                              MiB
#   W4   random 4 KiB writes into an existing file, 1 and 4 jobs,
#        8 s, no fsync                                             IOPS
#        (with writeback on, W4 counts writes into the page cache;
#        the kernel sends them to the daemon later)
#
# Writes DIR/cache_policy.md (default DIR bench/results): the medians, then
# every round's figure.  --quick: 1 round, 256 MiB / 128 MiB files, 2 s
# runs, 10,000 small files (about 3 minutes; the default run about 10).

set -euo pipefail
# shellcheck source=bench/run.sh
. "$(dirname "${BASH_SOURCE[0]}")/run.sh"

cp_report() { # OUTFILE META_JSON
	python3 - "$RAW" "$1" "$2" <<'EOF'
import json, os, statistics, sys
raw, outfile, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
recs, texts = [], []
for line in open(raw):
    r = json.loads(line)
    (texts if "text" in r else recs).append(r)
hangs_path = os.path.join(os.path.dirname(raw), "hangs.log")
hangs = open(hangs_path).read() if os.path.exists(hangs_path) else ""

def vals(suite, w, fs, key=None):
    out = []
    for r in recs:
        if r["suite"] == suite and r["w"] == w and r["fs"] == fs:
            v = r["value"] if key is None else r["extra"].get(key)
            if v is not None:
                out.append(v)
    return out

def med(xs):
    return statistics.median(xs) if xs else None

def fmt(v, nd=0):
    if v is None:
        return "none"
    return ("%%.%df" % nd) % v

lines = []
P = lines.append
P("# sectorfs page cache policies and writeback cache")
P("")
P("%s; kernel %s, %d CPUs; %s rounds, medians; daemon %s (built %s, tree %s)."
  % (meta["date"], meta["kernel"], meta["cpus"], meta["rounds"], meta["sectorfs_binary"],
     meta["sectorfs_mtime"], meta["sectorfs_git"]))
P("Each file system is mounted with size=8g; the W2 file is %d MiB, the W3/W4 file %d MiB,"
  " random runs last %d s. Produced by bench/cache_policy.sh." % (meta["seq_mib"], meta["rand_mib"], meta["rand_runtime_s"]))
P("")
P("## cache=keep against cache=open")
P("")
P("| figure | tmpfs | sectorfs cache=keep | sectorfs cache=open | unit |")
P("|---|---:|---:|---:|---|")
cfs = ("tmpfs", "keep", "open")
rows = [
    ("W2 seq read, caches dropped", "W2", "MB/s"),
    ("W2b seq read again", "W2b", "MB/s"),
    ("W3 rand read 4 KiB, 1 job, warm", "W3-1j", "IOPS"),
]
for name, w, unit in rows:
    P("| %s | %s | %s |" % (name, " | ".join(fmt(med(vals("policy", w, fs))) for fs in cfs), unit))
def kib2mib(xs):
    return [x / 1024 for x in xs]
rss = {fs: med(kib2mib(vals("policy", "W2b", fs, "daemon_rss_kib"))) for fs in cfs}
pc = {fs: med(kib2mib(vals("policy", "W2b", fs, "pagecache_delta_kib"))) for fs in cfs}
reopen = {fs: med(kib2mib(vals("policy", "W2b", fs, "pagecache_after_reopen_kib"))) for fs in cfs}
shm = {fs: med(kib2mib(vals("policy", "W1", fs, "shmem_delta_kib"))) for fs in cfs}
P("| daemon RSS after W2 + W2b | n/a | %s | %s | MiB |" % (fmt(rss["keep"]), fmt(rss["open"])))
P("| page cache held after W2 + W2b (tmpfs: the file's Shmem) | %s | %s | %s | MiB |"
  % (fmt(shm["tmpfs"]), fmt(pc["keep"]), fmt(pc["open"])))
P("| **total: daemon RSS + page cache** (tmpfs: Shmem) | %s | %s | %s | MiB |"
  % (fmt(shm["tmpfs"]), fmt(None if rss["keep"] is None else rss["keep"] + pc["keep"]),
     fmt(None if rss["open"] is None else rss["open"] + pc["open"])))
P("| page cache still held after one more open + close | n/a | %s | %s | MiB |" % (fmt(reopen["keep"]), fmt(reopen["open"])))
mrows = [
    ("M1 daemon RSS / file data after writing the file", "M1-rss-per-data", "x", 3),
    ("M1 total for the file (RSS growth + page cache; tmpfs: Shmem)", "M1-total", "MiB", 0),
    ("M1 daemon RSS over idle after deleting the file", "M1-rss-after-delete", "MiB", 1),
    ("M1 bytes per 100-byte file: daemon RSS (tmpfs: Shmem)", "M1-bytes-per-file", "B", 0),
    ("M1 bytes per 100-byte file: page cache", "M1-pagecache-per-file", "B", 0),
    ("M1 bytes per 100-byte file: kernel slab", "M1-slab-per-file", "B", 0),
]
for name, w, unit, nd in mrows:
    P("| %s | %s | %s | %s | %s |" % (name, *[("n/a" if fs == "tmpfs" and w in ("M1-rss-per-data", "M1-rss-after-delete")
                                             else fmt(med(vals("policy", w, fs)), nd)) for fs in cfs], unit))
P("")
P("RSS includes the daemon's idle baseline (a few MiB). Page cache counted in %s." % meta["memory_source"])
P("With cache=open the kernel drops a file's pages when the file is opened, not when it is")
P("closed: after a read they stay until the next open (or memory pressure).")
P("")
P("## How writes travel: direct_write=auto (default), direct_write=off, writeback")
P("")
wfs = ("tmpfs", "auto", "dwoff", "wb")
P("| figure | tmpfs | sectorfs (default) | direct_write=off | -o writeback | unit |")
P("|---|---:|---:|---:|---:|---|")
P("| W1 seq write, new %d MiB file, 1 MiB blocks, fsync | %s | MB/s |"
  % (meta["seq_mib"], " | ".join(fmt(med(vals("writes", "W1", fs))) for fs in wfs)))
P("| page cache held after W1 (tmpfs: the file's Shmem) | %s | MiB |"
  % " | ".join(fmt(med(kib2mib(vals("writes", "W1", fs, "shmem_delta_kib" if fs == "tmpfs" else "pagecache_delta_kib"))))
               for fs in wfs))
for w in sorted(set(r["w"] for r in recs if r["suite"] == "writes" and r["w"].startswith("W4"))):
    n = w[3:-1]
    P("| W4 rand write 4 KiB, %s job%s | %s | IOPS |" % (n, "" if n == "1" else "s",
                                                    " | ".join(fmt(med(vals("writes", w, fs))) for fs in wfs)))
P("")
P("W4 has no fsync: with writeback on, it counts writes into the page cache, and the kernel")
P("sends the dirty pages to the daemon afterwards.")
disturbed = ["%s on %s, round %s" % (r["w"], r["fs"], r["round"]) for r in recs
             if r["value"] is not None and r["extra"].get("foreign_drop_caches")]
if disturbed:
    P("")
    P("Measured while another process dropped the caches (after all tries): %s." % "; ".join(disturbed))
if hangs:
    P("")
    P("Hangs (the watchdog killed the daemon; the figure is missing from its median):")
    P("")
    P("```")
    P(hangs.rstrip())
    P("```")
P("")
P("## Every round")
P("")
P("| suite | figure | file system | rounds | unit |")
P("|---|---|---|---|---|")
seen = []
for r in recs:
    k = (r["suite"], r["w"], r["fs"])
    if k not in seen:
        seen.append(k)
for suite, w, fs in seen:
    rs = [r for r in recs if (r["suite"], r["w"], r["fs"]) == (suite, w, fs)]
    P("| %s | %s | %s | %s | %s |" % (suite, w, fs, ", ".join("none (%s)" % r["extra"].get("error", "?")
                                                             if r["value"] is None else "%g" % r["value"] for r in rs),
                                      rs[0]["unit"]))
for t in texts:
    P("")
    P("`sectorfs stats` (%s) %s:" % (t["fs"], t["text"]))
    P("")
    P("```")
    P(t["value"].rstrip())
    P("```")
open(outfile, "w").write("\n".join(lines) + "\n")
EOF
}

cp_main() {
	local rounds=3 quick=0 out=$BENCH_DIR/results rounds_set=0
	while [ $# -gt 0 ]; do
		case $1 in
		--rounds) rounds=$2 rounds_set=1; shift 2 ;;
		--quick) quick=1; shift ;;
		--out) out=$2; shift 2 ;;
		-h | --help) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) die "unknown argument $1 (see --help)" ;;
		esac
	done
	local seq=2048 rnd=512 runtime=8 nmem=100000
	if [ $quick = 1 ]; then
		seq=256 rnd=128 runtime=2 nmem=10000
		[ $rounds_set = 1 ] || rounds=1
	fi
	[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "bad --rounds $rounds"
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	bench_init
	local t0=$SECONDS
	fs_add tmpfs tmpfs
	fs_add keep sectorfs cache=keep
	fs_add open sectorfs cache=open
	log "policy: W1/W2/W2b, ${seq} MiB"
	w_seq policy "$rounds" "$seq" tmpfs keep open
	log "policy: W3 1 job, ${rnd} MiB"
	w_rand policy "$rounds" "$rnd" "$runtime" 1 randread tmpfs keep open
	log "policy: M1"
	m_mem policy "$seq" "$nmem" tmpfs keep open
	fs_add auto sectorfs ""
	fs_add dwoff sectorfs direct_write=off
	fs_add wb sectorfs writeback
	log "writes: W1"
	SEQ_READS=0 w_seq writes "$rounds" "$seq" tmpfs auto dwoff wb
	log "writes: W4 1 and 4 jobs"
	w_rand writes "$rounds" "$rnd" "$runtime" "1 4" randwrite tmpfs auto dwoff wb
	local meta bm
	mapfile -t bm < <(binary_meta)
	meta=$(REPO=$REPO meta_json "rounds=$rounds" "quick=$([ $quick = 1 ] && echo true || echo false)" \
		"seq_mib=$seq" "rand_mib=$rnd" "rand_runtime_s=$runtime" "mem_files=$nmem" \
		"duration_s=$((SECONDS - t0))" "memory_source=\"${MEMCG:-/proc/meminfo} ($MEMCG_KIND)\"" "${bm[@]}")
	cp_report "$out/cache_policy.md" "$meta"
	log "done in $((SECONDS - t0)) s: $out/cache_policy.md"
	cat "$out/cache_policy.md"
}

cp_main "$@"
