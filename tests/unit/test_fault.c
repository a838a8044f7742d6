/*
 * test_fault.c: the fault listen parameters, pure: each one read, its
 * malformed and repeated forms refused, combinations checked, the log
 * form read back, chance= rolled in the right share, and rate='s burst.
 */
#include <stdio.h>
#include <string.h>

#include "echod.h"
#include "unit.h"

static struct fault_spec
spec_of(const char *const *words, int n)
{
	struct fault_spec f;
	char err[256];
	int i;

	memset(&f, 0, sizeof(f));
	f.chance = FAULT_CHANCE_ALL;
	for (i = 0; i < n; i++)
		ck_assert_msg(
			fault_parse_param(&f, words[i], err, sizeof(err)) == 1,
			"%s: %s", words[i], err);
	return f;
}

static void
param_fails(const char *word, const char *msg)
{
	struct fault_spec f;
	char err[256] = "";

	memset(&f, 0, sizeof(f));
	ck_assert_int_eq(fault_parse_param(&f, word, err, sizeof(err)), -1);
	ck_assert_str_eq(err, msg);
}

START_TEST(test_fault_reads_each_parameter)
{
	const char *w[] = {"delay=1.5s", "rate=4k", "close_after=1m",
			   "chance=0.25"};
	struct fault_spec f = spec_of(w, 4);

	ck_assert(f.has_delay && f.has_rate && f.has_close && f.has_chance);
	ck_assert_uint_eq(f.delay_ms, 1500);
	ck_assert_uint_eq(f.rate, 4096);
	ck_assert_uint_eq(f.close_after, 1048576);
	ck_assert_uint_eq(f.chance, 250000);
	ck_assert(!f.has_reset && !f.stall);
	ck_assert(fault_active(&f));
}
END_TEST

START_TEST(test_fault_leaves_other_words)
{
	struct fault_spec f;
	char err[64];

	memset(&f, 0, sizeof(f));
	ck_assert_int_eq(fault_parse_param(&f, "tls", err, sizeof(err)), 0);
	ck_assert_int_eq(fault_parse_param(&f, "delayed=1", err, sizeof(err)),
			 0);
	ck_assert_int_eq(fault_parse_param(&f, "stal", err, sizeof(err)), 0);
	ck_assert(!fault_active(&f));
}
END_TEST

START_TEST(test_fault_chance_forms)
{
	const char *ok[][2] = {
		{"chance=1", "1000000"},  {"chance=0", "0"},
		{"chance=.5", "500000"},  {"chance=0.001", "1000"},
		{"chance=25%", "250000"}, {"chance=1.0", "1000000"},
		{"chance=0.0000001", "0"}};
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct fault_spec f = spec_of(&ok[i][0], 1);
		char want[16];

		snprintf(want, sizeof(want), "%u", f.chance);
		ck_assert_str_eq(want, ok[i][1]);
	}
	param_fails("chance=1.5", "'1.5' is more than 1 (all connections)");
	param_fails("chance=half",
		    "'half' is not a share (from 0 to 1, as 0.25, or 25%)");
	param_fails("chance=-0.5",
		    "'-0.5' is not a share (from 0 to 1, as 0.25, or 25%)");
	param_fails("chance=.", "'.' is not a share (from 0 to 1, as 0.25, or "
				"25%)");
}
END_TEST

START_TEST(test_fault_refuses_malformed_values)
{
	param_fails("delay", "'delay' needs a value: delay=TIME");
	param_fails("delay=", "'delay' needs a value: delay=TIME");
	param_fails("rate", "'rate' needs a value: rate=SIZE");
	param_fails("close_after", "'close_after' needs a value: "
				   "close_after=SIZE");
	param_fails("chance", "'chance' needs a value: chance=P");
	param_fails("stall=1", "'stall' takes no value");
	param_fails("rate=0", "'0' is out of range (1 to 1g)");
	param_fails("rate=fast", "'fast' is not a number");
	param_fails("delay=soon", "'soon' is not a number");
}
END_TEST

START_TEST(test_fault_refuses_repeats)
{
	struct fault_spec f;
	char err[128];

	memset(&f, 0, sizeof(f));
	ck_assert_int_eq(fault_parse_param(&f, "delay=1s", err, sizeof(err)),
			 1);
	ck_assert_int_eq(fault_parse_param(&f, "delay=2s", err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err, "'delay=' is given twice");
	ck_assert_int_eq(fault_parse_param(&f, "stall", err, sizeof(err)), 1);
	ck_assert_int_eq(fault_parse_param(&f, "stall", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "'stall' is given twice");
}
END_TEST

static void
check_fails(const char *const *words, int n, const char *msg)
{
	struct fault_spec f = spec_of(words, n);
	char err[256] = "";

	ck_assert_int_eq(fault_check(&f, err, sizeof(err)), -1);
	ck_assert_str_eq(err, msg);
}

START_TEST(test_fault_checks_combinations)
{
	const char *stall_delay[] = {"stall", "delay=1s"};
	const char *stall_reset[] = {"reset_after=10", "stall"};
	const char *both_ends[] = {"close_after=1", "reset_after=2"};
	const char *chance_alone[] = {"chance=0.5"};
	const char *chance_nothing[] = {"chance=0.5", "delay=0"};
	const char *fine[] = {"delay=100ms", "rate=4k", "close_after=1m",
			      "chance=0.5"};
	const char *stall_chance[] = {"stall", "chance=0.1"};
	struct fault_spec f;
	char err[256];

	check_fails(stall_delay, 2,
		    "'stall' never reads, so 'delay=' has nothing to act on");
	check_fails(stall_reset, 2,
		    "'stall' never reads, so 'reset_after=' has nothing to "
		    "act on");
	check_fails(both_ends, 2,
		    "'close_after=' and 'reset_after=' both end the "
		    "connection: choose one");
	check_fails(chance_alone, 1,
		    "'chance=' needs a fault to apply to (delay=, rate=, "
		    "close_after=, reset_after= or stall)");
	check_fails(chance_nothing, 2,
		    "'chance=' needs a fault to apply to (delay=, rate=, "
		    "close_after=, reset_after= or stall)");
	f = spec_of(fine, 4);
	ck_assert_int_eq(fault_check(&f, err, sizeof(err)), 0);
	f = spec_of(stall_chance, 2);
	ck_assert_int_eq(fault_check(&f, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_fault_active_needs_an_effect)
{
	const char *zero_delay[] = {"delay=0"};
	const char *close0[] = {"close_after=0"};
	struct fault_spec f = spec_of(zero_delay, 1);

	ck_assert(!fault_active(&f));
	f = spec_of(close0, 1);
	ck_assert(fault_active(&f));
}
END_TEST

START_TEST(test_fault_format_reads_back)
{
	const char *w[] = {"chance=0.125", "reset_after=64k", "rate=1m",
			   "delay=250ms"};
	const char *s[] = {"stall", "chance=1"};
	struct fault_spec f = spec_of(w, 4), g;
	char buf[256], copy[256], *word, *rest;

	ck_assert_str_eq(fault_format(&f, buf, sizeof(buf)),
			 "delay=250ms rate=1m reset_after=64k chance=0.125");
	/* The log's form parses back to the same faults. */
	memset(&g, 0, sizeof(g));
	snprintf(copy, sizeof(copy), "%s", buf);
	rest = copy;
	while ((word = strsep(&rest, " ")) != NULL)
		ck_assert_int_eq(fault_parse_param(&g, word, buf, sizeof(buf)),
				 1);
	ck_assert_str_eq(fault_format(&g, buf, sizeof(buf)),
			 "delay=250ms rate=1m reset_after=64k chance=0.125");
	f = spec_of(s, 2);
	ck_assert_str_eq(fault_format(&f, buf, sizeof(buf)), "stall chance=1");
}
END_TEST

START_TEST(test_fault_roll_takes_its_share)
{
	uint64_t state = 0x9e3779b97f4a7c15ULL;
	int i, hits = 0;

	for (i = 0; i < 100000; i++)
		hits += fault_roll(&state, 250000);
	/* 25,000 expected; the standard deviation is about 137. */
	ck_assert_int_gt(hits, 24000);
	ck_assert_int_lt(hits, 26000);
	for (i = 0; i < 1000; i++) {
		ck_assert_int_eq(fault_roll(&state, FAULT_CHANCE_ALL), 1);
		ck_assert_int_eq(fault_roll(&state, 0), 0);
	}
}
END_TEST

START_TEST(test_fault_rate_burst_is_a_trickle)
{
	ck_assert_uint_eq(fault_rate_burst(1), 1);
	ck_assert_uint_eq(fault_rate_burst(100), 5);	    /* 20 writes/s */
	ck_assert_uint_eq(fault_rate_burst(4096), 204);	    /* 20 writes/s */
	ck_assert_uint_eq(fault_rate_burst(1048576), 4096); /* a few KiB */
	/* Fast enough that 4k writes would need a timer finer than the
	 * loop's: 2 ms' worth per write. */
	ck_assert_uint_eq(fault_rate_burst(10485760), 20971);
}
END_TEST

static Suite *
fault_suite(void)
{
	Suite *s = suite_create("fault");
	TCase *tc = tcase_create("params");

	tcase_add_test(tc, test_fault_reads_each_parameter);
	tcase_add_test(tc, test_fault_leaves_other_words);
	tcase_add_test(tc, test_fault_chance_forms);
	tcase_add_test(tc, test_fault_refuses_malformed_values);
	tcase_add_test(tc, test_fault_refuses_repeats);
	tcase_add_test(tc, test_fault_checks_combinations);
	tcase_add_test(tc, test_fault_active_needs_an_effect);
	tcase_add_test(tc, test_fault_format_reads_back);
	tcase_add_test(tc, test_fault_roll_takes_its_share);
	tcase_add_test(tc, test_fault_rate_burst_is_a_trickle);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(fault_suite());
}
