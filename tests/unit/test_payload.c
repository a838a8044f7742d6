/*
 * test_payload.c: unit tests for common/payload.c: the stream's exact
 * bytes (pinned against an independent model of the algorithm), chunking
 * that never changes it, distinct seeds, and payload_verify()'s verdicts,
 * first-mismatch offsets and cursor handling at every alignment.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"
#include "unit.h"

#define STREAM_LEN 4099 /* not a multiple of 8, nor of any chunk below */

/* The whole stream of seed from position 0, in one call. */
static void
whole(uint64_t seed, unsigned char *buf, size_t n)
{
	struct payload p;

	payload_init(&p, seed);
	payload_fill(&p, buf, n);
}

START_TEST(test_payload_init_starts_at_position_zero)
{
	struct payload p = {123, 456};

	payload_init(&p, 42);
	ck_assert_uint_eq(p.seed, 42);
	ck_assert_uint_eq(p.pos, 0);
}
END_TEST

/* Pinned: load tests and other tools regenerate these bytes. */
START_TEST(test_payload_seed_0_and_1_give_pinned_bytes)
{
	static const unsigned char seed0[16] = {
		0xbf, 0xd4, 0x3c, 0xff, 0x26, 0x82, 0x21, 0x48,
		0x6f, 0x7e, 0x19, 0x4d, 0x2f, 0xdd, 0x06, 0xa7};
	static const unsigned char seed1[16] = {
		0xb8, 0xd5, 0xc0, 0x82, 0xfc, 0x23, 0xe4, 0xdc,
		0x1e, 0x61, 0x39, 0x74, 0x08, 0xab, 0x41, 0x5e};
	unsigned char buf[16];

	whole(0, buf, sizeof(buf));
	ck_assert_mem_eq(buf, seed0, sizeof(buf));
	whole(1, buf, sizeof(buf));
	ck_assert_mem_eq(buf, seed1, sizeof(buf));
}
END_TEST

START_TEST(test_payload_largest_seed_gives_pinned_bytes)
{
	static const unsigned char want[16] = {
		0x78, 0x0b, 0x81, 0x05, 0xe3, 0x18, 0x50, 0x44,
		0x37, 0x71, 0xa2, 0xb2, 0xa7, 0x0a, 0xc2, 0x5d};
	unsigned char buf[16];

	whole(UINT64_MAX, buf, sizeof(buf));
	ck_assert_mem_eq(buf, want, sizeof(buf));
}
END_TEST

START_TEST(test_payload_fill_from_any_position_without_the_prefix)
{
	static const unsigned char want[8] = {0x33, 0xd2, 0x36, 0xa6,
					      0xd2, 0x9d, 0x31, 0x91};
	unsigned char buf[8];
	struct payload p;

	payload_init(&p, 7);
	p.pos = 1000000;
	payload_fill(&p, buf, sizeof(buf));
	ck_assert_mem_eq(buf, want, sizeof(buf));
	ck_assert_uint_eq(p.pos, 1000008);
}
END_TEST

START_TEST(test_payload_split_chunks_equal_whole)
{
	static unsigned char want[STREAM_LEN], got[STREAM_LEN];
	size_t chunk, off, n;
	struct payload p;

	whole(99, want, sizeof(want));
	for (chunk = 1; chunk <= 17; chunk++) {
		memset(got, 0, sizeof(got));
		payload_init(&p, 99);
		for (off = 0; off < sizeof(got); off += n) {
			n = sizeof(got) - off < chunk ? sizeof(got) - off
						      : chunk;
			payload_fill(&p, got + off, n);
		}
		ck_assert_msg(memcmp(got, want, sizeof(got)) == 0,
			      "chunks of %zu differ from the whole", chunk);
		ck_assert_uint_eq(p.pos, sizeof(got));
	}
}
END_TEST

START_TEST(test_payload_uneven_chunks_equal_whole)
{
	static const size_t sizes[] = {3, 1, 12, 0, 5, 8, 9, 2, 1000, 7, 4000};
	static unsigned char want[STREAM_LEN], got[STREAM_LEN];
	size_t i, off = 0;
	struct payload p;

	whole(5, want, sizeof(want));
	payload_init(&p, 5);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		if (n > sizeof(got) - off)
			n = sizeof(got) - off;
		payload_fill(&p, got + off, n);
		off += n;
	}
	ck_assert_uint_eq(off, sizeof(got));
	ck_assert_mem_eq(got, want, sizeof(got));
}
END_TEST

START_TEST(test_payload_fill_zero_bytes_changes_nothing)
{
	unsigned char buf[4] = {1, 2, 3, 4};
	struct payload p;

	payload_init(&p, 3);
	p.pos = 5;
	payload_fill(&p, buf, 0);
	ck_assert_uint_eq(p.pos, 5);
	ck_assert_uint_eq(buf[0], 1);
	ck_assert_uint_eq(buf[3], 4);
}
END_TEST

START_TEST(test_payload_fill_writes_exactly_n_bytes)
{
	unsigned char buf[16];
	struct payload p;

	memset(buf, 0xaa, sizeof(buf));
	payload_init(&p, 11);
	p.pos = 3;
	payload_fill(&p, buf + 1, 6); /* within one word, unaligned */
	ck_assert_uint_eq(buf[0], 0xaa);
	ck_assert_uint_eq(buf[7], 0xaa);
	ck_assert_uint_eq(p.pos, 9);
}
END_TEST

static int
compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

START_TEST(test_payload_every_seed_starts_differently)
{
	enum { NSEEDS = 4096 };
	static uint64_t first[NSEEDS + 1];
	unsigned char buf[8];
	size_t i;

	for (i = 0; i < NSEEDS; i++) {
		whole(i, buf, sizeof(buf));
		memcpy(&first[i], buf, sizeof(buf));
	}
	whole(UINT64_MAX, buf, sizeof(buf));
	memcpy(&first[NSEEDS], buf, sizeof(buf));
	qsort(first, NSEEDS + 1, sizeof(first[0]), compare_u64);
	for (i = 1; i <= NSEEDS; i++)
		ck_assert_msg(first[i] != first[i - 1],
			      "two seeds share their first 8 bytes");
}
END_TEST

START_TEST(test_payload_bytes_cover_every_value)
{
	static unsigned char buf[64 * 1024];
	size_t count[256] = {0}, i;

	whole(0, buf, sizeof(buf));
	for (i = 0; i < sizeof(buf); i++)
		count[buf[i]]++;
	/* 256 expected each; a broken mixer is far off. */
	for (i = 0; i < 256; i++)
		ck_assert_msg(count[i] > 160 && count[i] < 360,
			      "byte 0x%02zx appears %zu times", i, count[i]);
}
END_TEST

START_TEST(test_payload_verify_accepts_stream_at_every_alignment)
{
	static unsigned char buf[64];
	size_t start, n, bad = 12345;
	struct payload p;

	for (start = 0; start < 16; start++) {
		for (n = 0; n <= 40; n++) {
			payload_init(&p, 8);
			p.pos = start;
			payload_fill(&p, buf, n);
			p.pos = start;
			ck_assert_int_eq(payload_verify(&p, buf, n, &bad), 0);
			ck_assert_uint_eq(p.pos, start + n);
			ck_assert_uint_eq(bad, 12345);
		}
	}
}
END_TEST

START_TEST(test_payload_verify_reports_first_mismatch_offset)
{
	static const size_t where[] = {0, 1, 5, 7, 8, 9, 15, 16, 63, 100, 199};
	unsigned char buf[200];
	size_t start, i, bad;
	struct payload p;

	for (start = 0; start < 8; start++) {
		for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
			payload_init(&p, 21);
			p.pos = start;
			payload_fill(&p, buf, sizeof(buf));
			buf[where[i]] ^= 0x01;
			/* A later difference must not hide the first. */
			if (where[i] + 3 < sizeof(buf))
				buf[where[i] + 3] ^= 0xff;
			p.pos = start;
			bad = 0xdead;
			ck_assert_int_eq(
				payload_verify(&p, buf, sizeof(buf), &bad), -1);
			ck_assert_uint_eq(bad, where[i]);
			ck_assert_uint_eq(p.pos, start);
		}
	}
}
END_TEST

START_TEST(test_payload_verify_rejects_another_seeds_stream)
{
	unsigned char buf[256];
	size_t bad = 0xdead;
	struct payload p;

	whole(1, buf, sizeof(buf));
	payload_init(&p, 2);
	ck_assert_int_eq(payload_verify(&p, buf, sizeof(buf), &bad), -1);
	ck_assert_uint_lt(bad, 8);
	ck_assert_uint_eq(p.pos, 0);
}
END_TEST

START_TEST(test_payload_verify_rejects_the_same_bytes_shifted)
{
	unsigned char buf[64];
	size_t bad;
	struct payload p;

	payload_init(&p, 4);
	p.pos = 1;
	payload_fill(&p, buf, sizeof(buf));
	payload_init(&p, 4);
	ck_assert_int_eq(payload_verify(&p, buf, sizeof(buf), &bad), -1);
}
END_TEST

START_TEST(test_payload_verify_in_chunks_then_catches_a_late_flip)
{
	static unsigned char buf[1 << 20];
	size_t off, n, bad = 0;
	struct payload p;

	whole(77, buf, sizeof(buf));
	buf[1000003] ^= 0x80;
	payload_init(&p, 77);
	for (off = 0; off < sizeof(buf); off += n) {
		n = sizeof(buf) - off < 4093 ? sizeof(buf) - off : 4093;
		if (payload_verify(&p, buf + off, n, &bad) == -1)
			break;
	}
	ck_assert_uint_lt(off, sizeof(buf));
	ck_assert_uint_eq(p.pos, off);
	ck_assert_uint_eq(p.pos + bad, 1000003);
}
END_TEST

START_TEST(test_payload_verify_zero_bytes_succeeds)
{
	unsigned char buf[1] = {0};
	size_t bad = 7;
	struct payload p;

	payload_init(&p, 1);
	p.pos = 3;
	ck_assert_int_eq(payload_verify(&p, buf, 0, &bad), 0);
	ck_assert_uint_eq(p.pos, 3);
	ck_assert_uint_eq(bad, 7);
}
END_TEST

static Suite *
payload_suite(void)
{
	Suite *s = suite_create("payload");
	TCase *tc;

	tc = tcase_create("fill");
	tcase_add_test(tc, test_payload_init_starts_at_position_zero);
	tcase_add_test(tc, test_payload_seed_0_and_1_give_pinned_bytes);
	tcase_add_test(tc, test_payload_largest_seed_gives_pinned_bytes);
	tcase_add_test(tc,
		       test_payload_fill_from_any_position_without_the_prefix);
	tcase_add_test(tc, test_payload_split_chunks_equal_whole);
	tcase_add_test(tc, test_payload_uneven_chunks_equal_whole);
	tcase_add_test(tc, test_payload_fill_zero_bytes_changes_nothing);
	tcase_add_test(tc, test_payload_fill_writes_exactly_n_bytes);
	tcase_add_test(tc, test_payload_every_seed_starts_differently);
	tcase_add_test(tc, test_payload_bytes_cover_every_value);
	suite_add_tcase(s, tc);

	tc = tcase_create("verify");
	tcase_add_test(tc,
		       test_payload_verify_accepts_stream_at_every_alignment);
	tcase_add_test(tc, test_payload_verify_reports_first_mismatch_offset);
	tcase_add_test(tc, test_payload_verify_rejects_another_seeds_stream);
	tcase_add_test(tc, test_payload_verify_rejects_the_same_bytes_shifted);
	tcase_add_test(tc,
		       test_payload_verify_in_chunks_then_catches_a_late_flip);
	tcase_add_test(tc, test_payload_verify_zero_bytes_succeeds);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return unit_run(payload_suite());
}
