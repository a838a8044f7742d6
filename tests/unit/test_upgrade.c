/*
 * test_upgrade.c: unit tests for server/upgrade.c's guard on closing
 * sockets that a forked child may share: upgrade_close_private() closes
 * a socket while no child can hold it, and leaves it open (for the
 * caller to take out of its epoll set first) from upgrade_share_begin(),
 * before the fork, to upgrade_share_end(), once the child is past
 * execve() or gone.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echod.h"
#include "unit.h"

static int
is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void
pair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

START_TEST(test_close_private_closes)
{
	int sv[2];

	pair(sv);
	ck_assert_int_eq(upgrade_close_private(sv[0]), 0);
	ck_assert(!is_open(sv[0]));
	close(sv[1]);
}
END_TEST

START_TEST(test_close_private_refuses_while_a_child_may_share)
{
	int sv[2];

	pair(sv);
	upgrade_share_begin();
	ck_assert_int_eq(upgrade_close_private(sv[0]), -1);
	ck_assert(is_open(sv[0]));
	ck_assert_int_eq(upgrade_close_private(sv[0]), -1);
	ck_assert(is_open(sv[0]));
	upgrade_share_end();
	ck_assert_int_eq(upgrade_close_private(sv[0]), 0);
	ck_assert(!is_open(sv[0]));
	close(sv[1]);
}
END_TEST

/* Every close gives back its mark, refused or not: the next fork does
 * not wait for ever (the test's timeout would end it). */
START_TEST(test_share_begin_does_not_wait_for_finished_closes)
{
	int sv[2], i;

	for (i = 0; i < 100; i++) {
		pair(sv);
		ck_assert_int_eq(upgrade_close_private(sv[0]), 0);
		close(sv[1]);
	}
	upgrade_share_begin();
	pair(sv);
	ck_assert_int_eq(upgrade_close_private(sv[0]), -1);
	upgrade_share_begin(); /* a refused close left no mark either */
	upgrade_share_end();
	close(sv[0]);
	close(sv[1]);
}
END_TEST

static Suite *
upgrade_suite(void)
{
	Suite *s = suite_create("upgrade");
	TCase *tc = tcase_create("close_private");

	tcase_add_test(tc, test_close_private_closes);
	tcase_add_test(tc, test_close_private_refuses_while_a_child_may_share);
	tcase_add_test(tc, test_share_begin_does_not_wait_for_finished_closes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(upgrade_suite());
}
