/*
 * fuzz_parse.c: libFuzzer target for common/parse.c. The input's first
 * byte picks a parser and the rest is its text; what parse_uint(),
 * parse_size() and parse_duration() accept must agree with strtoull() and
 * respect the range, and whatever parse_format_size() and
 * parse_format_duration() write must read back as the same number.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

#define FUZZ_FMT_LEN 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
fuzz_u64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* The digits that start s, as strtoull() reads them; -1 on overflow. */
static int
fuzz_digits(const char *s, uint64_t *v, const char **end)
{
	char *e;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*v = strtoull(s, &e, 10);
	*end = e;
	return errno == ERANGE ? -1 : 0;
}

/* format(x) reads back as x, for every x. */
static void
fuzz_round_trip(uint64_t x)
{
	char buf[FUZZ_FMT_LEN], err[128];
	uint64_t v;

	parse_format_size(x, buf, sizeof(buf));
	if (parse_size(buf, 0, UINT64_MAX, &v, err, sizeof(err)) == -1 ||
	    v != x)
		abort();
	parse_format_duration(x, buf, sizeof(buf));
	if (parse_duration(buf, 0, UINT64_MAX, &v, err, sizeof(err)) == -1 ||
	    v != x)
		abort();
}

/* s is accepted in [min, max] exactly when it holds a value there. */
static void
fuzz_range(int rc, int rcall, uint64_t v, uint64_t vall, uint64_t min,
	   uint64_t max)
{
	if (rcall == -1) {
		if (rc != -1)
			abort();
		return;
	}
	if (rc != (vall >= min && vall <= max ? 0 : -1))
		abort();
	if (rc == 0 && v != vall)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t min = 0, max = UINT64_MAX, v = 0, vall = 0, d;
	const char *end;
	char *s, *err;
	size_t errlen;
	int rc, rcall, b;

	if (size < 2)
		return 0;
	if (size >= 17) {
		min = fuzz_u64(data + 1);
		max = fuzz_u64(data + 9);
		fuzz_round_trip(min);
		fuzz_round_trip(max);
	}
	/* The text: everything after the first byte, NUL-terminated, in an
	 * exact-size copy; and an error buffer of a size the input picks. */
	if ((s = malloc(size)) == NULL)
		abort();
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	errlen = (size_t)(data[0] >> 2) * 4 + 1;
	if ((err = malloc(errlen)) == NULL)
		abort();

	switch (data[0] & 3) {
	case 0:
		rcall = parse_uint(s, 0, UINT64_MAX, &vall, err, errlen);
		rc = parse_uint(s, min, max, &v, err, errlen);
		fuzz_range(rc, rcall, v, vall, min, max);
		if (rcall == 0 && (fuzz_digits(s, &d, &end) == -1 ||
				   *end != '\0' || d != vall))
			abort();
		break;
	case 1:
		rcall = parse_size(s, 0, UINT64_MAX, &vall, err, errlen);
		rc = parse_size(s, min, max, &v, err, errlen);
		fuzz_range(rc, rcall, v, vall, min, max);
		if (rcall == 0) {
			if (fuzz_digits(s, &d, &end) == -1)
				abort();
			if (strcmp(end, "") != 0 && d > vall)
				abort();
			fuzz_round_trip(vall);
		}
		break;
	case 2:
		rcall = parse_duration(s, 0, UINT64_MAX, &vall, err, errlen);
		rc = parse_duration(s, min, max, &v, err, errlen);
		fuzz_range(rc, rcall, v, vall, min, max);
		if (rcall == 0) {
			if (fuzz_digits(s, &d, &end) == -1 || d > vall)
				abort();
			fuzz_round_trip(vall);
		}
		break;
	default:
		rc = parse_bool(s, &b, err, errlen);
		if (rc == 0 && b != 0 && b != 1)
			abort();
		break;
	}
	if (rc == -1 && memchr(err, '\0', errlen) == NULL)
		abort();
	free(s);
	free(err);
	return 0;
}
