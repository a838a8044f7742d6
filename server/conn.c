/*
 * conn.c: one client connection: read, echo, drain, close.
 *
 * Design. The connection owns its socket and a bufferevent on it that
 * owns the queue of echo not yet written (its output evbuffer), the write
 * event, write errors and the low-watermark callback. The read side is the
 * connection's own: an event on the same socket whose callback reads up to
 * ECHOD_READ_SLICE bytes at a time. A socket bufferevent would read at most
 * 4096 bytes per call after an ioctl(FIONREAD), and every echo queued on
 * it costs an extra loop turn plus two epoll_ctl calls; measured with
 * strace and perf, that made a textbook bufferevent echo cost 1.5x a bare
 * epoll loop per message and several times it per MiB.
 *
 * So the hot path is the bare loop's: when nothing is queued, recv(2) into
 * the worker's read buffer and send(2) it straight back (on a socket they
 * are read(2) and write(2) less the file layer's checks: a loopback round
 * trip of four such calls costs 4-6 % less, echod 1-3 % less CPU per
 * message; bench/README.md). Only what the socket does not take at once
 * is appended to the bufferevent's output, the one copy, bounded by one
 * slice and only when the peer falls behind.
 * The bufferevent itself (with its two evbuffers and events, about 1 KiB)
 * is made then, the first time the peer falls behind: a connection whose
 * peer keeps up, or that sits idle, never has one.
 * From then on, while anything is queued, reads go straight into the
 * output's own chains (evbuffer_reserve_space, no copy) so order is kept,
 * and the bufferevent drains them.
 *
 * Nor has an idle connection a read event of its own: it waits in its
 * worker's park (park.c) and is read from there until it is busy; it goes
 * back there, giving up its bufferevent too, once silent for
 * ECHOD_PARK_AFTER_MS. Peak memory holding 10,000 idle connections went
 * from 7.4 to 5.5 MiB with it (bench/README.md).
 *
 * Backpressure: reading stops once max_buffer bytes are queued and resumes
 * from the write callback when the queue drains below half of that, so a
 * connection holds at most max_buffer bytes however slowly its peer reads.
 * Half-close: on EOF reading stops, what is queued is written, then the
 * socket is closed (never with unread input, which would send a reset).
 * Errors and resets free the connection at once.
 *
 * Layers. What the connection does is its listener's conn_profile, copied
 * at accept and dispatched on once, in conn_new(): the transport (how
 * bytes move: plain recv(2)/send(2) here; TLS would be a bufferevent
 * that owns both sides, in a file of its own), an optional preamble (read
 * before any echo, e.g. a PROXY header, by a read callback of its own
 * that hands over to the behaviour's when done), and the behaviour (plain
 * echo here; injected faults in a file of their own). The plain path
 * below checks none of them per read: adding a layer adds a callback, not
 * a branch on this path. The pure policies it applies (when to hold back,
 * when to resume, how much to read, when a draining connection is done)
 * are functions of their own, unit-tested.
 *
 * Idleness: each connection notes when it last moved a byte (a coarse
 * clock read, no system call), and the worker's sweep closes those silent
 * for idle_timeout with nothing queued, or, while stopping, those quiet
 * for ECHOD_DRAIN_QUIET_MS (..._UPGRADE_MS after an upgrade's hand-over;
 * ECHOD_DRAIN_FRESH_MS if they have sent nothing yet). A connection mid-echo or
 * held back by a slow reader is never idle: its echo is queued here, or still
 * in the kernel's send queue (SIOCOUTQ, asked only of a connection about to be
 * closed as idle). Echo the peer's kernel has acknowledged counts as delivered.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "conn_int.h"

/* Under ASan, and under valgrind, no spare connections (conn_alloc()):
 * each goes back to free(), so that a use after conn_free() is caught. */
#if defined(__SANITIZE_ADDRESS__)
#define CONN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONN_ASAN 1
#endif
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CONN_UNDER_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef CONN_UNDER_VALGRIND
#define CONN_UNDER_VALGRIND() 0
#endif

/* A parked connection that reads again this soon after its last read is
 * busy: it leaves the park (conn_parked_ready()). */
#define CONN_BUSY_MS 1000
/* Freed connections a worker keeps for its next ones (16 KiB at most). */
#ifdef CONN_ASAN
#define CONN_SPARE 0
#else
#define CONN_SPARE 128
#endif

static void conn_count_end(struct worker *w, unsigned slot, enum conn_end why,
			   uint64_t lived);

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);

uint64_t
conn_clock_ms(void)
{
	struct timespec ts;

	/* The coarse clock is read without a system call (vDSO). */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct conn *
conn_next(struct conn *c)
{
	return TAILQ_NEXT(c, entry);
}

/* Backpressure: stop reading once max_buffer bytes of echo wait. */
int
conn_must_hold_back(uint64_t queued, uint64_t max_buffer)
{
	return queued >= max_buffer;
}

/* ... and read again once the queue has drained to half of it. */
uint64_t
conn_resume_mark(uint64_t max_buffer)
{
	return max_buffer / 2;
}

/* How much one read may take: a slice, and never more than would push
 * the queue past max_buffer (0 when it is there already). */
size_t
conn_read_budget(uint64_t queued, uint64_t max_buffer)
{
	uint64_t room = queued < max_buffer ? max_buffer - queued : 0;

	return room < ECHOD_READ_SLICE ? (size_t)room : ECHOD_READ_SLICE;
}

/* Draining: is a connection still waiting for its PROXY header done?
 * Only once silent as long as a fresh one (below). */
int
conn_drain_header_done(uint64_t silent_ms)
{
	return silent_ms >= ECHOD_DRAIN_FRESH_MS;
}

/* While stopping, a connection is done once nothing is queued either way
 * (no echo waiting, no unread input) and it has been quiet a moment; a
 * longer one if it is fresh (has sent nothing yet), since its first
 * bytes may be on their way. */
int
conn_drain_done(uint64_t silent_ms, uint64_t quiet_ms, int queued, int unread,
		int fresh)
{
	if (fresh && quiet_ms < ECHOD_DRAIN_FRESH_MS)
		quiet_ms = ECHOD_DRAIN_FRESH_MS;
	return !queued && !unread && silent_ms >= quiet_ms;
}

const char *
conn_peer_name(const struct conn *c, char *buf, size_t len)
{
	return addr_format(&c->peer.sa, buf, len);
}

void
conn_fail(struct conn *c, const char *what, int err)
{
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char name[ADDR_STRLEN];
		log_debug("%s: %s: %s",
			  addr_format(&c->peer.sa, name, sizeof(name)), what,
			  strerror(err));
	}
	conn_free(c, CONN_END_ERROR);
}

/*
 * Counts what the bufferevent has written from the queue since the last
 * call: what was appended since, and what was queued then, less what is
 * queued now. (A callback on the output evbuffer would cost a small
 * allocation per connection.)
 */
void
conn_count_written(struct conn *c)
{
	size_t queued = conn_queued(c);
	uint64_t written = c->uncounted - queued;

	counter_add(&c->w->lc[c->slot][LC_BYTES_OUT], written);
	c->bytes_out += written;
	c->uncounted = queued;
}

static void conn_write_cb(struct bufferevent *bev, void *arg);

/* The bufferevent that holds the echo the peer has not taken yet, made
 * the first time it falls behind. NULL if it cannot be made. */
static struct bufferevent *
conn_bev(struct conn *c)
{
	if (c->bev != NULL)
		return c->bev;
	c->bev = bufferevent_socket_new(c->w->base, c->fd, 0);
	if (c->bev == NULL)
		return NULL;
	/* Parked or not, the park's check frees it once empty and quiet. */
	park_watch(c->w);
	bufferevent_setcb(c->bev, NULL, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE,
				 (size_t)conn_resume_mark(conn_max_buffer(c)),
				 0);
	return c->bev;
}

/*
 * Fast path: nothing is queued, so the bytes just read can go straight
 * back. Returns -1 if the connection was freed.
 */
static int
conn_echo_direct(struct conn *c, size_t n)
{
	const unsigned char *buf = c->w->rbuf;
	ssize_t wn;

	do
		wn = send(c->fd, buf, n, MSG_NOSIGNAL);
	while (wn == -1 && errno == EINTR);
	if (wn == -1) {
		if (errno != EAGAIN) {
			conn_fail(c, "write", errno);
			return -1;
		}
		wn = 0;
	}
	counter_add(&c->w->lc[c->slot][LC_BYTES_OUT], (uint64_t)wn);
	c->bytes_out += (uint64_t)wn;
	if ((size_t)wn < n) {
		/* The peer fell behind: queue the rest; the bufferevent
		 * writes it when the socket drains. */
		if (conn_bev(c) == NULL ||
		    evbuffer_add(bufferevent_get_output(c->bev), buf + wn,
				 n - (size_t)wn) == -1) {
			conn_fail(c, "queueing the echo", ENOMEM);
			return -1;
		}
		c->uncounted += n - (size_t)wn;
	}
	return 0;
}

/* Reads up to want bytes onto the end of out, in place (the slow path:
 * the queue is not empty, so read onto its end). */
ssize_t
conn_read_into(struct conn *c, struct evbuffer *out, size_t want)
{
	struct iovec iov[2];
	struct evbuffer_iovec vec[2];
	int i, nvec;
	ssize_t n;

	nvec = evbuffer_reserve_space(out, (ev_ssize_t)want, vec, 2);
	if (nvec <= 0) {
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < nvec; i++) {
		iov[i].iov_base = vec[i].iov_base;
		iov[i].iov_len = vec[i].iov_len;
	}
	/* The reservation may be larger than asked; read no more. */
	if (iov[0].iov_len >= want) {
		iov[0].iov_len = want;
		nvec = 1;
	} else if (nvec == 2) {
		iov[1].iov_len = want - iov[0].iov_len;
	}
	do
		n = readv(c->fd, iov, nvec);
	while (n == -1 && errno == EINTR);
	if (n <= 0) {
		int saved = errno;
		evbuffer_commit_space(out, vec, 0);
		errno = saved;
		return n;
	}
	if ((size_t)n <= vec[0].iov_len) {
		vec[0].iov_len = (size_t)n;
		nvec = 1;
	} else {
		vec[1].iov_len = (size_t)n - vec[0].iov_len;
	}
	evbuffer_commit_space(out, vec, nvec);
	return n;
}

/* Backpressure: stop reading; the write callback resumes at half of the
 * max_buffer in force now (a reload may have changed it since). */
void
conn_hold_back(struct conn *c, uint64_t max)
{
	bufferevent_setwatermark(c->bev, EV_WRITE,
				 (size_t)conn_resume_mark(max), 0);
	if (c->reading)
		counter_add(&c->w->wc[WC_PAUSES], 1);
	conn_pause(c);
}

/* Reads and echoes what the socket has. Returns -1 if c was freed, 1 if
 * it read bytes, 0 if not (none yet, or held back, or the peer closed
 * with echo still queued). */
static int
conn_read(struct conn *c)
{
	int fd = c->fd;
	struct evbuffer *out =
		c->bev != NULL ? bufferevent_get_output(c->bev) : NULL;
	uint64_t max = conn_max_buffer(c);
	size_t queued = out != NULL ? evbuffer_get_length(out) : 0;
	size_t slice = conn_read_budget(queued, max);
	ssize_t n;

	if (queued == 0) {
		do
			n = recv(fd, c->w->rbuf, slice, 0);
		while (n == -1 && errno == EINTR);
		if (n > 0) {
			conn_received(c, (size_t)n);
			if (conn_echo_direct(c, (size_t)n) == -1)
				return -1;
		}
	} else {
		if (conn_must_hold_back(queued, max)) {
			conn_hold_back(c, max);
			return 0;
		}
		n = conn_read_into(c, out, slice);
		if (n > 0) {
			c->uncounted += (uint64_t)n;
			conn_received(c, (size_t)n);
		}
	}
	if (n > 0) {
		if (conn_must_hold_back(conn_queued(c), max))
			conn_hold_back(c, max);
		return 1;
	}
	if (n == 0) {
		/* Half-close: echo what is queued, then close. */
		c->eof = 1;
		if (conn_queued(c) == 0) {
			conn_free(c, CONN_END_EOF);
			return -1;
		}
		conn_pause(c);
		return 0;
	}
	if (errno == EAGAIN)
		return 0;
	conn_fail(c, "read", errno);
	return -1;
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)conn_read(arg);
}

/* Stops reading (backpressure, the peer's EOF, the end). */
void
conn_pause(struct conn *c)
{
	if (!c->reading)
		return;
	if (c->parked)
		park_remove(c);
	else
		event_del(c->rev);
	c->reading = 0;
}

/* Reads again: on its own event if it has one, else from the park.
 * Returns -1 if it cannot (errno set; c is the caller's to fail). */
int
conn_resume(struct conn *c)
{
	if (c->reading || c->eof)
		return 0;
	if (c->rev != NULL ? event_add(c->rev, NULL) : park_add(c))
		return -1;
	c->reading = 1;
	return 0;
}

/* c's own read event, made on first use: set to call cb on events. */
int
conn_rev_assign(struct conn *c, short events, event_callback_fn cb)
{
	if (c->rev == NULL &&
	    (c->rev = malloc(event_get_struct_event_size())) == NULL)
		return -1;
	return event_assign(c->rev, c->w->base, c->fd, events, cb, c);
}

/*
 * The park found c readable: it is served as from its own event. While
 * libevent waits for the worker (loop.c), one that reads bytes within a
 * second of its last read is busy: it leaves the park for an event of its
 * own, which libevent watches with no epoll_wait() of the park's per
 * message. (Short of memory for that event, it stays.) While the worker
 * waits on the park itself, staying is what costs least.
 * While parked, a connection has nothing queued, so the last time a byte
 * moved is its last read, or its accept before the first.
 */
void
conn_parked_ready(struct conn *c, uint64_t now_ms)
{
	int again = c->w->nested && c->has_read &&
		    conn_silent_ms(c, now_ms) < CONN_BUSY_MS;

	if (conn_read(c) != 1 || !c->parked)
		return;
	c->has_read = 1;
	if (!again)
		return;
	if (conn_rev_assign(c, EV_READ | EV_PERSIST, conn_read_cb) == -1)
		return;
	park_remove(c);
	c->reading = 0;
	if (conn_resume(c) == -1) {
		conn_fail(c, "watching the socket", errno);
		return;
	}
	park_watch(c->w);
}

/*
 * The park's check: a plain connection out of the park, silent for
 * ECHOD_PARK_AFTER_MS with nothing queued, goes back, giving up its event
 * and its (empty) bufferevent. Returns 0 if c is to be checked again, 1 if
 * it is parked or never will be.
 */
int
conn_park_if_quiet(struct conn *c, uint64_t now_ms)
{
	struct event *rev = c->rev;

	if (c->tls || conn_fault(c) != NULL || conn_pre(c) != NULL || c->eof ||
	    (c->parked && c->bev == NULL))
		return 1;
	if (!c->reading || conn_queued(c) > 0 ||
	    conn_silent_ms(c, now_ms) < ECHOD_PARK_AFTER_MS)
		return 0;
	if (!c->parked) {
		conn_pause(c);
		c->rev = NULL;
		if (conn_resume(c) == -1) {
			/* No room in the park: it keeps its event. */
			c->rev = rev;
			if (conn_resume(c) == 0)
				return 0;
			conn_fail(c, "watching the socket", errno);
			return 1;
		}
		free(rev);
	}
	/* Parked, or just now: an empty bufferevent goes too. */
	if (c->bev != NULL) {
		conn_count_written(c);
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	return 1;
}

/* The bufferevent wrote and the queue is at or below the low watermark. */
static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t queued = evbuffer_get_length(bufferevent_get_output(bev));

	conn_touch(c);
	conn_count_written(c);
	if (c->eof) {
		if (queued == 0)
			conn_free(c, CONN_END_EOF);
		return;
	}
	if (conn_resume(c) == -1)
		conn_fail(c, "watching the socket", errno);
}

void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	int err = EVUTIL_SOCKET_ERROR();

	(void)bev;
	if (what & BEV_EVENT_ERROR)
		conn_fail(c, "write", err);
	else
		conn_free(c, CONN_END_ERROR);
}

/* Starts a connection of this profile reading (or not). A new layer's
 * value goes in its switch (-Wswitch points here). Returns -1 if it
 * could not start. */
static int
conn_first_phase(struct conn *c, const struct conn_profile *p)
{
	switch (p->preamble) {
	case CONN_PREAMBLE_NONE:
		break;
	case CONN_PREAMBLE_PROXY:
		/* Reads the header, then calls conn_start(). */
		return preamble_start(c, p);
	}
	return conn_start(c, p);
}

/* The transport and the behaviour: after the preamble, if any. */
int
conn_start(struct conn *c, const struct conn_profile *p)
{
	switch (p->transport) {
	case CONN_TRANSPORT_PLAIN:
		/* The bufferevent comes when the peer first falls behind;
		 * the faults' layer uses its queue from the start. */
		if (p->behaviour == CONN_BEHAVIOUR_FAULT &&
		    conn_bev(c) == NULL) {
			log_warnx("cannot create a bufferevent");
			return -1;
		}
		break;
	case CONN_TRANSPORT_TLS:
		/* Its bufferevent reads and writes: nothing of ours does.
		 * (config.c refuses faults on a tls listener.) */
		return tls_conn_start(c);
	}
	switch (p->behaviour) {
	case CONN_BEHAVIOUR_ECHO:
		break;
	case CONN_BEHAVIOUR_FAULT:
		/* Takes over the read side and the bufferevent's
		 * callbacks. */
		return fault_attach(c, &p->fault);
	}
	/* Into the park (park.c) if its worker waits on it, or holds many
	 * connections already; else the few a worker has first get an
	 * event of their own. */
	if (c->w->nested && c->w->nconns <= ECHOD_PARK_FIRST_ABOVE) {
		if (conn_rev_assign(c, EV_READ | EV_PERSIST, conn_read_cb) ==
		    -1) {
			log_warnx("out of memory for a new connection");
			return -1;
		}
		park_watch(c->w);
	}
	if (conn_resume(c) == -1) {
		log_warn("cannot watch a new connection");
		return -1;
	}
	return 0;
}

/*
 * A zeroed struct conn: one its worker freed before if it kept any. A
 * churn of short connections so costs no malloc() and free() each, the
 * more as calloc() bypasses glibc's per-thread cache (bench/README.md).
 */
static struct conn *
conn_alloc(struct worker *w)
{
	struct conn *c = w->spare_conns;

	if (c == NULL)
		return calloc(1, sizeof(*c));
	w->spare_conns = TAILQ_NEXT(c, entry);
	w->nspare_conns--;
	memset(c, 0, sizeof(*c));
	return c;
}

/* Gives c's memory back, to its worker's spares while there is room. */
static void
conn_dealloc(struct worker *w, struct conn *c)
{
	if (w->nspare_conns >= CONN_SPARE || CONN_UNDER_VALGRIND()) {
		free(c);
		return;
	}
	TAILQ_NEXT(c, entry) = w->spare_conns;
	w->spare_conns = c;
	w->nspare_conns++;
}

/* Frees w's spare connections (its thread has ended). */
void
conn_free_spares(struct worker *w)
{
	struct conn *c;

	while ((c = w->spare_conns) != NULL) {
		w->spare_conns = TAILQ_NEXT(c, entry);
		free(c);
	}
	w->nspare_conns = 0;
}

/* Makes a connection of an admitted socket; on failure the socket is
 * released, and NULL returned. */
struct conn *
conn_new(struct worker *w, const struct accepted *a)
{
	struct conn *c;

	if ((c = conn_alloc(w)) == NULL) {
		log_warnx("out of memory for a new connection");
		goto fail;
	}
	c->w = w;
	c->fd = a->fd;
	c->slot = a->slot & 0xff;
	c->peer_counted = a->peer_counted != 0;
	c->peer_shard = a->peer_shard & 0x3ff;
	/* A Unix peer keeps only its family: its path (usually none)
	 * would not fit, and says nothing about who it is. */
	if (a->peer.ss_family == AF_UNIX)
		c->peer.sa.sa_family = AF_UNIX;
	else if (a->peerlen <= sizeof(c->peer))
		memcpy(&c->peer, &a->peer, a->peerlen);
	c->started = conn_clock_ms();
	c->last_active = conn_tick(c->started);
	TAILQ_INSERT_TAIL(&w->conns, c, entry);
	w->nconns++;
	if (conn_first_phase(c, &a->profile) == -1) {
		conn_free(c, CONN_END_ERROR);
		return NULL;
	}
	return c;
fail:
	conn_drop(w, a);
	return NULL;
}

/*
 * An accepted socket that gets no connection (out of memory): counted
 * as a connection ended in error on w, which must be the calling
 * thread's worker (the counters' only writer), then closed and released.
 * The open-connections gauge (accepted less ended) so stays right.
 */
void
conn_drop(struct worker *w, const struct accepted *a)
{
	conn_count_end(w, a->slot, CONN_END_ERROR, 0);
	admission_release(w->srv->adm, a->fd, accepted_counted_peer(a),
			  a->peer_shard);
}

/* Bytes of echo written to the socket that the peer has not yet
 * acknowledged; 0 if the kernel will not say. */
int
conn_unsent(const struct conn *c)
{
	int n = 0;

	if (ioctl(c->fd, SIOCOUTQ, &n) == -1)
		return 0;
	return n;
}

/*
 * Closes c if it is idle: nothing queued and silent for idle_ms (0: no
 * idle timeout) or, while draining, for drain_quiet_ms (longer for one
 * that has sent nothing yet: conn_drain_done()) with no input waiting.
 * Returns 1 if c was freed.
 */
int
conn_sweep(struct conn *c, uint64_t now_ms, uint64_t idle_ms,
	   uint64_t drain_quiet_ms)
{
	int draining = drain_quiet_ms > 0;
	uint64_t silent = conn_silent_ms(c, now_ms);
	int unread = 0;
	size_t queued;

	if (conn_pre(c) != NULL) {
		/* Still reading its PROXY header (it has a timeout of its
		 * own). Accepted just before a drain (an upgrade's hand-over,
		 * say), its header and data are on their way: it is served.
		 * One silent as long as a fresh connection is closed: no
		 * echo is owed yet. */
		if (!draining || !conn_drain_header_done(silent))
			return 0;
		conn_free(c, CONN_END_SHUTDOWN);
		return 1;
	}
	queued = conn_queued(c);

	if (conn_fault(c) != NULL)
		queued += fault_pending(conn_fault(c));
	if (c->eof || queued > 0)
		return 0;
	if (idle_ms > 0 && silent >= idle_ms) {
		if (conn_unsent(c) > 0) {
			/* A slow reader is taking its echo: traffic. */
			c->last_active = conn_tick(now_ms);
			return 0;
		}
		if (log_enabled(LOG_LEVEL_DEBUG)) {
			char name[ADDR_STRLEN];
			log_debug("%s: idle for %llums, closing",
				  addr_format(&c->peer.sa, name, sizeof(name)),
				  (unsigned long long)silent);
		}
		conn_free(c, CONN_END_IDLE);
		return 1;
	}
	/* A stalled connection never reads: what waits is not owed. */
	if (draining && silent >= ECHOD_DRAIN_QUIET_MS &&
	    ((conn_fault(c) != NULL && fault_stalled(conn_fault(c))) ||
	     (ioctl(c->fd, FIONREAD, &unread) == 0 &&
	      conn_drain_done(silent, drain_quiet_ms, 0, unread > 0,
			      c->bytes_in == 0)))) {
		conn_free(c, CONN_END_SHUTDOWN);
		return 1;
	}
	return 0;
}

const char *
conn_end_name(enum conn_end why)
{
	static const char *const names[CONN_NEND] = {
		[CONN_END_EOF] = "eof",	    [CONN_END_IDLE] = "idle",
		[CONN_END_ERROR] = "error", [CONN_END_SHUTDOWN] = "shutdown",
		[CONN_END_FAULT] = "fault", [CONN_END_HANDSHAKE] = "handshake",
		[CONN_END_PROXY] = "proxy", [CONN_END_REFUSED] = "refused",
	};

	return (unsigned)why < CONN_NEND ? names[why] : "?";
}

/* log_connections: one line as the connection closes; all the work is
 * here, none on the echo path but two additions. */
static void
conn_log_closed(const struct conn *c, enum conn_end why, uint64_t lived)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	char peer[ADDR_STRLEN], here[ADDR_STRLEN];
	struct log_field f[7];

	conn_peer_name(c, peer, sizeof(peer));
	if (getsockname(c->fd, (struct sockaddr *)&local, &len) == 0)
		addr_format((const struct sockaddr *)&local, here,
			    sizeof(here));
	else
		snprintf(here, sizeof(here), "?");
	f[0] = (struct log_field){"client", LOG_FIELD_STR, peer, 0};
	f[1] = (struct log_field){
		"listener", LOG_FIELD_STR,
		metrics_slot_name(c->w->srv->metrics, c->slot), 0};
	f[2] = (struct log_field){"local", LOG_FIELD_STR, here, 0};
	f[3] = (struct log_field){"duration_s", LOG_FIELD_MS_AS_S, NULL, lived};
	f[4] = (struct log_field){"bytes_in", LOG_FIELD_UINT, NULL,
				  c->bytes_in};
	f[5] = (struct log_field){"bytes_out", LOG_FIELD_UINT, NULL,
				  c->bytes_out};
	f[6] = (struct log_field){"reason", LOG_FIELD_STR, conn_end_name(why),
				  0};
	log_fields(LOG_LEVEL_INFO, f, 7, "connection closed");
}

/* A connection's end, in its worker's counters: one line's work at
 * close, none on the echo path. */
static void
conn_count_end(struct worker *w, unsigned slot, enum conn_end why,
	       uint64_t lived)
{
	counter_add(&w->wc[WC_CLOSED + why], 1);
	counter_add(&w->lc[slot][LC_CLOSED], 1);
	counter_add(&w->wc[WC_DURATION + metrics_duration_bucket(lived)], 1);
	counter_add(&w->wc[WC_DURATION_MS], lived);
}

void
conn_free(struct conn *c, enum conn_end why)
{
	uint64_t lived = conn_clock_ms() - c->started;
	int fd = c->fd;

	TAILQ_REMOVE(&c->w->conns, c, entry);
	c->w->nconns--;
	if (c->bev != NULL)
		conn_count_written(c);
	conn_count_end(c->w, c->slot, why, lived);
	if (atomic_load_explicit(&c->w->srv->log_connections,
				 memory_order_relaxed))
		conn_log_closed(c, why, lived);
	/*
	 * The socket is ours to close, at once: libevent 2.1 finalizes a
	 * bufferevent (and would close its socket) only on a later pass of
	 * the loop. admission.c closes it and only then gives back its
	 * slots, so that the counts never promise descriptors still held.
	 * bufferevent_free() has already taken the socket out of epoll, or
	 * does so on its way out of the callback we are in (harmless on a
	 * closed descriptor).
	 */
	if (c->in_preamble)
		preamble_free(c);
	else if (c->layer.fault != NULL)
		fault_free(c->layer.fault);
	if (c->tls)
		tls_conn_free(c);
	else if (c->bev != NULL)
		bufferevent_free(c->bev);
	/* Watched by the park alone (a bufferevent watches too, freed just
	 * now or not; a preamble never reads from the park), its close takes
	 * it out of there: one system call fewer per connection. */
	if (c->reading && c->parked && c->bev == NULL && park_close(c) == 0)
		fd = -1;
	else
		conn_pause(c);
	free(c->rev);
	admission_release(c->w->srv->adm, fd,
			  c->peer_counted ? &c->peer.sa : NULL, c->peer_shard);
	conn_dealloc(c->w, c);
}
