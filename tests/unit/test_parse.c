/*
 * test_parse.c: unit tests for common/parse.c: whole numbers, sizes,
 * durations and booleans, their exact error messages, overflow at the
 * 64-bit edge, and the formatters reading back through the parsers.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "unit.h"

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define SENTINEL ((uint64_t)0xdeadbeef)

/* Each helper checks one call's outcome; on failure, *out stays put. */
static void
uint_ok(const char *s, uint64_t min, uint64_t max, uint64_t want)
{
	char err[256] = "";
	uint64_t v = SENTINEL;

	ck_assert_msg(parse_uint(s, min, max, &v, err, sizeof(err)) == 0,
		      "parse_uint(\"%s\") failed: %s", s, err);
	ck_assert_uint_eq(v, want);
}

static void
uint_fails(const char *s, uint64_t min, uint64_t max, const char *msg)
{
	char err[256] = "";
	uint64_t v = SENTINEL;

	ck_assert_int_eq(parse_uint(s, min, max, &v, err, sizeof(err)), -1);
	ck_assert_str_eq(err, msg);
	ck_assert_uint_eq(v, SENTINEL);
}

static void
size_ok(const char *s, uint64_t min, uint64_t max, uint64_t want)
{
	char err[256] = "";
	uint64_t v = SENTINEL;

	ck_assert_msg(parse_size(s, min, max, &v, err, sizeof(err)) == 0,
		      "parse_size(\"%s\") failed: %s", s, err);
	ck_assert_uint_eq(v, want);
}

static void
size_fails(const char *s, uint64_t min, uint64_t max, const char *msg)
{
	char err[256] = "";
	uint64_t v = SENTINEL;

	ck_assert_int_eq(parse_size(s, min, max, &v, err, sizeof(err)), -1);
	ck_assert_str_eq(err, msg);
	ck_assert_uint_eq(v, SENTINEL);
}

static void
duration_ok(const char *s, uint64_t min, uint64_t max, uint64_t want)
{
	char err[256] = "";
	uint64_t v = SENTINEL;

	ck_assert_msg(parse_duration(s, min, max, &v, err, sizeof(err)) == 0,
		      "parse_duration(\"%s\") failed: %s", s, err);
	ck_assert_uint_eq(v, want);
}

static void
duration_fails(const char *s, uint64_t min, uint64_t max, const char *msg)
{
	char err[256] = "";
	uint64_t v = SENTINEL;

	ck_assert_int_eq(parse_duration(s, min, max, &v, err, sizeof(err)), -1);
	ck_assert_str_eq(err, msg);
	ck_assert_uint_eq(v, SENTINEL);
}

static void
bool_is(const char *s, int want)
{
	char err[256] = "";
	int v = -7;

	ck_assert_msg(parse_bool(s, &v, err, sizeof(err)) == 0,
		      "parse_bool(\"%s\") failed: %s", s, err);
	ck_assert_int_eq(v, want);
}

static void
bool_fails(const char *s, const char *msg)
{
	char err[256] = "";
	int v = -7;

	ck_assert_int_eq(parse_bool(s, &v, err, sizeof(err)), -1);
	ck_assert_str_eq(err, msg);
	ck_assert_int_eq(v, -7);
}

/* parse_uint */

START_TEST(test_parse_uint_accepts_zero_and_uint64_max)
{
	uint_ok("0", 0, UINT64_MAX, 0);
	uint_ok("18446744073709551615", 0, UINT64_MAX, UINT64_MAX);
	uint_ok("8888", 0, 65535, 8888);
}
END_TEST

START_TEST(test_parse_uint_accepts_leading_zeros_as_decimal)
{
	uint_ok("007", 0, 100, 7);
	uint_ok("010", 0, 100, 10);
}
END_TEST

START_TEST(test_parse_uint_rejects_overflow)
{
	uint_fails("18446744073709551616", 0, UINT64_MAX,
		   "'18446744073709551616' is too large");
	uint_fails("99999999999999999999999", 0, UINT64_MAX,
		   "'99999999999999999999999' is too large");
}
END_TEST

START_TEST(test_parse_uint_rejects_empty_string)
{
	uint_fails("", 0, 10, "'' is not a number");
}
END_TEST

START_TEST(test_parse_uint_rejects_signs)
{
	uint_fails("-1", 0, 10, "'-1' is not a number");
	uint_fails("+1", 0, 10, "'+1' is not a number");
	uint_fails("-0", 0, 10, "'-0' is not a number");
}
END_TEST

START_TEST(test_parse_uint_rejects_spaces)
{
	uint_fails(" 1", 0, 10, "' 1' is not a number");
	uint_fails("1 ", 0, 10, "'1 ' is not a whole number");
	uint_fails("1 2", 0, 100, "'1 2' is not a whole number");
	uint_fails("\t1", 0, 10, "'\t1' is not a number");
}
END_TEST

START_TEST(test_parse_uint_rejects_trailing_garbage)
{
	uint_fails("12abc", 0, 100, "'12abc' is not a whole number");
	uint_fails("1.5", 0, 100, "'1.5' is not a whole number");
	uint_fails("0x10", 0, 100, "'0x10' is not a whole number");
	uint_fails("1k", 0, 10000, "'1k' is not a whole number");
	uint_fails("abc", 0, 100, "'abc' is not a number");
}
END_TEST

START_TEST(test_parse_uint_accepts_range_bounds)
{
	uint_ok("1", 1, 1024, 1);
	uint_ok("1024", 1, 1024, 1024);
	uint_ok("5", 5, 5, 5);
}
END_TEST

START_TEST(test_parse_uint_rejects_outside_range)
{
	uint_fails("0", 1, 1024, "'0' is out of range (1 to 1024)");
	uint_fails("1025", 1, 1024, "'1025' is out of range (1 to 1024)");
	uint_fails("2000", 0, 1024, "'2000' is out of range (0 to 1024)");
	uint_fails("65536", 0, 65535, "'65536' is out of range (0 to 65535)");
}
END_TEST

/* parse_size */

START_TEST(test_parse_size_accepts_bare_bytes)
{
	size_ok("0", 0, UINT64_MAX, 0);
	size_ok("100", 0, UINT64_MAX, 100);
	size_ok("4096", 0, UINT64_MAX, 4096);
	size_ok("18446744073709551615", 0, UINT64_MAX, UINT64_MAX);
}
END_TEST

START_TEST(test_parse_size_accepts_every_suffix_in_either_case)
{
	size_ok("1k", 0, UINT64_MAX, KIB);
	size_ok("1K", 0, UINT64_MAX, KIB);
	size_ok("64k", 0, UINT64_MAX, 64 * KIB);
	size_ok("1m", 0, UINT64_MAX, MIB);
	size_ok("1M", 0, UINT64_MAX, MIB);
	size_ok("64m", 0, UINT64_MAX, 64 * MIB);
	size_ok("1g", 0, UINT64_MAX, GIB);
	size_ok("1G", 0, UINT64_MAX, GIB);
	size_ok("3g", 0, UINT64_MAX, 3 * GIB);
	size_ok("0k", 0, UINT64_MAX, 0);
}
END_TEST

START_TEST(test_parse_size_accepts_trailing_b_after_suffix)
{
	size_ok("1kb", 0, UINT64_MAX, KIB);
	size_ok("1KB", 0, UINT64_MAX, KIB);
	size_ok("2mB", 0, UINT64_MAX, 2 * MIB);
	size_ok("2Mb", 0, UINT64_MAX, 2 * MIB);
	size_ok("1gb", 0, UINT64_MAX, GIB);
	size_ok("1GB", 0, UINT64_MAX, GIB);
}
END_TEST

START_TEST(test_parse_size_rejects_unknown_suffix)
{
	size_fails("1q", 0, UINT64_MAX,
		   "'1q' is not a size (a number with k, m or g)");
	size_fails("1t", 0, UINT64_MAX,
		   "'1t' is not a size (a number with k, m or g)");
	size_fails("1kk", 0, UINT64_MAX,
		   "'1kk' is not a size (a number with k, m or g)");
	size_fails("1kbb", 0, UINT64_MAX,
		   "'1kbb' is not a size (a number with k, m or g)");
	size_fails("1.5m", 0, UINT64_MAX,
		   "'1.5m' is not a size (a number with k, m or g)");
}
END_TEST

START_TEST(test_parse_size_rejects_trailing_garbage)
{
	size_fails("1kx", 0, UINT64_MAX,
		   "'1kx' is not a size (a number with k, m or g)");
	size_fails("1mb!", 0, UINT64_MAX,
		   "'1mb!' is not a size (a number with k, m or g)");
	size_fails("12 34", 0, UINT64_MAX,
		   "'12 34' is not a size (a number with k, m or g)");
}
END_TEST

START_TEST(test_parse_size_rejects_empty_string_and_bare_suffix)
{
	size_fails("", 0, UINT64_MAX, "'' is not a number");
	size_fails("k", 0, UINT64_MAX, "'k' is not a number");
	size_fails("mb", 0, UINT64_MAX, "'mb' is not a number");
}
END_TEST

START_TEST(test_parse_size_rejects_signs)
{
	size_fails("-1", 0, UINT64_MAX, "'-1' is not a number");
	size_fails("-1k", 0, UINT64_MAX, "'-1k' is not a number");
	size_fails("+1m", 0, UINT64_MAX, "'+1m' is not a number");
}
END_TEST

START_TEST(test_parse_size_rejects_spaces)
{
	size_fails(" 1k", 0, UINT64_MAX, "' 1k' is not a number");
	size_fails("1k ", 0, UINT64_MAX,
		   "'1k ' is not a size (a number with k, m or g)");
	size_fails("1 k", 0, UINT64_MAX,
		   "'1 k' is not a size (a number with k, m or g)");
}
END_TEST

START_TEST(test_parse_size_rejects_digit_overflow)
{
	size_fails("18446744073709551616", 0, UINT64_MAX,
		   "'18446744073709551616' is too large");
	size_fails("18446744073709551616k", 0, UINT64_MAX,
		   "'18446744073709551616k' is too large");
}
END_TEST

START_TEST(test_parse_size_rejects_suffix_overflow)
{
	/* The largest multiples that fit, then one more unit each. */
	size_ok("18014398509481983k", 0, UINT64_MAX, 18014398509481983 * KIB);
	size_fails("18014398509481984k", 0, UINT64_MAX,
		   "'18014398509481984k' is too large");
	size_ok("17592186044415m", 0, UINT64_MAX, 17592186044415 * MIB);
	size_fails("17592186044416m", 0, UINT64_MAX,
		   "'17592186044416m' is too large");
	size_ok("17179869183g", 0, UINT64_MAX, 17179869183 * GIB);
	size_fails("17179869184g", 0, UINT64_MAX,
		   "'17179869184g' is too large");
	size_fails("18446744073709551615g", 0, UINT64_MAX,
		   "'18446744073709551615g' is too large");
}
END_TEST

START_TEST(test_parse_size_accepts_range_bounds)
{
	/* echod's --max-buffer range. */
	size_ok("4k", 4 * KIB, GIB, 4 * KIB);
	size_ok("4096", 4 * KIB, GIB, 4 * KIB);
	size_ok("1g", 4 * KIB, GIB, GIB);
	size_ok("1024m", 4 * KIB, GIB, GIB);
}
END_TEST

START_TEST(test_parse_size_rejects_outside_range_naming_bounds_as_sizes)
{
	size_fails("4095", 4 * KIB, GIB, "'4095' is out of range (4k to 1g)");
	size_fails("1k", 4 * KIB, GIB, "'1k' is out of range (4k to 1g)");
	size_fails("0", 4 * KIB, GIB, "'0' is out of range (4k to 1g)");
	size_fails("1025m", 4 * KIB, GIB, "'1025m' is out of range (4k to 1g)");
	size_fails("1073741825", 4 * KIB, GIB,
		   "'1073741825' is out of range (4k to 1g)");
	size_fails("5", 100, 1000, "'5' is out of range (100 to 1000)");
}
END_TEST

/* parse_duration */

START_TEST(test_parse_duration_bare_number_is_seconds)
{
	duration_ok("0", 0, UINT64_MAX, 0);
	duration_ok("10", 0, UINT64_MAX, 10000);
	duration_ok("1", 0, UINT64_MAX, 1000);
}
END_TEST

START_TEST(test_parse_duration_accepts_every_suffix)
{
	duration_ok("250ms", 0, UINT64_MAX, 250);
	duration_ok("0ms", 0, UINT64_MAX, 0);
	duration_ok("10s", 0, UINT64_MAX, 10000);
	duration_ok("2m", 0, UINT64_MAX, 120000);
	duration_ok("1h", 0, UINT64_MAX, 3600000);
	duration_ok("24h", 0, UINT64_MAX, 86400000);
}
END_TEST

START_TEST(test_parse_duration_suffix_is_case_sensitive)
{
	duration_fails("1S", 0, UINT64_MAX,
		       "'1S' is not a duration (a number with ms, s, m or h)");
	duration_fails("1MS", 0, UINT64_MAX,
		       "'1MS' is not a duration (a number with ms, s, m or h)");
	duration_fails("1H", 0, UINT64_MAX,
		       "'1H' is not a duration (a number with ms, s, m or h)");
}
END_TEST

START_TEST(test_parse_duration_rejects_unknown_suffix)
{
	duration_fails("1d", 0, UINT64_MAX,
		       "'1d' is not a duration (a number with ms, s, m or h)");
	duration_fails(
		"1sec", 0, UINT64_MAX,
		"'1sec' is not a duration (a number with ms, s, m or h)");
	duration_fails("1us", 0, UINT64_MAX,
		       "'1us' is not a duration (a number with ms, s, m or h)");
}
END_TEST

START_TEST(test_parse_duration_rejects_empty_signs_and_spaces)
{
	duration_fails("", 0, UINT64_MAX, "'' is not a number");
	duration_fails("ms", 0, UINT64_MAX, "'ms' is not a number");
	duration_fails("-1s", 0, UINT64_MAX, "'-1s' is not a number");
	duration_fails("+1s", 0, UINT64_MAX, "'+1s' is not a number");
	duration_fails(" 1s", 0, UINT64_MAX, "' 1s' is not a number");
	duration_fails("1 s", 0, UINT64_MAX,
		       "'1 s' is not a duration (a number with ms, s, m or h)");
	duration_fails("1s ", 0, UINT64_MAX,
		       "'1s ' is not a duration (a number with ms, s, m or h)");
}
END_TEST

START_TEST(test_parse_duration_rejects_overflow)
{
	duration_ok("18446744073709551615ms", 0, UINT64_MAX, UINT64_MAX);
	duration_fails("18446744073709551616ms", 0, UINT64_MAX,
		       "'18446744073709551616ms' is too large");
	/* A bare number is seconds, so UINT64_MAX of them overflows. */
	duration_fails("18446744073709551615", 0, UINT64_MAX,
		       "'18446744073709551615' is too large");
	duration_ok("18446744073709551s", 0, UINT64_MAX, 18446744073709551000u);
	duration_fails("18446744073709552s", 0, UINT64_MAX,
		       "'18446744073709552s' is too large");
	duration_ok("307445734561825m", 0, UINT64_MAX, 18446744073709500000u);
	duration_fails("307445734561826m", 0, UINT64_MAX,
		       "'307445734561826m' is too large");
	duration_ok("5124095576030h", 0, UINT64_MAX, 18446744073708000000u);
	duration_fails("5124095576031h", 0, UINT64_MAX,
		       "'5124095576031h' is too large");
}
END_TEST

START_TEST(test_parse_duration_accepts_range_bounds)
{
	duration_ok("1s", 1000, 3600000, 1000);
	duration_ok("1000ms", 1000, 3600000, 1000);
	duration_ok("1h", 1000, 3600000, 3600000);
	duration_ok("60m", 1000, 3600000, 3600000);
}
END_TEST

START_TEST(test_parse_duration_rejects_outside_range_naming_bounds)
{
	duration_fails("999ms", 1000, 3600000,
		       "'999ms' is out of range (1s to 1h)");
	duration_fails("61m", 1000, 3600000,
		       "'61m' is out of range (1s to 1h)");
	duration_fails("0", 1000, 3600000, "'0' is out of range (1s to 1h)");
	duration_fails("2m", 0, 90000, "'2m' is out of range (0 to 90s)");
	duration_fails("1s", 1, 999, "'1s' is out of range (1ms to 999ms)");
}
END_TEST

START_TEST(test_parse_duration_accepts_fraction_with_every_suffix)
{
	duration_ok("1.5s", 0, UINT64_MAX, 1500);
	duration_ok("0.25s", 0, UINT64_MAX, 250);
	duration_ok("250.0ms", 0, UINT64_MAX, 250);
	duration_ok("2.5m", 0, UINT64_MAX, 150000);
	duration_ok("0.5m", 0, UINT64_MAX, 30000);
	duration_ok("1.5h", 0, UINT64_MAX, 5400000);
	duration_ok("0.001h", 0, UINT64_MAX, 3600);
	duration_ok("0.0s", 0, UINT64_MAX, 0);
}
END_TEST

START_TEST(test_parse_duration_bare_fraction_is_seconds)
{
	duration_ok("0.5", 0, UINT64_MAX, 500);
	duration_ok("1.25", 0, UINT64_MAX, 1250);
	duration_ok("10.0", 0, UINT64_MAX, 10000);
	duration_ok("01.5", 0, UINT64_MAX, 1500);
	duration_ok("0.001", 0, UINT64_MAX, 1);
}
END_TEST

START_TEST(test_parse_duration_drops_fraction_of_a_millisecond)
{
	duration_ok("1.0005s", 0, UINT64_MAX, 1000);
	duration_ok("0.0015", 0, UINT64_MAX, 1);
	duration_ok("0.0009", 0, UINT64_MAX, 0);
	duration_ok("0.999999999s", 0, UINT64_MAX, 999);
	duration_ok("1.5ms", 0, UINT64_MAX, 1);
	duration_ok("2.999ms", 0, UINT64_MAX, 2);
	duration_ok("1.0000001h", 0, UINT64_MAX, 3600000);
}
END_TEST

START_TEST(test_parse_duration_rejects_malformed_fractions)
{
	static const char *const bad[] = {
		".5",	".5s",	"5.",	 "5.s",	   "5.ms",  "1.2.3",
		"1..5", "1.5x", "1.5S",	 "1.5 s",  "1.5s ", "1,5",
		"1.-5", "1.+5", "1.5e3", "1.5sec", "1. 5",  "1.5.s",
	};
	char want[128];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want),
			 "'%s' is not a duration (a number with ms, s, m or h)",
			 bad[i]);
		duration_fails(bad[i], 0, UINT64_MAX, want);
	}
	duration_fails("-1.5", 0, UINT64_MAX, "'-1.5' is not a number");
	duration_fails("+1.5s", 0, UINT64_MAX, "'+1.5s' is not a number");
	duration_fails(" 1.5s", 0, UINT64_MAX, "' 1.5s' is not a number");
}
END_TEST

START_TEST(test_parse_duration_takes_at_most_nine_fraction_digits)
{
	duration_ok("0.123456789s", 0, UINT64_MAX, 123);
	duration_ok("1.000000000", 0, UINT64_MAX, 1000);
	duration_fails("0.1234567891s", 0, UINT64_MAX,
		       "'0.1234567891s' is not a duration (a number with ms, "
		       "s, m or h)");
	duration_fails("1.0000000000", 0, UINT64_MAX,
		       "'1.0000000000' is not a duration (a number with ms, "
		       "s, m or h)");
}
END_TEST

START_TEST(test_parse_duration_checks_fraction_against_range)
{
	duration_ok("0.001", 1, 3600000, 1);
	duration_ok("0.999999999h", 1000, 3600000, 3599999);
	duration_ok("1.0h", 1000, 3600000, 3600000);
	duration_fails("0.0001", 1, 3600000,
		       "'0.0001' is out of range (1ms to 1h)");
	duration_fails("0.9999s", 1000, 3600000,
		       "'0.9999s' is out of range (1s to 1h)");
	duration_fails("1.0001h", 1000, 3600000,
		       "'1.0001h' is out of range (1s to 1h)");
	duration_fails("60.5m", 1000, 3600000,
		       "'60.5m' is out of range (1s to 1h)");
	/* The whole part alone is past max. */
	duration_fails("90000.5", 0, 90000000,
		       "'90000.5' is out of range (0 to 25h)");
}
END_TEST

START_TEST(test_parse_duration_rejects_fraction_overflow)
{
	duration_ok("18446744073709551.615s", 0, UINT64_MAX, UINT64_MAX);
	duration_fails("18446744073709551.616s", 0, UINT64_MAX,
		       "'18446744073709551.616s' is too large");
	duration_ok("18446744073709551615.9ms", 0, UINT64_MAX, UINT64_MAX);
	duration_fails("18446744073709551616.0ms", 0, UINT64_MAX,
		       "'18446744073709551616.0ms' is too large");
	duration_ok("5124095576030.4h", 0, UINT64_MAX, 18446744073709440000u);
	duration_fails("5124095576030.9h", 0, UINT64_MAX,
		       "'5124095576030.9h' is too large");
	duration_fails("5124095576031.0h", 0, UINT64_MAX,
		       "'5124095576031.0h' is too large");
	duration_fails("18446744073709551615.5", 0, UINT64_MAX,
		       "'18446744073709551615.5' is too large");
	duration_fails("100000000000000000000000000000000000000000.5s", 0,
		       UINT64_MAX,
		       "'100000000000000000000000000000000000000000.5s' is "
		       "too large");
}
END_TEST

/* parse_bool */

START_TEST(test_parse_bool_accepts_every_true_word_in_any_case)
{
	bool_is("yes", 1);
	bool_is("YES", 1);
	bool_is("Yes", 1);
	bool_is("on", 1);
	bool_is("oN", 1);
	bool_is("true", 1);
	bool_is("TRUE", 1);
	bool_is("1", 1);
}
END_TEST

START_TEST(test_parse_bool_accepts_every_false_word_in_any_case)
{
	bool_is("no", 0);
	bool_is("NO", 0);
	bool_is("off", 0);
	bool_is("OFF", 0);
	bool_is("false", 0);
	bool_is("False", 0);
	bool_is("0", 0);
}
END_TEST

START_TEST(test_parse_bool_rejects_anything_else)
{
	bool_fails("", "'' is not a boolean (yes or no)");
	bool_fails("y", "'y' is not a boolean (yes or no)");
	bool_fails("2", "'2' is not a boolean (yes or no)");
	bool_fails("yes ", "'yes ' is not a boolean (yes or no)");
	bool_fails(" no", "' no' is not a boolean (yes or no)");
	bool_fails("nope", "'nope' is not a boolean (yes or no)");
	bool_fails("00", "'00' is not a boolean (yes or no)");
}
END_TEST

/* parse_format_size */

static void
format_size_is(uint64_t n, const char *want)
{
	char buf[32];

	ck_assert_ptr_eq(parse_format_size(n, buf, sizeof(buf)), buf);
	ck_assert_str_eq(buf, want);
}

START_TEST(test_parse_format_size_uses_largest_exact_unit)
{
	format_size_is(0, "0");
	format_size_is(1, "1");
	format_size_is(1023, "1023");
	format_size_is(1024, "1k");
	format_size_is(1536, "1536");
	format_size_is(4096, "4k");
	format_size_is(MIB, "1m");
	format_size_is(MIB + KIB, "1025k");
	format_size_is(64 * MIB, "64m");
	format_size_is(GIB, "1g");
	format_size_is(3 * GIB, "3g");
	format_size_is(1024 * GIB, "1024g");
	format_size_is(17179869183 * GIB, "17179869183g");
	format_size_is(UINT64_MAX, "18446744073709551615");
}
END_TEST

START_TEST(test_parse_format_size_truncates_to_buffer)
{
	char buf[2] = "xx";

	parse_format_size(MIB, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1");
}
END_TEST

START_TEST(test_parse_format_size_round_trips_through_parse_size)
{
	static const uint64_t values[] = {
		0,
		1,
		100,
		1023,
		1024,
		1025,
		4096,
		65536,
		MIB - 1,
		MIB,
		MIB + 1,
		64 * MIB,
		GIB,
		3 * GIB,
		1024 * GIB,
		UINT64_MAX,
		17179869183 * GIB,
	};
	size_t i;

	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char buf[32], err[256] = "";
		uint64_t v = SENTINEL;

		parse_format_size(values[i], buf, sizeof(buf));
		ck_assert_msg(parse_size(buf, 0, UINT64_MAX, &v, err,
					 sizeof(err)) == 0,
			      "\"%s\" does not parse back: %s", buf, err);
		ck_assert_uint_eq(v, values[i]);
	}
}
END_TEST

/* parse_format_duration */

static void
format_duration_is(uint64_t ms, const char *want)
{
	char buf[32];

	ck_assert_ptr_eq(parse_format_duration(ms, buf, sizeof(buf)), buf);
	ck_assert_str_eq(buf, want);
}

START_TEST(test_parse_format_duration_uses_largest_exact_unit)
{
	format_duration_is(0, "0");
	format_duration_is(1, "1ms");
	format_duration_is(999, "999ms");
	format_duration_is(1000, "1s");
	format_duration_is(1500, "1500ms");
	format_duration_is(60000, "1m");
	format_duration_is(90000, "90s");
	format_duration_is(3600000, "1h");
	format_duration_is(5400000, "90m");
	format_duration_is(86400000, "24h");
	format_duration_is(UINT64_MAX, "18446744073709551615ms");
}
END_TEST

START_TEST(test_parse_format_duration_round_trips_through_parse_duration)
{
	static const uint64_t values[] = {
		0,     1,     250,     999,	1000,	  1500,
		60000, 90000, 3600000, 5400000, 86400000, UINT64_MAX,
	};
	size_t i;

	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char buf[32], err[256] = "";
		uint64_t v = SENTINEL;

		parse_format_duration(values[i], buf, sizeof(buf));
		ck_assert_msg(parse_duration(buf, 0, UINT64_MAX, &v, err,
					     sizeof(err)) == 0,
			      "\"%s\" does not parse back: %s", buf, err);
		ck_assert_uint_eq(v, values[i]);
	}
}
END_TEST

static Suite *
parse_suite(void)
{
	Suite *s = suite_create("parse");
	TCase *tc;

	tc = tcase_create("uint");
	tcase_add_test(tc, test_parse_uint_accepts_zero_and_uint64_max);
	tcase_add_test(tc, test_parse_uint_accepts_leading_zeros_as_decimal);
	tcase_add_test(tc, test_parse_uint_rejects_overflow);
	tcase_add_test(tc, test_parse_uint_rejects_empty_string);
	tcase_add_test(tc, test_parse_uint_rejects_signs);
	tcase_add_test(tc, test_parse_uint_rejects_spaces);
	tcase_add_test(tc, test_parse_uint_rejects_trailing_garbage);
	tcase_add_test(tc, test_parse_uint_accepts_range_bounds);
	tcase_add_test(tc, test_parse_uint_rejects_outside_range);
	suite_add_tcase(s, tc);

	tc = tcase_create("size");
	tcase_add_test(tc, test_parse_size_accepts_bare_bytes);
	tcase_add_test(tc, test_parse_size_accepts_every_suffix_in_either_case);
	tcase_add_test(tc, test_parse_size_accepts_trailing_b_after_suffix);
	tcase_add_test(tc, test_parse_size_rejects_unknown_suffix);
	tcase_add_test(tc, test_parse_size_rejects_trailing_garbage);
	tcase_add_test(tc,
		       test_parse_size_rejects_empty_string_and_bare_suffix);
	tcase_add_test(tc, test_parse_size_rejects_signs);
	tcase_add_test(tc, test_parse_size_rejects_spaces);
	tcase_add_test(tc, test_parse_size_rejects_digit_overflow);
	tcase_add_test(tc, test_parse_size_rejects_suffix_overflow);
	tcase_add_test(tc, test_parse_size_accepts_range_bounds);
	tcase_add_test(
		tc,
		test_parse_size_rejects_outside_range_naming_bounds_as_sizes);
	suite_add_tcase(s, tc);

	tc = tcase_create("duration");
	tcase_add_test(tc, test_parse_duration_bare_number_is_seconds);
	tcase_add_test(tc, test_parse_duration_accepts_every_suffix);
	tcase_add_test(tc, test_parse_duration_suffix_is_case_sensitive);
	tcase_add_test(tc, test_parse_duration_rejects_unknown_suffix);
	tcase_add_test(tc, test_parse_duration_rejects_empty_signs_and_spaces);
	tcase_add_test(tc, test_parse_duration_rejects_overflow);
	tcase_add_test(tc, test_parse_duration_accepts_range_bounds);
	tcase_add_test(tc,
		       test_parse_duration_rejects_outside_range_naming_bounds);
	tcase_add_test(tc,
		       test_parse_duration_accepts_fraction_with_every_suffix);
	tcase_add_test(tc, test_parse_duration_bare_fraction_is_seconds);
	tcase_add_test(tc, test_parse_duration_drops_fraction_of_a_millisecond);
	tcase_add_test(tc, test_parse_duration_rejects_malformed_fractions);
	tcase_add_test(tc,
		       test_parse_duration_takes_at_most_nine_fraction_digits);
	tcase_add_test(tc, test_parse_duration_checks_fraction_against_range);
	tcase_add_test(tc, test_parse_duration_rejects_fraction_overflow);
	suite_add_tcase(s, tc);

	tc = tcase_create("bool");
	tcase_add_test(tc, test_parse_bool_accepts_every_true_word_in_any_case);
	tcase_add_test(tc,
		       test_parse_bool_accepts_every_false_word_in_any_case);
	tcase_add_test(tc, test_parse_bool_rejects_anything_else);
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_test(tc, test_parse_format_size_uses_largest_exact_unit);
	tcase_add_test(tc, test_parse_format_size_truncates_to_buffer);
	tcase_add_test(tc,
		       test_parse_format_size_round_trips_through_parse_size);
	tcase_add_test(tc, test_parse_format_duration_uses_largest_exact_unit);
	tcase_add_test(
		tc,
		test_parse_format_duration_round_trips_through_parse_duration);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return unit_run(parse_suite());
}
