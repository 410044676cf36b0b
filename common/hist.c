/* hist: log-linear buckets; see hist.h for the error bound. */
#include "hist.h"

#include <stdlib.h>
#include <string.h>

#define SUB_BITS 6
#define SUB (1u << SUB_BITS)          /* buckets per power of two */
#define EXACT (2u * SUB)              /* values below this are exact */
#define NBUCKETS (EXACT + (64 - SUB_BITS - 1) * SUB)

struct hist {
	uint64_t total;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t counts[NBUCKETS];
};

static unsigned
bucket_of(uint64_t v)
{
	if (v < EXACT)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= SUB_BITS + 1 */
	unsigned sub = (unsigned)(v >> (e - SUB_BITS)) & (SUB - 1);
	return EXACT + (e - SUB_BITS - 1) * SUB + sub;
}

/* Largest value that falls in bucket b. */
static uint64_t
bucket_top(unsigned b)
{
	if (b < EXACT)
		return b;
	unsigned e = (b - EXACT) / SUB + SUB_BITS + 1;
	uint64_t sub = (b - EXACT) % SUB;
	uint64_t base = ((uint64_t)SUB + sub) << (e - SUB_BITS);
	return base + ((uint64_t)1 << (e - SUB_BITS)) - 1;
}

hist *
hist_alloc(void)
{
	hist *h = calloc(1, sizeof(*h));
	if (h != NULL)
		h->min = UINT64_MAX;
	return h;
}

void
hist_free(hist *h)
{
	free(h);
}

void
hist_reset(hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void
hist_record_n(hist *h, uint64_t v, uint64_t n)
{
	if (n == 0)
		return;
	h->counts[bucket_of(v)] += n;
	h->total += n;
	h->sum += v * n;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void
hist_record(hist *h, uint64_t v)
{
	hist_record_n(h, v, 1);
}

void
hist_merge(hist *dst, const hist *src)
{
	if (src->total == 0)
		return;
	for (unsigned i = 0; i < NBUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t
hist_count(const hist *h)
{
	return h->total;
}

uint64_t
hist_min(const hist *h)
{
	return h->total ? h->min : 0;
}

uint64_t
hist_max(const hist *h)
{
	return h->max;
}

uint64_t
hist_sum(const hist *h)
{
	return h->sum;
}

double
hist_mean(const hist *h)
{
	return h->total ? (double)h->sum / (double)h->total : 0.0;
}

uint64_t
hist_quantile(const hist *h, double q)
{
	if (h->total == 0)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	/* rank of the q-quantile, 1-based, rounded up */
	uint64_t rank = (uint64_t)(q * (double)h->total);
	if ((double)rank < q * (double)h->total)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < NBUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t top = bucket_top(i);
			return top < h->max ? top : h->max;
		}
	}
	return h->max;
}

uint64_t
hist_count_le(const hist *h, uint64_t bound)
{
	uint64_t n = 0;
	unsigned last = bucket_of(bound);
	/* buckets wholly at or below bound; the bucket holding bound counts only
	 * if its top is <= bound, so the answer never over-counts */
	for (unsigned i = 0; i < last; i++)
		n += h->counts[i];
	if (bucket_top(last) <= bound)
		n += h->counts[last];
	return n;
}
