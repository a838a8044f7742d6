/*
 * test_addr.c: unit tests for common/addr.c: the "HOST:PORT",
 * "[IPv6]:PORT" and "*:PORT" forms and their exact error messages,
 * formatting IPv4 and IPv6 socket addresses, and resolving numeric hosts
 * (never a name that would need DNS).
 */
#include <check.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addr.h"
#include "unit.h"

static void
parse_ok(const char *s, const char *host, unsigned port, int wildcard)
{
	struct addr_spec spec;
	char err[512] = "";

	ck_assert_msg(addr_parse(s, &spec, err, sizeof(err)) == 0,
		      "addr_parse(\"%s\") failed: %s", s, err);
	ck_assert_str_eq(spec.host, host);
	ck_assert_uint_eq(spec.port, port);
	ck_assert_int_eq(spec.wildcard, wildcard);
}

static void
parse_fails(const char *s, const char *msg)
{
	struct addr_spec spec;
	char err[512] = "";

	ck_assert_int_eq(addr_parse(s, &spec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, msg);
}

/* addr_parse */

START_TEST(test_addr_parse_accepts_ipv4_host_and_port)
{
	parse_ok("127.0.0.1:8888", "127.0.0.1", 8888, 0);
	parse_ok("0.0.0.0:1", "0.0.0.0", 1, 0);
}
END_TEST

START_TEST(test_addr_parse_accepts_bracketed_ipv6)
{
	parse_ok("[::1]:0", "::1", 0, 0);
	parse_ok("[::]:8888", "::", 8888, 0);
	parse_ok("[2001:db8::1]:65535", "2001:db8::1", 65535, 0);
	parse_ok("[::ffff:127.0.0.1]:80", "::ffff:127.0.0.1", 80, 0);
}
END_TEST

START_TEST(test_addr_parse_leaves_ipv6_scope_to_resolver)
{
	parse_ok("[fe80::1%lo]:80", "fe80::1%lo", 80, 0);
}
END_TEST

START_TEST(test_addr_parse_scope_needs_address_and_name)
{
	parse_fails("[%]:80", "'[%]:80': bad IPv6 address");
	parse_fails("[%eth0]:80", "'[%eth0]:80': bad IPv6 address");
	parse_fails("[fe80::1%]:80", "'[fe80::1%]:80': bad IPv6 address");
	parse_fails("[zz%lo]:80", "'[zz%lo]:80': bad IPv6 address");
}
END_TEST

START_TEST(test_addr_parse_star_is_wildcard_with_empty_host)
{
	parse_ok("*:80", "", 80, 1);
	parse_ok("*:0", "", 0, 1);
}
END_TEST

START_TEST(test_addr_parse_accepts_host_name_unresolved)
{
	parse_ok("localhost:1", "localhost", 1, 0);
	parse_ok("no-such-host.invalid:443", "no-such-host.invalid", 443, 0);
}
END_TEST

START_TEST(test_addr_parse_accepts_port_bounds)
{
	parse_ok("127.0.0.1:0", "127.0.0.1", 0, 0);
	parse_ok("127.0.0.1:65535", "127.0.0.1", 65535, 0);
}
END_TEST

START_TEST(test_addr_parse_rejects_missing_port)
{
	parse_fails("127.0.0.1:", "'127.0.0.1:': missing port");
	parse_fails("[::1]:", "'[::1]:': missing port");
	parse_fails("*:", "'*:': missing port");
}
END_TEST

START_TEST(test_addr_parse_rejects_missing_colon)
{
	parse_fails("127.0.0.1",
		    "'127.0.0.1': expected HOST:PORT, [IPv6]:PORT or *:PORT");
	parse_fails("nohost",
		    "'nohost': expected HOST:PORT, [IPv6]:PORT or *:PORT");
	parse_fails("", "'': expected HOST:PORT, [IPv6]:PORT or *:PORT");
}
END_TEST

START_TEST(test_addr_parse_rejects_port_65536)
{
	parse_fails("127.0.0.1:65536",
		    "'127.0.0.1:65536': port must be a number from 0 to 65535");
	parse_fails("[::1]:65536",
		    "'[::1]:65536': port must be a number from 0 to 65535");
}
END_TEST

START_TEST(test_addr_parse_rejects_non_numeric_port)
{
	parse_fails("127.0.0.1:http",
		    "'127.0.0.1:http': port must be a number from 0 to 65535");
	parse_fails("127.0.0.1:-1",
		    "'127.0.0.1:-1': port must be a number from 0 to 65535");
	parse_fails("127.0.0.1:+80",
		    "'127.0.0.1:+80': port must be a number from 0 to 65535");
	parse_fails("127.0.0.1: 80",
		    "'127.0.0.1: 80': port must be a number from 0 to 65535");
	parse_fails("127.0.0.1:80 ",
		    "'127.0.0.1:80 ': port must be a number from 0 to 65535");
	parse_fails("127.0.0.1:18446744073709551616",
		    "'127.0.0.1:18446744073709551616': port must be a number "
		    "from 0 to 65535");
}
END_TEST

START_TEST(test_addr_parse_rejects_unbracketed_ipv6)
{
	parse_fails("::1:80",
		    "'::1:80': an IPv6 address needs brackets ([IPv6]:PORT)");
	parse_fails("2001:db8::1:80", "'2001:db8::1:80': an IPv6 address "
				      "needs brackets ([IPv6]:PORT)");
}
END_TEST

START_TEST(test_addr_parse_rejects_port_glued_to_bracket)
{
	parse_fails("[::1]80", "'[::1]80': expected ':PORT' after ']'");
	parse_fails("[::1]", "'[::1]': expected ':PORT' after ']'");
}
END_TEST

START_TEST(test_addr_parse_rejects_unclosed_bracket)
{
	parse_fails("[::1:80", "'[::1:80': missing ']'");
}
END_TEST

START_TEST(test_addr_parse_rejects_bad_ipv6_in_brackets)
{
	parse_fails("[zz]:80", "'[zz]:80': bad IPv6 address");
	parse_fails("[]:80", "'[]:80': bad IPv6 address");
	parse_fails("[127.0.0.1]:80", "'[127.0.0.1]:80': bad IPv6 address");
	parse_fails("[localhost]:80", "'[localhost]:80': bad IPv6 address");
}
END_TEST

START_TEST(test_addr_parse_rejects_empty_host)
{
	parse_fails(":80",
		    "':80': missing host (use *:PORT for every address)");
}
END_TEST

START_TEST(test_addr_parse_rejects_host_too_long)
{
	char s[ADDR_HOST_MAX + 16], want[ADDR_HOST_MAX + 64];

	/* ADDR_HOST_MAX - 1 characters fit, with the NUL. */
	memset(s, 'a', ADDR_HOST_MAX - 1);
	strcpy(s + ADDR_HOST_MAX - 1, ":80");
	{
		struct addr_spec spec;
		char err[512] = "";

		ck_assert_int_eq(addr_parse(s, &spec, err, sizeof(err)), 0);
		ck_assert_uint_eq(strlen(spec.host), ADDR_HOST_MAX - 1);
	}
	memset(s, 'a', ADDR_HOST_MAX);
	strcpy(s + ADDR_HOST_MAX, ":80");
	snprintf(want, sizeof(want), "'%s': host name too long", s);
	parse_fails(s, want);
}
END_TEST

START_TEST(test_addr_parse_truncates_message_to_buffer)
{
	struct addr_spec spec;
	char err[8];

	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(addr_parse(":80", &spec, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "':80': ");
}
END_TEST

/* addr_format */

static void
format_is(const struct sockaddr *sa, const char *want)
{
	char buf[ADDR_STRLEN];

	ck_assert_ptr_eq(addr_format(sa, buf, sizeof(buf)), buf);
	ck_assert_str_eq(buf, want);
}

static void
format_v4_is(const char *ip, unsigned port, const char *want)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	format_is((const struct sockaddr *)&sin, want);
}

static void
format_v6_is(const char *ip, unsigned port, const char *want)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons((uint16_t)port);
	ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
	format_is((const struct sockaddr *)&sin6, want);
}

START_TEST(test_addr_format_ipv4_is_host_colon_port)
{
	format_v4_is("127.0.0.1", 8888, "127.0.0.1:8888");
	format_v4_is("0.0.0.0", 0, "0.0.0.0:0");
	format_v4_is("255.255.255.255", 65535, "255.255.255.255:65535");
}
END_TEST

START_TEST(test_addr_format_ipv6_is_bracketed)
{
	format_v6_is("::1", 80, "[::1]:80");
	format_v6_is("::", 0, "[::]:0");
	format_v6_is("2001:db8:0:0:0:0:0:1", 65535, "[2001:db8::1]:65535");
	format_v6_is("::ffff:1.2.3.4", 1, "[::ffff:1.2.3.4]:1");
	format_v6_is("fe80:1234:5678:9abc:def0:1234:5678:9abc", 65535,
		     "[fe80:1234:5678:9abc:def0:1234:5678:9abc]:65535");
}
END_TEST

START_TEST(test_addr_format_unix_is_its_path)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	format_is((const struct sockaddr *)&sun, "unix socket");
	strcpy(sun.sun_path, "/run/echod/echod.sock");
	format_is((const struct sockaddr *)&sun, "unix:/run/echod/echod.sock");
}
END_TEST

START_TEST(test_addr_format_names_unknown_family)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_APPLETALK;
	format_is((const struct sockaddr *)&ss, "(family 5)");
}
END_TEST

/* addr_resolve: numeric hosts only, so no test depends on DNS. */

START_TEST(test_addr_resolve_numeric_ipv4)
{
	struct addr out[4];
	char err[256] = "", buf[ADDR_STRLEN];
	int n;

	n = addr_resolve("127.0.0.1", "8888", 0, out, 4, err, sizeof(err));
	ck_assert_msg(n == 1, "n = %d: %s", n, err);
	ck_assert_int_eq(out[0].ss.ss_family, AF_INET);
	ck_assert_uint_eq(out[0].len, sizeof(struct sockaddr_in));
	addr_format((struct sockaddr *)&out[0].ss, buf, sizeof(buf));
	ck_assert_str_eq(buf, "127.0.0.1:8888");
}
END_TEST

START_TEST(test_addr_resolve_numeric_ipv6)
{
	struct addr out[4];
	char err[256] = "", buf[ADDR_STRLEN];
	int n;

	n = addr_resolve("::1", "0", 1, out, 4, err, sizeof(err));
	ck_assert_msg(n == 1, "n = %d: %s", n, err);
	ck_assert_int_eq(out[0].ss.ss_family, AF_INET6);
	ck_assert_uint_eq(out[0].len, sizeof(struct sockaddr_in6));
	addr_format((struct sockaddr *)&out[0].ss, buf, sizeof(buf));
	ck_assert_str_eq(buf, "[::1]:0");
}
END_TEST

static void
resolve_wildcard_is_any(const char *host)
{
	struct addr out[4];
	char err[256] = "";
	int i, n;

	n = addr_resolve(host, "80", 1, out, 4, err, sizeof(err));
	ck_assert_msg(n >= 1 && n <= 4, "n = %d: %s", n, err);
	for (i = 0; i < n; i++) {
		char buf[ADDR_STRLEN];

		addr_format((struct sockaddr *)&out[i].ss, buf, sizeof(buf));
		ck_assert_msg(strcmp(buf, "0.0.0.0:80") == 0 ||
				      strcmp(buf, "[::]:80") == 0,
			      "wildcard resolved to %s", buf);
	}
}

START_TEST(test_addr_resolve_null_or_empty_host_is_passive_wildcard)
{
	resolve_wildcard_is_any(NULL);
	resolve_wildcard_is_any("");
}
END_TEST

START_TEST(test_addr_resolve_stops_at_max)
{
	struct addr out[1];
	char err[256] = "";

	ck_assert_int_eq(addr_resolve(NULL, "80", 1, out, 1, err, sizeof(err)),
			 1);
}
END_TEST

START_TEST(test_addr_resolve_rejects_service_name_with_resolver_message)
{
	struct addr out[4];
	char err[256] = "", want[256];
	struct addrinfo hints, *res = NULL;
	int rc;

	/* The same question, asked directly, gives the expected message. */
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo("127.0.0.1", "http", &hints, &res);
	ck_assert_int_ne(rc, 0);
	snprintf(want, sizeof(want), "127.0.0.1: %s", gai_strerror(rc));

	ck_assert_int_eq(
		addr_resolve("127.0.0.1", "http", 0, out, 4, err, sizeof(err)),
		-1);
	ck_assert_str_eq(err, want);
}
END_TEST

static Suite *
addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_addr_parse_accepts_ipv4_host_and_port);
	tcase_add_test(tc, test_addr_parse_accepts_bracketed_ipv6);
	tcase_add_test(tc, test_addr_parse_leaves_ipv6_scope_to_resolver);
	tcase_add_test(tc, test_addr_parse_scope_needs_address_and_name);
	tcase_add_test(tc, test_addr_parse_star_is_wildcard_with_empty_host);
	tcase_add_test(tc, test_addr_parse_accepts_host_name_unresolved);
	tcase_add_test(tc, test_addr_parse_accepts_port_bounds);
	tcase_add_test(tc, test_addr_parse_rejects_missing_port);
	tcase_add_test(tc, test_addr_parse_rejects_missing_colon);
	tcase_add_test(tc, test_addr_parse_rejects_port_65536);
	tcase_add_test(tc, test_addr_parse_rejects_non_numeric_port);
	tcase_add_test(tc, test_addr_parse_rejects_unbracketed_ipv6);
	tcase_add_test(tc, test_addr_parse_rejects_port_glued_to_bracket);
	tcase_add_test(tc, test_addr_parse_rejects_unclosed_bracket);
	tcase_add_test(tc, test_addr_parse_rejects_bad_ipv6_in_brackets);
	tcase_add_test(tc, test_addr_parse_rejects_empty_host);
	tcase_add_test(tc, test_addr_parse_rejects_host_too_long);
	tcase_add_test(tc, test_addr_parse_truncates_message_to_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_test(tc, test_addr_format_ipv4_is_host_colon_port);
	tcase_add_test(tc, test_addr_format_ipv6_is_bracketed);
	tcase_add_test(tc, test_addr_format_unix_is_its_path);
	tcase_add_test(tc, test_addr_format_names_unknown_family);
	suite_add_tcase(s, tc);

	tc = tcase_create("resolve");
	tcase_add_test(tc, test_addr_resolve_numeric_ipv4);
	tcase_add_test(tc, test_addr_resolve_numeric_ipv6);
	tcase_add_test(
		tc, test_addr_resolve_null_or_empty_host_is_passive_wildcard);
	tcase_add_test(tc, test_addr_resolve_stops_at_max);
	tcase_add_test(
		tc,
		test_addr_resolve_rejects_service_name_with_resolver_message);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return unit_run(addr_suite());
}
