/*
 * histogram.c: the log-linear histogram. Bucket i < 64 holds the value i;
 * above, with shift = i / 32 - 1, bucket i holds the 2^shift values from
 * (32 + i % 32) << shift on: a value's bucket is its top six bits and the
 * number of bits below them, as in HdrHistogram.
 */
#include <string.h>

#include "histogram.h"

/* Values below this are their own bucket. */
#define HISTOGRAM_EXACT ((uint64_t)2 * HISTOGRAM_SUB_COUNT)

static unsigned
histogram_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < HISTOGRAM_EXACT)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	shift = msb - HISTOGRAM_SUB_BITS;
	return shift * HISTOGRAM_SUB_COUNT + (unsigned)(v >> shift);
}

/* The smallest value of bucket i, and how many values it holds. */
static uint64_t
histogram_bucket_low(unsigned i, uint64_t *width)
{
	unsigned shift;

	if (i < HISTOGRAM_EXACT) {
		*width = 1;
		return i;
	}
	shift = i / HISTOGRAM_SUB_COUNT - 1;
	*width = (uint64_t)1 << shift;
	return (uint64_t)(HISTOGRAM_SUB_COUNT + i % HISTOGRAM_SUB_COUNT)
	       << shift;
}

void
histogram_init(struct histogram *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void
histogram_record(struct histogram *h, uint64_t v)
{
	h->buckets[histogram_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void
histogram_merge(struct histogram *dst, const struct histogram *src)
{
	unsigned i;

	if (src->count == 0)
		return;
	for (i = 0; i < HISTOGRAM_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t
histogram_percentile(const struct histogram *h, double pct)
{
	uint64_t rank, seen = 0, low, width, mid;
	double r;
	unsigned i;

	if (h->count == 0)
		return 0;
	if (pct >= 100.0)
		return h->max;
	if (pct <= 0.0)
		return h->min;
	/* The rank of the value wanted, 1-based: ceil(pct% of count). */
	r = pct / 100.0 * (double)h->count;
	rank = (uint64_t)r;
	if ((double)rank < r)
		rank++;
	if (rank == 0)
		rank = 1;
	for (i = 0; i < HISTOGRAM_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			break;
	}
	if (i == HISTOGRAM_BUCKETS)
		return h->max; /* not reached: the buckets sum to count */
	low = histogram_bucket_low(i, &width);
	mid = low + (width - 1) / 2;
	if (mid < h->min)
		return h->min;
	if (mid > h->max)
		return h->max;
	return mid;
}

double
histogram_mean(const struct histogram *h)
{
	if (h->count == 0)
		return 0.0;
	return (double)h->sum / (double)h->count;
}

uint64_t
histogram_max(const struct histogram *h)
{
	return h->count == 0 ? 0 : h->max;
}
