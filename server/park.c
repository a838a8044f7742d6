/*
 * park.c: where a worker's quiet plain connections wait to be woken.
 *
 * A connection watched by an event of its own costs that struct event (128
 * bytes) and libevent's entry for its descriptor (40 more): more than the
 * rest of the connection. An idle connection needs only to be woken. So each
 * worker keeps an epoll set of its own, the park, which is what the worker
 * waits on (loop.c). A plain connection starts there (conn_start()), and
 * its reads and echoes are made from there, as from its own event
 * (conn_parked_ready()). While libevent waits for the worker instead (a
 * libevent timer is pending), the park is one event of libevent's, and a
 * busy connection (a second read with data in the same second) gets its
 * own event and leaves the park: the loop then wakes for it directly,
 * with no extra epoll_wait() per message. The check below puts back those
 * silent for ECHOD_PARK_AFTER_MS, freeing their bufferevent too if they
 * had one and it is empty.
 *
 * The park is level-triggered like the loop: what one batch leaves wakes
 * the loop again. A socket is closed in the park, its close taking it out
 * (park_close()), except while a child forked for an upgrade may share it
 * (between fork and exec): then it leaves the park first.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <event2/event.h>

#include "conn_int.h"

/* Between ECHOD_PARK_AFTER_MS and twice that after a connection falls
 * silent, it is parked. */
#define PARK_CHECK_MS (ECHOD_PARK_AFTER_MS / 2)

/* Puts back connections silent long enough; runs while any is out. */
static void
park_check_cb(void *arg)
{
	struct worker *w = arg;
	uint64_t now = conn_clock_ms();
	struct conn *c, *next;
	int out = 0;

	for (c = TAILQ_FIRST(&w->conns); c != NULL; c = next) {
		next = conn_next(c);
		out |= conn_park_if_quiet(c, now) == 0;
	}
	if (!out)
		tick_stop(w->park_check);
}

int
park_init(struct worker *w)
{
	w->park_fd = epoll_create1(EPOLL_CLOEXEC);
	if (w->park_fd == -1)
		return -1;
	w->park_check = tick_new(w->base, park_check_cb, w);
	if (w->park_check == NULL)
		return -1;
	return 0;
}

void
park_free(struct worker *w)
{
	tick_free(w->park_check);
	if (w->park_fd >= 0)
		close(w->park_fd);
	w->park_check = NULL;
	w->park_fd = -1;
}

/* A connection is out of the park: the check runs until it is back. */
void
park_watch(struct worker *w)
{
	if (tick_start(w->park_check, PARK_CHECK_MS) == -1)
		log_warn("worker %u: cannot start the park's check", w->id);
}

int
park_add(struct conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

	if (epoll_ctl(c->w->park_fd, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		return -1;
	c->parked = 1;
	counter_add(&c->w->wc[WC_PARKED], 1);
	return 0;
}

/*
 * Closes c's socket, still in the park, without taking it out first:
 * closing a socket's last reference takes it out of every epoll set. Only
 * for a socket nothing else watches (no bufferevent, no preamble event).
 * Returns -1, the socket left open and parked, while a child forked for
 * an upgrade may hold a reference too (upgrade_close_private()).
 */
int
park_close(struct conn *c)
{
	if (upgrade_close_private(c->fd) == -1)
		return -1;
	c->parked = 0;
	c->reading = 0;
	counter_add(&c->w->wc[WC_UNPARKED], 1);
	return 0;
}

void
park_remove(struct conn *c)
{
	struct epoll_event ev = {0};

	(void)epoll_ctl(c->w->park_fd, EPOLL_CTL_DEL, c->fd, &ev);
	c->parked = 0;
	counter_add(&c->w->wc[WC_UNPARKED], 1);
}
