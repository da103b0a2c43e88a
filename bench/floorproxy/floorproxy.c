/*
 * floorproxy: about the least work a user-space TCP proxy can do per
 * connection and per message, to measure what any proxy must add on this
 * machine. It is not part of the product and is built only by hand (see
 * bench/README.md, "Floors").
 *
 * A pool of 32 threads; each takes one connection at a time with a blocking
 * accept on the socket-activated fd 3, connects to IPv4:PORT (the last
 * argument) with a blocking connect, then waits in poll(2) on its two
 * sockets and copies whatever one has to the other, passing end-of-file on
 * as a half-close, until both directions have ended. No event loop shared
 * between connections, no pipes, no allocation, no logging: one poll, one
 * read and one write per forwarded message, and per connection only the
 * accept, socket, connect, two setsockopts, one shutdown and two closes
 * that the TCP connections themselves need.
 *
 * With --splice it moves bytes the way a bulk forwarder does at the least:
 * each direction of a connection has its own thread (the worker and one it
 * starts per connection) that loops on a blocking splice(2) from its socket
 * into a 1 MiB pipe and a blocking splice from the pipe to the other socket,
 * so the bytes never reach user memory and nothing but the two splices runs
 * per chunk.
 *
 * It serves at most 32 connections at once, so it suits the single
 * connection, connection-rate and (with --splice) bulk workloads (rr/pinned,
 * connrate, bulk), not the idle one.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { workers = 32 };

static struct sockaddr_in target;
static int use_splice;

/* direction is one way of a connection for the splice mode. */
struct direction {
	int src, dst;
};

/* splice_direction moves src's bytes to dst through a pipe until src ends
 * (then passes the end on as a half-close) or either socket fails. */
static void *splice_direction(void *arg)
{
	struct direction *d = arg;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0) {
		shutdown(d->dst, SHUT_WR);
		return NULL;
	}
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20); /* pipe-max-size; 64 KiB if refused */
	for (;;) {
		ssize_t n = splice(d->src, NULL, p[1], NULL, 1 << 20, SPLICE_F_MOVE);
		if (n <= 0) {
			shutdown(d->dst, SHUT_WR);
			break;
		}
		while (n > 0) {
			ssize_t w = splice(p[0], NULL, d->dst, NULL, n, SPLICE_F_MOVE);
			if (w <= 0)
				goto out;
			n -= w;
		}
	}
out:
	close(p[0]);
	close(p[1]);
	return NULL;
}

/* forward copies one message from src to dst; it returns 0 at the end of
 * src (after passing it on) or on a failed write, 1 otherwise. */
static int forward(int src, int dst, char *buf, size_t size)
{
	ssize_t n = read(src, buf, size);
	if (n <= 0) {
		shutdown(dst, SHUT_WR);
		return 0;
	}
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(dst, buf + off, n - off);
		if (w <= 0)
			return 0;
		off += w;
	}
	return 1;
}

static void *worker(void *arg)
{
	static __thread char buf[1 << 16];
	(void)arg;
	for (;;) {
		int one = 1, client, backend, open;
		client = accept4(3, NULL, NULL, SOCK_CLOEXEC);
		if (client < 0)
			continue;
		backend = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (backend < 0 || connect(backend, (struct sockaddr *)&target, sizeof target) < 0) {
			if (backend >= 0)
				close(backend);
			close(client);
			continue;
		}
		setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(backend, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (use_splice) {
			struct direction up = { client, backend }, down = { backend, client };
			pthread_t t;
			if (pthread_create(&t, NULL, splice_direction, &down) != 0) {
				close(client);
				close(backend);
				continue;
			}
			splice_direction(&up);
			pthread_join(t, NULL);
			close(client);
			close(backend);
			continue;
		}
		struct pollfd p[2] = {
			{ .fd = client, .events = POLLIN },
			{ .fd = backend, .events = POLLIN },
		};
		int peer[2] = { backend, client };
		for (open = 2; open > 0;) {
			if (poll(p, 2, -1) < 0)
				break;
			for (int i = 0; i < 2; i++) {
				if (p[i].fd < 0 || !p[i].revents)
					continue;
				if (!forward(p[i].fd, peer[i], buf, sizeof buf)) {
					p[i].fd = -1; /* poll skips it from now on */
					open--;
				}
			}
		}
		close(client);
		close(backend);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	char host[64];
	int port;
	pthread_attr_t attr;

	if (argc < 2 || sscanf(argv[argc - 1], "%63[^:]:%d", host, &port) != 2 ||
	    inet_pton(AF_INET, host, &target.sin_addr) != 1) {
		fprintf(stderr, "usage: floorproxy [--splice] IPV4:PORT (with a listener on fd 3)\n");
		return 2;
	}
	use_splice = argc > 2 && strcmp(argv[1], "--splice") == 0;
	target.sin_family = AF_INET;
	target.sin_port = htons(port);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (int i = 1; i < workers; i++) {
		pthread_t t;
		if (pthread_create(&t, &attr, worker, NULL) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	worker(NULL);
	return 0;
}
