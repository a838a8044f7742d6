/*
 * load_mode.c: what each mode of the load test does with a connection:
 * how its traffic starts after the gate, and what follows a verified
 * echo: pingpong's next message (paced with --rate), stream's refill of
 * the window, connrate's next cycle, the end of hold's one echo.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>

#include "load_int.h"

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

/* pingpong: starts the next message, meant to go at t_send. */
static int
load_pingpong_next(struct load_conn *c, uint64_t t_send)
{
	c->t_send = t_send;
	return load_conn_send(c, c->t->l->o->size);
}

/* pingpong --rate: sends now if the intended time has come, else arms
 * the timer for it. Latency counts from the intended time. */
int
load_mode_pace(struct load_conn *c, uint64_t now)
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

/* -u pingpong: the message in flight went unanswered for -t. It counts
 * as lost, its echo is no longer expected (a late one is recognised and
 * dropped), and the next message goes. */
void
load_mode_lost(struct load_conn *c)
{
	struct load_thread *t = c->t;

	load_conn_error(c, LOAD_ERR_LOST,
			"no reply within %" PRIu64 " ms to a %" PRIu64
			"-byte datagram",
			t->l->o->timeout_ms, c->goal - c->in.pos);
	c->late_pos = c->in.pos;
	c->late_len = (size_t)(c->goal - c->in.pos);
	c->in.pos = c->goal;
	if (t->phase >= LOAD_DRAINING) {
		load_conn_retire(c);
		return;
	}
	if (t->l->o->rate != 0)
		load_mode_pace(c, load_now());
	else
		load_pingpong_next(c, load_now());
}

/* connrate: a new connection with a seed of its own; its latency counts
 * from t_start. */
static void
load_mode_cycle_at(struct load_conn *c, uint64_t t_start)
{
	uint64_t seed = (c->id + 1) << 32 | (++c->cycle & 0xffffffffu);

	payload_init(&c->out, seed);
	payload_init(&c->in, seed);
	c->goal = 0;
	c->attempts = 0;
	c->t_send = t_start;
	c->connect_start = load_now();
	load_conn_connect(c);
}

/* connrate: the next cycle, at once, or with --rate when its intended
 * time has come (else the timer is armed for it; latency then counts
 * from the intended time). */
void
load_mode_cycle(struct load_conn *c)
{
	uint64_t now = load_now(), at = c->t_next;

	if (c->t->l->o->rate == 0) {
		load_mode_cycle_at(c, now);
		return;
	}
	if (at > now) {
		c->timer_for = LOAD_TIMER_CYCLE;
		load_timer_at(c->timer, at);
		return;
	}
	c->t_next += c->t->l->interval_ns;
	load_mode_cycle_at(c, at);
}

/* After the gate: c's traffic begins (hold has none until its echo). */
void
load_mode_start(struct load_conn *c, uint64_t now)
{
	const struct load *l = c->t->l;
	const struct client_options *o = l->o;

	/* Spread the connections' starts over one interval: connection id
	 * starts id / rate seconds in (interval_ns * id / connections, less
	 * the product that could overflow). */
	if (o->rate != 0)
		c->t_next = l->start_ns + c->id * NS_PER_S / o->rate;
	if (o->mode == CLIENT_MODE_CONNRATE) {
		load_mode_cycle(c);
	} else if (o->mode == CLIENT_MODE_STREAM) {
		load_stream_fill(c);
	} else if (o->rate != 0) {
		load_mode_pace(c, now);
	} else {
		load_pingpong_next(c, now);
	}
}

/*
 * n verified bytes came back on c; what the mode does next. Returns -1
 * when c's socket was closed or replaced (stop reading it), else 0.
 */
int
load_mode_echoed(struct load_conn *c, size_t n)
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
			return load_mode_pace(c, now);
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
