/*
 * hist: a latency histogram with bounded relative error (HDR-style
 * log-linear buckets). Values are unsigned integers in whatever unit the
 * caller picks (Sluice records microseconds). Values below 128 are exact;
 * above, each power of two is split into 64 buckets, so any quantile is
 * within 1/64 (1.6%) of the true value. Not thread-safe: one owner per
 * histogram, or merge copies.
 */
#ifndef SLUICE_HIST_H
#define SLUICE_HIST_H

#include <stdint.h>

typedef struct hist hist;

/* Returns NULL on out of memory. */
hist *hist_alloc(void);
void hist_free(hist *h); /* accepts NULL */
void hist_reset(hist *h);

void hist_record(hist *h, uint64_t value);
void hist_record_n(hist *h, uint64_t value, uint64_t count);
/* Adds every count of src into dst. */
void hist_merge(hist *dst, const hist *src);

uint64_t hist_count(const hist *h);
uint64_t hist_min(const hist *h); /* 0 when empty */
uint64_t hist_max(const hist *h);
double hist_mean(const hist *h);
/* Smallest recorded bucket bound at or above quantile q (0..1), at most max. */
uint64_t hist_quantile(const hist *h, double q);
/* Number of recorded values <= bound (for Prometheus "le" buckets). */
uint64_t hist_count_le(const hist *h, uint64_t bound);
/* Sum of the recorded values (exact). */
uint64_t hist_sum(const hist *h);

#endif
