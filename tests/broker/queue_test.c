/* queue_test: the in-memory index on its own: orderings, timers, removal. */
#include "harness.h"
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>

static cfg_queue settings = {.max_depth = 0, .max_attempts = 5, .visibility_ms = 30000};

static brk_msg
msg(uint64_t id, int32_t prio, int64_t due)
{
	brk_msg m = {.id = id, .priority = prio, .due_ms = due, .enqueued_ms = 0, .len = 1};
	return m;
}

static void
ready_order_is_priority_then_id(void)
{
	brk_index *x = brk_index_alloc();
	brk_queue *q = brk_index_queue_add(x, "q", 1, 1, &settings);
	int32_t prios[] = {0, 5, 0, 5, -1, 9};
	for (int i = 0; i < 6; i++) {
		brk_msg m = msg((uint64_t)i + 1, prios[i], 0);
		CHECK(brk_index_add(x, q, &m, 100) != NULL);
	}
	brk_msg *peek[6];
	CHECK_EQ(brk_queue_peek(q, peek, 6), 6);
	uint64_t want[] = {6, 2, 4, 1, 3, 5};
	for (int i = 0; i < 6; i++)
		CHECK_EQ(peek[i]->id, want[i]);
	for (int i = 0; i < 6; i++) {
		brk_msg *m = brk_index_lease_next(x, q, 77, 1000);
		CHECK_EQ(m->id, want[i]);
		CHECK_EQ(m->attempts, 1);
		CHECK_EQ(m->state, BRK_MSG_LEASED);
	}
	CHECK(brk_index_lease_next(x, q, 77, 1000) == NULL);
	CHECK_EQ(brk_queue_count(q).leased, 6);
	brk_index_free(x);
}

static void
timers_fire_in_due_order(void)
{
	brk_index *x = brk_index_alloc();
	brk_queue *q = brk_index_queue_add(x, "q", 1, 1, &settings);
	int64_t dues[] = {500, 100, 300, 200, 400};
	for (int i = 0; i < 5; i++) {
		brk_msg m = msg((uint64_t)i + 1, 0, dues[i]);
		brk_index_add(x, q, &m, 0);
	}
	CHECK_EQ(brk_queue_count(q).delayed, 5);
	int64_t last = 0;
	brk_msg *m;
	while ((m = brk_index_next_due(x)) != NULL) {
		CHECK(m->due_ms >= last);
		last = m->due_ms;
		brk_index_release(x, m, NULL, m->due_ms, m->due_ms);
	}
	CHECK_EQ(brk_queue_count(q).ready, 5);
	CHECK_EQ(brk_queue_count(q).delayed, 0);
	brk_index_free(x);
}

static void
many_messages_add_find_remove(void)
{
	brk_index *x = brk_index_alloc();
	brk_queue *q = brk_index_queue_add(x, "q", 1, 1, &settings);
	enum { N = 100000 };
	for (uint64_t i = 1; i <= N; i++) {
		brk_msg m = msg(i, (int32_t)(i % 3), (int64_t)(i % 7 == 0 ? 10 : 0));
		CHECK(brk_index_add(x, q, &m, 5) != NULL);
	}
	CHECK_EQ(brk_index_count(x), N);
	/* remove every other one, in a scattered order */
	for (uint64_t i = 2; i <= N; i += 2) {
		brk_msg *m = brk_index_find(x, (i * 7919) % N + 1);
		if (m != NULL)
			brk_index_remove(x, m);
	}
	uint64_t left = 0;
	for (uint64_t i = 1; i <= N; i++)
		left += brk_index_find(x, i) != NULL;
	CHECK_EQ(left, brk_index_count(x));
	CHECK_EQ(brk_queue_size(q), brk_index_count(x));
	brk_index_free(x);
}

static void
queues_by_name_and_dead_suffix(void)
{
	brk_index *x = brk_index_alloc();
	char name[32];
	for (int i = 0; i < 300; i++) {
		int n = snprintf(name, sizeof(name), "queue-%d", i);
		CHECK(brk_index_queue_add(x, name, (size_t)n, i + 1, &settings) != NULL);
	}
	CHECK(brk_index_queue(x, "queue-299", 9) != NULL);
	CHECK(brk_index_queue(x, "queue-300", 9) == NULL);
	CHECK_EQ(brk_index_nqueues(x), 300);
	brk_queue *d = brk_index_queue_add(x, "jobs.dead", 9, 999, &settings);
	CHECK(brk_queue_is_dead(d));
	CHECK(!brk_queue_is_dead(brk_index_queue(x, "queue-1", 7)));
	CHECK(brk_index_queue_by_db_id(x, 999) == d);
	brk_index_free(x);
}

static const th_case cases[] = {
	TH_CASE(ready_order_is_priority_then_id),
	TH_CASE(timers_fire_in_due_order),
	TH_CASE(many_messages_add_find_remove),
	TH_CASE(queues_by_name_and_dead_suffix),
	{NULL, NULL},
};

TH_MAIN(cases)
