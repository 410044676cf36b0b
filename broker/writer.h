/*
 * writer: the one thread that owns the store and the in-memory index.
 * Callers (the NNG server, the HTTP API) submit requests; the writer runs
 * them in batches, one write transaction per batch (group commit), and only
 * then completes each with its reply. Completion is a callback on the
 * writer thread: it must not block (hand the reply to NNG and return).
 */
#ifndef SLUICE_BRK_WRITER_H
#define SLUICE_BRK_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "config.h"

typedef struct brk_writer brk_writer;
typedef struct brk_req brk_req;
typedef struct brk_view brk_view;

/* A request, owned by its submitter, lent to the writer from submit until
 * done. The submitter fills the first block; the writer the rest. */
struct brk_req {
	/* Either a decoded request frame (f, borrowing the submitter's bytes)... */
	proto_frame f;
	/* ...or, when exec is set, a function run on the writer thread with a
	 * read-only view of the broker (HTTP stats, metrics). */
	void (*exec)(brk_req *r, const brk_view *v);
	/* Hands the writer a buffer of size bytes for the reply frame; the
	 * submitter owns it. May be called more than once (the last counts);
	 * NULL on out of memory. Not called for exec requests. */
	uint8_t *(*reply_buf)(brk_req *r, size_t size);
	/* Called once when the reply is ready: on the writer thread, or, for a
	 * request submitted while the writer is stopping, on the submitter's
	 * thread inside brk_writer_submit (so hold no lock done also takes). */
	void (*done)(brk_req *r);
	void *arg;             /* the submitter's */

	size_t reply_len;      /* bytes of the reply frame */

	/* private to the writer */
	brk_req *next;
	brk_req *prev;
	int64_t deadline_ms;
	uint32_t wait_ms;
	void *queue;
};

/* Broker-wide counters, written from NNG's threads with __atomic builtins
 * and read by the writer. Owned by main, which keeps them alive until the
 * NNG side is closed: they outlive the writer. */
typedef struct brk_counters {
	volatile uint64_t bad_frames;
	volatile int64_t connections;
	volatile uint64_t http_requests;
	volatile uint64_t http_errors;
} brk_counters;

/* Loads the index from the store at broker.data and starts the thread.
 * counters is borrowed and must outlive the writer and its submitters.
 * The writer does not check frame sizes: submitters do (NNG's receive
 * limit, the HTTP API's own checks). */
int brk_writer_open(const cfg *c, brk_counters *counters, brk_writer **out, char *err,
                    size_t errlen);
/* Stops taking requests (new ones are answered SHUTTING_DOWN), finishes
 * and answers what is in hand, stops the thread and closes the store. */
void brk_writer_close(brk_writer *w); /* accepts NULL */

/* Queues r; never blocks on the database. */
void brk_writer_submit(brk_writer *w, brk_req *r);

brk_counters *brk_writer_counters(brk_writer *w);
uint32_t brk_writer_frame_limit(const brk_writer *w);

/* ---- the read-only view given to exec requests ---- */

/* A queue's figures, as STATS reports them. */
typedef struct brk_queue_view {
	const char *name;
	uint64_t depth, delayed, in_flight, dead, backlog;
	int64_t oldest_ready_age_ms;
	int64_t max_depth;
	uint64_t enqueued_total, acked_total, nacked_total, expired_total, dead_lettered_total;
	/* the latest worker and supervisor reports (-1 = none) */
	int64_t sink_commit_p99_us, sink_batches, sink_failures, sink_breaker_open, sink_workers;
	int64_t desired_workers, current_workers, worker_restarts, guard_holds;
	bool is_dead;
} brk_queue_view;

/* Calls fn for each figure of q that STATS reports, by its name in
 * PROTOCOL.md and in that order, leaving out what nobody has reported. */
void brk_queue_view_each(const brk_queue_view *q,
                         void (*fn)(void *arg, const char *key, int64_t value), void *arg);

size_t brk_view_nqueues(const brk_view *v);
/* Fills q with queue i's figures (creation order). */
void brk_view_queue(const brk_view *v, size_t i, brk_queue_view *q);
/* Index of the queue named name, or -1. */
long brk_view_find(const brk_view *v, const char *name, size_t len);

/* Broker-wide figures for /metrics. */
typedef struct brk_broker_view {
	int64_t uptime_ms;
	uint64_t commits, fsyncs, bad_frames, http_requests;
	int64_t connections;
	int64_t db_bytes, db_free_bytes;
	uint64_t messages;
	const struct hist *commit_us;       /* commit latency, microseconds */
	const struct hist *batch_requests;  /* requests per group commit */
	const struct hist *ack_latency_ms;  /* enqueue-to-ack, milliseconds */
	bool writable;                      /* the last commit succeeded */
} brk_broker_view;

void brk_view_broker(const brk_view *v, brk_broker_view *b);

#endif
