/*
 * execs: an exec load for busted's benchmark (bench/run.ts): fork + execve("/bin/true") + wait,
 * one at a time, for SECONDS seconds, pinned to CPU (when >= 0, the child inherits the pinning).
 * Every exec runs busted's sched_process_exec hook once. Prints one JSON line on stdout:
 *   {"pid":..,"execs":..,"failed":..,"seconds":..,"rate":..}
 *
 * Build: cc -O2 -o execs execs.c     Usage: execs SECONDS [CPU]
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	char *const args[] = { "true", NULL };
	char *const env[] = { NULL };
	double seconds, start, elapsed;
	long execs = 0, failed = 0;
	int cpu;

	if (argc < 2 || (seconds = atof(argv[1])) <= 0) {
		fprintf(stderr, "usage: execs SECONDS [CPU]\n");
		return 2;
	}
	cpu = argc > 2 ? atoi(argv[2]) : -1;
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			perror("sched_setaffinity");
			return 1;
		}
	}
	start = now();
	while ((elapsed = now() - start) < seconds) {
		int status;
		pid_t pid = fork();

		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			execve("/bin/true", args, env);
			_exit(127);
		}
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
		else
			execs++;
	}
	printf("{\"pid\":%d,\"execs\":%ld,\"failed\":%ld,\"seconds\":%.6f,\"rate\":%.1f}\n",
	       (int)getpid(), execs, failed, elapsed, execs / elapsed);
	return failed > execs / 100 ? 1 : 0;
}
