/*
 * parse.h: pure parsers for the numbers that echod and echo-client read
 * from command lines and config files: whole numbers in a range, byte
 * sizes with k/m/g suffixes, durations with ms/s/m/h suffixes and an
 * optional decimal fraction, booleans. They never print or exit; on error
 * they return -1 and describe the problem in the caller's buffer.
 */
#ifndef ECHO_PARSE_H
#define ECHO_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Whole decimal number in [min, max]. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out,
	       char *err, size_t errlen);

/* Byte size: digits with an optional k, m or g suffix (powers of 1024,
 * either case, optional trailing "b"/"B"), within [min, max]. */
int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out,
	       char *err, size_t errlen);

/* Duration: digits, optionally with a decimal fraction of up to nine
 * digits ("1.5", "0.25s", "2.5m"), and an optional ms, s, m or h suffix;
 * a bare number is seconds. Result in milliseconds, the fraction of a
 * millisecond dropped ("1.0005s" is 1000), within [min_ms, max_ms]. */
int parse_duration(const char *s, uint64_t min_ms, uint64_t max_ms,
		   uint64_t *out_ms, char *err, size_t errlen);

/* Boolean: yes/no, on/off, true/false, 1/0 (any case). */
int parse_bool(const char *s, int *out, char *err, size_t errlen);

/* Formats a byte count the way parse_size() reads it back ("1m", "64k",
 * "100"). Returns buf. */
char *parse_format_size(uint64_t n, char *buf, size_t len);

/* Formats milliseconds the way parse_duration() reads them ("10s",
 * "250ms", "0"). Returns buf. */
char *parse_format_duration(uint64_t ms, char *buf, size_t len);

#endif
