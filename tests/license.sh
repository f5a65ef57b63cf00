#!/bin/sh
# SPDX-License-Identifier: MIT
# license.sh SRCDIR - every source file of the tree names its license (an
# SPDX-License-Identifier line within its first three lines) and the MIT
# license text is at the top.  Prints each file that does not, and fails.
set -eu
cd "$1"
grep -q '^MIT License$' LICENSE || { echo "LICENSE: not the MIT license"; exit 1; }
bad=0
for f in $(find . \( -path ./build -o -path './build*' -o -path ./.git -o -path ./fuzz/corpus \
		-o -path ./fuzz/regressions -o -path ./debian -o -path "./obj-*" \) -prune -o -type f \
		\( -name '*.c' -o -name '*.h' -o -name '*.sh' -o -name '*.cmake' \
		-o -name CMakeLists.txt -o -name '*.[1-8]' -o -path ./.ci/run \) -print); do
	if ! head -n 3 "$f" | grep -q 'SPDX-License-Identifier: MIT'; then
		echo "$f: no SPDX-License-Identifier: MIT line at the top"
		bad=1
	fi
done
[ $bad -eq 0 ] && echo "every source file carries SPDX-License-Identifier: MIT"
exit $bad
