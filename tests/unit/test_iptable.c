/*
 * test_iptable.c: unit tests for server/iptable.c: per-address counts up
 * to a limit, slots given back, IPv4-mapped IPv6 counted as IPv4, and
 * entries dropped when their count reaches zero.
 */
#include <arpa/inet.h>
#include <check.h>
#include <string.h>

#include "echod.h"
#include "unit.h"

static struct sockaddr_storage
v4(const char *ip, int port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

static struct sockaddr_storage
v6(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	return ss;
}

#define SA(ss) ((struct sockaddr *)&(ss))

START_TEST(test_iptable_limits_each_address)
{
	struct sockaddr_storage a = v4("127.0.0.2", 1000);
	struct sockaddr_storage a2 = v4("127.0.0.2", 2000);
	struct sockaddr_storage b = v4("127.0.0.3", 1000);

	ck_assert_int_eq(iptable_acquire(SA(a), 2), 0);
	ck_assert_int_eq(iptable_acquire(SA(a2), 2), 0); /* port ignored */
	ck_assert_int_eq(iptable_acquire(SA(a), 2), -1);
	ck_assert_uint_eq(iptable_count(SA(a)), 2);
	ck_assert_int_eq(iptable_acquire(SA(b), 2), 0);
	iptable_release(SA(a));
	ck_assert_uint_eq(iptable_count(SA(a)), 1);
	ck_assert_int_eq(iptable_acquire(SA(a), 2), 0);
	iptable_release(SA(a));
	iptable_release(SA(a));
	iptable_release(SA(b));
	ck_assert_uint_eq(iptable_count(SA(a)), 0);
	ck_assert_uint_eq(iptable_count(SA(b)), 0);
}
END_TEST

START_TEST(test_iptable_v4_mapped_counts_as_v4)
{
	struct sockaddr_storage a = v4("10.1.2.3", 1);
	struct sockaddr_storage m = v6("::ffff:10.1.2.3");
	struct sockaddr_storage other = v6("::1");

	ck_assert_int_eq(iptable_acquire(SA(a), 1), 0);
	ck_assert_int_eq(iptable_acquire(SA(m), 1), -1);
	ck_assert_int_eq(iptable_acquire(SA(other), 1), 0);
	iptable_release(SA(m));
	ck_assert_uint_eq(iptable_count(SA(a)), 0);
	iptable_release(SA(other));
}
END_TEST

START_TEST(test_iptable_release_unknown_is_harmless)
{
	struct sockaddr_storage a = v4("192.0.2.1", 1);

	iptable_release(SA(a));
	ck_assert_uint_eq(iptable_count(SA(a)), 0);
	ck_assert_int_eq(iptable_acquire(SA(a), 1), 0);
	ck_assert_uint_eq(iptable_count(SA(a)), 1);
	iptable_release(SA(a));
}
END_TEST

static Suite *
iptable_suite(void)
{
	Suite *s = suite_create("iptable");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_iptable_limits_each_address);
	tcase_add_test(tc, test_iptable_v4_mapped_counts_as_v4);
	tcase_add_test(tc, test_iptable_release_unknown_is_harmless);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(iptable_suite());
}
