# SPDX-License-Identifier: MIT
# bench/common.sh: what bench/cow.sh, bench/bench_image.sh and
# bench/roundtrip.sh share.  Sourced, after NAME is set to the script's name:
#   log MSG           a line on stderr with the time
#   die MSG           "NAME: MSG" on stderr, exit 1
#   bench_args "rounds size out quick" "$@"
#                     the command line: the options named first (--rounds N,
#                     --size MIB, --out FILE, --quick: ROUNDS, SIZE_MIB, OUT,
#                     QUICK=1; defaults are the script's), and a build
#                     directory or binary (SECTORFS, default build/sectorfs);
#                     anything else is an error
#   take_bench_lock   holds /run/sectorfs-bench.lock (fd 9) for the rest of
#                     the script, waiting for another benchmark that has it,
#                     so that no two benchmarks ever run at once
# and sets BENCH_DIR (bench/) and REPO.
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '%s: %s\n' "$NAME" "$*" >&2; exit 1; }

bench_args() {
	local allowed=" $1 " key
	shift
	SECTORFS=""
	while [ $# -gt 0 ]; do
		case $1 in
		--rounds | --size | --out | --quick)
			key=${1#--}
			[[ $allowed == *" $key "* ]] || die "unknown option: $1"
			if [ "$key" = quick ]; then
				QUICK=1
			else
				[ $# -ge 2 ] || die "$1 needs a value"
				case $key in
				rounds) ROUNDS=$2 ;;
				size) SIZE_MIB=$2 ;;
				out) OUT=$2 ;;
				esac
				shift
			fi
			;;
		-*) die "unknown option: $1" ;;
		*) if [ -d "$1" ]; then SECTORFS=$1/sectorfs; else SECTORFS=$1; fi ;;
		esac
		shift
	done
	SECTORFS=${SECTORFS:-$REPO/build/sectorfs}
}

take_bench_lock() {
	exec 9>/run/sectorfs-bench.lock
	if ! flock -n 9; then
		log "another benchmark holds /run/sectorfs-bench.lock: waiting for it"
		flock 9
	fi
}
