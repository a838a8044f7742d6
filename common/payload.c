/*
 * payload.c: the payload stream. Word i (8 bytes, little-endian) of seed s
 * is splitmix64's finaliser applied to key(s) + i * golden ratio, where
 * key(s) is the finaliser of s + golden ratio: bijections all, so two
 * seeds always differ in their first word. A few ns per 8 bytes.
 */
#include <endian.h>
#include <string.h>

#include "payload.h"

#define PAYLOAD_GOLDEN 0x9e3779b97f4a7c15ULL
#define PAYLOAD_WORD 8

/* splitmix64's output function: a bijection on 64-bit values. */
static uint64_t
payload_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Offset by the golden ratio first: payload_mix(0) is 0, and seed 0
 * must not start with eight zero bytes. */
static uint64_t
payload_key(uint64_t seed)
{
	return payload_mix(seed + PAYLOAD_GOLDEN);
}

/* Word index of the stream, in the byte order it is sent in. */
static uint64_t
payload_word(uint64_t key, uint64_t index)
{
	return htole64(payload_mix(key + index * PAYLOAD_GOLDEN));
}

void
payload_init(struct payload *p, uint64_t seed)
{
	p->seed = seed;
	p->pos = 0;
}

void
payload_fill(struct payload *p, unsigned char *buf, size_t n)
{
	uint64_t key = payload_key(p->seed), pos = p->pos, w;
	size_t skip = (size_t)(pos % PAYLOAD_WORD), k;

	if (skip != 0 && n > 0) {
		/* Finish the word a previous call started. */
		unsigned char word[PAYLOAD_WORD];
		w = payload_word(key, pos / PAYLOAD_WORD);
		memcpy(word, &w, sizeof(word));
		k = PAYLOAD_WORD - skip < n ? PAYLOAD_WORD - skip : n;
		memcpy(buf, word + skip, k);
		buf += k;
		n -= k;
		pos += k;
	}
	for (; n >= PAYLOAD_WORD; buf += PAYLOAD_WORD, n -= PAYLOAD_WORD) {
		w = payload_word(key, pos / PAYLOAD_WORD);
		memcpy(buf, &w, sizeof(w));
		pos += PAYLOAD_WORD;
	}
	if (n > 0) {
		w = payload_word(key, pos / PAYLOAD_WORD);
		memcpy(buf, &w, n);
		pos += n;
	}
	p->pos = pos;
}

/* Offset of the first byte where a and b differ; they must differ. */
static size_t
payload_first_difference(const unsigned char *a, const unsigned char *b,
			 size_t n)
{
	size_t i;

	for (i = 0; i < n && a[i] == b[i]; i++)
		;
	return i;
}

int
payload_verify(struct payload *p, const unsigned char *buf, size_t n,
	       size_t *bad_offset)
{
	uint64_t key = payload_key(p->seed), pos = p->pos, w, got;
	unsigned char word[PAYLOAD_WORD];
	size_t skip = (size_t)(pos % PAYLOAD_WORD), done = 0, k;

	if (skip != 0 && n > 0) {
		w = payload_word(key, pos / PAYLOAD_WORD);
		memcpy(word, &w, sizeof(word));
		k = PAYLOAD_WORD - skip < n ? PAYLOAD_WORD - skip : n;
		if (memcmp(buf, word + skip, k) != 0) {
			*bad_offset =
				payload_first_difference(buf, word + skip, k);
			return -1;
		}
		done = k;
	}
	for (; n - done >= PAYLOAD_WORD; done += PAYLOAD_WORD) {
		w = payload_word(key, (pos + done) / PAYLOAD_WORD);
		memcpy(&got, buf + done, sizeof(got));
		if (got != w) {
			memcpy(word, &w, sizeof(word));
			*bad_offset = done +
				      payload_first_difference(buf + done, word,
							       PAYLOAD_WORD);
			return -1;
		}
	}
	if (n > done) {
		w = payload_word(key, (pos + done) / PAYLOAD_WORD);
		memcpy(word, &w, sizeof(word));
		if (memcmp(buf + done, word, n - done) != 0) {
			*bad_offset =
				done + payload_first_difference(buf + done,
								word, n - done);
			return -1;
		}
	}
	p->pos = pos + n;
	return 0;
}
