/*
 * load_thread.c: one thread of the load mode: its event base and its
 * share of the connections, their connect phase, the wait at the gate and
 * the phases after it (warm-up, window, drain; hold: idle, echo), with the
 * tick that fails stalled connections and publishes the counters.
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
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "load_int.h"

#define LOAD_TICK_MS 100       /* stall checks, progress counters */
#define LOAD_GRACE_MS 2000     /* for echoes in flight at the end */
#define LOAD_CONNECT_BURST 128 /* connects in flight, all threads */

/* Arms t's phase timer for at_ns. libevent's clock may run behind ours
 * (CLOCK_MONOTONIC_COARSE), so the phase callback checks it is not early. */
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

void
load_thread_stop(struct load_thread *t)
{
	t->stopped = 1;
	event_base_loopbreak(t->base);
}

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
void
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

/* Every LOAD_TICK_MS: connections waiting for longer than -t without
 * progress fail; counters are published for the progress line. */
static void
load_thread_tick_cb(evutil_socket_t fd, short what, void *arg)
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
		else if (t->l->o->udp)
			load_mode_lost(c);
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
load_thread_phase_cb(evutil_socket_t fd, short what, void *arg)
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
		} else if (!c->active) {
			continue;
		}
		load_mode_start(c, now);
	}
}

void *
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

void
load_thread_free(struct load_thread *t)
{
	size_t i;

	for (i = 0; t->conns != NULL && i < t->nconns; i++)
		load_conn_free(&t->conns[i]);
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
int
load_thread_init(struct load *l, struct load_thread *t, unsigned id)
{
	const struct client_options *o = l->o;
	struct event_config *cfg;
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
	t->tick = event_new(t->base, -1, EV_PERSIST, load_thread_tick_cb, t);
	t->phase_timer = evtimer_new(t->base, load_thread_phase_cb, t);
	t->buf = malloc(LOAD_BUF_SIZE);
	t->conns = calloc(t->nconns, sizeof(*t->conns));
	if (t->tick == NULL || t->phase_timer == NULL || t->buf == NULL ||
	    t->conns == NULL)
		return -1;
	/* Not yet set up: nothing to close if setting up stops midway. */
	for (i = 0; i < t->nconns; i++)
		t->conns[i].fd = -1;
	for (i = 0; i < t->nconns; i++)
		if (load_conn_init(&t->conns[i], t, id + i * l->nthreads) == -1)
			return -1;
	return 0;
}
