/*
 * churn: a connect/send/recv/close load generator for busted's benchmark (bench/run.ts).
 *
 * One process, two threads. A server thread listens on 127.0.0.1 (or ::1) on a kernel-chosen
 * port, accepts, reads exactly 64 bytes, writes 64 bytes back and closes. The main thread, as fast
 * as it can, connects, sends 64 bytes, receives the 64-byte reply, reads until the server's FIN and
 * closes. The server closes first, so the TIME_WAIT state lands on the server side and the client
 * does not run out of ephemeral ports. Every socket has 2 s send/receive timeouts.
 *
 * Stops after SECONDS seconds or MAX connections, whichever comes first, or after 100 failures.
 * Prints one JSON line on stdout:
 *   {"pid":..,"port":..,"connections":..,"failed":..,"firstError":"..","seconds":..,"cps":..}
 * `connections` counts connects that succeeded (and completed the exchange or not); `failed`
 * counts connects that returned an error.
 *
 * Build: cc -O2 -pthread -o churn churn.c     Usage: churn SECONDS [MAX] [4|6] [CPU] [RATE]
 * With CPU (>= 0), both threads are pinned to that CPU: on a small VM, where the scheduler puts
 * the two ends of the ping-pong changes the rate by 10-30 %, which would drown what is measured.
 * With RATE (> 0), connections are paced to at most RATE per second: connection i starts no
 * earlier than i/RATE s after the start (a slow stretch is caught up, so the mean rate holds);
 * the JSON line then also carries "rate". CPU -1 leaves the threads unpinned.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MSG 64
#define MAX_FAILURES 100

static int family = AF_INET;
static struct sockaddr_storage server_addr;
static socklen_t server_len;

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void timeouts(int fd) {
	struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int read_full(int fd, char *buf, size_t n) {
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) return -1;
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const char *buf, size_t n) {
	size_t put = 0;
	while (put < n) {
		ssize_t w = send(fd, buf + put, n - put, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return -1;
		put += (size_t)w;
	}
	return 0;
}

static void *server(void *arg) {
	int lfd = *(int *)arg;
	char buf[MSG];
	memset(buf, 'r', sizeof(buf));
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) continue;
			perror("churn: accept");
			return NULL;
		}
		timeouts(fd);
		if (read_full(fd, buf, MSG) == 0) write_full(fd, buf, MSG);
		close(fd);
	}
	return NULL;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: churn SECONDS [MAX] [4|6] [CPU] [RATE]\n");
		return 2;
	}
	double seconds = atof(argv[1]);
	long max = argc > 2 ? atol(argv[2]) : 10000000L;
	if (argc > 3 && strcmp(argv[3], "6") == 0) family = AF_INET6;
	int cpu = argc > 4 ? atoi(argv[4]) : -1;
	double rate = argc > 5 ? atof(argv[5]) : 0;
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0) {
			perror("churn: sched_setaffinity");
			return 1;
		}
	}
	if (seconds <= 0 || seconds > 600 || max <= 0 || rate < 0) {
		fprintf(stderr, "churn: SECONDS must be in (0, 600], MAX > 0 and RATE >= 0\n");
		return 2;
	}

	int lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		perror("churn: socket");
		return 1;
	}
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&server_addr, 0, sizeof(server_addr));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&server_addr;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		server_len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&server_addr;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		server_len = sizeof(*a);
	}
	if (bind(lfd, (struct sockaddr *)&server_addr, server_len) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&server_addr, &server_len) < 0) {
		perror("churn: bind/listen");
		return 1;
	}
	int port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&server_addr)->sin_port
					   : ((struct sockaddr_in6 *)&server_addr)->sin6_port);

	pthread_t th;
	if (pthread_create(&th, NULL, server, &lfd) != 0) {
		fprintf(stderr, "churn: cannot start the server thread\n");
		return 1;
	}

	char msg[MSG], reply[MSG];
	memset(msg, 'q', sizeof(msg));
	long ok = 0, failed = 0, incomplete = 0;
	int first_errno = 0;
	double start = now_s(), end = start + seconds, t = start;
	while (ok + failed < max && failed < MAX_FAILURES) {
		/* checking the clock every 64 connections keeps the loop tight and the overrun tiny */
		if (((ok + failed) & 63) == 0 && (t = now_s()) >= end) break;
		if (rate > 0) {
			/* pacing: connection n starts at start + n/rate at the earliest */
			double due = start + (double)(ok + failed) / rate;
			if ((t = now_s()) >= end) break;
			if (due > t) {
				struct timespec ts = {.tv_sec = (time_t)(due - t), .tv_nsec = (long)((due - t - (double)(time_t)(due - t)) * 1e9)};
				while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
				}
			}
		}
		int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			if (!first_errno) first_errno = errno;
			failed++;
			continue;
		}
		timeouts(fd);
		if (connect(fd, (struct sockaddr *)&server_addr, server_len) < 0) {
			if (!first_errno) first_errno = errno;
			failed++;
			close(fd);
			continue;
		}
		ok++;
		if (write_full(fd, msg, MSG) < 0 || read_full(fd, reply, MSG) < 0) {
			incomplete++;
		} else {
			char eof;
			while (recv(fd, &eof, 1, 0) > 0) {
			} /* wait for the server's FIN: it closes first */
		}
		close(fd);
	}
	t = now_s();
	double elapsed = t - start;
	printf("{\"pid\":%d,\"cpu\":%d,\"rate\":%.1f,\"port\":%d,\"family\":%d,\"connections\":%ld,\"failed\":%ld,\"incomplete\":%ld,"
	       "\"firstError\":\"%s\",\"seconds\":%.6f,\"cps\":%.1f}\n",
	       (int)getpid(), cpu, rate, port, family == AF_INET ? 4 : 6, ok, failed, incomplete,
	       first_errno ? strerror(first_errno) : "", elapsed, elapsed > 0 ? (double)ok / elapsed : 0.0);
	fflush(stdout);
	return failed >= MAX_FAILURES ? 1 : 0;
}
