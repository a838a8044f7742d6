/*
 * loop.c: how a worker waits. Its event_base is libevent's, but while
 * no libevent timer is pending it is the worker, not libevent, that
 * blocks: in epoll_wait() on its own set (the park's), which holds its
 * quiet plain connections, an eventfd other threads wake it with, and
 * libevent's own epoll set. A connection that is ready is served at
 * once (conn_parked_ready()); only when libevent's set is ready does one
 * non-blocking pass of libevent run (bufferevents, TLS, UDP, the admin
 * endpoint, signals, ticks); listening sockets are in the own set too. A
 * message then costs what it costs a bare epoll loop: no libevent dispatch per
 * wake-up.
 *
 * A pass that does not block never arms libevent's next timer, and
 * libevent does not say when that is. So each loop counts the libevent
 * timers pending on it (its holds: timer.c's, a TLS handshake's
 * deadline, the admin endpoint's HTTP connections) and while any is
 * held libevent waits instead, with the own set nested in its set as one
 * event (park_ev), as it always did; the last release breaks that wait.
 * The two sets never hold each other at once: epoll refuses a cycle.
 *
 * libevent 2.1 keeps its epoll descriptor to itself: loop_init() finds
 * the set its probe is registered in. With any other backend libevent
 * always waits.
 *
 * Before it sleeps, a worker may give its CPU away once (sched_yield())
 * and look again (loop_wait()). Where it shares its CPU with other
 * runnable threads (its clients, on the same machine), what it would
 * sleep for mostly comes while they run, and is then served with no
 * wake-up: the waker's try_to_wake_up(), and often an interrupt to the
 * other CPU, a VM exit under a hypervisor, cost more than the two calls.
 * Alone on its CPU it gains nothing (sched_yield() returns at once). So
 * each worker scores how often the look after a yield found something,
 * and yields only while more did than did not (loop_spin_wanted()); else
 * it tries once in LOOP_SPIN_PROBE sleeps. It never spins: one yield,
 * then it sleeps. This is LMAX's yielding wait and Go's spinning
 * threads, bounded; what it bought is in bench/README.md.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "conn_int.h"

#define LOOP_BATCH 64 /* ready descriptors taken per wake-up */
/* The yield's score: at most this many good ones are remembered, so that
 * a change of load turns it off within as many idle spells. */
#define LOOP_SPIN_MAX 8
/* While yielding does not pay, it is tried once in this many sleeps. */
#define LOOP_SPIN_PROBE 64
/* Probing for libevent's descriptor looks no further than this. */
#define LOOP_PROBE_MAX_FD 65536

/* The own set's entries that are not connections: their tags (even
 * addresses, as a connection's; a listener's is odd, LOOP_LISTENER). */
static _Alignas(8) char loop_tag_libevent;
static _Alignas(8) char loop_tag_wake;

struct event_base *
loop_base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	/* EVENT_EPOLL_USE_CHANGELIST would defer every epoll_ctl() to
	 * libevent's next pass: an event added outside a pass must reach
	 * its set at once. */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_IGNORE_ENV);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

static void
loop_probe_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/*
 * libevent's epoll descriptor for base, or -1. An eventfd is registered
 * with base; of every descriptor, the one epoll set that can modify its
 * registration is libevent's (any other says ENOENT, or that it is no
 * epoll set). The probe never becomes readable.
 */
static int
loop_find_backend(struct event_base *base)
{
	struct epoll_event ee = {.events = EPOLLIN};
	struct event *ev = NULL;
	struct rlimit rl;
	int probe, fd, found = -1, last = LOOP_PROBE_MAX_FD;

	if (strcmp(event_base_get_method(base), "epoll") != 0)
		return -1;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)last)
		last = (int)rl.rlim_cur;
	if ((probe = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		return -1;
	if ((ev = event_new(base, probe, EV_READ, loop_probe_cb, NULL)) ==
		    NULL ||
	    event_add(ev, NULL) == -1)
		goto done;
	for (fd = 0; fd < last; fd++) {
		if (fd != probe &&
		    epoll_ctl(fd, EPOLL_CTL_MOD, probe, &ee) == 0) {
			found = fd;
			break;
		}
	}
done:
	if (ev != NULL)
		event_free(ev);
	close(probe);
	return found;
}

static void loop_park_cb(evutil_socket_t fd, short what, void *arg);

int
loop_init(struct worker *w)
{
	struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &loop_tag_wake};

	w->lib_fd = -1;
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd == -1 ||
	    epoll_ctl(w->park_fd, EPOLL_CTL_ADD, w->wake_fd, &ee) == -1)
		return -1;
	/* It starts nested; loop_run() takes over the waiting. */
	w->park_ev = event_new(w->base, w->park_fd, EV_READ | EV_PERSIST,
			       loop_park_cb, w);
	if (w->park_ev == NULL || event_add(w->park_ev, NULL) == -1)
		return -1;
	w->nested = 1;
	w->lib_fd = loop_find_backend(w->base);
	if (w->lib_fd == -1)
		log_debug("worker %u: libevent waits for it (%s)", w->id,
			  event_base_get_method(w->base));
	return 0;
}

void
loop_free(struct worker *w)
{
	if (w->park_ev != NULL)
		event_free(w->park_ev);
	if (w->wake_fd != -1)
		close(w->wake_fd);
	w->park_ev = NULL;
	w->wake_fd = -1;
}

/* Any thread: w is to look at its pokes (worker.c's). */
void
loop_wake(struct worker *w)
{
	uint64_t one = 1;

	while (write(w->wake_fd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}

void
loop_hold(_Atomic unsigned *holds)
{
	atomic_fetch_add(holds, 1);
}

/* The last release ends libevent's wait, whoever's thread it is on. */
void
loop_release(_Atomic unsigned *holds, struct event_base *base)
{
	if (atomic_fetch_sub(holds, 1) == 1)
		event_base_loopbreak(base);
}

/* A listening socket's entry: its struct listener, tagged. */
#define LOOP_LISTENER ((uintptr_t)1)

/* A listening socket the worker accepts from (listener_ready()). */
int
loop_add_listener(struct worker *w, int fd, struct listener *l)
{
	struct epoll_event ee = {.events = EPOLLIN};

	ee.data.ptr = (void *)((uintptr_t)l | LOOP_LISTENER);
	return epoll_ctl(w->park_fd, EPOLL_CTL_ADD, fd, &ee);
}

/* Any thread. What w's thread took out of the set before may still be
 * in the batch it serves: worker_sync() waits that out. */
void
loop_remove(struct worker *w, int fd)
{
	struct epoll_event ee = {0};

	(void)epoll_ctl(w->park_fd, EPOLL_CTL_DEL, fd, &ee);
}

/* Serves a batch of the own set; returns 1 if libevent's set is ready. */
static int
loop_batch(struct worker *w, const struct epoll_event *ev, int n)
{
	/* The clock is for the park's busy test, made only while libevent
	 * waits (conn_parked_ready()). */
	uint64_t now = w->nested ? conn_clock_ms() : 0;
	int i, lib = 0, wake = 0;

	/* The accepts first. A listener is readable because a client has
	 * just connected, and taken at once its connection is watched
	 * before the batch's echoes and closes are made: the peers' next
	 * moves then find the loop awake more often, and it sleeps less
	 * (in connrate a sixth fewer wake-ups, bench/README.md). An
	 * accept frees none of the batch's connections, so its pointers
	 * stay good. */
	for (i = 0; i < n; i++) {
		uintptr_t p = (uintptr_t)ev[i].data.ptr;

		if (p & LOOP_LISTENER)
			listener_ready((struct listener *)(p & ~LOOP_LISTENER));
	}
	/* Then the connections; one socket's handling frees no other, and
	 * none is accepted meanwhile. */
	for (i = 0; i < n; i++) {
		const void *p = ev[i].data.ptr;

		if (p == &loop_tag_libevent)
			lib = 1;
		else if (p == &loop_tag_wake)
			wake = 1;
		else if (!((uintptr_t)p & LOOP_LISTENER))
			conn_parked_ready(ev[i].data.ptr, now);
	}
	/* Last the pokes: a sync (worker_sync()) says that this batch is
	 * over. */
	if (wake) {
		uint64_t count;

		(void)!read(w->wake_fd, &count, sizeof(count));
		worker_woken(w);
	}
	return lib;
}

/* libevent waits: the own set is one of its events. */
static void
loop_park_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct epoll_event ev[LOOP_BATCH];
	int n;

	(void)what;
	do
		n = epoll_wait(fd, ev, LOOP_BATCH, 0);
	while (n == -1 && errno == EINTR);
	if (n > 0)
		(void)loop_batch(w, ev, n);
	/* Released since (or by another thread): wait ourselves again. */
	if (atomic_load(w->holds) == 0 && w->lib_fd != -1)
		event_base_loopbreak(w->base);
}

static int
loop_nest(struct worker *w)
{
	struct epoll_event ee = {0};

	if (w->nested)
		return 0;
	/* Out of the park first: epoll refuses a cycle. */
	(void)epoll_ctl(w->park_fd, EPOLL_CTL_DEL, w->lib_fd, &ee);
	if (event_add(w->park_ev, NULL) == -1)
		return -1;
	w->nested = 1;
	return 0;
}

static int
loop_unnest(struct worker *w)
{
	struct epoll_event ee = {.events = EPOLLIN,
				 .data.ptr = &loop_tag_libevent};

	if (!w->nested)
		return 0;
	if (event_del(w->park_ev) == -1)
		return -1;
	if (epoll_ctl(w->park_fd, EPOLL_CTL_ADD, w->lib_fd, &ee) == -1) {
		(void)event_add(w->park_ev, NULL);
		return -1;
	}
	w->nested = 0;
	return 0;
}

#ifndef NDEBUG
static int
loop_find_timer_cb(const struct event_base *base, const struct event *ev,
		   void *arg)
{
	(void)base;
	(void)arg;
	/* Under the base's lock, which event_pending() would take again. */
	return (ev->ev_evcallback.evcb_flags & EVLIST_TIMEOUT) != 0;
}

/* A libevent timer nobody holds would never fire while we wait. */
static void
loop_assert_no_timer(struct worker *w)
{
	if (event_base_foreach_event(w->base, loop_find_timer_cb, NULL) != 0) {
		log_warnx("worker %u: a libevent timer is pending unheld",
			  w->id);
		abort();
	}
}
#else
#define loop_assert_no_timer(w) ((void)0)
#endif

/* Whether to yield before this sleep: while yields pay, and now and then
 * to see whether they have begun to. */
int
loop_spin_wanted(struct loop_spin *s)
{
	if (s->score > 0)
		return 1;
	if (++s->waits < LOOP_SPIN_PROBE)
		return 0;
	s->waits = 0;
	return 1;
}

/* What the look after a yield found: something (found), or nothing. */
void
loop_spin_result(struct loop_spin *s, int found)
{
	if (found && s->score < LOOP_SPIN_MAX)
		s->score++;
	else if (!found && s->score > 0)
		s->score--;
}

/* Waits for w's own set: up to LOOP_BATCH ready entries into ev, their
 * number, or -1 (errno). Yields first when that pays (see above). */
static int
loop_wait(struct worker *w, struct epoll_event *ev)
{
	int n;

	if (loop_spin_wanted(&w->spin)) {
		n = epoll_wait(w->park_fd, ev, LOOP_BATCH, 0);
		if (n != 0)
			return n;
		(void)sched_yield();
		n = epoll_wait(w->park_fd, ev, LOOP_BATCH, 0);
		loop_spin_result(&w->spin, n > 0);
		if (n != 0)
			return n;
	}
	return epoll_wait(w->park_fd, ev, LOOP_BATCH, -1);
}

/*
 * Runs w's loop until its server's loop exits (worker 0), the worker is
 * told to stop (worker_stop_all()), or libevent fails (it has said why),
 * as event_base_loop() returns on any of those.
 */
void
loop_run(struct worker *w)
{
	struct epoll_event ev[LOOP_BATCH];
	int n;

	while (!w->stopping) {
		if (w->lib_fd == -1 || atomic_load(w->holds) > 0) {
			if (loop_nest(w) == -1) {
				log_warnx("worker %u: cannot watch its park",
					  w->id);
				break;
			}
			if (event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY) ==
				    -1 ||
			    event_base_got_exit(w->base))
				break;
			continue;
		}
		if (loop_unnest(w) == -1) {
			log_warn("worker %u: libevent waits for it from now on",
				 w->id);
			w->lib_fd = -1; /* still nested */
			continue;
		}
		/* What a pass or a connection left active runs first. */
		if (event_base_get_num_events(w->base,
					      EVENT_BASE_COUNT_ACTIVE) == 0) {
			loop_assert_no_timer(w);
			n = loop_wait(w, ev);
			if (n == -1 && errno != EINTR) {
				log_warn("worker %u: epoll_wait, libevent "
					 "waits for it from now on",
					 w->id);
				if (loop_nest(w) == -1)
					break;
				w->lib_fd = -1;
				continue;
			}
			if (n <= 0 || !loop_batch(w, ev, n))
				continue;
		}
		/* One round: with EVLOOP_NONBLOCK alone, libevent goes on
		 * while each poll finds something (a UDP flood, busy TLS
		 * connections), and the own set would starve meanwhile. */
		if (event_base_loop(w->base, EVLOOP_NONBLOCK | EVLOOP_ONCE) ==
			    -1 ||
		    event_base_got_exit(w->base))
			break;
	}
}
