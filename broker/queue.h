/*
 * queue: the broker's in-memory index of every stored message: which are
 * ready (by priority, then id), delayed or leased (by due time), per queue,
 * and the counts that STATS reports. It holds no payloads: those stay in
 * the store. The index mirrors committed rows; the writer thread is its
 * only user, so nothing here locks.
 */
#ifndef SLUICE_BRK_QUEUE_H
#define SLUICE_BRK_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum brk_msg_state { BRK_MSG_READY = 0, BRK_MSG_DELAYED = 1, BRK_MSG_LEASED = 2 };

typedef struct brk_queue brk_queue;
typedef struct brk_index brk_index;

/* Bookkeeping for one stored message (the row itself is in the store). */
typedef struct brk_msg {
	uint64_t id;
	uint64_t token;        /* lease token of the latest delivery; 0 = never leased */
	int64_t due_ms;        /* DELAYED: visible at; LEASED: lease deadline (wall ms) */
	int64_t enqueued_ms;
	brk_queue *q;          /* borrowed: queues live as long as the index */
	int32_t priority;
	uint32_t attempts;     /* deliveries so far */
	uint32_t len;          /* payload bytes */
	uint32_t pos;          /* private: heap position */
	uint8_t state;         /* enum brk_msg_state */
} brk_msg;

/* Counters since the broker started, kept per queue. */
typedef struct brk_queue_totals {
	uint64_t enqueued;
	uint64_t acked;
	uint64_t nacked;
	uint64_t expired;
	uint64_t dead_lettered;
} brk_queue_totals;

typedef struct brk_queue_counts {
	uint64_t ready;
	uint64_t delayed;
	uint64_t leased;
} brk_queue_counts;

brk_index *brk_index_alloc(void);  /* NULL on out of memory */
void brk_index_free(brk_index *x); /* frees every queue and message; accepts NULL */

/* Queues. Names are 1-128 bytes; settings are copied. */
brk_queue *brk_index_queue(const brk_index *x, const char *name, size_t len);
brk_queue *brk_index_queue_add(brk_index *x, const char *name, size_t len, int64_t db_id,
                               const cfg_queue *settings);
brk_queue *brk_index_queue_by_db_id(const brk_index *x, int64_t db_id);
size_t brk_index_nqueues(const brk_index *x);
brk_queue *brk_index_queue_at(const brk_index *x, size_t i); /* in creation order */

const char *brk_queue_name(const brk_queue *q);
int64_t brk_queue_db_id(const brk_queue *q);
/* 0 until the queue's row is stored (or after that row was rolled back). */
void brk_queue_set_db_id(brk_queue *q, int64_t db_id);
const cfg_queue *brk_queue_settings(const brk_queue *q);
void brk_queue_set_settings(brk_queue *q, const cfg_queue *settings);
brk_queue_counts brk_queue_count(const brk_queue *q);
uint64_t brk_queue_size(const brk_queue *q); /* ready + delayed + leased */
brk_queue_totals *brk_queue_totals_of(brk_queue *q);
bool brk_queue_is_dead(const brk_queue *q); /* its name ends in ".dead" */
/* A slot the writer uses for its own per-queue state (long-poll waiters). */
void **brk_queue_user(brk_queue *q);
/* The ready message leased next, or NULL. */
brk_msg *brk_queue_top(const brk_queue *q);

/* Messages. add copies m (its state is derived from due_ms vs now). */
brk_msg *brk_index_add(brk_index *x, brk_queue *q, const brk_msg *m, int64_t now_ms);
brk_msg *brk_index_find(const brk_index *x, uint64_t id);
void brk_index_remove(brk_index *x, brk_msg *m); /* m goes back to the index's free list */
uint64_t brk_index_count(const brk_index *x);

/* Takes the top ready message out of the ready set and leases it. */
brk_msg *brk_index_lease_next(brk_index *x, brk_queue *q, uint64_t token, int64_t deadline_ms);
/* Moves a leased message's deadline. */
void brk_index_extend(brk_index *x, brk_msg *m, int64_t deadline_ms);
/* Makes m visible at at_ms (ready now if at_ms <= now_ms, else delayed),
 * in queue to (NULL: its own queue). */
void brk_index_release(brk_index *x, brk_msg *m, brk_queue *to, int64_t at_ms, int64_t now_ms);
/* The delayed or leased message due first, or NULL. */
brk_msg *brk_index_next_due(const brk_index *x);
/* Up to max of q's delayed messages, in no particular order. */
size_t brk_index_delayed_of(const brk_index *x, const brk_queue *q, brk_msg **out, size_t max);
/* Leases a ready message again as it was (token, deadline, attempts):
 * restores live leases after the index is rebuilt. */
void brk_index_restore_lease(brk_index *x, brk_msg *m, uint64_t token, int64_t deadline_ms,
                             uint32_t attempts);

/* Up to max ready messages of q in lease order, without taking them. */
size_t brk_queue_peek(const brk_queue *q, brk_msg **out, size_t max);

#endif
