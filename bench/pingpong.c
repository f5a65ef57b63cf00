/* SPDX-License-Identifier: MIT */
/* pingpong: what waking a sleeping thread costs on this machine, without
 * FUSE: two threads pass a byte back and forth through two pipes.
 *
 *   pingpong [ROUND_TRIPS]
 *
 * Prints the mean round trip in four placements, each the shape of a
 * FUSE request and its answer:
 *   - both threads on CPU 0 (a context switch each way, no wake-up of an
 *     idle CPU);
 *   - two processes on CPU 0: the same, plus a switch of address space
 *     each way, as between a caller and the daemon (the least a FUSE round
 *     trip can cost on one CPU);
 *   - on CPUs 0 and 1, both sleeping in read() (each message wakes the
 *     other CPU: the daemon without polling);
 *   - on CPUs 0 and 1, the answering thread polling with non-blocking
 *     reads (only the caller's CPU is woken: the daemon with spin=).
 * bench/results/profile.md compares these with a FUSE round trip.  Needs
 * two CPUs.
 *
 * Build: cc -O2 -pthread -o pingpong bench/pingpong.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int to_server[2], to_client[2];
static long rounds;
static int server_cpu;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set);
}

static void *server(void *arg)
{
	(void)arg;
	char c;
	if (pin(server_cpu) != 0)
		return (void *)1;
	for (long i = 0; i < rounds; i++) {
		ssize_t n;
		while ((n = read(to_server[0], &c, 1)) < 0 && errno == EAGAIN)
			;
		if (n != 1 || write(to_client[1], &c, 1) != 1)
			return (void *)1;
	}
	return NULL;
}

/* The answering side on CPU `cpu`, polling or not, a thread of this
 * process or (`process`) a child of its own. */
static int run(const char *what, int cpu, int polls, int process)
{
	if (pipe(to_server) || pipe(to_client))
		return -1;
	server_cpu = cpu;
	if (polls && fcntl(to_server[0], F_SETFL, O_NONBLOCK) != 0)
		return -1;
	pthread_t t;
	pid_t child = -1;
	if (pin(0) != 0)
		return -1;
	if (process) {
		child = fork();
		if (child == 0)
			_exit(server(NULL) ? 1 : 0);
		if (child < 0)
			return -1;
	} else if (pthread_create(&t, NULL, server, NULL) != 0) {
		return -1;
	}
	char c = 1;
	double t0 = now();
	for (long i = 0; i < rounds; i++)
		if (write(to_server[1], &c, 1) != 1 || read(to_client[0], &c, 1) != 1)
			return -1;
	double t1 = now();
	void *rc = NULL;
	int status = 0;
	if (process && (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
	                WEXITSTATUS(status) != 0))
		rc = (void *)1;
	if (!process)
		pthread_join(t, &rc);
	for (int i = 0; i < 2; i++) {
		close(to_server[i]);
		close(to_client[i]);
	}
	if (rc)
		return -1;
	printf("%-58s %7.2f us\n", what, (t1 - t0) / (double)rounds * 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	rounds = argc > 1 ? atol(argv[1]) : 100000;
	if (rounds < 1) {
		fprintf(stderr, "usage: pingpong [ROUND_TRIPS]\n");
		return 2;
	}
	if (run("both threads on CPU 0", 0, 0, 0) || run("two processes on CPU 0", 0, 0, 1) ||
	    run("CPUs 0 and 1, both sleep in read()", 1, 0, 0) ||
	    run("CPUs 0 and 1, the answering thread polls", 1, 1, 0)) {
		perror("pingpong (needs 2 CPUs)");
		return 1;
	}
	return 0;
}
