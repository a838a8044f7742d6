/*
 * seq.c: the sequential mode. Opens o->count connections one after
 * another; each sends the message (or --size payload bytes), verifies the
 * echo incrementally as it arrives, reads exactly as many bytes as it
 * sent and closes. Stops at the first connection that fails.
 *
 * With --expect-close N or --expect-reset N (a server injecting faults),
 * a connection passes only if exactly N bytes come back, verified, and
 * then the server closes, or resets, the connection. A reset can reach
 * the client while echo is still unread in its socket, or surface first
 * as a write error: what the socket holds is read and verified before
 * the verdict, so the count is exact.
 */
#include <fcntl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>

#include "client.h"
#include "parse.h"
#include "payload.h"

/*
 * Payload bytes are generated straight into the output buffer a chunk at
 * a time, refilled from SEQ_WRITE_LOW up to SEQ_WRITE_HIGH: memory stays
 * bounded whatever --size says, and reading goes on while we write.
 */
#define SEQ_WRITE_CHUNK ((size_t)64 * 1024)
#define SEQ_WRITE_LOW ((size_t)64 * 1024)
#define SEQ_WRITE_HIGH ((size_t)256 * 1024)
#define SEQ_PEEK_VECS 16

/* One connection, from the first connect attempt to the close. */
struct seq_conn {
	const struct client_options *o;
	const struct addr *addrs;
	int naddrs;
	struct event_base *base;
	SSL_CTX *tls;	     /* --tls: the context, or NULL */
	struct event *timer; /* the whole connection's deadline */
	struct bufferevent *bev;
	uint64_t index; /* 1-based, for messages */

	int addr;			    /* index of the address tried */
	int attempt_errno[CLIENT_ADDR_MAX]; /* why earlier ones failed */
	int in_connect;	   /* inside bufferevent_socket_connect */
	int connect_errno; /* error reported from inside it */
	int proxy_tcp;	   /* --tls --proxy: TCP first, for the header */
	int connected;

	uint64_t total;	    /* bytes to send and to get back */
	uint64_t sent;	    /* queued to the output buffer */
	uint64_t received;  /* verified */
	struct payload out; /* --size: stream being sent */
	struct payload in;  /* --size: stream expected back */

	uint64_t started_us;	/* when the first byte was sent */
	uint64_t first_byte_us; /* when the first came back, or 0 */
	int reset;		/* the server reset the connection */

	int done;
	int failed;
};

static void seq_conn_connect(struct seq_conn *c);
static int seq_conn_send_proxy(struct seq_conn *c);
static void seq_conn_start_tls(struct seq_conn *c);

static uint64_t
seq_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* " (first byte back after 1.2ms)", or "" if none came back. */
static const char *
seq_conn_first_byte(const struct seq_conn *c, char *buf, size_t len)
{
	if (c->first_byte_us == 0) {
		buf[0] = '\0';
		return buf;
	}
	snprintf(buf, len, " (first byte back after %.1fms)",
		 (double)(c->first_byte_us - c->started_us) / 1000.0);
	return buf;
}

static const char *
seq_conn_addr(const struct seq_conn *c, int i, char *buf, size_t len)
{
	return addr_format((const struct sockaddr *)&c->addrs[i].ss, buf, len);
}

/* Tears the connection down and returns control to seq_conn_run(). */
static void
seq_conn_finish(struct seq_conn *c)
{
	evtimer_del(c->timer);
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->done = 1;
	event_base_loopbreak(c->base);
}

/* Reports failed connect attempts to addresses before c->addr. */
static void
seq_conn_report_attempts(const struct seq_conn *c)
{
	char a[ADDR_STRLEN];
	int i;

	for (i = 0; i < c->addr && i < c->naddrs; i++)
		fprintf(stderr,
			"%s: connection %" PRIu64 "/%" PRIu64
			" to %s: cannot connect: %s\n",
			CLIENT_NAME, c->index, c->o->count,
			seq_conn_addr(c, i, a, sizeof(a)),
			strerror(c->attempt_errno[i]));
}

static void seq_conn_fail(struct seq_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Reports why the connection to c->addr failed, then finishes it. */
static void
seq_conn_fail(struct seq_conn *c, const char *fmt, ...)
{
	char a[ADDR_STRLEN];
	va_list ap;

	if (!c->connected)
		seq_conn_report_attempts(c);
	fprintf(stderr,
		"%s: connection %" PRIu64 "/%" PRIu64 " to %s: ", CLIENT_NAME,
		c->index, c->o->count, seq_conn_addr(c, c->addr, a, sizeof(a)));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	c->failed = 1;
	seq_conn_finish(c);
}

static void
seq_conn_succeed(struct seq_conn *c)
{
	size_t len = c->o->message_len;

	if (!c->o->quiet && c->o->size != 0) {
		printf("Received: %" PRIu64 " bytes, verified\n", c->total);
	} else if (!c->o->quiet) {
		/* What Python's print(message.strip()) shows, more or less:
		 * the message without its one trailing newline. */
		if (len > 0 && c->o->message[len - 1] == '\n')
			len--;
		fputs("Received: ", stdout);
		fwrite(c->o->message, 1, len, stdout);
		fputc('\n', stdout);
	}
	seq_conn_finish(c);
}

/* The byte expected at stream offset off, for error messages. */
static unsigned
seq_conn_expected(const struct seq_conn *c, uint64_t off)
{
	struct payload p;
	unsigned char b;

	if (c->o->size == 0)
		return (unsigned char)c->o->message[off];
	payload_init(&p, c->in.seed);
	p.pos = off;
	payload_fill(&p, &b, 1);
	return b;
}

/* Checks the next n echoed bytes; on a mismatch, where. */
static int
seq_conn_verify(struct seq_conn *c, const unsigned char *buf, size_t n,
		size_t *bad)
{
	const unsigned char *want;
	size_t i;

	if (c->o->size != 0)
		return payload_verify(&c->in, buf, n, bad);
	want = (const unsigned char *)c->o->message + c->received;
	for (i = 0; i < n; i++) {
		if (buf[i] != want[i]) {
			*bad = i;
			return -1;
		}
	}
	return 0;
}

/* Queues more of what is to be sent, up to SEQ_WRITE_HIGH. */
static void
seq_conn_fill(struct seq_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer_iovec v;
	size_t n;

	while (c->sent < c->total &&
	       evbuffer_get_length(out) < SEQ_WRITE_HIGH) {
		n = SEQ_WRITE_CHUNK;
		if (n > c->total - c->sent)
			n = (size_t)(c->total - c->sent);
		if (evbuffer_reserve_space(out, (ev_ssize_t)n, &v, 1) != 1) {
			seq_conn_fail(
				c, "cannot queue %zu bytes: out of memory", n);
			return;
		}
		if (c->o->size != 0)
			payload_fill(&c->out, v.iov_base, n);
		else
			memcpy(v.iov_base, c->o->message + c->sent, n);
		v.iov_len = n;
		if (evbuffer_commit_space(out, &v, 1) == -1) {
			seq_conn_fail(c, "cannot queue %zu bytes", n);
			return;
		}
		c->sent += n;
	}
}

/*
 * Verifies the next len echoed bytes. Returns 0, or -1 if they differ or
 * go past what the connection expects (the connection has failed).
 */
static int
seq_conn_take(struct seq_conn *c, const unsigned char *buf, size_t len)
{
	uint64_t limit =
		c->o->expect != CLIENT_EXPECT_ECHO ? c->o->expect_at : c->total;
	size_t bad;
	int extra = 0;
	char fb[64];

	if (len > 0 && c->first_byte_us == 0)
		c->first_byte_us = seq_now_us();
	if (len > limit - c->received) {
		len = (size_t)(limit - c->received);
		extra = 1;
	}
	if (seq_conn_verify(c, buf, len, &bad) == -1) {
		uint64_t off = c->received + bad;
		seq_conn_fail(c,
			      "echo differs at byte offset %" PRIu64
			      " of %" PRIu64 " (sent 0x%02x, received 0x%02x)",
			      off, c->total, seq_conn_expected(c, off),
			      buf[bad]);
		return -1;
	}
	c->received += len;
	if (!extra)
		return 0;
	if (c->o->expect == CLIENT_EXPECT_ECHO)
		seq_conn_fail(c,
			      "received more than the %" PRIu64 " bytes sent",
			      c->total);
	else
		seq_conn_fail(c,
			      "echoed more than %" PRIu64
			      " bytes; expected a %s there%s",
			      limit,
			      c->o->expect == CLIENT_EXPECT_CLOSE ? "close"
								  : "reset",
			      seq_conn_first_byte(c, fb, sizeof(fb)));
	return -1;
}

static void
seq_read_cb(struct bufferevent *bev, void *arg)
{
	struct seq_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v[SEQ_PEEK_VECS];
	size_t used;
	int i, n;

	while ((n = evbuffer_peek(in, -1, NULL, v, SEQ_PEEK_VECS)) > 0) {
		used = 0;
		for (i = 0; i < n && i < SEQ_PEEK_VECS; i++) {
			if (seq_conn_take(c, v[i].iov_base, v[i].iov_len) == -1)
				return;
			used += v[i].iov_len;
		}
		if (used == 0)
			break;
		evbuffer_drain(in, used);
	}
	/* With --expect-*, the end is the server's: wait for it. */
	if (c->received == c->total && c->o->expect == CLIENT_EXPECT_ECHO)
		seq_conn_succeed(c);
}

/*
 * The connection ended, by a close or a reset: reads what echo the
 * socket still holds (after a reset seen on a write, Linux still hands
 * over what had arrived), so that the count is exact. Returns -1 if a
 * byte was wrong (the connection has failed).
 */
static int
seq_conn_read_rest(struct seq_conn *c)
{
	unsigned char buf[16384];
	int fd = (int)bufferevent_getfd(c->bev);
	ssize_t n;

	if (c->tls != NULL)
		return 0; /* the socket holds records, not echo */
	for (;;) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			if (seq_conn_take(c, buf, (size_t)n) == -1)
				return -1;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == ECONNRESET)
			c->reset = 1;
		return 0;
	}
}

/* The server ended the connection: was that the end expected? */
static void
seq_conn_ended(struct seq_conn *c)
{
	enum client_expect how;
	const char *what;
	char fb[64];

	if (seq_conn_read_rest(c) == -1)
		return;
	how = c->reset ? CLIENT_EXPECT_RESET : CLIENT_EXPECT_CLOSE;
	what = c->reset ? "reset" : "closed";
	seq_conn_first_byte(c, fb, sizeof(fb));
	if (c->o->expect == how && c->received == c->o->expect_at) {
		if (!c->o->quiet)
			printf("Received: %" PRIu64 " of %" PRIu64
			       " bytes, verified, then the server %s the "
			       "connection, as expected%s\n",
			       c->received, c->total, what, fb);
		seq_conn_finish(c);
		return;
	}
	if (c->o->expect == CLIENT_EXPECT_ECHO)
		seq_conn_fail(c,
			      "server %s the connection after echoing %" PRIu64
			      " of %" PRIu64 " bytes%s",
			      what, c->received, c->total, fb);
	else
		seq_conn_fail(c,
			      "server %s the connection after echoing %" PRIu64
			      " of %" PRIu64
			      " bytes; expected a %s after %" PRIu64 "%s",
			      what, c->received, c->total,
			      c->o->expect == CLIENT_EXPECT_CLOSE ? "close"
								  : "reset",
			      c->o->expect_at, fb);
}

static void
seq_write_cb(struct bufferevent *bev, void *arg)
{
	struct seq_conn *c = arg;

	(void)bev;
	seq_conn_fill(c);
}

/* Did TLS fail, in the handshake or after? Then say why, and return 1. */
static int
seq_conn_tls_failed(struct seq_conn *c, short what)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	unsigned long e = bufferevent_get_openssl_error(c->bev);
	char why[512];

	if ((what & BEV_EVENT_CONNECTED) || (c->connected && e == 0))
		return 0;
	if (!c->connected && e == 0 &&
	    (SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE ||
	     SSL_get_verify_result(ssl) == X509_V_OK) &&
	    !(what & BEV_EVENT_EOF))
		return 0; /* no TLS yet: a failed connect */
	while (bufferevent_get_openssl_error(c->bev) != 0)
		;
	/* libevent records a failed system call as OpenSSL's error code
	 * itself (no library): the server's reason may be an alert still
	 * unread in the socket, behind the write that failed. */
	if (ERR_GET_LIB(e) == 0) {
		unsigned char b;

		ERR_clear_error();
		if (SSL_read(ssl, &b, 1) <= 0 && ERR_peek_error() != 0)
			e = ERR_get_error();
		else if (e != 0)
			e = 0;
		ERR_clear_error();
	}
	client_tls_failure(ssl, e, why, sizeof(why));
	if (!c->connected)
		seq_conn_fail(c, "TLS handshake failed: %s", why);
	else
		seq_conn_fail(c,
			      "TLS failed after echoing %" PRIu64 " of %" PRIu64
			      " bytes: %s",
			      c->received, c->total, why);
	return 1;
}

static void
seq_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct seq_conn *c = arg;
	int e = EVUTIL_SOCKET_ERROR();

	if (c->in_connect) {
		/* A synchronous failure: bufferevent_socket_connect() is
		 * about to return -1; seq_conn_connect() handles it. */
		c->connect_errno = e;
		return;
	}
	if (c->tls != NULL && !c->proxy_tcp && seq_conn_tls_failed(c, what))
		return;
	if (!c->connected) {
		if ((what & BEV_EVENT_CONNECTED) && c->proxy_tcp) {
			seq_conn_start_tls(c);
			return;
		}
		if ((what & BEV_EVENT_CONNECTED) && c->o->proxy != 0 &&
		    c->tls == NULL && seq_conn_send_proxy(c) == -1)
			return;
		if (what & BEV_EVENT_CONNECTED) {
			c->connected = 1;
			c->started_us = seq_now_us();
			bufferevent_setwatermark(bev, EV_WRITE, SEQ_WRITE_LOW,
						 0);
			bufferevent_enable(bev, EV_READ | EV_WRITE);
			seq_conn_fill(c);
			return;
		}
		/* A failed connect, errno from SO_ERROR on Linux. Where
		 * connect() is refused at once (BSD), libevent fakes this
		 * event and errno may be stale. Try the next address. */
		c->attempt_errno[c->addr] = e != 0 ? e : ECONNREFUSED;
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->addr++;
		seq_conn_connect(c);
		return;
	}
	/* A write after a reset fails with ECONNRESET, or EPIPE once the
	 * reset has been reported. */
	if ((what & BEV_EVENT_ERROR) &&
	    (e == ECONNRESET || (e == EPIPE && (what & BEV_EVENT_WRITING))))
		c->reset = 1;
	if ((what & BEV_EVENT_EOF) || c->reset)
		seq_conn_ended(c);
	else
		seq_conn_fail(c,
			      "%s failed: %s (received %" PRIu64 " of %" PRIu64
			      " bytes)",
			      (what & BEV_EVENT_READING) ? "read" : "write",
			      evutil_socket_error_to_string(e), c->received,
			      c->total);
}

static void
seq_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct seq_conn *c = arg;
	char d[32], fb[64];

	(void)fd;
	(void)what;
	parse_format_duration(c->o->timeout_ms, d, sizeof(d));
	if (!c->connected)
		seq_conn_fail(c, "timed out after %s while connecting", d);
	else if (c->o->expect != CLIENT_EXPECT_ECHO &&
		 c->received == c->o->expect_at)
		seq_conn_fail(c,
			      "timed out after %s: %" PRIu64
			      " bytes came back, but the connection stayed "
			      "open; expected a %s",
			      d, c->received,
			      c->o->expect == CLIENT_EXPECT_CLOSE ? "close"
								  : "reset");
	else
		seq_conn_fail(c,
			      "timed out after %s (received %" PRIu64
			      " of %" PRIu64 " bytes)%s",
			      d, c->received, c->total,
			      seq_conn_first_byte(c, fb, sizeof(fb)));
}

/* --proxy: the header, first on the socket. Returns -1 if c failed. */
static int
seq_conn_send_proxy(struct seq_conn *c)
{
	char err[256];

	if (client_proxy_send(c->o, bufferevent_getfd(c->bev), err,
			      sizeof(err)) == 0)
		return 0;
	seq_conn_fail(c, "%s", err);
	return -1;
}

/* --tls --proxy: TCP is up and the header goes first; then the socket
 * passes to an OpenSSL bufferevent, whose handshake follows. */
static void
seq_conn_start_tls(struct seq_conn *c)
{
	evutil_socket_t fd;
	SSL *ssl;

	c->proxy_tcp = 0;
	if (seq_conn_send_proxy(c) == -1)
		return;
	/* The same socket under a new descriptor, as the TCP bufferevent
	 * closes its own. */
	fd = fcntl(bufferevent_getfd(c->bev), F_DUPFD_CLOEXEC, 0);
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (fd == -1) {
		seq_conn_fail(c, "cannot start TLS: %s", strerror(errno));
		return;
	}
	ssl = client_tls_ssl(c->tls, c->o);
	if (ssl != NULL)
		c->bev = bufferevent_openssl_socket_new(
			c->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
			BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL) {
		if (ssl != NULL)
			SSL_free(ssl);
		evutil_closesocket(fd);
		seq_conn_fail(c, "cannot start TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, seq_read_cb, seq_write_cb, seq_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* --source: the socket for address a, bound to it before connecting.
 * Returns -1 (c->bev freed, the attempt's error kept) if it cannot. */
static int
seq_conn_bind(struct seq_conn *c, const struct addr *a)
{
	const struct addr *src = &c->o->source;
	int fd = socket(a->ss.ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd == -1 ||
	    bind(fd, (const struct sockaddr *)&src->ss, src->len) == -1 ||
	    bufferevent_setfd(c->bev, fd) == -1) {
		c->attempt_errno[c->addr] = errno;
		if (fd != -1)
			close(fd);
		bufferevent_free(c->bev);
		c->bev = NULL;
		return -1;
	}
	return 0;
}

/* Tries c->addr and, if it fails at once, the addresses after it. */
static void
seq_conn_connect(struct seq_conn *c)
{
	const struct addr *a;
	int rc;

	for (; c->addr < c->naddrs; c->addr++) {
		a = &c->addrs[c->addr];
		/* --tls --proxy: the header before the handshake, so TCP
		 * first, as without --tls. */
		c->proxy_tcp = c->tls != NULL && c->o->proxy != 0;
		if (c->tls != NULL && !c->proxy_tcp) {
			SSL *ssl = client_tls_ssl(c->tls, c->o);

			/* Deferred callbacks: an OpenSSL bufferevent
			 * writes at once when seq_conn_fill() queues, and a
			 * failed write would free the connection inside
			 * it. */
			c->bev =
				ssl == NULL
					? NULL
					: bufferevent_openssl_socket_new(
						  c->base, -1, ssl,
						  BUFFEREVENT_SSL_CONNECTING,
						  BEV_OPT_CLOSE_ON_FREE |
							  BEV_OPT_DEFER_CALLBACKS);
			if (c->bev == NULL && ssl != NULL)
				SSL_free(ssl);
			if (c->bev != NULL)
				bufferevent_openssl_set_allow_dirty_shutdown(
					c->bev, 1);
		} else {
			c->bev = bufferevent_socket_new(c->base, -1,
							BEV_OPT_CLOSE_ON_FREE);
		}
		if (c->bev == NULL) {
			seq_conn_fail(c, "cannot create a bufferevent");
			return;
		}
		if (c->o->source.ss.ss_family != 0 && seq_conn_bind(c, a) == -1)
			continue;
		bufferevent_setcb(c->bev, seq_read_cb, seq_write_cb,
				  seq_event_cb, c);
		c->in_connect = 1;
		c->connect_errno = 0;
		errno = 0;
		rc = bufferevent_socket_connect(
			c->bev, (const struct sockaddr *)&a->ss, (int)a->len);
		c->in_connect = 0;
		if (rc == 0)
			return; /* seq_event_cb() hears how it went */
		c->attempt_errno[c->addr] =
			c->connect_errno != 0 ? c->connect_errno : errno;
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	/* Every address failed: report them all. */
	seq_conn_report_attempts(c);
	c->failed = 1;
	seq_conn_finish(c);
}

/* Runs connection number index to its end. Returns 0 or -1. */
static int
seq_conn_run(struct seq_conn *c)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(c->o->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(c->o->timeout_ms % 1000 * 1000);
	evtimer_add(c->timer, &tv);
	c->total = c->o->size != 0 ? c->o->size : c->o->message_len;
	/* A seed per connection, so that echoes crossing connections
	 * cannot pass for each other. */
	payload_init(&c->out, c->index);
	payload_init(&c->in, c->index);
	seq_conn_connect(c);
	if (!c->done)
		event_base_dispatch(c->base);
	return c->failed ? -1 : 0;
}

int
seq_run(struct event_base *base, const struct client_options *o,
	const struct addr *addrs, int naddrs)
{
	struct seq_conn c;
	struct event *timer;
	SSL_CTX *tls = NULL;
	char err[512];
	uint64_t i;
	int rc = 0;

	if (o->tls && (tls = client_tls_ctx(o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s: %s\n", CLIENT_NAME, err);
		return -1;
	}
	timer = evtimer_new(base, seq_timeout_cb, &c);
	if (timer == NULL) {
		fprintf(stderr, "%s: cannot create a timer\n", CLIENT_NAME);
		SSL_CTX_free(tls);
		return -1;
	}
	for (i = 1; i <= o->count && rc == 0; i++) {
		memset(&c, 0, sizeof(c));
		c.o = o;
		c.addrs = addrs;
		c.naddrs = naddrs < CLIENT_ADDR_MAX ? naddrs : CLIENT_ADDR_MAX;
		c.base = base;
		c.tls = tls;
		c.timer = timer;
		c.index = i;
		rc = seq_conn_run(&c);
	}
	event_free(timer);
	SSL_CTX_free(tls);
	return rc;
}
