/*
 * udp.c: UDP echo (RFC 862): every datagram back, unchanged, to its
 * sender. A listen line with the udp parameter is a udp_endpoint per
 * address: one socket per worker, all bound to it with SO_REUSEPORT, so
 * the kernel spreads datagrams over the workers and no hand-off between
 * threads is needed. Each worker receives in batches (recvmmsg) into its
 * own buffers and sends the replies in batches (sendmmsg) from the same
 * bytes: no copy. A reply the socket's send buffer has no room for is
 * dropped and counted; UDP promises no more.
 *
 * A reply goes out from the address the datagram came to (IP_PKTINFO,
 * IPV6_PKTINFO), so a wildcard listener answers a client that wrote to
 * 127.0.0.2 from 127.0.0.2, as a connected client socket requires.
 *
 * An echo service is a reflector, so it is guarded: no reply to source
 * port 0, nor to the ports of services that answer any datagram (echo 7,
 * daytime 13, qotd 17, chargen 19, time 37: two of those would talk
 * forever), and at most udp_rate_limit datagrams per second per source
 * address. The rate table is one fixed array shared by the workers
 * (UDP_RATE_SLOTS entries, locked once per batch): a source is counted
 * in its one-second window; when the few slots a source may use are all
 * busy this second, the least counted is taken over. Memory stays
 * bounded whatever sources an attacker forges.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "echod.h"

#define UDP_BATCH 16		/* datagrams per recvmmsg/sendmmsg */
#define UDP_BUF_SIZE 65536	/* one datagram, whole (65,507 at most) */
#define UDP_BATCHES_PER_EVENT 4 /* then let the loop's other events run */
#define UDP_RATE_SLOTS 4096	/* sources tracked at once */
#define UDP_RATE_PROBES 8	/* slots a source may use */
#define UDP_CONTROL_SIZE 64	/* room for one pktinfo control message */

/* Source ports a reply must never go to. */
static const uint16_t udp_reflector_ports[] = {0, 7, 13, 17, 19, 37};

struct udp_rate_slot {
	unsigned char key[17]; /* iptable_key(): family and address */
	uint32_t count;	       /* datagrams in second `second` */
	uint64_t second;
};

struct udp_rate {
	pthread_mutex_t lock;
	struct udp_rate_slot slots[UDP_RATE_SLOTS];
};

/* A worker's receive batch: its buffers, headers and control space. */
struct udp_batch {
	struct mmsghdr in[UDP_BATCH], out[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	struct sockaddr_storage peer[UDP_BATCH];
	union {
		size_t align; /* a cmsghdr's */
		unsigned char buf[UDP_CONTROL_SIZE];
	} cin[UDP_BATCH], cout[UDP_BATCH];
	unsigned char data[UDP_BATCH][UDP_BUF_SIZE];
};

/* One socket of an endpoint, served by one worker. */
struct udp_socket {
	struct udp_endpoint *e;
	struct worker *w;
	int fd;
	struct event *ev;
};

struct udp_endpoint {
	struct server *srv;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int v6only;
	char name[ADDR_STRLEN];
	unsigned slot; /* its listen line's counters */
	unsigned n;    /* sockets; sock[0] is opened at once */
	struct udp_socket *sock;
};

static struct udp_rate *udp_rate_table; /* made with the first endpoint */
static pthread_once_t udp_rate_once = PTHREAD_ONCE_INIT;

static void
udp_rate_init(void)
{
	struct udp_rate *r = calloc(1, sizeof(*r));

	if (r != NULL)
		pthread_mutex_init(&r->lock, NULL);
	udp_rate_table = r;
}

/* Is a reply to this source port refused? */
int
udp_port_refused(uint16_t port)
{
	size_t i;

	for (i = 0;
	     i < sizeof(udp_reflector_ports) / sizeof(udp_reflector_ports[0]);
	     i++)
		if (port == udp_reflector_ports[i])
			return 1;
	return 0;
}

static uint16_t
udp_port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)ss)
				     ->sin6_port);
	return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
}

/*
 * Counts one datagram of the source with key in second now; may it be
 * answered, with at most limit per second? Pure but for the table it is
 * given (unit-tested with one of its own).
 */
int
udp_rate_allow(struct udp_rate_slot *slots, size_t nslots,
	       const unsigned char key[17], uint64_t now, uint32_t limit)
{
	size_t first = iptable_key_hash(key) % nslots, i, victim = first;
	struct udp_rate_slot *s;

	for (i = 0; i < UDP_RATE_PROBES && i < nslots; i++) {
		s = &slots[(first + i) % nslots];
		if (s->second == now && memcmp(s->key, key, 17) == 0) {
			if (s->count >= limit)
				return 0;
			s->count++;
			return 1;
		}
		if (s->second != now) { /* free, or last second's: reuse */
			victim = (first + i) % nslots;
			break;
		}
		if (s->count < slots[victim].count)
			victim = (first + i) % nslots;
	}
	s = &slots[victim];
	memcpy(s->key, key, 17);
	s->second = now;
	s->count = 1;
	return limit > 0;
}

size_t
udp_rate_slot_size(void)
{
	return sizeof(struct udp_rate_slot);
}

static uint64_t
udp_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec + 1; /* never 0: 0 marks a free slot */
}

/* The reply's control message: send from the address it came to. */
static socklen_t
udp_reply_control(const struct msghdr *in, unsigned char *out)
{
	struct cmsghdr *c;

	/* The padding after the data goes to the kernel too. */
	memset(out, 0, UDP_CONTROL_SIZE);
	for (c = CMSG_FIRSTHDR(in); c != NULL;
	     c = CMSG_NXTHDR((struct msghdr *)(uintptr_t)in, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			struct cmsghdr *o = (struct cmsghdr *)(void *)out;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			pi.ipi_spec_dst = pi.ipi_addr;
			pi.ipi_ifindex = 0;
			o->cmsg_level = IPPROTO_IP;
			o->cmsg_type = IP_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(o), &pi, sizeof(pi));
			return (socklen_t)CMSG_SPACE(sizeof(pi));
		}
		if (c->cmsg_level == IPPROTO_IPV6 &&
		    c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			struct cmsghdr *o = (struct cmsghdr *)(void *)out;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			/* Keep the interface: a link-local address needs it. */
			o->cmsg_level = IPPROTO_IPV6;
			o->cmsg_type = IPV6_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(o), &pi, sizeof(pi));
			return (socklen_t)CMSG_SPACE(sizeof(pi));
		}
	}
	return 0;
}

static struct udp_batch *
udp_batch_of(struct worker *w)
{
	struct udp_batch *b = w->udp;
	int i;

	if (b != NULL)
		return b;
	if ((b = malloc(sizeof(*b))) == NULL)
		return NULL;
	for (i = 0; i < UDP_BATCH; i++) {
		b->iov[i].iov_base = b->data[i];
		b->iov[i].iov_len = UDP_BUF_SIZE;
	}
	w->udp = b;
	return b;
}

/* Receives one batch and answers what may be answered. Returns how many
 * datagrams came in, or -1 when the socket is empty. */
static int
udp_serve_batch(struct udp_socket *us, struct udp_batch *b)
{
	struct worker *w = us->w;
	struct server *srv = w->srv;
	uint32_t limit = (uint32_t)atomic_load_explicit(&srv->udp_rate_limit,
							memory_order_relaxed);
	uint64_t now = udp_now_s(), in_bytes = 0, out_bytes = 0;
	unsigned char key[17];
	int n, i, m = 0, sent = 0, delivered = 0;
	unsigned reflect = 0, limited = 0, full = 0;
	_Atomic uint64_t *lc;

	for (i = 0; i < UDP_BATCH; i++) {
		struct msghdr *h = &b->in[i].msg_hdr;

		memset(h, 0, sizeof(*h));
		h->msg_name = &b->peer[i];
		h->msg_namelen = sizeof(b->peer[i]);
		b->iov[i].iov_len = UDP_BUF_SIZE;
		h->msg_iov = &b->iov[i];
		h->msg_iovlen = 1;
		h->msg_control = b->cin[i].buf;
		h->msg_controllen = sizeof(b->cin[i].buf);
	}
	do
		n = recvmmsg(us->fd, b->in, UDP_BATCH, MSG_DONTWAIT, NULL);
	while (n == -1 && errno == EINTR);
	if (n <= 0)
		return -1;
	if (limit > 0 && udp_rate_table != NULL)
		pthread_mutex_lock(&udp_rate_table->lock);
	for (i = 0; i < n; i++) {
		struct msghdr *h = &b->in[i].msg_hdr, *o = &b->out[m].msg_hdr;
		size_t len = b->in[i].msg_len;

		in_bytes += len;
		if (udp_port_refused(udp_port_of(&b->peer[i]))) {
			reflect++;
			continue;
		}
		if (limit > 0 && udp_rate_table != NULL &&
		    iptable_key((const struct sockaddr *)&b->peer[i], key) ==
			    0 &&
		    !udp_rate_allow(udp_rate_table->slots, UDP_RATE_SLOTS, key,
				    now, limit)) {
			limited++;
			continue;
		}
		memset(o, 0, sizeof(*o));
		o->msg_name = &b->peer[i];
		o->msg_namelen = h->msg_namelen;
		b->iov[i].iov_len = len;
		o->msg_iov = &b->iov[i];
		o->msg_iovlen = 1;
		o->msg_controllen = udp_reply_control(h, b->cout[m].buf);
		o->msg_control = o->msg_controllen ? b->cout[m].buf : NULL;
		m++;
	}
	if (limit > 0 && udp_rate_table != NULL)
		pthread_mutex_unlock(&udp_rate_table->lock);
	while (sent < m) {
		int k = sendmmsg(us->fd, b->out + sent, (unsigned)(m - sent),
				 MSG_DONTWAIT);

		if (k > 0) {
			for (i = sent; i < sent + k; i++)
				out_bytes += b->out[i].msg_len;
			sent += k;
			delivered += k;
			continue;
		}
		if (k == -1 && errno == EINTR)
			continue;
		if (k == -1 && (errno == EAGAIN || errno == ENOBUFS)) {
			full += (unsigned)(m - sent); /* no room: dropped */
			break;
		}
		/* This one reply failed (say, its address is unreachable):
		 * skip it, and send the rest. */
		full++;
		sent++;
	}
	lc = w->lc[us->e->slot];
	counter_add(&lc[LC_BYTES_IN], in_bytes);
	counter_add(&lc[LC_BYTES_OUT], out_bytes);
	counter_add(&lc[LC_DGRAMS_IN], (uint64_t)n);
	counter_add(&lc[LC_DGRAMS_OUT], (uint64_t)delivered);
	counter_add(&lc[LC_DGRAMS_REFLECTOR], reflect);
	counter_add(&lc[LC_DGRAMS_LIMITED], limited);
	counter_add(&lc[LC_DGRAMS_FULL], full);
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char name[ADDR_STRLEN];

		for (i = 0; i < n; i++)
			log_debug("%s: %u byte datagram from %s", us->e->name,
				  b->in[i].msg_len,
				  addr_format(
					  (const struct sockaddr *)&b->peer[i],
					  name, sizeof(name)));
	}
	return n;
}

static void
udp_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct udp_socket *us = arg;
	struct udp_batch *b = udp_batch_of(us->w);
	int i;

	(void)fd;
	(void)what;
	if (b == NULL) {
		log_warnx("%s: out of memory for datagrams", us->e->name);
		return;
	}
	for (i = 0; i < UDP_BATCHES_PER_EVENT; i++)
		if (udp_serve_batch(us, b) < UDP_BATCH)
			break;
}

/* A datagram socket bound to e's address, sharing it (SO_REUSEPORT). */
static int
udp_socket_open(const struct udp_endpoint *e, char *err, size_t errlen)
{
	int fd, on = 1;
	int family = e->addr.ss_family;

	/* Handed over by a restart or an upgrade: bound, options set. */
	fd = inherit_take(SOCK_DGRAM, (const struct sockaddr *)&e->addr,
			  e->addrlen, e->v6only, 1);
	if (fd != -1)
		return fd;
	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1)
		goto fail;
	if (family == AF_INET6) {
		int v6only = e->v6only;

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
			       sizeof(v6only)) == -1 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on,
			       sizeof(on)) == -1)
			goto fail;
		/* IPv4 on a dual-stack socket reports IP_PKTINFO. */
		if (!v6only)
			(void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on,
					 sizeof(on));
	} else if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on)) ==
		   -1) {
		goto fail;
	}
	/* A socket handed over for the port that no line took (its
	 * settings differ) holds it: it goes. */
	if (inherit_bind(fd, SOCK_DGRAM, (const struct sockaddr *)&e->addr,
			 e->addrlen) == -1)
		goto fail;
	inherit_store(fd);
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s (udp): %s", e->name,
		 strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

/*
 * Binds a datagram socket to a (v6only for an IPv6 address that is not
 * the dual-stack wildcard), at once, so that a busy address fails the
 * start or the reload. The sockets of the other workers, and the events,
 * come with udp_endpoint_attach().
 */
struct udp_endpoint *
udp_endpoint_open(struct server *srv, const struct sockaddr *sa,
		  socklen_t salen, int v6only, unsigned slot, char *err,
		  size_t errlen)
{
	struct udp_endpoint *e;

	pthread_once(&udp_rate_once, udp_rate_init);
	if (udp_rate_table == NULL || (e = calloc(1, sizeof(*e))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->srv = srv;
	e->slot = slot;
	memcpy(&e->addr, sa, salen);
	e->addrlen = salen;
	e->v6only = v6only;
	addr_format(sa, e->name, sizeof(e->name));
	if ((e->sock = calloc(1, sizeof(*e->sock))) == NULL) {
		free(e);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->sock[0].fd = udp_socket_open(e, err, errlen);
	if (e->sock[0].fd == -1) {
		free(e->sock);
		free(e);
		return NULL;
	}
	e->n = 1;
	/* A port of 0 asked for any: the others must join the one got. */
	getsockname(e->sock[0].fd, (struct sockaddr *)&e->addr, &e->addrlen);
	addr_format((const struct sockaddr *)&e->addr, e->name,
		    sizeof(e->name));
	return e;
}

const char *
udp_endpoint_name(const struct udp_endpoint *e)
{
	return e->name;
}

/* e's sockets, at most max of them. */
int
udp_endpoint_fds(const struct udp_endpoint *e, int *fds, int max)
{
	int n = 0;
	unsigned i;

	for (i = 0; i < e->n && n < max; i++)
		if (e->sock[i].fd != -1)
			fds[n++] = e->sock[i].fd;
	return n;
}

/* Gives each worker its socket on e, and starts serving. */
int
udp_endpoint_attach(struct udp_endpoint *e, char *err, size_t errlen)
{
	unsigned n = worker_count(e->srv), i;
	struct udp_socket *s;

	if (e->n > 1 || (e->n == 1 && e->sock[0].ev != NULL))
		return 0; /* attached already */
	if ((s = realloc(e->sock, n * sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e->sock = s;
	memset(s + 1, 0, (n - 1) * sizeof(*s));
	for (i = 1; i < n; i++, e->n++)
		if ((s[i].fd = udp_socket_open(e, err, errlen)) == -1)
			return -1;
	for (i = 0; i < n; i++) {
		s[i].e = e;
		s[i].w = worker_get(e->srv, i);
		s[i].ev = event_new(s[i].w->base, s[i].fd, EV_READ | EV_PERSIST,
				    udp_read_cb, &s[i]);
		if (s[i].ev == NULL || event_add(s[i].ev, NULL) == -1) {
			snprintf(err, errlen, "%s: cannot watch a udp socket",
				 e->name);
			return -1;
		}
	}
	return 0;
}

/* Stops serving e and closes its sockets. From the main thread: a
 * worker's callback that is running finishes first (event_free()). */
void
udp_endpoint_close(struct udp_endpoint *e)
{
	unsigned i;

	for (i = 0; i < e->n; i++) {
		if (e->sock[i].ev != NULL)
			event_free(e->sock[i].ev);
		if (e->sock[i].fd != -1)
			close(e->sock[i].fd);
	}
	free(e->sock);
	free(e);
}

void
udp_worker_free(struct worker *w)
{
	free(w->udp);
	w->udp = NULL;
}
