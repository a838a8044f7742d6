/*
 * load.c: echo-client's load mode (--load): the threads, each with its
 * own event base and its share of the connections, the phases of a run
 * (connect, warm-up, window, drain) and every connection's traffic in the
 * four modes, verified byte for byte. Printing is in report.c.
 *
 * Design. The client must outrun the server it measures, so the message
 * path is lean: raw non-blocking sockets, one persistent read event per
 * connection and a write event armed only while a write is short, no
 * bufferevents (their 4096-byte reads and per-message EPOLLOUT toggling,
 * see STYLE.md, would make the client the bottleneck) and no allocation
 * per message. Every connection sends the payload stream of its own seed
 * (connrate: of each cycle's own seed) at advancing positions, so a stale
 * or cross-wired echo cannot pass: bytes are generated into the thread's
 * scratch buffer just before send() and the echo is read into it and
 * checked with payload_verify() against the connection's expected
 * position. Bytes beyond what was sent count as a mismatch.
 *
 * Timing. Threads open their connections (at most LOAD_CONNECT_BURST
 * connects in flight in all, retried with back-off) and wait at a gate;
 * the main thread then fixes the window's edges on the monotonic clock
 * and opens the gate. Counters are reset when the warm-up ends and
 * frozen when the window ends; then no new message starts, and what is
 * in flight gets LOAD_GRACE_MS to come back before it counts as a
 * timeout. Errors count whenever they happen, warm-up included.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "client.h"
#include "load.h"
#include "payload.h"

#define LOAD_BUF_SIZE ((size_t)256 * 1024) /* per thread, read and write */
#define LOAD_READS_PER_EVENT 4		   /* full reads before yielding */
#define LOAD_TICK_MS 100		   /* stall checks, progress counters */
#define LOAD_GRACE_MS 2000		   /* for echoes in flight at the end */
#define LOAD_CONNECT_BURST 128		   /* connects in flight, all threads */
#define LOAD_RETRY_MIN_MS 10 /* first connect back-off, doubling */
#define LOAD_RETRY_MAX_MS 1000
#define LOAD_CYCLE_RETRY_MS 1 /* connrate: pause after a failed cycle */
#define LOAD_REPORT_MAX 10    /* error messages printed per run */
#define LOAD_SRC_FIRST 2      /* connrate sources 127.0.0.2 ... */
#define LOAD_SRC_COUNT 253    /* ... to 127.0.0.254 */
#define LOAD_POLL_MS 50	      /* the main thread's wake-ups */
#define LOAD_PROGRESS_MS 1000
#define LOAD_FD_SPARE 64 /* descriptors besides the connections */

#define NS_PER_MS ((uint64_t)1000000)
#define NS_PER_S ((uint64_t)1000000000)

enum load_phase {
	LOAD_CONNECTING, /* opening the connections (not connrate) */
	LOAD_WARMUP,	 /* traffic, not counted */
	LOAD_MEASURING,	 /* the window */
	LOAD_DRAINING,	 /* nothing new starts; in flight may finish */
	LOAD_HOLDING,	 /* hold: idle */
	LOAD_ECHOING,	 /* hold: one echo on every connection */
	LOAD_DONE,
};

enum load_conn_state {
	LOAD_CONN_CLOSED,
	LOAD_CONN_CONNECTING,
	LOAD_CONN_OPEN,
};

/* What a connection's timer is armed for. */
enum load_timer {
	LOAD_TIMER_CONNECT, /* retry a refused or failed connect */
	LOAD_TIMER_CYCLE,   /* connrate: start the next cycle */
	LOAD_TIMER_SEND,    /* pingpong --rate: the next intended send */
};

struct load;
struct load_thread;

/* A connection (connrate: a worker, one connection after another). */
struct load_conn {
	struct load_thread *t;
	uint64_t id; /* 0 .. connections-1, over all threads */
	int fd;
	enum load_conn_state state;
	int active;	  /* still part of the run, counted in t->open */
	int settled;	  /* its connect phase is over */
	int write_on;	  /* wev is armed */
	int progressed;	  /* bytes moved since the last tick */
	unsigned stalled; /* ticks waiting without progress */
	struct event *rev, *wev, *timer;
	enum load_timer timer_for;
	struct payload out;	/* next byte to send */
	struct payload in;	/* next byte expected back */
	uint64_t goal;		/* send up to this stream position */
	uint64_t t_send;	/* ns: the message (cycle) started */
	uint64_t t_next;	/* ns: --rate's next intended send */
	uint64_t connect_start; /* ns: first attempt of this connect */
	unsigned attempts;	/* connect attempts so far */
	uint64_t cycle;		/* connrate: cycles started */
};

struct load_thread {
	struct load *l;
	unsigned id;
	pthread_t tid;
	struct event_base *base;
	struct event *tick, *phase_timer;
	struct load_conn *conns;
	size_t nconns;
	unsigned char *buf; /* LOAD_BUF_SIZE */
	enum load_phase phase;
	uint64_t phase_due; /* ns: when phase_timer is due */
	int stopped;	    /* the loop was asked to stop */

	size_t next_connect, connecting, settled; /* LOAD_CONNECTING */
	size_t connect_burst;
	size_t open;	   /* active connections */
	unsigned src_next; /* connrate: next source address */

	struct load_stats stats; /* reset when the window opens */
	uint64_t errors[LOAD_NERRORS];
	uint64_t established, echoed;
	uint64_t work; /* messages, bytes, connects or echoes, all time */

	/* Published for the main thread's progress line. */
	atomic_uint_fast64_t pub_work, pub_errors, pub_established;
};

struct load {
	const struct client_options *o;
	struct addr target;
	int spread_sources;   /* connrate to 127.x: bind 127.0.0.2-254 */
	uint64_t interval_ns; /* --rate: between one connection's sends */
	struct load_thread *threads;
	unsigned nthreads;

	/* The gate the threads wait at after connecting. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int go, abort;
	uint64_t start_ns, warm_ns, end_ns; /* set before go */

	atomic_uint ready, finished;
	atomic_uint reported; /* error messages printed */
};

static void load_conn_connect(struct load_conn *c);
static void load_conn_after(struct load_conn *c, int failed);
static int load_conn_flush(struct load_conn *c);
static void load_write_cb(evutil_socket_t fd, short what, void *arg);

static uint64_t
load_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static struct timeval
load_tv(uint64_t ns)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ns / NS_PER_S);
	tv.tv_usec = (suseconds_t)(ns % NS_PER_S / 1000);
	return tv;
}

/* Arms ev to fire at the monotonic time at_ns (at once if past). */
static void
load_timer_at(struct event *ev, uint64_t at_ns)
{
	uint64_t now = load_now();
	struct timeval tv = load_tv(at_ns > now ? at_ns - now : 0);

	evtimer_add(ev, &tv);
}

/* Arms t's phase timer for at_ns. libevent's clock may run behind ours
 * (CLOCK_MONOTONIC_COARSE), so load_phase_cb() checks it is not early. */
static void
load_phase_at(struct load_thread *t, uint64_t at_ns)
{
	t->phase_due = at_ns;
	load_timer_at(t->phase_timer, at_ns);
}

static void
load_publish(struct load_thread *t)
{
	uint64_t e = 0;
	int i;

	for (i = 0; i < LOAD_NERRORS; i++)
		e += t->errors[i];
	atomic_store_explicit(&t->pub_work, t->work, memory_order_relaxed);
	atomic_store_explicit(&t->pub_errors, e, memory_order_relaxed);
	atomic_store_explicit(&t->pub_established, t->established,
			      memory_order_relaxed);
}

static void
load_thread_stop(struct load_thread *t)
{
	t->stopped = 1;
	event_base_loopbreak(t->base);
}

/* ------------------------------------------------------------ errors */

static void load_conn_error(struct load_conn *c, enum load_error kind,
			    const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Counts an error of c's and says what it was, for the first few. */
static void
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

/* ------------------------------------------------------- connections */

/* Closes c's socket, if open, and cancels its events. */
static void
load_conn_close(struct load_conn *c)
{
	if (c->fd == -1)
		return;
	event_del(c->rev);
	event_del(c->wev);
	c->write_on = 0;
	close(c->fd);
	c->fd = -1;
	c->state = LOAD_CONN_CLOSED;
}

/* Takes c out of the run for good. */
static void
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

/* c failed: count it, close, and go on as the mode says. */
static void load_conn_fail(struct load_conn *c, enum load_error kind,
			   const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
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
static void
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
static int
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
		w = send(c->fd, t->buf, n, MSG_NOSIGNAL);
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
static int
load_conn_send(struct load_conn *c, uint64_t n)
{
	c->goal += n;
	return load_conn_flush(c);
}

/* pingpong: starts the next message, meant to go at t_send. */
static int
load_pingpong_next(struct load_conn *c, uint64_t t_send)
{
	c->t_send = t_send;
	return load_conn_send(c, c->t->l->o->size);
}

/* pingpong --rate: sends now if the intended time has come, else arms
 * the timer for it. Latency counts from the intended time. */
static int
load_pingpong_pace(struct load_conn *c, uint64_t now)
{
	uint64_t at = c->t_next;

	if (at > now) {
		c->timer_for = LOAD_TIMER_SEND;
		load_timer_at(c->timer, at);
		return 0;
	}
	c->t_next += c->t->l->interval_ns;
	return load_pingpong_next(c, at);
}

/* stream: fills the window up, in writes of --size bytes. */
static int
load_stream_fill(struct load_conn *c)
{
	const struct client_options *o = c->t->l->o;

	while (c->goal + o->size - c->in.pos <= o->window)
		c->goal += o->size;
	return load_conn_flush(c);
}

/* connrate: a new connection with a seed of its own. */
static void
load_cycle_start(struct load_conn *c)
{
	uint64_t seed = (c->id + 1) << 32 | (++c->cycle & 0xffffffffu);

	payload_init(&c->out, seed);
	payload_init(&c->in, seed);
	c->goal = 0;
	c->attempts = 0;
	c->t_send = c->connect_start = load_now();
	load_conn_connect(c);
}

/* A complete echo in a mode that counts it: pingpong and connrate. */
static void
load_count_echo(struct load_conn *c, uint64_t now)
{
	struct load_thread *t = c->t;
	uint64_t size = t->l->o->size;

	t->work++;
	if (t->phase != LOAD_MEASURING)
		return;
	t->stats.bytes += size;
	if (t->l->o->mode == CLIENT_MODE_CONNRATE)
		t->stats.connects++;
	else
		t->stats.messages++;
	histogram_record(&t->stats.latency, now - c->t_send);
}

/*
 * n verified bytes came back on c; what the mode does next. Returns -1
 * when c's socket was closed or replaced (stop reading it), else 0.
 */
static int
load_conn_echoed(struct load_conn *c, size_t n)
{
	struct load_thread *t = c->t;
	const struct client_options *o = t->l->o;
	uint64_t now;

	switch (o->mode) {
	case CLIENT_MODE_PINGPONG:
		if (c->in.pos < c->goal)
			return 0;
		now = load_now();
		load_count_echo(c, now);
		if (t->phase >= LOAD_DRAINING) {
			load_conn_retire(c);
			return -1;
		}
		if (o->rate != 0)
			return load_pingpong_pace(c, now);
		return load_pingpong_next(c, now);
	case CLIENT_MODE_STREAM:
		t->work += n;
		if (t->phase == LOAD_MEASURING)
			t->stats.bytes += n;
		if (t->phase < LOAD_DRAINING)
			return load_stream_fill(c);
		if (c->in.pos < c->out.pos)
			return 0;
		load_conn_retire(c);
		return -1;
	case CLIENT_MODE_CONNRATE:
		if (c->in.pos < c->goal)
			return 0;
		load_count_echo(c, load_now());
		load_conn_close(c);
		load_conn_after(c, 0);
		return -1;
	case CLIENT_MODE_HOLD:
		if (c->in.pos < c->goal)
			return 0;
		t->echoed++;
		t->work++;
		load_conn_retire(c);
		return -1;
	}
	return 0;
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
	return load_conn_echoed(c, ok);
}

static void
load_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load_conn *c = arg;
	unsigned char *buf = c->t->buf;
	ssize_t n;
	int i;

	(void)what;
	for (i = 0; i < LOAD_READS_PER_EVENT; i++) {
		n = recv(fd, buf, LOAD_BUF_SIZE, 0);
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

/* ----------------------------------------------------------- connect */

/* The connect phase: starts connects while fewer than the burst are in
 * flight. */
static void
load_thread_connect_more(struct load_thread *t)
{
	struct load_conn *c;

	while (t->connecting < t->connect_burst &&
	       t->next_connect < t->nconns) {
		c = &t->conns[t->next_connect++];
		t->connecting++;
		c->active = 1;
		t->open++;
		c->connect_start = load_now();
		load_conn_connect(c);
	}
}

/* The connect phase: c connected or failed for good. */
static void
load_thread_settle(struct load_thread *t, struct load_conn *c)
{
	if (c->settled)
		return; /* connected, then failed before the gate */
	c->settled = 1;
	t->connecting--;
	t->settled++;
	if (t->settled == t->nconns)
		load_thread_stop(t);
	else
		load_thread_connect_more(t);
}

static void
load_conn_connected(struct load_conn *c)
{
	struct load_thread *t = c->t;

	c->state = LOAD_CONN_OPEN;
	c->progressed = 1;
	load_conn_want_write(c, 0);
	event_add(c->rev, NULL);
	if (t->phase == LOAD_CONNECTING) {
		t->established++;
		load_thread_settle(t, c);
		return;
	}
	/* connrate: the cycle's message. */
	load_conn_send(c, t->l->o->size);
}

static int
load_connect_retriable(int e)
{
	return e == EAGAIN || e == ETIMEDOUT || e == ECONNRESET ||
	       e == EADDRNOTAVAIL || e == EINTR;
}

static void
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
static void
load_conn_connect(struct load_conn *c)
{
	struct load_thread *t = c->t;
	const struct addr *a = &t->l->target;
	int fd, one = 1;

	c->attempts++;
	c->stalled = 0;
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd == -1) {
		load_conn_connect_failed(c, errno);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (t->l->spread_sources && load_conn_bind_source(c, fd) == -1) {
		int e = errno;
		close(fd);
		load_conn_connect_failed(c, e);
		return;
	}
	c->fd = fd;
	c->state = LOAD_CONN_CONNECTING;
	event_assign(c->rev, t->base, fd, EV_READ | EV_PERSIST, load_read_cb,
		     c);
	event_assign(c->wev, t->base, fd, EV_WRITE | EV_PERSIST, load_write_cb,
		     c);
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
load_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load_conn *c = arg;
	socklen_t len = sizeof(int);
	int e = 0;

	(void)what;
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
load_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load_conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->timer_for) {
	case LOAD_TIMER_CONNECT:
		load_conn_connect(c);
		break;
	case LOAD_TIMER_CYCLE:
		load_cycle_start(c);
		break;
	case LOAD_TIMER_SEND:
		load_pingpong_pace(c, load_now());
		break;
	}
}

/*
 * c's socket is closed, after an error (failed) or a complete connrate
 * cycle. connrate goes on with the next cycle until the window ends;
 * a connection of the other modes leaves the run.
 */
static void
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
		load_cycle_start(c);
		return;
	}
	/* Not at once: a failure can come from inside the connect, and a
	 * dead server must not turn this into a busy loop. */
	c->timer_for = LOAD_TIMER_CYCLE;
	load_timer_at(c->timer, load_now() + LOAD_CYCLE_RETRY_MS * NS_PER_MS);
}

/* ------------------------------------------------------------ phases */

/* Is c waiting for something: a connect, a write, an echo? */
static int
load_conn_waiting(const struct load_conn *c)
{
	return c->state == LOAD_CONN_CONNECTING ||
	       (c->state == LOAD_CONN_OPEN && c->in.pos < c->goal);
}

/* Every LOAD_TICK_MS: connections waiting for longer than -t without
 * progress fail; counters are published for the progress line. */
static void
load_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load_thread *t = arg;
	uint64_t limit = t->l->o->timeout_ms;
	struct load_conn *c;
	size_t i;

	(void)fd;
	(void)what;
	for (i = 0; i < t->nconns; i++) {
		c = &t->conns[i];
		if (!c->active || !load_conn_waiting(c) || c->progressed) {
			c->progressed = 0;
			c->stalled = 0;
			continue;
		}
		if ((uint64_t)++c->stalled * LOAD_TICK_MS < limit)
			continue;
		if (c->state == LOAD_CONN_CONNECTING)
			load_conn_connect_failed(c, ETIMEDOUT);
		else
			load_conn_fail(c, LOAD_ERR_TIMEOUT,
				       "no progress for %" PRIu64
				       " ms with %" PRIu64 " bytes not echoed",
				       limit, c->goal - c->in.pos);
	}
	load_publish(t);
}

/* The window opens: what came before does not count. */
static void
load_phase_measure(struct load_thread *t)
{
	t->phase = LOAD_MEASURING;
	memset(&t->stats, 0, sizeof(t->stats));
	histogram_init(&t->stats.latency);
	load_phase_at(t, t->l->end_ns);
}

/* The window closes: nothing new starts, what is in flight may finish
 * within the grace time. */
static void
load_phase_drain(struct load_thread *t)
{
	enum client_mode mode = t->l->o->mode;
	struct load_conn *c;
	size_t i;

	t->phase = LOAD_DRAINING;
	for (i = 0; i < t->nconns; i++) {
		c = &t->conns[i];
		if (!c->active)
			continue;
		if (mode == CLIENT_MODE_STREAM) {
			c->goal = c->out.pos; /* a partial write stops here */
			load_conn_want_write(c, 0);
		}
		if (c->state == LOAD_CONN_CLOSED ||
		    (c->state == LOAD_CONN_OPEN && c->in.pos == c->goal))
			load_conn_retire(c);
	}
	if (t->open == 0)
		load_thread_stop(t);
	else
		load_phase_at(t, t->l->end_ns + LOAD_GRACE_MS * NS_PER_MS);
}

/* Time is up for what is still in flight (draining or echoing). */
static void
load_phase_finish(struct load_thread *t)
{
	struct load_conn *c;
	size_t i;

	for (i = 0; i < t->nconns; i++) {
		c = &t->conns[i];
		if (!c->active)
			continue;
		if (load_conn_waiting(c))
			load_conn_error(c, LOAD_ERR_TIMEOUT,
					"%" PRIu64 " bytes not echoed in time",
					c->goal - c->in.pos);
		load_conn_retire(c);
	}
	t->phase = LOAD_DONE;
	load_thread_stop(t);
}

/* hold: the idle time is over; one message on every connection. */
static void
load_phase_echo(struct load_thread *t)
{
	uint64_t size = t->l->o->size;
	size_t i;

	t->phase = LOAD_ECHOING;
	t->established = t->open; /* those the server kept */
	load_phase_at(t, load_now() + t->l->o->timeout_ms * NS_PER_MS);
	for (i = 0; i < t->nconns; i++)
		if (t->conns[i].active)
			load_conn_send(&t->conns[i], size);
	if (t->open == 0)
		load_thread_stop(t);
}

static void
load_phase_cb(evutil_socket_t fd, short what, void *arg)
{
	struct load_thread *t = arg;

	(void)fd;
	(void)what;
	if (load_now() < t->phase_due) {
		load_phase_at(t, t->phase_due);
		return;
	}
	switch (t->phase) {
	case LOAD_WARMUP:
		load_phase_measure(t);
		break;
	case LOAD_MEASURING:
		load_phase_drain(t);
		break;
	case LOAD_HOLDING:
		load_phase_echo(t);
		break;
	case LOAD_DRAINING:
	case LOAD_ECHOING:
		load_phase_finish(t);
		break;
	case LOAD_CONNECTING:
	case LOAD_DONE:
		break;
	}
}

/* After the gate: the traffic of the mode begins. */
static void
load_thread_begin(struct load_thread *t)
{
	const struct load *l = t->l;
	const struct client_options *o = l->o;
	struct load_conn *c;
	uint64_t now = load_now();
	size_t i;

	if (o->mode == CLIENT_MODE_HOLD) {
		t->phase = LOAD_HOLDING;
		load_phase_at(t, l->end_ns);
		return;
	}
	if (l->warm_ns > l->start_ns) {
		t->phase = LOAD_WARMUP;
		load_phase_at(t, l->warm_ns);
	} else {
		load_phase_measure(t);
	}
	for (i = 0; i < t->nconns; i++) {
		c = &t->conns[i];
		if (o->mode == CLIENT_MODE_CONNRATE) {
			c->active = 1;
			t->open++;
			load_cycle_start(c);
		} else if (!c->active) {
			continue;
		} else if (o->mode == CLIENT_MODE_STREAM) {
			load_stream_fill(c);
		} else if (o->rate != 0) {
			/* Spread the connections' sends over an interval. */
			c->t_next = l->start_ns +
				    l->interval_ns * c->id / o->connections;
			load_pingpong_pace(c, now);
		} else {
			load_pingpong_next(c, now);
		}
	}
}

/* Waits at the gate; 0 to go on, -1 if the run is called off (a thread
 * failed to start, or no connection could be made). */
static int
load_gate_wait(struct load *l)
{
	int abort;

	pthread_mutex_lock(&l->lock);
	while (!l->go)
		pthread_cond_wait(&l->cond, &l->lock);
	abort = l->abort;
	pthread_mutex_unlock(&l->lock);
	return abort ? -1 : 0;
}

static void
load_gate_open(struct load *l, int abort)
{
	pthread_mutex_lock(&l->lock);
	l->go = 1;
	l->abort = abort;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void *
load_thread_main(void *arg)
{
	struct load_thread *t = arg;
	struct load *l = t->l;
	struct timeval tick = load_tv(LOAD_TICK_MS * NS_PER_MS);
	size_t i;

	evtimer_add(t->tick, &tick);
	if (l->o->mode != CLIENT_MODE_CONNRATE) {
		t->phase = LOAD_CONNECTING;
		load_thread_connect_more(t);
		if (!t->stopped)
			event_base_dispatch(t->base);
	}
	load_publish(t);
	atomic_fetch_add(&l->ready, 1);
	if (load_gate_wait(l) == 0) {
		t->stopped = 0;
		load_thread_begin(t);
		if (!t->stopped)
			event_base_dispatch(t->base);
	}
	for (i = 0; i < t->nconns; i++)
		load_conn_retire(&t->conns[i]);
	evtimer_del(t->tick);
	evtimer_del(t->phase_timer);
	load_publish(t);
	atomic_fetch_add(&l->finished, 1);
	return NULL;
}

/* ------------------------------------------------------------- setup */

static void
load_thread_free(struct load_thread *t)
{
	size_t i;

	for (i = 0; t->conns != NULL && i < t->nconns; i++) {
		struct load_conn *c = &t->conns[i];
		if (c->fd != -1)
			close(c->fd);
		if (c->rev != NULL)
			event_free(c->rev);
		if (c->wev != NULL)
			event_free(c->wev);
		if (c->timer != NULL)
			event_free(c->timer);
	}
	free(t->conns);
	if (t->tick != NULL)
		event_free(t->tick);
	if (t->phase_timer != NULL)
		event_free(t->phase_timer);
	if (t->base != NULL)
		event_base_free(t->base);
	free(t->buf);
}

/* Thread id's base, buffer and connections: id, id + n, id + 2n, ... */
static int
load_thread_init(struct load *l, struct load_thread *t, unsigned id)
{
	const struct client_options *o = l->o;
	struct event_config *cfg;
	struct load_conn *c;
	size_t i;

	t->l = l;
	t->id = id;
	t->nconns =
		(size_t)((o->connections - id + l->nthreads - 1) / l->nthreads);
	t->connect_burst = LOAD_CONNECT_BURST / l->nthreads;
	if (t->connect_burst == 0)
		t->connect_burst = 1;
	histogram_init(&t->stats.latency);
	if ((cfg = event_config_new()) == NULL)
		return -1;
	/* Nothing here is shared between threads: no locks. --rate needs
	 * timers finer than epoll's milliseconds. */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	if (o->rate != 0)
		event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	t->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (t->base == NULL)
		return -1;
	t->tick = event_new(t->base, -1, EV_PERSIST, load_tick_cb, t);
	t->phase_timer = evtimer_new(t->base, load_phase_cb, t);
	t->buf = malloc(LOAD_BUF_SIZE);
	t->conns = calloc(t->nconns, sizeof(*t->conns));
	if (t->tick == NULL || t->phase_timer == NULL || t->buf == NULL ||
	    t->conns == NULL)
		return -1;
	for (i = 0; i < t->nconns; i++) {
		c = &t->conns[i];
		c->t = t;
		c->fd = -1;
		c->id = id + i * l->nthreads;
		payload_init(&c->out, c->id + 1);
		payload_init(&c->in, c->id + 1);
		c->rev = event_new(t->base, -1, 0, load_read_cb, c);
		c->wev = event_new(t->base, -1, 0, load_write_cb, c);
		c->timer = evtimer_new(t->base, load_timer_cb, c);
		if (c->rev == NULL || c->wev == NULL || c->timer == NULL)
			return -1;
	}
	return 0;
}

/* Enough descriptors for every connection, raising the soft limit. */
static int
load_raise_fd_limit(uint64_t connections)
{
	uint64_t need = connections + LOAD_FD_SPARE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 0;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_cur == RLIM_INFINITY)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		fprintf(stderr,
			"%s: %" PRIu64 " connections need %" PRIu64
			" open files; the limit is %llu (ulimit -n)\n",
			CLIENT_NAME, connections, need,
			(unsigned long long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		perror(CLIENT_NAME ": setrlimit");
		return -1;
	}
	return 0;
}

/* utime + stime of pid in seconds, or -1 if unreadable. */
static double
load_proc_cpu_s(uint64_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *fp;
	size_t n;
	long tck = sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* After the command's closing parenthesis: state is field 3,
	 * utime and stime are fields 14 and 15. */
	if ((p = strrchr(buf, ')')) == NULL || tck <= 0 ||
	    sscanf(p + 1,
		   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)tck;
}

/* ------------------------------------------------------------ the run */

/* The main thread's progress line (a terminal only). */
struct load_progress {
	int on;
	uint64_t next_ns, last_ns, last_work;
};

static void
load_sleep_until(uint64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / NS_PER_S);
	ts.tv_nsec = (long)(ns % NS_PER_S);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static void
load_progress_show(struct load *l, struct load_progress *p, uint64_t now,
		   uint64_t since)
{
	const struct client_options *o = l->o;
	uint64_t work = 0, errors = 0, est = 0;
	const char *phase, *unit;
	double rate, dt;
	unsigned i;

	if (!p->on || now < p->next_ns)
		return;
	for (i = 0; i < l->nthreads; i++) {
		struct load_thread *t = &l->threads[i];
		work += atomic_load_explicit(&t->pub_work,
					     memory_order_relaxed);
		errors += atomic_load_explicit(&t->pub_errors,
					       memory_order_relaxed);
		est += atomic_load_explicit(&t->pub_established,
					    memory_order_relaxed);
	}
	dt = (double)(now - p->last_ns) / (double)NS_PER_S;
	rate = dt > 0 ? (double)(work - p->last_work) / dt : 0;
	if (atomic_load(&l->ready) < l->nthreads || l->end_ns == 0)
		phase = "connecting";
	else if (now < l->warm_ns)
		phase = "warm-up";
	else if (now < l->end_ns)
		phase = o->mode == CLIENT_MODE_HOLD ? "holding" : "running";
	else
		phase = o->mode == CLIENT_MODE_HOLD ? "echoing" : "draining";
	switch (o->mode) {
	case CLIENT_MODE_STREAM:
		rate /= 1024.0 * 1024.0;
		unit = "MiB/s";
		break;
	case CLIENT_MODE_CONNRATE:
		unit = "conns/s";
		break;
	case CLIENT_MODE_HOLD:
		rate = (double)(work != 0 ? work : est);
		unit = work != 0 ? "echoed" : "established";
		break;
	default:
		unit = "msgs/s";
		break;
	}
	if (l->end_ns == 0 && o->mode != CLIENT_MODE_HOLD) {
		rate = (double)est;
		unit = "connected";
	}
	report_progress(stderr, phase, (double)(now - since) / (double)NS_PER_S,
			rate, unit, errors);
	p->last_ns = now;
	p->last_work = work;
	p->next_ns = now + LOAD_PROGRESS_MS * NS_PER_MS;
}

/* Connections made so far, as the threads published them. */
static uint64_t
load_established(struct load *l)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < l->nthreads; i++)
		n += atomic_load_explicit(&l->threads[i].pub_established,
					  memory_order_relaxed);
	return n;
}

/* Adds thread t's counters to r. */
static void
load_merge(struct load_result *r, const struct load_thread *t)
{
	int i;

	r->window.messages += t->stats.messages;
	r->window.bytes += t->stats.bytes;
	r->window.connects += t->stats.connects;
	histogram_merge(&r->window.latency, &t->stats.latency);
	for (i = 0; i < LOAD_NERRORS; i++)
		r->errors[i] += t->errors[i];
	r->established += t->established;
	r->echoed += t->echoed;
}

/* Starts the threads; waits for them to connect, through the window,
 * and to finish; fills r. -1 if the run could not start. */
static int
load_drive(struct load *l, struct load_result *r)
{
	const struct client_options *o = l->o;
	struct load_progress p;
	double cpu0 = -1, cpu1 = -1;
	uint64_t t0 = load_now(), now, next;
	int hold = o->mode == CLIENT_MODE_HOLD, read0 = 0, read1 = 0;
	unsigned i, started;

	memset(&p, 0, sizeof(p));
	p.on = !o->quiet && isatty(STDERR_FILENO);
	p.last_ns = t0;
	if (hold && o->server_pid != 0)
		cpu0 = load_proc_cpu_s(o->server_pid);
	for (started = 0; started < l->nthreads; started++) {
		if (pthread_create(&l->threads[started].tid, NULL,
				   load_thread_main,
				   &l->threads[started]) != 0) {
			fprintf(stderr, "%s: cannot start a thread\n",
				CLIENT_NAME);
			break;
		}
	}
	if (started < l->nthreads) {
		load_gate_open(l, 1);
		for (i = 0; i < started; i++)
			pthread_join(l->threads[i].tid, NULL);
		return -1;
	}
	while (atomic_load(&l->ready) < l->nthreads) {
		now = load_now();
		load_progress_show(l, &p, now, t0);
		load_sleep_until(now + LOAD_POLL_MS * NS_PER_MS);
	}
	l->start_ns = load_now();
	l->warm_ns = l->start_ns + (hold ? 0 : o->warmup_ms * NS_PER_MS);
	l->end_ns = l->warm_ns + o->duration_ms * NS_PER_MS;
	p.last_ns = l->start_ns;
	p.last_work = 0;
	/* Not one connection made: nothing to wait for. */
	load_gate_open(l, o->mode != CLIENT_MODE_CONNRATE &&
				  load_established(l) == 0);
	while (atomic_load(&l->finished) < l->nthreads) {
		now = load_now();
		if (!hold && o->server_pid != 0 && !read0 &&
		    now >= l->warm_ns) {
			cpu0 = load_proc_cpu_s(o->server_pid);
			read0 = 1;
		}
		if (!hold && o->server_pid != 0 && !read1 && now >= l->end_ns) {
			cpu1 = load_proc_cpu_s(o->server_pid);
			read1 = 1;
		}
		load_progress_show(l, &p, now, l->start_ns);
		next = now + LOAD_POLL_MS * NS_PER_MS;
		if (!read0 && l->warm_ns > now && l->warm_ns < next)
			next = l->warm_ns;
		if (!read1 && l->end_ns > now && l->end_ns < next)
			next = l->end_ns;
		load_sleep_until(next);
	}
	for (i = 0; i < l->nthreads; i++)
		pthread_join(l->threads[i].tid, NULL);
	if (o->server_pid != 0 && (hold || !read1)) /* or called off */
		cpu1 = load_proc_cpu_s(o->server_pid);
	if (p.on)
		report_progress_clear(stderr);

	memset(r, 0, sizeof(*r));
	r->o = o;
	r->threads = l->nthreads;
	r->duration_s = (double)o->duration_ms / 1000.0;
	histogram_init(&r->window.latency);
	for (i = 0; i < l->nthreads; i++)
		load_merge(r, &l->threads[i]);
	if (o->server_pid != 0 && cpu0 >= 0 && cpu1 >= 0) {
		r->have_server_cpu = 1;
		r->server_cpu_s = cpu1 - cpu0;
	} else if (o->server_pid != 0) {
		fprintf(stderr,
			"%s: cannot read the CPU time of PID %" PRIu64 "\n",
			CLIENT_NAME, o->server_pid);
	}
	return 0;
}

/* Did the run pass? */
static int
load_passed(const struct load_result *r)
{
	uint64_t n = r->o->connections;

	if (report_errors(r) != 0)
		return 0;
	if (r->o->mode == CLIENT_MODE_HOLD)
		return r->established == n && r->echoed == n;
	return 1;
}

int
load_run(const struct client_options *o, const struct addr *addrs, int naddrs)
{
	static struct load_result r; /* 15 KiB of histogram */
	const struct sockaddr_in *sin;
	struct load l;
	unsigned i, ready = 0;
	int rc = -1;

	if (naddrs < 1)
		return -1;
	memset(&l, 0, sizeof(l));
	l.o = o;
	l.target = addrs[0];
	l.nthreads = (unsigned)(o->threads < o->connections ? o->threads
							    : o->connections);
	if (o->rate != 0)
		l.interval_ns = o->connections * NS_PER_S / o->rate;
	sin = (const struct sockaddr_in *)&l.target.ss;
	l.spread_sources = o->mode == CLIENT_MODE_CONNRATE &&
			   l.target.ss.ss_family == AF_INET &&
			   (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	if (load_raise_fd_limit(o->connections) == -1)
		return -1;
	pthread_mutex_init(&l.lock, NULL);
	pthread_cond_init(&l.cond, NULL);
	atomic_init(&l.ready, 0);
	atomic_init(&l.finished, 0);
	atomic_init(&l.reported, 0);
	if ((l.threads = calloc(l.nthreads, sizeof(*l.threads))) == NULL) {
		fprintf(stderr, "%s: out of memory\n", CLIENT_NAME);
		goto out;
	}
	for (ready = 0; ready < l.nthreads; ready++) {
		if (load_thread_init(&l, &l.threads[ready], ready) == -1) {
			fprintf(stderr,
				"%s: cannot set up thread %u's event loop and "
				"connections\n",
				CLIENT_NAME, ready);
			ready++;
			goto out;
		}
	}
	if (load_drive(&l, &r) == -1)
		goto out;
	if (o->json)
		report_json(stdout, &r);
	else if (!o->quiet)
		report_summary(stdout, &r);
	rc = load_passed(&r) ? 0 : 1;
out:
	for (i = 0; i < ready; i++)
		load_thread_free(&l.threads[i]);
	free(l.threads);
	pthread_cond_destroy(&l.cond);
	pthread_mutex_destroy(&l.lock);
	return rc;
}
