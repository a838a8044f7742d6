/*
 * parse.c: number, size, duration and boolean parsing shared by echod and
 * echo-client. Pure functions: strict (no signs, no blanks, no trailing
 * garbage, no overflow), errors written into the caller's buffer.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

/* Reads the leading digits of s into *out; *end points past them. */
static int
parse_digits(const char *s, uint64_t *out, const char **end, char *err,
	     size_t errlen)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p)) {
		snprintf(err, errlen, "'%s' is not a number", s);
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10) {
			snprintf(err, errlen, "'%s' is too large", s);
			return -1;
		}
		v = v * 10 + d;
	}
	*out = v;
	*end = p;
	return 0;
}

static int
parse_check_range(const char *s, uint64_t v, uint64_t min, uint64_t max,
		  char *err, size_t errlen)
{
	if (v < min || v > max) {
		snprintf(err, errlen,
			 "'%s' is out of range (%" PRIu64 " to %" PRIu64 ")", s,
			 min, max);
		return -1;
	}
	return 0;
}

int
parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *err,
	   size_t errlen)
{
	uint64_t v;
	const char *end;

	if (parse_digits(s, &v, &end, err, errlen) == -1)
		return -1;
	if (*end != '\0') {
		snprintf(err, errlen, "'%s' is not a whole number", s);
		return -1;
	}
	if (parse_check_range(s, v, min, max, err, errlen) == -1)
		return -1;
	*out = v;
	return 0;
}

int
parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *err,
	   size_t errlen)
{
	uint64_t v, mult = 1;
	const char *end;

	if (parse_digits(s, &v, &end, err, errlen) == -1)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case '\0':
		break;
	case 'k':
		mult = 1024;
		end++;
		break;
	case 'm':
		mult = (uint64_t)1024 * 1024;
		end++;
		break;
	case 'g':
		mult = (uint64_t)1024 * 1024 * 1024;
		end++;
		break;
	default:
		goto bad;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end != '\0')
		goto bad;
	if (v > UINT64_MAX / mult) {
		snprintf(err, errlen, "'%s' is too large", s);
		return -1;
	}
	v *= mult;
	if (v < min || v > max) {
		char lo[32], hi[32];
		snprintf(err, errlen, "'%s' is out of range (%s to %s)", s,
			 parse_format_size(min, lo, sizeof(lo)),
			 parse_format_size(max, hi, sizeof(hi)));
		return -1;
	}
	*out = v;
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not a size (a number with k, m or g)",
		 s);
	return -1;
}

/*
 * Digits after a decimal point that a duration may carry: nine, down to
 * the nanosecond. A tenth is refused rather than silently ignored.
 */
#define PARSE_DURATION_FRACTION_SCALE ((uint64_t)1000000000)

int
parse_duration(const char *s, uint64_t min_ms, uint64_t max_ms,
	       uint64_t *out_ms, char *err, size_t errlen)
{
	uint64_t v, frac = 0, scale = 1, mult, part;
	const char *end;

	if (*s == '.')
		goto bad; /* ".5": a fraction needs its whole part */
	if (parse_digits(s, &v, &end, err, errlen) == -1)
		return -1;
	if (*end == '.') {
		for (end++; isdigit((unsigned char)*end); end++) {
			if (scale == PARSE_DURATION_FRACTION_SCALE)
				goto bad;
			frac = frac * 10 + (uint64_t)(*end - '0');
			scale *= 10;
		}
		if (scale == 1)
			goto bad; /* "5." */
	}
	if (*end == '\0' || strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0)
		mult = (uint64_t)60 * 1000;
	else if (strcmp(end, "h") == 0)
		mult = (uint64_t)3600 * 1000;
	else
		goto bad;
	/* frac < scale <= 10^9 and mult <= 3.6 * 10^6: part cannot
	 * overflow, and is below mult; the fraction of a ms is dropped. */
	part = frac * mult / scale;
	if (v > UINT64_MAX / mult || v * mult > UINT64_MAX - part) {
		snprintf(err, errlen, "'%s' is too large", s);
		return -1;
	}
	v = v * mult + part;
	if (v < min_ms || v > max_ms) {
		char lo[32], hi[32];
		snprintf(err, errlen, "'%s' is out of range (%s to %s)", s,
			 parse_format_duration(min_ms, lo, sizeof(lo)),
			 parse_format_duration(max_ms, hi, sizeof(hi)));
		return -1;
	}
	*out_ms = v;
	return 0;
bad:
	snprintf(err, errlen,
		 "'%s' is not a duration (a number with ms, s, m or h)", s);
	return -1;
}

int
parse_bool(const char *s, int *out, char *err, size_t errlen)
{
	static const char *const yes[] = {"yes", "on", "true", "1"};
	static const char *const no[] = {"no", "off", "false", "0"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	snprintf(err, errlen, "'%s' is not a boolean (yes or no)", s);
	return -1;
}

char *
parse_format_size(uint64_t n, char *buf, size_t len)
{
	static const char units[] = "gmk";
	int shift;

	for (shift = 30; shift > 0; shift -= 10) {
		uint64_t unit = (uint64_t)1 << shift;
		if (n != 0 && n % unit == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", n / unit,
				 units[(30 - shift) / 10]);
			return buf;
		}
	}
	snprintf(buf, len, "%" PRIu64, n);
	return buf;
}

char *
parse_format_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0");
	else if (ms % ((uint64_t)3600 * 1000) == 0)
		snprintf(buf, len, "%" PRIu64 "h",
			 ms / ((uint64_t)3600 * 1000));
	else if (ms % ((uint64_t)60 * 1000) == 0)
		snprintf(buf, len, "%" PRIu64 "m", ms / ((uint64_t)60 * 1000));
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "ms", ms);
	return buf;
}
