/*
 * load_conn.c: one connection of the load mode: connecting (retried, and
 * for connrate to 127.x from spread source addresses), sending the
 * payload stream, reading the echo back and verifying it byte for byte,
 * and classifying and reporting its errors. What follows an echo, or a
 * closed socket, in each mode is load_mode.c's.
 *
 * Design. The client must outrun the server it measures, so the message
 * path is lean: raw non-blocking sockets, one persistent read event per
 * connection and a write event armed only while a write is short, no
 * bufferevents (their 4096-byte reads and per-message EPOLLOUT toggling,
 * see server/conn.c's note, would make the client the bottleneck) and no
 * allocation per message. Every connection sends the payload stream of its own
 * seed (connrate: of each cycle's own seed) at advancing positions, so a stale
 * or cross-wired echo cannot pass: bytes are generated into the thread's
 * scratch buffer just before send() and the echo is read into it and
 * checked with payload_verify() against the connection's expected
 * position. Bytes beyond what was sent count as a mismatch.
 *
 * With --tls, the same path runs through SSL_read() and SSL_write() on
 * the socket (a connrate cycle is then a handshake too): OpenSSL's "want
 * read" and "want write" are the socket's EAGAIN, and reading goes on
 * until OpenSSL holds nothing more, since decrypted bytes it keeps would
 * wake no event, or, with nothing held, until a plain read's budget is
 * spent: the read event is level triggered and comes back for the rest.
 *
 * With -u (pingpong only), a connection is a connected UDP socket and a
 * message one datagram; a reply is one recv(). A datagram unanswered for
 * -t is counted lost (load_mode_lost()), not failed, and the next goes;
 * its echo, should it come late, is recognised and dropped.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include <openssl/err.h>

#include "client.h"
#include "load_int.h"

#define LOAD_READS_PER_EVENT 4 /* full reads before yielding */
#define LOAD_RETRY_MIN_MS 10   /* first connect back-off, doubling */
#define LOAD_RETRY_MAX_MS 1000
#define LOAD_CYCLE_RETRY_MS 1 /* connrate: pause after a failed cycle */
#define LOAD_REPORT_MAX 10    /* error messages printed per run */
#define LOAD_SRC_FIRST 2      /* connrate sources 127.0.0.2 ... */
#define LOAD_SRC_COUNT 253    /* ... to 127.0.0.254 */

static void load_conn_write_cb(evutil_socket_t fd, short what, void *arg);

/* Counts an error of c's and says what it was, for the first few. */
void
load_conn_error(struct load_conn *c, enum load_error kind, const char *fmt, ...)
{
	struct load *l = c->t->l;
	char msg[256];
	unsigned n;
	va_list ap;

	c->t->errors[kind]++;
	n = atomic_fetch_add_explicit(&l->reported, 1, memory_order_relaxed);
	if (n > LOAD_REPORT_MAX)
		return;
	if (n == LOAD_REPORT_MAX) {
		fprintf(stderr, "%s: more errors, not shown\n", CLIENT_NAME);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: connection %" PRIu64 ": %s: %s\n", CLIENT_NAME,
		c->id + 1, report_error_name(kind), msg);
}

/* The error kind of a failed send() or recv(). */
static enum load_error
load_errno_kind(int e)
{
	return e == ETIMEDOUT ? LOAD_ERR_TIMEOUT : LOAD_ERR_RESET;
}

/* Closes c's socket, if open, and cancels its events. */
void
load_conn_close(struct load_conn *c)
{
	if (c->fd == -1)
		return;
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	event_del(c->rev);
	event_del(c->wev);
	c->write_on = 0;
	close(c->fd);
	c->fd = -1;
	c->state = LOAD_CONN_CLOSED;
}

/* Takes c out of the run for good. */
void
load_conn_retire(struct load_conn *c)
{
	struct load_thread *t = c->t;

	load_conn_close(c);
	evtimer_del(c->timer);
	if (!c->active)
		return;
	c->active = 0;
	t->open--;
	if (t->open == 0 &&
	    (t->phase == LOAD_DRAINING || t->phase == LOAD_ECHOING))
		load_thread_stop(t);
}

/* A TLS read or write failed: what OpenSSL says, as a reset. */
static void
load_conn_tls_fail(struct load_conn *c, const char *what, int e)
{
	char why[256];

	if (ERR_peek_error() != 0)
		ERR_error_string_n(ERR_peek_error(), why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s",
			 e == SSL_ERROR_SYSCALL && errno != 0 ? strerror(errno)
							      : "TLS error");
	ERR_clear_error();
	load_conn_fail(c, LOAD_ERR_RESET, "%s: %s", what, why);
}

void
load_conn_fail(struct load_conn *c, enum load_error kind, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	load_conn_error(c, kind, "%s", msg);
	load_conn_close(c);
	load_conn_after(c, 1);
}

/* Arms or disarms c's write event: armed while a write is pending. */
void
load_conn_want_write(struct load_conn *c, int on)
{
	if (on == c->write_on)
		return;
	if (on)
		event_add(c->wev, NULL);
	else
		event_del(c->wev);
	c->write_on = on;
}

/* Sends the stream from c->out.pos up to c->goal, in writes of at most
 * --size bytes, as far as the socket takes it. -1 if c failed. */
int
load_conn_flush(struct load_conn *c)
{
	struct load_thread *t = c->t;
	size_t chunk = (size_t)c->t->l->o->size, n;
	struct payload p;
	ssize_t w;

	if (chunk > LOAD_BUF_SIZE)
		chunk = LOAD_BUF_SIZE;
	while (c->out.pos < c->goal) {
		n = chunk;
		if (n > c->goal - c->out.pos)
			n = (size_t)(c->goal - c->out.pos);
		p = c->out;
		payload_fill(&p, t->buf, n);
		if (c->ssl != NULL) {
			/* A retry sends the same bytes again: the stream's
			 * position has not moved. */
			int r = SSL_write(c->ssl, t->buf, (int)n);

			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ)
					break;
				load_conn_tls_fail(c, "SSL_write", e);
				return -1;
			}
			w = r;
		} else {
			w = send(c->fd, t->buf, n, MSG_NOSIGNAL);
		}
		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			load_conn_fail(c, load_errno_kind(errno), "send: %s",
				       strerror(errno));
			return -1;
		}
		c->out.pos += (uint64_t)w;
		c->progressed = 1;
		if ((size_t)w < n)
			break;
	}
	load_conn_want_write(c, c->out.pos < c->goal);
	return 0;
}

/* Something more to send: n bytes (a message, a write) appended. */
int
load_conn_send(struct load_conn *c, uint64_t n)
{
	c->goal += n;
	return load_conn_flush(c);
}

/* The stream byte expected at position pos of seed's stream. */
static unsigned
load_expected_byte(uint64_t seed, uint64_t pos)
{
	struct payload p;
	unsigned char b;

	payload_init(&p, seed);
	p.pos = pos;
	payload_fill(&p, &b, 1);
	return b;
}

/* -u: is buf the late echo of the datagram given up as lost? */
static int
load_conn_late(struct load_conn *c, const unsigned char *buf, size_t n)
{
	struct payload p = c->in;
	size_t bad;

	if (c->late_len == 0 || n != c->late_len)
		return 0;
	p.pos = c->late_pos;
	if (payload_verify(&p, buf, n, &bad) == -1)
		return 0;
	c->late_len = 0;
	return 1;
}

/* Verifies n bytes read from c. -1 if c stopped (failed or done). */
static int
load_conn_received(struct load_conn *c, const unsigned char *buf, size_t n)
{
	uint64_t outstanding = c->out.pos - c->in.pos;
	size_t ok = n > outstanding ? (size_t)outstanding : n, bad;

	if (payload_verify(&c->in, buf, ok, &bad) == -1) {
		load_conn_fail(c, LOAD_ERR_MISMATCH,
			       "echo differs at byte offset %" PRIu64
			       " (sent 0x%02x, received 0x%02x)",
			       c->in.pos + bad,
			       load_expected_byte(c->in.seed, c->in.pos + bad),
			       buf[bad]);
		return -1;
	}
	if (ok < n) {
		load_conn_fail(c, LOAD_ERR_MISMATCH,
			       "%zu bytes came back beyond the %" PRIu64
			       " sent",
			       n - ok, c->out.pos);
		return -1;
	}
	c->progressed = 1;
	return load_mode_echoed(c, ok);
}

static void load_conn_handshake(struct load_conn *c);

/* The server's side of a TLS read: all OpenSSL holds, then EAGAIN or
 * the budget of LOAD_READS_PER_EVENT full reads. */
static void
load_conn_tls_read(struct load_conn *c)
{
	unsigned char *buf = c->t->buf;
	size_t got = 0;
	int n, e;

	for (;;) {
		n = SSL_read(c->ssl, buf, LOAD_BUF_SIZE);
		if (n > 0) {
			if (load_conn_received(c, buf, (size_t)n) == -1)
				return;
			/* Yield as a plain read does once OpenSSL holds
			 * nothing: a server that echoes each record as fast
			 * as it comes keeps the socket from ever running dry,
			 * and this loop, which refills the stream as it
			 * reads, would starve the thread's other connections
			 * and its phase timer for good. */
			got += (size_t)n;
			if (got >= LOAD_READS_PER_EVENT * LOAD_BUF_SIZE &&
			    !SSL_has_pending(c->ssl))
				return;
			continue;
		}
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return;
		if (e == SSL_ERROR_ZERO_RETURN ||
		    (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 &&
		     (n == 0 || errno == 0))) {
			ERR_clear_error();
			load_conn_fail(c, LOAD_ERR_EOF,
				       "the server closed the connection with "
				       "%" PRIu64 " bytes not echoed",
				       c->goal - c->in.pos);
			return;
		}
		load_conn_tls_fail(c, "SSL_read", e);
		return;
	}
}

static void
load_conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load_conn *c = arg;
	unsigned char *buf = c->t->buf;
	ssize_t n;
	int i;

	(void)what;
	if (c->state == LOAD_CONN_HANDSHAKE) {
		load_conn_handshake(c);
		return;
	}
	if (c->ssl != NULL) {
		load_conn_tls_read(c);
		return;
	}
	for (i = 0; i < LOAD_READS_PER_EVENT; i++) {
		n = recv(fd, buf, LOAD_BUF_SIZE, 0);
		if (n >= 0 && c->t->l->o->udp) {
			/* One datagram: a whole reply, or a late one. */
			if (load_conn_late(c, buf, (size_t)n))
				continue;
			if (n == 0 || (uint64_t)n != c->goal - c->in.pos) {
				load_conn_fail(c, LOAD_ERR_MISMATCH,
					       "a %zd-byte reply to a %" PRIu64
					       "-byte datagram",
					       n, c->goal - c->in.pos);
				return;
			}
			if (load_conn_received(c, buf, (size_t)n) == -1)
				return;
			continue;
		}
		if (n > 0) {
			if (load_conn_received(c, buf, (size_t)n) == -1 ||
			    (size_t)n < LOAD_BUF_SIZE)
				return;
		} else if (n == 0) {
			load_conn_fail(c, LOAD_ERR_EOF,
				       "the server closed the connection with "
				       "%" PRIu64 " bytes not echoed",
				       c->goal - c->in.pos);
			return;
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return;
		} else {
			load_conn_fail(c, load_errno_kind(errno), "recv: %s",
				       strerror(errno));
			return;
		}
	}
}

/* The connection is ready to echo: connected, and through TLS. */
static void
load_conn_ready(struct load_conn *c)
{
	struct load_thread *t = c->t;

	c->state = LOAD_CONN_OPEN;
	c->progressed = 1;
	load_conn_want_write(c, 0);
	if (t->phase == LOAD_CONNECTING) {
		t->established++;
		load_thread_settle(t, c);
		return;
	}
	/* connrate: the cycle's message. */
	load_conn_send(c, t->l->o->size);
}

/* One step of c's TLS handshake; ready when it is done. */
static void
load_conn_handshake(struct load_conn *c)
{
	int r = SSL_do_handshake(c->ssl), e;
	char why[512], a[ADDR_STRLEN];

	if (r == 1) {
		load_conn_ready(c);
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		load_conn_want_write(c, e == SSL_ERROR_WANT_WRITE);
		c->progressed = 1;
		return;
	}
	client_tls_failure(c->ssl, ERR_peek_error(), why, sizeof(why));
	ERR_clear_error();
	load_conn_error(
		c, LOAD_ERR_CONNECT, "TLS handshake with %s failed: %s",
		addr_format((const struct sockaddr *)&c->t->l->target.ss, a,
			    sizeof(a)),
		why);
	load_conn_close(c);
	load_conn_after(c, 1);
}

/* Connected: echo at once, or first a TLS handshake. */
static void
load_conn_connected(struct load_conn *c)
{
	struct load *l = c->t->l;
	char err[256];

	if (l->o->proxy != 0 &&
	    client_proxy_send(l->o, c->fd, err, sizeof(err)) == -1) {
		load_conn_error(c, LOAD_ERR_CONNECT, "%s", err);
		load_conn_close(c);
		load_conn_after(c, 1);
		return;
	}
	event_add(c->rev, NULL);
	if (l->tls == NULL) {
		load_conn_ready(c);
		return;
	}
	if ((c->ssl = client_tls_ssl(l->tls, l->o)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1) {
		load_conn_error(c, LOAD_ERR_CONNECT, "cannot start TLS");
		load_conn_close(c);
		load_conn_after(c, 1);
		return;
	}
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
				     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_connect_state(c->ssl);
	c->state = LOAD_CONN_HANDSHAKE;
	load_conn_handshake(c);
}

static int
load_connect_retriable(int e)
{
	return e == EAGAIN || e == ETIMEDOUT || e == ECONNRESET ||
	       e == EADDRNOTAVAIL || e == EINTR;
}

void
load_conn_connect_failed(struct load_conn *c, int e)
{
	struct load_thread *t = c->t;
	uint64_t backoff, deadline;
	char a[ADDR_STRLEN];

	load_conn_close(c);
	if (t->phase == LOAD_CONNECTING && load_connect_retriable(e)) {
		backoff = (uint64_t)LOAD_RETRY_MIN_MS
			  << (c->attempts < 7 ? c->attempts : 7);
		if (backoff > LOAD_RETRY_MAX_MS)
			backoff = LOAD_RETRY_MAX_MS;
		backoff *= NS_PER_MS;
		deadline = c->connect_start + t->l->o->timeout_ms * NS_PER_MS;
		if (load_now() + backoff < deadline) {
			c->timer_for = LOAD_TIMER_CONNECT;
			load_timer_at(c->timer, load_now() + backoff);
			return;
		}
	}
	load_conn_error(c, LOAD_ERR_CONNECT, "cannot connect to %s: %s",
			addr_format((const struct sockaddr *)&t->l->target.ss,
				    a, sizeof(a)),
			strerror(e));
	load_conn_after(c, 1);
}

/* connrate to 127.x: binds fd to the next source address, its port
 * chosen only at connect() so that every source has a full port range. */
static int
load_conn_bind_source(struct load_conn *c, int fd)
{
	struct load_thread *t = c->t;
	struct sockaddr_in sin;
	int one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr =
		htonl((uint32_t)(127u << 24) | (LOAD_SRC_FIRST + t->src_next));
	t->src_next = (t->src_next + 1) % LOAD_SRC_COUNT;
	if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		       sizeof(one)) == -1)
		return -1;
	return bind(fd, (struct sockaddr *)&sin, sizeof(sin));
}

/* One connect attempt. */
void
load_conn_connect(struct load_conn *c)
{
	struct load_thread *t = c->t;
	const struct addr *a = &t->l->target;
	int fd, one = 1;

	c->attempts++;
	c->stalled = 0;
	fd = socket(a->ss.ss_family,
		    (t->l->o->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK |
			    SOCK_CLOEXEC,
		    0);
	if (fd == -1) {
		load_conn_connect_failed(c, errno);
		return;
	}
	if (!t->l->o->udp)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one));
	if ((t->l->o->source.ss.ss_family != 0
		     ? bind(fd, (const struct sockaddr *)&t->l->o->source.ss,
			    t->l->o->source.len)
	     : t->l->spread_sources ? load_conn_bind_source(c, fd)
				    : 0) == -1) {
		int e = errno;
		close(fd);
		load_conn_connect_failed(c, e);
		return;
	}
	c->fd = fd;
	c->state = LOAD_CONN_CONNECTING;
	event_assign(c->rev, t->base, fd, EV_READ | EV_PERSIST,
		     load_conn_read_cb, c);
	event_assign(c->wev, t->base, fd, EV_WRITE | EV_PERSIST,
		     load_conn_write_cb, c);
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0) {
		load_conn_connected(c);
		return;
	}
	if (errno == EINPROGRESS) {
		load_conn_want_write(c, 1);
		return;
	}
	load_conn_connect_failed(c, errno);
}

static void
load_conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load_conn *c = arg;
	socklen_t len = sizeof(int);
	int e = 0;

	(void)what;
	if (c->state == LOAD_CONN_HANDSHAKE) {
		load_conn_handshake(c);
		return;
	}
	if (c->state != LOAD_CONN_CONNECTING) {
		load_conn_flush(c);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		e = errno;
	if (e != 0)
		load_conn_connect_failed(c, e);
	else
		load_conn_connected(c);
}

static void
load_conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load_conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->timer_for) {
	case LOAD_TIMER_CONNECT:
		load_conn_connect(c);
		break;
	case LOAD_TIMER_CYCLE:
		load_mode_cycle(c);
		break;
	case LOAD_TIMER_SEND:
		load_mode_pace(c, load_now());
		break;
	}
}

/*
 * c's socket is closed, after an error (failed) or a complete connrate
 * cycle. connrate goes on with the next cycle until the window ends;
 * a connection of the other modes leaves the run.
 */
void
load_conn_after(struct load_conn *c, int failed)
{
	struct load_thread *t = c->t;

	if (t->phase == LOAD_CONNECTING) {
		load_conn_retire(c);
		load_thread_settle(t, c);
		return;
	}
	if (t->l->o->mode != CLIENT_MODE_CONNRATE ||
	    t->phase >= LOAD_DRAINING) {
		load_conn_retire(c);
		return;
	}
	if (!failed) {
		load_mode_cycle(c);
		return;
	}
	/* Not at once: a failure can come from inside the connect, and a
	 * dead server must not turn this into a busy loop. */
	c->timer_for = LOAD_TIMER_CYCLE;
	load_timer_at(c->timer, load_now() + LOAD_CYCLE_RETRY_MS * NS_PER_MS);
}

/* Is c waiting for something: a connect, a write, an echo? */
int
load_conn_waiting(const struct load_conn *c)
{
	return c->state == LOAD_CONN_CONNECTING ||
	       c->state == LOAD_CONN_HANDSHAKE ||
	       (c->state == LOAD_CONN_OPEN && c->in.pos < c->goal);
}

/* c, connection id of thread t, set up with its events on t's base; -1
 * if they cannot be made (load_conn_free() cleans up either way). */
int
load_conn_init(struct load_conn *c, struct load_thread *t, uint64_t id)
{
	c->t = t;
	c->fd = -1;
	c->id = id;
	payload_init(&c->out, c->id + 1);
	payload_init(&c->in, c->id + 1);
	c->rev = event_new(t->base, -1, 0, load_conn_read_cb, c);
	c->wev = event_new(t->base, -1, 0, load_conn_write_cb, c);
	c->timer = evtimer_new(t->base, load_conn_timer_cb, c);
	if (c->rev == NULL || c->wev == NULL || c->timer == NULL)
		return -1;
	return 0;
}

void
load_conn_free(struct load_conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	if (c->timer != NULL)
		event_free(c->timer);
}
