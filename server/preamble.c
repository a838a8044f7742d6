/*
 * preamble.c: the PROXY header (proxy_protocol listen parameter) that a
 * load balancer puts before a connection's bytes. conn_new() hands such
 * a connection here before any transport or echo: its socket is read,
 * byte-exact, up to the end of the header and never past it (the first
 * byte after it may be a TLS ClientHello, the TLS bufferevent's to read),
 * within proxy_protocol_timeout. Then the client the header names
 * replaces the socket's peer everywhere (logs, max_connections_per_ip,
 * the connection log), the header is dropped, and conn_start() starts
 * the transport and the echo. A bad header, or none in time, closes the
 * connection at once (closed reason "proxy"), with the reason at debug.
 * Cost: one allocation per connection while its header is read, and a
 * peek and a read per wake-up; none once it is through.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "conn_int.h"
#include "proxy.h"

/* Reads of 4 KiB before a refused connection is closed: see
 * preamble_drain(). */
#define PREAMBLE_DRAIN_READS 16

struct preamble {
	struct event ev;	     /* readable */
	struct timer timer;	     /* proxy_protocol_timeout from accept */
	struct conn_profile profile; /* what conn_start() gets */
	size_t have;		     /* bytes of the header read */
	unsigned char buf[PROXY_MAX];
};

/* The last "max_connections_per_ip reached" warning, for its rate. */
static _Atomic time_t preamble_refuse_warned;

/*
 * Whatever the peer has sent and is waiting is read and dropped (at most
 * PREAMBLE_DRAIN_READS reads), and our side shut, so that the close is a
 * FIN, not a reset that could destroy what the peer has yet to read.
 */
static void
preamble_drain(int fd)
{
	unsigned char sink[4096];
	int i;

	shutdown(fd, SHUT_WR);
	for (i = 0; i < PREAMBLE_DRAIN_READS &&
		    recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0;
	     i++)
		;
}

static void
preamble_fail(struct conn *c, enum conn_end why, const char *what)
{
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char name[ADDR_STRLEN];

		log_debug("%s: %s", conn_peer_name(c, name, sizeof(name)),
			  what);
	}
	preamble_drain(c->fd);
	conn_free(c, why);
}

/* The header is through: the client it names becomes the peer. */
static void
preamble_done(struct conn *c, const struct proxy_header *h)
{
	struct preamble *pre = conn_pre(c);
	struct conn_profile profile = pre->profile;
	char was[ADDR_STRLEN], now[ADDR_STRLEN];

	conn_peer_name(c, was, sizeof(was));
	if (!h->local) {
		memset(&c->peer, 0, sizeof(c->peer));
		memcpy(&c->peer, &h->src,
		       h->src.ss_family == AF_INET ? sizeof(c->peer.sin)
						   : sizeof(c->peer.sin6));
	}
	if (admission_count_peer(c->w->srv->adm, c->w->id, &c->peer.sa) == -1) {
		time_t t = time(NULL);

		counter_add(&c->w->wc[WC_REFUSED_PER_IP], 1);
		counter_add(&c->w->lc[c->slot][LC_REFUSED], 1);
		if (atomic_exchange(&preamble_refuse_warned, t) != t)
			log_warnx("max_connections_per_ip reached for %s "
				  "(through %s), refusing its connections",
				  conn_peer_name(c, now, sizeof(now)), was);
		preamble_drain(c->fd);
		conn_free(c, CONN_END_REFUSED);
		return;
	}
	c->peer_counted = 1;
	c->peer_shard = c->w->id & 0x3ff;
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_debug("%s: PROXY v%d header: client %s", was, h->version,
			  h->local ? "the connection's own"
				   : conn_peer_name(c, now, sizeof(now)));
	preamble_free(c);
	conn_touch(c);
	if (conn_start(c, &profile) == -1)
		conn_free(c, CONN_END_ERROR);
}

static void
preamble_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct preamble *pre = conn_pre(c);
	struct proxy_header h;
	char why[128];
	ssize_t n;
	size_t take;
	int rc;

	(void)what;
	/* Look first, then take only what belongs to the header. */
	do
		n = recv(fd, pre->buf + pre->have, sizeof(pre->buf) - pre->have,
			 MSG_PEEK);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		if (errno != EAGAIN)
			conn_fail(c, "read", errno);
		return;
	}
	if (n == 0) {
		preamble_fail(c, CONN_END_PROXY,
			      "closed before its PROXY header was whole");
		return;
	}
	rc = proxy_parse(pre->buf, pre->have + (size_t)n, &h, why, sizeof(why));
	if (rc == PROXY_BAD) {
		preamble_fail(c, CONN_END_PROXY, why);
		return;
	}
	/* Short of a whole header, everything seen is header. */
	take = rc == PROXY_DONE ? h.len - pre->have : (size_t)n;
	do
		n = recv(fd, pre->buf + pre->have, take, 0);
	while (n == -1 && errno == EINTR);
	if (n <= 0) {
		conn_fail(c, "read", n == 0 ? ECONNRESET : errno);
		return;
	}
	pre->have += (size_t)n;
	if (rc == PROXY_DONE && pre->have == h.len)
		preamble_done(c, &h);
}

/* A deadline from accept, not a silence: a peer sending a byte now and
 * then gets no more time. */
static void
preamble_timeout_cb(void *arg)
{
	preamble_fail(arg, CONN_END_PROXY,
		      "no whole PROXY header within proxy_protocol_timeout");
}

int
preamble_start(struct conn *c, const struct conn_profile *p)
{
	uint64_t ms = atomic_load_explicit(
		&c->w->srv->proxy_protocol_timeout_ms, memory_order_relaxed);
	struct timeval tv = {(time_t)(ms / 1000),
			     (suseconds_t)(ms % 1000 * 1000)};
	struct preamble *pre = malloc(sizeof(*pre));

	if (pre == NULL) {
		log_warnx("out of memory for a PROXY header");
		return -1;
	}
	pre->profile = *p;
	pre->have = 0;
	event_assign(&pre->ev, c->w->base, c->fd, EV_READ | EV_PERSIST,
		     preamble_read_cb, c);
	timer_init(&pre->timer, c->w->base, c->w->holds, preamble_timeout_cb,
		   c);
	if (event_add(&pre->ev, NULL) == -1 ||
	    timer_add(&pre->timer, &tv) == -1) {
		event_del(&pre->ev);
		free(pre);
		return -1;
	}
	c->layer.pre = pre;
	c->in_preamble = 1;
	return 0;
}

void
preamble_free(struct conn *c)
{
	event_del(&c->layer.pre->ev);
	timer_del(&c->layer.pre->timer);
	free(c->layer.pre);
	c->layer.pre = NULL;
	c->in_preamble = 0;
}
