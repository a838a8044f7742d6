/*
 * test_inherit.c: unit tests for server/inherit.c's pure parts: the names
 * echod gives its sockets in systemd's fd store and in an upgrade's
 * LISTEN_FDNAMES (the kind and the bound address, within systemd's rules
 * for a name: at most 255 printable characters, no ':'), and the address
 * comparison that matches a handed socket to a listen line.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "echod.h"
#include "unit.h"

static struct sockaddr_in
v4(const char *ip, unsigned port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &sin.sin_addr);
	return sin;
}

static struct sockaddr_in6
v6(const char *ip, unsigned port)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons((uint16_t)port);
	inet_pton(AF_INET6, ip, &sin6.sin6_addr);
	return sin6;
}

/* systemd's fdname_is_valid(). */
static int
valid_fdname(const char *s)
{
	const char *p;

	for (p = s; *p; p++)
		if (*p < ' ' || *p >= 127 || *p == ':')
			return 0;
	return p - s <= 255;
}

START_TEST(test_inherit_name_v4)
{
	struct sockaddr_in a = v4("127.0.0.1", 8888);
	char name[INHERIT_NAME_MAX + 1];

	ck_assert_int_eq(inherit_fdname(SOCK_STREAM, (struct sockaddr *)&a,
					sizeof(a), name, sizeof(name)),
			 0);
	ck_assert_str_eq(name, "echod-stream-047f00000122b8");
	ck_assert_int_eq(inherit_fdname(SOCK_DGRAM, (struct sockaddr *)&a,
					sizeof(a), name, sizeof(name)),
			 0);
	ck_assert_str_eq(name, "echod-dgram-047f00000122b8");
	/* Too small a buffer, or a kind that is neither. */
	ck_assert_int_eq(inherit_fdname(SOCK_STREAM, (struct sockaddr *)&a,
					sizeof(a), name, 27),
			 -1);
	ck_assert_int_eq(inherit_fdname(SOCK_SEQPACKET, (struct sockaddr *)&a,
					sizeof(a), name, sizeof(name)),
			 -1);
}
END_TEST

START_TEST(test_inherit_name_v6_and_unix)
{
	struct sockaddr_in6 a = v6("::1", 7);
	struct sockaddr_un sun;
	char name[INHERIT_NAME_MAX + 1];

	ck_assert_int_eq(inherit_fdname(SOCK_STREAM, (struct sockaddr *)&a,
					sizeof(a), name, sizeof(name)),
			 0);
	ck_assert_str_eq(name, "echod-stream-06000000000000000000000000000000"
			       "01000700000000");
	ck_assert(valid_fdname(name));

	/* The longest path a Unix socket can have still makes a name. */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memset(sun.sun_path, 'x', sizeof(sun.sun_path) - 1);
	sun.sun_path[0] = '/';
	ck_assert_int_eq(inherit_fdname(SOCK_STREAM, (struct sockaddr *)&sun,
					sizeof(sun), name, sizeof(name)),
			 0);
	ck_assert(valid_fdname(name));
	ck_assert_uint_eq(strlen(name),
			  strlen("echod-stream-") + 2 * sizeof(sun.sun_path));
	/* An abstract or unnamed socket is none of ours. */
	sun.sun_path[0] = '\0';
	ck_assert_int_eq(inherit_fdname(SOCK_STREAM, (struct sockaddr *)&sun,
					sizeof(sun), name, sizeof(name)),
			 -1);
	ck_assert_int_eq(inherit_fdname(SOCK_STREAM, (struct sockaddr *)&sun,
					sizeof(sa_family_t), name,
					sizeof(name)),
			 -1);
}
END_TEST

START_TEST(test_inherit_same_addr)
{
	struct sockaddr_in a = v4("127.0.0.1", 8888), b = a,
			   c = v4("127.0.0.1", 8889), d = v4("127.0.0.2", 8888);
	struct sockaddr_in6 e = v6("::1", 8888), f = e, g = v6("::", 8888);
	struct sockaddr_un u1, u2;

	ck_assert(inherit_same_addr((struct sockaddr *)&a, sizeof(a),
				    (struct sockaddr *)&b, sizeof(b)));
	ck_assert(!inherit_same_addr((struct sockaddr *)&a, sizeof(a),
				     (struct sockaddr *)&c, sizeof(c)));
	ck_assert(!inherit_same_addr((struct sockaddr *)&a, sizeof(a),
				     (struct sockaddr *)&d, sizeof(d)));
	ck_assert(!inherit_same_addr((struct sockaddr *)&a, sizeof(a),
				     (struct sockaddr *)&e, sizeof(e)));
	/* The flow label is not part of where a socket is bound. */
	f.sin6_flowinfo = htonl(12345);
	ck_assert(inherit_same_addr((struct sockaddr *)&e, sizeof(e),
				    (struct sockaddr *)&f, sizeof(f)));
	ck_assert(!inherit_same_addr((struct sockaddr *)&e, sizeof(e),
				     (struct sockaddr *)&g, sizeof(g)));
	/* A short length is no address. */
	ck_assert(!inherit_same_addr((struct sockaddr *)&a, 4,
				     (struct sockaddr *)&b, 4));

	memset(&u1, 0, sizeof(u1));
	u1.sun_family = AF_UNIX;
	strcpy(u1.sun_path, "/run/echod/echod.sock");
	u2 = u1;
	ck_assert(inherit_same_addr(
		(struct sockaddr *)&u1,
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) +
			    strlen(u1.sun_path) + 1),
		(struct sockaddr *)&u2, sizeof(u2)));
	strcpy(u2.sun_path, "/run/echod/other.sock");
	ck_assert(!inherit_same_addr((struct sockaddr *)&u1, sizeof(u1),
				     (struct sockaddr *)&u2, sizeof(u2)));
}
END_TEST

static Suite *
inherit_suite(void)
{
	Suite *s = suite_create("inherit");
	TCase *tc = tcase_create("pure");

	tcase_add_test(tc, test_inherit_name_v4);
	tcase_add_test(tc, test_inherit_name_v6_and_unix);
	tcase_add_test(tc, test_inherit_same_addr);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(inherit_suite());
}
