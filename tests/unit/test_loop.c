/*
 * test_loop.c: unit tests for server/loop.c and server/timer.c, a worker
 * that waits on its own set: it finds libevent's epoll set; a timer that a
 * callback arms while the worker waits itself fires on time (libevent
 * waits while it is held); the last release hands the waiting back; what
 * a broken pass leaves active runs before the worker blocks; a libevent
 * that is always busy leaves the worker's set its turn; in a debug
 * build, a libevent timer nobody holds is caught; and the yield before a
 * sleep is made while it pays, tried now and then when it does not, and
 * never turns the wait into a spin.
 */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "echod.h"
#include "unit.h"

/* Each test's worker (setup(), teardown()): no server, no threads. */
static struct worker w;
/* Descriptors that wake libevent's callbacks below when written. */
static int kick, kick2;
static struct event *kick_ev, *kick2_ev, *other_ev;
static struct timer t, long_timer;
static uint64_t armed_at, fired_at;
static int other_ran, nested_seen;

static void
poke(int fd)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(fd, &one, sizeof(one)), sizeof(one));
}

static void
drain(int fd)
{
	uint64_t n;

	(void)!read(fd, &n, sizeof(n));
}

static void
setup(void)
{
	memset(&w, 0, sizeof(w));
	w.base = loop_base_new();
	ck_assert_ptr_nonnull(w.base);
	w.holds = &w.own_holds;
	ck_assert_int_eq(park_init(&w), 0);
	ck_assert_int_eq(loop_init(&w), 0);
	kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	kick2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(kick, 0);
	ck_assert_int_ge(kick2, 0);
	kick_ev = kick2_ev = other_ev = NULL;
	armed_at = fired_at = 0;
	other_ran = 0;
	nested_seen = -1;
}

static void
teardown(void)
{
	if (kick_ev != NULL)
		event_free(kick_ev);
	if (kick2_ev != NULL)
		event_free(kick2_ev);
	if (other_ev != NULL)
		event_free(other_ev);
	close(kick);
	close(kick2);
	loop_free(&w);
	park_free(&w);
	event_base_free(w.base);
}

static void
stop_loop(void *arg)
{
	(void)arg;
	fired_at = unit_now_ms();
	event_base_loopexit(w.base, NULL);
}

static void
arm_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	drain(fd);
	armed_at = unit_now_ms();
	ck_assert_int_eq(timer_add_ms(&t, 50), 0);
}

START_TEST(test_libevents_set_is_found)
{
	struct epoll_event ee = {.events = EPOLLIN};

	ck_assert_int_ge(w.lib_fd, 0);
	/* It is the set the base registers its descriptors in. */
	kick_ev = event_new(w.base, kick, EV_READ, arm_cb, NULL);
	ck_assert_int_eq(event_add(kick_ev, NULL), 0);
	ck_assert_int_eq(epoll_ctl(w.lib_fd, EPOLL_CTL_MOD, kick, &ee), 0);
	/* And not the park. */
	errno = 0;
	ck_assert_int_eq(epoll_ctl(w.park_fd, EPOLL_CTL_MOD, kick, &ee), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_a_timer_armed_by_a_callback_fires)
{
	timer_init(&t, w.base, w.holds, stop_loop, NULL);
	kick_ev = event_new(w.base, kick, EV_READ | EV_PERSIST, arm_cb, NULL);
	ck_assert_int_eq(event_add(kick_ev, NULL), 0);
	poke(kick);
	loop_run(&w); /* Without the hold, it would wait forever. */
	ck_assert_uint_gt(fired_at, 0);
	ck_assert_uint_ge(fired_at - armed_at, 50 - 1);
	ck_assert_uint_eq(atomic_load(w.holds), 0);
	ck_assert_int_eq(timer_pending(&t), 0);
}
END_TEST

static void
see_nested_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	drain(fd);
	nested_seen = w.nested;
	event_base_loopexit(w.base, NULL);
}

static void
release_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	drain(fd);
	ck_assert_int_eq(w.nested, 1);
	timer_del(&long_timer);
	poke(kick2);
}

START_TEST(test_the_last_release_hands_the_waiting_back)
{
	timer_init(&long_timer, w.base, w.holds, stop_loop, NULL);
	ck_assert_int_eq(timer_add_ms(&long_timer, 60000), 0);
	ck_assert_uint_eq(atomic_load(w.holds), 1);
	kick_ev =
		event_new(w.base, kick, EV_READ | EV_PERSIST, release_cb, NULL);
	kick2_ev = event_new(w.base, kick2, EV_READ | EV_PERSIST, see_nested_cb,
			     NULL);
	ck_assert_int_eq(event_add(kick_ev, NULL), 0);
	ck_assert_int_eq(event_add(kick2_ev, NULL), 0);
	poke(kick);
	loop_run(&w);
	ck_assert_int_eq(nested_seen, 0);
	ck_assert_uint_eq(fired_at, 0);
	ck_assert_uint_eq(atomic_load(w.holds), 0);
}
END_TEST

static void
other_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	other_ran = 1;
	event_base_loopexit(w.base, NULL);
}

/* A hold taken and let go within a pass breaks it, leaving other_ev
 * active: the worker must run it, not block. */
static void
break_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	drain(fd);
	ck_assert_int_eq(timer_add_ms(&t, 60000), 0);
	timer_del(&t);
	event_active(other_ev, EV_READ, 1);
}

START_TEST(test_what_a_broken_pass_leaves_runs)
{
	timer_init(&t, w.base, w.holds, stop_loop, NULL);
	other_ev = event_new(w.base, -1, 0, other_cb, NULL);
	kick_ev = event_new(w.base, kick, EV_READ | EV_PERSIST, break_cb, NULL);
	ck_assert_int_eq(event_add(kick_ev, NULL), 0);
	poke(kick);
	loop_run(&w);
	ck_assert_int_eq(other_ran, 1);
}
END_TEST

/* Always ready: counts its calls, wakes the worker on the first, and
 * stops the loop once the wake-up was taken (or after too many calls). */
static int busy_calls, wake_taken_after;

static void
busy_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pollfd p = {.fd = w.wake_fd, .events = POLLIN};

	(void)fd;
	(void)what;
	(void)arg;
	if (++busy_calls == 1) {
		loop_wake(&w);
		return;
	}
	if (poll(&p, 1, 0) == 0) {
		wake_taken_after = busy_calls;
		event_base_loopexit(w.base, NULL);
	} else if (busy_calls >= 1000) {
		event_base_loopexit(w.base, NULL);
	}
}

START_TEST(test_a_busy_libevent_does_not_starve_the_set)
{
	busy_calls = wake_taken_after = 0;
	poke(kick); /* never read: ready at every poll */
	kick_ev = event_new(w.base, kick, EV_READ | EV_PERSIST, busy_cb, NULL);
	ck_assert_int_eq(event_add(kick_ev, NULL), 0);
	loop_run(&w);
	/* One round of libevent's, then the worker's set again. */
	ck_assert_int_gt(wake_taken_after, 0);
	ck_assert_int_le(wake_taken_after, 3);
}
END_TEST

#ifndef NDEBUG
static void
nothing(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

START_TEST(test_an_unheld_timer_is_caught)
{
	struct timeval tv = {60, 0};

	other_ev = evtimer_new(w.base, nothing, NULL);
	ck_assert_int_eq(evtimer_add(other_ev, &tv), 0);
	loop_run(&w); /* aborts */
}
END_TEST
#endif

/* How many of n sleeps sp yields before, the look after each yield
 * finding something num times in every den. */
static int
yields_in(struct loop_spin *sp, int n, int num, int den)
{
	int i, yields = 0;

	for (i = 0; i < n; i++) {
		if (!loop_spin_wanted(sp))
			continue;
		loop_spin_result(sp, yields % den < num);
		yields++;
	}
	return yields;
}

START_TEST(test_the_yield_is_made_while_it_pays)
{
	struct loop_spin sp = {0};

	/* A fresh worker does not yield, but tries within 64 sleeps; a
	 * look that never finds anything is tried no more often. */
	ck_assert_int_eq(yields_in(&sp, 63, 0, 1), 0);
	ck_assert_int_eq(yields_in(&sp, 1, 0, 1), 1);
	ck_assert_int_le(yields_in(&sp, 6400, 0, 1), 100);
	ck_assert_int_ge(yields_in(&sp, 6400, 0, 1), 99);
	/* Once a try finds something, it yields at every sleep while most
	 * looks do. */
	memset(&sp, 0, sizeof(sp));
	ck_assert_int_eq(yields_in(&sp, 64, 1, 1), 1);
	ck_assert_int_eq(yields_in(&sp, 1000, 1, 1), 1000);
	ck_assert_int_eq(yields_in(&sp, 1000, 3, 4), 1000);
	/* Within 8 sleeps of the looks finding nothing, it stops. */
	ck_assert_int_le(yields_in(&sp, 1000, 0, 1), 8 + 1000 / 64);
	ck_assert_uint_eq(sp.score, 0);
	/* One look in three finding something is not enough. */
	memset(&sp, 0, sizeof(sp));
	sp.score = 8;
	ck_assert_int_lt(yields_in(&sp, 6400, 1, 3), 400);
}
END_TEST

static void *
poke_later(void *arg)
{
	struct timespec ts = {0, 300000000L};

	(void)arg;
	nanosleep(&ts, NULL);
	poke(kick);
	return NULL;
}

static void
exit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	drain(fd);
	event_base_loopexit(w.base, NULL);
}

static uint64_t
thread_cpu_ms(void)
{
	struct rusage ru;

	ck_assert_int_eq(getrusage(RUSAGE_THREAD, &ru), 0);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

START_TEST(test_a_worker_that_yields_still_sleeps)
{
	pthread_t poker;
	uint64_t cpu, start;

	kick_ev = event_new(w.base, kick, EV_READ | EV_PERSIST, exit_cb, NULL);
	ck_assert_int_eq(event_add(kick_ev, NULL), 0);
	w.spin.score = 1000; /* it yields before it sleeps */
	ck_assert_int_eq(pthread_create(&poker, NULL, poke_later, NULL), 0);
	start = unit_now_ms();
	cpu = thread_cpu_ms();
	loop_run(&w);
	cpu = thread_cpu_ms() - cpu;
	ck_assert_int_eq(pthread_join(poker, NULL), 0);
	/* 300 ms of nothing, then the poke: slept, not spun through. */
	ck_assert_uint_ge(unit_now_ms() - start, 300 - 1);
	ck_assert_uint_lt(cpu, 150);
	/* The look after its yield found nothing. */
	ck_assert_uint_lt(w.spin.score, 1000);
	ck_assert_uint_ge(w.spin.score, 990);
}
END_TEST

static Suite *
loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("loop");
	const char *fork = getenv("CK_FORK");

	tcase_add_test(tc, test_libevents_set_is_found);
	tcase_add_test(tc, test_a_timer_armed_by_a_callback_fires);
	tcase_add_test(tc, test_the_last_release_hands_the_waiting_back);
	tcase_add_test(tc, test_what_a_broken_pass_leaves_runs);
	tcase_add_test(tc, test_a_busy_libevent_does_not_starve_the_set);
	tcase_add_test(tc, test_the_yield_is_made_while_it_pays);
	tcase_add_test(tc, test_a_worker_that_yields_still_sleeps);
#ifndef NDEBUG
	/* The abort needs a test process of its own. */
	if (fork == NULL || strcmp(fork, "no") != 0)
		tcase_add_test_raise_signal(tc, test_an_unheld_timer_is_caught,
					    SIGABRT);
#else
	(void)fork;
#endif
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(loop_suite());
}
