#!/bin/sh
# SPDX-License-Identifier: MIT
# os_only.sh OBJECT... - os.h's contract, "only os/ talks to the kernel":
# the objects compiled from core/ and engine/ call no system call wrapper
# and no malloc (they go through os_*, where faults are injected).  Reads
# each object's undefined symbols (nm), so comments, strings and names
# that merely look alike do not count.  Prints each offence, and fails.
set -eu
deny='malloc|calloc|realloc|reallocarray|free|strdup|strndup|open|open64|openat|openat64|creat|close|read|write|pread|pread64|pwrite|pwrite64|preadv|preadv64|pwritev|pwritev64|readv|writev|fsync|fdatasync|sync_file_range|posix_fadvise|posix_fadvise64|rename|renameat|renameat2|unlink|unlinkat|stat|stat64|fstat|fstat64|lstat|lstat64|fstatat|fstatat64|statx|__xstat|__fxstat|__lxstat|mkostemp|mkostemp64|mkstemp|mkstemp64|mkdtemp|fchown|fchmod|chown|chmod|getrandom|geteuid|getuid|getegid|getgid|clock_gettime|gettimeofday|time|mmap|mmap64|munmap|mremap|madvise|mlock|mlock2|munlock|syscall|sysconf|fopen|fopen64|fclose|ioctl|sched_yield|nanosleep|usleep|sleep|getrlimit|getrlimit64|prctl|pthread_create|pthread_sigmask|sigprocmask|fork|execve|kill|signal|sigaction|getenv|dup|dup2|pipe|socket|lseek|lseek64|ftruncate|ftruncate64|fallocate|fallocate64|statvfs|statvfs64|fstatvfs|opendir|readdir|readdir64|closedir'
bad=0
seen=0
for o in "$@"; do
	case "$o" in
	*/core/*|*/engine/*) ;;
	*) continue ;;
	esac
	seen=$((seen + 1))
	for sym in $(nm -u "$o" | awk '{ print $NF }' | sed 's/@.*//' | grep -xE "$deny" || true); do
		echo "$o: calls $sym (only os/ may)"
		bad=1
	done
done
[ "$seen" -gt 0 ] || { echo "no object of core/ or engine/ given"; exit 1; }
[ $bad -eq 0 ] && echo "$seen objects of core/ and engine/: no system call, no malloc"
exit $bad
