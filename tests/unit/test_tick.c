/*
 * test_tick.c: unit tests for server/tick.c, periodic work on a timerfd:
 * a started tick runs its work once per period until stopped, a restart
 * at the same period leaves it be, and none of it is a libevent timer, so
 * the loop's epoll_wait() is never given a timeout on its account.
 */
#include <check.h>
#include <event2/event.h>
#include <sys/time.h>
#include <time.h>

#include "echod.h"
#include "unit.h"

static int runs;
/* Each test's loop and tick (setup(), teardown()). */
static struct event_base *base;
static struct tick *t;

static void
count(void *arg)
{
	(void)arg;
	runs++;
}

static void
nothing(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Runs the loop until the tick has run want times, or ms have passed;
 * returns the milliseconds that took. */
static uint64_t
loop_until(int want, uint64_t ms)
{
	uint64_t start = unit_now_ms();
	struct timeval tv = {0, 10000};
	struct event *guard = evtimer_new(base, nothing, NULL);

	while (runs < want && unit_now_ms() - start < ms) {
		/* Wakes the loop now and then to look at the clock. */
		evtimer_add(guard, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(guard);
	return unit_now_ms() - start;
}

static int
any_timer(const struct event_base *b, const struct event *ev, void *arg)
{
	(void)b;
	(void)arg;
	return event_pending(ev, EV_TIMEOUT, NULL) ? 1 : 0;
}

static void
setup(void)
{
	base = event_base_new();
	t = tick_new(base, count, NULL);
	ck_assert_ptr_nonnull(t);
	runs = 0;
}

static void
teardown(void)
{
	tick_free(t);
	event_base_free(base);
}

START_TEST(test_a_tick_runs_once_per_period)
{
	uint64_t took;

	ck_assert_uint_eq(tick_period(t), 0);
	ck_assert_int_eq(tick_start(t, 20), 0);
	ck_assert_uint_eq(tick_period(t), 20);
	took = loop_until(3, 5000);
	ck_assert_int_ge(runs, 3);
	/* Three periods at the least: a lower bound only (a loaded
	 * machine may be late, never early). */
	ck_assert_uint_ge(took, 55);
}
END_TEST

START_TEST(test_a_stopped_tick_does_not_run)
{
	ck_assert_int_eq(tick_start(t, 10), 0);
	loop_until(1, 5000);
	ck_assert_int_eq(runs, 1);
	ck_assert_int_eq(tick_stop(t), 0);
	ck_assert_uint_eq(tick_period(t), 0);
	runs = 0;
	loop_until(1, 100);
	ck_assert_int_eq(runs, 0);
	/* Period 0 is a stop too; stopping twice is no error. */
	ck_assert_int_eq(tick_start(t, 10), 0);
	ck_assert_int_eq(tick_start(t, 0), 0);
	ck_assert_int_eq(tick_stop(t), 0);
	loop_until(1, 50);
	ck_assert_int_eq(runs, 0);
}
END_TEST

START_TEST(test_a_restart_at_the_same_period_leaves_it_be)
{
	uint64_t start;

	ck_assert_int_eq(tick_start(t, 60), 0);
	/* Were each start a re-arm, a restart every few milliseconds
	 * would keep it from ever running. */
	start = unit_now_ms();
	while (runs == 0 && unit_now_ms() - start < 5000) {
		ck_assert_int_eq(tick_start(t, 60), 0);
		loop_until(1, 5);
	}
	ck_assert_int_eq(runs, 1);
	/* Another period re-arms. */
	ck_assert_int_eq(tick_start(t, 15), 0);
	ck_assert_uint_eq(tick_period(t), 15);
	loop_until(3, 5000);
	ck_assert_int_ge(runs, 3);
}
END_TEST

START_TEST(test_a_tick_is_no_libevent_timer)
{
	ck_assert_int_eq(tick_start(t, 1000), 0);
	ck_assert_int_eq(
		event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 1);
	ck_assert_int_eq(event_base_foreach_event(base, any_timer, NULL), 0);
	tick_free(t);
	t = NULL; /* teardown() frees NULL: no error either */
	ck_assert_int_eq(
		event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
}
END_TEST

static Suite *
tick_suite(void)
{
	Suite *s = suite_create("tick");
	TCase *tc = tcase_create("tick");

	tcase_add_test(tc, test_a_tick_runs_once_per_period);
	tcase_add_test(tc, test_a_stopped_tick_does_not_run);
	tcase_add_test(tc, test_a_restart_at_the_same_period_leaves_it_be);
	tcase_add_test(tc, test_a_tick_is_no_libevent_timer);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(tick_suite());
}
