/*
 * park.c: where a worker's quiet plain connections wait to be woken.
 *
 * A connection watched by an event of its own costs that struct event (128
 * bytes) and libevent's entry for its descriptor (40 more): more than the
 * rest of the connection. An idle connection needs only to be woken. So each
 * worker keeps an epoll set of its own, the park, watched by one event of
 * the worker's loop. A plain connection starts there (conn_start()), and
 * while it is quiet its reads and echoes are made from there, as from its
 * own event (conn_parked_ready()). Once busy (a second read with data in
 * the same second) it gets its own event and leaves the park: the loop then
 * wakes for it directly, with no extra epoll_wait() per message. The check
 * below puts back those silent for ECHOD_PARK_AFTER_MS, freeing their
 * bufferevent too if they had one and it is empty.
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

#define PARK_BATCH 64 /* ready sockets taken per wake-up */

/* Between ECHOD_PARK_AFTER_MS and twice that after a connection falls
 * silent, it is parked. */
#define PARK_CHECK_MS (ECHOD_PARK_AFTER_MS / 2)

static void
park_cb(evutil_socket_t fd, short what, void *arg)
{
	struct epoll_event ev[PARK_BATCH];
	uint64_t now = conn_clock_ms();
	int i, n;

	(void)what;
	(void)arg;
	do
		n = epoll_wait(fd, ev, PARK_BATCH, 0);
	while (n == -1 && errno == EINTR);
	/* One socket's handling frees no other, and no socket is accepted
	 * meanwhile: every pointer in the batch stays good. */
	for (i = 0; i < n; i++)
		conn_parked_ready(ev[i].data.ptr, now);
}

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
	w->park_ev = event_new(w->base, w->park_fd, EV_READ | EV_PERSIST,
			       park_cb, w);
	w->park_check = tick_new(w->base, park_check_cb, w);
	if (w->park_ev == NULL || w->park_check == NULL ||
	    event_add(w->park_ev, NULL) == -1)
		return -1;
	return 0;
}

void
park_free(struct worker *w)
{
	if (w->park_ev != NULL)
		event_free(w->park_ev);
	tick_free(w->park_check);
	if (w->park_fd >= 0)
		close(w->park_fd);
	w->park_ev = NULL;
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
