/*
 * test_conn.c: unit tests for the pure policies of server/conn.c: when a
 * connection holds back reading (backpressure), when it reads again, how
 * much one read may take, when a draining connection is done, and how
 * long one has been silent (its 32-bit activity time).
 */
#include <check.h>
#include <string.h>

#include "conn_int.h"
#include "echod.h"
#include "unit.h"

#define MIB ((uint64_t)1024 * 1024)

START_TEST(test_conn_holds_back_at_max_buffer_not_before)
{
	ck_assert_int_eq(conn_must_hold_back(0, MIB), 0);
	ck_assert_int_eq(conn_must_hold_back(MIB - 1, MIB), 0);
	ck_assert_int_eq(conn_must_hold_back(MIB, MIB), 1);
	/* A reload may shrink max_buffer below what is queued. */
	ck_assert_int_eq(conn_must_hold_back(MIB, 4096), 1);
}
END_TEST

START_TEST(test_conn_resumes_at_half_of_max_buffer)
{
	ck_assert_uint_eq(conn_resume_mark(MIB), MIB / 2);
	ck_assert_uint_eq(conn_resume_mark(4096), 2048);
	ck_assert_uint_eq(conn_resume_mark(4097), 2048);
}
END_TEST

START_TEST(test_conn_reads_a_slice_within_max_buffer)
{
	/* Nothing queued: a whole slice, unless max_buffer is smaller. */
	ck_assert_uint_eq(conn_read_budget(0, MIB), ECHOD_READ_SLICE);
	ck_assert_uint_eq(conn_read_budget(0, 4096), 4096);
	/* Queued: never past max_buffer. */
	ck_assert_uint_eq(conn_read_budget(MIB - 100, MIB), 100);
	ck_assert_uint_eq(conn_read_budget(MIB, MIB), 0);
	ck_assert_uint_eq(conn_read_budget(2 * MIB, MIB), 0);
	ck_assert_uint_eq(conn_read_budget(MIB / 2, MIB), ECHOD_READ_SLICE);
}
END_TEST

START_TEST(test_conn_drain_waits_for_quiet_and_empty_queues)
{
	const uint64_t q = ECHOD_DRAIN_QUIET_MS,
		       u = ECHOD_DRAIN_QUIET_UPGRADE_MS;

	ck_assert_int_eq(conn_drain_done(q, q, 0, 0, 0), 1);
	ck_assert_int_eq(conn_drain_done(q - 1, q, 0, 0, 0), 0);
	/* Echo still queued, or input not yet read: not done. */
	ck_assert_int_eq(conn_drain_done(60000, q, 1, 0, 0), 0);
	ck_assert_int_eq(conn_drain_done(60000, q, 0, 1, 0), 0);
	/* Nothing received yet: its first bytes may be on their way. */
	ck_assert_int_eq(conn_drain_done(q, q, 0, 0, 1), 0);
	ck_assert_int_eq(conn_drain_done(ECHOD_DRAIN_FRESH_MS - 1, q, 0, 0, 1),
			 0);
	ck_assert_int_eq(conn_drain_done(ECHOD_DRAIN_FRESH_MS, q, 0, 0, 1), 1);
	/* After an upgrade a pause between messages is not the end. */
	ck_assert_int_eq(conn_drain_done(u - 1, u, 0, 0, 0), 0);
	ck_assert_int_eq(conn_drain_done(u, u, 0, 0, 0), 1);
}
END_TEST

START_TEST(test_conn_drain_serves_a_header_on_its_way)
{
	/* Accepted just before the drain: its PROXY header may come. */
	ck_assert_int_eq(conn_drain_header_done(0), 0);
	ck_assert_int_eq(conn_drain_header_done(ECHOD_DRAIN_QUIET_MS), 0);
	ck_assert_int_eq(conn_drain_header_done(ECHOD_DRAIN_FRESH_MS - 1), 0);
	ck_assert_int_eq(conn_drain_header_done(ECHOD_DRAIN_FRESH_MS), 1);
}
END_TEST

/* Silence is read from 16 ms ticks in 32 bits: never more than it was
 * (no timeout fires early), at most two ticks less, across the ticks'
 * wrap-around and up to the longest timeout. */
START_TEST(test_conn_silence_is_never_over_read)
{
	static const uint64_t starts[] = {
		0,
		15,
		16,
		123456789,
		((uint64_t)1 << 36) - 5, /* the ticks wrap just after */
		((uint64_t)1 << 36) + 3,
		((uint64_t)7 << 36) - 1000,
	};
	struct conn c;
	size_t i;
	uint64_t d, s;

	for (i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		memset(&c, 0, sizeof(c));
		c.last_active = conn_tick(starts[i]);
		for (d = 0; d < 5000; d += 7) {
			s = conn_silent_ms(&c, starts[i] + d);
			ck_assert_uint_le(s, d);
			ck_assert_uint_ge(s + 32, d);
		}
		d = ECHOD_MAX_DURATION_MS;
		s = conn_silent_ms(&c, starts[i] + d);
		ck_assert_uint_le(s, d);
		ck_assert_uint_ge(s + 32, d);
	}
}
END_TEST

static Suite *
conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("policy");

	tcase_add_test(tc, test_conn_holds_back_at_max_buffer_not_before);
	tcase_add_test(tc, test_conn_resumes_at_half_of_max_buffer);
	tcase_add_test(tc, test_conn_reads_a_slice_within_max_buffer);
	tcase_add_test(tc, test_conn_drain_waits_for_quiet_and_empty_queues);
	tcase_add_test(tc, test_conn_drain_serves_a_header_on_its_way);
	tcase_add_test(tc, test_conn_silence_is_never_over_read);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(conn_suite());
}
