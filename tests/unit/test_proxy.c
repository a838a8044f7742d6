/*
 * test_proxy.c: unit tests for common/proxy.c: the PROXY protocol
 * specification's examples (v1 TCP4, TCP6 at its longest, UNKNOWN; v2
 * PROXY over IPv4 and IPv6, LOCAL, TLVs), every prefix of a good header
 * asking for more, the malformed and oversized headers refused with a
 * reason, and proxy_build() read back by proxy_parse().
 */
#include <arpa/inet.h>
#include <check.h>
#include <string.h>

#include "proxy.h"
#include "unit.h"

static int
parse(const void *buf, size_t len, struct proxy_header *h)
{
	char err[128] = "";
	int rc = proxy_parse(buf, len, h, err, sizeof(err));

	if (rc == PROXY_BAD)
		ck_assert_str_ne(err, "");
	return rc;
}

static const char *
addr_of(const struct sockaddr_storage *ss, char *buf, size_t len,
	unsigned *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		*port = ntohs(s->sin_port);
		return inet_ntop(AF_INET, &s->sin_addr, buf, (socklen_t)len);
	}
	{
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		*port = ntohs(s->sin6_port);
		return inet_ntop(AF_INET6, &s->sin6_addr, buf, (socklen_t)len);
	}
}

/* Every proper prefix asks for more; the whole is done, len bytes. */
static void
assert_prefixes(const unsigned char *buf, size_t len)
{
	struct proxy_header h;
	size_t i;

	for (i = 0; i < len; i++)
		ck_assert_int_eq(parse(buf, i, &h), PROXY_NEED_MORE);
	ck_assert_int_eq(parse(buf, len, &h), PROXY_DONE);
	ck_assert_uint_eq(h.len, len);
}

START_TEST(test_proxy_v1_tcp4)
{
	const char *s = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
			"GET / HTTP/1.1\r\n";
	struct proxy_header h;
	char a[64];
	unsigned port;

	ck_assert_int_eq(parse(s, strlen(s), &h), PROXY_DONE);
	ck_assert_int_eq(h.version, 1);
	ck_assert_int_eq(h.local, 0);
	ck_assert_uint_eq(h.len, strlen("PROXY TCP4 192.168.0.1 192.168.0.11 "
					"56324 443\r\n"));
	ck_assert_str_eq(addr_of(&h.src, a, sizeof(a), &port), "192.168.0.1");
	ck_assert_uint_eq(port, 56324);
	ck_assert_str_eq(addr_of(&h.dst, a, sizeof(a), &port), "192.168.0.11");
	ck_assert_uint_eq(port, 443);
	assert_prefixes((const unsigned char *)s, h.len);
}
END_TEST

START_TEST(test_proxy_v1_tcp6_longest_and_unknown)
{
	const char *v6 = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 "
			 "65535\r\n";
	const char *unknown = "PROXY UNKNOWN\r\n";
	/* The specification's worst case: 107 bytes. */
	const char *longest = "PROXY UNKNOWN "
			      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
			      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 "
			      "65535\r\n";
	struct proxy_header h;
	char a[64];
	unsigned port;

	ck_assert_int_eq(parse(v6, strlen(v6), &h), PROXY_DONE);
	ck_assert_int_eq(h.src.ss_family, AF_INET6);
	ck_assert_str_eq(addr_of(&h.src, a, sizeof(a), &port),
			 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	ck_assert_uint_eq(port, 65535);
	assert_prefixes((const unsigned char *)v6, strlen(v6));
	ck_assert_int_eq(parse(unknown, strlen(unknown), &h), PROXY_DONE);
	ck_assert_int_eq(h.local, 1);
	ck_assert_uint_eq(strlen(longest), PROXY_V1_MAX);
	ck_assert_int_eq(parse(longest, strlen(longest), &h), PROXY_DONE);
	ck_assert_int_eq(h.local, 1);
	ck_assert_uint_eq(h.len, PROXY_V1_MAX);
}
END_TEST

START_TEST(test_proxy_v1_refused)
{
	static const char *const bad[] = {
		"GET / HTTP/1.0\r\n",
		"PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
		"PROXY \r\n",
	};
	unsigned char buf[256];
	struct proxy_header h;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(bad[i], strlen(bad[i]), &h) == PROXY_BAD,
			      "accepted: %s", bad[i]);
	static const char nul_inside[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
	static const char prefix[6] = {'P', 'R', 'O', 'X', 'Y', ' '};

	/* A NUL inside. */
	ck_assert_int_eq(parse(nul_inside, sizeof(nul_inside) - 1, &h),
			 PROXY_BAD);
	/* 107 bytes with no line end: too long, at once. */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, prefix, sizeof(prefix));
	ck_assert_int_eq(parse(buf, PROXY_V1_MAX - 1, &h), PROXY_NEED_MORE);
	ck_assert_int_eq(parse(buf, PROXY_V1_MAX, &h), PROXY_BAD);
	ck_assert_int_eq(parse(buf, sizeof(buf), &h), PROXY_BAD);
	/* 108 bytes, CR LF last, then data: too long however it arrives. */
	{
		static const char long6[] =
			"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255."
			"255 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 1 "
			"1\r\nx";
		size_t n = sizeof(long6) - 1;

		ck_assert_uint_eq(n, PROXY_V1_MAX + 2);
		ck_assert_int_eq(parse(long6, n, &h), PROXY_BAD);
		ck_assert_int_eq(parse(long6, n - 1, &h), PROXY_BAD);
		ck_assert_int_eq(parse(long6, PROXY_V1_MAX, &h), PROXY_BAD);
	}
	/* A CR as the 107th byte is not a line end yet, nor can be. */
	buf[PROXY_V1_MAX - 1] = '\r';
	ck_assert_int_eq(parse(buf, PROXY_V1_MAX, &h), PROXY_BAD);
}
END_TEST

/* A v2 header by hand: signature, ver_cmd, fam, len, body. */
static size_t
v2(unsigned char *buf, unsigned char ver_cmd, unsigned char fam,
   const void *body, size_t len)
{
	static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A,
					      0x00, 0x0D, 0x0A, 0x51,
					      0x55, 0x49, 0x54, 0x0A};

	memcpy(buf, sig, 12);
	buf[12] = ver_cmd;
	buf[13] = fam;
	buf[14] = (unsigned char)(len >> 8);
	buf[15] = (unsigned char)len;
	if (len > 0)
		memcpy(buf + 16, body, len);
	return 16 + len;
}

START_TEST(test_proxy_v2_inet_with_tlvs)
{
	/* 10.0.0.1:1234 -> 10.0.0.2:443, then a NOOP TLV and an ALPN one. */
	const unsigned char body[] = {
		10,   0,    0,	  1,	10, 0, 0,    2,	   0x04, 0xD2, 0x01,
		0xBB, 0x04, 0x00, 0x02, 0,  0, 0x01, 0x00, 0x02, 'h',  '2'};
	unsigned char buf[256];
	struct proxy_header h;
	char a[64];
	unsigned port;
	static const char after[5] = {'a', 'f', 't', 'e', 'r'};
	size_t n = v2(buf, 0x21, 0x11, body, sizeof(body));

	memcpy(buf + n, after, sizeof(after));
	ck_assert_int_eq(parse(buf, n + sizeof(after), &h), PROXY_DONE);
	ck_assert_int_eq(h.version, 2);
	ck_assert_int_eq(h.local, 0);
	ck_assert_uint_eq(h.len, n);
	ck_assert_str_eq(addr_of(&h.src, a, sizeof(a), &port), "10.0.0.1");
	ck_assert_uint_eq(port, 1234);
	ck_assert_str_eq(addr_of(&h.dst, a, sizeof(a), &port), "10.0.0.2");
	ck_assert_uint_eq(port, 443);
	assert_prefixes(buf, n);
}
END_TEST

START_TEST(test_proxy_v2_inet6_local_unspec)
{
	unsigned char body[36], buf[256];
	struct proxy_header h;
	char a[64];
	unsigned port;
	size_t n;

	memset(body, 0, sizeof(body));
	inet_pton(AF_INET6, "2001:db8::7", body);
	inet_pton(AF_INET6, "2001:db8::8", body + 16);
	body[32] = 0x1F;
	body[33] = 0x90; /* 8080 */
	body[35] = 80;
	n = v2(buf, 0x21, 0x21, body, sizeof(body));
	ck_assert_int_eq(parse(buf, n, &h), PROXY_DONE);
	ck_assert_str_eq(addr_of(&h.src, a, sizeof(a), &port), "2001:db8::7");
	ck_assert_uint_eq(port, 8080);
	ck_assert_str_eq(addr_of(&h.dst, a, sizeof(a), &port), "2001:db8::8");
	ck_assert_uint_eq(port, 80);
	/* LOCAL, with an address block that is not looked at. */
	n = v2(buf, 0x20, 0x11, body, 12);
	ck_assert_int_eq(parse(buf, n, &h), PROXY_DONE);
	ck_assert_int_eq(h.local, 1);
	ck_assert_uint_eq(h.len, 28);
	/* PROXY with UNSPEC, or AF_UNIX: the socket's own addresses. */
	n = v2(buf, 0x21, 0x00, NULL, 0);
	ck_assert_int_eq(parse(buf, n, &h), PROXY_DONE);
	ck_assert_int_eq(h.local, 1);
	memset(body, 0, sizeof(body));
	n = v2(buf, 0x21, 0x31, body, 0);
	buf[14] = 0;
	buf[15] = 0;
	ck_assert_int_eq(parse(buf, 16, &h), PROXY_DONE);
	ck_assert_int_eq(h.local, 1);
}
END_TEST

START_TEST(test_proxy_v2_refused)
{
	unsigned char body[64], buf[4096];
	struct proxy_header h;
	size_t n;

	memset(body, 0, sizeof(body));
	/* Not version 2; an unknown command; a datagram; an unknown
	 * family; addresses that do not fit the length. */
	n = v2(buf, 0x11, 0x11, body, 12);
	ck_assert_int_eq(parse(buf, n, &h), PROXY_BAD);
	n = v2(buf, 0x22, 0x11, body, 12);
	ck_assert_int_eq(parse(buf, n, &h), PROXY_BAD);
	n = v2(buf, 0x21, 0x12, body, 12);
	ck_assert_int_eq(parse(buf, n, &h), PROXY_BAD);
	n = v2(buf, 0x21, 0x41, body, 12);
	ck_assert_int_eq(parse(buf, n, &h), PROXY_BAD);
	n = v2(buf, 0x21, 0x11, body, 11);
	ck_assert_int_eq(parse(buf, n, &h), PROXY_BAD);
	n = v2(buf, 0x21, 0x21, body, 35);
	ck_assert_int_eq(parse(buf, n, &h), PROXY_BAD);
	/* Longer than the limit: refused on the length alone. */
	n = v2(buf, 0x21, 0x11, body, 12);
	buf[14] = (unsigned char)((PROXY_V2_MAX_BODY + 1) >> 8);
	buf[15] = (unsigned char)(PROXY_V2_MAX_BODY + 1);
	ck_assert_int_eq(parse(buf, 16, &h), PROXY_BAD);
	buf[14] = (unsigned char)(PROXY_V2_MAX_BODY >> 8);
	buf[15] = (unsigned char)PROXY_V2_MAX_BODY;
	ck_assert_int_eq(parse(buf, 16, &h), PROXY_NEED_MORE);
	memset(buf + 16, 0, PROXY_V2_MAX_BODY);
	ck_assert_int_eq(parse(buf, 16 + PROXY_V2_MAX_BODY, &h), PROXY_DONE);
	/* A bad signature, at its first wrong byte. */
	n = v2(buf, 0x21, 0x11, body, 12);
	buf[5] = 'x';
	ck_assert_int_eq(parse(buf, 6, &h), PROXY_BAD);
}
END_TEST

START_TEST(test_proxy_build_reads_back)
{
	struct sockaddr_in s4, d4;
	struct sockaddr_in6 s6, d6;
	unsigned char buf[PROXY_MAX];
	struct proxy_header h;
	char a[64];
	unsigned port;
	int version, n;

	memset(&s4, 0, sizeof(s4));
	memset(&d4, 0, sizeof(d4));
	s4.sin_family = d4.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.3", &s4.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &d4.sin_addr);
	s4.sin_port = htons(40000);
	d4.sin_port = htons(8888);
	memset(&s6, 0, sizeof(s6));
	memset(&d6, 0, sizeof(d6));
	s6.sin6_family = d6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::1", &s6.sin6_addr);
	inet_pton(AF_INET6, "fe80::1", &d6.sin6_addr);
	s6.sin6_port = htons(1);
	d6.sin6_port = htons(65535);
	for (version = 1; version <= 2; version++) {
		n = proxy_build(version, (struct sockaddr *)&s4,
				(struct sockaddr *)&d4, buf, sizeof(buf));
		ck_assert_int_gt(n, 0);
		ck_assert_int_eq(parse(buf, (size_t)n, &h), PROXY_DONE);
		ck_assert_int_eq(h.version, version);
		ck_assert_uint_eq(h.len, (size_t)n);
		ck_assert_str_eq(addr_of(&h.src, a, sizeof(a), &port),
				 "127.0.0.3");
		ck_assert_uint_eq(port, 40000);
		ck_assert_str_eq(addr_of(&h.dst, a, sizeof(a), &port),
				 "127.0.0.1");
		ck_assert_uint_eq(port, 8888);
		n = proxy_build(version, (struct sockaddr *)&s6,
				(struct sockaddr *)&d6, buf, sizeof(buf));
		ck_assert_int_eq(parse(buf, (size_t)n, &h), PROXY_DONE);
		ck_assert_str_eq(addr_of(&h.dst, a, sizeof(a), &port),
				 "fe80::1");
		ck_assert_uint_eq(port, 65535);
		/* Mixed families: LOCAL / UNKNOWN. */
		n = proxy_build(version, (struct sockaddr *)&s4,
				(struct sockaddr *)&d6, buf, sizeof(buf));
		ck_assert_int_eq(parse(buf, (size_t)n, &h), PROXY_DONE);
		ck_assert_int_eq(h.local, 1);
	}
	ck_assert_int_eq(proxy_build(1, (struct sockaddr *)&s4,
				     (struct sockaddr *)&d4, buf, 20),
			 -1);
	ck_assert_int_eq(proxy_build(2, NULL, NULL, buf, 20), -1);
	ck_assert_int_eq(proxy_build(3, NULL, NULL, buf, sizeof(buf)), -1);
}
END_TEST

static Suite *
proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_proxy_v1_tcp4);
	tcase_add_test(tc, test_proxy_v1_tcp6_longest_and_unknown);
	tcase_add_test(tc, test_proxy_v1_refused);
	tcase_add_test(tc, test_proxy_v2_inet_with_tlvs);
	tcase_add_test(tc, test_proxy_v2_inet6_local_unspec);
	tcase_add_test(tc, test_proxy_v2_refused);
	tcase_add_test(tc, test_proxy_build_reads_back);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(proxy_suite());
}
