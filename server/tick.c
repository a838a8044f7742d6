/*
 * tick.c: periodic work on a loop (housekeeping, the systemd watchdog, a
 * worker's park check and idle sweep), each on a timerfd of its own
 * watched like a socket, not as a libevent timer.
 *
 * A loop with a libevent timer pending passes epoll_wait() a timeout, and
 * the kernel arms and cancels a high-resolution timer for every wait that
 * blocks: one per message for a loop serving a few connections, and on a
 * virtual machine each one programs the timer hardware through the
 * hypervisor. A timerfd is armed once when its work starts and fires once
 * per period; between, the loop waits with no timeout at all, as a bare
 * epoll loop does. libevent's own timers stay for one-off deadlines (a
 * handshake, a PROXY header, a fault's delay, draining) and for the
 * admin endpoint's HTTP connections while any is open.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "echod.h"

struct tick {
	struct event *ev;
	int fd;
	uint64_t period_ms; /* 0: stopped */
	void (*cb)(void *);
	void *arg;
};

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tick *t = arg;
	uint64_t expired;

	(void)what;
	/* Nothing to read: stopped or re-armed since the loop saw it
	 * (timerfd_settime() clears the count). */
	if (read(fd, &expired, sizeof(expired)) != (ssize_t)sizeof(expired))
		return;
	t->cb(t->arg);
}

struct tick *
tick_new(struct event_base *base, void (*cb)(void *), void *arg)
{
	struct tick *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->cb = cb;
	t->arg = arg;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd == -1)
		goto fail;
	t->ev = event_new(base, t->fd, EV_READ | EV_PERSIST, tick_cb, t);
	if (t->ev == NULL || event_add(t->ev, NULL) == -1)
		goto fail;
	return t;
fail:
	tick_free(t);
	return NULL;
}

/* The first run one period from now, then one every period. A tick
 * already running at that period goes on undisturbed. */
int
tick_start(struct tick *t, uint64_t period_ms)
{
	struct itimerspec its = {{0, 0}, {0, 0}};

	if (period_ms == 0)
		return tick_stop(t);
	if (t->period_ms == period_ms)
		return 0;
	its.it_interval.tv_sec = (time_t)(period_ms / 1000);
	its.it_interval.tv_nsec = (long)(period_ms % 1000) * 1000000;
	its.it_value = its.it_interval;
	if (timerfd_settime(t->fd, 0, &its, NULL) == -1)
		return -1;
	t->period_ms = period_ms;
	return 0;
}

int
tick_stop(struct tick *t)
{
	struct itimerspec off = {{0, 0}, {0, 0}};

	if (t->period_ms == 0)
		return 0;
	if (timerfd_settime(t->fd, 0, &off, NULL) == -1)
		return -1;
	t->period_ms = 0;
	return 0;
}

uint64_t
tick_period(const struct tick *t)
{
	return t->period_ms;
}

void
tick_free(struct tick *t)
{
	if (t == NULL)
		return;
	if (t->ev != NULL)
		event_free(t->ev);
	if (t->fd != -1)
		close(t->fd);
	free(t);
}
