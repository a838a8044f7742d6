/*
 * test_listener.c: unit tests for server/listener.c's pure decisions:
 * which accept(2) errors pause accepting, and which listen lines clash
 * once resolved (listener_check(), which binds nothing).
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "echod.h"
#include "unit.h"

START_TEST(test_listener_pauses_when_out_of_descriptors_or_memory)
{
	ck_assert_int_eq(listener_accept_error_pauses(EMFILE), 1);
	ck_assert_int_eq(listener_accept_error_pauses(ENFILE), 1);
	ck_assert_int_eq(listener_accept_error_pauses(ENOBUFS), 1);
	ck_assert_int_eq(listener_accept_error_pauses(ENOMEM), 1);
}
END_TEST

START_TEST(test_listener_does_not_pause_for_one_connection_error)
{
	ck_assert_int_eq(listener_accept_error_pauses(ECONNABORTED), 0);
	ck_assert_int_eq(listener_accept_error_pauses(EPERM), 0);
	ck_assert_int_eq(listener_accept_error_pauses(EAGAIN), 0);
}
END_TEST

/* A config from "file" with these listen lines, on lines 3, 4, ... */
static void
config_with(struct config *cfg, const char *const *lines, int n)
{
	char err[256], buf[128];
	int seen[64] = {0}, i;

	config_init(cfg);
	cfg->file = strdup("echod.conf");
	for (i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "listen = %s", lines[i]);
		ck_assert_msg(config_parse_line(cfg, buf, 3 + i, seen, err,
						sizeof(err)) == 0,
			      "%s", err);
	}
}

static int
check(const char *const *lines, int n, int *conflict, char *err, size_t errlen)
{
	struct config cfg;
	int rc;

	config_with(&cfg, lines, n);
	rc = listener_check(&cfg, conflict, err, errlen);
	config_free(&cfg);
	return rc;
}

START_TEST(test_listener_check_finds_one_address_in_two_words)
{
	const char *const lines[] = {"127.0.0.1:8888", "127.0.0.2:8888",
				     "localhost:8888"};
	char err[512];
	int conflict;

	ck_assert_int_eq(check(lines, 3, &conflict, err, sizeof(err)), -1);
	ck_assert_int_eq(conflict, 1);
	ck_assert_str_eq(err, "echod.conf:5: listen 'localhost:8888' binds "
			      "127.0.0.1:8888, which '127.0.0.1:8888' also "
			      "binds, listed at echod.conf:3");
}
END_TEST

START_TEST(test_listener_check_wildcard_clashes_with_its_port)
{
	const char *const lines[] = {"127.0.0.1:8888", "*:8888"};
	char err[512];
	int conflict;

	ck_assert_int_eq(check(lines, 2, &conflict, err, sizeof(err)), -1);
	ck_assert_int_eq(conflict, 1);
	ck_assert_str_eq(err, "echod.conf:4: listen '*:8888' binds "
			      "[::]:8888, which '127.0.0.1:8888' also binds, "
			      "listed at echod.conf:3");
}
END_TEST

START_TEST(test_listener_check_accepts_distinct_addresses)
{
	const char *const lines[] = {"127.0.0.1:8888", "127.0.0.2:8888",
				     "[::1]:8888",     "127.0.0.1:8889",
				     "127.0.0.1:0",    "localhost:0"};
	char err[512] = "";
	int conflict = -1;

	ck_assert_int_eq(check(lines, 6, &conflict, err, sizeof(err)), 0);
	ck_assert_int_eq(conflict, 0);
}
END_TEST

START_TEST(test_listener_check_udp_clashes_with_udp_only)
{
	const char *const apart[] = {"127.0.0.1:7", "127.0.0.1:7 udp",
				     "*:9 udp", "127.0.0.1:9"};
	const char *const clash[] = {"127.0.0.1:7", "*:7 udp",
				     "localhost:7 udp"};
	char err[512] = "";
	int conflict = -1;

	/* TCP and UDP on one port are two services (RFC 862 has both). */
	ck_assert_int_eq(check(apart, 4, &conflict, err, sizeof(err)), 0);
	ck_assert_int_eq(check(clash, 3, &conflict, err, sizeof(err)), -1);
	ck_assert_int_eq(conflict, 1);
	ck_assert_str_eq(err, "echod.conf:5: listen 'localhost:7 udp' binds "
			      "127.0.0.1:7, which '*:7 udp' also binds, listed "
			      "at echod.conf:4");
}
END_TEST

START_TEST(test_listener_check_names_the_command_line)
{
	struct config cfg;
	char err[512];
	int conflict;

	config_init(&cfg);
	ck_assert_int_eq(config_set(&cfg, config_key_find("listen"),
				    "127.0.0.1:7001", err, sizeof(err)),
			 0);
	ck_assert_int_eq(config_set(&cfg, config_key_find("listen"),
				    "localhost:7001", err, sizeof(err)),
			 0);
	ck_assert_int_eq(listener_check(&cfg, &conflict, err, sizeof(err)), -1);
	ck_assert_int_eq(conflict, 1);
	ck_assert_str_eq(err, "--listen: listen 'localhost:7001' binds "
			      "127.0.0.1:7001, which '127.0.0.1:7001' also "
			      "binds, listed at --listen");
	config_free(&cfg);
}
END_TEST

START_TEST(test_listener_check_reports_a_host_that_does_not_resolve)
{
	const char *const lines[] = {"no-such-host.invalid:8888"};
	char err[512] = "";
	int conflict = -1;

	ck_assert_int_eq(check(lines, 1, &conflict, err, sizeof(err)), -1);
	ck_assert_int_eq(conflict, 0);
	ck_assert_ptr_nonnull(strstr(err, "no-such-host.invalid"));
}
END_TEST

static Suite *
listener_suite(void)
{
	Suite *s = suite_create("listener");
	TCase *tc = tcase_create("accept");

	tcase_add_test(tc,
		       test_listener_pauses_when_out_of_descriptors_or_memory);
	tcase_add_test(tc,
		       test_listener_does_not_pause_for_one_connection_error);
	suite_add_tcase(s, tc);
	tc = tcase_create("check");
	tcase_add_test(tc, test_listener_check_finds_one_address_in_two_words);
	tcase_add_test(tc, test_listener_check_wildcard_clashes_with_its_port);
	tcase_add_test(tc, test_listener_check_accepts_distinct_addresses);
	tcase_add_test(tc, test_listener_check_names_the_command_line);
	tcase_add_test(tc, test_listener_check_udp_clashes_with_udp_only);
	tcase_add_test(
		tc, test_listener_check_reports_a_host_that_does_not_resolve);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(listener_suite());
}
