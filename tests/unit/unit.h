/*
 * unit.h: the one main every check suite under tests/unit/ shares. Each
 * test_NAME.c builds its suite in NAME_suite() and returns
 * unit_run(NAME_suite()) from main; how the tests run is left to check's
 * environment (CK_FORK, CK_VERBOSITY, CK_RUN_CASE, ...). Helpers more
 * than one suite needs live here too.
 */
#ifndef ECHOD_TEST_UNIT_H
#define ECHOD_TEST_UNIT_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

/* Runs s as check's environment says, frees it and returns main's exit
 * status. */
static inline int
unit_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* The monotonic clock in milliseconds, for tests that time a wait. */
static inline uint64_t
unit_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
