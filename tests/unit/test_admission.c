/*
 * test_admission.c: unit tests for server/admission.c: max_connections
 * and max_connections_per_ip, refusals counted, every connection counted
 * per address even with no per-IP limit (so a reload can switch one on),
 * and a release that closes the socket before giving its slots back.
 */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "echod.h"
#include "unit.h"

static struct sockaddr_storage
v4(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static struct admission *
admission_with(unsigned max, unsigned per_ip)
{
	struct admission *adm = admission_new(2);
	struct config cfg;

	ck_assert_ptr_nonnull(adm);
	config_init(&cfg);
	cfg.max_connections = max;
	cfg.max_connections_per_ip = per_ip;
	admission_configure(adm, &cfg);
	return adm;
}

/* A descriptor to admit and release. */
static int
some_fd(void)
{
	int fd = dup(STDIN_FILENO);

	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(test_admission_refuses_past_max_connections)
{
	struct admission *adm = admission_with(2, 0);
	struct sockaddr_storage a = v4("127.0.0.2");
	uint64_t n, cur, total, refused;
	int fd1 = some_fd(), fd2 = some_fd();

	ck_assert_int_eq(admission_admit(adm, 0, SA(a), &n), ADMIT_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(admission_admit(adm, 0, SA(a), &n), ADMIT_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(admission_admit(adm, 0, SA(a), &n), ADMIT_FULL);
	admission_counts(adm, &cur, &total, &refused);
	ck_assert_uint_eq(cur, 2);
	ck_assert_uint_eq(total, 2);
	ck_assert_uint_eq(refused, 1);
	admission_release(adm, fd1, SA(a), 0);
	ck_assert_int_eq(fcntl(fd1, F_GETFD), -1); /* closed */
	ck_assert_uint_eq(admission_current(adm), 1);
	ck_assert_int_eq(admission_admit(adm, 0, SA(a), &n), ADMIT_OK);
	admission_release(adm, fd2, SA(a), 0);
	admission_release(adm, some_fd(), SA(a), 0);
	ck_assert_uint_eq(admission_current(adm), 0);
	ck_assert_uint_eq(admission_peer_count(adm, SA(a)), 0);
	admission_free(adm);
}
END_TEST

START_TEST(test_admission_limits_each_address)
{
	struct admission *adm = admission_with(100, 1);
	struct sockaddr_storage a = v4("127.0.0.3"), b = v4("127.0.0.4");
	uint64_t n;

	ck_assert_int_eq(admission_admit(adm, 0, SA(a), &n), ADMIT_OK);
	ck_assert_int_eq(admission_admit(adm, 0, SA(a), &n), ADMIT_FULL_PER_IP);
	ck_assert_int_eq(admission_admit(adm, 0, SA(b), &n), ADMIT_OK);
	ck_assert_uint_eq(admission_current(adm), 2);
	admission_release(adm, some_fd(), SA(a), 0);
	admission_release(adm, some_fd(), SA(b), 0);
	admission_free(adm);
}
END_TEST

START_TEST(test_admission_counts_addresses_with_no_limit)
{
	struct admission *adm = admission_with(100, 0);
	struct sockaddr_storage a = v4("127.0.0.5");
	struct config cfg;
	uint64_t n;
	int i;

	/* Admitted by two workers: the limit sums their shards. */
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(
			admission_admit(adm, (unsigned)i % 2, SA(a), &n),
			ADMIT_OK);
	ck_assert_uint_eq(admission_peer_count(adm, SA(a)), 3);
	/* A reload sets a limit of 2: the three already open count. */
	config_init(&cfg);
	cfg.max_connections_per_ip = 2;
	admission_configure(adm, &cfg);
	ck_assert_int_eq(admission_admit(adm, 1, SA(a), &n), ADMIT_FULL_PER_IP);
	admission_release(adm, some_fd(), SA(a), 1);
	ck_assert_int_eq(admission_admit(adm, 1, SA(a), &n), ADMIT_FULL_PER_IP);
	admission_release(adm, some_fd(), SA(a), 0);
	ck_assert_int_eq(admission_admit(adm, 1, SA(a), &n), ADMIT_OK);
	admission_release(adm, some_fd(), SA(a), 0);
	admission_release(adm, some_fd(), SA(a), 1);
	ck_assert_uint_eq(admission_peer_count(adm, SA(a)), 0);
	admission_free(adm);
}
END_TEST

static Suite *
admission_suite(void)
{
	Suite *s = suite_create("admission");
	TCase *tc = tcase_create("limits");

	tcase_add_test(tc, test_admission_refuses_past_max_connections);
	tcase_add_test(tc, test_admission_limits_each_address);
	tcase_add_test(tc, test_admission_counts_addresses_with_no_limit);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(admission_suite());
}
