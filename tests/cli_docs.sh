#!/bin/bash
# SPDX-License-Identifier: MIT
# cli_docs.sh SECTORFS SOURCE_DIR - every command and option the command
# line takes is documented and completed:
#   - each -o option name that daemon/options.c parses (its IS("...")
#     tests), each command (strcmp(pos[0], ...)), each image subcommand and
#     each flag appears in `sectorfs --help`, in sectorfs(8) as man renders
#     it, and in the bash completion (dist/sectorfs.bash-completion);
#   - both man pages (sectorfs.8 and sectorfs.3) render without groff
#     warnings;
#   - the completion completes commands, options, option values, comma
#     lists and subcommands as expected.
# No root needed.
set -euo pipefail
export LC_ALL=C
sfs=${1:?usage: cli_docs.sh SECTORFS SOURCE_DIR}
src=${2:?usage: cli_docs.sh SECTORFS SOURCE_DIR}
completion=$src/dist/sectorfs.bash-completion
fail=0
bad() {
	echo "cli_docs: FAIL: $*" >&2
	fail=1
}

help=$("$sfs" --help)
for page in "$src/daemon/sectorfs.8" "$src/doc/sectorfs.3"; do
	warn=$(groff -man -ww -z -Tutf8 "$page" 2>&1) || bad "groff failed on $page"
	[ -z "$warn" ] || bad "groff warns on $page: $warn"
done
man8=$(groff -man -Tutf8 -P -cbou "$src/daemon/sectorfs.8" 2>/dev/null | sed 's/\xe2\x80\x90/-/g')

opts=$(grep -o 'IS("[a-z_]*")' "$src/daemon/options.c" | sed 's/IS("\(.*\)")/\1/' | sort -u)
cmds=$(grep -o 'strcmp(pos\[0\], "[a-z]*")' "$src/daemon/options.c" | sed 's/.*"\(.*\)")/\1/' | sort -u)
subs=$(grep -o 'strcmp(what, "[a-z]*")' "$src/daemon/options.c" | sed 's/.*"\(.*\)")/\1/' | sort -u)
flags=$(grep -o 'strcmp(a, "-[-a-zA-Z]*")' "$src/daemon/options.c" | sed 's/.*"\(.*\)")/\1/' | sort -u)
[ "$(echo "$opts" | wc -w)" -ge 15 ] || bad "found only these options in options.c: $opts"
[ "$(echo "$cmds" | wc -w)" -ge 3 ] || bad "found only these commands in options.c: $cmds"
echo "cli_docs: options: $(echo $opts)"
echo "cli_docs: commands: $(echo $cmds); image: $(echo $subs); flags: $(echo $flags)"

# has TEXT WORD: WORD appears in TEXT as a whole word (before =, a comma,
# a space or the end).
has() { grep -qE -- "(^|[^a-z_-])$2([^a-z_]|\$)" <<<"$1"; }
comp=$(cat "$completion")
for w in $opts $cmds $subs; do
	has "$help" "$w" || bad "sectorfs --help does not mention '$w'"
	has "$man8" "$w" || bad "sectorfs(8) does not mention '$w'"
	has "$comp" "$w" || bad "the bash completion does not offer '$w'"
done
for f in $flags; do
	has "$help" "$f" || bad "sectorfs --help does not mention $f"
	has "$man8" "$f" || bad "sectorfs(8) does not mention $f"
	has "$comp" "$f" || bad "the bash completion does not offer $f"
done

# The completion at work.
# shellcheck disable=SC1090
. "$completion"
complete_words() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_sectorfs
	printf '%s\n' "${COMPREPLY[@]}" | sort | paste -sd' '
}
want() {
	local expect=$1 got
	shift
	got=$(complete_words "$@")
	[ "$got" = "$expect" ] || bad "completing '$*': got '$got', want '$expect'"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/dir one" "$tmp/dir2"
touch "$tmp/file.img"
cd "$tmp"
want "save stats" sectorfs s
want "clone dir one dir2 image resize save stats umount" sectorfs ""
want "image" sectorfs im
want "size=" sectorfs -o si
want "-osize=" sectorfs -osi
want "size=1g,writeback" sectorfs -o size=1g,wr
want "cache=keep cache=open" sectorfs -o cache=
want "mode=1777,direct_write=all mode=1777,direct_write=auto" sectorfs -o mode=1777,direct_write=a
want "noatime noclone_fd nodev noexec noprefault nosuid noswap nr_inodes=" sectorfs -o n
want "image=$tmp/file.img" sectorfs -o "image=$tmp/f"
want "check create info" sectorfs image ""
want "$tmp/file.img" sectorfs image check "$tmp/f"
want "$tmp/dir one $tmp/dir2" sectorfs image create x.img "$tmp/d"
want "$tmp/dir one $tmp/dir2" sectorfs -o size=1g "$tmp/d"
want "nr_inodes= size=" sectorfs resize /mnt ""
want "$tmp/dir one $tmp/dir2 $tmp/file.img" sectorfs clone "$tmp/"
want "$tmp/dir one $tmp/dir2 $tmp/file.img" sectorfs clone "$tmp/dir2" "$tmp/"
want "" sectorfs clone a b ""
want "--help" sectorfs --he
[ $fail -eq 0 ] || exit 1
echo "cli_docs: ok"
