/*
 * test_tls.c: tls.c's pure parts: tls_protocols read into a version
 * range (consecutive versions only, TLSv1.2 and TLSv1.3), the path check
 * of the certificate keys, and which configurations want TLS at all.
 */
#include <openssl/ssl.h>
#include <string.h>

#include "echod.h"
#include "unit.h"

START_TEST(test_tls_protocols_forms)
{
	char err[128];
	int min = 0, max = 0;

	ck_assert_int_eq(
		tls_protocols_parse("TLSv1.2 TLSv1.3", &min, &max, err, 128),
		0);
	ck_assert_int_eq(min, TLS1_2_VERSION);
	ck_assert_int_eq(max, TLS1_3_VERSION);
	ck_assert_int_eq(
		tls_protocols_parse("TLSv1.3,TLSv1.2", &min, &max, err, 128),
		0);
	ck_assert_int_eq(min, TLS1_2_VERSION);
	ck_assert_int_eq(max, TLS1_3_VERSION);
	ck_assert_int_eq(
		tls_protocols_parse("  TLSv1.3 ", &min, &max, err, 128), 0);
	ck_assert_int_eq(min, TLS1_3_VERSION);
	ck_assert_int_eq(max, TLS1_3_VERSION);
}
END_TEST

START_TEST(test_tls_protocols_refused)
{
	char err[128];
	int min, max;

	ck_assert_int_eq(tls_protocols_parse("TLSv1.1 TLSv1.2", &min, &max, err,
					     sizeof(err)),
			 -1);
	ck_assert_str_eq(
		err, "names 'TLSv1.1': the versions are TLSv1.2 and TLSv1.3");
	ck_assert_int_eq(
		tls_protocols_parse(" , ", &min, &max, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "names no version");
	ck_assert_int_eq(
		tls_protocols_parse("tlsv1.3", &min, &max, err, sizeof(err)),
		-1);
	ck_assert_int_eq(tls_protocols_check("SSLv3", err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_tls_paths_are_absolute)
{
	char err[128];

	ck_assert_int_eq(tls_path_check("/etc/echod/cert.pem", err, 128), 0);
	ck_assert_int_eq(tls_path_check("cert.pem", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "must be an absolute path, not 'cert.pem'");
	ck_assert_int_eq(tls_path_check("./cert.pem", err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_tls_wanted_by_a_tls_listener_only)
{
	struct config cfg;
	char err[256];
	const struct config_key *listen = config_key_find("listen");

	/* tls.c is linked in, not loaded as echod-tls.so. */
	tls_module_use(&echod_tls_module);
	config_init(&cfg);
	ck_assert_int_eq(config_set(&cfg, listen, "127.0.0.1:1", err, 256), 0);
	ck_assert_int_eq(tls_wanted(&cfg), 0);
	/* Without a tls listener, missing certificates do not matter. */
	ck_assert_int_eq(tls_check(&cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(config_set(&cfg, listen, "127.0.0.1:2 tls", err, 256),
			 0);
	ck_assert_int_eq(tls_wanted(&cfg), 1);
	ck_assert_int_eq(tls_check(&cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "a tls listener needs tls_certificate and "
			      "tls_certificate_key");
	config_free(&cfg);
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, test_tls_protocols_forms);
	tcase_add_test(tc, test_tls_protocols_refused);
	tcase_add_test(tc, test_tls_paths_are_absolute);
	tcase_add_test(tc, test_tls_wanted_by_a_tls_listener_only);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(tls_suite());
}
