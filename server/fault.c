/*
 * fault.c: injected faults, for testing clients: the listen parameters
 * delay=, rate=, close_after=, reset_after=, stall and chance= (parsed
 * and checked here, pure), and the connections that carry them.
 *
 * Design. A listener with faults gives its connections the behaviour
 * CONN_BEHAVIOUR_FAULT; conn_new() hands them to fault_attach(), which
 * takes over the read callback and the bufferevent's write callback. The
 * plain echo path never looks at a fault: a plain listener costs what it
 * cost before (bench/README.md, "Faults compiled in").
 *
 * A faulty connection reads into a queue of its own, `pending`, when it
 * delays or trickles, and straight into the bufferevent's output when it
 * only ends early. Reads are stamped with when they are due (arrival +
 * delay) in a small ring of marks; a timer moves what is due from
 * pending to the output, no faster than a token bucket allows when rate=
 * is set (a burst of at most fault_rate_burst() bytes, so a trickle is
 * many small writes). Moving is evbuffer_remove_buffer(): chains move,
 * bytes are not copied. Both queues count against max_buffer, so a
 * delayed or trickled connection holds back its reader exactly as a plain
 * one does, and what it holds is bounded.
 *
 * close_after= and reset_after= take at most that many bytes to echo;
 * what comes after is read and dropped. Once all of it is written, close
 * shuts the sending side (a FIN) and keeps reading and dropping until the
 * peer closes or FAULT_LINGER_MS pass, so that no reset is sent; reset
 * waits until the peer has acknowledged the echo (SIOCOUTQ), so that it
 * holds all of it, then closes with SO_LINGER 0: a RST. stall never reads
 * at all; it watches only for the peer closing (EV_CLOSED: EPOLLRDHUP).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn_int.h"
#include "parse.h"

#define FAULT_MARKS 32		/* delay: arrival stamps per connection */
#define FAULT_BURST_MAX 4096	/* rate: bytes per write, at most ... */
#define FAULT_BURST_MIN_US 2000 /* ... unless 2 ms at the rate is more */
#define FAULT_LINGER_MS                                                        \
	((uint64_t)5000) /* close_after: dropping input after FIN */
#define FAULT_RESET_POLL_MS                                                    \
	((uint64_t)5) /* reset_after: is the echo acknowledged? */
#define FAULT_RESET_WAIT_MS                                                    \
	((uint64_t)5000)		   /* ... and how long to wait for it */
#define FAULT_MAX_RATE ((uint64_t)1 << 30) /* 1g per second */
#define FAULT_MAX_AFTER ((uint64_t)1 << 50) /* close_after, reset_after */
#define FAULT_US ((uint64_t)1000000)	    /* microseconds per second */

enum fault_phase {
	FAULT_ECHOING,	 /* echoing, up to the limit */
	FAULT_LINGERING, /* close_after: FIN sent, dropping input */
	FAULT_RESETTING	 /* reset_after: waiting for the peer's ack */
};

/* Bytes read at one time, and when they are due back. */
struct fault_mark {
	uint64_t due_us;
	size_t len;
};

struct fault {
	struct conn *c;
	struct fault_spec spec;
	struct evbuffer *pending; /* read, not yet due; NULL: no delay/rate */
	struct timer timer;	  /* the next due mark, token or deadline */
	enum fault_phase phase;
	uint64_t limit;	   /* bytes to echo before the end; UINT64_MAX */
	uint64_t admitted; /* bytes read to echo, at most limit */
	uint64_t deadline_us;
	uint64_t grain_us; /* marks this close together are merged */
	uint64_t burst;	   /* rate: bytes per write at most */
	uint64_t tokens;   /* rate: byte-microseconds of credit */
	uint64_t refilled_us;
	struct fault_mark marks[FAULT_MARKS];
	unsigned mhead, mcount;
};

/* ---- The parameters: pure. ---- */

/* Reads P as a share: "0.25", "1", ".5" or "25%", into millionths. */
static int
fault_parse_chance(const char *s, uint32_t *out, char *err, size_t errlen)
{
	uint64_t whole = 0, frac = 0, scale = FAULT_CHANCE_ALL;
	const char *p = s;
	int digits = 0, percent;

	while (*p >= '0' && *p <= '9' && digits < 4) {
		whole = whole * 10 + (uint64_t)(*p++ - '0');
		digits++;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			if (scale > 1) {
				scale /= 10;
				frac += (uint64_t)(*p - '0') * scale;
			}
			p++;
			digits++;
		}
	}
	percent = *p == '%';
	if (percent)
		p++;
	if (digits == 0 || *p != '\0') {
		snprintf(err, errlen,
			 "'%s' is not a share (from 0 to 1, as 0.25, or 25%%)",
			 s);
		return -1;
	}
	whole = whole * FAULT_CHANCE_ALL + frac;
	if (percent)
		whole /= 100;
	if (whole > FAULT_CHANCE_ALL) {
		snprintf(err, errlen, "'%s' is more than 1 (all connections)",
			 s);
		return -1;
	}
	*out = (uint32_t)whole;
	return 0;
}

/*
 * Reads one listen parameter if it is a fault's. Returns 1 if it was (f
 * updated), 0 if it is not a fault's, -1 with err set if it is one but
 * is malformed or given twice.
 */
int
fault_parse_param(struct fault_spec *f, const char *word, char *err,
		  size_t errlen)
{
	static const char *const valued[] = {"delay", "rate", "close_after",
					     "reset_after", "chance"};
	const char *eq = strchr(word, '=');
	size_t nlen = eq != NULL ? (size_t)(eq - word) : strlen(word);
	const char *val = eq != NULL ? eq + 1 : NULL;
	unsigned which;
	uint64_t v;

	if (nlen == 5 && strncmp(word, "stall", 5) == 0) {
		if (val != NULL) {
			snprintf(err, errlen, "'stall' takes no value");
			return -1;
		}
		if (f->stall) {
			snprintf(err, errlen, "'stall' is given twice");
			return -1;
		}
		f->stall = 1;
		return 1;
	}
	for (which = 0; which < sizeof(valued) / sizeof(valued[0]); which++)
		if (strlen(valued[which]) == nlen &&
		    strncmp(word, valued[which], nlen) == 0)
			break;
	if (which == sizeof(valued) / sizeof(valued[0]))
		return 0;
	if (val == NULL || *val == '\0') {
		static const char *const forms[] = {"TIME", "SIZE", "SIZE",
						    "SIZE", "P"};
		snprintf(err, errlen, "'%s' needs a value: %s=%s",
			 valued[which], valued[which], forms[which]);
		return -1;
	}
	if ((which == 0 && f->has_delay) || (which == 1 && f->has_rate) ||
	    (which == 2 && f->has_close) || (which == 3 && f->has_reset) ||
	    (which == 4 && f->has_chance)) {
		snprintf(err, errlen, "'%s=' is given twice", valued[which]);
		return -1;
	}
	switch (which) {
	case 0:
		if (parse_duration(val, 0, ECHOD_MAX_DURATION_MS, &v, err,
				   errlen) == -1)
			return -1;
		f->delay_ms = v;
		f->has_delay = 1;
		return 1;
	case 1:
		if (parse_size(val, 1, FAULT_MAX_RATE, &v, err, errlen) == -1)
			return -1;
		f->rate = v;
		f->has_rate = 1;
		return 1;
	case 2:
	case 3:
		if (parse_size(val, 0, FAULT_MAX_AFTER, &v, err, errlen) == -1)
			return -1;
		if (which == 2) {
			f->close_after = v;
			f->has_close = 1;
		} else {
			f->reset_after = v;
			f->has_reset = 1;
		}
		return 1;
	default:
		if (fault_parse_chance(val, &f->chance, err, errlen) == -1)
			return -1;
		f->has_chance = 1;
		return 1;
	}
}

/* Does f inject anything? (delay=0 alone does not.) */
int
fault_active(const struct fault_spec *f)
{
	return f->stall || f->has_close || f->has_reset || f->has_rate ||
	       (f->has_delay && f->delay_ms > 0);
}

/* Are f's parameters a combination that means something? */
int
fault_check(const struct fault_spec *f, char *err, size_t errlen)
{
	const char *other = f->has_delay   ? "delay="
			    : f->has_rate  ? "rate="
			    : f->has_close ? "close_after="
			    : f->has_reset ? "reset_after="
					   : NULL;

	if (f->stall && other != NULL) {
		snprintf(err, errlen,
			 "'stall' never reads, so '%s' has nothing to act on",
			 other);
		return -1;
	}
	if (f->has_close && f->has_reset) {
		snprintf(err, errlen,
			 "'close_after=' and 'reset_after=' both end the "
			 "connection: choose one");
		return -1;
	}
	if (f->has_chance && !fault_active(f)) {
		snprintf(err, errlen,
			 "'chance=' needs a fault to apply to (delay=, rate=, "
			 "close_after=, reset_after= or stall)");
		return -1;
	}
	return 0;
}

/* The parameters as a listen line would give them, for the log. */
char *
fault_format(const struct fault_spec *f, char *buf, size_t len)
{
	char v[32];
	size_t off = 0;

	buf[0] = '\0';
#define FAULT_PUT(...)                                                         \
	do {                                                                   \
		int n_ = snprintf(buf + off, len - off, __VA_ARGS__);          \
		if (n_ > 0 && (size_t)n_ < len - off)                          \
			off += (size_t)n_;                                     \
	} while (0)
	if (f->stall)
		FAULT_PUT("%sstall", off ? " " : "");
	if (f->has_delay)
		FAULT_PUT("%sdelay=%s", off ? " " : "",
			  parse_format_duration(f->delay_ms, v, sizeof(v)));
	if (f->has_rate)
		FAULT_PUT("%srate=%s", off ? " " : "",
			  parse_format_size(f->rate, v, sizeof(v)));
	if (f->has_close)
		FAULT_PUT("%sclose_after=%s", off ? " " : "",
			  parse_format_size(f->close_after, v, sizeof(v)));
	if (f->has_reset)
		FAULT_PUT("%sreset_after=%s", off ? " " : "",
			  parse_format_size(f->reset_after, v, sizeof(v)));
	if (f->has_chance) {
		uint32_t frac = f->chance % FAULT_CHANCE_ALL;
		int digits = 6;

		while (digits > 1 && frac % 10 == 0) {
			frac /= 10;
			digits--;
		}
		if (f->chance % FAULT_CHANCE_ALL == 0)
			FAULT_PUT("%schance=%u", off ? " " : "",
				  (unsigned)(f->chance / FAULT_CHANCE_ALL));
		else
			FAULT_PUT("%schance=0.%0*u", off ? " " : "", digits,
				  (unsigned)frac);
	}
#undef FAULT_PUT
	return buf;
}

/* Does this connection get the faults? chance in millionths; *state is
 * a xorshift64* generator's, never 0. */
int
fault_roll(uint64_t *state, uint32_t chance)
{
	uint64_t x = *state;

	if (chance >= FAULT_CHANCE_ALL)
		return 1;
	if (chance == 0)
		return 0;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	x *= UINT64_C(2685821657736338717);
	return ((x >> 32) * FAULT_CHANCE_ALL >> 32) < chance;
}

/* rate=: bytes per write, at most. A twentieth of a second's worth, so a
 * trickle is smooth, up to FAULT_BURST_MAX; but at least what the rate
 * gives in FAULT_BURST_MIN_US, so that the loop's timer resolution does
 * not cap the rate. */
uint64_t
fault_rate_burst(uint64_t rate)
{
	uint64_t b = rate / 20;

	if (b > FAULT_BURST_MAX)
		b = FAULT_BURST_MAX;
	if (b < rate * FAULT_BURST_MIN_US / FAULT_US)
		b = rate * FAULT_BURST_MIN_US / FAULT_US;
	return b > 0 ? b : 1;
}

/* ---- The connections. ---- */

static uint64_t
fault_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * FAULT_US + (uint64_t)ts.tv_nsec / 1000;
}

static void
fault_arm(struct fault *f, uint64_t us)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(us / FAULT_US);
	tv.tv_usec = (suseconds_t)(us % FAULT_US);
	timer_add(&f->timer, &tv);
}

size_t
fault_pending(const struct fault *f)
{
	return f->pending != NULL ? evbuffer_get_length(f->pending) : 0;
}

int
fault_stalled(const struct fault *f)
{
	return f->spec.stall;
}

/* Echo not yet written: pending, and queued in the output. */
static size_t
fault_queued(const struct fault *f)
{
	return fault_pending(f) +
	       evbuffer_get_length(bufferevent_get_output(f->c->bev));
}

static void
fault_debug(const struct fault *f, const char *what)
{
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char name[ADDR_STRLEN];
		log_debug("%s: %s", conn_peer_name(f->c, name, sizeof(name)),
			  what);
	}
}

/* Stamps n bytes just read into pending with when they are due. A read
 * close to the last one joins its mark (made later, never earlier). */
static void
fault_mark(struct fault *f, size_t n, uint64_t now)
{
	uint64_t due = now + f->spec.delay_ms * 1000;
	struct fault_mark *last;

	if (f->mcount > 0) {
		last = &f->marks[(f->mhead + f->mcount - 1) % FAULT_MARKS];
		if (f->mcount == FAULT_MARKS ||
		    due - last->due_us <= f->grain_us) {
			last->len += n;
			last->due_us = due;
			return;
		}
	}
	last = &f->marks[(f->mhead + f->mcount) % FAULT_MARKS];
	last->due_us = due;
	last->len = n;
	f->mcount++;
}

/* rate=: the credit now, in byte-microseconds, at most one burst. */
static uint64_t
fault_refill(struct fault *f, uint64_t now)
{
	uint64_t cap = f->burst * FAULT_US;
	uint64_t dt = now - f->refilled_us;

	f->refilled_us = now;
	if (dt >= cap / f->spec.rate + 1 ||
	    f->tokens + dt * f->spec.rate >= cap)
		f->tokens = cap;
	else
		f->tokens += dt * f->spec.rate;
	return f->tokens;
}

/* Moves what is due from pending to the output, and arms the timer for
 * what comes due next. Returns 1 if c was freed (no memory to move). */
static int
fault_release(struct fault *f)
{
	struct conn *c = f->c;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint64_t now = fault_now_us();

	while (f->mcount > 0) {
		struct fault_mark *m = &f->marks[f->mhead];
		size_t n = m->len;

		if (m->due_us > now) {
			fault_arm(f, m->due_us - now);
			return 0;
		}
		if (f->spec.has_rate) {
			uint64_t need;

			if (n > f->burst)
				n = (size_t)f->burst;
			need = (uint64_t)n * FAULT_US;
			if (fault_refill(f, now) < need) {
				fault_arm(f, (need - f->tokens + f->spec.rate -
					      1) / f->spec.rate);
				return 0;
			}
			f->tokens -= need;
		}
		if (evbuffer_remove_buffer(f->pending, out, n) != (int)n) {
			conn_fail(c, "queue echo", ENOMEM);
			return 1;
		}
		c->uncounted += n;
		m->len -= n;
		if (m->len == 0) {
			f->mhead = (f->mhead + 1) % FAULT_MARKS;
			f->mcount--;
		}
	}
	return 0;
}

/* reset_after=: once the peer holds all the echo (or the wait is over),
 * abort. Returns 1 if the connection was freed. */
static int
fault_reset_check(struct fault *f)
{
	struct conn *c = f->c;
	struct linger lg = {1, 0};

	if (conn_unsent(c) > 0 && fault_now_us() < f->deadline_us) {
		fault_arm(f, FAULT_RESET_POLL_MS * 1000);
		return 0;
	}
	fault_debug(f, "reset_after reached: resetting");
	if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == -1)
		log_warn("setsockopt SO_LINGER");
	conn_free(c, CONN_END_FAULT);
	return 1;
}

/* The limit is echoed: close or reset. Returns 1 if c was freed. */
static int
fault_end(struct fault *f)
{
	struct conn *c = f->c;

	if (f->spec.has_reset) {
		f->phase = FAULT_RESETTING;
		f->deadline_us = fault_now_us() + FAULT_RESET_WAIT_MS * 1000;
		return fault_reset_check(f);
	}
	fault_debug(f, "close_after reached: closing");
	f->phase = FAULT_LINGERING;
	/* Then reads and drops until the peer closes. */
	if (c->eof || shutdown(c->fd, SHUT_WR) == -1 || conn_resume(c) == -1) {
		conn_free(c, CONN_END_FAULT);
		return 1;
	}
	fault_arm(f, FAULT_LINGER_MS * 1000);
	return 0;
}

/* Where the echo stands once something moved. Returns 1 if c was freed. */
static int
fault_progress(struct fault *f)
{
	struct conn *c = f->c;

	if (f->phase != FAULT_ECHOING || fault_queued(f) > 0)
		return 0;
	if (f->admitted == f->limit)
		return fault_end(f);
	if (c->eof) {
		conn_free(c, CONN_END_EOF);
		return 1;
	}
	return 0;
}

static void
fault_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct fault *f = conn_fault(c);
	uint64_t max = conn_max_buffer(c);
	ssize_t n;

	(void)what;
	if (f->phase != FAULT_ECHOING || f->admitted == f->limit) {
		/* Past the limit: read and drop, so that no reset is sent
		 * for unread input when the connection closes. */
		do
			n = read(fd, c->w->rbuf, ECHOD_READ_SLICE);
		while (n == -1 && errno == EINTR);
		if (n > 0)
			conn_received(c, (size_t)n);
	} else {
		size_t want = conn_read_budget(fault_queued(f), max);

		if (want == 0) {
			conn_hold_back(c, max);
			return;
		}
		if (want > f->limit - f->admitted)
			want = (size_t)(f->limit - f->admitted);
		n = conn_read_into(c,
				   f->pending != NULL
					   ? f->pending
					   : bufferevent_get_output(c->bev),
				   want);
		if (n > 0) {
			conn_received(c, (size_t)n);
			f->admitted += (uint64_t)n;
			if (f->pending != NULL) {
				fault_mark(f, (size_t)n, fault_now_us());
				if (fault_release(f))
					return;
			} else {
				c->uncounted += (uint64_t)n;
			}
			if (conn_must_hold_back(fault_queued(f), max))
				conn_hold_back(c, max);
		}
	}
	if (n > 0)
		return;
	if (n == 0) {
		c->eof = 1;
		conn_pause(c);
		if (f->phase == FAULT_LINGERING)
			conn_free(c, CONN_END_FAULT);
		else
			fault_progress(f);
		return;
	}
	if (errno != EAGAIN)
		conn_fail(c, "read", errno);
}

/* The bufferevent wrote, and its output is at or below the low mark. */
static void
fault_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct fault *f = conn_fault(c);

	(void)bev;
	conn_touch(c);
	conn_count_written(c);
	if (fault_progress(f))
		return;
	if (f->phase == FAULT_ECHOING &&
	    fault_queued(f) <= conn_resume_mark(conn_max_buffer(c)) &&
	    conn_resume(c) == -1)
		conn_fail(c, "watching the socket", errno);
}

static void
fault_timer_cb(void *arg)
{
	struct fault *f = arg;

	switch (f->phase) {
	case FAULT_ECHOING:
		if (!fault_release(f))
			fault_progress(f);
		break;
	case FAULT_LINGERING:
		fault_debug(f, "still sending after close_after: closing");
		conn_free(f->c, CONN_END_FAULT);
		break;
	case FAULT_RESETTING:
		fault_reset_check(f);
		break;
	}
}

/* stall: the peer closed or reset; nothing else wakes us. */
static void
fault_stall_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	fault_debug(conn_fault(c), "closed while stalled");
	conn_free(c, CONN_END_EOF);
}

/* Gives c the faults of spec: called once, by conn_new(), before c
 * reads. Returns -1 if it could not (c is the caller's to free). */
int
fault_attach(struct conn *c, const struct fault_spec *spec)
{
	struct fault *f;

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		log_warnx("out of memory for a connection's faults");
		return -1;
	}
	c->layer.fault = f;
	f->c = c;
	f->spec = *spec;
	f->limit = spec->has_close   ? spec->close_after
		   : spec->has_reset ? spec->reset_after
				     : UINT64_MAX;
	timer_init(&f->timer, c->w->base, c->w->holds, fault_timer_cb, f);
	if (spec->stall) {
		if (conn_rev_assign(c, EV_CLOSED | EV_PERSIST,
				    fault_stall_cb) == -1 ||
		    event_add(c->rev, NULL) == -1) {
			log_warnx("cannot watch a stalled connection");
			return -1;
		}
		c->reading = 1;
		return 0;
	}
	if (spec->has_delay || spec->has_rate) {
		if ((f->pending = evbuffer_new()) == NULL) {
			log_warnx("out of memory for a connection's faults");
			return -1;
		}
		f->grain_us = spec->delay_ms * 1000 / 64 + 1000;
	}
	if (spec->has_rate) {
		f->burst = fault_rate_burst(spec->rate);
		f->tokens = f->burst * FAULT_US;
		f->refilled_us = fault_now_us();
	}
	if (conn_rev_assign(c, EV_READ | EV_PERSIST, fault_read_cb) == -1) {
		log_warnx("out of memory for a connection's faults");
		return -1;
	}
	bufferevent_setcb(c->bev, NULL, fault_write_cb, conn_event_cb, c);
	if (f->limit == 0) /* nothing to echo: end at once, from the loop */
		timer_fire(&f->timer);
	if (conn_resume(c) == -1) {
		log_warn("cannot watch a connection");
		return -1;
	}
	return 0;
}

void
fault_free(struct fault *f)
{
	timer_del(&f->timer);
	if (f->pending != NULL)
		evbuffer_free(f->pending);
	free(f);
}
