/*
 * test_worker.c: unit tests for server/worker.c's sweep period: none
 * without an idle timeout, a few sweeps per timeout within bounds, and a
 * fast one while draining.
 */
#include <check.h>

#include "echod.h"
#include "unit.h"

START_TEST(test_worker_sweeps_not_at_all_without_idle_timeout)
{
	ck_assert_uint_eq(worker_sweep_period(0, 0), 0);
}
END_TEST

START_TEST(test_worker_sweeps_four_times_per_idle_timeout)
{
	ck_assert_uint_eq(worker_sweep_period(400, 0), 100);
	ck_assert_uint_eq(worker_sweep_period(2000, 0), 500);
}
END_TEST

START_TEST(test_worker_sweep_period_is_bounded)
{
	ck_assert_uint_eq(worker_sweep_period(1, 0), 10);
	ck_assert_uint_eq(worker_sweep_period(3600000, 0), 1000);
}
END_TEST

START_TEST(test_worker_sweeps_fast_while_draining)
{
	ck_assert_uint_eq(worker_sweep_period(0, 1), ECHOD_DRAIN_CHECK_MS);
	ck_assert_uint_eq(worker_sweep_period(3600000, 1),
			  ECHOD_DRAIN_CHECK_MS);
}
END_TEST

static Suite *
worker_suite(void)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("sweep");

	tcase_add_test(tc, test_worker_sweeps_not_at_all_without_idle_timeout);
	tcase_add_test(tc, test_worker_sweeps_four_times_per_idle_timeout);
	tcase_add_test(tc, test_worker_sweep_period_is_bounded);
	tcase_add_test(tc, test_worker_sweeps_fast_while_draining);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(worker_suite());
}
