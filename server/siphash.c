/*
 * siphash.c: SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", 2012), the keyed hash of addresses a peer chooses.
 * Keyed with a secret, it denies a client that picks its addresses (an
 * IPv6 /64 holds 2^64) the power to put them all in one bucket of a
 * table, as redis, CPython and Linux use it for the same reason. Pure.
 */
#include <endian.h>
#include <string.h>

#include "echod.h"

static inline uint64_t
sip_rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

/* One SipRound over the state v0..v3. */
static inline void
sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = sip_rotl(v[1], 13);
	v[1] ^= v[0];
	v[0] = sip_rotl(v[0], 32);
	v[2] += v[3];
	v[3] = sip_rotl(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = sip_rotl(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = sip_rotl(v[1], 17);
	v[1] ^= v[2];
	v[2] = sip_rotl(v[2], 32);
}

/* Takes in one 8-byte word of the message: c = 2 rounds. */
static inline void
sip_absorb(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	sip_round(v);
	sip_round(v);
	v[0] ^= m;
}

/* Eight bytes as a little-endian number, whatever the host's order (one
 * load on x86). */
static uint64_t
sip_load(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

uint64_t
siphash24(const void *in, size_t len, const unsigned char key[16])
{
	const unsigned char *p = in, *end = p + (len & ~(size_t)7);
	uint64_t k0 = sip_load(key), k1 = sip_load(key + 8);
	uint64_t v[4] = {k0 ^ 0x736f6d6570736575u, k1 ^ 0x646f72616e646f6du,
			 k0 ^ 0x6c7967656e657261u, k1 ^ 0x7465646279746573u};
	unsigned char last[8] = {0};

	for (; p != end; p += 8)
		sip_absorb(v, sip_load(p));
	/* The last 0-7 bytes, and the length's low byte on top. */
	memcpy(last, p, len & 7);
	last[7] = (unsigned char)len;
	sip_absorb(v, sip_load(last));
	/* Finalization: d = 4 rounds. */
	v[2] ^= 0xff;
	sip_round(v);
	sip_round(v);
	sip_round(v);
	sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}
