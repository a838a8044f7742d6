/*
 * test_histogram.c: unit tests for common/histogram.c: percentiles of
 * known distributions (uniform, constant, two-point) within the 1/32
 * bucket resolution, exact small values, exact maximum and mean, the
 * resolution at every magnitude, merging, and the empty histogram.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "histogram.h"
#include "unit.h"

/* A bucket is at most 1/32 of its values wide. */
#define RESOLUTION (1.0 / 32)

/* Check's ck_assert_* for "got is within RESOLUTION of want". */
#define ck_assert_near(got, want)                                              \
	do {                                                                   \
		double g_ = (double)(got), w_ = (double)(want);                \
		ck_assert_msg(g_ >= w_ * (1 - RESOLUTION) &&                   \
				      g_ <= w_ * (1 + RESOLUTION),             \
			      "%s is %.0f, want %.0f within 1/32", #got, g_,   \
			      w_);                                             \
	} while (0)

/* Static: a histogram is 15 KiB, and the tests below need a few. */
static struct histogram h, h2, whole;

START_TEST(test_histogram_empty_reports_zero)
{
	histogram_init(&h);
	ck_assert_uint_eq(h.count, 0);
	ck_assert_uint_eq(histogram_percentile(&h, 50), 0);
	ck_assert_uint_eq(histogram_percentile(&h, 100), 0);
	ck_assert_uint_eq(histogram_max(&h), 0);
	ck_assert_double_eq(histogram_mean(&h), 0.0);
}
END_TEST

START_TEST(test_histogram_uniform_percentiles_within_resolution)
{
	uint64_t v;

	histogram_init(&h);
	for (v = 1; v <= 1000000; v++)
		histogram_record(&h, v);
	ck_assert_uint_eq(h.count, 1000000);
	ck_assert_near(histogram_percentile(&h, 50), 500000);
	ck_assert_near(histogram_percentile(&h, 90), 900000);
	ck_assert_near(histogram_percentile(&h, 99), 990000);
	ck_assert_near(histogram_percentile(&h, 99.9), 999000);
	ck_assert_near(histogram_percentile(&h, 1), 10000);
	ck_assert_uint_eq(histogram_percentile(&h, 100), 1000000);
	ck_assert_uint_eq(histogram_max(&h), 1000000);
	ck_assert_double_eq_tol(histogram_mean(&h), 500000.5, 1e-6);
}
END_TEST

START_TEST(test_histogram_constant_gives_the_value_everywhere)
{
	int i;

	histogram_init(&h);
	for (i = 0; i < 100000; i++)
		histogram_record(&h, 123457);
	/* The bucket's middle is clamped to the exact min and max. */
	ck_assert_uint_eq(histogram_percentile(&h, 0), 123457);
	ck_assert_uint_eq(histogram_percentile(&h, 50), 123457);
	ck_assert_uint_eq(histogram_percentile(&h, 99.9), 123457);
	ck_assert_uint_eq(histogram_percentile(&h, 100), 123457);
	ck_assert_double_eq(histogram_mean(&h), 123457.0);
}
END_TEST

START_TEST(test_histogram_two_point_splits_at_the_right_rank)
{
	int i;

	histogram_init(&h);
	for (i = 0; i < 900; i++)
		histogram_record(&h, 20000);
	for (i = 0; i < 100; i++)
		histogram_record(&h, 5000000);
	ck_assert_near(histogram_percentile(&h, 50), 20000);
	ck_assert_near(histogram_percentile(&h, 90), 20000); /* rank 900 */
	ck_assert_near(histogram_percentile(&h, 90.1), 5000000);
	ck_assert_near(histogram_percentile(&h, 99), 5000000);
	ck_assert_uint_eq(histogram_max(&h), 5000000);
	ck_assert_double_eq_tol(histogram_mean(&h),
				(900 * 20000.0 + 100 * 5000000.0) / 1000, 1e-6);
}
END_TEST

START_TEST(test_histogram_small_values_are_exact)
{
	uint64_t v;

	for (v = 0; v < 64; v++) {
		histogram_init(&h);
		histogram_record(&h, 0);
		histogram_record(&h, v);
		histogram_record(&h, 1000);
		ck_assert_uint_eq(histogram_percentile(&h, 50), v);
	}
}
END_TEST

/* The middle value of three is reported within 1/32 at any magnitude,
 * up to the largest value there is. */
START_TEST(test_histogram_resolution_holds_at_every_magnitude)
{
	uint64_t v, got;

	for (v = 64; v < UINT64_MAX / 3; v = v * 3 + 7) {
		histogram_init(&h);
		histogram_record(&h, 0);
		histogram_record(&h, v);
		histogram_record(&h, UINT64_MAX);
		got = histogram_percentile(&h, 50);
		ck_assert_msg(got >= v - v / 32 && got <= v + v / 32,
			      "%llu reported as %llu", (unsigned long long)v,
			      (unsigned long long)got);
	}
	ck_assert_uint_eq(histogram_percentile(&h, 100), UINT64_MAX);
}
END_TEST

START_TEST(test_histogram_max_is_exact)
{
	histogram_init(&h);
	histogram_record(&h, 10);
	histogram_record(&h, 1000003);
	histogram_record(&h, 999);
	ck_assert_uint_eq(histogram_max(&h), 1000003);
	ck_assert_uint_eq(histogram_percentile(&h, 100), 1000003);
	/* Rank 3 of 3 by percentile too: clamped to the exact maximum. */
	ck_assert_uint_le(histogram_percentile(&h, 99.9), 1000003);
	ck_assert_near(histogram_percentile(&h, 99.9), 1000003);
}
END_TEST

START_TEST(test_histogram_merge_equals_recording_everything)
{
	uint64_t v;
	unsigned i;

	histogram_init(&h);
	histogram_init(&h2);
	histogram_init(&whole);
	for (v = 1; v <= 100000; v++) {
		histogram_record(v % 3 == 0 ? &h : &h2, v * 7);
		histogram_record(&whole, v * 7);
	}
	histogram_merge(&h, &h2);
	ck_assert_uint_eq(h.count, whole.count);
	ck_assert_uint_eq(h.sum, whole.sum);
	ck_assert_uint_eq(h.min, whole.min);
	ck_assert_uint_eq(h.max, whole.max);
	for (i = 0; i < HISTOGRAM_BUCKETS; i++)
		ck_assert_uint_eq(h.buckets[i], whole.buckets[i]);
	ck_assert_uint_eq(histogram_percentile(&h, 99),
			  histogram_percentile(&whole, 99));
}
END_TEST

START_TEST(test_histogram_merge_with_empty_changes_nothing)
{
	histogram_init(&h);
	histogram_init(&h2);
	histogram_record(&h, 500);
	histogram_merge(&h, &h2); /* empty into full */
	ck_assert_uint_eq(h.count, 1);
	ck_assert_uint_eq(h.min, 500);
	ck_assert_uint_eq(histogram_percentile(&h, 50), 500);
	histogram_merge(&h2, &h); /* full into empty */
	ck_assert_uint_eq(h2.count, 1);
	ck_assert_uint_eq(h2.min, 500);
	ck_assert_uint_eq(histogram_max(&h2), 500);
}
END_TEST

static Suite *
histogram_suite(void)
{
	Suite *s = suite_create("histogram");
	TCase *tc = tcase_create("histogram");

	tcase_add_test(tc, test_histogram_empty_reports_zero);
	tcase_add_test(tc,
		       test_histogram_uniform_percentiles_within_resolution);
	tcase_add_test(tc, test_histogram_constant_gives_the_value_everywhere);
	tcase_add_test(tc, test_histogram_two_point_splits_at_the_right_rank);
	tcase_add_test(tc, test_histogram_small_values_are_exact);
	tcase_add_test(tc, test_histogram_resolution_holds_at_every_magnitude);
	tcase_add_test(tc, test_histogram_max_is_exact);
	tcase_add_test(tc, test_histogram_merge_equals_recording_everything);
	tcase_add_test(tc, test_histogram_merge_with_empty_changes_nothing);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(histogram_suite());
}
