/*
 * conn_int.h: what conn.c and fault.c share and no other file sees: the
 * connection struct and the helpers of the echo path, inline where the
 * plain path calls them. echod.h has the public side of a connection.
 */
#ifndef ECHOD_CONN_INT_H
#define ECHOD_CONN_INT_H

#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "echod.h"

struct fault;
struct preamble;

struct conn {
	TAILQ_ENTRY(conn) entry;
	struct worker *w;
	struct bufferevent *bev;
	struct event *rev; /* the read side, ours (not the bufferevent's),
			    * when not parked (park.c); else NULL */
	int fd;
	unsigned reading : 1;	   /* rev is added, or it is parked */
	unsigned parked : 1;	   /* in its worker's park, rev NULL */
	unsigned eof : 1;	   /* the peer has closed its sending side */
	unsigned tls : 1;	   /* bev is tls.c's, and owns both sides */
	unsigned tls_open : 1;	   /* ... and its handshake is done */
	unsigned tls_large : 1;	   /* ... and it reads in large chains */
	unsigned slot : 8;	   /* its listener's counters (lc[slot]) */
	unsigned peer_counted : 1; /* peer holds a per-IP slot */
	unsigned peer_shard : 10;  /* ... in admission.c's shard */
	unsigned in_preamble : 1;  /* layer is pre, not fault */
	unsigned has_read : 1;	   /* has read bytes (the park's busy test) */
	uint64_t started;	   /* conn_clock_ms() at accept */
	uint64_t bytes_in;	   /* read from the peer */
	uint64_t bytes_out;	   /* written to it */
	uint64_t uncounted;	   /* appended to the output, not yet counted
				    * as written (conn_count_written()) */
	/* A PROXY header is read (the preamble) before the behaviour starts:
	 * never both at once (conn_pre(), conn_fault()). */
	union {
		struct fault *fault;  /* CONN_BEHAVIOUR_FAULT's state */
		struct preamble *pre; /* the PROXY header being read */
	} layer;
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} peer;
	/* Last, where sockaddr_in6's 28 bytes leave room: 120 bytes in all,
	 * a 128-byte malloc chunk (bench/README.md, "struct conn in 120
	 * bytes"). When a byte last moved, in conn_tick()s. */
	uint32_t last_active;
};

/* What holding 10,000 idle connections costs is mostly this: keep it in a
 * 128-byte malloc chunk (glibc's chunk is the request plus 8, rounded up
 * to 16). */
_Static_assert(sizeof(void *) != 8 || sizeof(struct conn) <= 120,
	       "struct conn outgrew its 128-byte malloc chunk");
_Static_assert(ECHOD_MAX_THREADS <= 1024, "peer_shard holds a worker's id");

/*
 * Activity times in 32 bits: conn_clock_ms() in units of 16 ms, which
 * wrap after 795 days. Silence is measured modulo that, far beyond any
 * timeout (ECHOD_MAX_DURATION_MS), and never over-read: up to 16 ms
 * short, so that nothing times out early.
 */
#define CONN_TICK_SHIFT 4

static inline uint32_t
conn_tick(uint64_t ms)
{
	return (uint32_t)(ms >> CONN_TICK_SHIFT);
}

static inline void
conn_touch(struct conn *c)
{
	c->last_active = conn_tick(conn_clock_ms());
}

static inline uint64_t
conn_silent_ms(const struct conn *c, uint64_t now_ms)
{
	uint32_t d = conn_tick(now_ms) - c->last_active;

	return d > 0 ? (uint64_t)(d - 1) << CONN_TICK_SHIFT : 0;
}

static inline struct preamble *
conn_pre(const struct conn *c)
{
	return c->in_preamble ? c->layer.pre : NULL;
}

static inline struct fault *
conn_fault(const struct conn *c)
{
	return c->in_preamble ? NULL : c->layer.fault;
}

/* Echo queued for the peer: none without a bufferevent (see conn.c). */
static inline size_t
conn_queued(const struct conn *c)
{
	return c->bev != NULL
		       ? evbuffer_get_length(bufferevent_get_output(c->bev))
		       : 0;
}

static inline uint64_t
conn_max_buffer(const struct conn *c)
{
	return atomic_load_explicit(&c->w->srv->max_buffer,
				    memory_order_relaxed);
}

/* What it read: it is live, and counted. */
static inline void
conn_received(struct conn *c, size_t n)
{
	conn_touch(c);
	c->bytes_in += n;
	counter_add(&c->w->lc[c->slot][LC_BYTES_IN], n);
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char name[ADDR_STRLEN];
		log_debug("received %zu bytes from %s", n,
			  addr_format(&c->peer.sa, name, sizeof(name)));
	}
}

/* conn.c */
void conn_fail(struct conn *c, const char *what, int err);
void conn_pause(struct conn *c);
int conn_resume(struct conn *c);
int conn_rev_assign(struct conn *c, short events, event_callback_fn cb);
void conn_parked_ready(struct conn *c, uint64_t now_ms);
int conn_park_if_quiet(struct conn *c, uint64_t now_ms);
void conn_count_written(struct conn *c);
ssize_t conn_read_into(struct conn *c, struct evbuffer *buf, size_t want);
void conn_hold_back(struct conn *c, uint64_t max);
void conn_event_cb(struct bufferevent *bev, short what, void *arg);
int conn_unsent(const struct conn *c);
const char *conn_peer_name(const struct conn *c, char *buf, size_t len);

int conn_start(struct conn *c, const struct conn_profile *p);

/* park.c: where quiet plain connections wait, with no event of their
 * own. */
int park_add(struct conn *c);
void park_remove(struct conn *c);
int park_close(struct conn *c);
void park_watch(struct worker *w);

/* preamble.c: the PROXY header before a connection's bytes. */
int preamble_start(struct conn *c, const struct conn_profile *p);
void preamble_free(struct conn *c);

/* tls.c: the TLS transport. */
int tls_conn_start(struct conn *c);
void tls_conn_free(struct conn *c);

/* fault.c: a connection with injected faults. */
int fault_attach(struct conn *c, const struct fault_spec *spec);
void fault_free(struct fault *f);
size_t fault_pending(const struct fault *f);
int fault_stalled(const struct fault *f);

#endif
