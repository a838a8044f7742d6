/*
 * test_siphash.c: unit tests for server/siphash.c: the reference test
 * vectors of SipHash-2-4 (key 00..0f, messages 00..n-1, for every length
 * up to 17, the length of an address key), and the key mattering.
 */
#include <check.h>
#include <stdint.h>

#include "echod.h"
#include "unit.h"

/* From the reference implementation's vectors_sip64. */
static const uint64_t sip_vectors[18] = {
	0x726fdb47dd0e0e31u, 0x74f839c593dc67fdu, 0x0d6c8009d9a94f5au,
	0x85676696d7fb7e2du, 0xcf2794e0277187b7u, 0x18765564cd99a68du,
	0xcbc9466e58fee3ceu, 0xab0200f58b01d137u, 0x93f5f5799a932462u,
	0x9e0082df0ba9e4b0u, 0x7a5dbbc594ddb9f3u, 0xf4b32f46226bada7u,
	0x751e8fbc860ee5fbu, 0x14ea5627c0843d90u, 0xf723ca908e7af2eeu,
	0xa129ca6149be45e5u, 0x3f2acc7f57c29bdbu, 0x699ae9f52cbe4794u,
};

START_TEST(test_siphash_reference_vectors)
{
	unsigned char key[16], msg[18];
	unsigned i;

	for (i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;
	for (i = 0; i < 18; i++)
		ck_assert_msg(siphash24(msg, i, key) == sip_vectors[i],
			      "length %u: got %016llx, want %016llx", i,
			      (unsigned long long)siphash24(msg, i, key),
			      (unsigned long long)sip_vectors[i]);
}
END_TEST

/* Every key bit changes the hash of one message. */
START_TEST(test_siphash_every_key_bit_matters)
{
	unsigned char key[16] = {0}, msg[17] = {6, 0x20, 0x01, 0x0d, 0xb8};
	uint64_t base = siphash24(msg, sizeof(msg), key);
	unsigned bit;

	for (bit = 0; bit < 128; bit++) {
		key[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		ck_assert_msg(siphash24(msg, sizeof(msg), key) != base,
			      "key bit %u", bit);
		key[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
}
END_TEST

static Suite *
siphash_suite(void)
{
	Suite *s = suite_create("siphash");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_siphash_reference_vectors);
	tcase_add_test(tc, test_siphash_every_key_bit_matters);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_run(siphash_suite());
}
