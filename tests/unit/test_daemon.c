/*
 * test_daemon.c: unit tests for server/daemon.c's descriptor-limit
 * policy: the soft limit is raised to what max_connections needs, never
 * past the hard limit, and never lowered.
 */
#include <check.h>
#include <stdint.h>

#include "echod.h"
#include "unit.h"

START_TEST(test_daemon_nofile_raises_soft_limit_to_what_is_needed)
{
	ck_assert_uint_eq(daemon_nofile_target(10064, 1024, 524288), 10064);
}
END_TEST

START_TEST(test_daemon_nofile_stops_at_the_hard_limit)
{
	ck_assert_uint_eq(daemon_nofile_target(10064, 1024, 4096), 4096);
}
END_TEST

START_TEST(test_daemon_nofile_never_lowers_the_soft_limit)
{
	ck_assert_uint_eq(daemon_nofile_target(100, 20000, 20000), 20000);
	ck_assert_uint_eq(daemon_nofile_target(20000, 20000, 20000), 20000);
}
END_TEST

START_TEST(test_daemon_nofile_unlimited_hard_limit)
{
	ck_assert_uint_eq(daemon_nofile_target(1000064, 1024, UINT64_MAX),
			  1000064);
}
END_TEST

static Suite *
daemon_suite(void)
{
	Suite *s = suite_create("daemon");
	TCase *tc = tcase_create("nofile");

	tcase_add_test(tc,
		       test_daemon_nofile_raises_soft_limit_to_what_is_needed);
	tcase_add_test(tc, test_daemon_nofile_stops_at_the_hard_limit);
	tcase_add_test(tc, test_daemon_nofile_never_lowers_the_soft_limit);
	tcase_add_test(tc, test_daemon_nofile_unlimited_hard_limit);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(daemon_suite());
}
