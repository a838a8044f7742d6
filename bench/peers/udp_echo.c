/*
 * udp_echo.c: the benchmark's UDP reference: RFC 862 over one socket on
 * bare epoll, no libraries. It takes a batch of up to 16 datagrams with
 * one recvmmsg(2) and sends each back to its source with one sendmmsg(2),
 * in place; a reply the socket has no room for is dropped, as echod's
 * is. No reflector guard, no rate limit, no source-address control
 * messages: the least a batched UDP echo can do, with echod's batch sizes
 * (16 datagrams a call, at most 4 calls a wakeup).
 * Not a product.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define UDP_ECHO_BATCH 16
#define UDP_ECHO_BATCHES 4
#define UDP_ECHO_MAX 65536

static volatile sig_atomic_t stop_requested;

static struct mmsghdr in[UDP_ECHO_BATCH], out[UDP_ECHO_BATCH];
static struct iovec iov[UDP_ECHO_BATCH];
static struct sockaddr_storage peer[UDP_ECHO_BATCH];
static unsigned char data[UDP_ECHO_BATCH][UDP_ECHO_MAX];

static void
sig_term(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Receives a batch and echoes it. Returns how many came, or -1 when the
 * socket is empty. */
static int
serve_batch(int fd)
{
	int n, i, sent = 0;

	for (i = 0; i < UDP_ECHO_BATCH; i++) {
		memset(&in[i].msg_hdr, 0, sizeof(in[i].msg_hdr));
		iov[i].iov_base = data[i];
		iov[i].iov_len = UDP_ECHO_MAX;
		in[i].msg_hdr.msg_name = &peer[i];
		in[i].msg_hdr.msg_namelen = sizeof(peer[i]);
		in[i].msg_hdr.msg_iov = &iov[i];
		in[i].msg_hdr.msg_iovlen = 1;
	}
	do
		n = recvmmsg(fd, in, UDP_ECHO_BATCH, MSG_DONTWAIT, NULL);
	while (n == -1 && errno == EINTR);
	if (n <= 0)
		return -1;
	for (i = 0; i < n; i++) {
		memset(&out[i].msg_hdr, 0, sizeof(out[i].msg_hdr));
		iov[i].iov_len = in[i].msg_len;
		out[i].msg_hdr.msg_name = &peer[i];
		out[i].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
		out[i].msg_hdr.msg_iov = &iov[i];
		out[i].msg_hdr.msg_iovlen = 1;
	}
	while (sent < n) {
		int k = sendmmsg(fd, out + sent, (unsigned)(n - sent),
				 MSG_DONTWAIT);

		if (k > 0)
			sent += k;
		else if (k == -1 && errno == EINTR)
			continue;
		else if (k == -1 && (errno == EAGAIN || errno == ENOBUFS))
			break; /* no room: the rest are dropped */
		else
			sent++; /* this one failed: skip it */
	}
	return n;
}

int
main(int argc, char **argv)
{
	struct addrinfo hints, *res;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct epoll_event ev;
	struct sigaction sa;
	char host[256], buf[INET6_ADDRSTRLEN];
	const char *spec, *colon;
	int fd, epfd, rc;

	spec = argc == 3 && strcmp(argv[1], "--listen") == 0 ? argv[2]
	       : argc == 2				     ? argv[1]
							     : NULL;
	if (spec == NULL || (colon = strrchr(spec, ':')) == NULL ||
	    (size_t)(colon - spec) >= sizeof(host)) {
		fprintf(stderr, "usage: bench-udp-echo [--listen] IPv4:PORT\n");
		return 64;
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sig_term; /* no SA_RESTART: epoll_wait returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		fprintf(stderr, "udp_echo: %s: %s\n", spec, gai_strerror(rc));
		return 1;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (fd == -1 || bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		fprintf(stderr, "udp_echo: %s: %s\n", spec, strerror(errno));
		return 1;
	}
	freeaddrinfo(res);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf,
		  sizeof(buf));
	fprintf(stderr, "listening on %s:%u\n", buf,
		ntohs(((struct sockaddr_in *)&ss)->sin_port));

	if ((epfd = epoll_create1(0)) == -1) {
		perror("udp_echo: epoll_create1");
		return 1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
		perror("udp_echo: epoll_ctl");
		return 1;
	}
	while (!stop_requested) {
		int n = epoll_wait(epfd, &ev, 1, -1);

		if (n == -1 && errno != EINTR) {
			perror("udp_echo: epoll_wait");
			return 1;
		}
		/* Level triggered; full batches are followed by more, at
		 * most UDP_ECHO_BATCHES per wakeup, as echod does. */
		for (int i = 0; n == 1 && i < UDP_ECHO_BATCHES; i++)
			if (serve_batch(fd) < UDP_ECHO_BATCH)
				break;
	}
	return 0;
}
