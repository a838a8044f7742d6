/*
 * histogram.h: a log-linear histogram of unsigned 64-bit values (latencies
 * in nanoseconds, for echo-client's load mode): values below 64 are kept
 * exactly, larger ones in 32 equal buckets per power of two, so a bucket
 * is at most 1/32 (about 3%) of its values wide. Count, sum, minimum and
 * maximum are exact. Fixed size, no allocation, no I/O.
 */
#ifndef ECHO_HISTOGRAM_H
#define ECHO_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_SUB_BITS 5 /* 2^5 = 32 buckets per power of two */
#define HISTOGRAM_SUB_COUNT (1 << HISTOGRAM_SUB_BITS)
/* 64 exact values 0..63, then 32 buckets for each shift from 1 to 58. */
#define HISTOGRAM_BUCKETS ((64 - HISTOGRAM_SUB_BITS + 1) * HISTOGRAM_SUB_COUNT)

struct histogram {
	uint64_t count;
	uint64_t sum; /* wraps after 2^64; 584 years of nanoseconds */
	uint64_t min; /* UINT64_MAX while empty */
	uint64_t max;
	uint64_t buckets[HISTOGRAM_BUCKETS];
};

/* Empties h. */
void histogram_init(struct histogram *h);

/* Counts one value. */
void histogram_record(struct histogram *h, uint64_t v);

/* Adds every value counted in src to dst. */
void histogram_merge(struct histogram *dst, const struct histogram *src);

/*
 * The value below which pct percent (0 to 100) of the values lie: the
 * middle of the bucket holding the value of that rank, kept within the
 * exact minimum and maximum; 100 gives the exact maximum. 0 if empty.
 */
uint64_t histogram_percentile(const struct histogram *h, double pct);

/* The exact mean of the values counted, or 0 if none. */
double histogram_mean(const struct histogram *h);

/* The largest value counted, or 0 if none. */
uint64_t histogram_max(const struct histogram *h);

#endif
