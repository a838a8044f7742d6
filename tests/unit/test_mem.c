/*
 * test_mem.c: unit tests for server/mem.c's trim policy: a burst is
 * trimmed once it falls to a quarter of its peak, again as the rest of it
 * closes, and steady small traffic is never trimmed.
 */
#include <check.h>
#include <string.h>

#include "echod.h"
#include "unit.h"

/* Feeds n accepts one by one, as the listener does. */
static void
accept_up_to(struct mem_trim_policy *p, uint64_t n)
{
	for (uint64_t i = 1; i <= n; i++)
		mem_trim_note(p, i);
}

START_TEST(test_mem_trim_waits_for_a_quarter_of_the_peak)
{
	struct mem_trim_policy p;

	memset(&p, 0, sizeof(p));
	accept_up_to(&p, 10000);
	ck_assert_int_eq(mem_trim_due(&p, 10000), 0);
	ck_assert_int_eq(mem_trim_due(&p, 2501), 0);
	ck_assert_int_eq(mem_trim_due(&p, 2500), 1);
}
END_TEST

START_TEST(test_mem_trim_repeats_while_the_burst_closes)
{
	struct mem_trim_policy p;

	memset(&p, 0, sizeof(p));
	accept_up_to(&p, 10000);
	/* A slow burst: the first trim finds 732 still open ... */
	ck_assert_int_eq(mem_trim_due(&p, 732), 1);
	ck_assert_int_eq(mem_trim_due(&p, 732), 0);
	/* ... and their memory is given back once they close too. */
	ck_assert_int_eq(mem_trim_due(&p, 100), 1);
	ck_assert_int_eq(mem_trim_due(&p, 0), 1);
	/* Done: nothing open, nothing more to trim. */
	ck_assert_int_eq(mem_trim_due(&p, 0), 0);
	ck_assert_int_eq(p.pending, 0);
}
END_TEST

START_TEST(test_mem_trim_ignores_small_traffic)
{
	struct mem_trim_policy p;

	memset(&p, 0, sizeof(p));
	accept_up_to(&p, ECHOD_TRIM_MIN_PEAK - 1);
	ck_assert_int_eq(mem_trim_due(&p, 0), 0);
	ck_assert_int_eq(mem_trim_due(&p, 0), 0);
}
END_TEST

START_TEST(test_mem_trim_follows_a_new_burst)
{
	struct mem_trim_policy p;

	memset(&p, 0, sizeof(p));
	accept_up_to(&p, 4000);
	ck_assert_int_eq(mem_trim_due(&p, 0), 1);
	ck_assert_int_eq(mem_trim_due(&p, 0), 0);
	/* A second burst on the same connections count is trimmed again. */
	accept_up_to(&p, 4000);
	ck_assert_int_eq(mem_trim_due(&p, 1001), 0);
	ck_assert_int_eq(mem_trim_due(&p, 1000), 1);
	/* New accepts while pending raise the peak again. */
	mem_trim_note(&p, 3000);
	ck_assert_int_eq(mem_trim_due(&p, 751), 0);
	ck_assert_int_eq(mem_trim_due(&p, 750), 1);
}
END_TEST

static Suite *
mem_suite(void)
{
	Suite *s = suite_create("mem");
	TCase *tc = tcase_create("trim");

	tcase_add_test(tc, test_mem_trim_waits_for_a_quarter_of_the_peak);
	tcase_add_test(tc, test_mem_trim_repeats_while_the_burst_closes);
	tcase_add_test(tc, test_mem_trim_ignores_small_traffic);
	tcase_add_test(tc, test_mem_trim_follows_a_new_burst);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(mem_suite());
}
