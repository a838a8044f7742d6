/*
 * timer.c: one-off deadlines on a loop (a PROXY header's, a fault's
 * delay, an accept back-off, draining, an upgrade's), as libevent timers
 * that hold their loop (loop.c): while one is pending libevent waits, so
 * that it fires on time. Periodic work is tick.c's, on timerfds that
 * need no hold. Adding, firing and deleting may race between threads
 * (a listener closed by the main thread while its worker backs off):
 * the armed flag is exchanged, so each hold is let go exactly once.
 */
#include <event2/event.h>

#include "echod.h"

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timer *t = arg;
	_Atomic unsigned *holds = t->holds;
	struct event_base *base = t->base;
	int held = atomic_exchange(&t->armed, 0);

	(void)fd;
	(void)what;
	/* The callback may free t, or arm it again (a hold of its own):
	 * this one goes after, so the loop need not stop waiting between. */
	t->cb(t->arg);
	if (held)
		loop_release(holds, base);
}

void
timer_init(struct timer *t, struct event_base *base, _Atomic unsigned *holds,
	   void (*cb)(void *), void *arg)
{
	t->base = base;
	t->holds = holds;
	t->cb = cb;
	t->arg = arg;
	atomic_init(&t->armed, 0);
	evtimer_assign(&t->ev, base, timer_cb, t);
}

/* Fires once, tv from now; armed already, it is moved. */
int
timer_add(struct timer *t, const struct timeval *tv)
{
	if (!atomic_exchange(&t->armed, 1))
		loop_hold(t->holds);
	if (evtimer_add(&t->ev, tv) == -1) {
		timer_del(t);
		return -1;
	}
	return 0;
}

int
timer_add_ms(struct timer *t, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000),
			     (suseconds_t)(ms % 1000 * 1000)};

	return timer_add(t, &tv);
}

/* Fires from the loop's next pass, not from here. */
void
timer_fire(struct timer *t)
{
	if (!atomic_exchange(&t->armed, 1))
		loop_hold(t->holds);
	event_active(&t->ev, EV_TIMEOUT, 1);
}

void
timer_del(struct timer *t)
{
	event_del(&t->ev);
	if (atomic_exchange(&t->armed, 0))
		loop_release(t->holds, t->base);
}

int
timer_pending(struct timer *t)
{
	return atomic_load(&t->armed);
}
