/*
 * epoll_tls_echo.c: the benchmark's TLS reference: a single-threaded echo
 * server on bare epoll and OpenSSL, no other library. Each connection is
 * one SSL over a non-blocking socket, level triggered: the handshake is
 * driven by SSL_accept() until it is done, then every record read is
 * written straight back with SSL_write(); what a full socket leaves
 * behind is copied aside and the connection stops reading until it is out
 * (backpressure). The context is set up as echod's is: TLSv1.2 and 1.3,
 * no renegotiation, record buffers released while idle
 * (SSL_MODE_RELEASE_BUFFERS), OpenSSL's default session cache and tickets.
 * Not a product: no timeouts, no limits beyond the kernel's.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define TLS_ECHO_READ_SIZE (16 * 1024) /* one record's plaintext */
#define TLS_ECHO_MAX_EVENTS 256
#define TLS_ECHO_BACKLOG 4096
#define TLS_ECHO_ACCEPT_RETRY_MS 100

struct conn {
	int fd;
	SSL *ssl;
	bool established;
	bool watching_out; /* EPOLLOUT, not EPOLLIN, is what we wait for */
	char *pending;	   /* an echo SSL_write() has yet to take, or NULL */
	size_t pending_len;
};

static volatile sig_atomic_t stop_requested;
static SSL_CTX *ctx;
static int epfd;
static int listen_fd;
static bool listen_paused;
static char read_buf[TLS_ECHO_READ_SIZE];

static void
sig_term(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void
conn_close(struct conn *c)
{
	SSL_free(c->ssl);
	close(c->fd); /* also removes it from the epoll set */
	free(c->pending);
	free(c);
}

static int
conn_watch(struct conn *c, int op, bool out)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = out ? EPOLLOUT : EPOLLIN;
	ev.data.ptr = c;
	c->watching_out = out;
	return epoll_ctl(epfd, op, c->fd, &ev);
}

/*
 * Writes buf with SSL_write(), partial writes allowed. Returns 1 when all
 * went out, 0 when the rest waits (copied to c->pending unless it is
 * already there), -1 on a connection error. *out says whether the wait
 * is for the socket to become writable.
 */
static int
conn_write(struct conn *c, const char *buf, size_t len, bool *out)
{
	size_t off = 0;

	while (off < len) {
		int n = SSL_write(c->ssl, buf + off, (int)(len - off));

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_WRITE:
			*out = true;
			break;
		case SSL_ERROR_WANT_READ:
			*out = false;
			break;
		default:
			return -1;
		}
		if (buf != c->pending) {
			c->pending = malloc(len - off);
			if (c->pending == NULL)
				return -1;
			memcpy(c->pending, buf + off, len - off);
			c->pending_len = len - off;
		} else {
			memmove(c->pending, c->pending + off, len - off);
			c->pending_len = len - off;
		}
		return 0;
	}
	if (buf == c->pending) {
		free(c->pending);
		c->pending = NULL;
		c->pending_len = 0;
	}
	return 1;
}

/* Everything a readiness event means for one connection. */
static void
conn_service(struct conn *c)
{
	bool out = false;
	int n;

	if (!c->established) {
		n = SSL_accept(c->ssl);
		if (n != 1) {
			switch (SSL_get_error(c->ssl, n)) {
			case SSL_ERROR_WANT_READ:
				out = false;
				goto watch;
			case SSL_ERROR_WANT_WRITE:
				out = true;
				goto watch;
			default:
				goto close;
			}
		}
		c->established = true;
	}
	if (c->pending != NULL) {
		n = conn_write(c, c->pending, c->pending_len, &out);
		if (n == -1)
			goto close;
		if (n == 0)
			goto watch;
	}
	/* Read until OpenSSL has nothing more: records it has already
	 * taken from the socket would not wake epoll again. */
	for (;;) {
		n = SSL_read(c->ssl, read_buf, sizeof(read_buf));
		if (n > 0) {
			int w = conn_write(c, read_buf, (size_t)n, &out);

			if (w == -1)
				goto close;
			if (w == 0)
				goto watch;
			continue;
		}
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_READ:
			out = false;
			goto watch;
		case SSL_ERROR_WANT_WRITE:
			out = true;
			goto watch;
		case SSL_ERROR_ZERO_RETURN:
			(void)SSL_shutdown(c->ssl); /* our close_notify */
			goto close;
		default:
			goto close; /* a reset, a bare EOF, a bad record */
		}
	}
watch:
	if (out != c->watching_out && conn_watch(c, EPOLL_CTL_MOD, out) == -1)
		goto close;
	return;
close:
	ERR_clear_error();
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
				fprintf(stderr, "epoll_tls_echo: accept: %s\n",
					strerror(errno));
				listener_pause(true);
			}
			return;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one));
		c = calloc(1, sizeof(*c));
		if (c == NULL || (c->ssl = SSL_new(ctx)) == NULL ||
		    SSL_set_fd(c->ssl, fd) != 1) {
			if (c != NULL)
				SSL_free(c->ssl);
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		if (conn_watch(c, EPOLL_CTL_ADD, false) == -1)
			conn_close(c);
	}
}

/* "host:port" (IPv4) into a bound, listening socket; -1 on error. */
static int
listener_open(const char *spec)
{
	static const int one = 1;
	struct addrinfo hints, *res;
	char host[256], buf[INET6_ADDRSTRLEN];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd, rc;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		fprintf(stderr, "epoll_tls_echo: %s: %s\n", spec,
			gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, TLS_ECHO_BACKLOG) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		fprintf(stderr, "epoll_tls_echo: %s: %s\n", spec,
			strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf,
		  sizeof(buf));
	fprintf(stderr, "listening on %s:%u\n", buf,
		ntohs(((struct sockaddr_in *)&ss)->sin_port));
	return fd;
}

static SSL_CTX *
context_new(const char *cert, const char *key)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());

	if (c == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION |
				       SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS |
				    SSL_MODE_ENABLE_PARTIAL_WRITE |
				    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_id_context(c, (const unsigned char *)"tls", 3);
	if (SSL_CTX_use_certificate_chain_file(c, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c) != 1) {
		ERR_print_errors_fp(stderr);
		SSL_CTX_free(c);
		return NULL;
	}
	return c;
}

int
main(int argc, char **argv)
{
	struct epoll_event events[TLS_ECHO_MAX_EVENTS];
	struct sigaction sa;
	const char *spec = NULL, *cert = NULL, *key = NULL;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--listen") == 0)
			spec = argv[i + 1];
		else if (strcmp(argv[i], "--cert") == 0)
			cert = argv[i + 1];
		else if (strcmp(argv[i], "--key") == 0)
			key = argv[i + 1];
		else
			break;
	}
	if (i != argc || spec == NULL || cert == NULL || key == NULL) {
		fprintf(stderr, "usage: bench-epoll-tls-echo --listen "
				"IPv4:PORT --cert PEM --key PEM\n");
		return 64;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = sig_term; /* no SA_RESTART: epoll_wait returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if ((ctx = context_new(cert, key)) == NULL)
		return 1;
	if ((listen_fd = listener_open(spec)) == -1)
		return 1;
	if ((epfd = epoll_create1(0)) == -1) {
		perror("epoll_tls_echo: epoll_create1");
		return 1;
	}
	listener_pause(false);
	if (listen_paused) {
		perror("epoll_tls_echo: epoll_ctl");
		return 1;
	}
	while (!stop_requested) {
		int n = epoll_wait(epfd, events, TLS_ECHO_MAX_EVENTS,
				   listen_paused ? TLS_ECHO_ACCEPT_RETRY_MS
						 : -1);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			perror("epoll_tls_echo: epoll_wait");
			return 1;
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
	SSL_CTX_free(ctx);
	return 0;
}
