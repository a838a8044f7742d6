/*
 * test_udp.c: udp.c's pure policies: the source ports never answered,
 * and the per-source rate table: counted per second, reset by the next,
 * and bounded when more sources come than it has room for.
 */
#include <stdlib.h>
#include <string.h>

#include "echod.h"
#include "unit.h"

#define SLOTS 64

static void *
table(void)
{
	void *t = calloc(SLOTS, udp_rate_slot_size());

	ck_assert_ptr_nonnull(t);
	return t;
}

static void
key_of(unsigned char key[17], unsigned n)
{
	memset(key, 0, 17);
	key[0] = 4;
	memcpy(key + 1, &n, sizeof(n));
}

START_TEST(test_udp_reflector_ports_are_refused)
{
	const unsigned refused[] = {0, 7, 13, 17, 19, 37};
	const unsigned fine[] = {1, 8, 53, 123, 1024, 8888, 65535};
	size_t i;

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		ck_assert_int_eq(udp_port_refused((uint16_t)refused[i]), 1);
	for (i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
		ck_assert_int_eq(udp_port_refused((uint16_t)fine[i]), 0);
}
END_TEST

START_TEST(test_udp_rate_counts_per_source_and_second)
{
	void *t = table();
	unsigned char a[17], b[17];
	int i, allowed = 0;

	key_of(a, 1);
	key_of(b, 2);
	for (i = 0; i < 25; i++)
		allowed += udp_rate_allow(t, SLOTS, a, 100, 10);
	ck_assert_int_eq(allowed, 10);
	/* Another source has its own count ... */
	ck_assert_int_eq(udp_rate_allow(t, SLOTS, b, 100, 10), 1);
	/* ... and the next second starts afresh. */
	ck_assert_int_eq(udp_rate_allow(t, SLOTS, a, 101, 10), 1);
	free(t);
}
END_TEST

START_TEST(test_udp_rate_table_stays_bounded)
{
	void *t = table();
	unsigned char k[17], heavy[17];
	unsigned n;
	int i, allowed = 0;

	/* Far more sources than slots in one second: each is answered
	 * within its limit, and nothing grows. */
	for (n = 0; n < 100000; n++) {
		key_of(k, n + 10);
		ck_assert_int_eq(udp_rate_allow(t, SLOTS, k, 7, 5), 1);
	}
	/* A source counted above the rest keeps its count while lighter
	 * ones take the other slots. */
	key_of(heavy, 5);
	for (i = 0; i < 5; i++)
		allowed += udp_rate_allow(t, SLOTS, heavy, 8, 5);
	ck_assert_int_eq(allowed, 5);
	ck_assert_int_eq(udp_rate_allow(t, SLOTS, heavy, 8, 5), 0);
	free(t);
}
END_TEST

static Suite *
udp_suite(void)
{
	Suite *s = suite_create("udp");
	TCase *tc = tcase_create("policy");

	tcase_add_test(tc, test_udp_reflector_ports_are_refused);
	tcase_add_test(tc, test_udp_rate_counts_per_source_and_second);
	tcase_add_test(tc, test_udp_rate_table_stays_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(udp_suite());
}
