/*
 * epoll_echo.c: the benchmark's "physical limit" reference: a single-threaded
 * echo server on bare epoll, no libraries. One shared 64 KiB read buffer, a
 * read is answered by an immediate write of the same bytes, and only the part
 * a short write left behind is copied into a per-connection buffer; while that
 * is pending the connection stops reading (backpressure). Level triggered by
 * default (one read per readiness), --edge reads until EAGAIN.
 * --threads N: N such loops, one per thread, each with its own listening
 * socket on the address (SO_REUSEPORT), so the kernel spreads connections
 * and nothing is shared: the multi-threaded reference.
 * Not a product: no timeouts, no limits beyond the kernel's.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define EPOLL_ECHO_READ_SIZE (64 * 1024)
#define EPOLL_ECHO_MAX_EVENTS 256
#define EPOLL_ECHO_BACKLOG 4096
#define EPOLL_ECHO_ACCEPT_RETRY_MS 100
#define EPOLL_ECHO_MAX_THREADS 64
/* With several loops a signal wakes one: the others look this often. */
#define EPOLL_ECHO_STOP_CHECK_MS 100

struct conn {
	int fd;
	bool eof;      /* the peer closed its side; close once drained */
	char *pending; /* bytes a short write left behind, or NULL */
	size_t pending_len;
	size_t pending_off;
};

static volatile sig_atomic_t stop_requested;
static bool edge_triggered;
static int nthreads = 1;
/* Each loop's own (thread-local: nothing is shared between loops). */
static __thread int epfd;
static __thread int listen_fd;
static __thread bool listen_paused;
static __thread char read_buf[EPOLL_ECHO_READ_SIZE];

static void
sig_term(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void
conn_close(struct conn *c)
{
	close(c->fd); /* also removes it from the epoll set */
	free(c->pending);
	free(c);
}

static int
conn_watch(struct conn *c, int op, bool want_write)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	if (edge_triggered)
		ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	else
		ev.events = want_write ? EPOLLOUT : EPOLLIN;
	ev.data.ptr = c;
	return epoll_ctl(epfd, op, c->fd, &ev);
}

/*
 * Write what is pending. Returns 1 if all of it went out, 0 if some is still
 * pending (the socket is full), -1 on a connection error.
 */
static int
conn_flush(struct conn *c)
{
	while (c->pending_off < c->pending_len) {
		ssize_t n = write(c->fd, c->pending + c->pending_off,
				  c->pending_len - c->pending_off);

		if (n > 0) {
			c->pending_off += (size_t)n;
		} else if (n == -1 && errno == EINTR) {
			continue;
		} else if (n == -1 && errno == EAGAIN) {
			return 0;
		} else {
			return -1;
		}
	}
	free(c->pending);
	c->pending = NULL;
	c->pending_len = c->pending_off = 0;
	return 1;
}

/* Echo buf back; keep whatever the socket did not take. 0, or -1 on error. */
static int
conn_echo(struct conn *c, const char *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(c->fd, buf + off, len - off);

		if (n > 0) {
			off += (size_t)n;
		} else if (n == -1 && errno == EINTR) {
			continue;
		} else if (n == -1 && errno == EAGAIN) {
			c->pending_len = len - off;
			c->pending_off = 0;
			c->pending = malloc(c->pending_len);
			if (c->pending == NULL)
				return -1;
			memcpy(c->pending, buf + off, c->pending_len);
			return 0;
		} else {
			return -1;
		}
	}
	return 0;
}

/* Everything a readiness event means for one connection. */
static void
conn_service(struct conn *c)
{
	bool was_pending = c->pending != NULL;

	if (c->pending != NULL) {
		int r = conn_flush(c);

		if (r == -1)
			goto close;
		if (r == 0)
			return; /* still full: keep waiting for EPOLLOUT */
	}
	if (c->eof)
		goto close; /* everything read has been echoed */

	for (;;) {
		ssize_t n = read(c->fd, read_buf, sizeof(read_buf));

		if (n > 0) {
			if (conn_echo(c, read_buf, (size_t)n) == -1)
				goto close;
			if (c->pending != NULL)
				break;
			if (!edge_triggered)
				break;
		} else if (n == 0) {
			c->eof = true;
			if (c->pending == NULL)
				goto close;
			break;
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN) {
			break;
		} else {
			goto close;
		}
	}

	/* Level triggered: switch interest between reading and draining. */
	if (!edge_triggered && was_pending != (c->pending != NULL) &&
	    conn_watch(c, EPOLL_CTL_MOD, c->pending != NULL) == -1)
		goto close;
	return;
close:
	conn_close(c);
}

static void
listener_pause(bool pause)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL; /* NULL marks the listener */
	if (epoll_ctl(epfd, pause ? EPOLL_CTL_DEL : EPOLL_CTL_ADD, listen_fd,
		      &ev) == 0)
		listen_paused = pause;
}

static void
listener_accept(void)
{
	static const int one = 1;

	for (;;) {
		struct conn *c;
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK);

		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				fprintf(stderr, "epoll_echo: accept: %s\n",
					strerror(errno));
				listener_pause(true);
			}
			return;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one));
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		if (conn_watch(c, EPOLL_CTL_ADD, false) == -1) {
			conn_close(c);
			continue;
		}
	}
}

/* A listening socket bound to ss (another loop's, with --threads). */
static int
listener_open_at(const struct sockaddr_storage *ss, socklen_t len)
{
	static const int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)ss, len) == -1 ||
	    listen(fd, EPOLL_ECHO_BACKLOG) == -1) {
		perror("epoll_echo: another loop's socket");
		return -1;
	}
	return fd;
}

/* "host:port" or "[v6]:port" into a bound, listening socket; -1 on error.
 * Its address goes to *ss (the other loops bind it too). */
static int
listener_open(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen)
{
	static const int one = 1;
	struct addrinfo hints, *res;
	char host[256], buf[INET6_ADDRSTRLEN];
	const char *port;
	int fd, rc;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (end == NULL || end[1] != ':' ||
		    (size_t)(end - spec) > sizeof(host))
			return -1;
		memcpy(host, spec + 1, (size_t)(end - spec - 1));
		host[end - spec - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(spec, ':');

		if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
			return -1;
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
		port = colon + 1;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		fprintf(stderr, "epoll_echo: %s: %s\n", spec, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	*sslen = sizeof(*ss);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (nthreads > 1 &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, EPOLL_ECHO_BACKLOG) == -1 ||
	    getsockname(fd, (struct sockaddr *)ss, sslen) == -1) {
		fprintf(stderr, "epoll_echo: %s: %s\n", spec, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);

	if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
		fprintf(stderr, "listening on [%s]:%u\n", buf,
			ntohs(sin6->sin6_port));
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		fprintf(stderr, "listening on %s:%u\n", buf,
			ntohs(sin->sin_port));
	}
	return fd;
}

/* One loop: its own epoll set and listening socket. */
static void *
loop_run(void *arg)
{
	struct epoll_event events[EPOLL_ECHO_MAX_EVENTS];
	int i, wait_ms;

	listen_fd = (int)(intptr_t)arg;
	if ((epfd = epoll_create1(0)) == -1) {
		perror("epoll_echo: epoll_create1");
		exit(1);
	}
	listener_pause(false);
	if (listen_paused) {
		perror("epoll_echo: epoll_ctl");
		exit(1);
	}
	while (!stop_requested) {
		wait_ms = listen_paused	 ? EPOLL_ECHO_ACCEPT_RETRY_MS
			  : nthreads > 1 ? EPOLL_ECHO_STOP_CHECK_MS
					 : -1;
		int n = epoll_wait(epfd, events, EPOLL_ECHO_MAX_EVENTS,
				   wait_ms);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			perror("epoll_echo: epoll_wait");
			exit(1);
		}
		if (listen_paused)
			listener_pause(false);
		for (i = 0; i < n; i++) {
			if (events[i].data.ptr == NULL)
				listener_accept();
			else
				conn_service(events[i].data.ptr);
		}
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	struct sockaddr_storage ss;
	socklen_t sslen;
	pthread_t threads[EPOLL_ECHO_MAX_THREADS];
	const char *spec = NULL;
	bool usage = false;
	int i, fd;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--edge") == 0)
			edge_triggered = true;
		else if (strcmp(argv[i], "--level") == 0)
			edge_triggered = false;
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			spec = argv[++i];
		else if (argv[i][0] != '-' && spec == NULL)
			spec = argv[i];
		else
			usage = true;
	}
	if (usage || spec == NULL || nthreads < 1 ||
	    nthreads > EPOLL_ECHO_MAX_THREADS) {
		fprintf(stderr, "usage: bench-epoll-echo [--edge|--level] "
				"[--threads N] [--listen] HOST:PORT\n");
		return 64;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = sig_term; /* no SA_RESTART: epoll_wait returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if ((fd = listener_open(spec, &ss, &sslen)) == -1)
		return 1;
	/* Loops 1..N-1 on threads of their own, loop 0 on this one. */
	for (i = 1; i < nthreads; i++) {
		int lfd = listener_open_at(&ss, sslen);

		if (lfd == -1 || pthread_create(&threads[i], NULL, loop_run,
						(void *)(intptr_t)lfd) != 0)
			return 1;
	}
	loop_run((void *)(intptr_t)fd);
	for (i = 1; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	return 0;
}
