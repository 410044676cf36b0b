/* breaker_test: the worker's circuit breaker as a state machine, with the
 * time passed in: closed → open → half-open → closed or open again, the
 * exponential backoff, its cap, and its jitter. */
#include "breaker.h"
#include "harness.h"

static void
starts_closed_and_allows(void)
{
	wrk_breaker b;
	wrk_breaker_init(&b, 500, 30000, 1);
	CHECK_EQ(wrk_breaker_state_of(&b), WRK_BREAKER_CLOSED);
	CHECK(wrk_breaker_allow(&b, 0));
	CHECK(wrk_breaker_allow(&b, 1000000));
	CHECK_EQ(wrk_breaker_wait_ms(&b, 0), 0);
	CHECK_STR(wrk_breaker_name(WRK_BREAKER_CLOSED), "closed");
}

static void
failure_opens_then_half_open_after_wait(void)
{
	wrk_breaker b;
	wrk_breaker_init(&b, 500, 30000, 7);
	CHECK_EQ(wrk_breaker_failure(&b, 1000), WRK_BREAKER_CLOSED);
	CHECK_EQ(wrk_breaker_state_of(&b), WRK_BREAKER_OPEN);
	int64_t wait = wrk_breaker_wait_ms(&b, 1000);
	CHECK(wait >= 250 && wait <= 500); /* base, less up to half of jitter */
	CHECK(!wrk_breaker_allow(&b, 1000));
	CHECK(!wrk_breaker_allow(&b, 1000 + wait - 1));
	CHECK_EQ(wrk_breaker_state_of(&b), WRK_BREAKER_OPEN);
	CHECK(wrk_breaker_allow(&b, 1000 + wait));
	CHECK_EQ(wrk_breaker_state_of(&b), WRK_BREAKER_HALF_OPEN);
	CHECK_EQ(wrk_breaker_wait_ms(&b, 1000 + wait), 0);
	/* half-open lets the trial through */
	CHECK(wrk_breaker_allow(&b, 1000 + wait));
}

static void
trial_success_closes(void)
{
	wrk_breaker b;
	wrk_breaker_init(&b, 100, 1000, 3);
	wrk_breaker_failure(&b, 0);
	CHECK(wrk_breaker_allow(&b, 100));
	CHECK_EQ(wrk_breaker_success(&b), WRK_BREAKER_HALF_OPEN);
	CHECK_EQ(wrk_breaker_state_of(&b), WRK_BREAKER_CLOSED);
	/* and the backoff starts again from base */
	wrk_breaker_failure(&b, 5000);
	CHECK(wrk_breaker_wait_ms(&b, 5000) <= 100);
}

static void
trial_failure_reopens_longer(void)
{
	wrk_breaker b;
	wrk_breaker_init(&b, 100, 100000, 11);
	int64_t now = 0;
	/* the k-th failure waits in [base*2^(k-1) / 2, base*2^(k-1)] */
	for (int k = 1; k <= 8; k++) {
		int was = wrk_breaker_failure(&b, now);
		CHECK_EQ(was, k == 1 ? WRK_BREAKER_CLOSED : WRK_BREAKER_HALF_OPEN);
		int64_t full = 100LL << (k - 1);
		int64_t wait = wrk_breaker_wait_ms(&b, now);
		if (wait < full / 2 || wait > full)
			th_fail(__FILE__, __LINE__, "failure %d: wait %lld not in [%lld, %lld]", k,
			        (long long)wait, (long long)full / 2, (long long)full);
		now += wait;
		CHECK(wrk_breaker_allow(&b, now));
		CHECK_EQ(wrk_breaker_state_of(&b), WRK_BREAKER_HALF_OPEN);
	}
}

static void
backoff_is_capped(void)
{
	wrk_breaker b;
	wrk_breaker_init(&b, 500, 30000, 5);
	int64_t now = 0;
	for (int k = 0; k < 200; k++) {
		wrk_breaker_failure(&b, now);
		int64_t wait = wrk_breaker_wait_ms(&b, now);
		CHECK(wait >= 1 && wait <= 30000);
		if (k > 10)
			CHECK(wait >= 15000);
		now += wait;
		wrk_breaker_allow(&b, now);
	}
}

static void
jitter_spreads_workers(void)
{
	/* workers that failed at the same moment do not all retry together */
	int64_t seen[16];
	int distinct = 0;
	for (int w = 0; w < 16; w++) {
		wrk_breaker b;
		wrk_breaker_init(&b, 1000, 60000, (uint64_t)(w + 1) * 0x1234567ull);
		for (int k = 0; k < 4; k++)
			wrk_breaker_failure(&b, 0);
		seen[w] = wrk_breaker_wait_ms(&b, 0);
		int dup = 0;
		for (int i = 0; i < w; i++)
			dup |= seen[i] == seen[w];
		distinct += !dup;
	}
	CHECK(distinct >= 12);
}

static void
odd_settings_are_raised(void)
{
	wrk_breaker b;
	wrk_breaker_init(&b, 0, -5, 0); /* seed 0 too */
	wrk_breaker_failure(&b, 10);
	CHECK_EQ(wrk_breaker_wait_ms(&b, 10), 1);
	CHECK(wrk_breaker_allow(&b, 11));
}

static void
names(void)
{
	CHECK_STR(wrk_breaker_name(WRK_BREAKER_OPEN), "open");
	CHECK_STR(wrk_breaker_name(WRK_BREAKER_HALF_OPEN), "half-open");
	CHECK_STR(wrk_breaker_name(42), "?");
}

static const th_case cases[] = {
	TH_CASE(starts_closed_and_allows),
	TH_CASE(failure_opens_then_half_open_after_wait),
	TH_CASE(trial_success_closes),
	TH_CASE(trial_failure_reopens_longer),
	TH_CASE(backoff_is_capped),
	TH_CASE(jitter_spreads_workers),
	TH_CASE(odd_settings_are_raised),
	TH_CASE(names),
	{NULL, NULL},
};

TH_MAIN(cases)
