/*
 * breaker: the worker's circuit breaker around its sink, as a pure state
 * machine: no clock, no I/O, no threads; the caller passes the time in
 * (monotonic ms) and logs the transitions these functions report.
 *
 *   CLOSED --failure--> OPEN --wait elapsed--> HALF_OPEN --success--> CLOSED
 *                        ^                         |
 *                        +---------failure---------+
 *
 * The wait after the k-th consecutive failure is base * 2^(k-1), at most
 * max, of which a random part (up to a half) is taken off so that workers
 * that failed together do not all retry together.
 */
#ifndef SLUICE_WRK_BREAKER_H
#define SLUICE_WRK_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

/* The values a worker reports as sink_breaker. */
enum wrk_breaker_state {
	WRK_BREAKER_CLOSED = 0,
	WRK_BREAKER_OPEN = 1,
	WRK_BREAKER_HALF_OPEN = 2,
};

/* Embedded by its owner; fields are private. */
typedef struct wrk_breaker {
	int state;          /* enum wrk_breaker_state */
	uint32_t failures;  /* consecutive failures; 0 when closed */
	int64_t base_ms;
	int64_t max_ms;
	int64_t retry_at_ms; /* OPEN: when a trial is allowed */
	uint64_t rng;        /* xorshift state, never 0 */
} wrk_breaker;

/* base_ms >= 1 and max_ms >= base_ms (smaller values are raised to
 * those); seed picks the jitter sequence (any value). */
void wrk_breaker_init(wrk_breaker *b, int64_t base_ms, int64_t max_ms, uint64_t seed);

/* May a batch go to the sink now? CLOSED and HALF_OPEN: yes. OPEN: no
 * until the wait has elapsed; then the breaker turns HALF_OPEN and says
 * yes (that batch is the trial). */
bool wrk_breaker_allow(wrk_breaker *b, int64_t now_ms);

/* The sink took a batch: CLOSED. Returns the state before. */
int wrk_breaker_success(wrk_breaker *b);

/* The sink failed: OPEN, with the next wait. Returns the state before. */
int wrk_breaker_failure(wrk_breaker *b, int64_t now_ms);

/* ms until a trial is allowed: 0 unless OPEN. */
int64_t wrk_breaker_wait_ms(const wrk_breaker *b, int64_t now_ms);

int wrk_breaker_state_of(const wrk_breaker *b);

/* "closed", "open" or "half-open". */
const char *wrk_breaker_name(int state);

#endif
