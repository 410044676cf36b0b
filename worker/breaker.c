/* breaker: the sink's circuit breaker; see breaker.h. */
#include "breaker.h"

#include <assert.h>

/* Backoff doubles up to 2^MAX_SHIFT times base (then max applies anyway). */
#define MAX_SHIFT 30

static uint64_t
next_random(wrk_breaker *b)
{
	uint64_t x = b->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	b->rng = x;
	return x;
}

void
wrk_breaker_init(wrk_breaker *b, int64_t base_ms, int64_t max_ms, uint64_t seed)
{
	b->state = WRK_BREAKER_CLOSED;
	b->failures = 0;
	b->base_ms = base_ms < 1 ? 1 : base_ms;
	b->max_ms = max_ms < b->base_ms ? b->base_ms : max_ms;
	b->retry_at_ms = 0;
	b->rng = seed != 0 ? seed : 0x9E3779B97F4A7C15ull;
}

bool
wrk_breaker_allow(wrk_breaker *b, int64_t now_ms)
{
	if (b->state != WRK_BREAKER_OPEN)
		return true;
	if (now_ms < b->retry_at_ms)
		return false;
	b->state = WRK_BREAKER_HALF_OPEN;
	return true;
}

int
wrk_breaker_success(wrk_breaker *b)
{
	int was = b->state;
	b->state = WRK_BREAKER_CLOSED;
	b->failures = 0;
	b->retry_at_ms = 0;
	return was;
}

int
wrk_breaker_failure(wrk_breaker *b, int64_t now_ms)
{
	int was = b->state;
	if (b->failures < UINT32_MAX)
		b->failures++;
	uint32_t shift = b->failures - 1 < MAX_SHIFT ? b->failures - 1 : MAX_SHIFT;
	int64_t wait = b->base_ms;
	while (shift-- > 0 && wait < b->max_ms)
		wait *= 2;
	if (wait > b->max_ms)
		wait = b->max_ms;
	/* equal jitter: keep at least half the wait, randomize the rest */
	int64_t half = wait / 2;
	if (half > 0)
		wait -= (int64_t)(next_random(b) % (uint64_t)(half + 1));
	assert(wait >= 1);
	b->state = WRK_BREAKER_OPEN;
	b->retry_at_ms = now_ms + wait;
	return was;
}

int64_t
wrk_breaker_wait_ms(const wrk_breaker *b, int64_t now_ms)
{
	if (b->state != WRK_BREAKER_OPEN || now_ms >= b->retry_at_ms)
		return 0;
	return b->retry_at_ms - now_ms;
}

int
wrk_breaker_state_of(const wrk_breaker *b)
{
	return b->state;
}

const char *
wrk_breaker_name(int state)
{
	switch (state) {
	case WRK_BREAKER_CLOSED: return "closed";
	case WRK_BREAKER_OPEN: return "open";
	case WRK_BREAKER_HALF_OPEN: return "half-open";
	default: return "?";
	}
}
