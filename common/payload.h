/*
 * payload.h: the deterministic pseudo-random byte stream that echo-client
 * sends with --size and that load tests send and verify. The stream is a
 * pure function of (seed, position), so it can be produced and checked in
 * chunks of any size without buffering. No I/O, no allocation.
 */
#ifndef ECHO_PAYLOAD_H
#define ECHO_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* A cursor into the stream of one seed. */
struct payload {
	uint64_t seed;
	uint64_t pos; /* offset of the next byte */
};

/* Starts a cursor at position 0 of seed's stream. */
void payload_init(struct payload *p, uint64_t seed);

/* Writes the next n bytes of the stream into buf and advances by n. */
void payload_fill(struct payload *p, unsigned char *buf, size_t n);

/*
 * Compares buf with the next n bytes of the stream. On a match, advances
 * by n and returns 0. Otherwise returns -1 with the offset in buf of the
 * first differing byte in *bad_offset and leaves the cursor where it was,
 * so the stream offset of the difference is p->pos + *bad_offset.
 */
int payload_verify(struct payload *p, const unsigned char *buf, size_t n,
		   size_t *bad_offset);

#endif
